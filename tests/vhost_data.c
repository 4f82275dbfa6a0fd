// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_data: the data path, driven from a fake guest the way QEMU drives it.
 *
 * Every case runs against both devices, as the two variants of fixture `data` of the
 * kernel's kselftest_harness.h (data.vhost_net.<case>, data.vhost_rs_net.<case>), each in a
 * process and network namespace of its own (vcase.h); a device that is not there skips its
 * tests. `-v vhost_rs_net` runs one device, `-t <case>` one case, `-l` lists them. A tap
 * interface is the backend of both queues (RX 0, TX 1), guest memory is a memfd
 * exposed as three regions (see guest.h), rings have 256 entries. Frames the
 * guest transmits are read back byte for byte from an AF_PACKET socket on the
 * tap interface; frames sent out of that interface from an AF_PACKET socket
 * must land byte for byte in the guest's RX buffers. Every wait is bounded.
 * Prints KTAP (the harness's); exits 1 if any test failed.
 */
#include <sched.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "vcase.h"
#include "frames.h"

#define F(b)	(1ULL << (b))
#define TMO	5000	/* ms: any single wait */
#define SETTLE	200	/* ms: to see that nothing more comes */
#define MTU	65521	/* the tap's maximum (65535 - ETH_HLEN) */

/*
 * What QEMU passes to vhost for a Linux guest, minus what each case changes. Not
 * VIRTIO_F_ANY_LAYOUT: for vhost-net bit 27 means VHOST_NET_F_VIRTIO_NET_HDR (vhost
 * adds/strips the header), so QEMU never passes it through (it is not in its
 * kernel_feature_bits) and sets bit 27 only for a tap without IFF_VNET_HDR.
 */
#define BASE_FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | \
		       F(VIRTIO_RING_F_INDIRECT_DESC))
#define QEMU_FEATURES (BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_F_NOTIFY_ON_EMPTY))

static uint8_t frame[70000], got[70000], hbuf[64];

static const char *feature_name(int bit)
{
	switch (bit) {
	case VIRTIO_F_VERSION_1: return "VIRTIO_F_VERSION_1";
	case VIRTIO_NET_F_MRG_RXBUF: return "VIRTIO_NET_F_MRG_RXBUF";
	case VIRTIO_RING_F_EVENT_IDX: return "VIRTIO_RING_F_EVENT_IDX";
	case VIRTIO_RING_F_INDIRECT_DESC: return "VIRTIO_RING_F_INDIRECT_DESC";
	case VIRTIO_F_NOTIFY_ON_EMPTY: return "VIRTIO_F_NOTIFY_ON_EMPTY";
	case VHOST_NET_F_VIRTIO_NET_HDR: return "VHOST_NET_F_VIRTIO_NET_HDR";
	default: return "feature bit ?";
	}
}

/* ---- one device, set up as QEMU does ---------------------------------------------- */

struct rxbuf {
	struct vr_seg seg[3];
	unsigned int n;
	uint32_t size;
};

struct ctx {
	const char *dev, *name;
	int vfd, cap, snd;
	struct tap tap;
	struct vr rx, tx;
	uint64_t features;
	unsigned int hdr_len;		/* virtio-net header the guest sees */
	struct galloc ab, c;		/* buffers: crossing GPA 2M; in region C */
	struct rxbuf rxb[VR_NUM];	/* by head */
	uint16_t posted[VR_NUM];	/* RX heads in posting order */
	uint16_t post_head, post_tail;
};

static void ctx_close(struct ctx *c)
{
	/* The device first: it holds the tap socket and the eventfds. */
	if (c->vfd >= 0)
		close(c->vfd);
	if (c->tap.fd >= 0)
		close(c->tap.fd);
	if (c->cap >= 0)
		close(c->cap);
	if (c->snd >= 0)
		close(c->snd);
	vr_close(&c->rx);
	vr_close(&c->tx);
	c->vfd = c->tap.fd = c->cap = c->snd = -1;
}

/*
 * Opens @dev, negotiates @want (SKIP if the device lacks a bit), creates the tap
 * (with IFF_VNET_HDR unless vhost itself handles the header) and wires up both
 * queues. @cap_vnet: the capture socket gets PACKET_VNET_HDR.
 */
static int ctx_open_hi(struct ctx *c, const char *dev, uint64_t want, uint64_t want_hi,
		       bool cap_vnet);

static int ctx_open(struct ctx *c, const char *dev, uint64_t want, bool cap_vnet)
{
	return ctx_open_hi(c, dev, want, 0, cap_vnet);
}

/*
 * As ctx_open(), with feature bits 64..127 @want_hi as well (through the FEATURES_ARRAY
 * ioctls; a device that does not offer them fails, it does not skip): with a UDP tunnel
 * GSO bit, the header is 24 bytes (struct virtio_net_hdr_v1_hash_tunnel).
 */
static int ctx_open_hi(struct ctx *c, const char *dev, uint64_t want, uint64_t want_hi,
		       bool cap_vnet)
{
	bool vhost_hdr = want & F(VHOST_NET_F_VIRTIO_NET_HDR);
	uint64_t have, missing;
	const char *what;
	unsigned int i;
	int r, len;

	memset(c, 0, sizeof(*c));
	c->vfd = c->cap = c->snd = c->tap.fd = -1;
	c->rx.kick = c->rx.call = c->tx.kick = c->tx.call = -1;
	c->dev = dev;
	c->name = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
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
	missing = want & ~have;
	if (missing) {
		len = snprintf(skip_reason, sizeof(skip_reason), "%s does not offer", c->name);
		for (i = 0; i < 64 && len < (int)sizeof(skip_reason); i++)
			if (missing & F(i))
				len += snprintf(skip_reason + len, sizeof(skip_reason) - len, " %s",
						feature_name(i));
		if (len < (int)sizeof(skip_reason))
			snprintf(skip_reason + len, sizeof(skip_reason) - len, " (offers %#llx)",
				 (unsigned long long)have);
		return R_SKIP;
	}
	if (want_hi) {
		uint64_t a[3] = { 2, 0, 0 };

		if (ioctl(c->vfd, VHOST_GET_FEATURES_ARRAY, a) < 0)
			FAIL("%s: VHOST_GET_FEATURES_ARRAY: %s", c->name, errno_name(errno));
		if (want_hi & ~a[2])
			FAIL("%s does not offer feature bits %#llx << 64 (offers %#llx << 64)",
			     c->name, (unsigned long long)(want_hi & ~a[2]),
			     (unsigned long long)a[2]);
	}
	c->features = want;
	c->hdr_len = want & (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF)) ?
		     sizeof(struct virtio_net_hdr_mrg_rxbuf) : sizeof(struct virtio_net_hdr);
	if (want_hi & (F(VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64) |
		       F(VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64)))
		c->hdr_len = sizeof(struct virtio_net_hdr_v1_hash_tunnel);
	memset(G.mem, 0, G_MEM_SIZE);

	r = tap_create(&c->tap, IFF_TAP | IFF_NO_PI | (vhost_hdr ? 0 : IFF_VNET_HDR),
		       vhost_hdr ? 0 : c->hdr_len, MTU, &what);
	if (r)
		FAIL("tap: %s: %s", what, strerror(-r));
	c->cap = pkt_capture_open(c->tap.ifindex, cap_vnet);
	if (c->cap < 0)
		FAIL("capture socket: %s", strerror(-c->cap));
	c->snd = pkt_sender_open();
	if (c->snd < 0)
		FAIL("sender socket: %s", strerror(-c->snd));
	if (vr_init(&c->rx, &G, G_C_GPA) || vr_init(&c->tx, &G, G_C_GPA + 0x4000))
		FAIL("eventfd: %s", strerror(errno));
	c->ab = (struct galloc){ G_AB_BOUNDARY - 60000, 2 * G_AB_BOUNDARY };
	c->c = (struct galloc){ G_C_GPA + 0x100000, G_C_GPA + G_C_SIZE };

	if (ioctl(c->vfd, VHOST_SET_OWNER) < 0)
		FAIL("%s: VHOST_SET_OWNER: %s", c->name, errno_name(errno));
	if (want_hi) {
		uint64_t a[3] = { 2, want, want_hi };

		if (ioctl(c->vfd, VHOST_SET_FEATURES_ARRAY, a) < 0)
			FAIL("%s: VHOST_SET_FEATURES_ARRAY %#llx %#llx: %s", c->name,
			     (unsigned long long)want, (unsigned long long)want_hi,
			     errno_name(errno));
	} else if (ioctl(c->vfd, VHOST_SET_FEATURES, &want) < 0) {
		FAIL("%s: VHOST_SET_FEATURES %#llx: %s", c->name, (unsigned long long)want,
		     errno_name(errno));
	}
	r = g_set_mem_table(&G, c->vfd);
	if (r)
		FAIL("%s: VHOST_SET_MEM_TABLE: %s", c->name, errno_name(-r));
	r = vr_setup_vhost(&c->rx, c->vfd, 0, &what);
	if (!r)
		r = vr_setup_vhost(&c->tx, c->vfd, 1, &what);
	if (r)
		FAIL("%s: %s: %s", c->name, what, errno_name(-r));
	for (i = 0; i < 2; i++) {
		struct vhost_vring_file b = { .index = i, .fd = c->tap.fd };

		if (ioctl(c->vfd, VHOST_NET_SET_BACKEND, &b) < 0)
			FAIL("%s: VHOST_NET_SET_BACKEND %u: %s", c->name, i, errno_name(errno));
	}
	pkt_drain(c->cap);
	return R_PASS;
}

/* ---- TX ------------------------------------------------------------------------------ */

enum layout { L_ONE, L_SPLIT, L_INDIRECT };
static const char *const layout_name[] = { "1 desc", "3 descs", "indirect" };

/*
 * Puts header + frame into guest memory as @lay describes and adds the chain:
 *   L_ONE:      one descriptor, straddling GPA 2M (regions A/B: not contiguous in
 *               userspace);
 *   L_SPLIT:    header alone in region A, first half of the frame in region C,
 *               second half straddling GPA 2M;
 *   L_INDIRECT: L_SPLIT through an indirect table in region C.
 * @slot (0..) places the buffers of packets that are in flight together apart.
 * Returns the head, or -1.
 */
static int tx_add(struct ctx *c, const void *hdr, const uint8_t *f, size_t len,
		  enum layout lay, unsigned int slot)
{
	size_t tot = c->hdr_len + len, a = (len + 1) / 2, b = len - a;
	struct vr_seg s[3];
	unsigned int n;
	uint64_t gpa;

	if (lay == L_ONE) {
		gpa = slot ? galloc(&c->ab, tot) : G_AB_BOUNDARY - tot / 2;
		if (!gpa)
			return -1;
		g_write(&G, gpa, hdr, c->hdr_len);
		g_write(&G, gpa + c->hdr_len, f, len);
		s[0] = (struct vr_seg){ gpa, tot, false };
		n = 1;
	} else {
		s[0] = (struct vr_seg){ 0x1000 + slot * 64, c->hdr_len, false };
		s[1] = (struct vr_seg){ G_C_GPA + 0x20000, a, false };
		s[2] = (struct vr_seg){ G_AB_BOUNDARY - b / 2, b, false };
		g_write(&G, s[0].gpa, hdr, c->hdr_len);
		g_write(&G, s[1].gpa, f, a);
		g_write(&G, s[2].gpa, f + a, b);
		n = b ? 3 : 2;
	}
	return vr_add(&c->tx, s, n, lay == L_INDIRECT ? G_C_GPA + 0x18000 : 0);
}

/* Takes the next TX used element: must be @head with length 0 (nothing written). */
static int tx_check_used(struct ctx *c, int head, const char *what)
{
	uint32_t id = 0, len = 0;

	if (vr_get_used(&c->tx, &id, &len) != 1)
		FAIL("%s: %s: TX used element id %u len %u: not a posted head", c->name, what, id, len);
	if ((int)id != head || len != 0)
		FAIL("%s: %s: TX used element {id %u, len %u}, expected {id %d, len 0}",
		     c->name, what, id, len, head);
	return R_PASS;
}

/* Reads the next frame off the tap interface and compares it with @f. */
static int tx_check_frame(struct ctx *c, const uint8_t *f, size_t len, const char *what)
{
	ssize_t n = pkt_recv(c->cap, got, sizeof(got), TMO);
	int d;

	if (n < 0)
		FAIL("%s: %s: no frame on %s within %d ms", c->name, what, c->tap.name, TMO);
	if ((size_t)n != len)
		FAIL("%s: %s: frame of %zd bytes on %s, expected %zu", c->name, what, n, c->tap.name, len);
	d = first_diff(got, f, len);
	if (d >= 0)
		FAIL("%s: %s: frame differs at byte %d: %#x, expected %#x", c->name, what, d, got[d], f[d]);
	return R_PASS;
}

/* One frame through TX: add, kick, wait for the call, check used ring and the wire. */
static int tx_one(struct ctx *c, const void *hdr, const uint8_t *f, size_t len, enum layout lay)
{
	char what[64];
	int head;

	snprintf(what, sizeof(what), "TX %zu bytes, %s", len, layout_name[lay]);
	vr_set_used_event(&c->tx, c->tx.last_used);
	head = tx_add(c, hdr, f, len, lay, 0);
	if (head < 0)
		FAIL("%s: %s: ring full", c->name, what);
	vr_publish(&c->tx, head);
	vr_kick(&c->tx);
	if (!vr_wait_call(&c->tx, TMO))
		FAIL("%s: %s: no call within %d ms (used idx %u, avail idx %u)", c->name, what, TMO,
		     vr_used_idx(&c->tx), c->tx.avail_idx);
	if (!vr_wait_used(&c->tx, 1, 100))
		FAIL("%s: %s: call signalled but used idx still %u", c->name, what, vr_used_idx(&c->tx));
	if (tx_check_used(c, head, what) != R_PASS)
		return R_FAIL;
	return tx_check_frame(c, f, len, what);
}

static const size_t tx_lens[] = { 14, 60, 64, 1514, 9000, 65535 };
#define NLENS(a) (sizeof(a) / sizeof((a)[0]))

static int tx_sizes_layout(const char *dev, enum layout lay, uint64_t features)
{
	struct ctx c;
	unsigned int i;
	int r = ctx_open(&c, dev, features, false);

	memset(hbuf, 0, sizeof(hbuf));	/* no offloads: GSO_NONE */
	for (i = 0; r == R_PASS && i < NLENS(tx_lens); i++) {
		frame_eth(frame, tx_lens[i], i);
		r = tx_one(&c, hbuf, frame, tx_lens[i], lay);
	}
	ctx_close(&c);
	return r;
}

/* Sizes 14..65535, header and frame in one descriptor straddling two regions. */
static int case_tx_sizes(const char *dev)
{
	return tx_sizes_layout(dev, L_ONE, QEMU_FEATURES);
}

/* The same, header alone and the frame over two more descriptors in other regions. */
static int case_tx_split(const char *dev)
{
	return tx_sizes_layout(dev, L_SPLIT, QEMU_FEATURES);
}

/* The same through an indirect table. */
static int case_tx_indirect(const char *dev)
{
	return tx_sizes_layout(dev, L_INDIRECT, QEMU_FEATURES);
}

/*
 * A 65535-byte TCP/IPv4 frame with GSO_TCPV4 (gso_size 1460, hdr_len 54, NEEDS_CSUM):
 * the tap must see one unsegmented frame, byte-exact, carrying the same GSO metadata
 * (read with PACKET_VNET_HDR).
 */
static int case_tx_gso_tcpv4(const char *dev)
{
	struct virtio_net_hdr_mrg_rxbuf h = {
		.hdr = {
			.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
			.hdr_len = 54,
			.gso_size = 1460,
			.csum_start = 34,
			.csum_offset = 16,
		},
	};
	const size_t len = 65535, vh = sizeof(struct virtio_net_hdr);
	struct virtio_net_hdr *ch = (void *)got;
	struct ctx c;
	ssize_t n;
	int head, d, r = ctx_open(&c, dev, QEMU_FEATURES, true);

	if (r != R_PASS)
		goto out;
	r = R_FAIL;
	frame_tcp4(frame, len, 7);
	vr_set_used_event(&c.tx, c.tx.last_used);
	head = tx_add(&c, &h, frame, len, L_SPLIT, 0);
	vr_publish(&c.tx, head);
	vr_kick(&c.tx);
	if (!vr_wait_call(&c.tx, TMO) || !vr_wait_used(&c.tx, 1, 100)) {
		ktap_diag("%s: GSO frame: no call/used within %d ms (used idx %u)", c.name, TMO,
			  vr_used_idx(&c.tx));
		goto out;
	}
	if (tx_check_used(&c, head, "GSO frame") != R_PASS)
		goto out;
	n = pkt_recv(c.cap, got, sizeof(got), TMO);
	if (n < 0) {
		ktap_diag("%s: GSO frame: nothing on %s within %d ms", c.name, c.tap.name, TMO);
		goto out;
	}
	if ((size_t)n != vh + len) {
		ktap_diag("%s: GSO frame: %zd bytes on %s, expected %zu (segmented?)", c.name,
			  n - (ssize_t)vh, c.tap.name, len);
		goto out;
	}
	d = first_diff(got + vh, frame, len);
	if (d >= 0) {
		ktap_diag("%s: GSO frame differs at byte %d", c.name, d);
		goto out;
	}
	if (ch->gso_type != VIRTIO_NET_HDR_GSO_TCPV4 || ch->gso_size != 1460 ||
	    !(ch->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || ch->csum_start != 34 ||
	    ch->csum_offset != 16) {
		ktap_diag("%s: GSO frame arrived with gso_type %u gso_size %u flags %#x csum %u/%u, expected TCPV4 1460 NEEDS_CSUM 34/16",
			  c.name, ch->gso_type, ch->gso_size, ch->flags, ch->csum_start, ch->csum_offset);
		goto out;
	}
	r = R_PASS;
out:
	ctx_close(&c);
	return r;
}

/*
 * 150 frames of varying size in flight at once, one kick: all used, in order, with
 * length 0, and all on the wire in order. More than vhost-net's batch of 64.
 */
static int case_tx_batch(const char *dev)
{
	enum { N = 150 };
	static uint8_t frames[N][1514];
	int heads[N], head, r = R_FAIL;
	size_t lens[N];
	struct ctx c;
	unsigned int i;
	char what[32];

	r = ctx_open(&c, dev, QEMU_FEATURES, false);
	if (r != R_PASS)
		goto out;
	r = R_FAIL;
	memset(hbuf, 0, sizeof(hbuf));
	vr_set_used_event(&c.tx, c.tx.last_used);
	for (i = 0; i < N; i++) {
		lens[i] = 60 + (i * 97) % 1455;
		frame_eth(frames[i], lens[i], i);
		heads[i] = tx_add(&c, hbuf, frames[i], lens[i], L_ONE, i + 1);
		if (heads[i] < 0) {
			ktap_diag("%s: out of ring or memory at frame %u", c.name, i);
			goto out;
		}
		vr_publish(&c.tx, heads[i]);
	}
	vr_kick(&c.tx);
	if (!vr_wait_used(&c.tx, N, TMO)) {
		ktap_diag("%s: %u of %d frames used within %d ms", c.name, vr_used_pending(&c.tx), N, TMO);
		goto out;
	}
	if (!vr_wait_call(&c.tx, TMO)) {
		ktap_diag("%s: all used but no call", c.name);
		goto out;
	}
	for (i = 0; i < N; i++) {
		snprintf(what, sizeof(what), "batch frame %u", i);
		head = heads[i];
		if (tx_check_used(&c, head, what) != R_PASS)
			goto out;
	}
	for (i = 0; i < N; i++) {
		snprintf(what, sizeof(what), "batch frame %u", i);
		if (tx_check_frame(&c, frames[i], lens[i], what) != R_PASS)
			goto out;
	}
	r = R_PASS;
out:
	ctx_close(&c);
	return r;
}

/* ---- RX ------------------------------------------------------------------------------ */

/* Posts one RX buffer of @n segments (@indirect: through a table), remembering it. */
static int rx_post(struct ctx *c, const struct vr_seg *s, unsigned int n, bool indirect)
{
	uint64_t tbl = indirect ? galloc(&c->c, 16 * n) : 0;
	int head = vr_add(&c->rx, s, n, tbl);
	unsigned int i;

	if (head < 0)
		return -1;
	memcpy(c->rxb[head].seg, s, n * sizeof(*s));
	c->rxb[head].n = n;
	c->rxb[head].size = 0;
	for (i = 0; i < n; i++)
		c->rxb[head].size += s[i].len;
	c->posted[c->post_tail++ % VR_NUM] = head;
	vr_publish(&c->rx, head);
	return head;
}

/* @n buffers of @size bytes, one descriptor each, alternately straddling 2M and in C. */
static int rx_post_small(struct ctx *c, unsigned int n, uint32_t size)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct vr_seg s = { i % 2 ? galloc(&c->c, size) : galloc(&c->ab, size), size, true };

		if (!s.gpa || rx_post(c, &s, 1, false) < 0)
			FAIL("%s: cannot post RX buffer %u", c->name, i);
	}
	return R_PASS;
}

/*
 * @n big buffers (header + 65550 bytes, as a non-mergeable guest posts them): the
 * header in its own descriptor, the data in two, in different regions; every other
 * one through an indirect table (if INDIRECT_DESC is negotiated).
 */
static int rx_post_big(struct ctx *c, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct vr_seg s[3] = {
			{ galloc(&c->c, c->hdr_len), c->hdr_len, true },
			{ galloc(&c->ab, 30000), 30000, true },
			{ galloc(&c->c, 35550), 35550, true },
		};

		bool ind = (c->features & F(VIRTIO_RING_F_INDIRECT_DESC)) && i % 2;

		if (!s[0].gpa || !s[1].gpa || !s[2].gpa || rx_post(c, s, 3, ind) < 0)
			FAIL("%s: cannot post big RX buffer %u", c->name, i);
	}
	return R_PASS;
}

/* Reads @len bytes of RX buffer @head (across its segments) into @dst. */
static void rx_read(struct ctx *c, unsigned int head, uint8_t *dst, uint32_t len)
{
	unsigned int i;

	for (i = 0; i < c->rxb[head].n && len; i++) {
		uint32_t k = len < c->rxb[head].seg[i].len ? len : c->rxb[head].seg[i].len;

		g_read(&G, c->rxb[head].seg[i].gpa, dst, k);
		dst += k;
		len -= k;
	}
}

/*
 * The frame @f sent into the tap must fill the next @nbufs posted buffers (whole
 * buffers but the last), with header @hdr (NULL: all zeroes) but num_buffers (= @nbufs,
 * when the header has that field), then the frame. With @send false the frame is
 * already on its way.
 */
static int rx_expect_hdr(struct ctx *c, const void *hdr, const uint8_t *f, size_t len,
			 unsigned int nbufs, bool send)
{
	uint8_t want_hdr[sizeof(struct virtio_net_hdr_v1_hash_tunnel)] = { 0 };
	size_t tot = c->hdr_len + len, off = 0;
	unsigned int k;
	uint32_t id = 0, ulen = 0;
	int r, d;

	if (send) {
		vr_set_used_event(&c->rx, c->rx.last_used);
		r = pkt_send(c->snd, c->tap.ifindex, f, len);
		if (r)
			FAIL("%s: sending %zu bytes into %s: %s", c->name, len, c->tap.name, strerror(-r));
	}
	if (!vr_wait_call(&c->rx, TMO))
		FAIL("%s: RX %zu bytes: no call within %d ms (used idx %u)", c->name, len, TMO,
		     vr_used_idx(&c->rx));
	if (!vr_wait_used(&c->rx, nbufs, 500))
		FAIL("%s: RX %zu bytes: %u used elements, expected %u", c->name, len,
		     vr_used_pending(&c->rx), nbufs);
	for (k = 0; k < nbufs; k++) {
		uint16_t want_id = c->posted[c->post_head++ % VR_NUM];
		uint32_t want_len = k + 1 < nbufs ? c->rxb[want_id].size : tot - off;

		if (vr_get_used(&c->rx, &id, &ulen) != 1)
			FAIL("%s: RX %zu bytes: used element %u has id %u: not a posted head",
			     c->name, len, k, id);
		if (id != want_id || ulen != want_len)
			FAIL("%s: RX %zu bytes: used element %u is {id %u, len %u}, expected {id %u, len %u}",
			     c->name, len, k, id, ulen, want_id, want_len);
		if (off + ulen > sizeof(got))
			FAIL("%s: RX %zu bytes: too much data", c->name, len);
		rx_read(c, id, got + off, ulen);
		off += ulen;
	}
	if (hdr)
		memcpy(want_hdr, hdr, c->hdr_len);
	if (c->hdr_len >= sizeof(struct virtio_net_hdr_mrg_rxbuf))
		((struct virtio_net_hdr_mrg_rxbuf *)want_hdr)->num_buffers = nbufs;
	d = first_diff(got, want_hdr, c->hdr_len);
	if (d >= 0) {
		char hex[3 * sizeof(want_hdr) + 1], want[3 * sizeof(want_hdr) + 1];

		for (k = 0; k < c->hdr_len; k++) {
			sprintf(hex + 3 * k, " %02x", got[k]);
			sprintf(want + 3 * k, " %02x", want_hdr[k]);
		}
		FAIL("%s: RX %zu bytes: header is%s, expected%s", c->name, len, hex, want);
	}
	d = first_diff(got + c->hdr_len, f, len);
	if (d >= 0)
		FAIL("%s: RX %zu bytes: data differs at byte %d: %#x, expected %#x", c->name, len,
		     d, got[c->hdr_len + d], f[d]);
	return R_PASS;
}

static int rx_expect(struct ctx *c, const uint8_t *f, size_t len, unsigned int nbufs, bool send)
{
	return rx_expect_hdr(c, NULL, f, len, nbufs, send);
}

/* Nothing more may arrive on RX within SETTLE ms. */
static int rx_expect_nothing(struct ctx *c, const char *when)
{
	sleep_ms(SETTLE);
	if (vr_used_pending(&c->rx))
		FAIL("%s: %s: %u unexpected RX used elements (first len %u)", c->name, when,
		     vr_used_pending(&c->rx), c->rx.used->ring[c->rx.last_used % VR_NUM].len);
	return R_PASS;
}

static const size_t rx_lens[] = { 60, 1514, 9000, 65000 };

/* MRG_RXBUF, 1536-byte buffers: frames spread over ceil((12 + len) / 1536) of them. */
static int case_rx_mrg(const char *dev)
{
	struct ctx c;
	unsigned int i;
	int r = ctx_open(&c, dev, QEMU_FEATURES, false);

	if (r == R_PASS)
		r = rx_post_small(&c, 200, 1536);
	vr_kick(&c.rx);
	for (i = 0; r == R_PASS && i < NLENS(rx_lens); i++) {
		frame_eth(frame, rx_lens[i], 100 + i);
		r = rx_expect(&c, frame, rx_lens[i], (c.hdr_len + rx_lens[i] + 1535) / 1536, true);
	}
	if (r == R_PASS)
		r = rx_expect_nothing(&c, "after the frames");
	ctx_close(&c);
	return r;
}

/* No MRG_RXBUF (VERSION_1: 12-byte header, num_buffers 1): one big buffer per frame. */
static int case_rx_big(const char *dev)
{
	struct ctx c;
	unsigned int i;
	int r = ctx_open(&c, dev, QEMU_FEATURES & ~F(VIRTIO_NET_F_MRG_RXBUF), false);

	if (r == R_PASS)
		r = rx_post_big(&c, NLENS(rx_lens));
	vr_kick(&c.rx);
	for (i = 0; r == R_PASS && i < NLENS(rx_lens); i++) {
		frame_eth(frame, rx_lens[i], 200 + i);
		r = rx_expect(&c, frame, rx_lens[i], 1, true);
	}
	if (r == R_PASS)
		r = rx_expect_nothing(&c, "after the frames");
	ctx_close(&c);
	return r;
}

/*
 * No feature bits at all (a legacy guest): a 10-byte header and no num_buffers (a
 * device writing one would corrupt the frame's first bytes), no indirect, no event
 * idx. TX of every size in one and in three descriptors, RX into big buffers.
 */
static int case_no_features(const char *dev)
{
	struct ctx c;
	unsigned int i;
	int r = ctx_open(&c, dev, 0, false);

	memset(hbuf, 0, sizeof(hbuf));
	for (i = 0; r == R_PASS && i < 2 * NLENS(tx_lens); i++) {
		frame_eth(frame, tx_lens[i / 2], 300 + i);
		r = tx_one(&c, hbuf, frame, tx_lens[i / 2], (enum layout)(i % 2));
	}
	if (r == R_PASS)
		r = rx_post_big(&c, NLENS(rx_lens));
	vr_kick(&c.rx);
	for (i = 0; r == R_PASS && i < NLENS(rx_lens); i++) {
		frame_eth(frame, rx_lens[i], 310 + i);
		r = rx_expect(&c, frame, rx_lens[i], 1, true);
	}
	ctx_close(&c);
	return r;
}

/*
 * VHOST_NET_F_VIRTIO_NET_HDR: the tap has no IFF_VNET_HDR, vhost strips the guest's
 * header on TX and writes one (zeroes, num_buffers) on RX.
 */
static int case_vhost_net_hdr(const char *dev)
{
	struct ctx c;
	unsigned int i;
	int r = ctx_open(&c, dev, QEMU_FEATURES | F(VHOST_NET_F_VIRTIO_NET_HDR), false);

	memset(hbuf, 0, sizeof(hbuf));
	for (i = 0; r == R_PASS && i < NLENS(tx_lens); i++) {
		frame_eth(frame, tx_lens[i], 400 + i);
		r = tx_one(&c, hbuf, frame, tx_lens[i], (enum layout)(i % 3));
	}
	if (r == R_PASS)
		r = rx_post_small(&c, 100, 1536);
	vr_kick(&c.rx);
	for (i = 0; r == R_PASS && i < NLENS(rx_lens); i++) {
		frame_eth(frame, rx_lens[i], 410 + i);
		r = rx_expect(&c, frame, rx_lens[i], (c.hdr_len + rx_lens[i] + 1535) / 1536, true);
	}
	ctx_close(&c);
	return r;
}

/*
 * Frames that arrive while no RX buffer is posted wait in the tap (no used element, no
 * call), and are delivered in order once buffers are posted and the queue kicked.
 * No feature bits: 10-byte header, 1536-byte buffers hold either frame.
 */
static int case_rx_wait_for_buffers(const char *dev)
{
	static uint8_t f2[1514];
	struct ctx c;
	int r = ctx_open(&c, dev, 0, false);

	if (r != R_PASS)
		goto out;
	frame_eth(frame, 60, 500);
	frame_eth(f2, 1514, 501);
	vr_set_used_event(&c.rx, 0);
	if (pkt_send(c.snd, c.tap.ifindex, frame, 60) || pkt_send(c.snd, c.tap.ifindex, f2, 1514)) {
		ktap_diag("%s: sending into %s failed: %s", c.name, c.tap.name, strerror(errno));
		r = R_FAIL;
		goto out;
	}
	r = rx_expect_nothing(&c, "no RX buffers posted");
	if (r == R_PASS && vr_take_calls(&c.rx)) {
		ktap_diag("%s: RX call signalled without buffers", c.name);
		r = R_FAIL;
	}
	if (r == R_PASS)
		r = rx_post_small(&c, 8, 1536);
	vr_kick(&c.rx);
	if (r == R_PASS)
		r = rx_expect(&c, frame, 60, 1, false);
	if (r == R_PASS && !vr_wait_used(&c.rx, 1, TMO)) {
		ktap_diag("%s: second frame not delivered", c.name);
		r = R_FAIL;
	}
	if (r == R_PASS) {
		uint32_t id = 0, len = 0;
		uint16_t want = c.posted[c.post_head++ % VR_NUM];

		vr_get_used(&c.rx, &id, &len);
		rx_read(&c, id, got, len);
		if (id != want || len != c.hdr_len + 1514 || first_diff(got + c.hdr_len, f2, 1514) >= 0) {
			ktap_diag("%s: second frame: used {id %u, len %u}, expected {id %u, len %u}, data %s",
				  c.name, id, len, want, c.hdr_len + 1514,
				  first_diff(got + c.hdr_len, f2, 1514) >= 0 ? "differs" : "equal");
			r = R_FAIL;
		}
	}
	if (r == R_PASS)
		r = rx_expect_nothing(&c, "after the two frames");
out:
	ctx_close(&c);
	return r;
}

/*
 * Without MRG_RXBUF a frame larger than the buffer is dropped (vhost-net: "truncate
 * and discard") and the buffer stays available: the next, small frame takes it.
 * No feature bits.
 */
static int case_rx_oversize_dropped(const char *dev)
{
	static uint8_t big[9000];
	struct ctx c;
	int r = ctx_open(&c, dev, 0, false);

	if (r == R_PASS)
		r = rx_post_small(&c, 2, 1536);
	vr_kick(&c.rx);
	if (r == R_PASS) {
		frame_eth(big, sizeof(big), 600);
		vr_set_used_event(&c.rx, 0);
		if (pkt_send(c.snd, c.tap.ifindex, big, sizeof(big))) {
			ktap_diag("%s: sending 9000 bytes failed", c.name);
			r = R_FAIL;
		}
	}
	if (r == R_PASS)
		r = rx_expect_nothing(&c, "9000-byte frame, 1536-byte buffers");
	if (r == R_PASS) {
		frame_eth(frame, 60, 601);
		r = rx_expect(&c, frame, 60, 1, true);
	}
	if (r == R_PASS)
		r = rx_expect_nothing(&c, "after the 60-byte frame");
	ctx_close(&c);
	return r;
}

/* ---- notifications ---------------------------------------------------------------- */

/*
 * Sends @n 60-byte frames one at a time (each used before the next is added) and
 * writes into @sig, for each, how many calls came after it (waiting up to TMO for
 * frames in @expect, a short while for the others). Returns R_FAIL if a frame is
 * not used or not on the wire.
 */
static int tx_one_by_one(struct ctx *c, unsigned int n, const bool *expect, uint64_t *sig)
{
	unsigned int i;
	char what[32];
	int head;

	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "frame %u", i + 1);
		frame_eth(frame, 60, 700 + i);
		head = tx_add(c, hbuf, frame, 60, L_ONE, 0);
		vr_publish(&c->tx, head);
		vr_kick(&c->tx);
		if (!vr_wait_used(&c->tx, 1, TMO))
			FAIL("%s: %s not used within %d ms", c->name, what, TMO);
		if (expect[i]) {
			sig[i] = vr_wait_call(&c->tx, TMO);
		} else {
			sleep_ms(20);
			sig[i] = vr_take_calls(&c->tx);
		}
		if (tx_check_used(c, head, what) != R_PASS || tx_check_frame(c, frame, 60, what) != R_PASS)
			return R_FAIL;
	}
	sleep_ms(SETTLE);
	sig[n - 1] += vr_take_calls(&c->tx);
	return R_PASS;
}

/* Compares per-frame call counts with @expect (one call where true, none elsewhere). */
static int check_calls(struct ctx *c, const char *what, unsigned int n, const bool *expect,
		       const uint64_t *sig)
{
	char got_s[256] = "", want_s[256] = "";
	unsigned int i;
	bool ok = true;

	for (i = 0; i < n; i++) {
		if (sig[i])
			snprintf(got_s + strlen(got_s), sizeof(got_s) - strlen(got_s), " %u%s", i + 1,
				 sig[i] > 1 ? "(x2+)" : "");
		if (expect[i])
			snprintf(want_s + strlen(want_s), sizeof(want_s) - strlen(want_s), " %u", i + 1);
		if (sig[i] != (expect[i] ? 1 : 0))
			ok = false;
	}
	if (!ok)
		FAIL("%s: %s: calls after frames [%s ], expected after [%s ]", c->name, what, got_s,
		     want_s);
	return R_PASS;
}

/*
 * No feature bits (so no EVENT_IDX, no NOTIFY_ON_EMPTY): VRING_AVAIL_F_NO_INTERRUPT
 * set means no call at all over 16 frames; cleared, one call per frame.
 */
static int case_notify_no_interrupt(const char *dev)
{
	enum { N = 16 };
	bool none[N] = { false }, all[N];
	uint64_t sig[N];
	struct ctx c;
	int r = ctx_open(&c, dev, 0, false);

	memset(all, 1, sizeof(all));
	memset(hbuf, 0, sizeof(hbuf));
	if (r != R_PASS)
		goto out;
	vr_set_no_interrupt(&c.tx, true);
	r = tx_one_by_one(&c, N, none, sig);
	if (r == R_PASS)
		r = check_calls(&c, "NO_INTERRUPT set", N, none, sig);
	vr_set_no_interrupt(&c.tx, false);
	if (r == R_PASS)
		r = tx_one_by_one(&c, N, all, sig);
	if (r == R_PASS)
		r = check_calls(&c, "NO_INTERRUPT clear", N, all, sig);
out:
	ctx_close(&c);
	return r;
}

/*
 * NOTIFY_ON_EMPTY alone: even with NO_INTERRUPT set, a call whenever the
 * device has emptied the avail ring, i.e. after every frame sent one at a time.
 */
static int case_notify_on_empty(const char *dev)
{
	enum { N = 16 };
	bool all[N];
	uint64_t sig[N];
	struct ctx c;
	int r = ctx_open(&c, dev, F(VIRTIO_F_NOTIFY_ON_EMPTY), false);

	memset(all, 1, sizeof(all));
	memset(hbuf, 0, sizeof(hbuf));
	if (r != R_PASS)
		goto out;
	vr_set_no_interrupt(&c.tx, true);
	r = tx_one_by_one(&c, N, all, sig);
	if (r == R_PASS)
		r = check_calls(&c, "NO_INTERRUPT set", N, all, sig);
out:
	ctx_close(&c);
	return r;
}

/* Waits until the device has published avail_event == our avail idx (EVENT_IDX). */
static int check_avail_event(struct ctx *c)
{
	long long end = now_ms() + 1000;

	while (vr_avail_event(&c->tx) != c->tx.avail_idx) {
		if (now_ms() > end)
			FAIL("%s: avail_event is %u, expected avail idx %u once the ring is empty",
			     c->name, vr_avail_event(&c->tx), c->tx.avail_idx);
		sleep_ms(1);
	}
	return R_PASS;
}

/*
 * EVENT_IDX alone. One at a time with used_event 9: a call after frame
 * 1 (vhost-net always signals the first time) and after frame 10 (used idx passes
 * 9), no other. Then 8 frames in one kick with used_event inside the batch: exactly
 * one call; 8 more with used_event beyond them: none. avail_event must follow.
 */
static int case_notify_event_idx(const char *dev)
{
	enum { N = 20, B = 8 };
	bool expect[N] = { false };
	uint64_t sig[N], calls;
	struct ctx c;
	unsigned int i, round;
	int heads[B], r = ctx_open(&c, dev, F(VIRTIO_RING_F_EVENT_IDX), false);

	memset(hbuf, 0, sizeof(hbuf));
	if (r != R_PASS)
		goto out;
	expect[0] = expect[9] = true;
	vr_set_used_event(&c.tx, 9);
	r = tx_one_by_one(&c, N, expect, sig);
	if (r == R_PASS)
		r = check_calls(&c, "used_event 9, one frame at a time", N, expect, sig);
	if (r == R_PASS)
		r = check_avail_event(&c);
	for (round = 0; r == R_PASS && round < 2; round++) {
		uint16_t ev = c.tx.last_used + (round ? 20 : 3);

		vr_set_used_event(&c.tx, ev);
		for (i = 0; i < B; i++) {
			frame_eth(frame, 60 + i, 800 + i);
			heads[i] = tx_add(&c, hbuf, frame, 60 + i, L_ONE, i + 1);
			vr_publish(&c.tx, heads[i]);
		}
		vr_kick(&c.tx);
		if (!vr_wait_used(&c.tx, B, TMO)) {
			ktap_diag("%s: batch %u: %u of %d used within %d ms", c.name, round,
				  vr_used_pending(&c.tx), B, TMO);
			r = R_FAIL;
			break;
		}
		calls = round ? 0 : vr_wait_call(&c.tx, TMO);
		sleep_ms(SETTLE);
		calls += vr_take_calls(&c.tx);
		if (calls != (round ? 0u : 1u)) {
			ktap_diag("%s: %u frames in one kick, used idx %u -> %u, used_event %u: %llu calls, expected %u",
				  c.name, B, (uint16_t)(c.tx.last_used), (uint16_t)(c.tx.last_used + B), ev,
				  (unsigned long long)calls, round ? 0 : 1);
			r = R_FAIL;
		}
		for (i = 0; r == R_PASS && i < B; i++) {
			frame_eth(frame, 60 + i, 800 + i);
			r = tx_check_used(&c, heads[i], "batch");
			if (r == R_PASS)
				r = tx_check_frame(&c, frame, 60 + i, "batch");
		}
		if (r == R_PASS)
			r = check_avail_event(&c);
	}
out:
	ctx_close(&c);
	return r;
}

/*
 * EVENT_IDX and NOTIFY_ON_EMPTY both: vhost-net checks "ring empty" first, so with
 * used_event far ahead a call still comes after every frame sent one at a time.
 */
static int case_notify_empty_event_idx(const char *dev)
{
	enum { N = 8 };
	bool all[N];
	uint64_t sig[N];
	struct ctx c;
	int r = ctx_open(&c, dev, QEMU_FEATURES, false);

	memset(all, 1, sizeof(all));
	memset(hbuf, 0, sizeof(hbuf));
	if (r != R_PASS)
		goto out;
	vr_set_used_event(&c.tx, 1000);
	r = tx_one_by_one(&c, N, all, sig);
	if (r == R_PASS)
		r = check_calls(&c, "used_event 1000, NOTIFY_ON_EMPTY", N, all, sig);
out:
	ctx_close(&c);
	return r;
}

/* ---- IN_ORDER -------------------------------------------------------------------------- */

/*
 * The driver side of VIRTIO_F_IN_ORDER: chains are written into the descriptor table in
 * order from *@next (wrapping), each made available with its head in the avail ring as
 * usual; the avail index is published separately (io_publish), so that the device sees a
 * batch at once.
 */
static uint16_t io_add(struct vr *vr, uint16_t *next, const struct vr_seg *s, unsigned int n)
{
	uint16_t mask = vr->num - 1, head = *next & mask;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t d = (*next + i) & mask;

		vr->desc[d].addr = s[i].gpa;
		vr->desc[d].len = s[i].len;
		vr->desc[d].flags = (i + 1 < n ? VRING_DESC_F_NEXT : 0) |
				    (s[i].write ? VRING_DESC_F_WRITE : 0);
		vr->desc[d].next = (d + 1) & mask;
	}
	*next += n;
	vr->avail->ring[vr->avail_idx++ & mask] = head;
	return head;
}

static void io_publish(struct vr *vr)
{
	__atomic_store_n(&vr->avail->idx, vr->avail_idx, __ATOMIC_RELEASE);
	vr_kick(vr);
}

/* The used index reaching @want within TMO ms, and then not moving past it. */
static int io_wait_used(struct ctx *c, struct vr *vr, uint16_t want, const char *what)
{
	long long end = now_ms() + TMO;

	while (vr_used_idx(vr) != want && now_ms() < end)
		sleep_ms(1);
	sleep_ms(SETTLE);
	if (vr_used_idx(vr) != want)
		FAIL("%s: %s: used idx %u, expected %u", c->name, what, vr_used_idx(vr), want);
	return R_PASS;
}

/* Used element @slot must be {@id, @len}. */
static int io_used_elem(struct ctx *c, struct vr *vr, unsigned int slot, uint32_t id,
			uint32_t len, const char *what)
{
	struct vring_used_elem e = vr->used->ring[slot & (vr->num - 1)];

	if (e.id != id || e.len != len)
		FAIL("%s: %s: used element %u is {id %u, len %u}, expected {id %u, len %u}",
		     c->name, what, slot, e.id, e.len, id, len);
	return R_PASS;
}

/* Opens @dev with QEMU_FEATURES and IN_ORDER; not offering it fails (vhost_net.ko does). */
static int io_open(struct ctx *c, const char *dev)
{
	uint64_t have = 0;
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		CASE_SKIP("%s not present", dev);
	if (fd < 0)
		FAIL("open %s: %s", dev, strerror(errno));
	if (ioctl(fd, VHOST_GET_FEATURES, &have) < 0)
		have = 0;
	close(fd);
	if (!(have & F(VIRTIO_F_IN_ORDER)))
		FAIL("%s does not offer VIRTIO_F_IN_ORDER (offers %#llx)", dev,
		     (unsigned long long)have);
	return ctx_open(c, dev, QEMU_FEATURES | F(VIRTIO_F_IN_ORDER), false);
}

/*
 * TX with IN_ORDER, as 7.3's vhost_tx_batch(): three chains (one descriptor; three; one)
 * made available at once and kicked go out in order, and come back as ONE used element
 * naming the last chain's head, the used index moving by three; the two slots after it
 * keep what they held. Then two more (one; two descriptors): one element at slot 3.
 */
static int case_tx_in_order(const char *dev)
{
	static const size_t lens[] = { 60, 200, 1514, 90, 300 };
	static const unsigned int ndesc[] = { 1, 3, 1, 1, 2 };
	uint16_t next = 0, heads[5];
	unsigned int i, k;
	struct ctx c;
	char what[48];
	int r = io_open(&c, dev);

	memset(c.tx.used->ring, 0xee, 3 * sizeof(struct vring_used_elem) + 32);
	memset(hbuf, 0, sizeof(hbuf));
	for (k = 0; r == R_PASS && k < 5; k++) {
		struct vr_seg s[3];
		uint64_t gpa = G_C_GPA + 0x20000 + k * 0x1000;
		size_t tot = c.hdr_len + lens[k];

		frame_eth(frame, lens[k], 300 + k);
		g_write(&G, gpa, hbuf, c.hdr_len);
		g_write(&G, gpa + c.hdr_len, frame, lens[k]);
		/* The buffer cut into ndesc[k] pieces. */
		for (i = 0; i < ndesc[k]; i++) {
			size_t a = tot * i / ndesc[k], b = tot * (i + 1) / ndesc[k];

			s[i] = (struct vr_seg){ gpa + a, b - a, false };
		}
		heads[k] = io_add(&c.tx, &next, s, ndesc[k]);
		if (k == 2 || k == 4) {
			snprintf(what, sizeof(what), "TX chains %s", k == 2 ? "1-3" : "4-5");
			io_publish(&c.tx);
			r = io_wait_used(&c, &c.tx, k + 1, what);
			if (r == R_PASS)
				r = io_used_elem(&c, &c.tx, k == 2 ? 0 : 3, heads[k], 0, what);
		}
	}
	for (k = 0; r == R_PASS && k < 5; k++) {
		snprintf(what, sizeof(what), "TX chain %u, %zu bytes", k + 1, lens[k]);
		frame_eth(frame, lens[k], 300 + k);
		r = tx_check_frame(&c, frame, lens[k], what);
	}
	if (r == R_PASS && (c.tx.used->ring[1].id != 0xeeeeeeee || c.tx.used->ring[2].id != 0xeeeeeeee))
		FAIL("%s: TX: used slots 1 and 2 written ({id %u}, {id %u}): IN_ORDER skips them",
		     c.name, c.tx.used->ring[1].id, c.tx.used->ring[2].id);
	if (heads[0] != 0 || heads[4] != 6)
		FAIL("test: heads %u..%u", heads[0], heads[4]);
	ctx_close(&c);
	return r;
}

/*
 * RX with IN_ORDER and mergeable buffers, as 7.3's get_rx_bufs(): four 1000-byte buffers;
 * a 2500-byte frame (2512 with the header) fills three, and comes back as ONE used element
 * naming the third buffer with the length written into it (512), num_buffers 3 in the
 * header, the used index moving by three; a 100-byte frame then takes the fourth (slot 3).
 */
static int case_rx_in_order(const char *dev)
{
	uint16_t next = 0, heads[4];
	uint32_t want_len;
	struct ctx c;
	unsigned int k, off = 0;
	int r = io_open(&c, dev), d;

	for (k = 0; r == R_PASS && k < 4; k++) {
		struct vr_seg s = { G_C_GPA + 0x100000 + k * 1000, 1000, true };

		heads[k] = io_add(&c.rx, &next, &s, 1);
	}
	if (r == R_PASS)
		io_publish(&c.rx);
	frame_eth(frame, 2500, 400);
	if (r == R_PASS) {
		r = pkt_send(c.snd, c.tap.ifindex, frame, 2500);
		if (r)
			FAIL("%s: sending into %s: %s", c.name, c.tap.name, strerror(-r));
		r = io_wait_used(&c, &c.rx, 3, "RX 2500 bytes");
	}
	if (r == R_PASS)
		r = io_used_elem(&c, &c.rx, 0, heads[2], 512, "RX 2500 bytes");
	if (r == R_PASS) {
		g_read(&G, G_C_GPA + 0x100000, got, 3000);
		if (((struct virtio_net_hdr_mrg_rxbuf *)got)->num_buffers != 3)
			FAIL("%s: RX 2500 bytes: num_buffers %u, expected 3", c.name,
			     ((struct virtio_net_hdr_mrg_rxbuf *)got)->num_buffers);
		d = first_diff(got + c.hdr_len, frame, 2500);
		if (d >= 0)
			FAIL("%s: RX 2500 bytes: data differs at byte %d", c.name, d);
		off = 3;
	}
	frame_eth(frame, 100, 401);
	if (r == R_PASS) {
		r = pkt_send(c.snd, c.tap.ifindex, frame, 100);
		if (r)
			FAIL("%s: sending into %s: %s", c.name, c.tap.name, strerror(-r));
		r = io_wait_used(&c, &c.rx, 4, "RX 100 bytes");
	}
	want_len = c.hdr_len + 100;
	if (r == R_PASS)
		r = io_used_elem(&c, &c.rx, off, heads[3], want_len, "RX 100 bytes");
	if (r == R_PASS) {
		g_read(&G, G_C_GPA + 0x100000 + 3000 + c.hdr_len, got, 100);
		d = first_diff(got, frame, 100);
		if (d >= 0)
			FAIL("%s: RX 100 bytes: data differs at byte %d", c.name, d);
	}
	ctx_close(&c);
	return r;
}

/* ---- UDP tunnel GSO: the 24-byte header ----------------------------------------------- */

/*
 * VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO and _HOST_UDP_TUNNEL_GSO (65, 67; FEATURES_ARRAY only),
 * as 7.3's vhost_net_set_features(): the header becomes struct
 * virtio_net_hdr_v1_hash_tunnel (24 bytes), on the tap (TUNSETVNETHDRSZ 24) as in the
 * guest. TX: frames of 60 and 1514 bytes after a 24-byte header of zeroes leave the tap
 * byte for byte; RX: the same sizes land after a 24-byte header of zeroes but num_buffers 1.
 */
static int case_udp_tunnel_hdr(const char *dev)
{
	static const size_t lens[] = { 60, 1514 };
	uint64_t hi = F(VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64) |
		      F(VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64);
	unsigned int i;
	struct ctx c;
	int r = ctx_open_hi(&c, dev, QEMU_FEATURES, hi, false);

	if (r == R_PASS && c.hdr_len != 24)
		FAIL("test: header %u bytes", c.hdr_len);
	memset(hbuf, 0, sizeof(hbuf));
	for (i = 0; r == R_PASS && i < NLENS(lens); i++) {
		frame_eth(frame, lens[i], 600 + i);
		r = tx_one(&c, hbuf, frame, lens[i], i ? L_SPLIT : L_ONE);
	}
	if (r == R_PASS)
		r = rx_post_small(&c, 8, 2048);
	vr_kick(&c.rx);
	for (i = 0; r == R_PASS && i < NLENS(lens); i++) {
		frame_eth(frame, lens[i], 610 + i);
		r = rx_expect(&c, frame, lens[i], 1, true);
	}
	ctx_close(&c);
	return r;
}

/* ---- UDP tunnel GSO: VXLAN frames both ways --------------------------------------- */

#define TNL_GSO_SIZE	1400
#define TNL_OFFLOADS	(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UDP_TUNNEL_GSO | \
			 TUN_F_UDP_TUNNEL_GSO_CSUM)

/*
 * The 24-byte header of a frame_vxlan4() frame for UDP tunnel GSO of its inner TCP in
 * TNL_GSO_SIZE segments; @hdr_len is the header's hdr_len (what tun reports is its skb's
 * linear part, see the case).
 */
static void tnl_hdr(struct virtio_net_hdr_v1_hash_tunnel *h, uint16_t hdr_len)
{
	memset(h, 0, sizeof(*h));
	h->hash_hdr.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h->hash_hdr.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4;
	h->hash_hdr.hdr.hdr_len = hdr_len;
	h->hash_hdr.hdr.gso_size = TNL_GSO_SIZE;
	h->hash_hdr.hdr.csum_start = VXLAN_INNER_TH;
	h->hash_hdr.hdr.csum_offset = 16;
	h->outer_th_offset = VXLAN_OUTER_TH;
	h->inner_nh_offset = VXLAN_INNER_NH;
}

static void hex24(char *out, const void *p)
{
	unsigned int k;

	for (k = 0; k < sizeof(struct virtio_net_hdr_v1_hash_tunnel); k++)
		sprintf(out + 3 * k, " %02x", ((const uint8_t *)p)[k]);
}

/* Reads the next frame of @len bytes (with its 24-byte header) off tap @t into got. */
static ssize_t tap_read_len(struct tap *t, size_t len, int ms)
{
	long long end = now_ms() + ms;
	struct pollfd p = { .fd = t->fd, .events = POLLIN };
	ssize_t n;

	while (now_ms() < end) {
		if (poll(&p, 1, 100) != 1)
			continue;
		n = read(t->fd, got, sizeof(got));
		if (n == (ssize_t)(sizeof(struct virtio_net_hdr_v1_hash_tunnel) + len))
			return n;
		if (n > 0)
			ktap_diag("  (%zd bytes on %s, not ours: skipped)", n, t->name);
	}
	return -1;
}

/*
 * VXLAN GSO frames both ways, as a guest with the UDP tunnel GSO bits moves them (7.3's
 * tun, with a 24-byte header and TUN_F_UDP_TUNNEL_GSO, carries them unsegmented):
 * the device's tap and a peer tap in bridge vxbr0, both with the tunnel offloads on, as
 * QEMU sets them.
 *   TX: the guest's frames of 2104 bytes (tun takes them through its XDP batch: they fit
 *       a page) and 9000 bytes (through sendmsg) leave the peer tap byte for byte, with the
 *       guest's header but hdr_len (see hdr_len_out);
 *   RX: frames of both sizes written into the peer tap land in mergeable 2048-byte buffers
 *       whole, with the header as written but hdr_len (the same) and num_buffers.
 * Both devices, the same fixed expectations (pinned from vhost_net.ko 7.3's result).
 */
static int tnl_gso_run(struct ctx *c, struct tap *peer)
{
	static const size_t lens[] = { 2104, 9000 };
	/* hdr_len as tun reports it (tun_vnet_hdr_tnl_from_skb()): its skb's linear part, all
	 * of a frame that fits a page (tun builds the skb around it: its XDP batch from vhost,
	 * tun_build_skb() from write()), the headers, inner TCP included, of a bigger one. */
	static const uint16_t hdr_len_out[] = { 2104, VXLAN_INNER_TH + 20 };
	struct virtio_net_hdr_v1_hash_tunnel h, want;
	char what[64], hx[80], wx[80];
	unsigned int i;
	const char *step;
	int head, d, r;
	ssize_t n;

	if (ioctl(c->tap.fd, TUNSETOFFLOAD, TNL_OFFLOADS) < 0)
		FAIL("%s: TUNSETOFFLOAD %#x: %s", c->tap.name, TNL_OFFLOADS, strerror(errno));
	r = tap_create(peer, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, sizeof(h), MTU, &step);
	if (r)
		FAIL("peer tap: %s: %s", step, strerror(-r));
	if (ioctl(peer->fd, TUNSETOFFLOAD, TNL_OFFLOADS) < 0)
		FAIL("%s: TUNSETOFFLOAD %#x: %s", peer->name, TNL_OFFLOADS, strerror(errno));
	if (run("ip link add vxbr0 type bridge && sysctl -qw net.ipv6.conf.vxbr0.disable_ipv6=1 "
		"&& ip link set vxbr0 up && ip link set %s master vxbr0 && "
		"ip link set %s master vxbr0", c->tap.name, peer->name))
		FAIL("cannot make bridge vxbr0 with %s and %s", c->tap.name, peer->name);
	for (i = 0; i < NLENS(lens); i++) {
		snprintf(what, sizeof(what), "VXLAN GSO TX of %zu bytes", lens[i]);
		frame_vxlan4(frame, lens[i], 700 + i);
		tnl_hdr(&h, 0);
		vr_set_used_event(&c->tx, c->tx.last_used);
		head = tx_add(c, &h, frame, lens[i], L_SPLIT, 0);
		vr_publish(&c->tx, head);
		vr_kick(&c->tx);
		if (!vr_wait_call(&c->tx, TMO) || !vr_wait_used(&c->tx, 1, 100))
			FAIL("%s: %s: no call/used within %d ms (used idx %u)", c->name, what, TMO,
			     vr_used_idx(&c->tx));
		if (tx_check_used(c, head, what) != R_PASS)
			return R_FAIL;
		n = tap_read_len(peer, lens[i], TMO);
		if (n < 0)
			FAIL("%s: %s: no frame of %zu bytes on %s within %d ms (segmented?)", c->name,
			     what, lens[i], peer->name, TMO);
		tnl_hdr(&want, hdr_len_out[i]);
		hex24(hx, got);
		hex24(wx, &want);
		if (memcmp(got, &want, sizeof(want)))
			FAIL("%s: %s: header on %s is%s, expected%s", c->name, what, peer->name, hx, wx);
		d = first_diff(got + sizeof(want), frame, lens[i]);
		if (d >= 0)
			FAIL("%s: %s: frame differs at byte %d", c->name, what, d);
	}
	r = rx_post_small(c, 16, 2048);
	vr_kick(&c->rx);
	for (i = 0; r == R_PASS && i < NLENS(lens); i++) {
		frame_vxlan4(frame, lens[i], 710 + i);
		tnl_hdr(&h, VXLAN_INNER_TH + 20);
		memcpy(got, &h, sizeof(h));
		memcpy(got + sizeof(h), frame, lens[i]);
		vr_set_used_event(&c->rx, c->rx.last_used);
		n = write(peer->fd, got, sizeof(h) + lens[i]);
		if (n != (ssize_t)(sizeof(h) + lens[i]))
			FAIL("writing %zu bytes into %s: %s", sizeof(h) + lens[i], peer->name,
			     n < 0 ? strerror(errno) : "short write");
		tnl_hdr(&want, hdr_len_out[i]);
		r = rx_expect_hdr(c, &want, frame, lens[i],
				  (sizeof(h) + lens[i] + 2047) / 2048, false);
	}
	return r;
}

static int case_udp_tunnel_gso(const char *dev)
{
	uint64_t hi = F(VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64) |
		      F(VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64);
	struct tap peer = { .fd = -1 };
	struct ctx c;
	int r = ctx_open_hi(&c, dev, QEMU_FEATURES, hi, false);

	if (r == R_PASS && system("command -v ip >/dev/null 2>&1"))
		CASE_SKIP("iproute2 `ip` not found");
	run("ip link del vxbr0 2>/dev/null; true");
	if (r == R_PASS)
		r = tnl_gso_run(&c, &peer);
	run("ip link del vxbr0 2>/dev/null; true");
	if (peer.fd >= 0)
		close(peer.fd);
	ctx_close(&c);
	return r;
}

/* ---- the cases, each a test of both devices (kselftest_harness.h) ------------------ */

VCASE_FIXTURE(data, NULL);

TEST_F_TIMEOUT(data, tx_sizes, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_sizes, self->path);
}

TEST_F_TIMEOUT(data, tx_split_desc, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_split, self->path);
}

TEST_F_TIMEOUT(data, tx_indirect, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_indirect, self->path);
}

TEST_F_TIMEOUT(data, tx_gso_tcpv4, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_gso_tcpv4, self->path);
}

TEST_F_TIMEOUT(data, tx_batch, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_batch, self->path);
}

TEST_F_TIMEOUT(data, rx_mrg, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_mrg, self->path);
}

TEST_F_TIMEOUT(data, rx_big, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_big, self->path);
}

TEST_F_TIMEOUT(data, no_features, CASE_TMO_S)
{
	vcase_run(_metadata, case_no_features, self->path);
}

TEST_F_TIMEOUT(data, vhost_net_hdr, CASE_TMO_S)
{
	vcase_run(_metadata, case_vhost_net_hdr, self->path);
}

TEST_F_TIMEOUT(data, rx_wait_for_buffers, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_wait_for_buffers, self->path);
}

TEST_F_TIMEOUT(data, rx_oversize_dropped, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_oversize_dropped, self->path);
}

TEST_F_TIMEOUT(data, notify_no_interrupt, CASE_TMO_S)
{
	vcase_run(_metadata, case_notify_no_interrupt, self->path);
}

TEST_F_TIMEOUT(data, notify_on_empty, CASE_TMO_S)
{
	vcase_run(_metadata, case_notify_on_empty, self->path);
}

TEST_F_TIMEOUT(data, notify_event_idx, CASE_TMO_S)
{
	vcase_run(_metadata, case_notify_event_idx, self->path);
}

TEST_F_TIMEOUT(data, notify_empty_event_idx, CASE_TMO_S)
{
	vcase_run(_metadata, case_notify_empty_event_idx, self->path);
}

TEST_F_TIMEOUT(data, tx_in_order, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_in_order, self->path);
}

TEST_F_TIMEOUT(data, rx_in_order, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_in_order, self->path);
}

TEST_F_TIMEOUT(data, udp_tunnel_hdr, CASE_TMO_S)
{
	vcase_run(_metadata, case_udp_tunnel_hdr, self->path);
}

TEST_F_TIMEOUT(data, udp_tunnel_gso, CASE_TMO_S)
{
	vcase_run(_metadata, case_udp_tunnel_gso, self->path);
}

TEST_HARNESS_MAIN
