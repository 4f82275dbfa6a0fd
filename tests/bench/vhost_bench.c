// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_bench: one benchmark case against one vhost-net device, driven from a
 * fake guest set up as QEMU sets it up (tests/guest.h).
 *
 * Usage: vhost_bench [--packed] DEV CASE [SECONDS [WARMUP_SECONDS]]   (default 3 and 0.5)
 *   CASE: tx64 tx1500 tx64k tx64kraw tx64kzc rx64 rx1500 rr64 rr64bp bidi64
 *   --packed: both queues are packed virtqueues (VIRTIO_F_RING_PACKED), else split.
 *
 * Setup, every case: a private network namespace; a tap (IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, vnet header 12, TUNSETOFFLOAD CSUM|TSO4|TSO6 as QEMU does for a
 * Linux guest) as the backend of both queues (RX 0, TX 1); features VERSION_1 |
 * MRG_RXBUF | EVENT_IDX (| RING_PACKED); rings of 256; guest memory in a memfd. Busy
 * polling is off (VHOST_SET_VRING_BUSYLOOP_TIMEOUT never set: QEMU's poll-us=0).
 * Every case is written once over a small ring layer (struct bring): on a packed ring,
 * used_event becomes the driver event area (DESC at the position N used descriptors
 * ahead), avail_event the device event area; what the cases below say of used_event and
 * EVENT_IDX holds for both rings.
 *
 *   txN    the guest keeps the TX ring full of N-byte frames (one descriptor:
 *          header + frame), kicks only when EVENT_IDX says the device sleeps,
 *          and sleeps on the call eventfd with used_event 3/4 into the pending
 *          chains (virtqueue_enable_cb_delayed), like a Linux guest whose TX
 *          queue is stopped. Frames go to nobody: the stack drops them on the
 *          tap interface (tx64/tx1500: unknown ethertype; tx64k: a 65535-byte
 *          TCP/IPv4 frame with GSO_TCPV4, to a MAC that is not the tap's).
 *          Counted: used entries returned to the guest.
 *   rxN    a backlog of N-byte frames is queued in the tap (two AF_PACKET
 *          injector threads, PACKET_QDISC_BYPASS, tx_queue_len 32767) while the
 *          RX backend is detached; then it is attached and vhost alone moves
 *          the backlog into 256 posted mergeable buffers of 2 KiB; the guest
 *          sleeps on the call eventfd (used_event a quarter into the posted
 *          buffers) and reposts. Timed from WARMUP after the attach, for
 *          SECONDS or until 256 frames are left; then the backend is detached
 *          and the rest read from the tap (every frame must be accounted for).
 *          (A concurrent injector could not outrun vhost in the test VM: tun
 *          dropped nothing, so that measured the injector, not vhost.)
 *   rr64   the guest sends one 64-byte frame, a responder thread on the tap's
 *          interface side (AF_PACKET) echoes it, the guest waits (call eventfd,
 *          interrupt on every RX used entry) for it in its RX ring. One
 *          transaction in flight. Counted: round trips/s, median and p99 RTT.
 *   tx64kraw tx64k, but a plain 65535-byte frame of an unknown ethertype, no GSO:
 *          the stack frees it unread, without copying (on tx64k, IPv4's handler sees
 *          the frame first, and the stack copies a zero-copy frame before it delivers
 *          it), as a NIC that sends by DMA: what zero-copy TX can save shows here.
 *   tx64kzc the same case; the bench script runs it with both modules loaded with
 *          experimental_zcopytx=1, so tx64kzc / tx64kraw is zero-copy against copy.
 *   rr64bp rr64 with both queues busy polling 50 us (VHOST_SET_VRING_BUSYLOOP_TIMEOUT,
 *          QEMU's poll-us=50) when they run out of work.
 *   bidi64 tx64 and rx64 at once on the one device, over one window: the RX backlog
 *          is queued first, as for rx64, then the RX backend is attached and the
 *          guest starts keeping the TX ring full; one guest loop serves both rings
 *          (see run_bidi). Counted: TX used entries and RX frames landed in the
 *          window, each per second, and their sum. RX frames are checked byte for
 *          byte; every TX chain must come back and reach the tap interface.
 *
 * Output: one line per measurement, key=value:
 *   BENCH dev=NAME case=CASE metric=M value=V unit=U ring=split|packed
 * and a line `INFO ...` with the accounting (sent, landed, dropped, lost,
 * stalls), ending in ring=split|packed. Exit status 0, or 1 if the case could not
 * run or stalled (or, packed, a queue signalled its err eventfd).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "../guest.h"
#include "../frames.h"

#define F(b)		(1ULL << (b))
#define FEATURES	(F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_RING_F_EVENT_IDX))
#define HDR_LEN		12	/* struct virtio_net_hdr_mrg_rxbuf */
#define MTU		65521
#define RXBUF		2048
#define TX_SMALL_GPA	0x10000ULL		/* region A: 256 x 2 KiB */
#define RX_GPA		(G_AB_BOUNDARY + 0x10000)	/* region B: 256 x 2 KiB */
#define TX_BIG_GPA	(G_C_GPA + 0x10000)	/* region C: NBIG x 68 KiB */
#define TX_BIG_STRIDE	0x11000ULL
#define NBIG		32
#define STALL_MS	2000
#define RX_QLEN		32767	/* the most tx_queue_len takes (S16_MAX) */
#define INJECT_SEED	3	/* make_frame() seed of the injected (RX) frames */

static struct guest G;
static const char *devname_;
static const char *case_name;

/* --packed: both queues are packed virtqueues. */
static bool packed;

/*
 * One virtqueue, split or packed, as the cases drive it (the functions br_*() below). Only
 * the member of the ring in use is set up.
 */
struct bring {
	bool packed;
	struct vr v;			/* split */
	struct pvr p;			/* packed */
	uint16_t pub_idx;		/* the avail position at the last br_publish_kick(), */
	bool pub_wrap;			/* and (packed) its wrap counter */
};

struct bench {
	int vfd, cap;
	struct tap tap;
	struct bring rx, tx;
};

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vhost_bench: %s %s: ", devname_, case_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- frames ------------------------------------------------------------------------- */

/*
 * The bench's own frames, not frames.h's: the payload pattern lacks frame_eth()'s i >> 8, and
 * results stay comparable with earlier runs only if the frames do.
 */
static void make_frame(uint8_t *f, size_t len, unsigned int seed)
{
	static const uint8_t macs[12] = { 0x02, 0, 0x5e, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01 };
	size_t i;

	memcpy(f, macs, 12);
	f[12] = 0x88;		/* local experimental ethertype: no handler, dropped */
	f[13] = 0xb5;
	for (i = 14; i < len; i++)
		f[i] = (uint8_t)(i * 7 + seed * 13);
}

/* A TCP/IPv4 frame of @len bytes, TCP checksum left for the device (pseudo-header sum). */
static void make_tcp_frame(uint8_t *f, size_t len)
{
	uint8_t *ip = f + 14, *tcp = f + 34, ph[12];
	size_t tcplen = len - 34;
	uint16_t c;

	make_frame(f, len, 1);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	ip[2] = (len - 14) >> 8;
	ip[3] = (len - 14) & 0xff;
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	c = ~ip_csum(ip, 20, 0);
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
	tcp[0] = 0x9c; tcp[1] = 0x40;
	tcp[2] = 0x13; tcp[3] = 0x89;
	tcp[4] = 1;
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;
	tcp[14] = 0xff; tcp[15] = 0xff;
	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = 6;
	ph[10] = tcplen >> 8;
	ph[11] = tcplen & 0xff;
	c = ip_csum(ph, 12, 0);
	tcp[16] = c >> 8;
	tcp[17] = c & 0xff;
}

/* ---- the ring: split or packed ------------------------------------------------------------ */

/*
 * The ring layer every case drives, so that each measurement is written once.
 *
 * Split: exactly as this driver has always driven it (struct vr of tests/guest.h), so that
 * results stay comparable with earlier runs: chains are written and pushed into the avail
 * ring, one store of avail->idx publishes them, a kick follows when vring_need_event() on
 * avail_event says so; used_event sets the interrupt point.
 *
 * Packed (virtio 1.x 2.8; struct pvr of tests/guest.h, driven as Linux's packed driver):
 * pvr_add() makes each chain available at once (its head's flags, then a full fence), so
 * publishing only checks the device event area (2.8.10: DISABLE, ENABLE, or with EVENT_IDX
 * DESC and the position it wants a kick for) against the chains made available since the
 * last publish; the interrupt point is the driver event area, DESC with the used position N
 * descriptors ahead (Linux's virtqueue_enable_cb_delayed_packed()).
 *
 * Every chain here is one descriptor: a buffer takes one slot, its id is its head (split)
 * or buffer id (packed), and "N used entries ahead" is N slots ahead on either ring.
 */

static inline bool need_event(uint16_t event, uint16_t new, uint16_t old)
{
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

static inline uint16_t next_head(struct vr *vr)
{
	return vr->free_stack[vr->nfree - 1];
}

/* Makes new avail entries visible, then kicks if the device asked for it (EVENT_IDX). */
static void publish_kick(struct vr *vr, uint16_t old, unsigned long long *kicks)
{
	__atomic_store_n(&vr->avail->idx, vr->avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vr->avail_idx != old && need_event(vr_avail_event(vr), vr->avail_idx, old)) {
		vr_kick(vr);
		(*kicks)++;
	}
}

static inline void push_avail(struct vr *vr, int head)
{
	vr->avail->ring[vr->avail_idx & (vr->num - 1)] = head;
	vr->avail_idx++;
}

/* A ring of VR_NUM entries at @gpa (region C; the split layout needs 12 KiB, packed 4 KiB). */
static int br_init(struct bring *br, uint64_t gpa, bool pk)
{
	int r;

	memset(br, 0, sizeof(*br));
	br->packed = pk;
	if (!pk)
		return vr_init(&br->v, &G, gpa);
	r = pvr_init(&br->p, &G, gpa, VR_NUM);
	if (r)
		return r;
	br->pub_wrap = true;
	/*
	 * A split ring starts with used_event 0 (its avail ring is zeroed): an interrupt for
	 * the first used entry, then none until the case sets its point. The same here: DESC
	 * at position 0 of the first lap (a zeroed driver area would say ENABLE: every entry).
	 */
	pvr_set_driver_event(&br->p, VRING_PACKED_EVENT_FLAG_DESC, 0, true);
	return 0;
}

/* SET_VRING_NUM/BASE/ADDR/KICK/CALL (packed: and ERR) of queue @idx. */
static int br_setup(struct bring *br, int vfd, unsigned int idx, const char **what)
{
	if (br->packed)
		return pvr_setup_vhost(&br->p, vfd, idx, PVR_BASE_START, what);
	return vr_setup_vhost(&br->v, vfd, idx, what);
}

static void br_close(struct bring *br)
{
	if (br->packed)
		pvr_close(&br->p);
	else
		vr_close(&br->v);
}

/* The id the next br_add_one() gives its buffer: its data goes at the place of that id. */
static inline unsigned int br_next_id(struct bring *br)
{
	return br->packed ? (unsigned int)pvr_peek_id(&br->p) : next_head(&br->v);
}

/* Buffers that can still be added (one descriptor each). */
static inline unsigned int br_free(struct bring *br)
{
	if (br->packed)
		return br->p.nfree < br->p.slots_free ? br->p.nfree : br->p.slots_free;
	return br->v.nfree;
}

/* Buffers added and not yet taken back with br_get_used(). */
static inline unsigned int br_inflight(struct bring *br)
{
	if (br->packed)
		return br->p.num - br->p.nfree;
	return (uint16_t)(br->v.avail_idx - br->v.last_used);
}

/*
 * Adds a one-descriptor buffer (@write: device-writable); split: pushed into the avail
 * ring, visible at the next br_publish_kick(); packed: available at once. Returns its id.
 */
static unsigned int br_add_one(struct bring *br, uint64_t gpa, uint32_t len, bool write)
{
	struct vr_seg s = { gpa, len, write };
	int id;

	if (br->packed) {
		id = pvr_add(&br->p, &s, 1, 0);
	} else {
		id = vr_add(&br->v, &s, 1, 0);
		if (id >= 0)
			push_avail(&br->v, id);
	}
	if (id < 0)
		die("no room in the ring for a buffer (%u free)", br_free(br));
	return id;
}

/*
 * Publishes what was added since the last call and kicks if the device asks for it: split,
 * avail->idx and avail_event (EVENT_IDX); packed, the device event area.
 */
static void br_publish_kick(struct bring *br, unsigned long long *kicks)
{
	struct pvr *p = &br->p;

	if (!br->packed) {
		publish_kick(&br->v, br->pub_idx, kicks);
		br->pub_idx = br->v.avail_idx;
		return;
	}
	/* pvr_add() ended with a full fence: the device area is read after the descriptors. */
	if ((p->avail_idx != br->pub_idx || p->avail_wrap != br->pub_wrap) &&
	    pvr_kick_needed(p, br->pub_idx, br->pub_wrap)) {
		pvr_kick(p);
		(*kicks)++;
	}
	br->pub_idx = p->avail_idx;
	br->pub_wrap = p->avail_wrap;
}

/*
 * Asks for an interrupt when the used entry @k past our used position is written (k + 1
 * entries ready). @k wraps as the split ring's 16-bit index does: (uint16_t)-1 names the
 * entry just behind ours, so no interrupt for nearly a whole index space (split 65535
 * entries, packed two laps less one, 65536 being a multiple of 2 * VR_NUM).
 */
static void br_set_event(struct bring *br, uint16_t k)
{
	uint16_t idx;
	bool wrap;

	if (!br->packed) {
		vr_set_used_event(&br->v, br->v.last_used + k);
		return;
	}
	idx = br->p.used_idx;
	wrap = br->p.used_wrap;
	pvr_advance(&idx, &wrap, k, br->p.num);
	pvr_set_driver_event(&br->p, VRING_PACKED_EVENT_FLAG_DESC, idx, wrap);
}

/*
 * The interrupt point as far from our used position as the index space allows: split, used
 * event 0x8000 on (half the 16-bit index); packed, one lap on (half the two laps).
 */
static void br_set_event_far(struct bring *br)
{
	br_set_event(br, br->packed ? br->p.num : 0x8000);
}

/* Whether more than @k used entries are ready to be taken. */
static inline bool br_used_more(struct bring *br, unsigned int k)
{
	if (br->packed)
		return pvr_used_ready(&br->p, k + 1) > k;
	return vr_used_pending(&br->v) > k;
}

/* Takes the next used entry: 1, 0 if none, -1 if its id is not a buffer in flight. */
static inline int br_get_used(struct bring *br, uint32_t *id, uint32_t *len)
{
	uint16_t flags;

	if (br->packed)
		return pvr_get_used(&br->p, id, len, &flags);
	return vr_get_used(&br->v, id, len);
}

static inline void br_kick(struct bring *br)
{
	if (br->packed)
		pvr_kick(&br->p);
	else
		vr_kick(&br->v);
}

static inline int br_call_fd(struct bring *br)
{
	return br->packed ? br->p.call : br->v.call;
}

/* Used buffer notifications since the last read, without waiting. */
static inline uint64_t br_take_calls(struct bring *br)
{
	return br->packed ? pvr_take_calls(&br->p) : vr_take_calls(&br->v);
}

/*
 * For stall reports: our avail position, the device's used position and the kick event
 * state. Packed: positions as idx | wrap << 15, and the used one ours (the device's too when
 * nothing is ready, as in a stall).
 */
static inline unsigned int br_avail_pos(struct bring *br)
{
	return br->packed ? pvr_pos(br->p.avail_idx, br->p.avail_wrap) : br->v.avail_idx;
}

static inline unsigned int br_used_pos(struct bring *br)
{
	return br->packed ? pvr_pos(br->p.used_idx, br->p.used_wrap) : vr_used_idx(&br->v);
}

static const char *br_kick_state(struct bring *br)
{
	static char buf[64];
	uint16_t off_wrap, flags;

	if (!br->packed) {
		snprintf(buf, sizeof(buf), "avail_event %u", vr_avail_event(&br->v));
		return buf;
	}
	pvr_device_event(&br->p, &off_wrap, &flags);
	snprintf(buf, sizeof(buf), "device event off_wrap %#x flags %u", off_wrap, flags);
	return buf;
}

static const char *ring_name(void)
{
	return packed ? "packed" : "split";
}

/* ---- setup ------------------------------------------------------------------------------ */

/* Tap interface counters from /proc/net/dev (per network namespace). */
struct ifstats {
	unsigned long long rx_pkts, rx_drop, tx_pkts, tx_drop;
};

static struct ifstats if_stats(const char *name)
{
	struct ifstats s = { 0 };
	char line[512], *p;
	size_t n = strlen(name);
	FILE *f = fopen("/proc/net/dev", "r");

	if (!f)
		return s;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[16];

		p = line + strspn(line, " ");
		if (strncmp(p, name, n) || p[n] != ':')
			continue;
		if (sscanf(p + n + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
			   &v[10], &v[11]) == 12) {
			s.rx_pkts = v[1];
			s.rx_drop = v[3];
			s.tx_pkts = v[9];
			s.tx_drop = v[11];
		}
	}
	fclose(f);
	return s;
}

/* tx64kraw, tx64kzc: big frames without GSO, of an ethertype nobody handles. */
static bool raw_big;

/* rr64bp: both queues busy-poll this long (QEMU's poll-us) when they run out of work. */
static unsigned int busyloop_us;

static void bench_open(struct bench *b, const char *dev, bool rx_backend)
{
	const char *what;
	uint64_t f = FEATURES | (packed ? F(VIRTIO_F_RING_PACKED) : 0), have;
	unsigned int off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	int r, i;

	memset(b, 0, sizeof(*b));
	b->cap = -1;
	b->vfd = open(dev, O_RDWR | O_CLOEXEC);
	if (b->vfd < 0)
		die("open %s: %s", dev, strerror(errno));
	if (ioctl(b->vfd, VHOST_GET_FEATURES, &have) < 0 || (have & FEATURES) != FEATURES)
		die("features %#llx not offered", (unsigned long long)FEATURES);
	if ((have & f) != f)
		die("packed rings not offered by %s (VIRTIO_F_RING_PACKED, bit 34; features %#llx)",
		    dev, (unsigned long long)have);
	r = tap_create(&b->tap, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, HDR_LEN, MTU, &what);
	if (r)
		die("tap: %s: %s", what, strerror(-r));
	if (ioctl(b->tap.fd, TUNSETOFFLOAD, off) < 0)
		die("TUNSETOFFLOAD: %s", strerror(errno));
	r = br_init(&b->rx, G_C_GPA, packed);
	if (!r)
		r = br_init(&b->tx, G_C_GPA + 0x4000, packed);
	if (r)
		die("ring: %s", strerror(-r));
	if (ioctl(b->vfd, VHOST_SET_OWNER) < 0)
		die("SET_OWNER: %s", strerror(errno));
	if (ioctl(b->vfd, VHOST_SET_FEATURES, &f) < 0)
		die("SET_FEATURES: %s", strerror(errno));
	r = g_set_mem_table(&G, b->vfd);
	if (r)
		die("SET_MEM_TABLE: %s", strerror(-r));
	r = br_setup(&b->rx, b->vfd, 0, &what);
	if (!r)
		r = br_setup(&b->tx, b->vfd, 1, &what);
	if (r)
		die("%s: %s", what, strerror(-r));
	for (i = 0; i < 2 && busyloop_us; i++) {
		struct vhost_vring_state s = { .index = i, .num = busyloop_us };

		if (ioctl(b->vfd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &s) < 0)
			die("SET_VRING_BUSYLOOP_TIMEOUT %u: %s", busyloop_us, strerror(errno));
	}
	for (i = rx_backend ? 0 : 1; i < 2; i++) {
		struct vhost_vring_file bf = { .index = i, .fd = b->tap.fd };

		if (ioctl(b->vfd, VHOST_NET_SET_BACKEND, &bf) < 0)
			die("NET_SET_BACKEND %d: %s", i, strerror(errno));
	}
}

static void bench_close(struct bench *b)
{
	close(b->vfd);
	close(b->tap.fd);
	if (b->cap >= 0)
		close(b->cap);
	br_close(&b->rx);
	br_close(&b->tx);
}

static void emit(const char *metric, double v, const char *unit)
{
	printf("BENCH dev=%s case=%s metric=%s value=%.6g unit=%s ring=%s\n", devname_, case_name,
	       metric, v, unit, ring_name());
}

/* ---- TX ------------------------------------------------------------------------------------ */

static int run_tx(struct bench *b, size_t flen, double dur, double warm)
{
	static uint8_t fr[70000];
	struct virtio_net_hdr_mrg_rxbuf h = { 0 };
	bool big = flen > RXBUF - HDR_LEN;
	unsigned long long done = 0, kicks = 0, calls = 0, base = 0, stalls = 0;
	struct ifstats s0, s1;
	double t0, t_start, t_end, tm;
	unsigned int i;
	int ret = 0;

	if (big && raw_big) {
		make_frame(fr, flen, 1);
		for (i = 0; i < NBIG; i++) {
			g_write(&G, TX_BIG_GPA + i * TX_BIG_STRIDE, &h, HDR_LEN);
			g_write(&G, TX_BIG_GPA + i * TX_BIG_STRIDE + HDR_LEN, fr, flen);
		}
	} else if (big) {
		make_tcp_frame(fr, flen);
		h.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		h.hdr.hdr_len = 54;
		h.hdr.gso_size = 1448;
		h.hdr.csum_start = 34;
		h.hdr.csum_offset = 16;
		for (i = 0; i < NBIG; i++) {
			g_write(&G, TX_BIG_GPA + i * TX_BIG_STRIDE, &h, HDR_LEN);
			g_write(&G, TX_BIG_GPA + i * TX_BIG_STRIDE + HDR_LEN, fr, flen);
		}
	} else {
		make_frame(fr, flen, 0);
		for (i = 0; i < VR_NUM; i++) {
			g_write(&G, TX_SMALL_GPA + i * RXBUF, &h, HDR_LEN);
			g_write(&G, TX_SMALL_GPA + i * RXBUF + HDR_LEN, fr, flen);
		}
	}
	/* No RX buffers: nothing comes back on RX anyway. */
	s0 = if_stats(b->tap.name);
	t0 = now_s();
	t_start = t0 + warm;
	t_end = t_start + dur;
	tm = 0;
	for (;;) {
		unsigned int pend;
		uint32_t id, len;
		double t;
		int r;

		/* Refill the ring completely. */
		while (br_free(&b->tx)) {
			unsigned int hd = br_next_id(&b->tx);
			uint64_t gpa = big ? TX_BIG_GPA + (hd % NBIG) * TX_BIG_STRIDE
					   : TX_SMALL_GPA + hd * RXBUF;

			br_add_one(&b->tx, gpa, HDR_LEN + flen, false);
		}
		br_publish_kick(&b->tx, &kicks);
		/* Ring full: "stop the queue", interrupt when 3/4 of it is done. */
		pend = br_inflight(&b->tx);
		br_set_event(&b->tx, pend * 3 / 4);
		if (!br_used_more(&b->tx, pend * 3 / 4)) {
			struct pollfd p = { .fd = br_call_fd(&b->tx), .events = POLLIN };

			r = poll(&p, 1, STALL_MS);
			if (r <= 0 && !br_used_more(&b->tx, 0)) {
				stalls++;
				fprintf(stderr, "vhost_bench: %s %s: TX stall: no used entry for %d ms "
					"(avail %u, used %u, %s)\n", devname_, case_name, STALL_MS,
					br_avail_pos(&b->tx), br_used_pos(&b->tx),
					br_kick_state(&b->tx));
				ret = 1;
				break;
			}
		}
		calls += br_take_calls(&b->tx);
		while ((r = br_get_used(&b->tx, &id, &len)) == 1)
			done++;
		if (r < 0)
			die("TX used element id %u not a posted head", id);
		t = now_s();
		if (!base && t >= t_start) {
			base = done;
			t_start = t;
		}
		if (t >= t_end) {
			tm = t - t_start;
			break;
		}
	}
	/* Drain: every posted chain must come back. */
	{
		double end = now_s() + STALL_MS / 1000.0;
		uint32_t id, len;

		br_set_event(&b->tx, br_inflight(&b->tx) - 1);	/* the last one in flight */
		while (br_inflight(&b->tx) && now_s() < end) {
			while (br_get_used(&b->tx, &id, &len) == 1)
				done++;
			sleep_ms(1);
		}
	}
	s1 = if_stats(b->tap.name);
	if (tm > 0) {
		double pps = (done - base) / tm;

		emit("pps", pps, "pkt/s");
		emit("mbps", pps * flen * 8 / 1e6, "Mbit/s");
	}
	printf("INFO dev=%s case=%s frame=%zu completed=%llu tap_rx=%llu tap_rx_drop=%llu "
	       "inflight_left=%u kicks=%llu calls=%llu stalls=%llu secs=%.3f ring=%s\n", devname_,
	       case_name, flen, done, s1.rx_pkts - s0.rx_pkts, s1.rx_drop - s0.rx_drop,
	       br_inflight(&b->tx), kicks, calls, stalls, tm, ring_name());
	if (br_inflight(&b->tx)) {
		fprintf(stderr, "vhost_bench: %s %s: %u TX chains never came back\n", devname_,
			case_name, br_inflight(&b->tx));
		ret = 1;
	}
	return ret;
}

/* ---- RX ------------------------------------------------------------------------------------ */

struct injector {
	pthread_t th;
	int sock, ifindex;
	size_t flen;
	atomic_bool stop;
	atomic_ullong sent, errors;
};

static void *inject_main(void *arg)
{
	struct injector *in = arg;
	static uint8_t fr[2048];
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_ifindex = in->ifindex,
		.sll_halen = ETH_ALEN,
	};
	struct mmsghdr m[64];
	struct iovec iov = { fr, in->flen };
	unsigned int i;

	make_frame(fr, in->flen, INJECT_SEED);
	memset(m, 0, sizeof(m));
	for (i = 0; i < 64; i++) {
		m[i].msg_hdr.msg_name = &sll;
		m[i].msg_hdr.msg_namelen = sizeof(sll);
		m[i].msg_hdr.msg_iov = &iov;
		m[i].msg_hdr.msg_iovlen = 1;
	}
	while (!atomic_load_explicit(&in->stop, memory_order_relaxed)) {
		int n = sendmmsg(in->sock, m, 64, 0);

		if (n > 0)
			atomic_fetch_add_explicit(&in->sent, n, memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&in->errors, 1, memory_order_relaxed);
	}
	return NULL;
}

static void rx_post(struct bring *br, int n)
{
	while (n-- > 0 && br_free(br))
		br_add_one(br, RX_GPA + br_next_id(br) * RXBUF, RXBUF, true);
}

/*
 * Reaps RX used entries, checks their length (and, if @want, their bytes against it), reposts
 * and kicks as needed.
 */
static unsigned int rx_reap(struct bring *br, size_t flen, const uint8_t *want,
			    unsigned long long *bad, unsigned long long *kicks)
{
	unsigned int got = 0;
	uint32_t id, len;
	int r;

	while ((r = br_get_used(br, &id, &len)) == 1) {
		struct virtio_net_hdr_mrg_rxbuf *h = (void *)g_hva(&G, RX_GPA + id * RXBUF, NULL);

		if (len != HDR_LEN + flen || h->num_buffers != 1 ||
		    (want && memcmp((uint8_t *)h + HDR_LEN, want, flen)))
			(*bad)++;
		got++;
	}
	if (r < 0)
		die("RX used element id %u not a posted head", id);
	rx_post(br, got);
	br_publish_kick(br, kicks);
	return got;
}

/* The tap's queue towards its reader (tun's ptr_ring follows tx_queue_len). */
static void tap_set_txqlen(struct tap *t, int qlen)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memcpy(ifr.ifr_name, t->name, IFNAMSIZ);
	ifr.ifr_qlen = qlen;
	if (s < 0 || ioctl(s, SIOCSIFTXQLEN, &ifr) < 0)
		die("SIOCSIFTXQLEN %d: %s", qlen, strerror(errno));
	close(s);
}

/*
 * Queues a backlog of @flen-byte frames in the tap with two injector threads, for @secs or
 * until tun's queue is nearly full; the RX backend must not be attached, so that vhost does
 * nothing meanwhile. Returns how many were queued (*fill_secs: how long it took); dies if tun
 * dropped any (counted from @s0, the tap's counters before) or if fewer than 1024 were queued.
 */
static unsigned long long rx_backlog(struct bench *b, size_t flen, double secs,
				     const struct ifstats *s0, double *fill_secs)
{
	struct injector in[2] = { { .ifindex = b->tap.ifindex, .flen = flen },
				  { .ifindex = b->tap.ifindex, .flen = flen } };
	unsigned long long n, drop0;
	struct ifstats s1;
	double t_fill;
	int one = 1, i;

	for (i = 0; i < 2; i++) {
		in[i].sock = pkt_sender_open();
		if (in[i].sock < 0)
			die("packet socket: %s", strerror(-in[i].sock));
		if (setsockopt(in[i].sock, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0)
			die("PACKET_QDISC_BYPASS: %s", strerror(errno));
		if (pthread_create(&in[i].th, NULL, inject_main, &in[i]))
			die("pthread_create");
	}
	/* Fill for as long as the measurement should last (vhost drains faster than we fill). */
	t_fill = now_s();
	while (now_s() < t_fill + secs &&
	       atomic_load(&in[0].sent) + atomic_load(&in[1].sent) < RX_QLEN - 1024)
		sleep_ms(5);
	for (i = 0; i < 2; i++) {
		atomic_store(&in[i].stop, true);
		pthread_join(in[i].th, NULL);
		close(in[i].sock);
	}
	*fill_secs = now_s() - t_fill;
	n = atomic_load(&in[0].sent) + atomic_load(&in[1].sent);
	s1 = if_stats(b->tap.name);
	drop0 = s1.tx_drop - s0->tx_drop;
	if (drop0 || n < 1024)
		die("backlog: %llu frames queued, %llu dropped by tun", n - drop0, drop0);
	return n;
}

/*
 * RX: a backlog of frames is queued in the tap (two injector threads, RX backend not
 * attached yet, so vhost does nothing meanwhile), then the RX backend is attached and vhost
 * alone moves the backlog into guest buffers. Timed from WARMUP after the attach for
 * SECONDS, or until 256 frames are left; then the backend is detached and the rest read
 * from the tap, so that every frame is accounted for: vhost's RX path is the only busy party (the guest sleeps, waking every 64 frames).
 */
static int run_rx(struct bench *b, size_t flen, double dur, double warm)
{
	struct vhost_vring_file bf = { .index = 0, .fd = b->tap.fd };
	unsigned long long landed = 0, bad = 0, kicks = 0, calls = 0, n, base = 0, win = 0;
	unsigned long long rest = 0;
	struct ifstats s0, s1;
	double t, t_fill, t_attach, t_start = 0, tm = 0, t_last;
	bool kicked = false;
	int ret = 0;

	tap_set_txqlen(&b->tap, RX_QLEN);
	rx_post(&b->rx, VR_NUM);
	br_publish_kick(&b->rx, &kicks);	/* no backend yet: vhost ignores it, as QEMU's early kick */
	s0 = if_stats(b->tap.name);
	n = rx_backlog(b, flen, dur + warm, &s0, &t_fill);

	if (ioctl(b->vfd, VHOST_NET_SET_BACKEND, &bf) < 0)
		die("NET_SET_BACKEND 0: %s", strerror(errno));
	t_attach = t_last = now_s();
	for (;;) {
		unsigned int got = rx_reap(&b->rx, flen, NULL, &bad, &kicks);
		unsigned int posted;

		landed += got;
		t = now_s();
		if (got)
			t_last = t;
		if (!t_start && t >= t_attach + warm && landed >= 256) {
			base = landed;
			t_start = t;
		}
		if (!t_start && landed >= n - 256) {
			fprintf(stderr, "vhost_bench: %s %s: backlog of %llu gone before the warm-up "
				"ended\n", devname_, case_name, n);
			ret = 1;
			break;
		}
		/* The window ends at the time limit, or just before the backlog runs out. */
		if (t_start && (t >= t_start + dur || landed >= n - 256)) {
			win = landed - base;
			tm = t - t_start;
			break;
		}
		if (t - t_last > STALL_MS / 1000.0) {
			if (kicked) {
				fprintf(stderr, "vhost_bench: %s %s: RX stall: %llu of %llu frames landed, "
					"none for %d ms even after a kick (avail %u, used %u)\n", devname_,
					case_name, landed, n, STALL_MS, br_avail_pos(&b->rx),
					br_used_pos(&b->rx));
				ret = 1;
				break;
			}
			fprintf(stderr, "vhost_bench: %s %s: RX: %llu of %llu frames landed, none for %d ms "
				"(%s); kicking\n", devname_, case_name, landed, n, STALL_MS,
				landed ? "stalled" : "attaching the backend to a non-empty tap did not start RX");
			br_kick(&b->rx);
			kicked = true;
			ret = 1;
			t_last = t;
		}
		/* Interrupt when a quarter of the posted buffers is used. */
		posted = br_inflight(&b->rx);
		br_set_event(&b->rx, posted / 4);
		if (!br_used_more(&b->rx, posted / 4)) {
			struct pollfd p = { .fd = br_call_fd(&b->rx), .events = POLLIN };

			poll(&p, 1, 50);
		}
		calls += br_take_calls(&b->rx);
	}
	/* Detach (vhost finishes what it is doing), count what landed, read the rest ourselves. */
	bf.fd = -1;
	if (ioctl(b->vfd, VHOST_NET_SET_BACKEND, &bf) < 0)
		die("NET_SET_BACKEND 0 -1: %s", strerror(errno));
	t = now_s();
	landed += rx_reap(&b->rx, flen, NULL, &bad, &kicks);
	for (;;) {
		static uint8_t rb[70000];
		ssize_t r = read(b->tap.fd, rb, sizeof(rb));

		if (r < 0)
			break;
		if ((size_t)r != HDR_LEN + flen)
			bad++;
		rest++;
	}
	s1 = if_stats(b->tap.name);
	if (tm > 0) {
		emit("pps", win / tm, "pkt/s");
		emit("mbps", win / tm * flen * 8 / 1e6, "Mbit/s");
	}
	printf("INFO dev=%s case=%s frame=%zu backlog=%llu fill_secs=%.3f landed=%llu timed=%llu "
	       "secs=%.3f attached_secs=%.3f left_in_tap=%llu tap_tx=%llu tap_tx_drop=%llu bad=%llu "
	       "kicks=%llu calls=%llu ring=%s\n", devname_, case_name, flen, n, t_fill, landed, win,
	       tm, t - t_attach, rest, s1.tx_pkts - s0.tx_pkts, s1.tx_drop - s0.tx_drop, bad, kicks,
	       calls, ring_name());
	if (bad || landed + rest != n) {
		fprintf(stderr, "vhost_bench: %s %s: %llu frames queued, %llu landed in the guest, "
			"%llu left in the tap, %llu bad\n", devname_, case_name, n, landed, rest, bad);
		ret = 1;
	}
	return ret;
}

/* ---- both directions at once --------------------------------------------------------------- */

/*
 * bidi64: TX and RX on the one device at the same time, over one window.
 *
 * RX keeps run_rx's method: the backlog is queued in the tap first (RX backend detached), then
 * the RX backend is attached and the guest starts keeping the TX ring full, both at once. So
 * within the window vhost always has work on both queues (a backlog in tun's queue, a full TX
 * ring), and vhost's worker(s) are the only busy parties: no injector competes with them for
 * the two CPUs. With concurrent injectors instead, the RX figure would be the injectors' (they
 * could not outrun vhost even on rx64 alone), and they would take CPU time from the very
 * workers this case compares: one worker for both queues (vhost_net.ko, vhost-rs) against one
 * each (vhost-rs with split_workers=1). The window ends as in run_rx (SECONDS after WARMUP,
 * or just before the backlog runs out), and TX is counted over exactly the same window.
 *
 * One guest loop serves both rings, as one vCPU's NAPI would: TX as run_tx (refill, kick when
 * EVENT_IDX asks, interrupt 3/4 into the pending chains), RX as run_rx (interrupt a quarter
 * into the posted buffers, repost); it sleeps on both call eventfds until either is due.
 *
 * Checked: RX frames land whole and byte for byte as injected, and every queued frame is
 * either landed or read back from the tap afterwards; every TX chain comes back, and the tap
 * interface received as many frames as TX completed. No progress on either queue for
 * STALL_MS fails the case (RX: after one rescue kick, as run_rx).
 */
static int run_bidi(struct bench *b, size_t flen, double dur, double warm)
{
	static uint8_t fr[2048], want[2048];
	struct virtio_net_hdr_mrg_rxbuf h = { 0 };
	struct vhost_vring_file bf = { .index = 0, .fd = b->tap.fd };
	unsigned long long n, landed = 0, rest = 0, bad = 0, tx_done = 0, stalls = 0;
	unsigned long long rx_base = 0, tx_base = 0, rx_win = 0, tx_win = 0;
	unsigned long long tx_kicks = 0, rx_kicks = 0, tx_calls = 0, rx_calls = 0;
	struct ifstats s0, s1;
	double t, t_fill, t_attach, t_start = 0, tm = 0, t_rx_last, t_tx_last;
	bool rx_kicked = false;
	unsigned int i;
	int ret = 0;

	make_frame(fr, flen, 0);
	for (i = 0; i < VR_NUM; i++) {
		g_write(&G, TX_SMALL_GPA + i * RXBUF, &h, HDR_LEN);
		g_write(&G, TX_SMALL_GPA + i * RXBUF + HDR_LEN, fr, flen);
	}
	make_frame(want, flen, INJECT_SEED);
	tap_set_txqlen(&b->tap, RX_QLEN);
	rx_post(&b->rx, VR_NUM);
	br_publish_kick(&b->rx, &rx_kicks);
	s0 = if_stats(b->tap.name);
	n = rx_backlog(b, flen, dur + warm, &s0, &t_fill);

	if (ioctl(b->vfd, VHOST_NET_SET_BACKEND, &bf) < 0)
		die("NET_SET_BACKEND 0: %s", strerror(errno));
	t_attach = t_rx_last = t_tx_last = now_s();
	for (;;) {
		unsigned long long tx_was = tx_done;
		unsigned int got, tx_pend, rx_posted;
		uint32_t id, len;
		int r;

		/* TX: refill the ring completely; interrupt when 3/4 of it is done. */
		while (br_free(&b->tx))
			br_add_one(&b->tx, TX_SMALL_GPA + br_next_id(&b->tx) * RXBUF,
				   HDR_LEN + flen, false);
		br_publish_kick(&b->tx, &tx_kicks);
		tx_pend = br_inflight(&b->tx);
		br_set_event(&b->tx, tx_pend * 3 / 4);
		/* RX: interrupt when a quarter of the posted buffers is used. */
		rx_posted = br_inflight(&b->rx);
		br_set_event(&b->rx, rx_posted / 4);
		if (!br_used_more(&b->tx, tx_pend * 3 / 4) &&
		    !br_used_more(&b->rx, rx_posted / 4)) {
			struct pollfd p[2] = { { .fd = br_call_fd(&b->tx), .events = POLLIN },
					       { .fd = br_call_fd(&b->rx), .events = POLLIN } };

			poll(p, 2, 50);
		}
		tx_calls += br_take_calls(&b->tx);
		rx_calls += br_take_calls(&b->rx);
		while ((r = br_get_used(&b->tx, &id, &len)) == 1)
			tx_done++;
		if (r < 0)
			die("TX used element id %u not a posted head", id);
		got = rx_reap(&b->rx, flen, want, &bad, &rx_kicks);
		landed += got;
		t = now_s();
		if (tx_done != tx_was)
			t_tx_last = t;
		if (got)
			t_rx_last = t;
		if (!t_start && t >= t_attach + warm && landed >= 256) {
			rx_base = landed;
			tx_base = tx_done;
			t_start = t;
		}
		if (!t_start && landed >= n - 256) {
			fprintf(stderr, "vhost_bench: %s %s: backlog of %llu gone before the warm-up "
				"ended\n", devname_, case_name, n);
			ret = 1;
			break;
		}
		/* One window for both: the time limit, or just before the RX backlog runs out. */
		if (t_start && (t >= t_start + dur || landed >= n - 256)) {
			rx_win = landed - rx_base;
			tx_win = tx_done - tx_base;
			tm = t - t_start;
			break;
		}
		/* The TX ring is never empty here: no used entry for this long is a stall. */
		if (t - t_tx_last > STALL_MS / 1000.0) {
			stalls++;
			fprintf(stderr, "vhost_bench: %s %s: TX stall: no used entry for %d ms "
				"(avail %u, used %u, %s; RX landed %llu of %llu)\n", devname_,
				case_name, STALL_MS, br_avail_pos(&b->tx), br_used_pos(&b->tx),
				br_kick_state(&b->tx), landed, n);
			ret = 1;
			break;
		}
		if (t - t_rx_last > STALL_MS / 1000.0) {
			stalls++;
			if (rx_kicked) {
				fprintf(stderr, "vhost_bench: %s %s: RX stall: %llu of %llu frames landed, "
					"none for %d ms even after a kick (avail %u, used %u; TX completed "
					"%llu)\n", devname_, case_name, landed, n, STALL_MS,
					br_avail_pos(&b->rx), br_used_pos(&b->rx), tx_done);
				ret = 1;
				break;
			}
			fprintf(stderr, "vhost_bench: %s %s: RX: %llu of %llu frames landed, none for %d ms "
				"(%s); kicking\n", devname_, case_name, landed, n, STALL_MS,
				landed ? "stalled" : "attaching the backend to a non-empty tap did not start RX");
			br_kick(&b->rx);
			rx_kicked = true;
			ret = 1;
			t_rx_last = t;
		}
	}
	/* Detach RX (vhost finishes what it is doing) and count what landed. */
	bf.fd = -1;
	if (ioctl(b->vfd, VHOST_NET_SET_BACKEND, &bf) < 0)
		die("NET_SET_BACKEND 0 -1: %s", strerror(errno));
	t = now_s();
	landed += rx_reap(&b->rx, flen, want, &bad, &rx_kicks);
	/* Drain TX: every posted chain must come back. */
	{
		double end = now_s() + STALL_MS / 1000.0;
		uint32_t id, len;

		br_set_event(&b->tx, br_inflight(&b->tx) - 1);	/* the last one in flight */
		while (br_inflight(&b->tx) && now_s() < end) {
			while (br_get_used(&b->tx, &id, &len) == 1)
				tx_done++;
			sleep_ms(1);
		}
	}
	/* The rest of the backlog, read from the tap ourselves. */
	for (;;) {
		static uint8_t rb[70000];
		ssize_t r = read(b->tap.fd, rb, sizeof(rb));

		if (r < 0)
			break;
		if ((size_t)r != HDR_LEN + flen || memcmp(rb + HDR_LEN, want, flen))
			bad++;
		rest++;
	}
	s1 = if_stats(b->tap.name);
	if (tm > 0) {
		emit("bidi_tx_pps", tx_win / tm, "pkt/s");
		emit("bidi_rx_pps", rx_win / tm, "pkt/s");
		emit("bidi_pps", (tx_win + rx_win) / tm, "pkt/s");
	}
	printf("INFO dev=%s case=%s frame=%zu backlog=%llu fill_secs=%.3f landed=%llu timed_rx=%llu "
	       "left_in_tap=%llu tap_tx=%llu tap_tx_drop=%llu bad=%llu completed=%llu timed_tx=%llu "
	       "tap_rx=%llu tap_rx_drop=%llu inflight_left=%u kicks_tx=%llu kicks_rx=%llu "
	       "calls_tx=%llu calls_rx=%llu stalls=%llu secs=%.3f attached_secs=%.3f ring=%s\n",
	       devname_, case_name, flen, n, t_fill, landed, rx_win, rest, s1.tx_pkts - s0.tx_pkts,
	       s1.tx_drop - s0.tx_drop, bad, tx_done, tx_win, s1.rx_pkts - s0.rx_pkts,
	       s1.rx_drop - s0.rx_drop, br_inflight(&b->tx), tx_kicks, rx_kicks, tx_calls, rx_calls,
	       stalls, tm, t - t_attach, ring_name());
	if (bad || landed + rest != n) {
		fprintf(stderr, "vhost_bench: %s %s: %llu frames queued, %llu landed in the guest, "
			"%llu left in the tap, %llu bad\n", devname_, case_name, n, landed, rest, bad);
		ret = 1;
	}
	if (br_inflight(&b->tx)) {
		fprintf(stderr, "vhost_bench: %s %s: %u TX chains never came back\n", devname_,
			case_name, br_inflight(&b->tx));
		ret = 1;
	}
	if (s1.rx_pkts - s0.rx_pkts != tx_done) {
		fprintf(stderr, "vhost_bench: %s %s: %llu TX chains completed, %llu frames reached "
			"the tap interface\n", devname_, case_name, tx_done, s1.rx_pkts - s0.rx_pkts);
		ret = 1;
	}
	return ret;
}

/* ---- request/response ------------------------------------------------------------------------- */

struct responder {
	pthread_t th;
	int sock, ifindex;
	atomic_bool stop;
	atomic_ullong echoed;
};

static void *respond_main(void *arg)
{
	struct responder *rs = arg;
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_ifindex = rs->ifindex,
		.sll_halen = ETH_ALEN,
	};
	uint8_t buf[2048];

	while (!atomic_load_explicit(&rs->stop, memory_order_relaxed)) {
		struct pollfd p = { .fd = rs->sock, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(rs->sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			continue;
		if (sendto(rs->sock, buf, n, 0, (struct sockaddr *)&sll, sizeof(sll)) == n)
			atomic_fetch_add_explicit(&rs->echoed, 1, memory_order_relaxed);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run_rr(struct bench *b, size_t flen, double dur, double warm)
{
	static double lat[4 << 20];
	static uint8_t fr[2048];
	struct virtio_net_hdr_mrg_rxbuf h = { 0 };
	struct responder rs = { .ifindex = b->tap.ifindex };
	unsigned long long kicks = 0, bad = 0, trans = 0, nlat = 0, timeouts = 0;
	double t_start, t_end, tm = 0;
	bool started = false;
	unsigned int i;
	int ret = 0;

	rs.sock = pkt_capture_open(b->tap.ifindex, false);
	if (rs.sock < 0)
		die("capture socket: %s", strerror(-rs.sock));
	make_frame(fr, flen, 5);
	for (i = 0; i < VR_NUM; i++) {
		g_write(&G, TX_SMALL_GPA + i * RXBUF, &h, HDR_LEN);
		g_write(&G, TX_SMALL_GPA + i * RXBUF + HDR_LEN, fr, flen);
	}
	rx_post(&b->rx, VR_NUM);
	br_publish_kick(&b->rx, &kicks);
	/* No TX interrupts: completions are reaped as we go. */
	br_set_event_far(&b->tx);
	if (pthread_create(&rs.th, NULL, respond_main, &rs))
		die("pthread_create");
	t_start = now_s() + warm;
	t_end = t_start + dur;
	for (;;) {
		unsigned int hd;
		uint32_t id, len;
		double t0, t1;

		while (br_get_used(&b->tx, &id, &len) == 1)
			;
		br_set_event(&b->tx, (uint16_t)-1);	/* the entry behind ours: none */
		hd = br_next_id(&b->tx);
		t0 = now_s();
		br_add_one(&b->tx, TX_SMALL_GPA + hd * RXBUF, HDR_LEN + flen, false);
		br_publish_kick(&b->tx, &kicks);
		/* Wait for the echo: interrupt on the next RX used entry. */
		for (;;) {
			struct pollfd p = { .fd = br_call_fd(&b->rx), .events = POLLIN };

			br_set_event(&b->rx, 0);
			if (br_used_more(&b->rx, 0))
				break;
			if (poll(&p, 1, STALL_MS) <= 0 && !br_used_more(&b->rx, 0)) {
				timeouts++;
				break;
			}
			br_take_calls(&b->rx);
		}
		t1 = now_s();
		if (timeouts) {
			fprintf(stderr, "vhost_bench: %s %s: no echo within %d ms (tx avail %u used %u, "
				"rx used %u, echoed %llu)\n", devname_, case_name, STALL_MS,
				br_avail_pos(&b->tx), br_used_pos(&b->tx), br_used_pos(&b->rx),
				(unsigned long long)atomic_load(&rs.echoed));
			ret = 1;
			break;
		}
		rx_reap(&b->rx, flen, NULL, &bad, &kicks);
		if (started) {
			trans++;
			if (nlat < sizeof(lat) / sizeof(lat[0]))
				lat[nlat++] = t1 - t0;
		}
		if (!started && t1 >= t_start) {
			started = true;
			t_start = t1;
		}
		if (t1 >= t_end) {
			tm = t1 - t_start;
			break;
		}
	}
	atomic_store(&rs.stop, true);
	pthread_join(rs.th, NULL);
	close(rs.sock);
	if (tm > 0 && nlat) {
		qsort(lat, nlat, sizeof(lat[0]), cmp_double);
		emit("rr", trans / tm, "trans/s");
		emit("lat_p50", lat[nlat / 2] * 1e6, "us");
		emit("lat_p99", lat[(size_t)(nlat * 0.99)] * 1e6, "us");
	}
	printf("INFO dev=%s case=%s frame=%zu transactions=%llu echoed=%llu timeouts=%llu bad=%llu "
	       "kicks=%llu secs=%.3f ring=%s\n", devname_, case_name, flen, trans,
	       (unsigned long long)atomic_load(&rs.echoed), timeouts, bad, kicks, tm, ring_name());
	return ret || bad;
}

int main(int argc, char **argv)
{
	struct bench b;
	double dur = 3, warm = 0.5;
	int r;

	if (argc > 1 && !strcmp(argv[1], "--packed")) {
		packed = true;
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: %s [--packed] DEV tx64|tx1500|tx64k|tx64kraw|tx64kzc|rx64|"
			"rx1500|rr64|rr64bp|bidi64 [SECONDS [WARMUP]]\n", argv[0]);
		return 2;
	}
	devname_ = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
	case_name = argv[2];
	if (argc > 3)
		dur = atof(argv[3]);
	if (argc > 4)
		warm = atof(argv[4]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (unshare(CLONE_NEWNET) < 0)
		die("unshare(CLONE_NEWNET): %s (must run as root)", strerror(errno));
	sysctl_write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	sysctl_write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	r = guest_init(&G);
	if (r)
		die("guest memory: %s", strerror(-r));
	if (!strcmp(case_name, "rr64bp"))
		busyloop_us = 50;
	/* rx* and bidi64 attach the RX backend themselves, once the backlog is queued. */
	bench_open(&b, argv[1], strncmp(case_name, "rx", 2) && strcmp(case_name, "bidi64"));
	raw_big = !strcmp(case_name, "tx64kraw") || !strcmp(case_name, "tx64kzc");
	if (!strcmp(case_name, "tx64"))
		r = run_tx(&b, 64, dur, warm);
	else if (!strcmp(case_name, "tx1500"))
		r = run_tx(&b, 1514, dur, warm);
	else if (!strcmp(case_name, "tx64k") || raw_big)
		r = run_tx(&b, 65535, dur, warm);
	else if (!strcmp(case_name, "rx64"))
		r = run_rx(&b, 64, dur, warm);
	else if (!strcmp(case_name, "rx1500"))
		r = run_rx(&b, 1514, dur, warm);
	else if (!strcmp(case_name, "rr64") || !strcmp(case_name, "rr64bp"))
		r = run_rr(&b, 64, dur, warm);
	else if (!strcmp(case_name, "bidi64"))
		r = run_bidi(&b, 64, dur, warm);
	else
		die("unknown case");
	/* A packed queue's err eventfd: the device met a ring it could not use (vq_err()). */
	if (packed && (pvr_take_err(&b.rx.p) || pvr_take_err(&b.tx.p))) {
		fprintf(stderr, "vhost_bench: %s %s: the device signalled a queue error\n",
			devname_, case_name);
		r = 1;
	}
	bench_close(&b);
	return r;
}
