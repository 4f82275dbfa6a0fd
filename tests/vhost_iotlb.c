// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_iotlb: the device IOTLB (VIRTIO_F_ACCESS_PLATFORM), driven as QEMU drives it for a
 * guest behind a vIOMMU: ring and buffer addresses are I/O virtual addresses (IOVAs), the
 * device asks for each translation it lacks with a VHOST_IOTLB_MISS message read from its
 * fd, and the VMM answers with VHOST_IOTLB_UPDATE messages written to it.
 *
 * Every case runs against both devices (fixture `iotlb`, variants vhost_net and
 * vhost_rs_net, vcase.h), with the same fixed expectations, read from drivers/vhost/
 * vhost.c and net.c of Linux 7.3: which miss comes when (IOVA, access, message version),
 * what read(), write() and poll() return, and the errno of every refused message.
 *
 * The IOVAs are the guest-physical addresses of guest.h's layout, but the memory table
 * given to the device maps none of them (one unrelated page): a device that translated
 * through the memory table instead of the IOTLB would find nothing. Rings are those of
 * guest.h (256 entries; descriptor table, avail and used ring each in a page of their own).
 */
#include <signal.h>
#include <sys/wait.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "vcase.h"
#include "frames.h"

#define F(b)	(1ULL << (b))
#define TMO	5000	/* ms: any single wait */
#define SETTLE	300	/* ms: to see that nothing more comes */
#define PAGE	4096ULL
#define FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | \
		  F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_F_ACCESS_PLATFORM))
#define HDR_LEN	12	/* struct virtio_net_hdr_mrg_rxbuf */
#define RX_RING	G_C_GPA
#define TX_RING	(G_C_GPA + 0x4000)
#define TX_BUF	(G_C_GPA + 0x100000)	/* TX buffers, one page each */
#define RX_BUF	(G_C_GPA + 0x200000)	/* RX buffers */
#define MSG_SIZE 72			/* struct vhost_msg, struct vhost_msg_v2 */

static uint8_t frame[2048], got[2048];

struct ctx {
	const char *name;
	int vfd, cap, snd, err;
	struct tap tap;
	struct vr rx, tx;
};

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
	if (c->err >= 0)
		close(c->err);
	vr_close(&c->rx);
	vr_close(&c->tx);
	c->vfd = c->tap.fd = c->cap = c->snd = c->err = -1;
}

/* One IOTLB message, as written: v1 (struct vhost_msg) or v2 (struct vhost_msg_v2). */
static int iotlb_write(struct ctx *c, bool v2, uint8_t type, uint64_t iova, uint64_t size,
		       uint64_t uaddr, uint8_t perm)
{
	return g_iotlb_write(c->vfd, v2, type, iova, size, uaddr, perm);
}

/* VHOST_IOTLB_UPDATE of [iova, iova + size) to the guest memory at the same GPA. */
static int map(struct ctx *c, uint64_t iova, uint64_t size, uint8_t perm)
{
	return iotlb_write(c, true, VHOST_IOTLB_UPDATE, iova, size,
			   (uint64_t)(uintptr_t)g_hva(&G, iova, NULL), perm);
}

/* Whether the fd polls readable within @ms. */
static bool readable(struct ctx *c, int ms)
{
	struct pollfd p = { .fd = c->vfd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/*
 * Waits for the next message and checks it is a miss of @iova for @perm, in a v2 or v1
 * message as @v2 says.
 */
static int expect_miss(struct ctx *c, bool v2, uint64_t iova, uint8_t perm, const char *what)
{
	uint8_t buf[MSG_SIZE + 8];
	struct vhost_iotlb_msg m;
	uint32_t type;
	ssize_t n;

	if (!readable(c, TMO))
		FAIL("%s: %s: no IOTLB miss within %d ms", c->name, what, TMO);
	n = read(c->vfd, buf, sizeof(buf));
	if (n != MSG_SIZE)
		FAIL("%s: %s: read %zd (%s), expected %d bytes", c->name, what, n,
		     n < 0 ? errno_name(errno) : "short", MSG_SIZE);
	memcpy(&type, buf, 4);
	memcpy(&m, buf + 8, sizeof(m));
	if (type != (v2 ? VHOST_IOTLB_MSG_V2 : VHOST_IOTLB_MSG) || m.type != VHOST_IOTLB_MISS ||
	    m.iova != iova || m.perm != perm || m.size || m.uaddr)
		FAIL("%s: %s: message type %u {type %u iova %#llx size %llu uaddr %#llx perm %u}, "
		     "expected type %u MISS of %#llx perm %u", c->name, what, type, m.type,
		     (unsigned long long)m.iova, (unsigned long long)m.size,
		     (unsigned long long)m.uaddr, m.perm, v2 ? 2 : 1, (unsigned long long)iova,
		     perm);
	if (readable(c, 0))
		FAIL("%s: %s: still readable after the one miss was read", c->name, what);
	return R_PASS;
}

/* Nothing to read for a while: no miss, the fd not readable, a non-blocking read EAGAIN. */
static int expect_quiet(struct ctx *c, const char *what)
{
	uint8_t buf[MSG_SIZE];
	int fl = fcntl(c->vfd, F_GETFL);
	ssize_t n;

	if (readable(c, SETTLE))
		FAIL("%s: %s: a message came, none expected", c->name, what);
	fcntl(c->vfd, F_SETFL, fl | O_NONBLOCK);
	n = read(c->vfd, buf, sizeof(buf));
	fcntl(c->vfd, F_SETFL, fl);
	if (n != -1 || errno != EAGAIN)
		FAIL("%s: %s: non-blocking read %zd (%s), expected EAGAIN", c->name, what, n,
		     n < 0 ? errno_name(errno) : "data");
	return R_PASS;
}

/* Whether the err eventfd was signalled (and clears it). */
static bool err_signalled(struct ctx *c, int ms)
{
	struct pollfd p = { .fd = c->err, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(c->err, &v, sizeof(v)) == sizeof(v);
}

/* SET_VRING_NUM/BASE/ADDR/KICK/CALL/ERR of queue @idx, addresses as IOVAs (= GPAs). */
static int ring_setup(struct ctx *c, struct vr *vr, unsigned int idx, bool log)
{
	struct vhost_vring_state s = { .index = idx, .num = VR_NUM };
	struct vhost_vring_addr a = {
		.index = idx,
		.desc_user_addr = vr->desc_gpa,
		.avail_user_addr = vr->avail_gpa,
		.used_user_addr = vr->used_gpa,
		/* Ignored with the IOTLB: the used ring is logged through its translation. */
		.flags = log ? 1 << VHOST_VRING_F_LOG : 0,
		.log_guest_addr = log ? 0x7fff0000ULL : 0,
	};
	struct vhost_vring_file f = { .index = idx };

	if (ioctl(c->vfd, VHOST_SET_VRING_NUM, &s) < 0)
		FAIL("%s: SET_VRING_NUM: %s", c->name, errno_name(errno));
	s.num = 0;
	if (ioctl(c->vfd, VHOST_SET_VRING_BASE, &s) < 0)
		FAIL("%s: SET_VRING_BASE: %s", c->name, errno_name(errno));
	if (ioctl(c->vfd, VHOST_SET_VRING_ADDR, &a) < 0)
		FAIL("%s: SET_VRING_ADDR (IOVAs): %s", c->name, errno_name(errno));
	f.fd = vr->kick;
	if (ioctl(c->vfd, VHOST_SET_VRING_KICK, &f) < 0)
		FAIL("%s: SET_VRING_KICK: %s", c->name, errno_name(errno));
	f.fd = vr->call;
	if (ioctl(c->vfd, VHOST_SET_VRING_CALL, &f) < 0)
		FAIL("%s: SET_VRING_CALL: %s", c->name, errno_name(errno));
	f.fd = c->err;
	if (ioctl(c->vfd, VHOST_SET_VRING_ERR, &f) < 0)
		FAIL("%s: SET_VRING_ERR: %s", c->name, errno_name(errno));
	return R_PASS;
}

/*
 * Opens @dev as QEMU does for a vIOMMU guest: owner, features with ACCESS_PLATFORM (and
 * with dirty logging if @log), backend feature IOTLB_MSG_V2 if @v2, a memory table of one
 * unrelated page (guest.h's real one with @log: the log needs guest-physical addresses),
 * both rings at IOVAs; a tap, not yet attached.
 */
static int ctx_open_log(struct ctx *c, const char *dev, bool v2, bool log)
{
	uint64_t f = FEATURES | (log ? F(VHOST_F_LOG_ALL) : 0);
	uint64_t bf = v2 ? F(VHOST_BACKEND_F_IOTLB_MSG_V2) : 0;
	struct vhost_memory *m;
	const char *what;
	int r;

	memset(c, 0, sizeof(*c));
	c->vfd = c->cap = c->snd = c->tap.fd = c->err = -1;
	c->rx.kick = c->rx.call = c->tx.kick = c->tx.call = -1;
	c->name = strrchr(dev, '/') + 1;
	c->vfd = open(dev, O_RDWR | O_CLOEXEC);
	if (c->vfd < 0)
		FAIL("open %s: %s", dev, strerror(errno));
	memset(G.mem, 0, G_MEM_SIZE);
	c->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->err < 0 || vr_init(&c->rx, &G, RX_RING) || vr_init(&c->tx, &G, TX_RING))
		FAIL("eventfd: %s", strerror(errno));
	r = tap_create(&c->tap, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, HDR_LEN, 1500, &what);
	if (r)
		FAIL("tap: %s: %s", what, strerror(-r));
	c->cap = pkt_capture_open(c->tap.ifindex, false);
	c->snd = pkt_sender_open();
	if (c->cap < 0 || c->snd < 0)
		FAIL("packet sockets: %s", strerror(-(c->cap < 0 ? c->cap : c->snd)));
	if (ioctl(c->vfd, VHOST_SET_OWNER) < 0)
		FAIL("%s: SET_OWNER: %s", c->name, errno_name(errno));
	if (ioctl(c->vfd, VHOST_SET_FEATURES, &f) < 0)
		FAIL("%s: SET_FEATURES with ACCESS_PLATFORM: %s", c->name, errno_name(errno));
	if (ioctl(c->vfd, VHOST_SET_BACKEND_FEATURES, &bf) < 0)
		FAIL("%s: SET_BACKEND_FEATURES %#llx: %s", c->name, (unsigned long long)bf,
		     errno_name(errno));
	if (log) {
		r = -g_set_mem_table(&G, c->vfd);
	} else {
		m = calloc(1, sizeof(*m) + sizeof(m->regions[0]));
		m->nregions = 1;
		m->regions[0].guest_phys_addr = 0xf0000000ULL;
		m->regions[0].memory_size = PAGE;
		m->regions[0].userspace_addr = (uint64_t)(uintptr_t)G.mem;
		r = ioctl(c->vfd, VHOST_SET_MEM_TABLE, m) < 0 ? errno : 0;
		free(m);
	}
	if (r)
		FAIL("%s: SET_MEM_TABLE: %s", c->name, errno_name(r));
	if (ring_setup(c, &c->rx, 0, log) != R_PASS || ring_setup(c, &c->tx, 1, log) != R_PASS)
		return R_FAIL;
	return R_PASS;
}

static int ctx_open(struct ctx *c, const char *dev, bool v2)
{
	return ctx_open_log(c, dev, v2, false);
}

static int set_backend(struct ctx *c, unsigned int idx, int fd)
{
	struct vhost_vring_file b = { .index = idx, .fd = fd };

	return ioctl(c->vfd, VHOST_NET_SET_BACKEND, &b) < 0 ? -errno : 0;
}

/* Maps queue @vr's descriptor table and avail ring read-only, its used ring read-write. */
static int map_ring(struct ctx *c, struct vr *vr)
{
	if (map(c, vr->desc_gpa, PAGE, VHOST_ACCESS_RO) ||
	    map(c, vr->avail_gpa, PAGE, VHOST_ACCESS_RO) ||
	    map(c, vr->used_gpa, PAGE, VHOST_ACCESS_RW))
		FAIL("%s: mapping a ring: %s", c->name, errno_name(errno));
	return R_PASS;
}

/* Adds a TX packet (header + @len-byte frame) at IOVA @buf and kicks. Returns the head. */
static int tx_post(struct ctx *c, uint64_t buf, size_t len, unsigned int seed)
{
	struct vr_seg s = { buf, HDR_LEN + len, false };
	uint8_t hdr[HDR_LEN] = { 0 };
	int head;

	frame_eth(frame, len, seed);
	g_write(&G, buf, hdr, HDR_LEN);
	g_write(&G, buf + HDR_LEN, frame, len);
	head = vr_add(&c->tx, &s, 1, 0);
	vr_publish(&c->tx, head);
	vr_kick(&c->tx);
	return head;
}

/* The TX packet @head of @len bytes went out: used element, call, the frame on the tap. */
static int tx_done(struct ctx *c, int head, size_t len, const char *what)
{
	uint32_t id = 0, ulen = 0;
	ssize_t n;
	int d;

	if (!vr_wait_used(&c->tx, 1, TMO))
		FAIL("%s: %s: not used within %d ms (used idx %u)", c->name, what, TMO,
		     vr_used_idx(&c->tx));
	if (vr_get_used(&c->tx, &id, &ulen) != 1 || (int)id != head || ulen)
		FAIL("%s: %s: used {id %u len %u}, expected {id %d len 0}", c->name, what, id, ulen,
		     head);
	n = pkt_recv(c->cap, got, sizeof(got), TMO);
	if (n != (ssize_t)len)
		FAIL("%s: %s: frame of %zd bytes on the tap, expected %zu", c->name, what, n, len);
	d = first_diff(got, frame, len);
	if (d >= 0)
		FAIL("%s: %s: frame differs at byte %d", c->name, what, d);
	return R_PASS;
}

/* Nothing more came out on TX: used index unchanged, no frame. */
static int tx_nothing(struct ctx *c, const char *what)
{
	if (vr_used_pending(&c->tx) || pkt_recv(c->cap, got, sizeof(got), SETTLE) >= 0)
		FAIL("%s: %s: the packet went out (used idx %u)", c->name, what, vr_used_idx(&c->tx));
	return R_PASS;
}

#define CHECK(x) do { if ((x) != R_PASS) goto out; } while (0)

/*
 * TX from nothing mapped, with v2 messages: attaching the backend needs the used ring (a
 * miss for it, read access, EFAULT and the err eventfd); then the descriptor table, the avail ring and the
 * buffer each miss in turn, each answered by an update, after which the packet goes out.
 * A buffer mapped write-only is the queue's error (EPERM: err eventfd); invalidated and
 * mapped again read-only, it goes. An invalidated buffer misses again.
 */
static int case_tx_misses(const char *dev)
{
	struct ctx c;
	int r = ctx_open(&c, dev, true), head;

	CHECK(r);
	CHECK(expect_quiet(&c, "before anything"));
	r = set_backend(&c, 1, c.tap.fd);
	if (r != -EFAULT) {
		ktap_diag("%s: NET_SET_BACKEND with the used ring unmapped: %s, expected EFAULT",
			  c.name, errno_name(-r));
		r = R_FAIL;
		goto out;
	}
	CHECK(r = expect_miss(&c, true, c.tx.used_gpa, VHOST_ACCESS_RO, "backend, used ring"));
	/* vhost.c's slow path (__vhost_get_user_slow) reports that failure as the queue's. */
	if (!err_signalled(&c, 0)) {
		ktap_diag("%s: used ring unmapped at NET_SET_BACKEND: err eventfd not signalled",
			  c.name);
		r = R_FAIL;
		goto out;
	}
	if (map(&c, c.tx.used_gpa, PAGE, VHOST_ACCESS_RW))
		FAIL("%s: UPDATE used ring: %s", c.name, errno_name(errno));
	r = set_backend(&c, 1, c.tap.fd);
	if (r) {
		ktap_diag("%s: NET_SET_BACKEND with the used ring mapped: %s", c.name, errno_name(-r));
		r = R_FAIL;
		goto out;
	}
	/* The TX socket is writable: the queue runs at once, and needs its rings. */
	CHECK(r = expect_miss(&c, true, c.tx.desc_gpa, VHOST_ACCESS_RO, "TX prefetch, desc"));
	r = R_FAIL;
	if (map(&c, c.tx.desc_gpa, PAGE, VHOST_ACCESS_RO))
		goto out;
	CHECK(r = expect_miss(&c, true, c.tx.avail_gpa, VHOST_ACCESS_RO, "TX prefetch, avail"));
	if (map(&c, c.tx.avail_gpa, PAGE, VHOST_ACCESS_RO)) {
		r = R_FAIL;
		goto out;
	}
	CHECK(r = expect_quiet(&c, "rings mapped, nothing posted"));

	head = tx_post(&c, TX_BUF, 1000, 1);
	CHECK(r = expect_miss(&c, true, TX_BUF, VHOST_ACCESS_RO, "TX buffer"));
	CHECK(r = tx_nothing(&c, "buffer not yet mapped"));
	if (map(&c, TX_BUF, PAGE, VHOST_ACCESS_RO)) {
		r = R_FAIL;
		goto out;
	}
	CHECK(r = tx_done(&c, head, 1000, "buffer mapped"));
	if (err_signalled(&c, 0)) {
		ktap_diag("%s: a miss signalled the err eventfd", c.name);
		r = R_FAIL;
		goto out;
	}

	/* Permissions: a buffer the device may only write is not a TX buffer. */
	r = R_FAIL;
	if (map(&c, TX_BUF + PAGE, PAGE, VHOST_ACCESS_WO))
		goto out;
	head = tx_post(&c, TX_BUF + PAGE, 500, 2);
	if (!err_signalled(&c, TMO)) {
		ktap_diag("%s: TX buffer mapped write-only: no error signalled", c.name);
		goto out;
	}
	CHECK(r = tx_nothing(&c, "buffer mapped write-only"));
	CHECK(r = expect_quiet(&c, "permission error"));
	r = R_FAIL;
	if (iotlb_write(&c, true, VHOST_IOTLB_INVALIDATE, TX_BUF + PAGE, PAGE, 0, 0) ||
	    map(&c, TX_BUF + PAGE, PAGE, VHOST_ACCESS_RO))
		goto out;
	vr_kick(&c.tx);
	CHECK(r = tx_done(&c, head, 500, "mapped again read-only"));

	/* Invalidation takes effect before the next access. */
	r = R_FAIL;
	if (iotlb_write(&c, true, VHOST_IOTLB_INVALIDATE, TX_BUF, 1, 0, 0))
		goto out;
	head = tx_post(&c, TX_BUF, 700, 3);
	CHECK(r = expect_miss(&c, true, TX_BUF, VHOST_ACCESS_RO, "TX buffer invalidated"));
	r = R_FAIL;
	if (map(&c, TX_BUF, PAGE, VHOST_ACCESS_RO))
		goto out;
	CHECK(r = tx_done(&c, head, 700, "buffer mapped again"));
	r = R_PASS;
out:
	ctx_close(&c);
	return r;
}

/*
 * RX with v1 messages: rings mapped in advance, a frame arrives, the guest's buffer
 * misses (write access), the update lets the frame land byte for byte; the miss is not
 * the queue's error. A buffer mapped read-only is (EPERM).
 */
static int case_rx_misses(const char *dev)
{
	struct vr_seg s = { RX_BUF, 2048, true };
	uint32_t id = 0, len = 0;
	struct ctx c;
	int r = ctx_open(&c, dev, false), head, d;

	CHECK(r);
	CHECK(r = map_ring(&c, &c.rx));
	r = set_backend(&c, 0, c.tap.fd);
	if (r) {
		ktap_diag("%s: NET_SET_BACKEND RX, rings mapped: %s", c.name, errno_name(-r));
		r = R_FAIL;
		goto out;
	}
	CHECK(r = expect_quiet(&c, "RX attached, rings mapped"));
	head = vr_add(&c.rx, &s, 1, 0);
	vr_publish(&c.rx, head);
	vr_kick(&c.rx);
	frame_eth(frame, 600, 7);
	r = R_FAIL;
	if (pkt_send(c.snd, c.tap.ifindex, frame, 600))
		goto out;
	CHECK(r = expect_miss(&c, false, RX_BUF, VHOST_ACCESS_WO, "RX buffer"));
	r = R_FAIL;
	if (vr_used_pending(&c.rx) || err_signalled(&c, 0)) {
		ktap_diag("%s: RX buffer unmapped: used idx %u, or the err eventfd signalled",
			  c.name, vr_used_idx(&c.rx));
		goto out;
	}
	if (map(&c, RX_BUF, PAGE, VHOST_ACCESS_WO))
		goto out;
	if (!vr_wait_used(&c.rx, 1, TMO) || vr_get_used(&c.rx, &id, &len) != 1 ||
	    (int)id != head || len != HDR_LEN + 600) {
		ktap_diag("%s: RX after the update: used {id %u len %u}, expected {id %d len %d}",
			  c.name, id, len, head, HDR_LEN + 600);
		goto out;
	}
	g_read(&G, RX_BUF + HDR_LEN, got, 600);
	d = first_diff(got, frame, 600);
	if (d >= 0) {
		ktap_diag("%s: RX frame differs at byte %d", c.name, d);
		goto out;
	}
	/* A buffer the device may only read cannot take a packet. */
	s.gpa = RX_BUF + PAGE;
	if (map(&c, RX_BUF + PAGE, PAGE, VHOST_ACCESS_RO))
		goto out;
	head = vr_add(&c.rx, &s, 1, 0);
	vr_publish(&c.rx, head);
	vr_kick(&c.rx);
	if (pkt_send(c.snd, c.tap.ifindex, frame, 600))
		goto out;
	if (!err_signalled(&c, TMO)) {
		ktap_diag("%s: RX buffer mapped read-only: no error signalled", c.name);
		goto out;
	}
	if (vr_used_pending(&c.rx)) {
		ktap_diag("%s: RX buffer mapped read-only: used", c.name);
		goto out;
	}
	r = R_PASS;
out:
	ctx_close(&c);
	return r;
}

/*
 * Dirty logging through the IOTLB: an RX packet into a 2048-byte buffer marks, in the
 * bitmap, the guest page of the buffer (whole: the device knows it by user address) and
 * that of the used ring, found through the memory table; nothing else. The log eventfd is
 * signalled (for the used ring).
 */
static int case_rx_dirty_log(const char *dev)
{
	size_t log_len = (G_C_GPA + G_C_SIZE) / PAGE / 8;
	uint8_t *bitmap = calloc(1, log_len);
	uint64_t base = (uint64_t)(uintptr_t)bitmap, v;
	struct vr_seg s = { RX_BUF, 2048, true };
	uint32_t id = 0, len = 0;
	struct pollfd p;
	struct ctx c;
	int r = ctx_open_log(&c, dev, true, true), head, lfd = -1;
	size_t i;

	CHECK(r);
	r = R_FAIL;
	lfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ioctl(c.vfd, VHOST_SET_LOG_BASE, &base) < 0 ||
	    ioctl(c.vfd, VHOST_SET_LOG_FD, &lfd) < 0) {
		ktap_diag("%s: SET_LOG_BASE/FD: %s", c.name, errno_name(errno));
		goto out;
	}
	if (map_ring(&c, &c.rx) != R_PASS || map(&c, RX_BUF, PAGE, VHOST_ACCESS_WO))
		goto out;
	if (set_backend(&c, 0, c.tap.fd)) {
		ktap_diag("%s: NET_SET_BACKEND RX: %s", c.name, errno_name(errno));
		goto out;
	}
	head = vr_add(&c.rx, &s, 1, 0);
	vr_publish(&c.rx, head);
	vr_kick(&c.rx);
	frame_eth(frame, 100, 9);
	memset(bitmap, 0, log_len);
	while (read(lfd, &v, sizeof(v)) > 0)
		;
	if (pkt_send(c.snd, c.tap.ifindex, frame, 100))
		goto out;
	if (!vr_wait_used(&c.rx, 1, TMO) || vr_get_used(&c.rx, &id, &len) != 1 ||
	    (int)id != head || len != HDR_LEN + 100) {
		ktap_diag("%s: RX: used {id %u len %u}, expected {id %d len %d}", c.name, id, len,
			  head, HDR_LEN + 100);
		goto out;
	}
	sleep_ms(SETTLE);
	r = R_PASS;
	for (i = 0; i < log_len * 8; i++) {
		bool set = bitmap[i / 8] & (1 << (i % 8));
		bool want = i == RX_BUF / PAGE || i == c.rx.used_gpa / PAGE;

		if (set != want) {
			ktap_diag("%s: dirty bit of page %#zx (GPA %#llx) is %d, expected %d", c.name,
				  i, (unsigned long long)(i * PAGE), set, want);
			r = R_FAIL;
		}
	}
	p = (struct pollfd){ .fd = lfd, .events = POLLIN };
	if (poll(&p, 1, 0) != 1) {
		ktap_diag("%s: the log eventfd was not signalled", c.name);
		r = R_FAIL;
	}
out:
	ctx_close(&c);
	if (lfd >= 0)
		close(lfd);
	free(bitmap);
	return r;
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* read() of @n bytes: its return value, or -errno. */
static ssize_t rd(struct ctx *c, size_t n, bool nonblock)
{
	uint8_t buf[256];
	int fl = fcntl(c->vfd, F_GETFL);
	ssize_t r;

	fcntl(c->vfd, F_SETFL, nonblock ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	r = read(c->vfd, buf, n);
	fcntl(c->vfd, F_SETFL, fl);
	return r < 0 ? -errno : r;
}

#define EXPECT(got, want, ...) do {						\
	long long g_ = (got), w_ = (want);					\
	if (g_ != w_) {								\
		ktap_diag(__VA_ARGS__);						\
		ktap_diag("  %s: got %lld (%s), expected %lld (%s)", c.name, g_,	\
			  g_ < 0 ? errno_name(-g_) : "-", w_, w_ < 0 ? errno_name(-w_) : "-"); \
		r = R_FAIL;							\
	}									\
} while (0)

/*
 * The messages themselves, valid and hostile, with vhost.c's answers: what is refused
 * before any IOTLB exists, malformed writes (EINVAL), messages it cannot carry out
 * (EFAULT), a flood past max_iotlb_entries, reads that are too short, non-blocking,
 * interrupted, and after the IOTLB is gone.
 */
static int case_msgs(const char *dev)
{
	uint64_t f = 0, bf = 0, kaddr = 0xffff888000000000ULL;
	struct sigaction sa = { .sa_handler = on_alarm };
	uint8_t raw[MSG_SIZE] = { 0 };
	struct ctx c;
	unsigned int i;
	int r = R_PASS, n;

	memset(&c, 0, sizeof(c));
	c.vfd = c.cap = c.snd = c.tap.fd = c.err = -1;
	c.rx.kick = c.rx.call = c.tx.kick = c.tx.call = -1;
	c.name = strrchr(dev, '/') + 1;
	c.vfd = open(dev, O_RDWR | O_CLOEXEC);
	if (c.vfd < 0)
		FAIL("open %s: %s", dev, strerror(errno));

	/* No IOTLB yet. */
	EXPECT(readable(&c, 0), 0, "poll before any IOTLB");
	EXPECT(rd(&c, MSG_SIZE, true), -EAGAIN, "non-blocking read, no IOTLB");
	EXPECT(rd(&c, MSG_SIZE, false), -EBADFD, "blocking read, no IOTLB");
	EXPECT(rd(&c, MSG_SIZE - 1, false), 0, "read shorter than a message");
	EXPECT(map(&c, 0x1000, PAGE, VHOST_ACCESS_RW), -EFAULT, "UPDATE, no IOTLB");
	EXPECT(iotlb_write(&c, false, VHOST_IOTLB_INVALIDATE, 0, PAGE, 0, 0), -EFAULT,
	       "INVALIDATE, no IOTLB");
	n = ioctl(c.vfd, VHOST_GET_BACKEND_FEATURES, &bf);
	EXPECT(n ? -errno : (long long)bf, F(VHOST_BACKEND_F_IOTLB_MSG_V2),
	       "GET_BACKEND_FEATURES");
	bf = F(VHOST_BACKEND_F_IOTLB_BATCH);
	n = ioctl(c.vfd, VHOST_SET_BACKEND_FEATURES, &bf);
	EXPECT(n ? -errno : 0, -EOPNOTSUPP, "SET_BACKEND_FEATURES IOTLB_BATCH (vhost-vdpa's)");

	f = F(VIRTIO_F_ACCESS_PLATFORM);
	n = ioctl(c.vfd, VHOST_SET_FEATURES, &f);
	EXPECT(n ? -errno : 0, 0, "SET_FEATURES ACCESS_PLATFORM, no owner");

	/* Malformed: EINVAL. */
	n = write(c.vfd, raw, 3);
	EXPECT(n < 0 ? -errno : n, -EINVAL, "write of 3 bytes");
	raw[0] = 3;
	n = write(c.vfd, raw, MSG_SIZE);
	EXPECT(n < 0 ? -errno : n, -EINVAL, "message type 3");
	raw[0] = VHOST_IOTLB_MSG;
	n = write(c.vfd, raw, 39);
	EXPECT(n < 0 ? -errno : n, -EINVAL, "v1 message cut at 39 bytes");
	n = write(c.vfd, raw, 40);
	EXPECT(n < 0 ? -errno : n, -EFAULT, "v1 message of 40 bytes, iotlb type 0");
	EXPECT(map(&c, 0x1000, 0, VHOST_ACCESS_RW), -EINVAL, "UPDATE of size 0");

	/* Well formed, but not carried out: EFAULT. */
	EXPECT(map(&c, 0x1000, PAGE, VHOST_ACCESS_RW), 0, "UPDATE");
	EXPECT(iotlb_write(&c, false, VHOST_IOTLB_UPDATE, 0x2000, PAGE,
			   (uint64_t)(uintptr_t)G.mem, VHOST_ACCESS_RO), 0, "v1 UPDATE");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_UPDATE, ~0ULL - 0xfff, 0x2000,
			   (uint64_t)(uintptr_t)G.mem, VHOST_ACCESS_RO), -EFAULT,
	       "UPDATE whose IOVA range wraps");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_UPDATE, 0x3000, 0x2000, ~0ULL - 0xfff,
			   VHOST_ACCESS_RO), -EFAULT, "UPDATE whose user range wraps");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_UPDATE, 0x3000, PAGE, kaddr, VHOST_ACCESS_RW),
	       -EFAULT, "UPDATE to a kernel address");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_UPDATE, 0x3000, PAGE, kaddr, 0), 0,
	       "UPDATE to a kernel address, no permission (never checked)");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_INVALIDATE, 0x3000, 0, 0, 0), -EFAULT,
	       "INVALIDATE of size 0");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_INVALIDATE, 0x3000, ~0ULL, 0, 0), 0,
	       "INVALIDATE whose range wraps");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_MISS, 0x3000, PAGE, 0, 0), -EFAULT,
	       "a MISS written");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_ACCESS_FAIL, 0x3000, PAGE, 0, 0), -EFAULT,
	       "ACCESS_FAIL written");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0), -EFAULT,
	       "BATCH_BEGIN (no IOTLB_BATCH)");
	EXPECT(iotlb_write(&c, true, 77, 0, PAGE, 0, 0), -EFAULT, "iotlb type 77");

	/* A flood past max_iotlb_entries (2048): the oldest entries retire. */
	for (i = 0; i < 2100; i++) {
		n = iotlb_write(&c, i & 1, VHOST_IOTLB_UPDATE, 0x100000000ULL + i * PAGE, PAGE,
				(uint64_t)(uintptr_t)G.mem + (i % 16) * PAGE, VHOST_ACCESS_RW);
		if (n) {
			EXPECT(n, 0, "flood: UPDATE %u", i);
			break;
		}
	}
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_UPDATE, 0, ~0ULL, (uint64_t)(uintptr_t)G.mem,
			   0), -EFAULT, "UPDATE of [0, 2^64 - 2] at a user address: wraps");
	EXPECT(iotlb_write(&c, true, VHOST_IOTLB_UPDATE, 0, ~0ULL, 0, 0), 0,
	       "UPDATE of [0, 2^64 - 2] at user address 0, no permission");

	/* Reads with an IOTLB and nothing to read. */
	EXPECT(readable(&c, 0), 0, "poll with an IOTLB, nothing missed");
	EXPECT(rd(&c, MSG_SIZE, true), -EAGAIN, "non-blocking read");
	sigaction(SIGALRM, &sa, NULL);
	alarm(1);
	EXPECT(rd(&c, MSG_SIZE, false), -EINTR, "blocking read, interrupted after 1 s");
	alarm(0);

	/* The IOTLB goes with ACCESS_PLATFORM. */
	f = 0;
	n = ioctl(c.vfd, VHOST_SET_FEATURES, &f);
	EXPECT(n ? -errno : 0, 0, "SET_FEATURES without ACCESS_PLATFORM");
	EXPECT(map(&c, 0x1000, PAGE, VHOST_ACCESS_RW), -EFAULT, "UPDATE after the IOTLB went");
	EXPECT(rd(&c, MSG_SIZE, false), -EBADFD, "blocking read after the IOTLB went");
	ctx_close(&c);
	return r;
}

/*
 * Misses nobody answers: the device waits (no busy loop, no error), and RESET_OWNER or
 * close drops them. A miss read and one unread, then RESET_OWNER: nothing to read any
 * more, and no IOTLB (EBADFD). The other queue's miss is reported beside the first.
 */
static int case_miss_unanswered(const char *dev)
{
	struct ctx c;
	int r = ctx_open(&c, dev, true);

	CHECK(r);
	r = R_FAIL;
	if (map(&c, c.tx.used_gpa, PAGE, VHOST_ACCESS_RW) || map(&c, c.rx.used_gpa, PAGE,
								    VHOST_ACCESS_RW))
		goto out;
	if (set_backend(&c, 1, c.tap.fd) || set_backend(&c, 0, c.tap.fd))
		goto out;
	CHECK(r = expect_miss(&c, true, c.tx.desc_gpa, VHOST_ACCESS_RO, "TX prefetch"));
	/* RX runs on a kick: its miss waits unread, beside TX's read one. */
	vr_kick(&c.rx);
	r = R_FAIL;
	if (!readable(&c, TMO)) {
		ktap_diag("%s: no RX miss after its kick", c.name);
		goto out;
	}
	sleep_ms(SETTLE);
	vr_kick(&c.tx);
	vr_kick(&c.rx);
	if (err_signalled(&c, SETTLE)) {
		ktap_diag("%s: unanswered misses signalled the err eventfd", c.name);
		goto out;
	}
	if (ioctl(c.vfd, VHOST_RESET_OWNER) < 0) {
		ktap_diag("%s: RESET_OWNER: %s", c.name, errno_name(errno));
		goto out;
	}
	if (readable(&c, 0) || rd(&c, MSG_SIZE, true) != -EAGAIN ||
	    rd(&c, MSG_SIZE, false) != -EBADFD) {
		ktap_diag("%s: after RESET_OWNER: a miss still readable, or the IOTLB still there",
			  c.name);
		goto out;
	}
	r = R_PASS;
out:
	ctx_close(&c);
	return r;
}

/* Close with a miss unread: the device goes with it (kmemleak checks at the end). */
static int case_close_with_miss(const char *dev)
{
	struct ctx c;
	int r = ctx_open(&c, dev, false);

	CHECK(r);
	r = R_FAIL;
	if (map(&c, c.tx.used_gpa, PAGE, VHOST_ACCESS_RW) || set_backend(&c, 1, c.tap.fd))
		goto out;
	if (!readable(&c, TMO)) {
		ktap_diag("%s: no miss after attaching TX", c.name);
		goto out;
	}
	r = R_PASS;
out:
	ctx_close(&c);
	return r;
}

/* ---- random messages, both devices side by side ------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A random 64-bit value of the kinds that matter: small, page-aligned, user, kernel, edge. */
static uint64_t rnd_addr(void)
{
	switch (rnd() % 6) {
	case 0: return rnd() % 0x10000;
	case 1: return (rnd() % 0x1000) * PAGE;
	case 2: return (uint64_t)(uintptr_t)G.mem + rnd() % G_MEM_SIZE;
	case 3: return 0xffff888000000000ULL + rnd() % 0x100000;
	case 4: return ~0ULL - rnd() % 0x2000;
	default: return rnd();
	}
}

/* One random step on @fd: a message written (mostly well formed), a read, or a feature
 * change. Returns its result: a byte count, or -errno. */
static long long rnd_step(int fd, uint64_t r0, uint64_t r1, uint64_t r2, uint64_t r3,
			  uint64_t r4)
{
	uint8_t buf[96] = { 0 };
	struct vhost_iotlb_msg m = { .iova = r1, .size = r2, .uaddr = r3,
				     .perm = r4 & 0xff, .type = (r4 >> 8) % 8 };
	uint64_t f;
	uint32_t type;
	long long n;

	switch (r0 % 10) {
	case 0: /* a feature change: the IOTLB comes and goes */
		f = r1 & 1 ? F(VIRTIO_F_ACCESS_PLATFORM) : 0;
		return ioctl(fd, VHOST_SET_FEATURES, &f) < 0 ? -errno : 0;
	case 1: /* a non-blocking read of a random length */
		fcntl(fd, F_SETFL, O_NONBLOCK);
		n = read(fd, buf, r1 % sizeof(buf));
		fcntl(fd, F_SETFL, 0);
		return n < 0 ? -errno : n;
	case 2: /* random bytes of a random length */
		for (n = 0; n < (long long)sizeof(buf); n++)
			buf[n] = rnd();
		n = write(fd, buf, r1 % sizeof(buf));
		return n < 0 ? -errno : n;
	default: /* a message, v1 or v2, maybe cut short */
		type = r0 & 0x100 ? VHOST_IOTLB_MSG_V2 : VHOST_IOTLB_MSG;
		memcpy(buf, &type, 4);
		memcpy(buf + 8, &m, sizeof(m));
		n = write(fd, buf, r0 & 0x7000 ? MSG_SIZE : (r0 >> 16) % MSG_SIZE);
		return n < 0 ? -errno : n;
	}
}

#define REF "/dev/vhost-net"
#define DUT "/dev/vhost-rs-net"

/*
 * The same random message sequences (seeded, 40 episodes of 300 steps) on both devices,
 * each episode on fresh fds, compared step by step: every result must be the same.
 */
TEST(iotlb_random_msgs)
{
	unsigned int ep, i;
	int fr, fd;

	if (access(REF, F_OK) || access(DUT, F_OK))
		SKIP(return, "needs both %s and %s", REF, DUT);
	ASSERT_EQ(0, guest_init(&G));
	for (ep = 1; ep <= 40; ep++) {
		fr = open(REF, O_RDWR | O_CLOEXEC);
		fd = open(DUT, O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, fr);
		ASSERT_LE(0, fd);
		if (ep % 2) {
			ASSERT_EQ(0, ioctl(fr, VHOST_SET_OWNER));
			ASSERT_EQ(0, ioctl(fd, VHOST_SET_OWNER));
		}
		rng_state = ep * 0x9e3779b97f4a7c15ULL;
		for (i = 0; i < 300; i++) {
			uint64_t r0 = rnd(), r1 = rnd_addr(), r2 = rnd() % 4 ? rnd() % 0x10000 :
				      rnd_addr(), r3 = rnd_addr(), r4 = rnd();
			uint64_t saved = rng_state;
			long long a = rnd_step(fr, r0, r1, r2, r3, r4), b;

			rng_state = saved;	/* the same random bytes for both */
			b = rnd_step(fd, r0, r1, r2, r3, r4);
			ASSERT_EQ(a, b) TH_LOG("episode %u step %u (r0 %#llx): %s %lld, %s %lld", ep,
					       i, (unsigned long long)r0, REF, a, DUT, b);
		}
		close(fr);
		close(fd);
	}
}

VCASE_FIXTURE(iotlb, NULL);

TEST_F_TIMEOUT(iotlb, msgs, CASE_TMO_S)
{
	vcase_run(_metadata, case_msgs, self->path);
}

TEST_F_TIMEOUT(iotlb, tx_misses, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_misses, self->path);
}

TEST_F_TIMEOUT(iotlb, rx_misses, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_misses, self->path);
}

TEST_F_TIMEOUT(iotlb, rx_dirty_log, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_dirty_log, self->path);
}

TEST_F_TIMEOUT(iotlb, miss_unanswered, CASE_TMO_S)
{
	vcase_run(_metadata, case_miss_unanswered, self->path);
}

TEST_F_TIMEOUT(iotlb, close_with_miss, CASE_TMO_S)
{
	vcase_run(_metadata, case_close_with_miss, self->path);
}

TEST_HARNESS_MAIN
