// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_bench: one benchmark case against one vhost-net device, driven from a
 * fake guest set up as QEMU sets it up (tests/guest.h).
 *
 * Usage: vhost_bench DEV CASE [SECONDS [WARMUP_SECONDS]]   (default 3 and 0.5)
 *   CASE: tx64 tx1500 tx64k tx64kraw tx64kzc rx64 rx1500 rr64 rr64bp bidi64
 *
 * Setup, every case: a private network namespace; a tap (IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, vnet header 12, TUNSETOFFLOAD CSUM|TSO4|TSO6 as QEMU does for a
 * Linux guest) as the backend of both queues (RX 0, TX 1); features VERSION_1 |
 * MRG_RXBUF | EVENT_IDX; rings of 256; guest memory in a memfd. Busy polling is
 * off (VHOST_SET_VRING_BUSYLOOP_TIMEOUT never set: QEMU's poll-us=0).
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
 *   BENCH dev=NAME case=CASE metric=M value=V unit=U [more=...]
 * and a line `INFO ...` with the accounting (sent, landed, dropped, lost,
 * stalls). Exit status 0, or 1 if the case could not run or stalled.
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

struct bench {
	int vfd, cap;
	struct tap tap;
	struct vr rx, tx;
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
	uint64_t f = FEATURES, have;
	unsigned int off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	int r, i;

	memset(b, 0, sizeof(*b));
	b->cap = -1;
	b->vfd = open(dev, O_RDWR | O_CLOEXEC);
	if (b->vfd < 0)
		die("open %s: %s", dev, strerror(errno));
	if (ioctl(b->vfd, VHOST_GET_FEATURES, &have) < 0 || (have & f) != f)
		die("features %#llx not offered", (unsigned long long)f);
	r = tap_create(&b->tap, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, HDR_LEN, MTU, &what);
	if (r)
		die("tap: %s: %s", what, strerror(-r));
	if (ioctl(b->tap.fd, TUNSETOFFLOAD, off) < 0)
		die("TUNSETOFFLOAD: %s", strerror(errno));
	if (vr_init(&b->rx, &G, G_C_GPA) || vr_init(&b->tx, &G, G_C_GPA + 0x4000))
		die("eventfd: %s", strerror(errno));
	if (ioctl(b->vfd, VHOST_SET_OWNER) < 0)
		die("SET_OWNER: %s", strerror(errno));
	if (ioctl(b->vfd, VHOST_SET_FEATURES, &f) < 0)
		die("SET_FEATURES: %s", strerror(errno));
	r = g_set_mem_table(&G, b->vfd);
	if (r)
		die("SET_MEM_TABLE: %s", strerror(-r));
	r = vr_setup_vhost(&b->rx, b->vfd, 0, &what);
	if (!r)
		r = vr_setup_vhost(&b->tx, b->vfd, 1, &what);
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
	vr_close(&b->rx);
	vr_close(&b->tx);
}

/* ---- driver-side ring helpers ------------------------------------------------------------- */

static inline bool need_event(uint16_t event, uint16_t new, uint16_t old)
{
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

/* Adds a one-descriptor chain at the buffer chosen by @gpa_of(head); returns the head. */
static int add_one(struct vr *vr, uint64_t gpa, uint32_t len, bool write)
{
	struct vr_seg s = { gpa, len, write };

	return vr_add(vr, &s, 1, 0);
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

static void emit(const char *metric, double v, const char *unit)
{
	printf("BENCH dev=%s case=%s metric=%s value=%.6g unit=%s\n", devname_, case_name, metric, v, unit);
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
		uint16_t old = b->tx.avail_idx, pend;
		uint32_t id, len;
		double t;
		int r;

		/* Refill the ring completely. */
		while (b->tx.nfree) {
			uint16_t hd = next_head(&b->tx);
			uint64_t gpa = big ? TX_BIG_GPA + (hd % NBIG) * TX_BIG_STRIDE
					   : TX_SMALL_GPA + hd * RXBUF;

			push_avail(&b->tx, add_one(&b->tx, gpa, HDR_LEN + flen, false));
		}
		publish_kick(&b->tx, old, &kicks);
		/* Ring full: "stop the queue", interrupt when 3/4 of it is done. */
		pend = b->tx.avail_idx - b->tx.last_used;
		vr_set_used_event(&b->tx, b->tx.last_used + pend * 3 / 4);
		if (vr_used_pending(&b->tx) <= pend * 3 / 4) {
			struct pollfd p = { .fd = b->tx.call, .events = POLLIN };

			r = poll(&p, 1, STALL_MS);
			if (r <= 0 && vr_used_pending(&b->tx) == 0) {
				stalls++;
				fprintf(stderr, "vhost_bench: %s %s: TX stall: no used entry for %d ms "
					"(avail %u, used %u, avail_event %u)\n", devname_, case_name,
					STALL_MS, b->tx.avail_idx, vr_used_idx(&b->tx), vr_avail_event(&b->tx));
				ret = 1;
				break;
			}
		}
		calls += vr_take_calls(&b->tx);
		while ((r = vr_get_used(&b->tx, &id, &len)) == 1)
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

		vr_set_used_event(&b->tx, b->tx.avail_idx - 1);
		while (b->tx.avail_idx != b->tx.last_used && now_s() < end) {
			while (vr_get_used(&b->tx, &id, &len) == 1)
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
	       "inflight_left=%u kicks=%llu calls=%llu stalls=%llu secs=%.3f\n", devname_, case_name,
	       flen, done, s1.rx_pkts - s0.rx_pkts, s1.rx_drop - s0.rx_drop,
	       (uint16_t)(b->tx.avail_idx - b->tx.last_used), kicks, calls, stalls, tm);
	if (b->tx.avail_idx != b->tx.last_used) {
		fprintf(stderr, "vhost_bench: %s %s: %u TX chains never came back\n", devname_,
			case_name, (uint16_t)(b->tx.avail_idx - b->tx.last_used));
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

static void rx_post(struct vr *vr, int n)
{
	while (n-- > 0 && vr->nfree) {
		uint16_t hd = next_head(vr);

		push_avail(vr, add_one(vr, RX_GPA + hd * RXBUF, RXBUF, true));
	}
}

/*
 * Reaps RX used entries, checks their length (and, if @want, their bytes against it), reposts
 * and kicks as needed.
 */
static unsigned int rx_reap(struct vr *vr, size_t flen, const uint8_t *want,
			    unsigned long long *bad, unsigned long long *kicks)
{
	uint16_t old = vr->avail_idx;
	unsigned int got = 0;
	uint32_t id, len;
	int r;

	while ((r = vr_get_used(vr, &id, &len)) == 1) {
		struct virtio_net_hdr_mrg_rxbuf *h = (void *)g_hva(&G, RX_GPA + id * RXBUF, NULL);

		if (len != HDR_LEN + flen || h->num_buffers != 1 ||
		    (want && memcmp((uint8_t *)h + HDR_LEN, want, flen)))
			(*bad)++;
		got++;
	}
	if (r < 0)
		die("RX used element id %u not a posted head", id);
	rx_post(vr, got);
	publish_kick(vr, old, kicks);
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
	publish_kick(&b->rx, 0, &kicks);	/* no backend yet: vhost ignores it, as QEMU's early kick */
	s0 = if_stats(b->tap.name);
	n = rx_backlog(b, flen, dur + warm, &s0, &t_fill);

	if (ioctl(b->vfd, VHOST_NET_SET_BACKEND, &bf) < 0)
		die("NET_SET_BACKEND 0: %s", strerror(errno));
	t_attach = t_last = now_s();
	for (;;) {
		unsigned int got = rx_reap(&b->rx, flen, NULL, &bad, &kicks);
		uint16_t posted;

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
					case_name, landed, n, STALL_MS, b->rx.avail_idx, vr_used_idx(&b->rx));
				ret = 1;
				break;
			}
			fprintf(stderr, "vhost_bench: %s %s: RX: %llu of %llu frames landed, none for %d ms "
				"(%s); kicking\n", devname_, case_name, landed, n, STALL_MS,
				landed ? "stalled" : "attaching the backend to a non-empty tap did not start RX");
			vr_kick(&b->rx);
			kicked = true;
			ret = 1;
			t_last = t;
		}
		/* Interrupt when a quarter of the posted buffers is used. */
		posted = b->rx.avail_idx - b->rx.last_used;
		vr_set_used_event(&b->rx, b->rx.last_used + posted / 4);
		if (vr_used_pending(&b->rx) <= posted / 4) {
			struct pollfd p = { .fd = b->rx.call, .events = POLLIN };

			poll(&p, 1, 50);
		}
		calls += vr_take_calls(&b->rx);
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
	       "kicks=%llu calls=%llu\n", devname_, case_name, flen, n, t_fill, landed, win, tm,
	       t - t_attach, rest,
	       s1.tx_pkts - s0.tx_pkts, s1.tx_drop - s0.tx_drop, bad, kicks, calls);
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
	publish_kick(&b->rx, 0, &rx_kicks);
	s0 = if_stats(b->tap.name);
	n = rx_backlog(b, flen, dur + warm, &s0, &t_fill);

	if (ioctl(b->vfd, VHOST_NET_SET_BACKEND, &bf) < 0)
		die("NET_SET_BACKEND 0: %s", strerror(errno));
	t_attach = t_rx_last = t_tx_last = now_s();
	for (;;) {
		uint16_t old = b->tx.avail_idx, tx_pend, rx_posted;
		unsigned long long tx_was = tx_done;
		unsigned int got;
		uint32_t id, len;
		int r;

		/* TX: refill the ring completely; interrupt when 3/4 of it is done. */
		while (b->tx.nfree) {
			uint16_t hd = next_head(&b->tx);

			push_avail(&b->tx, add_one(&b->tx, TX_SMALL_GPA + hd * RXBUF, HDR_LEN + flen,
						   false));
		}
		publish_kick(&b->tx, old, &tx_kicks);
		tx_pend = b->tx.avail_idx - b->tx.last_used;
		vr_set_used_event(&b->tx, b->tx.last_used + tx_pend * 3 / 4);
		/* RX: interrupt when a quarter of the posted buffers is used. */
		rx_posted = b->rx.avail_idx - b->rx.last_used;
		vr_set_used_event(&b->rx, b->rx.last_used + rx_posted / 4);
		if (vr_used_pending(&b->tx) <= tx_pend * 3 / 4u &&
		    vr_used_pending(&b->rx) <= rx_posted / 4u) {
			struct pollfd p[2] = { { .fd = b->tx.call, .events = POLLIN },
					       { .fd = b->rx.call, .events = POLLIN } };

			poll(p, 2, 50);
		}
		tx_calls += vr_take_calls(&b->tx);
		rx_calls += vr_take_calls(&b->rx);
		while ((r = vr_get_used(&b->tx, &id, &len)) == 1)
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
				"(avail %u, used %u, avail_event %u; RX landed %llu of %llu)\n", devname_,
				case_name, STALL_MS, b->tx.avail_idx, vr_used_idx(&b->tx),
				vr_avail_event(&b->tx), landed, n);
			ret = 1;
			break;
		}
		if (t - t_rx_last > STALL_MS / 1000.0) {
			stalls++;
			if (rx_kicked) {
				fprintf(stderr, "vhost_bench: %s %s: RX stall: %llu of %llu frames landed, "
					"none for %d ms even after a kick (avail %u, used %u; TX completed "
					"%llu)\n", devname_, case_name, landed, n, STALL_MS,
					b->rx.avail_idx, vr_used_idx(&b->rx), tx_done);
				ret = 1;
				break;
			}
			fprintf(stderr, "vhost_bench: %s %s: RX: %llu of %llu frames landed, none for %d ms "
				"(%s); kicking\n", devname_, case_name, landed, n, STALL_MS,
				landed ? "stalled" : "attaching the backend to a non-empty tap did not start RX");
			vr_kick(&b->rx);
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

		vr_set_used_event(&b->tx, b->tx.avail_idx - 1);
		while (b->tx.avail_idx != b->tx.last_used && now_s() < end) {
			while (vr_get_used(&b->tx, &id, &len) == 1)
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
	       "calls_tx=%llu calls_rx=%llu stalls=%llu secs=%.3f attached_secs=%.3f\n", devname_,
	       case_name, flen, n, t_fill, landed, rx_win, rest, s1.tx_pkts - s0.tx_pkts,
	       s1.tx_drop - s0.tx_drop, bad, tx_done, tx_win, s1.rx_pkts - s0.rx_pkts,
	       s1.rx_drop - s0.rx_drop, (uint16_t)(b->tx.avail_idx - b->tx.last_used), tx_kicks,
	       rx_kicks, tx_calls, rx_calls, stalls, tm, t - t_attach);
	if (bad || landed + rest != n) {
		fprintf(stderr, "vhost_bench: %s %s: %llu frames queued, %llu landed in the guest, "
			"%llu left in the tap, %llu bad\n", devname_, case_name, n, landed, rest, bad);
		ret = 1;
	}
	if (b->tx.avail_idx != b->tx.last_used) {
		fprintf(stderr, "vhost_bench: %s %s: %u TX chains never came back\n", devname_,
			case_name, (uint16_t)(b->tx.avail_idx - b->tx.last_used));
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
	publish_kick(&b->rx, 0, &kicks);
	/* No TX interrupts: completions are reaped as we go. */
	vr_set_used_event(&b->tx, 0x8000);
	if (pthread_create(&rs.th, NULL, respond_main, &rs))
		die("pthread_create");
	t_start = now_s() + warm;
	t_end = t_start + dur;
	for (;;) {
		uint16_t old = b->tx.avail_idx, hd;
		uint32_t id, len;
		double t0, t1;

		while (vr_get_used(&b->tx, &id, &len) == 1)
			;
		vr_set_used_event(&b->tx, b->tx.last_used - 1);
		hd = next_head(&b->tx);
		t0 = now_s();
		push_avail(&b->tx, add_one(&b->tx, TX_SMALL_GPA + hd * RXBUF, HDR_LEN + flen, false));
		publish_kick(&b->tx, old, &kicks);
		/* Wait for the echo: interrupt on the next RX used entry. */
		for (;;) {
			struct pollfd p = { .fd = b->rx.call, .events = POLLIN };

			vr_set_used_event(&b->rx, b->rx.last_used);
			if (vr_used_pending(&b->rx))
				break;
			if (poll(&p, 1, STALL_MS) <= 0 && !vr_used_pending(&b->rx)) {
				timeouts++;
				break;
			}
			vr_take_calls(&b->rx);
		}
		t1 = now_s();
		if (timeouts) {
			fprintf(stderr, "vhost_bench: %s %s: no echo within %d ms (tx avail %u used %u, "
				"rx used %u, echoed %llu)\n", devname_, case_name, STALL_MS,
				b->tx.avail_idx, vr_used_idx(&b->tx), vr_used_idx(&b->rx),
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
	       "kicks=%llu secs=%.3f\n", devname_, case_name, flen, trans,
	       (unsigned long long)atomic_load(&rs.echoed), timeouts, bad, kicks, tm);
	return ret || bad;
}

int main(int argc, char **argv)
{
	struct bench b;
	double dur = 3, warm = 0.5;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s DEV tx64|tx1500|tx64k|tx64kraw|tx64kzc|rx64|rx1500|rr64|rr64bp|"
			"bidi64 [SECONDS [WARMUP]]\n",
			argv[0]);
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
	bench_close(&b);
	return r;
}
