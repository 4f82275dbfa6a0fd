// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_backends: the other backends vhost-net accepts, and backends and owners that change
 * or go away while traffic flows.
 *
 * Usage: vhost_backends [DEV...]   (default: /dev/vhost-net /dev/vhost-rs-net)
 *
 * Every case runs against every device with the same expectations, each in a child process
 * of its own (bounded in time: a hung case is reported and killed, the others still run),
 * in a network namespace of its own (and a mount namespace with a private sysfs, so that
 * /sys/class/net shows that namespace). Guest memory and rings come from guest.h; each
 * device of a case gets its own slice of guest memory (dev_slot()). Needs iproute2 (`ip`)
 * for the veth and macvtap cases. Prints KTAP; exits 1 if any case failed.
 *
 * Cases: macvtap, AF_PACKET socket, multiqueue tap, backend swap and detach under TX,
 * dirty log on RX, kthread worker (FORK_FROM_OWNER 0), owner SIGKILLed mid-traffic, owner
 * exiting while another process holds the file, tap deleted under traffic.
 */
#include <pthread.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <net/if.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "vhost_test.h"
#include "guest.h"
#include "frames.h"

#define F(b)	(1ULL << (b))
#define TMO	5000	/* ms: any single wait */
#define CASE_TMO 300000	/* ms: a whole case, in its child process */

#define QEMU_FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | \
		       F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_RING_F_EVENT_IDX) | \
		       F(VIRTIO_F_NOTIFY_ON_EMPTY))
#define HDR_LEN	12	/* VERSION_1: struct virtio_net_hdr_mrg_rxbuf */
#define SLOT	2048	/* bytes per TX/RX buffer */

enum { R_PASS, R_FAIL, R_SKIP };

static struct guest G;
static char *skip_reason;	/* shared with the case's child process */

#define FAIL(...) do { ktap_diag(__VA_ARGS__); return R_FAIL; } while (0)
#define SKIP(...) do { snprintf(skip_reason, 256, __VA_ARGS__); return R_SKIP; } while (0)

/* ---- shell and interfaces ------------------------------------------------------------ */

/* Runs a shell command; on failure prints its output as diagnostics. Returns its status. */
static int __attribute__((format(printf, 1, 2))) run(const char *fmt, ...)
{
	char cmd[512], line[256];
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd) - 8, fmt, ap);
	va_end(ap);
	strcat(cmd, " 2>&1");
	p = popen(cmd, "r");
	if (!p)
		return -1;
	char out[1024] = "";
	while (fgets(line, sizeof(line), p))
		if (strlen(out) + strlen(line) < sizeof(out))
			strcat(out, line);
	st = pclose(p);
	if (st) {
		ktap_diag("`%s` failed (status %d): %s", cmd, st, out);
	}
	return st;
}

static int if_mac(const char *name, uint8_t mac[6])
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;

	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	r = ioctl(s, SIOCGIFHWADDR, &ifr);
	close(s);
	if (r < 0)
		return -errno;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

/* A veth pair va/vb, both up. Returns 0, R_SKIP (no `ip`/veth) or R_FAIL. */
static int veth_create(const char *va, const char *vb)
{
	if (system("command -v ip >/dev/null 2>&1"))
		SKIP("iproute2 `ip` not found");
	if (run("ip link add %s type veth peer name %s", va, vb))
		FAIL("cannot create veth pair %s/%s", va, vb);
	if (run("ip link set %s up && ip link set %s up", va, vb))
		FAIL("cannot bring up %s/%s", va, vb);
	return R_PASS;
}

/* ---- one device ------------------------------------------------------------------------ */

/*
 * Device number @k of a case owns guest memory: TX buffers at dev_slot(k) + head * SLOT,
 * RX buffers at dev_slot(k) + 512K + i * SLOT, its RX ring at G_C_GPA + k * 64K, TX ring
 * 16K after that.
 */
static uint64_t dev_slot(int k)
{
	return (uint64_t)k * 0x100000;
}

struct dev {
	const char *path, *name;
	int vfd, k;
	struct vr rx, tx;
	uint64_t features;
	uint16_t posted[VR_NUM], post_head, post_tail;	/* RX heads in posting order */
	uint64_t rx_gpa[VR_NUM];			/* by head */
	uint32_t rx_size[VR_NUM];
	unsigned int rx_next;
	uint16_t tx_fifo[VR_NUM], tx_head, tx_tail;	/* TX heads in posting order */
};

static void dev_close(struct dev *d)
{
	if (d->vfd >= 0)
		close(d->vfd);
	d->vfd = -1;
	vr_close(&d->rx);
	vr_close(&d->tx);
}

/* Opens @path as device @k of the case. */
static int dev_open(struct dev *d, const char *path, int k)
{
	memset(d, 0, sizeof(*d));
	d->rx.kick = d->rx.call = d->tx.kick = d->tx.call = -1;
	d->path = path;
	d->name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	d->k = k;
	d->vfd = open(path, O_RDWR | O_CLOEXEC);
	if (d->vfd < 0) {
		if (errno == ENOENT)
			SKIP("%s not present", path);
		FAIL("open %s: %s", path, strerror(errno));
	}
	if (vr_init(&d->rx, &G, G_C_GPA + k * 0x10000) || vr_init(&d->tx, &G, G_C_GPA + k * 0x10000 + 0x4000))
		FAIL("eventfd: %s", strerror(errno));
	return R_PASS;
}

/*
 * SET_OWNER (after SET_FORK_FROM_OWNER @fork unless -1), features @want (SKIP if not
 * offered), memory table, both vrings. No backend.
 */
static int dev_setup(struct dev *d, uint64_t want, int fork)
{
	const char *what;
	uint64_t have;
	int r;

	if (fork >= 0) {
		uint8_t v = fork;

		if (ioctl(d->vfd, VHOST_SET_FORK_FROM_OWNER, &v) < 0) {
			if (errno == ENOTTY)
				SKIP("%s: no VHOST_SET_FORK_FROM_OWNER", d->name);
			FAIL("%s: VHOST_SET_FORK_FROM_OWNER %u: %s", d->name, v, errno_name(errno));
		}
	}
	if (ioctl(d->vfd, VHOST_SET_OWNER) < 0)
		FAIL("%s: VHOST_SET_OWNER: %s", d->name, errno_name(errno));
	if (ioctl(d->vfd, VHOST_GET_FEATURES, &have) < 0)
		FAIL("%s: VHOST_GET_FEATURES: %s", d->name, errno_name(errno));
	if (want & ~have)
		SKIP("%s does not offer features %#llx (offers %#llx)", d->name,
		     (unsigned long long)(want & ~have), (unsigned long long)have);
	d->features = want;
	if (ioctl(d->vfd, VHOST_SET_FEATURES, &want) < 0)
		FAIL("%s: VHOST_SET_FEATURES %#llx: %s", d->name, (unsigned long long)want,
		     errno_name(errno));
	r = g_set_mem_table(&G, d->vfd);
	if (r)
		FAIL("%s: VHOST_SET_MEM_TABLE: %s", d->name, errno_name(-r));
	r = vr_setup_vhost(&d->rx, d->vfd, 0, &what);
	if (!r)
		r = vr_setup_vhost(&d->tx, d->vfd, 1, &what);
	if (r)
		FAIL("%s: %s: %s", d->name, what, errno_name(-r));
	return R_PASS;
}

static int set_backend(int vfd, unsigned int idx, int fd)
{
	struct vhost_vring_file b = { .index = idx, .fd = fd };

	return ioctl(vfd, VHOST_NET_SET_BACKEND, &b) < 0 ? -errno : 0;
}

/* Both queues on @fd. */
static int dev_backend(struct dev *d, int fd)
{
	unsigned int i;
	int r;

	for (i = 0; i < 2; i++) {
		r = set_backend(d->vfd, i, fd);
		if (r)
			FAIL("%s: VHOST_NET_SET_BACKEND %u fd %d: %s", d->name, i, fd, errno_name(-r));
	}
	return R_PASS;
}

/* Adds (and publishes, without a kick) a TX chain: zero header + @f. Head, or -1. */
static int dev_tx_add(struct dev *d, const uint8_t *f, size_t len)
{
	static const uint8_t zero[HDR_LEN];
	struct vr_seg s = { 0, HDR_LEN + len, false };
	int head;

	if (HDR_LEN + len > SLOT || !d->tx.nfree)
		return -1;
	s.gpa = dev_slot(d->k) + (uint64_t)d->tx.free_stack[d->tx.nfree - 1] * SLOT;
	head = vr_add(&d->tx, &s, 1, 0);
	if (head < 0)
		return -1;
	g_write(&G, s.gpa, zero, HDR_LEN);
	g_write(&G, s.gpa + HDR_LEN, f, len);
	d->tx_fifo[d->tx_tail++ % VR_NUM] = head;
	vr_publish(&d->tx, head);
	return head;
}

/*
 * Takes every pending TX used element: each must be the next head we posted, length 0.
 * Returns how many, or -1 (with a diagnostic) on a bad element.
 */
static int dev_tx_reclaim(struct dev *d)
{
	uint32_t id, len;
	int n = 0, r;

	while ((r = vr_get_used(&d->tx, &id, &len)) != 0) {
		uint16_t want = d->tx_fifo[d->tx_head++ % VR_NUM];

		if (r < 0 || id != want || len != 0) {
			ktap_diag("%s: TX used element {id %u, len %u}, expected {id %u, len 0}%s",
				  d->name, id, len, want, r < 0 ? " (not a head we posted)" : "");
			ktap_diag("%s: TX used idx %u, taken %u, avail idx %u, posted %u, reclaimed %u",
				  d->name, vr_used_idx(&d->tx), (uint16_t)d->tx.last_used,
				  (uint16_t)d->tx.avail_idx, d->tx_tail, d->tx_head);
			return -1;
		}
		n++;
	}
	return n;
}

/* One frame through TX, waiting for it to be used. */
static int dev_tx_one(struct dev *d, const uint8_t *f, size_t len)
{
	if (dev_tx_add(d, f, len) < 0)
		FAIL("%s: TX ring full", d->name);
	vr_kick(&d->tx);
	if (!vr_wait_used(&d->tx, 1, TMO))
		FAIL("%s: TX %zu bytes: not used within %d ms (used idx %u, avail idx %u)", d->name,
		     len, TMO, vr_used_idx(&d->tx), d->tx.avail_idx);
	if (dev_tx_reclaim(d) != 1)
		return R_FAIL;
	return R_PASS;
}

/* Posts @n RX buffers of SLOT bytes, one descriptor each. */
static int dev_rx_post(struct dev *d, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct vr_seg s = { dev_slot(d->k) + 0x80000 + (d->rx_next++ % 128) * SLOT, SLOT, true };
		int head = vr_add(&d->rx, &s, 1, 0);

		if (head < 0)
			FAIL("%s: RX ring full", d->name);
		d->rx_gpa[head] = s.gpa;
		d->rx_size[head] = SLOT;
		d->posted[d->post_tail++ % VR_NUM] = head;
		vr_publish(&d->rx, head);
	}
	vr_kick(&d->rx);
	return R_PASS;
}

/*
 * Takes the next RX used element (it must be the next buffer posted, holding a whole
 * frame: num_buffers 1, no GSO, flags 0 or DATA_VALID) and copies the frame into @buf.
 * Returns the frame length, 0 if none is pending, -1 on a bad element.
 */
static int dev_rx_take(struct dev *d, uint8_t *buf, size_t cap)
{
	struct virtio_net_hdr_mrg_rxbuf h;
	uint32_t id = 0, len = 0;
	uint16_t want;
	int r = vr_get_used(&d->rx, &id, &len);

	if (!r)
		return 0;
	want = d->posted[d->post_head++ % VR_NUM];
	if (r < 0 || id != want || len < HDR_LEN || len > d->rx_size[id] || len - HDR_LEN > cap) {
		ktap_diag("%s: RX used element {id %u, len %u}, expected id %u and a length in [%d, %u]",
			  d->name, id, len, want, HDR_LEN, r < 0 ? 0 : d->rx_size[want]);
		return -1;
	}
	g_read(&G, d->rx_gpa[id], &h, HDR_LEN);
	if (h.num_buffers != 1 || h.hdr.gso_type != 0 || (h.hdr.flags & ~VIRTIO_NET_HDR_F_DATA_VALID)) {
		ktap_diag("%s: RX header: flags %#x gso_type %u num_buffers %u, expected flags 0 or DATA_VALID, GSO_NONE, 1",
			  d->name, h.hdr.flags, h.hdr.gso_type, h.num_buffers);
		return -1;
	}
	g_read(&G, d->rx_gpa[id] + HDR_LEN, buf, len - HDR_LEN);
	return len - HDR_LEN;
}

/* Waits for the next RX frame and compares it with @f. */
static int dev_rx_expect(struct dev *d, const uint8_t *f, size_t len, const char *what)
{
	static uint8_t got[SLOT];
	int n, k;

	if (!vr_wait_used(&d->rx, 1, TMO))
		FAIL("%s: %s: RX %zu bytes: nothing used within %d ms (used idx %u)", d->name, what,
		     len, TMO, vr_used_idx(&d->rx));
	n = dev_rx_take(d, got, sizeof(got));
	if (n < 0)
		return R_FAIL;
	if ((size_t)n != len)
		FAIL("%s: %s: RX frame of %d bytes, expected %zu", d->name, what, n, len);
	k = first_diff(got, f, len);
	if (k >= 0)
		FAIL("%s: %s: RX frame differs at byte %d: %#x, expected %#x", d->name, what, k,
		     got[k], f[k]);
	return R_PASS;
}

/* Reads the next frame from capture socket @cap and compares it with @f. */
static int cap_expect(int cap, const char *devname, const uint8_t *f, size_t len, const char *what)
{
	static uint8_t got[70000];
	ssize_t n = pkt_recv(cap, got, sizeof(got), TMO);
	int k;

	if (n < 0)
		FAIL("%s: %s: no frame on the wire within %d ms", devname, what, TMO);
	if ((size_t)n != len)
		FAIL("%s: %s: frame of %zd bytes on the wire, expected %zu", devname, what, n, len);
	k = first_diff(got, f, len);
	if (k >= 0)
		FAIL("%s: %s: frame on the wire differs at byte %d: %#x, expected %#x", devname, what,
		     k, got[k], f[k]);
	return R_PASS;
}

/*
 * TX of 60- and 1514-byte frames (must appear on @cap) and RX of the same sizes sent
 * by @snd out of @rx_if (must land in the guest), frames addressed to @dst.
 */
static int dev_txrx(struct dev *d, int cap, int snd, int rx_if, const uint8_t *dst, uint32_t seed)
{
	static const size_t lens[] = { 60, 1514 };
	static uint8_t f[SLOT];
	unsigned int i;
	char what[32];
	int r;

	for (i = 0; i < 2; i++) {
		snprintf(what, sizeof(what), "TX %zu bytes", lens[i]);
		frame_eth_seq(f, lens[i], seed + i, NULL);
		if (dev_tx_one(d, f, lens[i]) != R_PASS || cap_expect(cap, d->name, f, lens[i], what) != R_PASS)
			return R_FAIL;
	}
	if (dev_rx_post(d, 8) != R_PASS)
		return R_FAIL;
	for (i = 0; i < 2; i++) {
		snprintf(what, sizeof(what), "RX %zu bytes", lens[i]);
		frame_eth_seq(f, lens[i], seed + 10 + i, dst);
		r = pkt_send(snd, rx_if, f, lens[i]);
		if (r)
			FAIL("%s: sending %zu bytes from ifindex %d: %s", d->name, lens[i], rx_if,
			     strerror(-r));
		if (dev_rx_expect(d, f, lens[i], what) != R_PASS)
			return R_FAIL;
	}
	return R_PASS;
}

/* A tap with IFF_VNET_HDR (12 bytes) plus a capture socket on it and a sender. */
struct tapc {
	struct tap t;
	int cap, snd;
};

static int tapc_create(struct tapc *c, int extra_flags, int mtu)
{
	const char *what;
	int r = tap_create(&c->t, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | extra_flags, HDR_LEN, mtu, &what);

	c->cap = c->snd = -1;
	if (r)
		FAIL("tap: %s: %s", what, strerror(-r));
	c->cap = pkt_capture_open(c->t.ifindex, false);
	if (c->cap < 0)
		FAIL("capture socket on %s: %s", c->t.name, strerror(-c->cap));
	c->snd = pkt_sender_open();
	if (c->snd < 0)
		FAIL("sender socket: %s", strerror(-c->snd));
	return R_PASS;
}

static void tapc_close(struct tapc *c)
{
	if (c->t.fd >= 0)
		close(c->t.fd);
	if (c->cap >= 0)
		close(c->cap);
	if (c->snd >= 0)
		close(c->snd);
	c->t.fd = c->cap = c->snd = -1;
}

/* Tap @a, and device @d at @path set up as QEMU does with @a as its backend. */
static int tap_dev(struct tapc *a, struct dev *d, const char *path)
{
	int r = tapc_create(a, 0, 1500);

	if (r == R_PASS)
		r = dev_open(d, path, 0);
	if (r == R_PASS)
		r = dev_setup(d, QEMU_FEATURES, -1);
	if (r == R_PASS)
		r = dev_backend(d, a->t.fd);
	return r;
}

/* The same, and a second tap @b. */
static int two_taps_dev(struct tapc *a, struct tapc *b, struct dev *d, const char *path)
{
	int r = tap_dev(a, d, path);

	return r == R_PASS ? tapc_create(b, 0, 1500) : r;
}

/* Waits for child @pid for up to @ms; its wait status, or -1 on timeout. */
static int wait_child(pid_t pid, int ms)
{
	long long end = now_ms() + ms;
	int st;

	for (;;) {
		pid_t p = waitpid(pid, &st, WNOHANG);

		if (p == pid)
			return st;
		if (p < 0)
			return -1;
		if (now_ms() > end)
			return -1;
		sleep_ms(5);
	}
}

/* ---- 1. macvtap ------------------------------------------------------------------------ */

/* Opens /dev/tapN for macvtap @name (ifindex N), making the node if devtmpfs lacks it. */
static int macvtap_open(const char *name, int ifindex)
{
	char path[128], buf[32];
	unsigned int maj, min;
	int fd, sfd;
	ssize_t n;

	snprintf(path, sizeof(path), "/dev/tap%d", ifindex);
	fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 || errno != ENOENT)
		return fd >= 0 ? fd : -errno;
	snprintf(path, sizeof(path), "/sys/class/net/%s/macvtap/tap%d/dev", name, ifindex);
	sfd = open(path, O_RDONLY | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	n = read(sfd, buf, sizeof(buf) - 1);
	close(sfd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	if (sscanf(buf, "%u:%u", &maj, &min) != 2)
		return -EIO;
	snprintf(path, sizeof(path), "/dev/vbk-tap%d", ifindex);
	unlink(path);
	if (mknod(path, S_IFCHR | 0600, makedev(maj, min)) < 0)
		return -errno;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	n = fd < 0 ? -errno : 0;
	unlink(path);
	return fd >= 0 ? fd : (int)n;
}

/*
 * macvtap (bridge mode) on veth end vbA: guest TX leaves through vbA and is captured on
 * vbB; frames to the macvtap's MAC sent from vbB land in the guest.
 */
static int case_macvtap(const char *path)
{
	int r, fd = -1, cap = -1, snd = -1, hsz = HDR_LEN, ifi, ifb;
	uint8_t mac[6];
	struct dev d;

	long long t0 = now_ms(), t_veth, t_mvt, t_setup;

	d.vfd = -1;
	r = veth_create("vbA", "vbB");
	if (r != R_PASS)
		return r;
	t_veth = now_ms();
	if (run("ip link add link vbA name vbmvt type macvtap mode bridge && ip link set vbmvt up"))
		FAIL("cannot create macvtap on vbA");
	t_mvt = now_ms();
	ifi = if_nametoindex("vbmvt");
	ifb = if_nametoindex("vbB");
	if (!ifi || !ifb || if_mac("vbmvt", mac))
		FAIL("macvtap/veth: no ifindex or MAC");
	fd = macvtap_open("vbmvt", ifi);
	if (fd < 0)
		FAIL("open /dev/tap%d: %s", ifi, strerror(-fd));
	if (ioctl(fd, TUNSETVNETHDRSZ, &hsz) < 0)
		FAIL("macvtap TUNSETVNETHDRSZ 12: %s", strerror(errno));
	cap = pkt_capture_open(ifb, false);
	snd = pkt_sender_open();
	if (cap < 0 || snd < 0)
		FAIL("packet sockets on vbB: %s", strerror(-(cap < 0 ? cap : snd)));
	r = dev_open(&d, path, 0);
	if (r == R_PASS)
		r = dev_setup(&d, QEMU_FEATURES, -1);
	if (r == R_PASS)
		r = dev_backend(&d, fd);
	pkt_drain(cap);
	t_setup = now_ms();
	if (r == R_PASS)
		r = dev_txrx(&d, cap, snd, ifb, mac, 100);
	if (now_ms() - t0 > 5000)
		ktap_diag("%s: ms spent: veth %lld, macvtap %lld, device setup %lld, traffic %lld",
			  d.name, t_veth - t0, t_mvt - t_veth, t_setup - t_mvt, now_ms() - t_setup);
	dev_close(&d);
	close(fd);
	close(cap);
	close(snd);
	return r;
}

/* ---- 2. AF_PACKET socket --------------------------------------------------------------- */

/*
 * A raw packet socket bound to vbA as the backend, with VHOST_NET_F_VIRTIO_NET_HDR (vhost
 * strips the guest's header on TX and writes one on RX: the socket has none).
 */
static int case_packet(const char *path)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int r, ps = -1, cap = -1, snd = -1, one = 1, ifa, ifb;
	struct dev d;

	r = veth_create("vbA", "vbB");
	if (r != R_PASS)
		return r;
	ifa = if_nametoindex("vbA");
	ifb = if_nametoindex("vbB");
	ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	sll.sll_ifindex = ifa;
	if (ps < 0 || setsockopt(ps, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0 ||
	    bind(ps, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		FAIL("backend packet socket on vbA: %s", strerror(errno));
	cap = pkt_capture_open(ifb, false);
	snd = pkt_sender_open();
	if (cap < 0 || snd < 0)
		FAIL("packet sockets on vbB: %s", strerror(-(cap < 0 ? cap : snd)));
	r = dev_open(&d, path, 0);
	if (r == R_PASS)
		r = dev_setup(&d, QEMU_FEATURES | F(VHOST_NET_F_VIRTIO_NET_HDR), -1);
	if (r == R_PASS)
		r = dev_backend(&d, ps);
	pkt_drain(cap);
	if (r == R_PASS)
		r = dev_txrx(&d, cap, snd, ifb, NULL, 200);
	dev_close(&d);
	close(ps);
	close(cap);
	close(snd);
	return r;
}

/* ---- 3. multiqueue tap ----------------------------------------------------------------- */

/*
 * An IFF_MULTI_QUEUE tap with two queues, a device on each. Each transmits a frame; then
 * 32 UDP flows are sent into the tap: tun spreads them over both queues, every frame must
 * land in exactly one guest, byte-exact, and both guests must get some.
 */
static int case_multiqueue(const char *path)
{
	enum { NF = 32 };
	static uint8_t f[SLOT], got[SLOT];
	struct ifreq ifr = { 0 };
	int r, q1 = -1, seen[NF] = { 0 }, per[2] = { 0, 0 }, total = 0, i, k;
	struct tapc tc;
	struct dev d[2] = { { .vfd = -1 }, { .vfd = -1 } };
	long long end;

	r = tapc_create(&tc, IFF_MULTI_QUEUE, 1500);
	if (r != R_PASS)
		goto out;
	q1 = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
	memcpy(ifr.ifr_name, tc.t.name, IFNAMSIZ);
	if (q1 < 0 || ioctl(q1, TUNSETIFF, &ifr) < 0) {
		ktap_diag("second queue of %s: %s", tc.t.name, strerror(errno));
		r = R_FAIL;
		goto out;
	}
	for (k = 0; r == R_PASS && k < 2; k++) {
		r = dev_open(&d[k], path, k);
		if (r == R_PASS)
			r = dev_setup(&d[k], QEMU_FEATURES, -1);
		if (r == R_PASS)
			r = dev_backend(&d[k], k ? q1 : tc.t.fd);
		if (r == R_PASS)
			r = dev_rx_post(&d[k], 64);
	}
	for (k = 0; r == R_PASS && k < 2; k++) {
		frame_eth_seq(f, 100 + k, 300 + k, NULL);
		r = dev_tx_one(&d[k], f, 100 + k);
		if (r == R_PASS)
			r = cap_expect(tc.cap, d[k].name, f, 100 + k, k ? "TX on queue 1" : "TX on queue 0");
	}
	for (i = 0; r == R_PASS && i < NF; i++) {
		frame_udp4_seq(f, 200, i);
		if (pkt_send(tc.snd, tc.t.ifindex, f, 200)) {
			ktap_diag("sending UDP flow %d into %s: %s", i, tc.t.name, strerror(errno));
			r = R_FAIL;
		}
	}
	end = now_ms() + TMO;
	while (r == R_PASS && total < NF && now_ms() < end) {
		bool any = false;

		for (k = 0; r == R_PASS && k < 2; k++) {
			int n = dev_rx_take(&d[k], got, sizeof(got));
			uint32_t seq;

			if (n < 0) {
				r = R_FAIL;
				break;
			}
			if (!n)
				continue;
			any = true;
			seq = (uint32_t)got[42] << 24 | got[43] << 16 | got[44] << 8 | got[45];
			if (n != 200 || seq >= NF || seen[seq]) {
				ktap_diag("%s (queue %d): RX frame of %d bytes, seq %u%s", d[k].name, k, n,
					  seq, seq < NF && seen[seq] ? ": a duplicate" : ": not one we sent");
				r = R_FAIL;
				break;
			}
			frame_udp4_seq(f, 200, seq);
			if (first_diff(got, f, 200) >= 0) {
				ktap_diag("%s (queue %d): RX flow %u differs at byte %d", d[k].name, k, seq,
					  first_diff(got, f, 200));
				r = R_FAIL;
				break;
			}
			seen[seq] = 1;
			per[k]++;
			total++;
		}
		if (!any)
			sleep_ms(2);
	}
	if (r == R_PASS && (total != NF || !per[0] || !per[1])) {
		ktap_diag("%s: of %d UDP flows, queue 0 got %d, queue 1 got %d (expected all, on both)",
			  d[0].name, NF, per[0], per[1]);
		r = R_FAIL;
	}
out:
	dev_close(&d[0]);
	dev_close(&d[1]);
	if (q1 >= 0)
		close(q1);
	tapc_close(&tc);
	return r;
}

/* ---- 4. backend swap and detach under TX --------------------------------------------- */

struct swap_ctl {
	struct dev *d;
	int fd_a, fd_b;
	volatile int used_total;	/* frames reclaimed by the TX loop */
	volatile int finished;		/* the swap thread is through */
	volatile int done;		/* the TX loop is through */
	int used_before_b, used_before_det, det_used1, det_used2, det_pending, err;
	char errmsg[160];
};

/* The used idx as a frame count, from the 16-bit ring value (ahead of used_total). */
static int swap_used_now(struct swap_ctl *s)
{
	int base = s->used_total;

	return base + (uint16_t)(vr_used_idx(&s->d->tx) - (uint16_t)base);
}

static void *swap_thread(void *arg)
{
	struct swap_ctl *s = arg;
	const int steps[3] = { s->fd_b, -1, s->fd_a };
	long long end;
	int i, q, r, base;

	for (i = 0; i < 3 && !s->err; i++) {
		base = s->used_total;
		end = now_ms() + 5000;
		/* Let some traffic flow on the current backend first (none while detached). */
		while (i != 2 && s->used_total < base + 150 && now_ms() < end && !s->done)
			sleep_ms(1);
		if (i == 0)
			s->used_before_b = swap_used_now(s);
		if (i == 1)
			s->used_before_det = swap_used_now(s);
		for (q = 1; q >= 0; q--) {
			r = set_backend(s->d->vfd, q, steps[i]);
			if (r) {
				snprintf(s->errmsg, sizeof(s->errmsg), "VHOST_NET_SET_BACKEND %d fd %d: %s",
					 q, steps[i], errno_name(-r));
				s->err = 1;
				break;
			}
		}
		if (i == 1 && !s->err) {
			/* Detached: nothing may be used any more, while the ring fills up. */
			s->det_used1 = swap_used_now(s);
			sleep_ms(200);
			s->det_used2 = swap_used_now(s);
			s->det_pending = (uint16_t)(__atomic_load_n(&s->d->tx.avail->idx, __ATOMIC_ACQUIRE) -
						    vr_used_idx(&s->d->tx));
		}
	}
	s->finished = 1;
	return NULL;
}

/*
 * A stream of frames on tap A, the ring kept full; another thread sets tap B as backend of
 * both queues, then -1 (the ring keeps filling: nothing may be used), then A again; the
 * stream goes on for 300 more frames. Every frame must come out exactly once, in order per
 * tap: those used before the swap on A, then a contiguous run on B, then those still in the
 * ring at the detach (and later ones) on A. All used, each used element a posted head.
 */
static int case_swap(const char *path)
{
	enum { NMAX = 30000, LEN = 100 };
	static uint8_t f[SLOT], got[SLOT];
	static int where[NMAX];
	struct tapc a, b;
	struct swap_ctl s = { 0 };
	pthread_t th;
	bool started = false;
	int r, sent = 0, used = 0, n, i, minb = NMAX, maxb = -1, last_a = -1, last_b = -1, cnt_b = 0;
	int stop_at = NMAX;
	long long end;
	struct dev d = { .vfd = -1 };

	b.t.fd = b.cap = b.snd = -1;
	memset(where, 0, sizeof(where));
	r = two_taps_dev(&a, &b, &d, path);
	if (r != R_PASS)
		goto out;
	s.d = &d;
	s.fd_a = a.t.fd;
	s.fd_b = b.t.fd;
	if (pthread_create(&th, NULL, swap_thread, &s)) {
		r = R_FAIL;
		goto out;
	}
	started = true;
	end = now_ms() + 60000;
	while ((sent < stop_at || used < sent) && now_ms() < end) {
		bool added = false;

		if (s.finished && stop_at == NMAX)
			stop_at = sent + 300 < NMAX ? sent + 300 : NMAX;
		while (sent < stop_at && d.tx.nfree) {
			frame_eth_seq(f, LEN, sent, NULL);
			if (dev_tx_add(&d, f, LEN) < 0)
				break;
			sent++;
			added = true;
		}
		if (added)
			vr_kick(&d.tx);
		n = dev_tx_reclaim(&d);
		if (n < 0) {
			r = R_FAIL;
			break;
		}
		used += n;
		s.used_total = used;
		if (!n) {
			vr_kick(&d.tx);
			sleep_ms(1);
		}
	}
	s.done = 1;
	pthread_join(th, NULL);
	started = false;
	if (r != R_PASS)
		goto out;
	if (s.err) {
		ktap_diag("%s: %s", d.name, s.errmsg);
		r = R_FAIL;
		goto out;
	}
	if (used != sent || !s.finished || stop_at == NMAX) {
		ktap_diag("%s: %d of %d frames used within 60 s (used idx %u, avail idx %u)%s", d.name,
			  used, sent, vr_used_idx(&d.tx), d.tx.avail_idx,
			  stop_at == NMAX ? ", the swaps did not finish" : "");
		r = R_FAIL;
		goto out;
	}
	ktap_diag("%s: %d frames; used before swap %d, before detach %d, at detach %d with %d in the ring",
		  d.name, sent, s.used_before_b, s.used_before_det, s.det_used1, s.det_pending);
	if (s.det_used1 != s.det_used2) {
		ktap_diag("%s: used idx moved from %d to %d while TX had no backend", d.name,
			  s.det_used1, s.det_used2);
		r = R_FAIL;
		goto out;
	}
	if (!s.det_pending) {
		ktap_diag("%s: the ring was empty while detached: the detach was not exercised", d.name);
		r = R_FAIL;
		goto out;
	}
	/* Collect what came out of each tap. */
	for (i = 0; i < 2; i++) {
		int cap = i ? b.cap : a.cap;

		while ((n = pkt_recv(cap, got, sizeof(got), 300)) >= 0) {
			uint32_t seq = frame_seq(got);

			frame_eth_seq(f, LEN, seq, NULL);
			if (n != LEN || (int)seq >= sent || first_diff(got, f, LEN) >= 0) {
				ktap_diag("%s: tap %c: a frame of %d bytes, seq %u, not one we sent", d.name,
					  i ? 'B' : 'A', n, seq);
				r = R_FAIL;
				goto out;
			}
			if (where[seq]) {
				ktap_diag("%s: frame %u came out twice (tap %c, then tap %c)", d.name, seq,
					  where[seq] == 1 ? 'A' : 'B', i ? 'B' : 'A');
				r = R_FAIL;
				goto out;
			}
			where[seq] = i + 1;
			if (i) {
				if ((int)seq < last_b) {
					ktap_diag("%s: tap B: frame %u after %d", d.name, seq, last_b);
					r = R_FAIL;
					goto out;
				}
				last_b = seq;
				cnt_b++;
				minb = (int)seq < minb ? (int)seq : minb;
				maxb = (int)seq > maxb ? (int)seq : maxb;
			} else {
				if ((int)seq < last_a) {
					ktap_diag("%s: tap A: frame %u after %d", d.name, seq, last_a);
					r = R_FAIL;
					goto out;
				}
				last_a = seq;
			}
		}
	}
	for (i = 0; i < sent; i++)
		if (!where[i]) {
			ktap_diag("%s: frame %d (used) came out of neither tap", d.name, i);
			r = R_FAIL;
			goto out;
		}
	ktap_diag("%s: tap B got frames %d..%d (%d)", d.name, minb, maxb, cnt_b);
	if (!cnt_b || maxb - minb + 1 != cnt_b) {
		ktap_diag("%s: tap B's frames are not one non-empty run", d.name);
		r = R_FAIL;
		goto out;
	}
	if (minb < s.used_before_b) {
		ktap_diag("%s: frame %d was used before the swap but came out of tap B", d.name, minb);
		r = R_FAIL;
		goto out;
	}
	if (maxb >= s.det_used1) {
		ktap_diag("%s: frame %d was in the ring at the detach (used %d) but came out of tap B",
			  d.name, maxb, s.det_used1);
		r = R_FAIL;
		goto out;
	}
	/* Usable after: one frame each way on A. */
	pkt_drain(a.cap);
	r = dev_txrx(&d, a.cap, a.snd, a.t.ifindex, NULL, 400);
out:
	if (started) {
		s.done = 1;
		pthread_join(th, NULL);
	}
	dev_close(&d);
	tapc_close(&a);
	tapc_close(&b);
	return r;
}

/* ---- 5. dirty log ---------------------------------------------------------------------- */

#define LOG_PAGES ((G_C_GPA + G_C_SIZE) / 4096)

/*
 * LOG_ALL, a bitmap over all guest memory, VHOST_VRING_F_LOG on the RX vring (log at the
 * used ring's GPA), a log eventfd. Three RX buffers of 1536 bytes:
 *   0: GPA 0x10000 - 700 (pages 0xf and 0x10), filled;
 *   1: GPA 0x13000 - 1500 (pages 0x12 and 0x13), 1476 bytes written: page 0x12 only;
 *   2: GPA 0x20000, untouched.
 * A 3000-byte frame (12 + 3000 = 1536 + 1476) must set exactly the bits of pages 0xf,
 * 0x10, 0x12 and the used ring's page, and signal the log eventfd.
 */
static int case_dirty_log(const char *path)
{
	static const uint64_t bufs[3] = { 0x10000 - 700, 0x13000 - 1500, 0x20000 };
	static uint8_t f[3000];
	uint64_t want[4], base, log_ev = 0;
	uint8_t *bitmap = MAP_FAILED;
	struct vhost_vring_addr a;
	struct tapc tc;
	struct dev d = { .vfd = -1 };
	int r, logfd = -1, i, j, nbits = 0;
	size_t bmsize = (LOG_PAGES + 7) / 8;
	char got_s[256] = "";
	bool bad = false;

	r = tapc_create(&tc, 0, 4000);
	if (r != R_PASS)
		goto out;
	bitmap = mmap(NULL, bmsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	logfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (bitmap == MAP_FAILED || logfd < 0) {
		ktap_diag("bitmap/eventfd: %s", strerror(errno));
		r = R_FAIL;
		goto out;
	}
	r = dev_open(&d, path, 0);
	if (r != R_PASS)
		goto out;
	base = (uintptr_t)bitmap;
	r = R_FAIL;
	if (ioctl(d.vfd, VHOST_SET_OWNER) < 0 || ioctl(d.vfd, VHOST_SET_LOG_BASE, &base) < 0 ||
	    ioctl(d.vfd, VHOST_SET_LOG_FD, &logfd) < 0) {
		ktap_diag("%s: SET_OWNER/SET_LOG_BASE/SET_LOG_FD: %s", d.name, errno_name(errno));
		goto out;
	}
	/* dev_setup would SET_OWNER again: do the rest here. */
	{
		uint64_t want_f = QEMU_FEATURES | F(VHOST_F_LOG_ALL), have = 0;
		const char *what;

		if (ioctl(d.vfd, VHOST_GET_FEATURES, &have) < 0 || (want_f & ~have)) {
			snprintf(skip_reason, 256, "%s does not offer %#llx", d.name,
				 (unsigned long long)(want_f & ~have));
			r = R_SKIP;
			goto out;
		}
		if (ioctl(d.vfd, VHOST_SET_FEATURES, &want_f) < 0) {
			ktap_diag("%s: SET_FEATURES with LOG_ALL: %s", d.name, errno_name(errno));
			goto out;
		}
		if ((i = g_set_mem_table(&G, d.vfd)) ||
		    (i = vr_setup_vhost(&d.rx, d.vfd, 0, &what)) ||
		    (i = vr_setup_vhost(&d.tx, d.vfd, 1, &what))) {
			ktap_diag("%s: setup: %s", d.name, errno_name(-i));
			goto out;
		}
	}
	a = (struct vhost_vring_addr){
		.index = 0,
		.flags = 1 << VHOST_VRING_F_LOG,
		.desc_user_addr = (uintptr_t)d.rx.desc,
		.avail_user_addr = (uintptr_t)d.rx.avail,
		.used_user_addr = (uintptr_t)d.rx.used,
		.log_guest_addr = d.rx.used_gpa,
	};
	if (ioctl(d.vfd, VHOST_SET_VRING_ADDR, &a) < 0) {
		ktap_diag("%s: SET_VRING_ADDR with VHOST_VRING_F_LOG: %s", d.name, errno_name(errno));
		goto out;
	}
	for (i = 0; i < 3; i++) {
		struct vr_seg s = { bufs[i], 1536, true };
		int head = vr_add(&d.rx, &s, 1, 0);

		vr_publish(&d.rx, head);
		d.rx_gpa[head] = s.gpa;
		d.rx_size[head] = 1536;
		d.posted[d.post_tail++] = head;
	}
	if (dev_backend(&d, tc.t.fd) != R_PASS)
		goto out;
	vr_kick(&d.rx);
	sleep_ms(100);
	/* What setup logged (used flags, avail event) is the used ring's page too: clear it. */
	memset(bitmap, 0, bmsize);
	{
		uint64_t v;

		while (read(logfd, &v, sizeof(v)) == sizeof(v))
			;
	}
	frame_eth_seq(f, sizeof(f), 500, NULL);
	if ((i = pkt_send(tc.snd, tc.t.ifindex, f, sizeof(f)))) {
		ktap_diag("sending 3000 bytes into %s: %s", tc.t.name, strerror(-i));
		goto out;
	}
	if (!vr_wait_used(&d.rx, 2, TMO)) {
		ktap_diag("%s: 3000-byte frame: %u used elements within %d ms, expected 2", d.name,
			  vr_used_pending(&d.rx), TMO);
		goto out;
	}
	{
		uint32_t id, len;
		uint8_t got[3012];

		if (vr_get_used(&d.rx, &id, &len) != 1 || id != d.posted[0] || len != 1536 ||
		    (g_read(&G, bufs[0], got, 1536), vr_get_used(&d.rx, &id, &len) != 1) ||
		    id != d.posted[1] || len != 1476) {
			ktap_diag("%s: used elements not {%u, 1536}, {%u, 1476}: last {%u, %u}", d.name,
				  d.posted[0], d.posted[1], id, len);
			goto out;
		}
		g_read(&G, bufs[1], got + 1536, 1476);
		if (((struct virtio_net_hdr_mrg_rxbuf *)got)->num_buffers != 2 ||
		    first_diff(got + HDR_LEN, f, sizeof(f)) >= 0) {
			ktap_diag("%s: 3000-byte frame: num_buffers %u, data %s", d.name,
				  ((struct virtio_net_hdr_mrg_rxbuf *)got)->num_buffers,
				  first_diff(got + HDR_LEN, f, sizeof(f)) >= 0 ? "differs" : "equal");
			goto out;
		}
	}
	sleep_ms(50);
	want[0] = 0xf;
	want[1] = 0x10;
	want[2] = 0x12;
	want[3] = d.rx.used_gpa / 4096;
	for (i = 0; i < (int)LOG_PAGES; i++) {
		bool set = bitmap[i / 8] & (1 << (i % 8)), exp = false;

		for (j = 0; j < 4; j++)
			exp |= want[j] == (uint64_t)i;
		if (set && strlen(got_s) < sizeof(got_s) - 16)
			snprintf(got_s + strlen(got_s), sizeof(got_s) - strlen(got_s), " %#x", i);
		nbits += set;
		if (set != exp)
			bad = true;
	}
	if (read(logfd, &log_ev, sizeof(log_ev)) != sizeof(log_ev))
		log_ev = 0;
	if (bad) {
		ktap_diag("%s: dirty pages logged [%s ] (%d bits), expected [ 0xf 0x10 0x12 %#llx ]",
			  d.name, got_s, nbits, (unsigned long long)want[3]);
		goto out;
	}
	if (!log_ev) {
		ktap_diag("%s: log eventfd not signalled", d.name);
		goto out;
	}
	r = R_PASS;
out:
	dev_close(&d);
	tapc_close(&tc);
	if (logfd >= 0)
		close(logfd);
	if (bitmap != MAP_FAILED)
		munmap(bitmap, bmsize);
	return r;
}

/* ---- 6. kthread worker --------------------------------------------------------------- */

/* VHOST_SET_FORK_FROM_OWNER 0 before SET_OWNER: a kthread worker; TX and RX still work. */
static int case_kthread(const char *path)
{
	struct tapc tc;
	struct dev d = { .vfd = -1 };
	uint8_t v = 0xff;
	int r;

	r = tapc_create(&tc, 0, 1500);
	if (r == R_PASS)
		r = dev_open(&d, path, 0);
	if (r == R_PASS)
		r = dev_setup(&d, QEMU_FEATURES, VHOST_FORK_OWNER_KTHREAD);
	if (r == R_PASS && (ioctl(d.vfd, VHOST_GET_FORK_FROM_OWNER, &v) < 0 || v != 0)) {
		ktap_diag("%s: VHOST_GET_FORK_FROM_OWNER: %s, value %u, expected 0", d.name,
			  errno_name(errno), v);
		r = R_FAIL;
	}
	if (r == R_PASS)
		r = dev_backend(&d, tc.t.fd);
	pkt_drain(tc.cap);
	if (r == R_PASS)
		r = dev_txrx(&d, tc.cap, tc.snd, tc.t.ifindex, NULL, 600);
	dev_close(&d);
	tapc_close(&tc);
	return r;
}

/* ---- 7. owner SIGKILLed mid-traffic ----------------------------------------------------- */

/* The child's loop: keeps TX busy forever; says 'k' on @wfd after 20 frames used. */
static void tx_pump_forever(struct dev *d, int wfd)
{
	static uint8_t f[SLOT];
	uint32_t seq = 0;
	int used = 0, n;
	bool told = false;

	for (;;) {
		while (d->tx.nfree) {
			frame_eth_seq(f, 200, 0x100000 + seq++, NULL);
			if (dev_tx_add(d, f, 200) < 0)
				break;
		}
		vr_kick(&d->tx);
		n = dev_tx_reclaim(d);
		if (n < 0)
			_exit(3);
		used += n;
		if (!told && used >= 20) {
			if (write(wfd, "k", 1) != 1)
				_exit(4);
			told = true;
		}
		if (!n)
			sleep_ms(1);
	}
}

static int wait_byte(int rfd, int ms, char *c)
{
	struct pollfd p = { .fd = rfd, .events = POLLIN };

	if (poll(&p, 1, ms) <= 0)
		return -1;
	return read(rfd, c, 1) == 1 ? 0 : -1;
}

/*
 * A child owns a device on our tap and pumps TX; once frames flow it is SIGKILLed. It
 * must die promptly, and a fresh open of the device must work (one frame through TX).
 */
static int case_owner_killed(const char *path)
{
	static uint8_t f[SLOT], got[SLOT];
	struct tapc tc;
	struct dev d = { .vfd = -1 };
	int r, pfd[2] = { -1, -1 }, st, n, others = 0;
	long long t0;
	pid_t pid;
	char c;

	r = tapc_create(&tc, 0, 1500);
	if (r != R_PASS)
		goto out;
	if (access(path, F_OK)) {
		snprintf(skip_reason, 256, "%s not present", path);
		r = R_SKIP;
		goto out;
	}
	if (pipe2(pfd, O_CLOEXEC)) {
		r = R_FAIL;
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		r = R_FAIL;
		goto out;
	}
	if (!pid) {
		close(pfd[0]);
		alarm(60);
		if (dev_open(&d, path, 0) != R_PASS || dev_setup(&d, QEMU_FEATURES, -1) != R_PASS ||
		    dev_backend(&d, tc.t.fd) != R_PASS)
			_exit(2);
		tx_pump_forever(&d, pfd[1]);
	}
	close(pfd[1]);
	pfd[1] = -1;
	r = R_FAIL;
	if (wait_byte(pfd[0], 20000, &c)) {
		st = wait_child(pid, 100);
		ktap_diag("%s: the child's TX did not get going within 20 s (child %s %d)", path,
			  st < 0 ? "running" : "exited, status", st);
		kill(pid, SIGKILL);
		wait_child(pid, 10000);
		goto out;
	}
	sleep_ms(50);
	t0 = now_ms();
	kill(pid, SIGKILL);
	st = wait_child(pid, 20000);
	if (st < 0) {
		ktap_diag("%s: the SIGKILLed owner did not exit within 20 s", path);
		goto out;
	}
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
		ktap_diag("%s: the owner ended with status %#x, not by SIGKILL", path, st);
		goto out;
	}
	if (now_ms() - t0 > 2000)
		ktap_diag("%s: the killed owner took %lld ms to go", path, now_ms() - t0);
	/* The child's device is released now: a fresh one on the same tap. */
	sleep_ms(50);
	pkt_drain(tc.cap);
	r = dev_open(&d, path, 1);
	if (r == R_PASS)
		r = dev_setup(&d, QEMU_FEATURES, -1);
	if (r == R_PASS)
		r = dev_backend(&d, tc.t.fd);
	if (r != R_PASS)
		goto out;
	frame_eth_seq(f, 300, 777, NULL);
	r = dev_tx_one(&d, f, 300);
	if (r != R_PASS)
		goto out;
	/* Frames of the dead child may still trail in the capture: skip those. */
	for (;;) {
		n = pkt_recv(tc.cap, got, sizeof(got), TMO);
		if (n < 0) {
			ktap_diag("%s: fresh device: frame not on the wire within %d ms", path, TMO);
			r = R_FAIL;
			break;
		}
		if (n == 300 && frame_seq(got) == 777) {
			if (first_diff(got, f, 300) >= 0) {
				ktap_diag("%s: fresh device: frame differs at byte %d", path,
					  first_diff(got, f, 300));
				r = R_FAIL;
			}
			break;
		}
		if (n != 200 || frame_seq(got) < 0x100000 || ++others > 4096) {
			ktap_diag("%s: fresh device: unexpected frame of %d bytes (seq %#x)", path, n,
				  frame_seq(got));
			r = R_FAIL;
			break;
		}
	}
	if (r == R_PASS && others)
		ktap_diag("%s: %d frames of the killed owner arrived late", path, others);
out:
	dev_close(&d);
	tapc_close(&tc);
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return r;
}

/* ---- 8. owner exits while another process holds the file ------------------------------- */

struct closer {
	int fd;
	volatile int done;
};

static void *close_thread(void *arg)
{
	struct closer *c = arg;

	close(c->fd);
	c->done = 1;
	return NULL;
}

/*
 * We open the device and fork; the child becomes the owner (SET_OWNER with its mm), sets up
 * both queues on our tap with eventfds and rings we made, sends a frame and exits without
 * closing. We still hold the file: GET_FEATURES works, SET_OWNER says EBUSY (owned),
 * owner-only ioctls EPERM (we are not the owner); a kick from us transmits nothing (the
 * owner's worker died with it, as vhost_task workers do); our close returns promptly.
 */
static int case_owner_exits(const char *path)
{
	static uint8_t f[SLOT];
	struct vhost_vring_state vs = { .index = 1 };
	struct tapc tc;
	struct closer cl;
	struct dev d = { .vfd = -1 };
	uint64_t feat;
	pthread_t th;
	int r, pfd[2] = { -1, -1 }, st, e_own, e_reset, e_base, e_backend;
	unsigned int used0;
	long long end;
	pid_t pid;
	char c;

	r = tapc_create(&tc, 0, 1500);
	if (r == R_PASS)
		r = dev_open(&d, path, 0);
	if (r != R_PASS)
		goto out;
	r = R_FAIL;
	if (pipe2(pfd, O_CLOEXEC))
		goto out;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		goto out;
	if (!pid) {
		close(pfd[0]);
		alarm(60);
		if (dev_setup(&d, QEMU_FEATURES, -1) != R_PASS || dev_backend(&d, tc.t.fd) != R_PASS)
			_exit(2);
		frame_eth_seq(f, 120, 800, NULL);
		if (dev_tx_one(&d, f, 120) != R_PASS)
			_exit(3);
		if (write(pfd[1], "k", 1) != 1)
			_exit(4);
		_exit(0);	/* without closing: exit does, and we still hold the file */
	}
	close(pfd[1]);
	pfd[1] = -1;
	if (wait_byte(pfd[0], 20000, &c)) {
		st = wait_child(pid, 100);
		ktap_diag("%s: the owner child did not send its frame (status %d)", d.name, st);
		if (st < 0) {
			kill(pid, SIGKILL);
			wait_child(pid, 10000);
		}
		goto out;
	}
	st = wait_child(pid, 20000);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		ktap_diag("%s: the owner child did not exit cleanly (status %d)", d.name, st);
		if (st < 0)
			kill(pid, SIGKILL);
		goto out;
	}
	frame_eth_seq(f, 120, 800, NULL);
	if (cap_expect(tc.cap, d.name, f, 120, "frame from the owner child") != R_PASS)
		goto out;
	/* Our copy of the TX ring state: the child used one frame. */
	d.tx.last_used = vr_used_idx(&d.tx);
	used0 = d.tx.last_used;
	if (ioctl(d.vfd, VHOST_GET_FEATURES, &feat) < 0) {
		ktap_diag("%s: GET_FEATURES after the owner exited: %s", d.name, errno_name(errno));
		goto out;
	}
	e_own = ioctl(d.vfd, VHOST_SET_OWNER) < 0 ? errno : 0;
	e_reset = ioctl(d.vfd, VHOST_RESET_OWNER) < 0 ? errno : 0;
	e_base = ioctl(d.vfd, VHOST_GET_VRING_BASE, &vs) < 0 ? errno : 0;
	e_backend = -set_backend(d.vfd, 1, -1);
	if (e_own != EBUSY || e_reset != EPERM || e_base != EPERM || e_backend != EPERM) {
		ktap_diag("%s: after the owner exited, from another process: SET_OWNER %s, RESET_OWNER %s, GET_VRING_BASE %s, NET_SET_BACKEND %s; expected EBUSY, EPERM, EPERM, EPERM",
			  d.name, errno_name(e_own), errno_name(e_reset), errno_name(e_base),
			  errno_name(e_backend));
		goto out;
	}
	/* A frame kicked now: the owner (and its worker) are gone, nothing may be sent. */
	pkt_drain(tc.cap);
	frame_eth_seq(f, 130, 801, NULL);
	{
		struct vr_seg s = { dev_slot(0) + 5 * SLOT, HDR_LEN + 130, false };
		uint8_t z[HDR_LEN] = { 0 };
		int head;

		/* The child's ring state lives on in guest memory; ours is stale: rebuild it. */
		d.tx.avail_idx = __atomic_load_n(&d.tx.avail->idx, __ATOMIC_ACQUIRE);
		g_write(&G, s.gpa, z, HDR_LEN);
		g_write(&G, s.gpa + HDR_LEN, f, 130);
		head = vr_add(&d.tx, &s, 1, 0);
		vr_publish(&d.tx, head);
		vr_kick(&d.tx);
	}
	sleep_ms(500);
	if (vr_used_idx(&d.tx) != used0 || pkt_recv(tc.cap, f, sizeof(f), 10) >= 0) {
		ktap_diag("%s: a kick after the owner died was acted on (used idx %u -> %u)", d.name,
			  used0, vr_used_idx(&d.tx));
		goto out;
	}
	/* Our close is the last reference: it must return. */
	cl.fd = d.vfd;
	cl.done = 0;
	d.vfd = -1;
	if (pthread_create(&th, NULL, close_thread, &cl))
		goto out;
	end = now_ms() + 20000;
	while (!cl.done && now_ms() < end)
		sleep_ms(5);
	if (!cl.done) {
		ktap_diag("%s: close of the last reference hangs (> 20 s) after the owner exited", path);
		goto out;	/* the thread stays stuck; the case's process is killed */
	}
	pthread_join(th, NULL);
	r = R_PASS;
out:
	dev_close(&d);
	tapc_close(&tc);
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return r;
}

/* ---- 9. tap deleted under traffic ------------------------------------------------------ */

struct rx_inject {
	int snd, ifindex;
	volatile int stop;
	int sent;
};

static void *inject_thread(void *arg)
{
	struct rx_inject *x = arg;
	uint8_t f[60];
	uint32_t seq = 0;

	while (!x->stop) {
		frame_eth_seq(f, 60, 0x200000 + seq++, NULL);
		if (!pkt_send(x->snd, x->ifindex, f, 60))
			x->sent++;
		sleep_ms(1);
	}
	return NULL;
}

struct deleter {
	char name[IFNAMSIZ];
	volatile int done, failed;
	long long t_done;
};

static void *delete_thread(void *arg)
{
	struct deleter *x = arg;

	x->failed = run("ip link del %s", x->name) != 0;
	x->t_done = now_ms();
	x->done = 1;
	return NULL;
}

/*
 * TX pumping and RX frames arriving, then `ip link del` of the tap (from another thread,
 * the traffic goes on during the deletion and for a second after it). Every used element
 * must be a posted head, in order; every published frame consumed (GET_VRING_BASE); the
 * device answers ioctls; detach, RESET_OWNER, and a new setup on a new tap moves a frame
 * both ways.
 */
static int case_tap_deleted(const char *path)
{
	static uint8_t f[SLOT];
	struct rx_inject x = { 0 };
	struct tapc tc, t2;
	struct dev d = { .vfd = -1 };
	pthread_t th;
	bool started = false, del_started = false;
	struct deleter del = { 0 };
	pthread_t dth;
	uint64_t feat;
	struct vhost_vring_state vs = { .index = 1 };
	int r, n, used = 0, sent = 0, rx_used = 0;
	long long t0, end;

	t2.t.fd = t2.cap = t2.snd = -1;
	r = tap_dev(&tc, &d, path);
	if (r == R_PASS)
		r = dev_rx_post(&d, 128);
	if (r != R_PASS)
		goto out;
	if (system("command -v ip >/dev/null 2>&1")) {
		snprintf(skip_reason, 256, "iproute2 `ip` not found");
		r = R_SKIP;
		goto out;
	}
	memcpy(del.name, tc.t.name, IFNAMSIZ);
	x.snd = tc.snd;
	x.ifindex = tc.t.ifindex;
	if (pthread_create(&th, NULL, inject_thread, &x)) {
		r = R_FAIL;
		goto out;
	}
	started = true;
	t0 = now_ms();
	end = t0 + 60000;
	while (now_ms() < end && !(del.done && now_ms() > del.t_done + 1000)) {
		bool added = false;

		while (d.tx.nfree > 1) {
			frame_eth_seq(f, 200, sent, NULL);
			if (dev_tx_add(&d, f, 200) < 0)
				break;
			sent++;
			added = true;
		}
		if (added)
			vr_kick(&d.tx);
		n = dev_tx_reclaim(&d);
		if (n < 0) {
			r = R_FAIL;
			break;
		}
		used += n;
		/* RX: take what arrives, give the buffers back. */
		while ((n = dev_rx_take(&d, f, sizeof(f))) > 0) {
			rx_used++;
			dev_rx_post(&d, 1);
		}
		if (n < 0) {
			r = R_FAIL;
			break;
		}
		if (!del_started && now_ms() - t0 > 400) {
			if (pthread_create(&dth, NULL, delete_thread, &del)) {
				r = R_FAIL;
				break;
			}
			del_started = true;
		}
		if (!n)
			vr_kick(&d.tx);
		sleep_ms(1);
	}
	x.stop = 1;
	pthread_join(th, NULL);
	started = false;
	if (del_started)
		pthread_join(dth, NULL);
	if (r != R_PASS)
		goto out;
	if (!del.done || del.failed) {
		ktap_diag("%s: deleting %s %s", d.name, del.name, del.failed ? "failed" : "did not finish");
		r = R_FAIL;
		goto out;
	}
	/* Whatever is still published must be used (sent or dropped) after a last kick. */
	ktap_diag("%s: %lld ms of traffic, the tap deleted from 400 ms to %lld ms; then %d TX frames unused",
		  d.name, now_ms() - t0, del.t_done - t0, sent - used);
	vr_kick(&d.tx);
	t0 = now_ms();
	end = now_ms() + TMO;
	while (used < sent && now_ms() < end) {
		n = dev_tx_reclaim(&d);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		used += n;
		if (!n)
			sleep_ms(2);
	}
	ktap_diag("%s: %d TX frames published, %d used (the last %lld ms after the last kick); %d RX frames sent, %d received",
		  d.name, sent, used, now_ms() - t0, x.sent, rx_used);
	/*
	 * Not required: that every published frame comes back used. vhost-net's batched TX
	 * (tun's sndbuf is INT_MAX) drops a whole batch when tun_sendmsg fails (-EBADFD once
	 * the tap is gone) without adding its heads to the used ring (vhost_tx_batch(): done_idx
	 * = 0), while its unbatched path uses them; either is accepted, the count reported.
	 */
	if (used != sent)
		ktap_diag("%s: note: %d TX frames consumed but never used after the tap was deleted",
			  d.name, sent - used);
	if (ioctl(d.vfd, VHOST_GET_FEATURES, &feat) < 0 || ioctl(d.vfd, VHOST_GET_VRING_BASE, &vs) < 0) {
		ktap_diag("%s: GET_FEATURES/GET_VRING_BASE after the tap was deleted: %s", d.name,
			  errno_name(errno));
		r = R_FAIL;
		goto out;
	}
	if (vs.num != (uint16_t)sent) {
		ktap_diag("%s: GET_VRING_BASE of TX is %u, expected %u", d.name, vs.num, (uint16_t)sent);
		r = R_FAIL;
		goto out;
	}
	if ((n = set_backend(d.vfd, 0, -1)) || (n = set_backend(d.vfd, 1, -1))) {
		ktap_diag("%s: NET_SET_BACKEND -1 after the tap was deleted: %s", d.name, errno_name(-n));
		r = R_FAIL;
		goto out;
	}
	if (ioctl(d.vfd, VHOST_RESET_OWNER) < 0) {
		ktap_diag("%s: RESET_OWNER after the tap was deleted: %s", d.name, errno_name(errno));
		r = R_FAIL;
		goto out;
	}
	/* The same file, a new owner setup (the same process), a new tap. */
	r = tapc_create(&t2, 0, 1500);
	if (r != R_PASS)
		goto out;
	{
		int vfd = d.vfd;

		vr_close(&d.rx);
		vr_close(&d.tx);
		d.vfd = -1;
		dev_close(&d);
		memset(&d, 0, sizeof(d));
		d.path = path;
		d.name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		d.vfd = vfd;
		d.k = 1;
		if (vr_init(&d.rx, &G, G_C_GPA + 0x10000) || vr_init(&d.tx, &G, G_C_GPA + 0x14000)) {
			r = R_FAIL;
			goto out;
		}
	}
	r = dev_setup(&d, QEMU_FEATURES, -1);
	if (r == R_PASS)
		r = dev_backend(&d, t2.t.fd);
	pkt_drain(t2.cap);
	if (r == R_PASS)
		r = dev_txrx(&d, t2.cap, t2.snd, t2.t.ifindex, NULL, 900);
	if (r != R_PASS)
		ktap_diag("%s: (after RESET_OWNER, with a new tap)", d.name);
out:
	if (started) {
		x.stop = 1;
		pthread_join(th, NULL);
	}
	dev_close(&d);
	tapc_close(&tc);
	tapc_close(&t2);
	return r;
}

/*
 * The rings' 16-bit indexes are read and written whole (vhost.c's __get_user/__put_user):
 * TX frames posted 8 at a time (each a 16-bit store of the avail index, often while the
 * device reads it) and, between the bursts, the used index read in a tight loop while the
 * device stores it. A used index that moves back, or past what was posted, is a torn
 * access: the device's store of it seen half done, or its read of the avail index half
 * old, half new (it then uses entries never posted, which dev_tx_reclaim() catches). 8 s;
 * each 256 frames are a crossing of a 256 boundary in both indexes, where a torn access
 * is off by 256.
 */
static int case_ring_index_atomic(const char *path)
{
	static uint8_t f[SLOT];
	struct tapc tc;
	struct dev d;
	uint16_t seen, v, posted;
	long long end, t, reads = 0;
	int r, n, k, sent = 0, used = 0;

	memset(&d, 0, sizeof(d));
	d.vfd = -1;
	tc.t.fd = tc.cap = tc.snd = -1;
	r = tap_dev(&tc, &d, path);
	if (r != R_PASS)
		goto out;
	seen = vr_used_idx(&d.tx);
	end = now_ms() + 8000;
	while (now_ms() < end) {
		for (k = 0; k < 8 && d.tx.nfree > 1; k++) {
			frame_eth_seq(f, 60, sent, NULL);
			if (dev_tx_add(&d, f, 60) < 0)
				break;
			sent++;
		}
		vr_kick(&d.tx);
		posted = d.tx.avail_idx;
		for (t = now_ms(), k = 0;; k++) {
			v = vr_used_idx(&d.tx);
			reads++;
			if ((uint16_t)(v - seen) > (uint16_t)(posted - seen)) {
				ktap_diag("%s: the used index went from %u to %u with %u posted: a torn 16-bit access",
					  d.name, seen, v, posted);
				r = R_FAIL;
				goto out;
			}
			seen = v;
			if (v == posted || (!(k & 255) && now_ms() - t > 1000))
				break;
		}
		n = dev_tx_reclaim(&d);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		used += n;
	}
	ktap_diag("%s: %d TX frames posted, %d used in order (%d crossings of a 256 boundary), %lld reads of the used index",
		  d.name, sent, used, used / 256, reads);
	if (used < 1024) {
		ktap_diag("%s: fewer than 1024 frames in 8 s: too few crossings to tell", d.name);
		r = R_FAIL;
	}
out:
	dev_close(&d);
	tapc_close(&tc);
	return r;
}

/* ---- main --------------------------------------------------------------------------------- */

/* ---- allocation failures, injected --------------------------------------------------------- */

/*
 * The kernel's fault injection: with fail-nth, the Nth allocation (slab or page) this thread
 * makes fails. The defaults spare GFP_KERNEL and order-0 allocations, which are nearly all of
 * ours; open them up, and keep the log quiet (a stack per injection would flood it).
 */
static const char *const fault_knobs[][2] = {
	{ "/sys/kernel/debug/failslab/ignore-gfp-wait", "N" },
	{ "/sys/kernel/debug/failslab/verbose", "0" },
	{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N" },
	{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N" },
	{ "/sys/kernel/debug/fail_page_alloc/min-order", "0" },
	{ "/sys/kernel/debug/fail_page_alloc/verbose", "0" },
};

static int fault_setup(void)
{
	unsigned int i;

	if (access("/sys/kernel/debug/failslab", F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (i = 0; i < sizeof(fault_knobs) / sizeof(fault_knobs[0]); i++) {
		int fd = open(fault_knobs[i][0], O_WRONLY | O_CLOEXEC);
		ssize_t n;

		if (fd < 0)
			return -errno;
		n = write(fd, fault_knobs[i][1], strlen(fault_knobs[i][1]));
		close(fd);
		if (n < 0)
			return -errno;
	}
	return 0;
}

static int fail_nth_fd = -1;

/* Arms the Nth allocation of this thread to fail (0 disarms). */
static void fail_nth(int n)
{
	char b[16];
	int len = snprintf(b, sizeof(b), "%d", n);

	if (pwrite(fail_nth_fd, b, len, 0) != len)
		ktap_diag("fail-nth %d: %s", n, strerror(errno));
}

/* True if the armed failure was injected (the counter reached 0); disarms. */
static bool fail_nth_fired(void)
{
	char b[16] = { 0 };
	bool fired = pread(fail_nth_fd, b, sizeof(b) - 1, 0) > 0 && atoi(b) == 0;

	fail_nth(0);
	return fired;
}

enum { ST_OPEN, ST_OWNER, ST_FEATURES, ST_MEM, ST_VRINGS, ST_BACKEND, ST_RESET, ST_N };
static const char *const st_name[ST_N] = { "open", "SET_OWNER", "SET_FEATURES",
	"SET_MEM_TABLE", "SET_VRING_*", "SET_BACKEND", "RESET_OWNER+SET_OWNER" };

/* Step @s of the setup on @d (opened already unless ST_OPEN). 0 or -errno. */
static int fault_step(struct dev *d, int s, int fd)
{
	uint64_t f = QEMU_FEATURES;
	const char *what;
	int r;

	switch (s) {
	case ST_OPEN:
		d->vfd = open(d->path, O_RDWR | O_CLOEXEC);
		return d->vfd < 0 ? -errno : 0;
	case ST_OWNER:
		return ioctl(d->vfd, VHOST_SET_OWNER) < 0 ? -errno : 0;
	case ST_FEATURES:
		return ioctl(d->vfd, VHOST_SET_FEATURES, &f) < 0 ? -errno : 0;
	case ST_MEM:
		return g_set_mem_table(&G, d->vfd);
	case ST_VRINGS:
		r = vr_setup_vhost(&d->rx, d->vfd, 0, &what);
		return r ? r : vr_setup_vhost(&d->tx, d->vfd, 1, &what);
	case ST_BACKEND:
		r = set_backend(d->vfd, 0, fd);
		return r ? r : set_backend(d->vfd, 1, fd);
	default:
		if (ioctl(d->vfd, VHOST_RESET_OWNER) < 0)
			return -errno;
		return ioctl(d->vfd, VHOST_SET_OWNER) < 0 ? -errno : 0;
	}
}

/*
 * For every setup step and every N until the step makes fewer than N allocations: a fresh
 * device whose step meets a failure at its Nth allocation. The step must fail cleanly (an
 * errno) or cope; done again without injection it must succeed, and the device, set up to
 * the end, must then move frames both ways. Leaks show in kmemleak at the end of the run.
 */
static int case_alloc_faults(const char *path)
{
	struct tapc tc;
	int s, n, r, injected = 0, errs = 0, coped = 0, runs = 0, total = 0;
	char errnos[256] = "";

	r = tapc_create(&tc, 0, 1500);
	if (r != R_PASS)
		return r;
	if (access(path, F_OK))
		SKIP("%s not present", path);
	r = fault_setup();
	if (r)
		SKIP("fault injection knobs in debugfs: %s", strerror(-r));
	fail_nth_fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (fail_nth_fd < 0)
		SKIP("/proc/thread-self/fail-nth: %s (CONFIG_FAULT_INJECTION)", strerror(errno));
	for (s = 0; s < ST_N; s++) {
		int step_inj = 0;

		for (n = 1; n <= 200; n++) {
			struct dev d;
			bool fired;
			int i, e;

			if (dev_open(&d, path, 0) != R_PASS)
				return R_FAIL;
			if (s == ST_OPEN) {
				close(d.vfd);
				d.vfd = -1;
			}
			for (i = 0; i < s; i++)
				if ((e = fault_step(&d, i, tc.t.fd)))
					FAIL("%s: %s without injection: %s", d.name, st_name[i], errno_name(-e));
			fail_nth(n);
			e = fault_step(&d, s, tc.t.fd);
			fired = fail_nth_fired();
			runs++;
			if (!fired) {
				dev_close(&d);
				if (e)
					FAIL("%s: %s failed (%s) with no fault injected", d.name, st_name[s],
					     errno_name(-e));
				break;
			}
			injected++;
			step_inj++;
			if (e) {
				char one[24];

				errs++;
				snprintf(one, sizeof(one), "%s ", errno_name(-e));
				if (!strstr(errnos, one) && strlen(errnos) + strlen(one) < sizeof(errnos))
					strcat(errnos, one);
				/* Again, without injection: must work now (SET_BACKEND may be half done). */
				if (s == ST_BACKEND) {
					set_backend(d.vfd, 0, -1);
					set_backend(d.vfd, 1, -1);
				}
				if (s == ST_RESET) {
					/* Either half may have failed: an owner must be possible again. */
					if (ioctl(d.vfd, VHOST_RESET_OWNER) < 0 && errno != EPERM)
						FAIL("%s: RESET_OWNER, after a failure injected at allocation %d: %s",
						     d.name, n, errno_name(errno));
					if (ioctl(d.vfd, VHOST_SET_OWNER) < 0)
						FAIL("%s: SET_OWNER, after a failure injected at allocation %d: %s",
						     d.name, n, errno_name(errno));
				} else if ((e = fault_step(&d, s, tc.t.fd)))
					FAIL("%s: %s, after a failure injected at allocation %d, fails again: %s",
					     d.name, st_name[s], n, errno_name(-e));
			} else {
				coped++;
			}
			/* The rest of the setup, then traffic. */
			for (i = s + 1; i < ST_N; i++) {
				if (i == ST_RESET)
					continue;
				if ((e = fault_step(&d, i, tc.t.fd)))
					FAIL("%s: %s after %s met a failure at allocation %d: %s", d.name,
					     st_name[i], st_name[s], n, errno_name(-e));
			}
			if (s >= ST_RESET) {
				/* RESET_OWNER dropped everything: set the device up again. */
				for (i = ST_FEATURES; i < ST_RESET; i++)
					if ((e = fault_step(&d, i, tc.t.fd)))
						FAIL("%s: %s after RESET_OWNER met a failure at allocation %d: %s",
						     d.name, st_name[i], n, errno_name(-e));
			}
			if (n % 4 == 1 || s >= ST_BACKEND) {
				pkt_drain(tc.cap);
				if (dev_txrx(&d, tc.cap, tc.snd, tc.t.ifindex, NULL, 0x300000 + n) != R_PASS)
					FAIL("%s: no traffic after %s met a failure at allocation %d", d.name,
					     st_name[s], n);
			}
			dev_close(&d);
		}
		ktap_diag("%s: %s: %d allocation failures injected", strrchr(path, '/') + 1, st_name[s],
			  step_inj);
		total += step_inj;
	}
	ktap_diag("%s: %d runs, %d failures injected: %d steps returned an error (%s), %d coped; every device worked afterwards",
		  strrchr(path, '/') + 1, runs, injected, errs, errnos[0] ? errnos : "none", coped);
	close(fail_nth_fd);
	tapc_close(&tc);
	if (!total)
		FAIL("no failure was ever injected: fault injection does not reach the device");
	return R_PASS;
}

/* ---- ioctls racing with traffic ------------------------------------------------------------ */

struct racer {
	struct dev *d;
	int taps[2], kind;
	volatile int *stop;
	bool reset;			/* phase 2: RESET_OWNER is in the mix */
	int calls, bad_errno;
	char what[160];
};

/* The errnos an ioctl may give while others change the device under it. */
static bool race_errno_ok(int e)
{
	return e == EBUSY || e == EPERM || e == EFAULT || e == EINVAL || e == ENOBUFS ||
	       e == EBADF || e == ENOTSOCK;
}

static void *racer_thread(void *arg)
{
	struct racer *x = arg;
	struct dev *d = x->d;
	unsigned int seed = 1234 + x->kind;

	while (!*x->stop) {
		uint64_t f = QEMU_FEATURES ^ (rand_r(&seed) % 2 ? F(VIRTIO_NET_F_MRG_RXBUF) : 0);
		struct vhost_vring_state s = { .index = rand_r(&seed) % 2, .num = VR_NUM };
		struct vhost_vring_file kf = { .index = s.index };
		const char *op = "";
		int r = 0, q = rand_r(&seed) % 2;

		switch (x->kind) {
		case 0:
			op = "SET_BACKEND";
			r = set_backend(d->vfd, q, rand_r(&seed) % 3 == 2 ? -1 : x->taps[rand_r(&seed) % 2]);
			break;
		case 1:
			op = "SET_MEM_TABLE";
			r = g_set_mem_table(&G, d->vfd);
			break;
		case 2:
			op = "SET_FEATURES";
			r = ioctl(d->vfd, VHOST_SET_FEATURES, &f) < 0 ? -errno : 0;
			break;
		case 3:
			switch (rand_r(&seed) % 4) {
			case 0:
				op = "SET_VRING_NUM";
				r = ioctl(d->vfd, VHOST_SET_VRING_NUM, &s) < 0 ? -errno : 0;
				break;
			case 1:
				op = "GET_VRING_BASE";
				r = ioctl(d->vfd, VHOST_GET_VRING_BASE, &s) < 0 ? -errno : 0;
				break;
			case 2:
				op = "SET_VRING_KICK";
				kf.fd = s.index ? d->tx.kick : d->rx.kick;
				r = ioctl(d->vfd, VHOST_SET_VRING_KICK, &kf) < 0 ? -errno : 0;
				break;
			default:
				op = "SET_VRING_CALL";
				kf.fd = s.index ? d->tx.call : d->rx.call;
				r = ioctl(d->vfd, VHOST_SET_VRING_CALL, &kf) < 0 ? -errno : 0;
				break;
			}
			break;
		default:
			/* RESET_OWNER, then the whole setup again (others race with each step). */
			op = "RESET_OWNER";
			r = ioctl(d->vfd, VHOST_RESET_OWNER) < 0 ? -errno : 0;
			if (!r || r == -EPERM) {
				const char *what = "";

				op = "SET_OWNER";
				r = ioctl(d->vfd, VHOST_SET_OWNER) < 0 ? -errno : 0;
				if (!r || r == -EBUSY)
					r = ioctl(d->vfd, VHOST_SET_FEATURES, &f) < 0 ? -errno : 0;
				if (!r)
					r = g_set_mem_table(&G, d->vfd);
				if (!r)
					r = vr_setup_vhost(&d->rx, d->vfd, 0, &what);
				if (!r)
					r = vr_setup_vhost(&d->tx, d->vfd, 1, &what);
				if (r)
					op = what[0] ? what : "setup after RESET_OWNER";
			}
			sleep_ms(5);
			break;
		}
		x->calls++;
		if (r && !race_errno_ok(-r) && !x->bad_errno++)
			snprintf(x->what, sizeof(x->what), "%s: %s", op, errno_name(-r));
		if (x->kind != 4)
			sleep_ms(rand_r(&seed) % 3);
	}
	return NULL;
}

/*
 * Five threads change the device while a guest thread pumps TX and takes RX: backends
 * swapped between two taps and none, the memory table replaced, features changed, vring
 * ioctls; then the same with RESET_OWNER and a new setup in the mix. Every ioctl returns 0
 * or an errno that says why; without RESET_OWNER every used element is a head the guest
 * posted; afterwards a clean setup moves frames both ways.
 */
static int case_ioctl_races(const char *path)
{
	static uint8_t f[SLOT];
	struct tapc a, b;
	struct dev d;
	struct racer x[5];
	pthread_t th[5];
	volatile int stop;
	int r, phase, i, n, sent = 0, used = 0;

	a.t.fd = b.t.fd = -1;
	r = two_taps_dev(&a, &b, &d, path);
	if (r != R_PASS)
		return r;
	for (phase = 0; phase < 2; phase++) {
		long long end = now_ms() + 3000;
		int nthreads = phase ? 5 : 4;

		stop = 0;
		for (i = 0; i < nthreads; i++) {
			x[i] = (struct racer){ .d = &d, .taps = { a.t.fd, b.t.fd }, .kind = i,
					       .stop = &stop, .reset = phase };
			if (pthread_create(&th[i], NULL, racer_thread, &x[i]))
				FAIL("pthread_create: %s", strerror(errno));
		}
		while (now_ms() < end) {
			while (d.tx.nfree > 1 && !phase) {
				frame_eth_seq(f, 200, sent, NULL);
				if (dev_tx_add(&d, f, 200) < 0)
					break;
				sent++;
			}
			if (phase) {
				/* The rings are reset under us: just keep the device busy. */
				vr_kick(&d.tx);
				pkt_send(a.snd, a.t.ifindex, f, 60);
			} else {
				vr_kick(&d.tx);
				n = dev_tx_reclaim(&d);
				if (n < 0) {
					stop = 1;
					r = R_FAIL;
					break;
				}
				used += n;
				frame_eth_seq(f, 60, 0x400000 + sent, NULL);
				pkt_send(a.snd, a.t.ifindex, f, 60);
				pkt_send(b.snd, b.t.ifindex, f, 60);
			}
			sleep_ms(1);
		}
		stop = 1;
		for (i = 0; i < nthreads; i++) {
			pthread_join(th[i], NULL);
			ktap_diag("%s: phase %d, %s racer: %d ioctls%s%s", d.name, phase,
				  (const char *[]){ "SET_BACKEND", "SET_MEM_TABLE", "SET_FEATURES",
						    "vring", "RESET_OWNER+setup" }[i],
				  x[i].calls, x[i].bad_errno ? ", unexpected: " : "", x[i].what);
			if (x[i].bad_errno)
				r = R_FAIL;
		}
		if (r != R_PASS)
			goto out;
		if (!phase)
			ktap_diag("%s: %d TX frames posted, %d used, all in order, while the ioctls raced",
				  d.name, sent, used);
	}
	/* A clean setup on the same file: traffic both ways. */
	vr_close(&d.rx);
	vr_close(&d.tx);
	if (ioctl(d.vfd, VHOST_RESET_OWNER) < 0 && errno != EPERM)
		FAIL("%s: RESET_OWNER after the races: %s", d.name, errno_name(errno));
	{
		int vfd = d.vfd;

		d.vfd = -1;
		dev_close(&d);
		r = dev_open(&d, path, 0);
		if (r != R_PASS)
			goto out;
		close(d.vfd);
		d.vfd = vfd;
	}
	/* Frames the races left queued in the tap go before it is attached again. */
	pkt_drain(b.cap);
	while (read(b.t.fd, f, sizeof(f)) >= 0)
		;
	r = dev_setup(&d, QEMU_FEATURES, -1);
	if (r == R_PASS)
		r = dev_backend(&d, b.t.fd);
	if (r == R_PASS)
		r = dev_txrx(&d, b.cap, b.snd, b.t.ifindex, NULL, 0x500000);
out:
	dev_close(&d);
	tapc_close(&a);
	tapc_close(&b);
	return r;
}

/* ---- busy polling -------------------------------------------------------------------------- */

static int set_busyloop(int vfd, unsigned int idx, unsigned int us)
{
	struct vhost_vring_state s = { .index = idx, .num = us };

	return ioctl(vfd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &s) < 0 ? -errno : 0;
}

/* The worker thread of owner @pid ("vhost-PID"): its tid, or -1. */
static int worker_tid(pid_t pid)
{
	char path[320], comm[32], want[32];
	struct dirent *e;
	DIR *d;
	int tid = -1;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	snprintf(want, sizeof(want), "vhost-%d\n", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", pid, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, want))
			tid = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return tid;
}

/* CPU time of thread @tid of @pid, in clock ticks (utime + stime), or -1. */
static long thread_ticks(pid_t pid, int tid)
{
	char path[64], buf[512], *p;
	unsigned long ut, st;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')))
		return -1;
	/* After "pid (comm)": field 3 is the state; utime and stime are fields 14 and 15. */
	for (i = 3; i <= 14 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, " %lu %lu", &ut, &st) != 2)
		return -1;
	return ut + st;
}

/* A counter of queue @q ("rx"/"tx") from our fdinfo, or -1 (vhost-net has none). */
static long long fdinfo_counter(int vfd, const char *q, const char *name)
{
	char path[64], line[512], key[64];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", vfd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	snprintf(key, sizeof(key), " %s ", name);
	while (fgets(line, sizeof(line), f)) {
		char *p;

		if (strncmp(line, "vq", 2) || !strstr(line, q))
			continue;
		p = strstr(line, key);
		if (p)
			v = atoll(p + strlen(key));
	}
	fclose(f);
	return v;
}

/* Whether @d is our device (the C one has no counters). */
static bool dev_ours(const struct dev *d)
{
	return strstr(d->path, "vhost-rs") != NULL;
}

/* Our debugfs directory of device @vfd, as its fdinfo names it: 0, or -1. */
static int debugfs_dir(int vfd, char *dir, size_t n)
{
	char path[64], line[512];
	int r = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", vfd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "debugfs: ", 9))
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(dir, n, "/sys/kernel/debug/%.200s", line + 9);
		r = 0;
	}
	fclose(f);
	return r;
}

/* Counter @name of queue @q ("rx"/"tx") from our debugfs file, or -1. */
static long long debugfs_counter(int vfd, const char *q, const char *name)
{
	char dir[256], path[300], key[64];
	long long v = -1, x;
	FILE *f;

	if (debugfs_dir(vfd, dir, sizeof(dir)))
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, q);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &x) == 2)
		if (!strcmp(key, name))
			v = x;
	fclose(f);
	return v;
}

/*
 * A counter of @d's queue @q as tests read it: ours from debugfs (vhost-net has none:
 * -1). Callers that check counters check them on ours only, so -1 there fails them.
 */
static long long counter(const struct dev *d, const char *q, const char *name)
{
	return dev_ours(d) ? debugfs_counter(d->vfd, q, name) : -1;
}

/*
 * The child of the signal part: owner of a device whose TX worker busy-polls for 20 s after
 * each frame. Writes 's' to @wfd once a frame is through (the poll then runs), and sends
 * one more frame for each byte read from @rfd.
 */
static void busy_child(const char *path, int rfd, int wfd)
{
	static uint8_t f[SLOT];
	struct tapc tc;
	struct dev d;
	char c;

	if (tapc_create(&tc, 0, 1500) != R_PASS || dev_open(&d, path, 0) != R_PASS ||
	    dev_setup(&d, QEMU_FEATURES, -1) != R_PASS || set_busyloop(d.vfd, 1, 20000000) ||
	    dev_backend(&d, tc.t.fd) != R_PASS)
		_exit(1);
	frame_eth_seq(f, 60, 0x600000, NULL);
	do {
		if (dev_tx_one(&d, f, 60) != R_PASS)
			_exit(1);
		if (write(wfd, "s", 1) != 1)
			_exit(1);
	} while (read(rfd, &c, 1) == 1);
	for (;;)
		pause();
}

/* Waits up to @ms for the byte the busy-poll child writes when its frame is through. */
static int busy_child_ready(int fd, int ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char c;

	return poll(&pf, 1, ms) == 1 && read(fd, &c, 1) == 1 ? 0 : -1;
}

/*
 * VHOST_SET_VRING_BUSYLOOP_TIMEOUT: traffic both ways with a 50 us poll (our counters of
 * busy-poll hits and misses must move; vhost-net has no counters); a TX poll of 5 s must
 * not starve RX (a frame arriving meanwhile is received well before the poll would end);
 * a worker spinning in a 20 s poll (its CPU time shows it) ends with its owner, SIGKILLed,
 * within 5 s.
 */
static int case_busy_poll(const char *path)
{
	static uint8_t f[SLOT];
	struct tapc tc;
	struct dev d;
	long long t0, hits_tx, miss_tx, hits_rx, miss_rx, pk_tx, pk_rx;
	struct vhost_vring_state s = { .index = 0 };
	const char *name = strrchr(path, '/') + 1;
	int r, p[2], q[2], st, tid, tries;
	long c0, c1, ms;
	pid_t pid;

	r = tapc_create(&tc, 0, 1500);
	if (r == R_PASS)
		r = dev_open(&d, path, 0);
	if (r == R_PASS)
		r = dev_setup(&d, QEMU_FEATURES, -1);
	if (r != R_PASS)
		return r;
	if ((r = set_busyloop(d.vfd, 0, 50)) || (r = set_busyloop(d.vfd, 1, 50)))
		FAIL("%s: SET_VRING_BUSYLOOP_TIMEOUT 50: %s", d.name, errno_name(-r));
	if (ioctl(d.vfd, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &s) < 0 || s.num != 50)
		FAIL("%s: GET_VRING_BUSYLOOP_TIMEOUT: %s, %u", d.name, errno_name(errno), s.num);
	if (dev_backend(&d, tc.t.fd) != R_PASS ||
	    dev_txrx(&d, tc.cap, tc.snd, tc.t.ifindex, NULL, 0x610000) != R_PASS)
		return R_FAIL;
	hits_tx = counter(&d, "tx", "busy_hits");
	miss_tx = counter(&d, "tx", "busy_misses");
	hits_rx = counter(&d, "rx", "busy_hits");
	miss_rx = counter(&d, "rx", "busy_misses");
	pk_tx = counter(&d, "tx", "packets");
	pk_rx = counter(&d, "rx", "packets");
	if (!dev_ours(&d)) {
		ktap_diag("%s: no per-queue counters (vhost-net has none; ours has)", d.name);
	} else {
		ktap_diag("%s: 50 us polls: TX %lld hits %lld misses, RX %lld hits %lld misses; packets TX %lld RX %lld",
			  d.name, hits_tx, miss_tx, hits_rx, miss_rx, pk_tx, pk_rx);
		if (hits_tx + miss_tx < 1 || hits_rx + miss_rx < 1)
			FAIL("%s: the busy-poll counters did not move", d.name);
		if (pk_tx != 2 || pk_rx != 2)
			FAIL("%s: packet counters TX %lld RX %lld, expected 2 and 2", d.name, pk_tx, pk_rx);
	}
	/* A TX poll of 5 s, started by one frame; RX must not wait for it. */
	if ((r = set_backend(d.vfd, 1, -1)) || (r = set_busyloop(d.vfd, 1, 5000000)) ||
	    (r = set_backend(d.vfd, 1, tc.t.fd)))
		FAIL("%s: TX timeout 5 s: %s", d.name, errno_name(-r));
	frame_eth_seq(f, 60, 0x620000, NULL);
	if (dev_tx_one(&d, f, 60) != R_PASS || cap_expect(tc.cap, d.name, f, 60, "TX before the poll"))
		return R_FAIL;
	if (dev_rx_post(&d, 4) != R_PASS)
		return R_FAIL;
	sleep_ms(200);
	frame_eth_seq(f, 60, 0x630000, NULL);
	t0 = now_ms();
	if (pkt_send(tc.snd, tc.t.ifindex, f, 60))
		FAIL("%s: sending into the tap: %s", d.name, strerror(errno));
	if (dev_rx_expect(&d, f, 60, "RX during a 5 s TX poll") != R_PASS)
		return R_FAIL;
	ktap_diag("%s: RX frame received %lld ms after it was sent, during a 5 s TX busy poll",
		  d.name, now_ms() - t0);
	if (now_ms() - t0 > 2500)
		FAIL("%s: RX waited %lld ms for the TX busy poll", d.name, now_ms() - t0);
	dev_close(&d);
	tapc_close(&tc);

	/*
	 * A signal ends the poll: the owner, SIGKILLed while its worker spins. A poll also ends
	 * at the first reschedule (in both modules, as vhost_can_busy_poll()), and then the
	 * worker sleeps until the next kick; so if the worker is not found spinning (its CPU time
	 * over 1 s), the child sends another frame, up to 5 times.
	 */
	if (pipe(p) < 0 || pipe(q) < 0)
		FAIL("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (!pid) {
		close(p[0]);
		close(q[1]);
		busy_child(path, q[0], p[1]);
	}
	close(p[1]);
	close(q[0]);
	for (tries = 1;; tries++) {
		if (busy_child_ready(p[0], 30000)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			FAIL("%s: the busy-poll child did not set up or send", name);
		}
		sleep_ms(300);
		tid = worker_tid(pid);
		c0 = tid > 0 ? thread_ticks(pid, tid) : -1;
		sleep_ms(1000);
		c1 = tid > 0 ? thread_ticks(pid, tid) : -1;
		ms = (c1 - c0) * 1000 / sysconf(_SC_CLK_TCK);
		if (tid < 0 || c0 < 0 || c1 < 0 || ms >= 300 || tries == 5)
			break;
		ktap_diag("%s: try %d: the worker ran %ld ms of CPU in 1 s: it had left its poll at a reschedule; another frame",
			  name, tries, ms);
		if (write(q[1], "k", 1) != 1)
			break;
	}
	close(p[0]);
	close(q[1]);
	t0 = now_ms();
	kill(pid, SIGKILL);
	st = wait_child(pid, 15000);
	if (st < 0)
		FAIL("%s: the owner, SIGKILLed during a 20 s busy poll, still exists after 15 s", name);
	ktap_diag("%s: worker %d ran %ld ms of CPU in 1000 ms of a 20 s busy poll (try %d); the SIGKILLed owner was gone %lld ms later",
		  name, tid, ms, tries, now_ms() - t0);
	if (tid < 0 || c0 < 0 || c1 < 0)
		FAIL("no worker thread vhost-%d found", pid);
	if (ms < 300)
		FAIL("%s: the worker was not busy polling in any of %d tries (%ld ticks in the last second)",
		     name, tries, c1 - c0);
	if (now_ms() - t0 > 5000)
		FAIL("the SIGKILLed owner took %lld ms to go, its worker in a busy poll", now_ms() - t0);
	return R_PASS;
}

/* Writes @val to @path; 0 or -errno. */
static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), e = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		e = -errno;
	close(fd);
	return e;
}

/*
 * Allocation failures in the worker: the device's worker thread (vhost-PID) is marked
 * make-it-fail and failslab/fail_page_alloc fail 1 in 5 of its allocations (task-filter:
 * nobody else's) for 2 s of TX and RX traffic; then off. The used ring stays in order, and
 * afterwards the device moves frames both ways (kmemleak checks the rest at the end).
 */
static int case_worker_faults(const char *path)
{
	static const char *const knobs[] = { "failslab", "fail_page_alloc" };
	static uint8_t f[SLOT];
	char p[128];
	struct tapc tc;
	struct dev d;
	int r, tid, sent = 0, used = 0, n, i;
	long long end;

	r = tap_dev(&tc, &d, path);
	if (r != R_PASS)
		return r;
	r = fault_setup();
	if (r)
		SKIP("fault injection knobs in debugfs: %s", strerror(-r));
	tid = worker_tid(getpid());
	if (tid < 0)
		FAIL("%s: no worker thread vhost-%d", d.name, getpid());
	snprintf(p, sizeof(p), "/proc/%d/task/%d/make-it-fail", getpid(), tid);
	if ((r = write_file(p, "1")))
		FAIL("%s: %s: %s", d.name, p, strerror(-r));
	for (i = 0; i < 2; i++) {
		char k[128];

		snprintf(k, sizeof(k), "/sys/kernel/debug/%s/task-filter", knobs[i]);
		write_file(k, "Y");
		snprintf(k, sizeof(k), "/sys/kernel/debug/%s/interval", knobs[i]);
		write_file(k, "1");
		snprintf(k, sizeof(k), "/sys/kernel/debug/%s/times", knobs[i]);
		write_file(k, "-1");
		snprintf(k, sizeof(k), "/sys/kernel/debug/%s/probability", knobs[i]);
		write_file(k, "20");
	}
	dev_rx_post(&d, 64);
	end = now_ms() + 2000;
	while (now_ms() < end) {
		while (d.tx.nfree > 1) {
			frame_eth_seq(f, 1 + (sent % 3) * 700, sent, NULL);
			if (dev_tx_add(&d, f, 1 + (sent % 3) * 700) < 0)
				break;
			sent++;
		}
		vr_kick(&d.tx);
		frame_eth_seq(f, 60, 0x700000 + sent, NULL);
		pkt_send(tc.snd, tc.t.ifindex, f, 60);
		n = dev_tx_reclaim(&d);
		if (n < 0) {
			r = R_FAIL;
			break;
		}
		used += n;
		while ((n = dev_rx_take(&d, f, sizeof(f))) > 0)
			dev_rx_post(&d, 1);
		if (n < 0) {
			r = R_FAIL;
			break;
		}
		sleep_ms(1);
	}
	for (i = 0; i < 2; i++) {
		char k[128];

		snprintf(k, sizeof(k), "/sys/kernel/debug/%s/probability", knobs[i]);
		write_file(k, "0");
		snprintf(k, sizeof(k), "/sys/kernel/debug/%s/task-filter", knobs[i]);
		write_file(k, "N");
	}
	write_file(p, "0");
	if (r != R_PASS)
		return r;
	ktap_diag("%s: 2 s with 1 in 5 of the worker's allocations failing: %d TX frames posted, %d used in order",
		  d.name, sent, used);
	/* Afterwards: everything still published is used, and frames move both ways. */
	end = now_ms() + TMO;
	while (used < sent && now_ms() < end) {
		vr_kick(&d.tx);
		n = dev_tx_reclaim(&d);
		if (n < 0)
			return R_FAIL;
		used += n;
		sleep_ms(2);
	}
	if (used != sent)
		FAIL("%s: %d of %d TX frames used %d ms after the faults stopped", d.name, used, sent, TMO);
	set_backend(d.vfd, 0, -1);
	set_backend(d.vfd, 1, -1);
	dev_close(&d);
	r = dev_open(&d, path, 0);
	if (r == R_PASS)
		r = dev_setup(&d, QEMU_FEATURES, -1);
	if (r == R_PASS) {
		pkt_drain(tc.cap);
		while (read(tc.t.fd, f, sizeof(f)) >= 0)
			;
		r = dev_backend(&d, tc.t.fd);
	}
	if (r == R_PASS)
		r = dev_txrx(&d, tc.cap, tc.snd, tc.t.ifindex, NULL, 0x710000);
	dev_close(&d);
	tapc_close(&tc);
	return r;
}


/*
 * TX batching: 64 small frames in one kick must reach the tap in order and intact, with
 * tun's default unlimited sndbuf (both modules then copy them into batches of up to 64 for
 * one sendmsg each; ours counts them in fdinfo) and again after TUNSETSNDBUF limits the
 * sndbuf (no batching: a sendmsg per frame).
 */
static int case_tx_batching(const char *path)
{
	enum { N = 64 };
	static uint8_t frames[N][SLOT];
	struct tapc tc;
	struct dev d = { .vfd = -1 };
	long long b0, p0, b1, p1;
	char what[64];
	int r, i, round, sndbuf = 1 << 20;

	r = tap_dev(&tc, &d, path);
	for (round = 0; round < 2 && r == R_PASS; round++) {
		if (round == 1 && ioctl(tc.t.fd, TUNSETSNDBUF, &sndbuf) < 0) {
			ktap_diag("TUNSETSNDBUF: %s", strerror(errno));
			r = R_FAIL;
			break;
		}
		b0 = counter(&d, "tx", "batches");
		p0 = counter(&d, "tx", "batched");
		for (i = 0; i < N; i++) {
			frame_eth_seq(frames[i], 60 + i * 20, 0x300000 + round * N + i, NULL);
			if (dev_tx_add(&d, frames[i], 60 + i * 20) < 0) {
				ktap_diag("%s: TX ring full", d.name);
				r = R_FAIL;
				break;
			}
		}
		if (r != R_PASS)
			break;
		vr_kick(&d.tx);
		if (!vr_wait_used(&d.tx, N, TMO)) {
			ktap_diag("%s: %u of %d TX buffers used within %d ms", d.name,
				  vr_used_pending(&d.tx), N, TMO);
			r = R_FAIL;
			break;
		}
		if (dev_tx_reclaim(&d) != N) {
			r = R_FAIL;
			break;
		}
		for (i = 0; i < N && r == R_PASS; i++) {
			snprintf(what, sizeof(what), "%s sndbuf, frame %d", round ? "limited" : "unlimited", i);
			r = cap_expect(tc.cap, d.name, frames[i], 60 + i * 20, what);
		}
		b1 = counter(&d, "tx", "batches");
		p1 = counter(&d, "tx", "batched");
		if (r != R_PASS || !dev_ours(&d))
			continue;	/* vhost-net has no counters */
		if (b0 < 0 || b1 < 0 || p0 < 0 || p1 < 0) {
			ktap_diag("%s: TX batch counters missing from debugfs", d.name);
			r = R_FAIL;
			continue;
		}
		ktap_diag("%s: %s sndbuf: %lld frames in %lld batches", d.name,
			  round ? "limited" : "unlimited", p1 - p0, b1 - b0);
		if (!round && (p1 - p0 != N || b1 - b0 >= N)) {
			ktap_diag("%s: expected the %d frames in batches", d.name, N);
			r = R_FAIL;
		} else if (round && p1 != p0) {
			ktap_diag("%s: batched with a limited sndbuf", d.name);
			r = R_FAIL;
		}
	}
	dev_close(&d);
	tapc_close(&tc);
	return r;
}

/*
 * RX batching: frames queued in the tap while the guest has no RX buffers are taken from
 * tun's ring in a batch (both modules peek, and so batch, before they look for buffers).
 * Detaching the RX backend must put them back into the ring, in order; attached again,
 * with buffers posted, every frame must arrive once, in order, intact. Then 100 frames in
 * a burst, received in order with buffers posted all along.
 */
static int case_rx_batching(const char *path)
{
	enum { N = 10, M = 100 };
	static uint8_t frames[M][SLOT];
	struct tapc tc;
	struct dev d = { .vfd = -1 };
	char what[64];
	int r, i;

	r = tap_dev(&tc, &d, path);
	for (i = 0; i < N && r == R_PASS; i++) {
		frame_eth_seq(frames[i], 100 + i * 50, 0x310000 + i, NULL);
		if (pkt_send(tc.snd, tc.t.ifindex, frames[i], 100 + i * 50)) {
			ktap_diag("%s: sending frame %d into the tap: %s", d.name, i, strerror(errno));
			r = R_FAIL;
		}
	}
	if (r == R_PASS) {
		sleep_ms(300);	/* the worker peeks (and batches) and finds no buffers */
		r = set_backend(d.vfd, 0, -1);
		if (!r)
			r = set_backend(d.vfd, 0, tc.t.fd);
		if (r) {
			ktap_diag("%s: RX backend detached and attached again: %s", d.name, errno_name(-r));
			r = R_FAIL;
		}
	}
	if (r == R_PASS)
		r = dev_rx_post(&d, 64);
	for (i = 0; i < N && r == R_PASS; i++) {
		snprintf(what, sizeof(what), "frame %d queued before the detach", i);
		r = dev_rx_expect(&d, frames[i], 100 + i * 50, what);
	}
	if (r == R_PASS && vr_used_pending(&d.rx))
		FAIL("%s: %u RX buffers used beyond the %d frames sent", d.name, vr_used_pending(&d.rx), N);
	for (i = 0; i < M && r == R_PASS; i++) {
		frame_eth_seq(frames[i], 60 + (i * 37) % 1400, 0x320000 + i, NULL);
		if (pkt_send(tc.snd, tc.t.ifindex, frames[i], 60 + (i * 37) % 1400)) {
			ktap_diag("%s: sending frame %d into the tap: %s", d.name, i, strerror(errno));
			r = R_FAIL;
		}
		if (r == R_PASS && i % 50 == 49)
			r = dev_rx_post(&d, 50);
	}
	for (i = 0; i < M && r == R_PASS; i++) {
		snprintf(what, sizeof(what), "burst frame %d", i);
		r = dev_rx_expect(&d, frames[i], 60 + (i * 37) % 1400, what);
	}
	if (r == R_PASS && dev_ours(&d)) {
		/* The N frames queued before the detach were taken in one refill (and again after). */
		long long b = counter(&d, "rx", "batches"), p = counter(&d, "rx", "batched");
		long long n = counter(&d, "rx", "packets");

		ktap_diag("%s: %lld frames received, %lld taken from tun's ring in %lld refills",
			  d.name, n, p, b);
		if (n != N + M || b < 1 || p < n || p <= b) {
			ktap_diag("%s: expected %d frames received, all taken in batches, some several at once",
				  d.name, N + M);
			r = R_FAIL;
		}
	}
	dev_close(&d);
	tapc_close(&tc);
	return r;
}

/* ---- zero-copy TX ------------------------------------------------------------------------ */

/*
 * The zcopy_* cases run with both modules loaded with experimental_zcopytx=1 (main reloads
 * them around these cases). The guest's TX frames go from the tap into a bridge and out of
 * veth ports whose netem qdisc holds them for a while; a packet socket on each port's peer
 * captures them. No capture on the tap itself: a packet socket there would copy every
 * frame at once (skb_orphan_frags_rx), and nothing would stay in flight.
 */
#define ZC_PORTS 2
#define ZC_N 24	/* frames per burst: under a quarter of the ring, so all go zero-copy */

struct zc_net {
	struct tapc tc;
	int caps[ZC_PORTS], nports;
};

static void zc_net_close(struct zc_net *z)
{
	int i;

	for (i = 0; i < z->nports; i++)
		if (z->caps[i] >= 0)
			close(z->caps[i]);
	z->nports = 0;
	tapc_close(&z->tc);
}

/*
 * The tap in bridge zbr with @nports veth ports zvNa (in the bridge, port N delayed
 * (N + 1) * @delay_ms by netem) / zvNb (captured). With @tap_cap, the capture socket on the
 * tap stays open.
 */
static int zc_net_create(struct zc_net *z, int nports, int delay_ms, bool tap_cap)
{
	char a[16], b[16];
	int i, r;

	z->nports = 0;
	r = tapc_create(&z->tc, 0, 1500);
	if (r != R_PASS)
		return r;
	if (!tap_cap) {
		close(z->tc.cap);
		z->tc.cap = -1;
	}
	if (nports && system("command -v tc >/dev/null 2>&1"))
		SKIP("iproute2 `tc` not found");
	if (nports && run("ip link add zbr type bridge && ip link set zbr up && "
			  "ip link set %s master zbr", z->tc.t.name))
		FAIL("cannot make bridge zbr with %s", z->tc.t.name);
	for (i = 0; i < nports; i++) {
		snprintf(a, sizeof(a), "zv%da", i);
		snprintf(b, sizeof(b), "zv%db", i);
		z->caps[i] = -1;
		z->nports = i + 1;
		r = veth_create(a, b);
		if (r != R_PASS)
			return r;
		z->caps[i] = pkt_capture_open(if_nametoindex(b), false);
		if (z->caps[i] < 0)
			FAIL("capture socket on %s: %s", b, strerror(-z->caps[i]));
		if (run("ip link set %s master zbr", a))
			FAIL("cannot add %s to zbr", a);
		if (run("tc qdisc add dev %s root netem delay %dms limit 100000", a, delay_ms * (i + 1)))
			FAIL("cannot add netem to %s", a);
	}
	return R_PASS;
}

/*
 * vhost_net.ko (Linux 7.3), with zero-copy on, leaks a small object per queue closed or reset
 * with a tun/tap backend attached: the ubufs reference count, which vhost_net_vq_reset()
 * forgets without freeing. kmemleak reports them and the run would fail on the C module's
 * account; so the zcopy cases detach both backends before closing (harmless for ours), and
 * close or reset with buffers in flight on ours only (zc_end_inflight()).
 */
static void zc_detach(struct dev *d)
{
	if (d->vfd >= 0) {
		set_backend(d->vfd, 0, -1);
		set_backend(d->vfd, 1, -1);
	}
}

/* Device @k of the case at @path, set up as QEMU does, both queues on the tap of @z. */
static int zc_dev(struct zc_net *z, struct dev *d, const char *path, int k)
{
	int r = dev_open(d, path, k);

	if (r == R_PASS)
		r = dev_setup(d, QEMU_FEATURES, -1);
	if (r == R_PASS)
		r = dev_backend(d, z->tc.t.fd);
	return r;
}

static uint8_t *tx_buf(struct dev *d, int head)
{
	return g_hva(&G, dev_slot(d->k) + (uint64_t)head * SLOT, NULL);
}

/*
 * Takes the pending TX used elements, in any order (zero-copy buffers return when the stack
 * lets go, copied ones at once): each must be a head posted and not yet returned, length 0.
 * Overwrites each returned buffer at once, as a guest reusing it would. Returns how many, or
 * -1 (with a diagnostic).
 */
static int zc_reclaim(struct dev *d, bool *out)
{
	uint32_t id, len;
	int n = 0, r;

	while ((r = vr_get_used(&d->tx, &id, &len)) != 0) {
		if (r < 0 || len != 0 || id >= VR_NUM || !out[id]) {
			ktap_diag("%s: TX used element {id %u, len %u}: %s", d->name, id, len,
				  r < 0 || id >= VR_NUM ? "not a head we posted" :
				  len ? "length not 0" : "returned twice");
			return -1;
		}
		out[id] = false;
		memset(tx_buf(d, id), 0xa5, SLOT);
		n++;
	}
	return n;
}

/* Posts frames[i] (@lens[i] bytes, seq i) for i < n, marking their heads in @out. */
static int zc_post(struct dev *d, uint8_t (*frames)[SLOT], const size_t *lens, int n, bool *out)
{
	int i, head;

	for (i = 0; i < n; i++) {
		head = dev_tx_add(d, frames[i], lens[i]);
		if (head < 0)
			FAIL("%s: TX ring full at frame %d", d->name, i);
		out[head] = true;
	}
	return R_PASS;
}

/* Every frame of @frames[0..n) with a length in @lens, exactly, in order, on capture @cap. */
static int zc_expect(int cap, const char *port, uint8_t (*frames)[SLOT], const size_t *lens, int n)
{
	static uint8_t buf[65536];
	int i = 0, diff;
	ssize_t got;

	while (i < n) {
		got = pkt_recv(cap, buf, sizeof(buf), TMO);
		if (got < 0)
			FAIL("%s: frame %d of %d not captured within %d ms", port, i, n, TMO);
		if (got < 18 || buf[12] != 0x88 || buf[13] != 0xb5)
			continue;	/* not ours */
		if (frame_seq(buf) != frame_seq(frames[i]) || (size_t)got != lens[i])
			FAIL("%s: captured seq %u (%zd bytes), expected seq %u (%zu bytes)", port,
			     frame_seq(buf), got, frame_seq(frames[i]), lens[i]);
		diff = first_diff(buf, frames[i], lens[i]);
		if (diff >= 0)
			FAIL("%s: frame %d differs at byte %d (%#x, sent %#x): the buffer was reused "
			     "while the stack still held it", port, i, diff, buf[diff], frames[i][diff]);
		i++;
	}
	return R_PASS;
}

static long long sysfs_counter(const char *ifname, const char *stat)
{
	char path[128], line[64];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, stat);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f))
		v = atoll(line);
	fclose(f);
	return v;
}

/*
 * Our counters after every buffer came back: each sent zero-copy completed exactly once
 * (with @in_place, every one without a copy in the stack).
 */
static int zc_counters(struct dev *d, long long min_zcopy, bool in_place)
{
	long long zc = counter(d, "tx", "zcopy");
	long long done = counter(d, "tx", "zcopy_done");
	long long copied = counter(d, "tx", "zcopy_copied");
	long long inflight = counter(d, "tx", "zcopy_inflight");

	if (!dev_ours(d)) {
		ktap_diag("%s: no zero-copy counters (vhost-net has none): not checked", d->name);
		return R_PASS;
	}
	ktap_diag("%s: zcopy %lld, completed in place %lld, copied by the stack %lld, in flight %lld",
		  d->name, zc, done, copied, inflight);
	if (zc < min_zcopy)
		FAIL("%s: %lld buffers went zero-copy, expected at least %lld", d->name, zc, min_zcopy);
	if (done + copied != zc || inflight != 0)
		FAIL("%s: %lld zero-copy sends, but %lld + %lld completions and %lld in flight",
		     d->name, zc, done, copied, inflight);
	if (in_place && done != zc)
		FAIL("%s: %lld of %lld zero-copy buffers completed in place", d->name, done, zc);
	return R_PASS;
}

static void zc_frames(uint8_t (*frames)[SLOT], size_t *lens, int n, uint32_t seq0, size_t len0,
		      size_t step)
{
	int i;

	for (i = 0; i < n; i++) {
		lens[i] = len0 + (size_t)i * step;
		frame_eth_seq(frames[i], lens[i], seq0 + i, NULL);
	}
}

/*
 * Posts @n frames (seq @seq0, @len0 + i * @step bytes), kicks, and takes the used buffers
 * back as they come (zc_reclaim()), for up to 20 s. *@first: ms from the kick to the first.
 */
static int zc_burst(struct dev *d, uint8_t (*frames)[SLOT], size_t *lens, int n, uint32_t seq0,
		    size_t len0, size_t step, long long *first)
{
	bool out[VR_NUM] = { 0 };
	long long t0;
	int r, got = 0, k;

	zc_frames(frames, lens, n, seq0, len0, step);
	r = zc_post(d, frames, lens, n, out);
	if (r != R_PASS)
		return r;
	*first = -1;
	t0 = now_ms();
	vr_kick(&d->tx);
	while (got < n && now_ms() - t0 < 4 * TMO) {
		k = zc_reclaim(d, out);
		if (k < 0)
			return R_FAIL;
		if (k && *first < 0)
			*first = now_ms() - t0;
		got += k;
		sleep_ms(1);
	}
	ktap_diag("%s: %d of %d buffers back, the first %lld ms after the kick", d->name, got, n, *first);
	if (got < n)
		FAIL("%s: only %d of %d TX buffers came back within %d ms", d->name, got, n, 4 * TMO);
	return R_PASS;
}

/*
 * A burst of large frames flooded by the bridge to two ports delayed 200 and 400 ms, with a
 * packet socket on the tap as well: three copies of each frame. Cloning an skb copies its
 * zero-copy pages (skb_clone() orphans them), so the stack lets go early here; whenever a
 * buffer comes back, the guest overwrites it at once, and not a byte of what the capture
 * and either port delivers may change. Every buffer comes back exactly once.
 */
static int case_zcopy_clones(const char *path)
{
	static uint8_t frames[ZC_N][SLOT];
	static size_t lens[ZC_N];
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 };
	long long first;
	int r, i;

	r = zc_net_create(&z, ZC_PORTS, 200, true);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r == R_PASS)
		r = zc_burst(&d, frames, lens, ZC_N, 0x2c0000, 400, 45, &first);
	if (r == R_PASS)
		r = zc_expect(z.tc.cap, "the tap's capture", frames, lens, ZC_N);
	for (i = 0; i < z.nports && r == R_PASS; i++) {
		char port[16];

		snprintf(port, sizeof(port), "zv%db", i);
		r = zc_expect(z.caps[i], port, frames, lens, ZC_N);
	}
	/* The early completions (copies) count against zero-copy: after the first, the next
	 * 64 packets go by copy (vhost_net_tx_select_zcopy()). */
	if (r == R_PASS)
		r = zc_counters(&d, 1, false);
	zc_detach(&d);
	dev_close(&d);
	zc_net_close(&z);
	return r;
}

/*
 * A burst of large frames of an ethertype nobody handles, into the tap alone: the stack
 * frees them unread, without copying, so the guest's pages are used in place (as when a
 * NIC sends them by DMA). Each buffer comes back exactly once; ours counts every one as
 * completed in place.
 */
static int case_zcopy_in_place(const char *path)
{
	static uint8_t frames[ZC_N][SLOT];
	static size_t lens[ZC_N];
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 };
	long long first;
	int r;

	r = zc_net_create(&z, 0, 0, false);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r == R_PASS)
		r = zc_burst(&d, frames, lens, ZC_N, 0x2c1000, 300, 70, &first);
	if (r == R_PASS)
		r = zc_counters(&d, ZC_N, true);
	zc_detach(&d);
	dev_close(&d);
	zc_net_close(&z);
	return r;
}

/*
 * Sends a burst into a 400 ms qdisc and, once the tap has taken every frame and none has
 * come back, ends the queue with @how: VHOST_NET_SET_BACKEND -1 on TX ("detach"),
 * VHOST_RESET_OWNER ("reset") or close ("close"). That must wait for the stack to let go
 * (return no sooner than 400 ms after the kick); then the guest overwrites the buffers and
 * the port must still send every frame intact. After a detach every buffer must be in the
 * used ring.
 */
static int zc_end_inflight(struct dev *d, struct zc_net *z, const char *how, uint32_t seq0)
{
	static uint8_t frames[ZC_N][SLOT];
	static size_t lens[ZC_N];
	bool out[VR_NUM] = { 0 };
	long long t0, t1, rx0, took;
	int r, i, n;

	rx0 = sysfs_counter(z->tc.t.name, "rx_packets");
	zc_frames(frames, lens, 8, seq0, 1000, 64);
	r = zc_post(d, frames, lens, 8, out);
	if (r != R_PASS)
		return r;
	t0 = now_ms();
	vr_kick(&d->tx);
	while (sysfs_counter(z->tc.t.name, "rx_packets") < rx0 + 8) {
		if (now_ms() - t0 > TMO)
			FAIL("%s: the tap took %lld of 8 frames in %d ms", d->name,
			     sysfs_counter(z->tc.t.name, "rx_packets") - rx0, TMO);
		sleep_ms(1);
	}
	if (vr_used_pending(&d->tx))
		FAIL("%s: %u buffers came back while the qdisc holds them (%lld ms after the kick)",
		     d->name, vr_used_pending(&d->tx), now_ms() - t0);
	t1 = now_ms();
	if (!strcmp(how, "detach"))
		r = set_backend(d->vfd, 1, -1);
	else if (!strcmp(how, "reset"))
		r = ioctl(d->vfd, VHOST_RESET_OWNER) < 0 ? -errno : 0;
	else
		r = close(d->vfd) < 0 ? -errno : 0;
	if (!strcmp(how, "close"))
		d->vfd = -1;
	took = now_ms() - t0;
	ktap_diag("%s: %s with 8 buffers in flight took %lld ms (%lld ms after the kick)", d->name,
		  how, now_ms() - t1, took);
	if (r)
		FAIL("%s: %s: %s", d->name, how, errno_name(-r));
	if (took < 380)
		FAIL("%s: %s returned %lld ms after the kick, before the 400 ms qdisc let go of "
		     "the buffers", d->name, how, took);
	if (!strcmp(how, "detach")) {
		n = zc_reclaim(d, out);
		if (n != 8)
			FAIL("%s: %d of 8 buffers in the used ring when the detach returned", d->name, n);
		r = zc_counters(d, 8, false);
		if (r != R_PASS)
			return r;
	} else {
		for (i = 0; i < VR_NUM; i++)
			if (out[i])
				memset(tx_buf(d, i), 0xa5, SLOT);
	}
	return zc_expect(z->caps[0], "zv0b", frames, lens, 8);
}

static int case_zcopy_inflight_end(const char *path)
{
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 }, d2 = { .vfd = -1 };
	bool c = !strcmp(path, "/dev/vhost-net");
	int r;

	r = zc_net_create(&z, 1, 400, false);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r == R_PASS)
		r = zc_end_inflight(&d, &z, "detach", 0x2d0000);
	if (r == R_PASS && c)
		ktap_diag("%s: reset and close with buffers in flight: on ours only, vhost_net.ko "
			  "leaks its ubufs there (see zc_detach())", d.name);
	if (r == R_PASS && !c)
		r = dev_backend(&d, z.tc.t.fd);
	if (r == R_PASS && !c)
		r = zc_end_inflight(&d, &z, "reset", 0x2d0100);
	/* A second device (the first one's rings are gone with its owner), closed in flight. */
	if (r == R_PASS && !c)
		r = zc_dev(&z, &d2, path, 1);
	if (r == R_PASS && !c)
		r = zc_end_inflight(&d2, &z, "close", 0x2d0200);
	zc_detach(&d);
	zc_detach(&d2);
	dev_close(&d);
	dev_close(&d2);
	zc_net_close(&z);
	return r;
}

/*
 * What goes by copy even with zero-copy on: small frames (under 256 bytes) come back at once
 * while large ones before them are still held by the qdisc, and past the limit of buffers
 * in flight (a quarter of the 256-entry ring) large frames are copied and come back at once
 * too. Every buffer comes back exactly once and every frame leaves intact.
 */
static int case_zcopy_fallbacks(const char *path)
{
	enum { NBIG = 4, NSMALL = 4, NMAX = 100 };
	static uint8_t frames[NMAX][SLOT];
	static size_t lens[NMAX];
	bool out[VR_NUM] = { 0 };
	struct zc_net z = { 0 };
	struct dev d = { .vfd = -1 };
	long long t0;
	int r, n, got;

	r = zc_net_create(&z, 1, 400, false);
	if (r == R_PASS)
		r = zc_dev(&z, &d, path, 0);
	if (r != R_PASS)
		goto out;
	/* Large, then small frames. */
	zc_frames(frames, lens, NBIG, 0x2e0000, 1200, 1);
	zc_frames(frames + NBIG, lens + NBIG, NSMALL, 0x2e0000 + NBIG, 100, 10);
	r = zc_post(&d, frames, lens, NBIG + NSMALL, out);

	if (r != R_PASS)
		goto out;
	t0 = now_ms();
	vr_kick(&d.tx);
	got = 0;
	while (got < NSMALL && now_ms() - t0 < TMO) {
		n = zc_reclaim(&d, out);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		got += n;
		sleep_ms(1);
	}
	/*
	 * The large ones cannot come back before the qdisc lets go of them (400 ms after they
	 * were sent); if the machine took that long for the small ones, the order says nothing.
	 */
	if (now_ms() - t0 >= 380) {
		ktap_diag("note: %s: the small frames took %lld ms to come back; the order against "
			  "the large ones is not checked", d.name, now_ms() - t0);
	} else {
		/* A fresh ring hands out heads 0, 1, ... in posting order: large ones are 0..NBIG-1. */
		for (n = 0; n < NBIG; n++)
			if (!out[n]) {
				ktap_diag("%s: large frame %d came back within %lld ms, while the qdisc "
					  "held it", d.name, n, now_ms() - t0);
				r = R_FAIL;
				goto out;
			}
		if (got != NSMALL) {
			ktap_diag("%s: %d buffers back %lld ms after the kick; expected the %d small "
				  "ones, copied", d.name, got, now_ms() - t0, NSMALL);
			r = R_FAIL;
			goto out;
		}
	}
	got = 0;
	for (n = 0; n < NBIG; n++)
		got += out[n];
	if (got && (!vr_wait_used(&d.tx, got, 2 * TMO) || zc_reclaim(&d, out) != got)) {
		ktap_diag("%s: the %d large buffers did not come back", d.name, got);
		r = R_FAIL;
		goto out;
	}
	r = zc_expect(z.caps[0], "zv0b", frames, lens, NBIG + NSMALL);
	if (r != R_PASS)
		goto out;
	/*
	 * A new TX backend (the same tap): the stack copied the frames above when the veth
	 * passed them on, which counts against zero-copy for the next 64 packets; a new
	 * backend starts afresh, in both modules.
	 */
	r = set_backend(d.vfd, 1, -1);
	if (!r)
		r = set_backend(d.vfd, 1, z.tc.t.fd);
	if (r) {
		ktap_diag("%s: TX backend again: %s", d.name, errno_name(-r));
		r = R_FAIL;
		goto out;
	}
	/* Past the limit: NMAX large frames at once; the ones past it come back early. */
	zc_frames(frames, lens, NMAX, 0x2f0000, 300, 8);
	r = zc_post(&d, frames, lens, NMAX, out);
	if (r != R_PASS)
		goto out;
	t0 = now_ms();
	vr_kick(&d.tx);
	got = 0;
	while (now_ms() - t0 < 380) {
		n = zc_reclaim(&d, out);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		got += n;
		sleep_ms(1);
	}
	/*
	 * Within 380 ms, before the qdisc lets go of any zero-copy buffer: the copies past the
	 * limit (a quarter of the ring: 64 in flight) may be back, the others may not.
	 */
	ktap_diag("%s: %d of %d large buffers back within 380 ms (held: %d)", d.name, got, NMAX,
		  NMAX - got);
	if (got > NMAX - 64) {
		ktap_diag("%s: more than %d buffers back while the qdisc holds the zero-copy ones",
			  d.name, NMAX - 64);
		r = R_FAIL;
		goto out;
	}
	if (!got)
		ktap_diag("note: %s: no copy back within 380 ms (a slow machine); the fallback is "
			  "checked by our counter only", d.name);
	while (got < NMAX && now_ms() - t0 < 4 * TMO) {
		n = zc_reclaim(&d, out);
		if (n < 0) {
			r = R_FAIL;
			goto out;
		}
		got += n;
		sleep_ms(1);
	}
	if (got < NMAX) {
		ktap_diag("%s: %d of %d buffers came back", d.name, got, NMAX);
		r = R_FAIL;
		goto out;
	}
	r = zc_expect(z.caps[0], "zv0b", frames, lens, NMAX);
	if (r == R_PASS && dev_ours(&d) && counter(&d, "tx", "zcopy_fallbacks") < 1) {
		ktap_diag("%s: no copy fallback counted", d.name);
		r = R_FAIL;
	}
	if (r == R_PASS)
		r = zc_counters(&d, NBIG + 1, false);
out:
	zc_detach(&d);
	dev_close(&d);
	zc_net_close(&z);
	return r;
}

/* The counters of each queue, as stats.rs names them. */
static const char *const stat_names[] = {
	"packets", "bytes", "drops", "kicks", "calls", "errors", "busy_hits", "busy_misses",
	"requeues", "busyloop_timeout", "zcopy", "zcopy_done", "zcopy_copied", "zcopy_fallbacks",
	"zcopy_inflight", "batches", "batched",
};

/*
 * Whether every counter of @vfd reads the same in debugfs as in fdinfo, retried for up to
 * a second (debugfs shows a copy made at the end of each worker round). 0, or -1 with a
 * diagnostic naming the first counter that differs.
 */
static int stats_agree(int vfd, const char *name)
{
	static const char *const qs[] = { "rx", "tx" };
	long long a = 0, b = 0;
	const char *bad = NULL, *badq = NULL;
	unsigned int i, j;
	int t;

	for (t = 0; t < 100; t++) {
		bad = NULL;
		for (i = 0; i < 2 && !bad; i++)
			for (j = 0; j < sizeof(stat_names) / sizeof(stat_names[0]) && !bad; j++) {
				a = fdinfo_counter(vfd, qs[i], stat_names[j]);
				b = debugfs_counter(vfd, qs[i], stat_names[j]);
				if (a < 0 || a != b)
					bad = stat_names[j], badq = qs[i];
			}
		if (!bad)
			return 0;
		sleep_ms(10);
	}
	ktap_diag("%s: %s %s is %lld in fdinfo, %lld in debugfs", name, badq, bad, a, b);
	return -1;
}

/* Waits up to a second for @path to be gone: 0, or -1. */
static int wait_gone(const char *path)
{
	struct stat sb;
	int t;

	for (t = 0; t < 100; t++) {
		if (stat(path, &sb) < 0 && errno == ENOENT)
			return 0;
		sleep_ms(10);
	}
	return -1;
}

/*
 * Statistics in debugfs (ours; vhost-net has none, so the case is skipped there): every
 * counter of a device's files reads as in its fdinfo, traffic moves them, RESET_OWNER
 * zeroes them at once; two devices of one process get directories of their own, and a
 * device's directory goes when it is closed.
 */
static int case_stats(const char *path)
{
	struct tapc tc;
	struct dev d = { .vfd = -1 }, e = { .vfd = -1 };
	char dir[256], dir2[256];
	long long v;
	int r;

	if (!strstr(path, "vhost-rs"))
		SKIP("vhost-net has no per-queue statistics (ours has them in debugfs)");
	r = tap_dev(&tc, &d, path);
	if (r == R_PASS)
		r = dev_txrx(&d, tc.cap, tc.snd, tc.t.ifindex, NULL, 0x640000);
	if (r == R_PASS)
		r = dev_open(&e, path, 1);
	if (r != R_PASS)
		goto out;
	r = R_FAIL;
	if (debugfs_dir(d.vfd, dir, sizeof(dir)) || debugfs_dir(e.vfd, dir2, sizeof(dir2))) {
		ktap_diag("%s: no \"debugfs:\" line in fdinfo", d.name);
		goto out;
	}
	ktap_diag("%s: counters in %s (and %s for a second device)", d.name, dir, dir2);
	if (!strcmp(dir, dir2)) {
		ktap_diag("%s: two devices share %s", d.name, dir);
		goto out;
	}
	if (stats_agree(d.vfd, d.name) || stats_agree(e.vfd, e.name))
		goto out;
	/* dev_txrx: a 60- and a 1514-byte frame each way, each TX with a kick. */
	if ((v = debugfs_counter(d.vfd, "tx", "packets")) != 2 ||
	    (v = debugfs_counter(d.vfd, "rx", "packets")) != 2) {
		ktap_diag("%s: packets %lld, expected 2 each way", d.name, v);
		goto out;
	}
	if (debugfs_counter(d.vfd, "tx", "bytes") < 60 + 1514 ||
	    debugfs_counter(d.vfd, "rx", "bytes") < 60 + 1514 ||
	    debugfs_counter(d.vfd, "tx", "kicks") < 1 || debugfs_counter(d.vfd, "rx", "calls") < 1 ||
	    debugfs_counter(d.vfd, "tx", "errors") || debugfs_counter(d.vfd, "rx", "drops")) {
		ktap_diag("%s: bytes, kicks, calls, errors or drops off", d.name);
		goto out;
	}
	if (debugfs_counter(e.vfd, "tx", "packets") || debugfs_counter(e.vfd, "rx", "packets")) {
		ktap_diag("%s: the second device counts the first one's packets", d.name);
		goto out;
	}
	if (ioctl(d.vfd, VHOST_RESET_OWNER, NULL) < 0) {
		ktap_diag("%s: RESET_OWNER: %s", d.name, strerror(errno));
		goto out;
	}
	if (debugfs_counter(d.vfd, "tx", "packets") || debugfs_counter(d.vfd, "rx", "bytes")) {
		ktap_diag("%s: counters not zero right after RESET_OWNER", d.name);
		goto out;
	}
	dev_close(&d);
	if (wait_gone(dir)) {
		ktap_diag("%s: %s still there 1 s after close", d.name, dir);
		goto out;
	}
	if (access(dir2, F_OK)) {
		ktap_diag("%s: closing one device took the other's directory %s", d.name, dir2);
		goto out;
	}
	dev_close(&e);
	if (wait_gone(dir2)) {
		ktap_diag("%s: %s still there 1 s after close", d.name, dir2);
		goto out;
	}
	r = R_PASS;
out:
	dev_close(&d);
	dev_close(&e);
	tapc_close(&tc);
	return r;
}

static const struct {
	const char *name;
	int (*fn)(const char *dev);
} cases[] = {
	{ "macvtap", case_macvtap },
	{ "packet_socket", case_packet },
	{ "multiqueue_tap", case_multiqueue },
	{ "backend_swap_detach", case_swap },
	{ "dirty_log_rx", case_dirty_log },
	{ "kthread_worker", case_kthread },
	{ "owner_sigkilled", case_owner_killed },
	{ "owner_exits_fd_shared", case_owner_exits },
	{ "tap_deleted", case_tap_deleted },
	{ "ring_index_atomic", case_ring_index_atomic },
	{ "alloc_faults", case_alloc_faults },
	{ "ioctl_races", case_ioctl_races },
	{ "busy_poll", case_busy_poll },
	{ "worker_faults", case_worker_faults },
	{ "tx_batching", case_tx_batching },
	{ "rx_batching", case_rx_batching },
	{ "stats_debugfs", case_stats },
	/* With experimental_zcopytx=1 on both modules: main reloads them (zcopy_reload()). */
	{ "zcopy_clones", case_zcopy_clones },
	{ "zcopy_in_place", case_zcopy_in_place },
	{ "zcopy_inflight_end", case_zcopy_inflight_end },
	{ "zcopy_fallbacks", case_zcopy_fallbacks },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* The case's own namespaces: a fresh netns, and a private sysfs that shows it. */
static void case_namespaces(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
		ktap_diag("unshare(CLONE_NEWNET | CLONE_NEWNS): %s", strerror(errno));
		_exit(R_FAIL);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
		ktap_diag("note: private sysfs: %s", strerror(errno));
	/* Our counters are in debugfs, which the new sysfs hides. */
	else if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL) < 0)
		ktap_diag("note: debugfs: %s", strerror(errno));
	sysctl_write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	sysctl_write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
}

/* Runs one case in a child process, bounded by CASE_TMO. */
static int run_case(int (*fn)(const char *), const char *dev, const char *name)
{
	pid_t pid;
	int st;

	skip_reason[0] = 0;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		ktap_diag("fork: %s", strerror(errno));
		return R_FAIL;
	}
	if (!pid) {
		int r;

		case_namespaces();
		r = fn(dev);
		fflush(stdout);
		_exit(r);
	}
	st = wait_child(pid, CASE_TMO);
	if (st < 0) {
		ktap_diag("%s: no result within %d s: killed", name, CASE_TMO / 1000);
		kill(pid, SIGKILL);
		if (wait_child(pid, 10000) < 0)
			ktap_diag("%s: the killed case does not go away (stuck in the kernel?)", name);
		return R_FAIL;
	}
	if (WIFSIGNALED(st)) {
		ktap_diag("%s: the case died of signal %d", name, WTERMSIG(st));
		return R_FAIL;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) > R_SKIP)
		return R_FAIL;
	return WEXITSTATUS(st);
}

/* Reads module parameter @param of @mod: its integer value, or -1. */
static int module_param_int(const char *mod, const char *param)
{
	char path[128], line[32];
	int v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", mod, param);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f))
		v = atoi(line);
	fclose(f);
	return v;
}

/*
 * Reloads vhost_net and ./vhost-rs.ko (the latter only if it was loaded) with
 * experimental_zcopytx=@on. 0, or -1 with a diagnostic.
 */
static int zcopy_reload(int on)
{
	bool rs = access("/sys/module/vhost_rs", F_OK) == 0;

	ktap_diag("reloading vhost_net%s with experimental_zcopytx=%d", rs ? " and vhost-rs.ko" : "", on);
	if (run("modprobe -r vhost_net && modprobe vhost_net experimental_zcopytx=%d", on) ||
	    (rs && run("rmmod vhost_rs && insmod ./vhost-rs.ko experimental_zcopytx=%d", on)))
		return -1;
	if (module_param_int("vhost_net", "experimental_zcopytx") != on ||
	    (rs && module_param_int("vhost_rs", "experimental_zcopytx") != on)) {
		ktap_diag("experimental_zcopytx did not take: vhost_net %d, vhost_rs %d",
			  module_param_int("vhost_net", "experimental_zcopytx"),
			  module_param_int("vhost_rs", "experimental_zcopytx"));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int zcopy = 0;	/* modules reloaded for the zcopy_* cases: 1, or -1 if that failed */
	static const char *const defdevs[] = { "/dev/vhost-net", "/dev/vhost-rs-net" };
	const char *const *devs = argc > 1 ? (const char *const *)argv + 1 : defdevs;
	int ndevs = argc > 1 ? argc - 1 : 2, d, r;
	struct ktap k = { 0 };
	unsigned int i;
	char name[128];

	ktap_header(NCASES * ndevs);
	skip_reason = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (skip_reason == MAP_FAILED || unshare(CLONE_NEWNET) < 0) {
		ktap_diag("setup (mmap, unshare(CLONE_NEWNET)): %s (must run as root)", strerror(errno));
		for (i = 0; i < NCASES * ndevs; i++)
			ktap_result(&k, 0, cases[i % NCASES].name, NULL);
		return ktap_finish(&k);
	}
	r = guest_init(&G);
	if (r) {
		ktap_diag("guest memory: %s", strerror(-r));
		return 1;
	}
	for (i = 0; i < NCASES; i++) {
		for (d = 0; d < ndevs; d++) {
			const char *dn = strrchr(devs[d], '/') ? strrchr(devs[d], '/') + 1 : devs[d];
			long long t0 = now_ms();

			snprintf(name, sizeof(name), "%s %s", cases[i].name, dn);
			if (!case_selected(cases[i].name)) {
				ktap_result(&k, 1, name, "not selected by VHOST_TEST_CASES");
				continue;
			}
			memset(G.mem, 0, G_MEM_SIZE);
			if (!strncmp(cases[i].name, "zcopy_", 6) && !zcopy)
				zcopy = zcopy_reload(1) ? -1 : 1;
			if (!strncmp(cases[i].name, "zcopy_", 6) && zcopy < 0) {
				ktap_result(&k, 0, name, NULL);
				continue;
			}
			r = run_case(cases[i].fn, devs[d], name);
			if (now_ms() - t0 > 5000)
				ktap_diag("%s took %lld ms", name, now_ms() - t0);
			ktap_result(&k, r == R_PASS, name, r == R_SKIP ? skip_reason : NULL);
		}
	}
	if (zcopy && zcopy_reload(0))
		ktap_diag("could not reload the modules with their defaults");
	return ktap_finish(&k);
}
