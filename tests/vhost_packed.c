// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_packed: the packed virtqueue (VIRTIO_F_RING_PACKED, bit 34), driven from a fake guest
 * with guest.h's packed-ring driver (struct pvr), a tap as the backend of both queues (RX 0,
 * TX 1), rings of PVR_NUM (256) entries.
 *
 * Every case runs on both devices, as the two variants of fixture `packed` (vcase.h). The C
 * vhost_net.ko has no packed engine: there each case checks only that GET_FEATURES lacks bit
 * 34 and that SET_FEATURES with it fails with EOPNOTSUPP, and passes saying so (a difference
 * on purpose). On /dev/vhost-rs-net GET_FEATURES must offer bit 34, and then:
 *   tx, tx_event_idx: 600 frames of 60..1514 bytes as chains of 1, 2 and 3 descriptors and
 *       through indirect tables, in batches up to a full ring, over several laps: each
 *       leaves the tap byte for byte and in order; each buffer comes back used once, at the
 *       used position where it began (the device skips the slots a chain took), length 0;
 *       calls come (ENABLE, or DESC at the batch's last buffer with EVENT_IDX) and none with
 *       the driver area saying DISABLE; kicks only as the device area asks.
 *   rx, rx_mrg: frames sent into the tap land byte for byte after the 12-byte header, with
 *       num_buffers and used lengths right: 2048-byte buffers without MRG_RXBUF, 512-byte
 *       ones with it (a frame spans up to 3), over several laps, with rounds where the guest
 *       is a buffer short (the device must ask for a kick, then take the rest).
 *   base: after traffic, with the backends detached, GET_VRING_BASE gives the driver's own
 *       positions and wrap counters; a position >= num is EINVAL (and changes nothing);
 *       the value read, set again, continues the traffic; so does a new open of the device
 *       given it (what migration does).
 *   hostile_*: rings a driver must not write; the device must refuse them as said, never oops,
 *       and work again after close, reopen and a fresh setup.
 * No case sets NOTIFY_ON_EMPTY: it would make calls with the driver area saying DISABLE.
 * /dev/kmsg must show no BUG/WARNING/KASAN/Oops line during a case. Every wait is bounded.
 * Prints KTAP (the harness's); exits 1 if any test failed.
 */
#include <sys/mman.h>

#include "vhost_case.h"

#define NUM		PVR_NUM
#define RXQ		0
#define TXQ		1
#define SETTLE		300	/* ms: to see that nothing happens */
#define MAX_FRAME	1514
#define RXP		1024	/* frames sent into the tap, not yet received */

#define F_PACKED	F(VIRTIO_F_RING_PACKED)
#define F_EVIDX		F(VIRTIO_RING_F_EVENT_IDX)
#define FEAT		(F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | \
			 F(VIRTIO_RING_F_INDIRECT_DESC) | F_PACKED)

/*
 * Guest memory: the rings in region C, RX buffers behind them, TX buffers across the A/B
 * boundary (the one of id 127 is split by it), TX indirect tables in region B.
 */
#define RX_RING_GPA	G_C_GPA
#define TX_RING_GPA	(G_C_GPA + 0x2000)
#define RX_BUF_GPA(id)	(G_C_GPA + 0x10000 + (uint64_t)(id) * SLOT)
#define TX_BUF_GPA(id)	(G_AB_BOUNDARY - 128 * SLOT + 1000 + (uint64_t)(id) * SLOT)
#define TX_TBL_GPA(id)	(0x300000ULL + (uint64_t)(id) * 1024)

enum { R_GO = 3 };	/* offer_check(): ours, go on with the case */

struct txf {
	uint16_t id, ndesc, len;
	uint32_t seq;
};

struct rxf {
	uint16_t len;
	uint32_t seq;
};

struct pc {
	const char *path, *name;
	int vfd;
	struct tapc t;
	struct pvr rx, tx;
	uint64_t features;
	uint32_t rx_size;		/* bytes per RX buffer */
	uint32_t seq, rng;
	struct txf txq[NUM];		/* TX buffers in flight, in the order made available */
	unsigned int tx_h, tx_t;
	uint16_t rxb[NUM];		/* RX buffer ids posted, in order */
	unsigned int rb_h, rb_t;
	struct rxf rxp[RXP];		/* frames sent into the tap, in order */
	unsigned int rp_h, rp_t;
	unsigned long tx_slots, rx_bufs;	/* slots made available (diagnostics) */
};

static struct pc C;
static uint8_t fbuf[SLOT * 4], gbuf[SLOT * 4];

/* ---- small things ----------------------------------------------------------------------- */

static uint32_t rnd(struct pc *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	return c->rng;
}

static unsigned int rnd_in(struct pc *c, unsigned int lo, unsigned int hi)
{
	return lo + rnd(c) % (hi - lo + 1);
}

/* A frame length: 60 and 1514 often, else anything between. */
static unsigned int rnd_len(struct pc *c)
{
	unsigned int k = rnd(c) % 10;

	return k == 0 ? 60 : k == 1 ? MAX_FRAME : rnd_in(c, 60, MAX_FRAME);
}

static bool ours(const char *path)
{
	return strstr(path, "vhost-rs") != NULL;
}

static const char *efd_name(uint16_t f)
{
	switch (f) {
	case VRING_PACKED_EVENT_FLAG_ENABLE: return "ENABLE";
	case VRING_PACKED_EVENT_FLAG_DISABLE: return "DISABLE";
	case VRING_PACKED_EVENT_FLAG_DESC: return "DESC";
	default: return "reserved";
	}
}

static int get_base(int vfd, unsigned int q, uint32_t *v)
{
	struct vhost_vring_state s = { .index = q };

	if (ioctl(vfd, VHOST_GET_VRING_BASE, &s) < 0)
		return -errno;
	*v = s.num;
	return 0;
}

static int set_base(int vfd, unsigned int q, uint32_t v)
{
	struct vhost_vring_state s = { .index = q, .num = v };

	return ioctl(vfd, VHOST_SET_VRING_BASE, &s) < 0 ? -errno : 0;
}

/* Both halves of a VHOST_{GET,SET}_VRING_BASE value, for diagnostics. */
static const char *base_str(uint32_t v, char *b, size_t n)
{
	snprintf(b, n, "%#x (avail %u wrap %u, used %u wrap %u)", v, v & 0x7fff, (v >> 15) & 1,
		 (v >> 16) & 0x7fff, v >> 31);
	return b;
}

/* What the driver and the device say about queue @q, after a failed wait. */
static void pc_dump(struct pc *c, unsigned int q)
{
	struct pvr *p = q == TXQ ? &c->tx : &c->rx;
	const struct vring_packed_desc *d = &p->desc[p->used_idx];
	char b1[80], b2[80];
	uint16_t ow, fl;
	uint32_t dev = 0;
	int r = get_base(c->vfd, q, &dev);

	pvr_device_event(p, &ow, &fl);
	ktap_diag("%s: %s queue: driver base %s; GET_VRING_BASE %s; device area %s off_wrap %#x; "
		  "driver area %s off_wrap %#x; slot %u at our used position: flags %#x id %#x len %u; "
		  "%u slots free; err eventfd %llu", c->name, q == TXQ ? "TX" : "RX",
		  base_str(pvr_base(p), b1, sizeof(b1)),
		  r ? errno_name(-r) : base_str(dev, b2, sizeof(b2)), efd_name(fl), ow,
		  efd_name(p->drv->flags), p->drv->off_wrap, p->used_idx, d->flags, d->id, d->len,
		  p->slots_free, (unsigned long long)pvr_take_err(p));
}

/* ---- one device, set up as QEMU does for a packed ring -------------------------------- */

static void pc_init(struct pc *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	c->path = path;
	c->name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	c->vfd = c->t.t.fd = c->t.cap = c->t.snd = -1;
	c->rx.kick = c->rx.call = c->rx.err = -1;
	c->tx.kick = c->tx.call = c->tx.err = -1;
	c->rx_size = SLOT;
	c->rng = 2463534242u;
}

static void pc_dev_close(struct pc *c)
{
	if (c->vfd >= 0)
		close(c->vfd);
	c->vfd = -1;
}

static void pc_close(struct pc *c)
{
	pc_dev_close(c);	/* first: it holds the tap's socket and the eventfds */
	tapc_close(&c->t);
	pvr_close(&c->rx);
	pvr_close(&c->tx);
}

static int pc_open_dev(struct pc *c)
{
	c->vfd = open(c->path, O_RDWR | O_CLOEXEC);
	if (c->vfd < 0)
		FAIL("open %s: %s", c->path, strerror(errno));
	return R_PASS;
}

/*
 * Fresh driver rings (pvr_init()) for both queues; the TX ring with its positions at
 * @tx_start, slots before it marked used in the first lap (as the ring would be after
 * @tx_start single-slot buffers).
 */
static int pc_rings(struct pc *c, unsigned int tx_start)
{
	unsigned int i;
	int r;

	pvr_close(&c->rx);
	pvr_close(&c->tx);
	r = pvr_init(&c->rx, &G, RX_RING_GPA, NUM);
	if (!r)
		r = pvr_init(&c->tx, &G, TX_RING_GPA, NUM);
	if (r)
		FAIL("pvr_init: %s", strerror(-r));
	for (i = 0; i < tx_start; i++)
		c->tx.desc[i].flags = pvr_used_bits(true);
	c->tx.avail_idx = c->tx.used_idx = tx_start;
	c->tx_h = c->tx_t = c->rb_h = c->rb_t = 0;
	return R_PASS;
}

/*
 * SET_OWNER, features @want (all must be offered: ours offers every bit we use), memory
 * table, both rings from driver bases @rx_base and @tx_base. No backend.
 */
static int pc_setup(struct pc *c, uint64_t want, uint32_t rx_base, uint32_t tx_base)
{
	const char *what;
	uint64_t have;
	int r;

	c->features = want;
	if (ioctl(c->vfd, VHOST_SET_OWNER) < 0)
		FAIL("%s: VHOST_SET_OWNER: %s", c->name, errno_name(errno));
	if (ioctl(c->vfd, VHOST_GET_FEATURES, &have) < 0)
		FAIL("%s: VHOST_GET_FEATURES: %s", c->name, errno_name(errno));
	if (want & ~have)
		FAIL("%s: does not offer features %#llx (offers %#llx)", c->name,
		     (unsigned long long)(want & ~have), (unsigned long long)have);
	if (ioctl(c->vfd, VHOST_SET_FEATURES, &want) < 0)
		FAIL("%s: VHOST_SET_FEATURES %#llx: %s", c->name, (unsigned long long)want,
		     errno_name(errno));
	r = g_set_mem_table(&G, c->vfd);
	if (r)
		FAIL("%s: VHOST_SET_MEM_TABLE: %s", c->name, errno_name(-r));
	r = pvr_setup_vhost(&c->rx, c->vfd, RXQ, rx_base, &what);
	if (r)
		FAIL("%s: RX queue: %s: %s", c->name, what, errno_name(-r));
	r = pvr_setup_vhost(&c->tx, c->vfd, TXQ, tx_base, &what);
	if (r)
		FAIL("%s: TX queue: %s: %s", c->name, what, errno_name(-r));
	return R_PASS;
}

/* Both queues on @fd (-1: detached). */
static int pc_attach(struct pc *c, int fd)
{
	unsigned int q;
	int r;

	for (q = 0; q < 2; q++) {
		r = set_backend(c->vfd, q, fd);
		if (r)
			FAIL("%s: VHOST_NET_SET_BACKEND queue %u fd %d: %s", c->name, q, fd,
			     errno_name(-r));
	}
	return R_PASS;
}

/* A new open of the device, fresh rings (TX at @tx_start), set up with @want, on the tap. */
static int pc_fresh(struct pc *c, uint64_t want, unsigned int tx_start)
{
	int r;

	pc_dev_close(c);
	r = pc_rings(c, tx_start);
	if (r == R_PASS)
		r = pc_open_dev(c);
	if (r == R_PASS)
		r = pc_setup(c, want, PVR_BASE_START, pvr_base(&c->tx));
	if (r == R_PASS)
		r = pc_attach(c, c->t.t.fd);
	return r;
}

/* The tap, then pc_fresh(). */
static int pc_start(struct pc *c, uint64_t want)
{
	int r = tapc_create(&c->t, 0, 1500);

	return r == R_PASS ? pc_fresh(c, want, 0) : r;
}

/* ---- TX -------------------------------------------------------------------------------- */

enum { SH_1, SH_2, SH_3, SH_IND };

/* Splits [gpa, gpa + tot) into @n (<= tot) segments, each at least one byte. */
static void split_segs(struct pc *c, uint64_t gpa, uint32_t tot, unsigned int n,
		       struct vr_seg *s)
{
	uint32_t at = 0, len;
	unsigned int i;

	if (n == 2 && rnd(c) % 2) {
		/* As Linux: the header, then the frame. */
		s[0] = (struct vr_seg){ gpa, HDR_LEN, false };
		s[1] = (struct vr_seg){ gpa + HDR_LEN, tot - HDR_LEN, false };
		return;
	}
	for (i = 0; i < n; i++) {
		uint32_t left = tot - at, rest = n - 1 - i;

		if (i + 1 == n)
			len = left;
		else if (n > 8)
			len = left / (rest + 1);	/* even: a long chain of short pieces */
		else
			len = rnd_in(c, 1, left - rest);
		s[i] = (struct vr_seg){ gpa + at, len, false };
		at += len;
	}
}

/* Header (zero) and frame @len of sequence @seq into the TX buffer of @id. Its GPA. */
static uint64_t tx_put_frame(unsigned int id, unsigned int len, uint32_t seq)
{
	uint64_t gpa = TX_BUF_GPA(id);

	memset(fbuf, 0, HDR_LEN);
	frame_eth_seq(fbuf + HDR_LEN, len, seq, NULL);
	g_write(&G, gpa, fbuf, HDR_LEN + len);
	return gpa;
}

/*
 * Makes frame @len (the next sequence number) available as @nseg segments, chained or in
 * an indirect table. Its id; -1 if the ring lacks slots or ids; -2 (diagnosed) if pvr_add()
 * did not give the id it said.
 */
static int tx_add(struct pc *c, unsigned int len, unsigned int nseg, bool indirect)
{
	struct vr_seg s[NUM];
	unsigned int ndesc = indirect ? 1 : nseg;
	int id = pvr_peek_id(&c->tx), got;
	uint64_t gpa;

	if (id < 0 || c->tx.slots_free < ndesc)
		return -1;
	gpa = tx_put_frame(id, len, c->seq);
	split_segs(c, gpa, HDR_LEN + len, nseg, s);
	got = pvr_add(&c->tx, s, nseg, indirect ? TX_TBL_GPA(id) : 0);
	if (got != id) {
		ktap_diag("%s: TX: pvr_add() gave id %d, pvr_peek_id() said %d", c->name, got, id);
		return -2;
	}
	c->txq[c->tx_t++ % NUM] = (struct txf){ id, ndesc, len, c->seq };
	c->seq++;
	c->tx_slots += ndesc;
	return id;
}

static int tx_add_shape(struct pc *c, unsigned int len, int shape)
{
	return shape == SH_IND ? tx_add(c, len, rnd_in(c, 1, 4), true) : tx_add(c, len, shape + 1, false);
}

static int rnd_shape(struct pc *c)
{
	unsigned int k = rnd(c) % 20;

	return k < 7 ? SH_1 : k < 12 ? SH_2 : k < 16 ? SH_3 : SH_IND;
}

static unsigned int shape_slots(int shape)
{
	return shape == SH_IND ? 1 : shape + 1;
}

/* Reads the next frame from the capture socket: its length, or -1 (none within @ms). */
static ssize_t wire_next(struct pc *c, int ms)
{
	return pkt_recv(c->t.cap, gbuf, sizeof(gbuf), ms);
}

/* Nothing leaves the tap within @ms. */
static int wire_quiet(struct pc *c, int ms, const char *what)
{
	ssize_t n = wire_next(c, ms);

	if (n >= 0)
		FAIL("%s: %s: a frame of %zd bytes (seq %u) left the tap, expected none", c->name,
		     what, n, n >= 18 ? frame_seq(gbuf) : 0);
	return R_PASS;
}

/*
 * Takes the next @k used TX buffers: each must be the next one made available (in order, at
 * the used position where it began: the device skips the slots a chain took), length 0; and
 * its frame must be the next to leave the tap, byte for byte. Then no more is used.
 */
static int tx_reap(struct pc *c, unsigned int k)
{
	static uint8_t want[MAX_FRAME];
	unsigned int i;

	if (!pvr_wait_used(&c->tx, k, TMO)) {
		unsigned int n = pvr_used_ready(&c->tx, k);

		pc_dump(c, TXQ);
		FAIL("%s: TX: %u of %u buffers used within %d ms", c->name, n, k, TMO);
	}
	for (i = 0; i < k; i++) {
		const struct txf *f = &c->txq[c->tx_h % NUM];
		uint16_t slot = c->tx.used_idx, fl = 0;
		bool wrap = c->tx.used_wrap;
		uint32_t id = 0, len = 0;
		int r = pvr_get_used(&c->tx, &id, &len, &fl), d;
		ssize_t n;

		if (r != 1 || id != f->id || len != 0)
			FAIL("%s: TX: used descriptor at slot %u (wrap %d): id %#x len %u flags %#x; "
			     "expected id %u (frame seq %u, %u slots) len 0%s", c->name, slot, wrap, id,
			     len, fl, f->id, f->seq, f->ndesc,
			     r < 0 ? " (an id not in flight: used twice, or never made available)" : "");
		c->tx_h++;
		n = wire_next(c, TMO);
		if (n < 0)
			FAIL("%s: TX: frame seq %u (%u bytes) used, but not on the wire within %d ms",
			     c->name, f->seq, f->len, TMO);
		frame_eth_seq(want, f->len, f->seq, NULL);
		if (n != f->len)
			FAIL("%s: TX: a frame of %zd bytes (seq %u) on the wire, expected %u bytes (seq %u)",
			     c->name, n, n >= 18 ? frame_seq(gbuf) : 0, f->len, f->seq);
		d = first_diff(gbuf, want, f->len);
		if (d >= 0)
			FAIL("%s: TX: frame seq %u (%u bytes, %u slots) differs on the wire at byte %d: "
			     "%#x, expected %#x", c->name, f->seq, f->len, f->ndesc, d, gbuf[d], want[d]);
	}
	if (pvr_used_ready(&c->tx, 1)) {
		pc_dump(c, TXQ);
		FAIL("%s: TX: a used descriptor at slot %u beyond the buffers made available",
		     c->name, c->tx.used_idx);
	}
	return R_PASS;
}

/*
 * @total frames through TX, of shape @shape_only (or mixed: -1), in batches: small ones,
 * bigger ones, and every eighth filling the ring to its last slot. Each batch: the driver
 * area set first (ENABLE, or with EVENT_IDX DESC at the batch's last buffer; DISABLE for
 * every eighth, which must bring no call), the buffers made available, a kick if the device
 * area asks for one; then all used, all on the wire, a call, no error.
 */
static int tx_run(struct pc *c, unsigned int total, int shape_only)
{
	bool evidx = c->features & F_EVIDX;
	unsigned int done = 0, batch = 0;

	pvr_take_calls(&c->tx);
	while (done < total) {
		unsigned int mode = batch % 8, want, k, slots = 0, i;
		bool fill = mode == 3, disable = mode == 5;
		uint16_t plan_len[NUM], last_idx, o_idx = c->tx.avail_idx;
		bool last_wrap, o_wrap = c->tx.avail_wrap;
		int plan_shape[NUM];
		uint64_t calls;

		/* The batch, planned first: the driver area must name its last buffer before
		 * any of it is made available. */
		want = fill ? NUM : rnd_in(c, 1, mode == 7 ? 100 : 24);
		for (k = 0; k < want && done + k < total; k++) {
			int sh = shape_only >= 0 ? shape_only : rnd_shape(c);

			if (slots + shape_slots(sh) > c->tx.slots_free || k >= c->tx.nfree) {
				if (!fill || slots >= c->tx.slots_free || k >= c->tx.nfree)
					break;
				sh = SH_1;	/* fill up the last slots */
			}
			plan_len[k] = rnd_len(c);
			plan_shape[k] = sh;
			slots += shape_slots(sh);
		}
		if (!k)
			FAIL("%s: TX: no room for a buffer (%u slots, %u ids free, %u in flight)",
			     c->name, c->tx.slots_free, c->tx.nfree, c->tx_t - c->tx_h);
		last_idx = o_idx;
		last_wrap = o_wrap;
		pvr_advance(&last_idx, &last_wrap, slots - shape_slots(plan_shape[k - 1]), NUM);
		if (disable) {
			pvr_set_driver_event(&c->tx, VRING_PACKED_EVENT_FLAG_DISABLE, 0, false);
			sleep_ms(100);		/* a late call of the last batch */
			pvr_take_calls(&c->tx);
		} else {
			pvr_set_driver_event(&c->tx, evidx ? VRING_PACKED_EVENT_FLAG_DESC :
					     VRING_PACKED_EVENT_FLAG_ENABLE, last_idx, last_wrap);
		}
		for (i = 0; i < k; i++) {
			int r = tx_add_shape(c, plan_len[i], plan_shape[i]);

			if (r < 0)
				FAIL("%s: TX: buffer %u of a batch of %u (%u slots) does not fit (%d)",
				     c->name, i, k, slots, r);
		}
		if (pvr_kick_needed(&c->tx, o_idx, o_wrap))
			pvr_kick(&c->tx);
		if (tx_reap(c, k) != R_PASS) {
			ktap_diag("%s: TX: in batch %u (%u buffers, %u slots from slot %u wrap %d), "
				  "%u frames done before it", c->name, batch, k, slots, o_idx, o_wrap,
				  done);
			return R_FAIL;
		}
		if (disable) {
			sleep_ms(50);
			calls = pvr_take_calls(&c->tx);
			if (calls)
				FAIL("%s: TX: %llu used buffer notifications for a batch of %u with the "
				     "driver area saying DISABLE, expected none", c->name,
				     (unsigned long long)calls, k);
		} else if (!pvr_wait_call(&c->tx, TMO)) {
			FAIL("%s: TX: no used buffer notification within %d ms for a batch of %u "
			     "(driver area %s, off_wrap %#x: the last buffer's position)", c->name, TMO,
			     k, evidx ? "DESC" : "ENABLE", pvr_pos(last_idx, last_wrap));
		}
		if (pvr_take_err(&c->tx))
			FAIL("%s: TX: the err eventfd was signalled during valid traffic (batch %u)",
			     c->name, batch);
		done += k;
		batch++;
	}
	return R_PASS;
}

/* ---- RX -------------------------------------------------------------------------------- */

/*
 * Whether the device area asks for a kick for a buffer made available at our avail position
 * (ENABLE, or DESC naming it): what a device out of buffers must say.
 */
static bool device_waits(const struct pvr *p)
{
	uint16_t off_wrap, flags;

	pvr_device_event(p, &off_wrap, &flags);
	return flags == VRING_PACKED_EVENT_FLAG_ENABLE ||
	       (flags == VRING_PACKED_EVENT_FLAG_DESC &&
		off_wrap == pvr_pos(p->avail_idx, p->avail_wrap));
}

/* The buffers a frame of @len takes. */
static unsigned int rx_nbufs(const struct pc *c, unsigned int len)
{
	if (!(c->features & F(VIRTIO_NET_F_MRG_RXBUF)))
		return 1;
	return (HDR_LEN + len + c->rx_size - 1) / c->rx_size;
}

/* Posts @n writable buffers of rx_size bytes, one descriptor each, filled with 0xa5. */
static int rx_post(struct pc *c, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		int id = pvr_peek_id(&c->rx), got;
		struct vr_seg s;

		if (id < 0)
			FAIL("%s: RX: no free id (%u buffers posted)", c->name, c->rb_t - c->rb_h);
		s = (struct vr_seg){ RX_BUF_GPA(id), c->rx_size, true };
		memset(g_hva(&G, s.gpa, NULL), 0xa5, c->rx_size);
		got = pvr_add(&c->rx, &s, 1, 0);
		if (got != id)
			FAIL("%s: RX: pvr_add() gave %d, expected id %d (%u slots free)", c->name, got,
			     id, c->rx.slots_free);
		c->rxb[c->rb_t++ % NUM] = id;
		c->rx_bufs++;
	}
	return R_PASS;
}

/* Sends a frame of @len (the next sequence number) into the tap. */
static int rx_send(struct pc *c, unsigned int len)
{
	int r;

	if (c->rp_t - c->rp_h >= RXP)
		FAIL("%s: RX: too many frames pending (test bug)", c->name);
	frame_eth_seq(fbuf, len, c->seq, NULL);
	r = pkt_send(c->t.snd, c->t.t.ifindex, fbuf, len);
	if (r)
		FAIL("%s: RX: sending %u bytes into %s: %s", c->name, len, c->t.t.name, strerror(-r));
	c->rxp[c->rp_t++ % RXP] = (struct rxf){ len, c->seq };
	c->seq++;
	return R_PASS;
}

/*
 * Takes the next frame sent: in the next rx_nbufs() buffers posted, each used in order
 * with WRITE and the length it holds (rx_size but the last), the header flags 0 or
 * DATA_VALID, GSO_NONE, num_buffers right, the frame byte for byte after it.
 */
static int rx_recv(struct pc *c)
{
	static uint8_t want[MAX_FRAME];
	const struct rxf f = c->rxp[c->rp_h % RXP];
	unsigned int nb = rx_nbufs(c, f.len), total = HDR_LEN + f.len, at = 0, b;
	struct virtio_net_hdr_mrg_rxbuf h;
	int d;

	if (c->rp_h == c->rp_t)
		FAIL("%s: RX: no frame sent (test bug)", c->name);
	for (b = 0; b < nb; b++) {
		uint16_t slot = c->rx.used_idx, fl = 0, want_id = c->rxb[c->rb_h % NUM];
		uint32_t id = 0, len = 0, exp = total - at < c->rx_size ? total - at : c->rx_size;
		bool wrap = c->rx.used_wrap;
		int r;

		if (c->rb_h == c->rb_t)
			FAIL("%s: RX: no buffer posted (test bug)", c->name);
		if (!pvr_wait_used(&c->rx, 1, TMO)) {
			pc_dump(c, RXQ);
			FAIL("%s: RX: frame seq %u (%u bytes): buffer %u of %u not used within %d ms",
			     c->name, f.seq, f.len, b + 1, nb, TMO);
		}
		r = pvr_get_used(&c->rx, &id, &len, &fl);
		if (r != 1 || id != want_id || len != exp || !(fl & VRING_DESC_F_WRITE))
			FAIL("%s: RX: frame seq %u (%u bytes), buffer %u of %u: used descriptor at slot "
			     "%u (wrap %d): id %#x len %u flags %#x; expected id %u len %u with WRITE%s",
			     c->name, f.seq, f.len, b + 1, nb, slot, wrap, id, len, fl, want_id, exp,
			     r < 0 ? " (an id not in flight)" : "");
		c->rb_h++;
		g_read(&G, RX_BUF_GPA(id), gbuf + at, len);
		if (b == 0) {
			memcpy(&h, gbuf, HDR_LEN);
			if (h.num_buffers != nb || h.hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE ||
			    (h.hdr.flags & ~VIRTIO_NET_HDR_F_DATA_VALID))
				FAIL("%s: RX: frame seq %u (%u bytes): header flags %#x gso_type %u "
				     "num_buffers %u; expected flags 0 or DATA_VALID, GSO_NONE, "
				     "num_buffers %u", c->name, f.seq, f.len, h.hdr.flags,
				     h.hdr.gso_type, h.num_buffers, nb);
		}
		at += len;
	}
	c->rp_h++;
	frame_eth_seq(want, f.len, f.seq, NULL);
	d = first_diff(gbuf + HDR_LEN, want, f.len);
	if (d >= 0)
		FAIL("%s: RX: frame seq %u (%u bytes in %u buffers) differs at byte %d: %#x, expected "
		     "%#x (the sequence number there: %u)", c->name, f.seq, f.len, nb, d,
		     gbuf[HDR_LEN + d], want[d], frame_seq(gbuf + HDR_LEN));
	return R_PASS;
}

/*
 * @total frames into the tap, in rounds: the driver area set first (ENABLE, or with
 * EVENT_IDX DESC at the round's last buffer; DISABLE in every sixth, which must bring no
 * call), exactly the buffers the round's frames take posted (a kick if the device area asks),
 * the frames sent, all received. Every sixth round fills the ring; in every sixth the guest
 * posts one buffer too few (its last frame 1514 bytes): the frames before it come, then
 * nothing is used, the device area must ask for a kick for the buffer posted then, and the
 * last frame comes.
 */
static int rx_run(struct pc *c, unsigned int total)
{
	bool evidx = c->features & F_EVIDX;
	unsigned int done = 0, round = 0;

	pvr_take_calls(&c->rx);
	while (done < total) {
		unsigned int mode = round % 6, m, need = 0, post, i;
		bool starve = mode == 2, disable = mode == 4, full = mode == 5;
		uint16_t lens[NUM], idx = c->rx.used_idx, o_idx;
		bool wrap = c->rx.used_wrap, o_wrap;
		uint64_t calls;

		m = full ? NUM : rnd_in(c, 1, 32);
		if (m > total - done)
			m = total - done;
		for (i = 0; i < m; i++) {
			unsigned int len = starve && i + 1 == m ? MAX_FRAME : rnd_len(c);
			unsigned int nb = rx_nbufs(c, len);

			if (need + nb > NUM)
				break;
			lens[i] = len;
			need += nb;
		}
		m = i;
		if (disable) {
			pvr_set_driver_event(&c->rx, VRING_PACKED_EVENT_FLAG_DISABLE, 0, false);
			sleep_ms(100);
			pvr_take_calls(&c->rx);
		} else {
			pvr_advance(&idx, &wrap, need - 1, NUM);
			pvr_set_driver_event(&c->rx, evidx ? VRING_PACKED_EVENT_FLAG_DESC :
					     VRING_PACKED_EVENT_FLAG_ENABLE, idx, wrap);
		}
		o_idx = c->rx.avail_idx;
		o_wrap = c->rx.avail_wrap;
		post = starve ? need - 1 : need;
		if (rx_post(c, post) != R_PASS)
			return R_FAIL;
		if (post && pvr_kick_needed(&c->rx, o_idx, o_wrap))
			pvr_kick(&c->rx);
		for (i = 0; i < m; i++)
			if (rx_send(c, lens[i]) != R_PASS)
				return R_FAIL;
		for (i = 0; i + (starve ? 1 : 0) < m; i++) {
			if (rx_recv(c) != R_PASS) {
				ktap_diag("%s: RX: frame %u of round %u (%u frames, %u buffers%s), %u "
					  "frames done before it", c->name, i, round, m, need,
					  starve ? ", one short" : "", done);
				return R_FAIL;
			}
		}
		if (starve) {
			/* Starved, the device must ask for a kick for a buffer at our avail
			 * position (without waiting to see it, the check below could pass
			 * on a device that has not yet looked). */
			long long end = now_ms() + TMO;

			while (!device_waits(&c->rx)) {
				if (now_ms() > end) {
					pc_dump(c, RXQ);
					FAIL("%s: RX: a frame of %u bytes waits, %u of the %u buffers it "
					     "needs are posted, and the device area does not ask for a "
					     "kick for one at slot %u (wrap %d) within %d ms", c->name,
					     MAX_FRAME, rx_nbufs(c, MAX_FRAME) - 1,
					     rx_nbufs(c, MAX_FRAME), c->rx.avail_idx, c->rx.avail_wrap,
					     TMO);
				}
				sleep_ms(1);
			}
			sleep_ms(50);
			if (pvr_used_ready(&c->rx, 1)) {
				pc_dump(c, RXQ);
				FAIL("%s: RX: a buffer used for a frame of %u bytes that needs %u buffers, "
				     "of which only %u were posted", c->name, MAX_FRAME,
				     rx_nbufs(c, MAX_FRAME), rx_nbufs(c, MAX_FRAME) - 1);
			}
			o_idx = c->rx.avail_idx;
			o_wrap = c->rx.avail_wrap;
			if (rx_post(c, 1) != R_PASS)
				return R_FAIL;
			if (!pvr_kick_needed(&c->rx, o_idx, o_wrap)) {
				pc_dump(c, RXQ);
				FAIL("%s: RX: the device ran out of buffers but its device area does not "
				     "ask for a kick for the buffer posted at slot %u (wrap %d)", c->name,
				     o_idx, o_wrap);
			}
			pvr_kick(&c->rx);
			if (rx_recv(c) != R_PASS) {
				ktap_diag("%s: RX: the last frame of round %u, after the missing buffer "
					  "was posted", c->name, round);
				return R_FAIL;
			}
		}
		if (disable) {
			sleep_ms(50);
			calls = pvr_take_calls(&c->rx);
			if (calls)
				FAIL("%s: RX: %llu used buffer notifications for %u frames with the "
				     "driver area saying DISABLE, expected none", c->name,
				     (unsigned long long)calls, m);
		} else if (!pvr_wait_call(&c->rx, TMO)) {
			FAIL("%s: RX: no used buffer notification within %d ms for %u frames in %u "
			     "buffers (driver area %s, off_wrap %#x: the last buffer's position)",
			     c->name, TMO, m, need, evidx ? "DESC" : "ENABLE", pvr_pos(idx, wrap));
		}
		if (pvr_take_err(&c->rx))
			FAIL("%s: RX: the err eventfd was signalled during valid traffic (round %u)",
			     c->name, round);
		done += m;
		round++;
	}
	return R_PASS;
}

/* ---- the cases' frame ---------------------------------------------------------------- */

/*
 * What every case checks first. vhost_net.ko: no bit 34 in GET_FEATURES, SET_FEATURES with
 * it EOPNOTSUPP; then the case passes (R_PASS). Ours: bit 34 offered (R_GO), else R_FAIL.
 */
static int offer_check(const char *path)
{
	const char *name = strrchr(path, '/') + 1;
	uint64_t have, want = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | F_PACKED;
	int fd = open(path, O_RDWR | O_CLOEXEC), r, e;

	if (fd < 0) {
		if (errno == ENOENT)
			CASE_SKIP("%s not present", path);
		FAIL("open %s: %s", path, strerror(errno));
	}
	if (ioctl(fd, VHOST_GET_FEATURES, &have) < 0) {
		e = errno;
		close(fd);
		FAIL("%s: VHOST_GET_FEATURES: %s", name, errno_name(e));
	}
	if (ours(path)) {
		close(fd);
		if (!(have & F_PACKED))
			FAIL("%s: GET_FEATURES %#llx lacks VIRTIO_F_RING_PACKED (bit 34)", name,
			     (unsigned long long)have);
		return R_GO;
	}
	if (have & F_PACKED) {
		close(fd);
		FAIL("%s: GET_FEATURES %#llx offers VIRTIO_F_RING_PACKED (bit 34): 7.3's "
		     "vhost_net.ko has no packed engine", name, (unsigned long long)have);
	}
	r = ioctl(fd, VHOST_SET_FEATURES, &want);
	e = errno;
	close(fd);
	if (r == 0)
		FAIL("%s: SET_FEATURES %#llx (with bit 34) succeeded, expected EOPNOTSUPP", name,
		     (unsigned long long)want);
	if (e != EOPNOTSUPP)
		FAIL("%s: SET_FEATURES %#llx (with bit 34): %s, expected EOPNOTSUPP", name,
		     (unsigned long long)want, errno_name(e));
	ktap_diag("%s: vhost_net.ko offers no packed ring (a difference on purpose)", name);
	return R_PASS;
}

/* Runs @body on our device after offer_check(), the kernel log clean through it. */
static int packed_case(const char *path, int (*body)(struct pc *c))
{
	int r = offer_check(path), kfd;

	if (r != R_GO)
		return r;
	kfd = kmsg_open();
	pc_init(&C, path);
	r = body(&C);
	pc_close(&C);
	if (kmsg_check(kfd, C.name))
		r = R_FAIL;
	return r;
}

/* Discards the frames waiting in the tap for a reader (the device is closed). */
static void tap_drain(struct pc *c)
{
	while (read(c->t.t.fd, gbuf, sizeof(gbuf)) > 0)
		;
	c->rp_h = c->rp_t;
}

/*
 * After a hostile step: the device closed, opened again and set up afresh (same features)
 * must pass frames both ways.
 */
static int recover(struct pc *c, const char *after)
{
	int r;

	pc_dev_close(c);
	pkt_drain(c->t.cap);
	tap_drain(c);
	r = pc_fresh(c, c->features, 0);
	if (r == R_PASS)
		r = tx_run(c, 4, -1);
	if (r == R_PASS)
		r = rx_run(c, 4);
	if (r != R_PASS)
		ktap_diag("%s: the device does not work after %s, closed, opened again and set up "
			  "afresh", c->name, after);
	return r;
}

/* The err eventfd of queue @p within TMO. */
static int expect_err(struct pc *c, struct pvr *p, const char *what)
{
	if (!pvr_wait_err(p, TMO))
		FAIL("%s: %s: the err eventfd was not signalled within %d ms", c->name, what, TMO);
	return R_PASS;
}

/*
 * Writes a chain of @n segments at slots @slot.. (not across the end of the ring) as made
 * available in lap @wrap, head last: NEXT on all but the last, @id on the last, @id |
 * PVR_JUNK_ID on the others. Bypasses pvr_add(): our positions and ids do not move.
 */
static void put_chain(struct pc *c, unsigned int slot, const struct vr_seg *s, unsigned int n,
		      uint16_t id, bool wrap)
{
	unsigned int i;

	for (i = n; i-- > 0;)
		pvr_put_desc(&c->tx, slot + i, s[i].gpa, s[i].len,
			     i + 1 < n ? id | PVR_JUNK_ID : id,
			     pvr_avail_bits(wrap) | (i + 1 < n ? VRING_DESC_F_NEXT : 0));
}

/* ---- a. TX ----------------------------------------------------------------------------- */

static int tx_body(struct pc *c, uint64_t features)
{
	int r = pc_start(c, features);

	if (r == R_PASS)
		r = tx_run(c, 600, -1);
	if (r == R_PASS)
		r = wire_quiet(c, SETTLE, "TX: after the 600 frames");
	if (r == R_PASS)
		ktap_diag("%s: TX: 600 frames in %lu slots: %lu laps of the ring", c->name,
			  c->tx_slots, c->tx_slots / NUM);
	return r;
}

static int body_tx(struct pc *c)
{
	return tx_body(c, FEAT);
}

static int body_tx_event_idx(struct pc *c)
{
	return tx_body(c, FEAT | F_EVIDX);
}

/* ---- b. RX ----------------------------------------------------------------------------- */

static int body_rx(struct pc *c)
{
	int r = pc_start(c, FEAT & ~F(VIRTIO_NET_F_MRG_RXBUF));

	c->rx_size = SLOT;
	if (r == R_PASS)
		r = rx_run(c, 600);
	if (r == R_PASS)
		ktap_diag("%s: RX: 600 frames in %lu buffers of %u bytes: %lu laps of the ring",
			  c->name, c->rx_bufs, c->rx_size, c->rx_bufs / NUM);
	return r;
}

static int body_rx_mrg(struct pc *c)
{
	int r = pc_start(c, FEAT | F_EVIDX);

	c->rx_size = 512;
	if (r == R_PASS)
		r = rx_run(c, 300);
	if (r == R_PASS)
		ktap_diag("%s: RX: 300 frames in %lu buffers of %u bytes: %lu laps of the ring",
			  c->name, c->rx_bufs, c->rx_size, c->rx_bufs / NUM);
	return r;
}

/* ---- c. base --------------------------------------------------------------------------- */

/*
 * With the backends detached, after traffic: GET_VRING_BASE of both queues gives the
 * driver's positions (into @got); a position >= num is EINVAL and changes nothing; the
 * value read set again reads back the same.
 */
static int base_check(struct pc *c, uint32_t *got, const char *when)
{
	static const char *const qn[2] = { "RX", "TX" };
	char b1[80], b2[80];
	unsigned int q, i;
	int r;

	if (pc_attach(c, -1) != R_PASS)
		return R_FAIL;
	for (q = 0; q < 2; q++) {
		struct pvr *p = q == TXQ ? &c->tx : &c->rx;
		uint32_t want = pvr_base(p), v = 0;
		const uint32_t bad[] = {
			pvr_pos(NUM, true) | (uint32_t)pvr_pos(0, true) << 16,
			pvr_pos(0, true) | (uint32_t)pvr_pos(NUM, true) << 16,
			pvr_pos(NUM, false) | (uint32_t)pvr_pos(NUM, false) << 16,
			0x7fff | (uint32_t)pvr_pos(1, true) << 16,
		};

		r = get_base(c->vfd, q, &v);
		if (r)
			FAIL("%s: %s: %s queue: VHOST_GET_VRING_BASE: %s", c->name, when, qn[q],
			     errno_name(-r));
		if (v != want)
			FAIL("%s: %s: %s queue: GET_VRING_BASE %s, expected the driver's %s", c->name,
			     when, qn[q], base_str(v, b1, sizeof(b1)), base_str(want, b2, sizeof(b2)));
		got[q] = v;
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r = set_base(c->vfd, q, bad[i]);
			if (r != -EINVAL)
				FAIL("%s: %s: %s queue: SET_VRING_BASE %s: %s, expected EINVAL (a "
				     "position >= num %u)", c->name, when, qn[q],
				     base_str(bad[i], b1, sizeof(b1)), errno_name(-r), NUM);
			r = get_base(c->vfd, q, &v);
			if (r || v != want)
				FAIL("%s: %s: %s queue: after a refused SET_VRING_BASE %#x, "
				     "GET_VRING_BASE %s %s, expected %s", c->name, when, qn[q], bad[i],
				     errno_name(-r), base_str(v, b1, sizeof(b1)),
				     base_str(want, b2, sizeof(b2)));
		}
		r = set_base(c->vfd, q, want);
		if (r)
			FAIL("%s: %s: %s queue: SET_VRING_BASE %s (the value read): %s", c->name,
			     when, qn[q], base_str(want, b1, sizeof(b1)), errno_name(-r));
		r = get_base(c->vfd, q, &v);
		if (r || v != want)
			FAIL("%s: %s: %s queue: SET_VRING_BASE %#x, then GET_VRING_BASE %s %s",
			     c->name, when, qn[q], want, errno_name(-r), base_str(v, b1, sizeof(b1)));
	}
	return R_PASS;
}

static int body_base(struct pc *c)
{
	uint32_t b[2];
	int r = pc_start(c, FEAT | F_EVIDX);

	if (r == R_PASS)
		r = tx_run(c, 150, -1);
	/* Single slots until TX is in a lap of wrap counter 0 (RX is after 280 buffers). */
	if (r == R_PASS && c->tx.avail_wrap)
		r = tx_run(c, NUM - c->tx.avail_idx + 20, SH_1);
	if (r == R_PASS)
		r = rx_run(c, 280);
	if (r == R_PASS)
		r = base_check(c, b, "after traffic");
	if (r == R_PASS && (c->tx.avail_wrap || c->rx.avail_wrap))
		FAIL("%s: test bug: the queues were to be in a lap of wrap counter 0 (TX %d, RX %d)",
		     c->name, c->tx.avail_wrap, c->rx.avail_wrap);
	/* The same device, the base set again, attached again. */
	if (r == R_PASS)
		r = pc_attach(c, c->t.t.fd);
	if (r == R_PASS)
		r = tx_run(c, 60, -1);
	if (r == R_PASS)
		r = rx_run(c, 60);
	if (r == R_PASS)
		r = base_check(c, b, "after more traffic");
	/* A new open of the device, set up with the bases read: as a migration's target. */
	if (r == R_PASS) {
		pc_dev_close(c);
		r = pc_open_dev(c);
	}
	if (r == R_PASS)
		r = pc_setup(c, c->features, b[RXQ], b[TXQ]);
	if (r == R_PASS)
		r = pc_attach(c, c->t.t.fd);
	if (r == R_PASS)
		r = tx_run(c, 60, -1);
	if (r == R_PASS)
		r = rx_run(c, 60);
	if (r == R_PASS)
		r = base_check(c, b, "on a new open given the bases");
	if (r != R_PASS)
		ktap_diag("%s: base: the driver's TX base %#x, RX base %#x", c->name,
			  pvr_base(&c->tx), pvr_base(&c->rx));
	return r;
}

/* ---- d. hostile ------------------------------------------------------------------------ */

/* (1) A descriptor with AVAIL == USED (either way) is not available: not taken. */
static int body_hostile_avail_eq_used(struct pc *c)
{
	static const uint16_t fl[2] = { PVR_F_AVAIL | PVR_F_USED, 0 };
	uint32_t v = 0;
	unsigned int i;
	uint64_t gpa;
	char what[96];
	int r = pc_start(c, FEAT | F_EVIDX);

	if (r != R_PASS)
		return r;
	sleep_ms(200);		/* the round that attaching started */
	gpa = tx_put_frame(5, 100, 999);
	for (i = 0; i < 2; i++) {
		const struct vring_packed_desc *d = &c->tx.desc[0];

		snprintf(what, sizeof(what), "TX descriptor at slot 0 with flags %#x (AVAIL == USED)",
			 fl[i]);
		pvr_put_desc(&c->tx, 0, gpa, HDR_LEN + 100, 5, fl[i]);
		pvr_kick(&c->tx);
		if (wire_quiet(c, SETTLE, what) != R_PASS)
			return R_FAIL;
		if (d->len != HDR_LEN + 100 || d->id != 5 || d->flags != fl[i])
			FAIL("%s: %s: rewritten to id %u len %u flags %#x: taken and used", c->name,
			     what, d->id, d->len, d->flags);
		r = get_base(c->vfd, TXQ, &v);
		if (r || v != PVR_BASE_START)
			FAIL("%s: %s: GET_VRING_BASE %s %#x, expected %#x (nothing taken)", c->name,
			     what, errno_name(-r), v, PVR_BASE_START);
	}
	/* RX: a frame waits in the tap while the only buffer has AVAIL == USED. */
	snprintf(what, sizeof(what), "RX descriptor at slot 0 with flags %#x (AVAIL == USED)",
		 VRING_DESC_F_WRITE | fl[0]);
	pvr_put_desc(&c->rx, 0, RX_BUF_GPA(9), SLOT, 9, VRING_DESC_F_WRITE | fl[0]);
	pvr_kick(&c->rx);
	if (rx_send(c, 200) != R_PASS)
		return R_FAIL;
	sleep_ms(SETTLE);
	if (c->rx.desc[0].len != SLOT || c->rx.desc[0].id != 9 ||
	    c->rx.desc[0].flags != (VRING_DESC_F_WRITE | fl[0]))
		FAIL("%s: %s: rewritten to id %u len %u flags %#x: taken and used", c->name, what,
		     c->rx.desc[0].id, c->rx.desc[0].len, c->rx.desc[0].flags);
	r = get_base(c->vfd, RXQ, &v);
	if (r || v != PVR_BASE_START)
		FAIL("%s: %s: GET_VRING_BASE %s %#x, expected %#x (nothing taken)", c->name, what,
		     errno_name(-r), v, PVR_BASE_START);
	/* Made available properly, in the same slots: the waiting frame comes, TX works. */
	pvr_set_driver_event(&c->rx, VRING_PACKED_EVENT_FLAG_ENABLE, 0, true);
	if (rx_post(c, 1) != R_PASS)
		return R_FAIL;
	pvr_kick(&c->rx);
	if (rx_recv(c) != R_PASS || tx_run(c, 3, -1) != R_PASS) {
		ktap_diag("%s: the same slots, then made available properly", c->name);
		return R_FAIL;
	}
	return recover(c, "descriptors with AVAIL == USED");
}

/*
 * (2) A chain whose head is available but whose next descriptor carries the flags of the
 * previous lap: in the first lap (slot 1 made available as in lap 0), and across the end
 * of the ring (slot 0 of the second lap made available as in the first). The err eventfd,
 * no frame. Then a valid chain across the end of the ring passes.
 */
static int body_hostile_stale_lap(struct pc *c)
{
	struct vr_seg s[2];
	uint64_t gpa;
	int r = pc_start(c, FEAT | F_EVIDX);

	if (r != R_PASS)
		return r;
	sleep_ms(200);
	gpa = tx_put_frame(4, 100, 998);
	s[0] = (struct vr_seg){ gpa, HDR_LEN, false };
	s[1] = (struct vr_seg){ gpa + HDR_LEN, 100, false };
	pvr_put_desc(&c->tx, 1, s[1].gpa, s[1].len, 4, pvr_avail_bits(false));
	pvr_put_desc(&c->tx, 0, s[0].gpa, s[0].len, 4 | PVR_JUNK_ID,
		     VRING_DESC_F_NEXT | pvr_avail_bits(true));
	pvr_kick(&c->tx);
	if (expect_err(c, &c->tx, "a chain at slots 0-1, slot 1 made available as in lap 0") ||
	    wire_quiet(c, SETTLE, "the chain with a stale second descriptor"))
		return R_FAIL;
	/* Across the end: positions at slot 255, the head there, slot 0 as in the first lap. */
	pc_dev_close(c);
	r = pc_fresh(c, c->features, NUM - 1);
	if (r != R_PASS)
		return r;
	sleep_ms(200);
	pvr_put_desc(&c->tx, 0, s[1].gpa, s[1].len, 4, pvr_avail_bits(true));
	pvr_put_desc(&c->tx, NUM - 1, s[0].gpa, s[0].len, 4 | PVR_JUNK_ID,
		     VRING_DESC_F_NEXT | pvr_avail_bits(true));
	pvr_kick(&c->tx);
	if (expect_err(c, &c->tx, "a chain at slots 255-0, slot 0 made available as in lap 1 "
		       "(wrap counter 1), not 2") ||
	    wire_quiet(c, SETTLE, "the chain across the end with a stale second descriptor"))
		return R_FAIL;
	/* The same place, done right: two-slot chains from slot 255 on. */
	pc_dev_close(c);
	r = pc_fresh(c, c->features, NUM - 1);
	if (r == R_PASS)
		r = tx_run(c, 5, SH_2);
	if (r != R_PASS) {
		ktap_diag("%s: valid chains across the end of the ring, from slot 255", c->name);
		return r;
	}
	return recover(c, "chains with a descriptor of the previous lap");
}

/*
 * (3) An indirect descriptor with NEXT (its table valid, a plain descriptor after it); then
 * an indirect descriptor as the second of a chain. The err eventfd, no frame.
 */
static int body_hostile_indirect_next(struct pc *c)
{
	struct vring_packed_desc t = { 0 };
	uint64_t gpa;
	int r = pc_start(c, FEAT | F_EVIDX);

	if (r != R_PASS)
		return r;
	sleep_ms(200);
	gpa = tx_put_frame(6, 100, 997);
	t.addr = gpa;
	t.len = HDR_LEN + 100;
	g_write(&G, TX_TBL_GPA(6), &t, sizeof(t));
	pvr_put_desc(&c->tx, 1, gpa, HDR_LEN + 100, 6, pvr_avail_bits(true));
	pvr_put_desc(&c->tx, 0, TX_TBL_GPA(6), sizeof(t), 6 | PVR_JUNK_ID,
		     VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT | pvr_avail_bits(true));
	pvr_kick(&c->tx);
	if (expect_err(c, &c->tx, "an INDIRECT descriptor with NEXT") ||
	    wire_quiet(c, SETTLE, "an INDIRECT descriptor with NEXT"))
		return R_FAIL;
	r = recover(c, "an INDIRECT descriptor with NEXT");
	if (r == R_PASS)
		r = pc_fresh(c, c->features, 0);
	if (r != R_PASS)
		return r;
	/* A fresh ring: a header descriptor, then an indirect one for the frame. */
	sleep_ms(200);
	gpa = tx_put_frame(6, 100, 996);
	t.addr = gpa + HDR_LEN;
	t.len = 100;
	g_write(&G, TX_TBL_GPA(6), &t, sizeof(t));
	pvr_put_desc(&c->tx, 1, TX_TBL_GPA(6), sizeof(t), 6,
		     VRING_DESC_F_INDIRECT | pvr_avail_bits(true));
	pvr_put_desc(&c->tx, 0, gpa, HDR_LEN, 6 | PVR_JUNK_ID,
		     VRING_DESC_F_NEXT | pvr_avail_bits(true));
	pvr_kick(&c->tx);
	if (expect_err(c, &c->tx, "an INDIRECT descriptor second in a chain") ||
	    wire_quiet(c, SETTLE, "an INDIRECT descriptor second in a chain"))
		return R_FAIL;
	return recover(c, "an INDIRECT descriptor second in a chain");
}

/*
 * (4) A chain longer than the ring: all 256 slots available with NEXT. The err eventfd, no
 * frame. Then a chain of exactly 256 descriptors, which is allowed: one frame, used once,
 * the used position a whole lap on.
 */
static int body_hostile_chain_too_long(struct pc *c)
{
	uint64_t gpa = TX_BUF_GPA(0);
	unsigned int i;
	int r = pc_start(c, FEAT | F_EVIDX);

	if (r != R_PASS)
		return r;
	sleep_ms(200);
	for (i = NUM; i-- > 0;)
		pvr_put_desc(&c->tx, i, gpa + i * 8, 8, i ? PVR_JUNK_ID : 0,
			     VRING_DESC_F_NEXT | pvr_avail_bits(true));
	pvr_kick(&c->tx);
	if (expect_err(c, &c->tx, "256 descriptors all with NEXT in a ring of 256") ||
	    wire_quiet(c, SETTLE, "a chain longer than the ring"))
		return R_FAIL;
	r = recover(c, "a chain longer than the ring");
	if (r != R_PASS)
		return r;
	pc_dev_close(c);
	r = pc_fresh(c, c->features, 0);
	if (r != R_PASS)
		return r;
	r = tx_add(c, MAX_FRAME, NUM, false);
	if (r < 0)
		FAIL("%s: a chain of %u descriptors does not fit a fresh ring (%d)", c->name, NUM, r);
	pvr_kick(&c->tx);
	if (tx_reap(c, 1) != R_PASS) {
		ktap_diag("%s: a chain of exactly %u descriptors (allowed: 2.8.17)", c->name, NUM);
		return R_FAIL;
	}
	if (c->tx.used_idx != 0 || c->tx.used_wrap)
		FAIL("%s: test bug: used position %u wrap %d after a whole lap", c->name,
		     c->tx.used_idx, c->tx.used_wrap);
	if (pvr_take_err(&c->tx))
		FAIL("%s: the err eventfd was signalled for a chain of exactly %u descriptors",
		     c->name, NUM);
	r = tx_run(c, 5, -1);
	if (r != R_PASS)
		ktap_diag("%s: after a chain of exactly %u descriptors", c->name, NUM);
	return r;
}

/*
 * (5) One part of the TX ring in a PROT_NONE page (@which: 0 the descriptor ring, 1 the
 * driver area, 2 the device area): SET_VRING_ADDR takes it (no backend yet); attaching the
 * backend then fails with EFAULT, or the queue signals its err eventfd once it is kicked (the
 * driver area is read only to decide on a call: a frame is made available to get there).
 */
static int prot_none(struct pc *c, int which)
{
	static const char *const part[3] = { "descriptor ring", "driver area", "device area" };
	void *none = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pvr keep;
	char what[96];
	int r;

	if (none == MAP_FAILED)
		FAIL("mmap PROT_NONE: %s", strerror(errno));
	snprintf(what, sizeof(what), "the TX %s in a PROT_NONE page", part[which]);
	r = tapc_create(&c->t, 0, 1500);
	if (r == R_PASS)
		r = pc_rings(c, 0);
	if (r == R_PASS)
		r = pc_open_dev(c);
	if (r != R_PASS)
		goto out;
	keep = c->tx;
	if (which == 0)
		c->tx.desc = none;
	else if (which == 1)
		c->tx.drv = (void *)((uint8_t *)none + 4096);
	else
		c->tx.dev = none;
	r = pc_setup(c, FEAT | F_EVIDX, PVR_BASE_START, PVR_BASE_START);
	c->tx.desc = keep.desc;
	c->tx.drv = keep.drv;
	c->tx.dev = keep.dev;
	if (r != R_PASS) {
		ktap_diag("%s: %s: expected SET_VRING_ADDR to take it (no backend yet)", c->name,
			  what);
		goto out;
	}
	r = set_backend(c->vfd, RXQ, c->t.t.fd);
	if (r) {
		ktap_diag("%s: %s: attaching RX (its ring valid): %s", c->name, what,
			  errno_name(-r));
		r = R_FAIL;
		goto out;
	}
	r = set_backend(c->vfd, TXQ, c->t.t.fd);
	if (r == -EFAULT) {
		ktap_diag("%s: %s: attaching the backend: EFAULT", c->name, what);
	} else if (r) {
		ktap_diag("%s: %s: attaching the backend: %s, expected EFAULT or success (then "
			  "the err eventfd at the first kick)", c->name, what, errno_name(-r));
		r = R_FAIL;
		goto out;
	} else {
		if (which == 1 && tx_add(c, 100, 1, false) < 0) {
			ktap_diag("%s: %s: no room for a frame (test bug)", c->name, what);
			r = R_FAIL;
			goto out;
		}
		pvr_kick(&c->tx);
		if (!pvr_wait_err(&c->tx, TMO)) {
			ktap_diag("%s: %s: attaching the backend succeeded, and the err eventfd was "
				  "not signalled within %d ms of a kick%s; expected EFAULT or the err "
				  "eventfd", c->name, what, TMO, which != 1 ? "" :
				  pvr_take_calls(&c->tx) ? " with a frame made available (a used "
				  "buffer notification came instead: the unreadable driver area read "
				  "as 'notify', without vq_err() as vhost_notify() does)" :
				  " with a frame made available");
			r = R_FAIL;
			goto out;
		}
		ktap_diag("%s: %s: the err eventfd at the first kick", c->name, what);
	}
	r = recover(c, what);
out:
	pc_dev_close(c);
	munmap(none, 8192);
	return r;
}

static int body_hostile_prot_none_desc(struct pc *c)
{
	return prot_none(c, 0);
}

static int body_hostile_prot_none_driver_area(struct pc *c)
{
	return prot_none(c, 1);
}

static int body_hostile_prot_none_device_area(struct pc *c)
{
	return prot_none(c, 2);
}

/*
 * (6) SET_VRING_ADDR of a packed ring with the descriptor ring 8-aligned (not 16), or an
 * event area 2-aligned (not 4): EINVAL; and the ring set before stays (traffic passes).
 */
static int body_hostile_desc_align(struct pc *c)
{
	static const char *const qn[2] = { "RX", "TX" };
	unsigned int q, i;
	int r = tapc_create(&c->t, 0, 1500);

	if (r == R_PASS)
		r = pc_rings(c, 0);
	if (r == R_PASS)
		r = pc_open_dev(c);
	if (r == R_PASS)
		r = pc_setup(c, FEAT | F_EVIDX, PVR_BASE_START, PVR_BASE_START);
	if (r != R_PASS)
		return r;
	for (q = 0; q < 2; q++) {
		struct pvr *p = q == TXQ ? &c->tx : &c->rx;
		uint64_t d = (uintptr_t)p->desc, v = (uintptr_t)p->drv, u = (uintptr_t)p->dev;
		const struct { uint64_t d, v, u; const char *what; } bad[] = {
			{ d + 8, v, u, "the descriptor ring 8-aligned" },
			{ d, v + 2, u, "the driver area 2-aligned" },
			{ d, v, u + 2, "the device area 2-aligned" },
		};

		for (i = 0; i < 3; i++) {
			struct vhost_vring_addr a = {
				.index = q,
				.desc_user_addr = bad[i].d,
				.avail_user_addr = bad[i].v,
				.used_user_addr = bad[i].u,
			};

			r = ioctl(c->vfd, VHOST_SET_VRING_ADDR, &a) < 0 ? -errno : 0;
			if (r != -EINVAL)
				FAIL("%s: %s queue: SET_VRING_ADDR with %s (desc %#llx, driver area "
				     "%#llx, device area %#llx): %s, expected EINVAL", c->name, qn[q],
				     bad[i].what, (unsigned long long)bad[i].d,
				     (unsigned long long)bad[i].v, (unsigned long long)bad[i].u,
				     errno_name(-r));
		}
	}
	r = pc_attach(c, c->t.t.fd);
	if (r == R_PASS)
		r = tx_run(c, 5, -1);
	if (r == R_PASS)
		r = rx_run(c, 5);
	if (r != R_PASS) {
		ktap_diag("%s: the rings set before the refused SET_VRING_ADDRs", c->name);
		return r;
	}
	return recover(c, "misaligned SET_VRING_ADDRs");
}

/*
 * (7) SET_VRING_BASE 0x8000 (DPDK's fresh packed ring, no used half) reads back as
 * 0x80008000; other values read back as set; the last 0x8000 is a fresh ring that carries
 * traffic; with the backend attached, SET_VRING_BASE is EBUSY.
 */
static int body_hostile_base_8000(struct pc *c)
{
	static const uint32_t set[][2] = {
		{ 0x8000, 0x80008000 },
		{ 0, 0 },
		{ 0x80fa0005, 0x80fa0005 },	/* 11 in flight across the end of the ring */
		{ 0x00050005, 0x00050005 },
		{ 0x8000, 0x80008000 },
	};
	char b1[80];
	unsigned int q, i;
	uint32_t v;
	int r = tapc_create(&c->t, 0, 1500);

	if (r == R_PASS)
		r = pc_rings(c, 0);
	if (r == R_PASS)
		r = pc_open_dev(c);
	if (r == R_PASS)
		r = pc_setup(c, FEAT | F_EVIDX, PVR_BASE_START, PVR_BASE_START);
	if (r != R_PASS)
		return r;
	for (i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
		for (q = 0; q < 2; q++) {
			r = set_base(c->vfd, q, set[i][0]);
			if (r)
				FAIL("%s: queue %u: SET_VRING_BASE %#x: %s, expected success", c->name,
				     q, set[i][0], errno_name(-r));
			v = 0;
			r = get_base(c->vfd, q, &v);
			if (r || v != set[i][1])
				FAIL("%s: queue %u: SET_VRING_BASE %#x, then GET_VRING_BASE %s %s; "
				     "expected %#x", c->name, q, set[i][0], errno_name(-r),
				     base_str(v, b1, sizeof(b1)), set[i][1]);
		}
	}
	r = pc_attach(c, c->t.t.fd);
	if (r == R_PASS)
		r = tx_run(c, 5, -1);
	if (r == R_PASS)
		r = rx_run(c, 5);
	if (r != R_PASS) {
		ktap_diag("%s: after SET_VRING_BASE 0x8000 (a fresh ring)", c->name);
		return r;
	}
	r = set_base(c->vfd, TXQ, 0x8000);
	if (r != -EBUSY)
		FAIL("%s: SET_VRING_BASE with the backend attached: %s, expected EBUSY", c->name,
		     errno_name(-r));
	return recover(c, "SET_VRING_BASE 0x8000");
}

/*
 * (8) Three chains in flight under one id (7): 2 descriptors at slots 0-1, 1 at slot 2, 3 at
 * slots 3-5. Each is sent, and used once: id 7 at slots 0, 2 and 3 (each skipping its own
 * chain's slots, whatever the device knows of the id), slots 1, 4 and 5 untouched.
 */
static int body_hostile_id_reuse(struct pc *c)
{
	static const unsigned int nseg[3] = { 2, 1, 3 }, at[3] = { 0, 2, 3 };
	static const unsigned int lens[3] = { 300, 60, 1514 };
	static uint8_t want[MAX_FRAME];
	struct vr_seg s[3];
	long long end;
	unsigned int i, k;
	int r = pc_start(c, FEAT | F_EVIDX);

	if (r != R_PASS)
		return r;
	sleep_ms(200);
	for (i = 0; i < 3; i++) {
		/* Each in a buffer of its own (ids 10..12), all under id 7. */
		uint64_t gpa = tx_put_frame(10 + i, lens[i], 990 + i);

		split_segs(c, gpa, HDR_LEN + lens[i], nseg[i], s);
		put_chain(c, at[i], s, nseg[i], 7, true);
	}
	pvr_kick(&c->tx);
	end = now_ms() + TMO;
	for (;;) {
		for (k = 0; k < 3 && pvr_flags_used(pvr_desc_flags(&c->tx, at[k]), true); k++)
			;
		if (k == 3)
			break;
		if (now_ms() > end) {
			pc_dump(c, TXQ);
			FAIL("%s: three chains under id 7 at slots 0-1, 2, 3-5: the one at slot %u "
			     "not used within %d ms", c->name, at[k], TMO);
		}
		sleep_ms(1);
	}
	for (i = 0; i < 3; i++) {
		const struct vring_packed_desc *d = &c->tx.desc[at[i]];

		if (d->id != 7 || d->len != 0)
			FAIL("%s: id reuse: used descriptor at slot %u: id %#x len %u, expected id 7 "
			     "len 0", c->name, at[i], d->id, d->len);
	}
	for (i = 0; i < 3; i++) {
		static const unsigned int skipped[3] = { 1, 4, 5 };
		unsigned int sl = skipped[i];
		uint16_t fl = pvr_avail_bits(true) | (sl == 4 ? VRING_DESC_F_NEXT : 0);
		uint16_t id = sl == 4 ? 7 | PVR_JUNK_ID : 7;

		if (c->tx.desc[sl].flags != fl || c->tx.desc[sl].id != id)
			FAIL("%s: id reuse: slot %u, inside a chain, was rewritten: flags %#x id %#x, "
			     "expected %#x id %#x as made available", c->name, sl,
			     c->tx.desc[sl].flags, c->tx.desc[sl].id, fl, id);
	}
	for (i = 0; i < 3; i++) {
		ssize_t n = wire_next(c, TMO);

		frame_eth_seq(want, lens[i], 990 + i, NULL);
		if (n != lens[i] || first_diff(gbuf, want, lens[i]) >= 0)
			FAIL("%s: id reuse: chain %u (seq %u, %u bytes): %s on the wire (%zd bytes, "
			     "seq %u)", c->name, i, 990 + i, lens[i], n < 0 ? "nothing" :
			     "another frame", n, n >= 18 ? frame_seq(gbuf) : 0);
	}
	if (wire_quiet(c, SETTLE, "three chains under one id") != R_PASS)
		return R_FAIL;
	if (pvr_take_err(&c->tx))
		FAIL("%s: id reuse: the err eventfd was signalled", c->name);
	/* Our positions past the three chains; the ids were never taken from the free list. */
	c->tx.avail_idx = c->tx.used_idx = 6;
	r = tx_run(c, 5, -1);
	if (r != R_PASS) {
		ktap_diag("%s: after three chains under one id", c->name);
		return r;
	}
	return recover(c, "three chains under one id");
}

/* ---- the cases as tests of kselftest_harness.h ------------------------------------------ */

VCASE_FIXTURE(packed, NULL);

#define PCASE(n) VCASE_BODY(packed, packed_case, n)

PCASE(tx)
PCASE(tx_event_idx)
PCASE(rx)
PCASE(rx_mrg)
PCASE(base)
PCASE(hostile_avail_eq_used)
PCASE(hostile_stale_lap)
PCASE(hostile_indirect_next)
PCASE(hostile_chain_too_long)
PCASE(hostile_prot_none_desc)
PCASE(hostile_prot_none_driver_area)
PCASE(hostile_prot_none_device_area)
PCASE(hostile_desc_align)
PCASE(hostile_base_8000)
PCASE(hostile_id_reuse)

TEST_HARNESS_MAIN
