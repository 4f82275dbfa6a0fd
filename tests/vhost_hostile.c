// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_hostile: hostile guest input, differential against the C vhost-net.
 *
 * Every case runs on a fresh fd of every device, in a private network namespace,
 * set up as QEMU does (guest.h: three memory regions, 256-entry rings, RX 0 / TX 1,
 * a tap as backend), plus an err eventfd on each queue (VHOST_SET_VRING_ERR). A case
 * puts one bad thing in front of the device and kicks, then records the observable
 * outcome as one line of text:
 *
 *   err tx/rx   whether the queue's err eventfd was signalled (vq_err)
 *   used        the used elements that appeared ({id:len}, raw, not trusted)
 *   wire        the frames that reached the tap (length and a hash)
 *   then        after the case's follow-up (a valid frame posted and kicked without a
 *               reset; or the case's own repair, e.g. remapping memory): did it pass?
 *
 * The first device is the reference: its line must equal the one predicted from
 * drivers/vhost/{vhost,net}.c of Linux 7.3 (where a prediction is written down), and
 * every other device's line must equal the reference's, or a case's stated alternative
 * (a known, explained difference: printed as "KNOWN DIFFERENCE", and it passes; see
 * WHY_XDP). The diagnostics also give the vhost worker's CPU time during each case
 * (vhost-net spins on the queues it leaves stuck without vq_err). After the case, each device
 * gets a VHOST_RESET_OWNER and a fresh setup and must carry one TX and one RX frame
 * byte for byte. At the end, /dev/kmsg must hold no new BUG/WARNING/KASAN/Oops line,
 * and no case may have logged more than a few lines. Every wait is bounded.
 *
 * The cases are the tests of fixture `hostile` of the kernel's kselftest_harness.h, with a
 * variant per device (hostile.vhost_net.<case>, the reference, then
 * hostile.vhost_rs_net.<case>), each in a process and network namespace of its own; a
 * device that is not there skips its tests. `-t <case>` runs one case, `-l` lists them.
 * Prints KTAP (the harness's); exits 1 if any test failed.
 */
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "kselftest_harness.h"
#include "vhost_test.h"
#include "guest.h"
#include "frames.h"

#define F(b)		(1ULL << (b))
#define TMO		5000	/* ms: a wait for something that must come */
#define SETTLE		500	/* ms: to see that nothing (more) comes; TCG is slow */
#define FOLLOW_TMO	1500	/* ms: a follow-up frame that may legitimately be stuck */
#define CASE_ALARM	120	/* s: one case on one device, whatever happens */
#define KMSG_FLOOD	10	/* new kernel log lines one case may cause */
#define MTU		65521
#define HDR		12	/* virtio_net_hdr_mrg_rxbuf: VERSION_1 | MRG_RXBUF */

/*
 * No EVENT_IDX: vhost then writes used->flags on every disable/enable of
 * notifications, which matters for the read-only used ring case, and every used
 * update is followed by a call.
 */
#define FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | \
		  F(VIRTIO_RING_F_INDIRECT_DESC))

enum { R_FAIL, R_PASS, R_SKIP };

static struct guest G;
static char skip_reason[256];
static uint8_t frame[70000], got[70000];

#define FAIL(...) do { ktap_diag(__VA_ARGS__); return R_FAIL; } while (0)

/* ---- one device -------------------------------------------------------------------- */

struct ctx {
	const char *dev, *name;
	int vfd, cap, snd;
	struct tap tap;
	struct vr rx, tx;
	int err[2];			/* err eventfds, by queue index (0 RX, 1 TX) */
	uint64_t features;
	unsigned int slot;		/* rotates TX buffer placement */
	char out[512];			/* the outcome line */
};

static void ctx_close_rings(struct ctx *c)
{
	vr_close(&c->rx);
	vr_close(&c->tx);
	if (c->err[0] >= 0)
		close(c->err[0]);
	if (c->err[1] >= 0)
		close(c->err[1]);
	c->err[0] = c->err[1] = -1;
}

static void ctx_close(struct ctx *c)
{
	if (c->vfd >= 0)
		close(c->vfd);
	if (c->tap.fd >= 0)
		close(c->tap.fd);
	if (c->cap >= 0)
		close(c->cap);
	if (c->snd >= 0)
		close(c->snd);
	ctx_close_rings(c);
	c->vfd = c->tap.fd = c->cap = c->snd = -1;
}

/* SET_OWNER .. SET_BACKEND on an open fd, with fresh rings and eventfds. */
static int ctx_setup(struct ctx *c)
{
	const char *what;
	unsigned int i;
	int r;

	if (vr_init(&c->rx, &G, G_C_GPA) || vr_init(&c->tx, &G, G_C_GPA + 0x4000))
		FAIL("eventfd: %s", strerror(errno));
	c->err[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->err[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->err[0] < 0 || c->err[1] < 0)
		FAIL("eventfd: %s", strerror(errno));
	c->slot = 0;
	if (ioctl(c->vfd, VHOST_SET_OWNER) < 0)
		FAIL("%s: VHOST_SET_OWNER: %s", c->name, errno_name(errno));
	if (ioctl(c->vfd, VHOST_SET_FEATURES, &c->features) < 0)
		FAIL("%s: VHOST_SET_FEATURES %#llx: %s", c->name,
		     (unsigned long long)c->features, errno_name(errno));
	r = g_set_mem_table(&G, c->vfd);
	if (r)
		FAIL("%s: VHOST_SET_MEM_TABLE: %s", c->name, errno_name(-r));
	r = vr_setup_vhost(&c->rx, c->vfd, 0, &what);
	if (!r)
		r = vr_setup_vhost(&c->tx, c->vfd, 1, &what);
	if (r)
		FAIL("%s: %s: %s", c->name, what, errno_name(-r));
	for (i = 0; i < 2; i++) {
		struct vhost_vring_file e = { .index = i, .fd = c->err[i] };
		struct vhost_vring_file b = { .index = i, .fd = c->tap.fd };

		if (ioctl(c->vfd, VHOST_SET_VRING_ERR, &e) < 0)
			FAIL("%s: VHOST_SET_VRING_ERR %u: %s", c->name, i, errno_name(errno));
		if (ioctl(c->vfd, VHOST_NET_SET_BACKEND, &b) < 0)
			FAIL("%s: VHOST_NET_SET_BACKEND %u: %s", c->name, i, errno_name(errno));
	}
	pkt_drain(c->cap);
	return R_PASS;
}

static int cur_sndbuf;		/* TUNSETSNDBUF for the next ctx_open, 0: none */

static int ctx_open(struct ctx *c, const char *dev, uint64_t want)
{
	bool vhost_hdr = want & F(VHOST_NET_F_VIRTIO_NET_HDR);
	const char *what;
	uint64_t have;
	int r;

	memset(c, 0, sizeof(*c));
	c->vfd = c->cap = c->snd = c->tap.fd = -1;
	c->rx.kick = c->rx.call = c->tx.kick = c->tx.call = -1;
	c->err[0] = c->err[1] = -1;
	c->dev = dev;
	c->name = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
	c->features = want;
	c->vfd = open(dev, O_RDWR | O_CLOEXEC);
	if (c->vfd < 0) {
		if (errno == ENOENT) {
			snprintf(skip_reason, sizeof(skip_reason), "%s not present", dev);
			return R_SKIP;
		}
		FAIL("open %s: %s", dev, strerror(errno));
	}
	if (ioctl(c->vfd, VHOST_GET_FEATURES, &have) < 0)
		FAIL("%s: VHOST_GET_FEATURES: %s", c->name, errno_name(errno));
	if (want & ~have) {
		snprintf(skip_reason, sizeof(skip_reason), "%s lacks features %#llx", c->name,
			 (unsigned long long)(want & ~have));
		return R_SKIP;
	}
	memset(G.mem, 0, G_MEM_SIZE);
	r = tap_create(&c->tap, IFF_TAP | IFF_NO_PI | (vhost_hdr ? 0 : IFF_VNET_HDR),
		       vhost_hdr ? 0 : HDR, MTU, &what);
	if (r)
		FAIL("tap: %s: %s", what, strerror(-r));
	if (cur_sndbuf && ioctl(c->tap.fd, TUNSETSNDBUF, &cur_sndbuf) < 0)
		FAIL("TUNSETSNDBUF: %s", strerror(errno));
	c->cap = pkt_capture_open(c->tap.ifindex, false);
	if (c->cap < 0)
		FAIL("capture socket: %s", strerror(-c->cap));
	c->snd = pkt_sender_open();
	if (c->snd < 0)
		FAIL("sender socket: %s", strerror(-c->snd));
	return ctx_setup(c);
}

/*
 * VHOST_RESET_OWNER, then everything a new owner sets up. Frames a case left queued
 * in the tap (RX cases) are read off it while no backend is attached.
 */
static int ctx_reset(struct ctx *c)
{
	if (ioctl(c->vfd, VHOST_RESET_OWNER) < 0)
		FAIL("%s: VHOST_RESET_OWNER: %s", c->name, errno_name(errno));
	while (read(c->tap.fd, got, sizeof(got)) >= 0)
		;
	ctx_close_rings(c);
	memset(G.mem, 0, G_MEM_SIZE);
	return ctx_setup(c);
}

/* ---- frames and buffers ------------------------------------------------------------ */

/* FNV-1a, to name a captured frame in a case's outcome line. */
static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* A TX buffer GPA in region A, a new one per call. */
static uint64_t tx_gpa(struct ctx *c)
{
	return 0x10000 + (c->slot++ % 16) * 0x10000;
}

/* A free descriptor index, taken for good (hostile chains are never freed). */
static unsigned int take_desc(struct vr *vr)
{
	return vr->free_stack[--vr->nfree];
}

static void set_desc(struct vr *vr, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	vr->desc[i] = (struct vring_desc){ addr, len, flags, next };
}

/* Header (all zero: GSO_NONE) + @len frame bytes in one readable descriptor; the head. */
static int tx_add_plain(struct ctx *c, const void *hdr, const uint8_t *f, size_t len)
{
	static const uint8_t zero[HDR];
	uint64_t gpa = tx_gpa(c);
	struct vr_seg s = { gpa, HDR + len, false };

	g_write(&G, gpa, hdr ? hdr : zero, HDR);
	g_write(&G, gpa + HDR, f, len);
	return vr_add(&c->tx, &s, 1, 0);
}

/* Raw bytes (no header of ours) in one readable descriptor; the head. */
static int tx_add_raw(struct ctx *c, const uint8_t *b, size_t len)
{
	uint64_t gpa = tx_gpa(c);
	struct vr_seg s = { gpa, len, false };

	g_write(&G, gpa, b, len);
	return vr_add(&c->tx, &s, 1, 0);
}

/* One 1536-byte device-writable RX buffer in region C; the head. */
static int rx_add_buf(struct ctx *c, uint64_t gpa)
{
	struct vr_seg s = { gpa, 1536, true };

	return vr_add(&c->rx, &s, 1, 0);
}

static uint64_t efd_take(int fd)
{
	uint64_t v = 0;

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* ---- observation -------------------------------------------------------------------- */

/* New used elements since the last look, raw: "{id:len ...}", and consumes them. */
static void used_str(struct vr *vr, char *s, size_t cap)
{
	uint16_t idx = vr_used_idx(vr);
	unsigned int n = 0;
	size_t l;

	l = snprintf(s, cap, "[");
	while (vr->last_used != idx && l < cap) {
		struct vring_used_elem e = vr->used->ring[vr->last_used % vr->num];

		if (n++ < 6)
			l += snprintf(s + l, cap - l, "%s%u:%u", n > 1 ? " " : "", e.id, e.len);
		vr->last_used++;
	}
	if (n > 6 && l < cap)
		l += snprintf(s + l, cap - l, " ...(%u)", n);
	if (l < cap)
		snprintf(s + l, cap - l, "]");
}

/* Frames waiting on the capture socket: "[len/hash ...]". */
static void wire_str(struct ctx *c, char *s, size_t cap)
{
	unsigned int n = 0;
	size_t l = snprintf(s, cap, "[");
	ssize_t k;

	while ((k = pkt_recv(c->cap, got, sizeof(got), 0)) >= 0 && l < cap) {
		if (n++ < 6)
			l += snprintf(s + l, cap - l, "%s%zd/%08x", n > 1 ? " " : "", k,
				      fnv(got, (size_t)k < sizeof(got) ? (size_t)k : sizeof(got)));
	}
	if (n > 6 && l < cap)
		l += snprintf(s + l, cap - l, " ...(%u)", n);
	if (l < cap)
		snprintf(s + l, cap - l, "]");
}

/*
 * Waits SETTLE ms, then appends "err tx=A rx=B used tx=[..] rx=[..] wire=[..]" to
 * the outcome line. Err counts are reported as 0/1 (vq_err may fire more than once per
 * bad chain, e.g. once per retry, which is not worth pinning).
 */
static void observe(struct ctx *c)
{
	char utx[128], urx[128], w[200];
	uint64_t etx, erx;
	size_t l = strlen(c->out);

	sleep_ms(SETTLE);
	etx = efd_take(c->err[1]);
	erx = efd_take(c->err[0]);
	used_str(&c->tx, utx, sizeof(utx));
	used_str(&c->rx, urx, sizeof(urx));
	wire_str(c, w, sizeof(w));
	snprintf(c->out + l, sizeof(c->out) - l, "err tx=%d rx=%d; used tx=%s rx=%s; wire=%s",
		 !!etx, !!erx, utx, urx, w);
}

static void out_add(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(struct ctx *c, const char *fmt, ...)
{
	size_t l = strlen(c->out);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->out + l, sizeof(c->out) - l, fmt, ap);
	va_end(ap);
}

/*
 * Follow-up on TX without a reset: a valid 60-byte frame, kicked. Appends
 * "; then tx=passed|stuck" (passed: byte-exact on the wire within FOLLOW_TMO).
 */
static long long follow_ms;	/* how long the last TX follow-up took to pass */

static void follow_tx(struct ctx *c, unsigned int seed)
{
	long long t0;
	int head;
	ssize_t n;

	frame_eth(frame, 60, seed);
	if (c->tx.nfree == 0) {
		out_add(c, "; then tx=n/a(ring full)");
		return;
	}
	head = tx_add_plain(c, NULL, frame, 60);
	vr_publish(&c->tx, head);
	vr_kick(&c->tx);
	t0 = now_ms();
	n = pkt_recv(c->cap, got, sizeof(got), FOLLOW_TMO);
	follow_ms = now_ms() - t0;
	if (n == 60 && first_diff(got, frame, 60) < 0)
		out_add(c, "; then tx=passed");
	else if (n < 0)
		out_add(c, "; then tx=stuck");
	else
		out_add(c, "; then tx=wrong frame(%zd bytes)", n);
	pkt_drain(c->cap);
}

/*
 * Follow-up on RX without a reset: a good buffer posted and kicked (the case's frame
 * may still be queued in the tap) plus a fresh 60-byte frame sent. Appends
 * "; then rx=N used" (elements appearing within FOLLOW_TMO).
 */
static void follow_rx(struct ctx *c, unsigned int seed)
{
	int head = rx_add_buf(c, G_C_GPA + 0x200000);

	if (head < 0) {
		out_add(c, "; then rx=n/a(ring full)");
		return;
	}
	vr_publish(&c->rx, head);
	vr_kick(&c->rx);
	frame_eth(frame, 60, seed);
	pkt_send(c->snd, c->tap.ifindex, frame, 60);
	vr_wait_used(&c->rx, 1, FOLLOW_TMO);
	out_add(c, "; then rx=%u used", vr_used_pending(&c->rx));
}

/* ---- recovery: one good TX and one good RX frame, byte for byte -------------------- */

static int check_works(struct ctx *c)
{
	struct virtio_net_hdr_mrg_rxbuf *h = (void *)got;
	uint32_t id = 0, len = 0;
	uint64_t gpa = G_C_GPA + 0x300000;
	int head, d;
	ssize_t n;

	frame_eth(frame, 1514, 77);
	head = tx_add_plain(c, NULL, frame, 1514);
	vr_publish(&c->tx, head);
	vr_kick(&c->tx);
	if (!vr_wait_used(&c->tx, 1, TMO))
		FAIL("%s: after reset: TX frame not used within %d ms (err signalled %d)", c->name,
		     TMO, !!efd_take(c->err[1]));
	if (vr_get_used(&c->tx, &id, &len) != 1 || (int)id != head || len != 0)
		FAIL("%s: after reset: TX used {%u, %u}, expected {%d, 0}", c->name, id, len, head);
	n = pkt_recv(c->cap, got, sizeof(got), TMO);
	if (n != 1514 || (d = first_diff(got, frame, 1514)) >= 0)
		FAIL("%s: after reset: TX frame on the wire: %zd bytes%s, expected 1514 exact",
		     c->name, n, n == 1514 ? " differing" : "");

	head = rx_add_buf(c, gpa);
	vr_publish(&c->rx, head);
	vr_kick(&c->rx);
	frame_eth(frame, 60, 78);
	if (pkt_send(c->snd, c->tap.ifindex, frame, 60))
		FAIL("%s: after reset: cannot send into %s", c->name, c->tap.name);
	if (!vr_wait_used(&c->rx, 1, TMO))
		FAIL("%s: after reset: RX frame not used within %d ms (err signalled %d)", c->name,
		     TMO, !!efd_take(c->err[0]));
	if (vr_get_used(&c->rx, &id, &len) != 1 || (int)id != head || len != HDR + 60)
		FAIL("%s: after reset: RX used {%u, %u}, expected {%d, %u}", c->name, id, len, head,
		     HDR + 60);
	g_read(&G, gpa, got, HDR + 60);
	if (h->hdr.flags || h->hdr.gso_type || h->num_buffers != 1)
		FAIL("%s: after reset: RX header flags %#x gso_type %u num_buffers %u", c->name,
		     h->hdr.flags, h->hdr.gso_type, h->num_buffers);
	d = first_diff(got + HDR, frame, 60);
	if (d >= 0)
		FAIL("%s: after reset: RX data differs at byte %d", c->name, d);
	return R_PASS;
}

/* ---- the cases: each leaves its outcome in c->out ---------------------------------- */

/* Publishes @head on TX, kicks, observes, then the TX follow-up. */
static void tx_go(struct ctx *c, int head)
{
	vr_publish(&c->tx, head);
	vr_kick(&c->tx);
	observe(c);
	follow_tx(c, 900);
}

/* a -> b -> a, both valid readable buffers. */
static int case_desc_loop(struct ctx *c)
{
	unsigned int a = take_desc(&c->tx), b = take_desc(&c->tx);

	set_desc(&c->tx, a, 0x10000, 64, VRING_DESC_F_NEXT, b);
	set_desc(&c->tx, b, 0x20000, 64, VRING_DESC_F_NEXT, a);
	tx_go(c, a);
	return R_PASS;
}

/* next = num (256): one past the table. */
static int case_next_oob(struct ctx *c)
{
	unsigned int a = take_desc(&c->tx);

	frame_eth(frame, 60, 1);
	g_write(&G, 0x10000, frame, 60);
	set_desc(&c->tx, a, 0x10000, HDR + 60, VRING_DESC_F_NEXT, VR_NUM);
	tx_go(c, a);
	return R_PASS;
}

/* avail->ring[] holds num (256). */
static int case_head_oob(struct ctx *c)
{
	tx_go(c, VR_NUM);
	return R_PASS;
}

/* avail->idx = num + 1 with nothing behind it; the follow-up first puts idx back. */
static int case_avail_idx_jump(struct ctx *c)
{
	__atomic_store_n(&c->tx.avail->idx, (uint16_t)(VR_NUM + 1), __ATOMIC_RELEASE);
	vr_kick(&c->tx);
	observe(c);
	__atomic_store_n(&c->tx.avail->idx, c->tx.avail_idx, __ATOMIC_RELEASE);
	follow_tx(c, 901);
	return R_PASS;
}

/* An indirect descriptor whose table holds (addr, len, flags, next) entries @t[0..n). */
static int tx_indirect(struct ctx *c, const struct vring_desc *t, unsigned int n,
		       uint64_t tbl_gpa, uint32_t tbl_len)
{
	unsigned int a = take_desc(&c->tx);

	if (n)
		g_write(&G, tbl_gpa, t, n * sizeof(*t));
	set_desc(&c->tx, a, tbl_gpa, tbl_len, VRING_DESC_F_INDIRECT, 0);
	tx_go(c, a);
	return R_PASS;
}

/* A good two-entry indirect table (header, 60-byte frame). */
static void good_table(struct vring_desc *t)
{
	static const uint8_t zero[HDR];

	frame_eth(frame, 60, 2);
	g_write(&G, 0x10000, zero, HDR);
	g_write(&G, 0x20000, frame, 60);
	t[0] = (struct vring_desc){ 0x10000, HDR, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ 0x20000, 60, 0, 0 };
}

static int case_indirect_len_17(struct ctx *c)
{
	struct vring_desc t[2];

	good_table(t);
	return tx_indirect(c, t, 2, G_C_GPA + 0x18000, 17);
}

static int case_indirect_len_0(struct ctx *c)
{
	return tx_indirect(c, NULL, 0, G_C_GPA + 0x18000, 0);
}

static int case_indirect_nested(struct ctx *c)
{
	struct vring_desc t[2];

	good_table(t);
	t[1].flags = VRING_DESC_F_INDIRECT;
	t[1].addr = G_C_GPA + 0x18000;
	t[1].len = 32;
	return tx_indirect(c, t, 2, G_C_GPA + 0x18000, 32);
}

/* The table at GPA 256M, in the hole between region B (ends 4M) and C (1G). */
static int case_indirect_outside(struct ctx *c)
{
	return tx_indirect(c, NULL, 0, 0x10000000, 32);
}

/* One descriptor of length 0 (valid address). */
static int case_zero_len_alone(struct ctx *c)
{
	unsigned int a = take_desc(&c->tx);

	set_desc(&c->tx, a, 0x10000, 0, 0, 0);
	tx_go(c, a);
	return R_PASS;
}

/* header, a 0-length descriptor, the frame: a valid chain, the frame must pass. */
static int case_zero_len_chain(struct ctx *c)
{
	static const uint8_t zero[HDR];
	struct vr_seg s[3] = {
		{ 0x10000, HDR, false }, { 0x30000, 0, false }, { 0x20000, 60, false },
	};

	frame_eth(frame, 60, 3);
	g_write(&G, 0x10000, zero, HDR);
	g_write(&G, 0x20000, frame, 60);
	tx_go(c, vr_add(&c->tx, s, 3, 0));
	return R_PASS;
}

/* addr + len wraps 2^64: addr 2^64 - 4096, len 8192. */
static int case_addr_wrap(struct ctx *c)
{
	unsigned int a = take_desc(&c->tx);

	set_desc(&c->tx, a, 0xfffffffffffff000ULL, 8192, 0, 0);
	tx_go(c, a);
	return R_PASS;
}

/* A 72-byte buffer at GPA 256M: in no region. */
static int case_addr_outside(struct ctx *c)
{
	unsigned int a = take_desc(&c->tx);

	set_desc(&c->tx, a, 0x10000000, HDR + 60, 0, 0);
	tx_go(c, a);
	return R_PASS;
}

/* 72 bytes starting 30 bytes before the end of region B (4M), into the hole. */
static int case_addr_straddle_hole(struct ctx *c)
{
	unsigned int a = take_desc(&c->tx);

	set_desc(&c->tx, a, 2 * G_AB_BOUNDARY - 30, HDR + 60, 0, 0);
	tx_go(c, a);
	return R_PASS;
}

/* Same at the end of region C (1G + 4M), the last region. */
static int case_addr_straddle_end(struct ctx *c)
{
	unsigned int a = take_desc(&c->tx);

	set_desc(&c->tx, a, G_C_GPA + G_C_SIZE - 30, HDR + 60, 0, 0);
	tx_go(c, a);
	return R_PASS;
}

/*
 * All 256 descriptors chained (header, then 255 pieces of 6 bytes); @loop: the
 * last one chains back to the first (257th step).
 */
static int chain_all(struct ctx *c, bool loop)
{
	static const uint8_t zero[HDR];
	unsigned int i;

	frame_eth(frame, 255 * 6, 4);
	g_write(&G, 0x10000, zero, HDR);
	g_write(&G, 0x20000, frame, 255 * 6);
	c->tx.nfree = 0;
	set_desc(&c->tx, 0, 0x10000, HDR, VRING_DESC_F_NEXT, 1);
	for (i = 1; i < VR_NUM; i++)
		set_desc(&c->tx, i, 0x20000 + (i - 1) * 6, 6,
			 i + 1 < VR_NUM || loop ? VRING_DESC_F_NEXT : 0, (i + 1) % VR_NUM);
	tx_go(c, 0);
	return R_PASS;
}

static int case_chain_num(struct ctx *c)
{
	return chain_all(c, false);
}

static int case_chain_num_loop(struct ctx *c)
{
	return chain_all(c, true);
}

/* A TX chain: header + frame readable, then a 64-byte device-writable descriptor. */
static int case_tx_writable(struct ctx *c)
{
	static const uint8_t zero[HDR];
	struct vr_seg s[2] = { { 0x10000, HDR + 60, false }, { 0x30000, 64, true } };

	frame_eth(frame, 60, 5);
	g_write(&G, 0x10000, zero, HDR);
	g_write(&G, 0x10000 + HDR, frame, 60);
	tx_go(c, vr_add(&c->tx, s, 2, 0));
	return R_PASS;
}

/* An RX buffer that is device-readable only; a frame arrives. */
static int case_rx_readable(struct ctx *c)
{
	struct vr_seg s = { G_C_GPA + 0x100000, 1536, false };

	vr_publish(&c->rx, vr_add(&c->rx, &s, 1, 0));
	vr_kick(&c->rx);
	frame_eth(frame, 60, 6);
	pkt_send(c->snd, c->tap.ifindex, frame, 60);
	observe(c);
	follow_rx(c, 902);
	return R_PASS;
}

/* An RX chain: a writable buffer, then a readable one (out after in). */
static int case_rx_out_after_in(struct ctx *c)
{
	struct vr_seg s[2] = { { G_C_GPA + 0x100000, 1536, true },
			       { G_C_GPA + 0x101000, 64, false } };

	vr_publish(&c->rx, vr_add(&c->rx, s, 2, 0));
	vr_kick(&c->rx);
	frame_eth(frame, 60, 7);
	pkt_send(c->snd, c->tap.ifindex, frame, 60);
	observe(c);
	follow_rx(c, 903);
	return R_PASS;
}

/* An RX buffer of length 0 alone; a frame arrives. */
static int case_rx_zero_len(struct ctx *c)
{
	struct vr_seg s = { G_C_GPA + 0x100000, 0, true };

	vr_publish(&c->rx, vr_add(&c->rx, &s, 1, 0));
	vr_kick(&c->rx);
	frame_eth(frame, 60, 8);
	pkt_send(c->snd, c->tap.ifindex, frame, 60);
	observe(c);
	follow_rx(c, 904);
	return R_PASS;
}

/* A TX buffer of @len bytes in all: a zero header (GSO_NONE) cut short, or followed by a runt. */
static int tx_raw_case(struct ctx *c, size_t len)
{
	static uint8_t b[64];

	memset(b, 0, HDR);
	frame_eth(b + HDR, sizeof(b) - HDR, 9);
	tx_go(c, tx_add_raw(c, b, len));
	return R_PASS;
}

static int case_short_8(struct ctx *c)
{
	return tx_raw_case(c, 8);
}

static int case_short_12(struct ctx *c)
{
	return tx_raw_case(c, 12);
}

static int case_short_20(struct ctx *c)
{
	return tx_raw_case(c, 20);
}

/* A 200-byte TCP/IPv4 frame behind header @h. */
static int tx_hdr_case(struct ctx *c, const struct virtio_net_hdr *h)
{
	struct virtio_net_hdr_mrg_rxbuf mh = { .hdr = *h };

	frame_tcp4_nocsum(frame, 200, 10);
	tx_go(c, tx_add_plain(c, &mh, frame, 200));
	return R_PASS;
}

static int case_gso_size_0(struct ctx *c)
{
	struct virtio_net_hdr h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = 54, .gso_size = 0, .csum_start = 34, .csum_offset = 16,
	};

	return tx_hdr_case(c, &h);
}

static int case_gso_hdr_len_past_end(struct ctx *c)
{
	struct virtio_net_hdr h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = 5000, .gso_size = 100, .csum_start = 34, .csum_offset = 16,
	};

	return tx_hdr_case(c, &h);
}

static int case_csum_past_end(struct ctx *c)
{
	struct virtio_net_hdr h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_NONE,
		.csum_start = 190, .csum_offset = 100,
	};

	return tx_hdr_case(c, &h);
}

/* csum_start + csum_offset inside the buffer, but the start beyond the frame's headers. */
static int case_csum_start_past_end(struct ctx *c)
{
	struct virtio_net_hdr h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_NONE,
		.hdr_len = 0, .csum_start = 205, .csum_offset = 0,
	};

	return tx_hdr_case(c, &h);
}

static int case_gso_unknown(struct ctx *c)
{
	struct virtio_net_hdr h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = 0x33,
		.hdr_len = 54, .gso_size = 100, .csum_start = 34, .csum_offset = 16,
	};

	return tx_hdr_case(c, &h);
}

/* 100000 kicks on TX with nothing posted, then one valid frame. */
static int case_kick_flood(struct ctx *c)
{
	long long t0 = now_ms();
	unsigned int i;

	for (i = 0; i < 100000; i++)
		vr_kick(&c->tx);
	ktap_diag("%s: 100000 kicks took %lld ms", c->name, now_ms() - t0);
	observe(c);
	follow_tx(c, 905);
	return R_PASS;
}

/*
 * The memfd part behind region C (both rings) unmapped while attached, a valid frame
 * posted before, then a kick. The follow-up maps it back (same address, same memfd
 * pages: the ring contents are intact) and kicks once more.
 */
static int case_rings_unmapped(struct ctx *c)
{
	uint8_t *p = G.mem + g_regions[2].off;
	ssize_t n;
	int head;

	/*
	 * Attaching the backend woke the worker (the tap is writable). Under load that round
	 * can run late, and if it ran between the publish and the munmap below it would send
	 * the frame before the memory goes: let it finish first (seen once under TCG with
	 * four VMs on two cores).
	 */
	sleep_ms(1000);
	frame_eth(frame, 60, 11);
	head = tx_add_plain(c, NULL, frame, 60);
	vr_publish(&c->tx, head);
	if (munmap(p, G_C_SIZE) < 0)
		FAIL("munmap: %s", strerror(errno));
	vr_kick(&c->tx);
	sleep_ms(SETTLE);
	wire_str(c, (char *)got, 200);
	out_add(c, "unmapped: err tx=%d rx=%d; wire=%s", !!efd_take(c->err[1]),
		!!efd_take(c->err[0]), (char *)got);
	if (mmap(p, G_C_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, G.memfd,
		 g_regions[2].off) != p) {
		ktap_diag("remapping region C: %s", strerror(errno));
		exit(1);	/* nothing further can work */
	}
	out_add(c, "; remapped: used tx=");
	used_str(&c->tx, (char *)got, 128);
	out_add(c, "%s", (char *)got);
	vr_kick(&c->tx);
	n = pkt_recv(c->cap, got, sizeof(got), FOLLOW_TMO);
	out_add(c, "; then (kick again) tx=%s",
		n == 60 && first_diff(got, frame, 60) < 0 ? "pending frame passed" :
		n < 0 ? "stuck" : "wrong frame");
	pkt_drain(c->cap);
	return R_PASS;
}

/*
 * The TX used ring made read-only (mprotect of its page), a valid frame posted and
 * kicked. Then writable again and a second frame.
 */
static int case_used_readonly(struct ctx *c)
{
	uint8_t *page = (uint8_t *)((uintptr_t)c->tx.used & ~4095UL);
	int head;

	frame_eth(frame, 60, 12);
	head = tx_add_plain(c, NULL, frame, 60);
	if (mprotect(page, 4096, PROT_READ) < 0)
		FAIL("mprotect: %s", strerror(errno));
	vr_publish(&c->tx, head);
	vr_kick(&c->tx);
	observe(c);
	if (mprotect(page, 4096, PROT_READ | PROT_WRITE) < 0) {
		ktap_diag("mprotect back: %s", strerror(errno));
		exit(1);
	}
	follow_tx(c, 906);
	sleep_ms(100);
	out_add(c, "; used tx=");
	used_str(&c->tx, (char *)got, 128);
	out_add(c, "%s", (char *)got);
	return R_PASS;
}

/* ---- the table ---------------------------------------------------------------------- */

/*
 * expect: the reference's outcome line as predicted from the 7.3 source; NULL where
 * not predicted (then only the devices are compared). Notes on the predictions:
 *  - vq_err leaves last_avail_idx where it was: the bad chain is retried on every kick,
 *    so the follow-up frame behind it is stuck until a reset;
 *  - TX to a tap goes through vhost_net_build_xdp (tun's sndbuf is INT_MAX): a buffer
 *    shorter than the tap's vnet header, or a NEEDS_CSUM header whose csum_start +
 *    csum_offset + 2 lies past the buffer, is put back (vhost_discard_vq_desc) with no
 *    vq_err, and the queue is re-armed on the always-writable socket: stuck, silently;
 *  - what tun rejects (runt frames, bad GSO) is dropped after the used element is
 *    written (len 0): the queue goes on.
 */
#define STUCK_ERR "err tx=1 rx=0; used tx=[] rx=[]; wire=[]; then tx=stuck"
#define CONSUMED_ERR "err tx=1 rx=0; used tx=[] rx=[]; wire=[]; then tx=passed"
#define DROPPED "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[]; then tx=passed"
#define STUCK_SILENT "err tx=0 rx=0; used tx=[] rx=[]; wire=[]; then tx=stuck"

/*
 * The one family of known differences. With tun's default sndbuf (INT_MAX, which is
 * also what QEMU sets) vhost-net sends small frames through vhost_net_build_xdp and
 * tun_xdp_one, which check less than tun's ordinary write path (tun_vnet_hdr_get):
 * a buffer shorter than the tap's vnet header, or a NEEDS_CSUM header whose
 * csum_start + csum_offset + 2 lies past the buffer, is put back on the avail ring
 * without vq_err and the queue re-armed on the always-writable socket, so the worker
 * spins on it and the queue is stuck until a reset; a GSO header with hdr_len past the
 * end is not checked at all and the frame goes out. Through sendmsg (the same input
 * with a finite sndbuf, the *_sndbuf cases, where the devices must agree) all three
 * are rejected by tun and dropped with a used element, and the queue goes on. A device
 * that always behaves like the sendmsg path is accepted here.
 */
#define WHY_XDP "vhost-net's XDP batch path (tun sndbuf INT_MAX) skips tun_vnet_hdr_get's checks; " \
		"this device drops the frame as vhost-net's sendmsg path does (see the _sndbuf case)"

static const struct hcase {
	const char *name;
	int (*fn)(struct ctx *c);
	uint64_t features;
	const char *expect;
	int sndbuf;		/* TUNSETSNDBUF on the tap; 0: tun's default, INT_MAX */
	const char *alt;	/* another device may give this instead: a known difference */
	const char *why;	/* ... explained */
} cases[] = {
	{ "desc_loop", case_desc_loop, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "desc_next_out_of_range", case_next_oob, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "avail_head_out_of_range", case_head_oob, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "avail_idx_jump", case_avail_idx_jump, FEATURES,
	  "err tx=1 rx=0; used tx=[] rx=[]; wire=[]; then tx=passed", 0, NULL, NULL },
	{ "indirect_len_17", case_indirect_len_17, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "indirect_len_0", case_indirect_len_0, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "indirect_nested", case_indirect_nested, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "indirect_outside_memory", case_indirect_outside, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "zero_len_alone", case_zero_len_alone, FEATURES, CONSUMED_ERR, 0, NULL, NULL },
	{ "zero_len_in_chain", case_zero_len_chain, FEATURES,
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[60/%%]; then tx=passed", 0, NULL, NULL },
	{ "addr_len_wrap_2_64", case_addr_wrap, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "addr_outside_regions", case_addr_outside, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "addr_straddle_into_hole", case_addr_straddle_hole, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "addr_straddle_last_region_end", case_addr_straddle_end, FEATURES, STUCK_ERR, 0, NULL, NULL },
	{ "chain_exactly_num", case_chain_num, FEATURES,
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[1530/%%]; then tx=n/a(ring full)", 0, NULL, NULL },
	{ "chain_num_plus_loop", case_chain_num_loop, FEATURES,
	  "err tx=1 rx=0; used tx=[] rx=[]; wire=[]; then tx=n/a(ring full)", 0, NULL, NULL },
	{ "tx_writable_desc", case_tx_writable, FEATURES, CONSUMED_ERR, 0, NULL, NULL },
	{ "rx_readable_desc", case_rx_readable, FEATURES,
	  "err tx=0 rx=1; used tx=[] rx=[]; wire=[]; then rx=1 used", 0, NULL, NULL },
	{ "rx_out_after_in", case_rx_out_after_in, FEATURES,
	  "err tx=0 rx=1; used tx=[] rx=[]; wire=[]; then rx=0 used", 0, NULL, NULL },
	{ "rx_zero_len_desc", case_rx_zero_len, FEATURES, NULL, 0, NULL, NULL },
	{ "tx_8_bytes_tap_hdr", case_short_8, FEATURES, STUCK_SILENT, 0, DROPPED, WHY_XDP },
	{ "tx_8_bytes_tap_hdr_sndbuf", case_short_8, FEATURES, DROPPED, 1 << 20, NULL, NULL },
	{ "tx_12_bytes_tap_hdr", case_short_12, FEATURES,
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[]; then tx=passed", 0, NULL, NULL },
	{ "tx_20_bytes_tap_hdr", case_short_20, FEATURES,
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[]; then tx=passed", 0, NULL, NULL },
	{ "tx_8_bytes_vhost_hdr", case_short_8, FEATURES | F(VHOST_NET_F_VIRTIO_NET_HDR), CONSUMED_ERR, 0, NULL, NULL },
	{ "tx_12_bytes_vhost_hdr", case_short_12, FEATURES | F(VHOST_NET_F_VIRTIO_NET_HDR), CONSUMED_ERR, 0, NULL, NULL },
	{ "tx_20_bytes_vhost_hdr", case_short_20, FEATURES | F(VHOST_NET_F_VIRTIO_NET_HDR),
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[]; then tx=passed", 0, NULL, NULL },
	{ "hdr_gso_size_0", case_gso_size_0, FEATURES,
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[]; then tx=passed", 0, NULL, NULL },
	{ "hdr_gso_hdr_len_past_end", case_gso_hdr_len_past_end, FEATURES,
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[200/%%]; then tx=passed", 0, DROPPED, WHY_XDP },
	{ "hdr_gso_hdr_len_past_end_sndbuf", case_gso_hdr_len_past_end, FEATURES, DROPPED, 1 << 20,
	  NULL, NULL },
	{ "hdr_csum_past_end", case_csum_past_end, FEATURES, STUCK_SILENT, 0, DROPPED, WHY_XDP },
	{ "hdr_csum_past_end_sndbuf", case_csum_past_end, FEATURES, DROPPED, 1 << 20, NULL, NULL },
	{ "hdr_csum_start_past_frame", case_csum_start_past_end, FEATURES, NULL, 0, NULL, NULL },
	{ "hdr_gso_unknown_type", case_gso_unknown, FEATURES,
	  "err tx=0 rx=0; used tx=[0:0] rx=[]; wire=[]; then tx=passed", 0, NULL, NULL },
	{ "kick_flood", case_kick_flood, FEATURES,
	  "err tx=0 rx=0; used tx=[] rx=[]; wire=[]; then tx=passed", 0, NULL, NULL },
	{ "rings_unmapped", case_rings_unmapped, FEATURES, NULL, 0, NULL, NULL },
	{ "used_ring_readonly", case_used_readonly, FEATURES, NULL, 0, NULL, NULL },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* "%%" in a prediction matches any run of non-space, non-']' characters (a hash). */
static bool expect_match(const char *pat, const char *s)
{
	while (*pat) {
		if (pat[0] == '%' && pat[1] == '%') {
			pat += 2;
			while (*s && *s != ' ' && *s != ']')
				s++;
			continue;
		}
		if (*pat++ != *s++)
			return false;
	}
	return !*s;
}

/* ---- the kernel log ------------------------------------------------------------------ */

static int kmsg_fd = -1;

/* Reads the new kernel log records; counts them and those with a bad word (printed). */
static void kmsg_scan(unsigned int *lines, unsigned int *bad)
{
	static const char *const words[] = { "BUG", "WARNING", "KASAN", "Oops" };
	char rec[8192];
	ssize_t n;
	unsigned int i;

	if (kmsg_fd < 0)
		return;
	for (;;) {
		n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;	/* records overwritten under us: go on with the next */
		if (n <= 0)
			break;
		rec[n] = 0;
		(*lines)++;
		for (i = 0; i < 4; i++) {
			if (strstr(rec, words[i])) {
				char *nl = strchr(rec, '\n');

				if (nl)
					*nl = 0;
				ktap_diag("kmsg: %s", rec);
				(*bad)++;
				break;
			}
		}
	}
}

/* ---- the vhost worker's CPU time ----------------------------------------------------- */

/*
 * CPU time (ms) of this process's threads named vhost-* (vhost_task workers, ours
 * and vhost-net's alike): shows a worker that spins on a queue it cannot advance.
 */
static long long worker_cpu_ms(void)
{
	long long tot = 0, hz = sysconf(_SC_CLK_TCK);
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");
	char path[300], buf[1024];

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		unsigned long long ut, st;
		char *p;
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		if (!strstr(buf, "(vhost-"))
			continue;
		p = strrchr(buf, ')');
		/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&ut, &st) == 2)
			tot += (ut + st) * 1000 / hz;
	}
	closedir(d);
	return tot;
}

/* ---- main ---------------------------------------------------------------------------- */

static const char *cur_case = "?", *cur_dev = "?";

static void on_alarm(int sig)
{
	char b[256];
	int n = snprintf(b, sizeof(b), "# %s on %s: still running after %d s, giving up\n",
			 cur_case, cur_dev, CASE_ALARM);

	(void)sig;
	if (write(1, b, n) < 0) {
		/* nothing to do */
	}
	_exit(1);
}

struct result {
	int r;			/* R_PASS: case ran and the device recovered */
	char out[512];
	unsigned int klines, kbad;
	long long cpu_ms, follow_ms;
};

static void run_one(const struct hcase *hc, const char *dev, struct result *res)
{
	unsigned int klines = 0, kbad = 0;
	struct ctx c;
	int r;

	cur_case = hc->name;
	cur_dev = dev;
	alarm(CASE_ALARM);
	kmsg_scan(&klines, &kbad);	/* forget what came before */
	klines = kbad = 0;
	res->out[0] = 0;
	cur_sndbuf = hc->sndbuf;
	follow_ms = -1;
	res->cpu_ms = -1;
	r = ctx_open(&c, dev, hc->features);
	if (r == R_PASS) {
		long long cpu0 = worker_cpu_ms();

		r = hc->fn(&c);
		res->cpu_ms = worker_cpu_ms() - cpu0;
		memcpy(res->out, c.out, sizeof(res->out));
	}
	res->follow_ms = follow_ms;
	if (r == R_PASS) {
		r = ctx_reset(&c);
		if (r == R_PASS)
			r = check_works(&c);
		if (r != R_PASS)
			ktap_diag("%s: %s: the device does not work after VHOST_RESET_OWNER and a fresh setup",
				  c.name, hc->name);
	}
	ctx_close(&c);
	alarm(0);
	kmsg_scan(&klines, &kbad);
	res->r = r;
	res->klines = klines;
	res->kbad = kbad;
}

/* ---- the cases as tests of kselftest_harness.h ------------------------------------------ */

#define REF "/dev/vhost-net"

/*
 * What the tests of one run share (MAP_SHARED, made before the harness forks them): the
 * reference's outcome of each case, and the kernel log lines counted since the last
 * kmsg_clean test.
 */
static struct {
	char ref[NCASES][512];
	bool have_ref[NCASES];
	unsigned int lines, bad;
} *sh;

static void __attribute__((constructor)) hostile_init(void)
{
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
}

/*
 * Variant vhost_net is the reference: its outcome must match the prediction from the 7.3
 * source. Variant vhost_rs_net must give the reference's outcome (that of the vhost_net
 * test that ran before it, or, run alone with -v, of the reference run first in the same
 * test), or the case's stated alternative.
 */
FIXTURE(hostile) {
};

FIXTURE_VARIANT(hostile) {
	const char *path;
	bool ref;
};

FIXTURE_VARIANT_ADD(hostile, vhost_net) {
	.path = REF,
	.ref = true,
};

FIXTURE_VARIANT_ADD(hostile, vhost_rs_net) {
	.path = "/dev/vhost-rs-net",
};

FIXTURE_SETUP(hostile)
{
	int r;

	if (access(variant->path, F_OK))
		SKIP(return, "%s not present", variant->path);
	signal(SIGALRM, on_alarm);
	ASSERT_EQ(0, unshare(CLONE_NEWNET)) TH_LOG("unshare(CLONE_NEWNET): %s", strerror(errno));
	sysctl_write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	sysctl_write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	r = guest_init(&G);
	ASSERT_EQ(0, r) TH_LOG("guest memory: %s", strerror(-r));
}

FIXTURE_TEARDOWN(hostile)
{
}

/* Runs case @i on @dev; its outcome and timings as diagnostics. True if it passed. */
static bool hostile_run(unsigned int i, const char *dev, struct result *x)
{
	const char *dn = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
	long long t0 = now_ms();

	run_one(&cases[i], dev, x);
	sh->lines += x->klines;
	sh->bad += x->kbad;
	if (x->r == R_SKIP)
		return false;
	ktap_diag("%-12s %s: %s", dn, cases[i].name, x->out);
	ktap_diag("%-12s   (%lld ms in all; worker CPU %lld ms during the case; follow-up frame after %lld ms; %u kmsg lines)",
		  dn, now_ms() - t0, x->cpu_ms, x->follow_ms, x->klines);
	if (x->klines > KMSG_FLOOD) {
		ktap_diag("%s: %s: %u kernel log lines in one case: a flood", dn, cases[i].name,
			  x->klines);
		return false;
	}
	return x->r == R_PASS;
}

static void hostile_case(struct __test_metadata *_metadata,
			 const FIXTURE_VARIANT(hostile) *variant, const char *name)
{
	const char *dn = strrchr(variant->path, '/') + 1, *ref = NULL;
	unsigned int i;
	struct result x;
	bool pass;

	for (i = 0; i < NCASES && strcmp(cases[i].name, name); i++)
		;
	ASSERT_LT(i, NCASES);
	const struct hcase *hc = &cases[i];

	if (!variant->ref && !sh->have_ref[i]) {
		ktap_diag("no outcome of the reference yet: running it first");
		if (hostile_run(i, REF, &x)) {
			memcpy(sh->ref[i], x.out, sizeof(x.out));
			sh->have_ref[i] = true;
		}
	}
	if (!variant->ref && sh->have_ref[i])
		ref = sh->ref[i];
	pass = hostile_run(i, variant->path, &x);
	if (x.r == R_SKIP)
		SKIP(return, "%s", skip_reason);
	if (pass && !ref) {
		/* The reference (or, without one that passed, this device) against the prediction. */
		if (variant->ref) {
			memcpy(sh->ref[i], x.out, sizeof(x.out));
			sh->have_ref[i] = true;
		}
		if (hc->expect && !expect_match(hc->expect, x.out)) {
			ktap_diag("%s: %s: outcome differs from the prediction from the 7.3 source:",
				  dn, hc->name);
			ktap_diag("  predicted: %s", hc->expect);
			ktap_diag("  got:       %s", x.out);
			pass = false;
		}
	} else if (pass && strcmp(ref, x.out) && hc->alt && expect_match(hc->alt, x.out)) {
		ktap_diag("%s: %s: KNOWN DIFFERENCE from the reference (%s): %s", dn, hc->name, ref,
			  hc->why);
	} else if (pass && strcmp(ref, x.out)) {
		ktap_diag("%s: %s: outcome differs from the reference:", dn, hc->name);
		ktap_diag("  reference: %s", ref);
		ktap_diag("  got:       %s", x.out);
		pass = false;
	}
	ASSERT_TRUE(pass) TH_LOG("see the outcome above");
}

/* Two devices, up to CASE_ALARM each: the harness's default of 30 s is too short. */
#define HCASE(n)							\
	TEST_F_TIMEOUT(hostile, n, 2 * CASE_ALARM + 60)			\
	{								\
		hostile_case(_metadata, variant, #n);			\
	}
HCASE(desc_loop)
HCASE(desc_next_out_of_range)
HCASE(avail_head_out_of_range)
HCASE(avail_idx_jump)
HCASE(indirect_len_17)
HCASE(indirect_len_0)
HCASE(indirect_nested)
HCASE(indirect_outside_memory)
HCASE(zero_len_alone)
HCASE(zero_len_in_chain)
HCASE(addr_len_wrap_2_64)
HCASE(addr_outside_regions)
HCASE(addr_straddle_into_hole)
HCASE(addr_straddle_last_region_end)
HCASE(chain_exactly_num)
HCASE(chain_num_plus_loop)
HCASE(tx_writable_desc)
HCASE(rx_readable_desc)
HCASE(rx_out_after_in)
HCASE(rx_zero_len_desc)
HCASE(tx_8_bytes_tap_hdr)
HCASE(tx_8_bytes_tap_hdr_sndbuf)
HCASE(tx_12_bytes_tap_hdr)
HCASE(tx_20_bytes_tap_hdr)
HCASE(tx_8_bytes_vhost_hdr)
HCASE(tx_12_bytes_vhost_hdr)
HCASE(tx_20_bytes_vhost_hdr)
HCASE(hdr_gso_size_0)
HCASE(hdr_gso_hdr_len_past_end)
HCASE(hdr_gso_hdr_len_past_end_sndbuf)
HCASE(hdr_csum_past_end)
HCASE(hdr_csum_past_end_sndbuf)
HCASE(hdr_csum_start_past_frame)
HCASE(hdr_gso_unknown_type)
HCASE(kick_flood)
HCASE(rings_unmapped)
HCASE(used_ring_readonly)

/*
 * Last of each variant: no BUG/WARNING/KASAN/Oops line in the kernel log since the variant's
 * first case (or since the program started), including what came after its last case.
 */
TEST_F(hostile, kmsg_clean)
{
	unsigned int lines = sh->lines, bad = sh->bad;

	sh->lines = sh->bad = 0;
	if (kmsg_fd < 0)
		SKIP(return, "cannot open /dev/kmsg");
	kmsg_scan(&lines, &bad);
	ktap_diag("%u new kernel log lines in all", lines);
	ASSERT_EQ(0U, bad);
}

TEST_HARNESS_MAIN
