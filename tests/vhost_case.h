/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The cases of the programs split out of vhost_backends (vhost_backends, vhost_owner,
 * vhost_queue, vhost_stress, vhost_zcopy) and their shared parts: one device set up as QEMU
 * does (struct dev), a tap with a capture and a sender socket on it (struct tapc), our
 * per-queue counters, and the glue to the kernel's kselftest_harness.h.
 *
 * A case is a function of the device's path returning R_PASS, R_FAIL (after diagnostics)
 * or R_SKIP (with skip_reason). Each program makes each case a test of its fixture
 * (VCASE_FIXTURE(): one variant per device, vhost_net and vhost_rs_net) with the same
 * expectations on both; the harness runs every test in a process of its own under a timeout
 * (CASE_TMO_S), and vcase_setup() gives it a network namespace of its own (and a mount
 * namespace with a private sysfs, so that /sys/class/net shows that namespace) and fresh
 * guest memory (guest.h); each device of a case gets its own slice of it (dev_slot()).
 * Needs iproute2 (`ip`) for the veth and macvtap cases. Each program prints KTAP (the
 * harness's); exits 1 if any test failed.
 */
#ifndef VHOST_CASE_H
#define VHOST_CASE_H

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

#include "vcase.h"
#include "frames.h"

#define F(b)	(1ULL << (b))
#define TMO	5000	/* ms: any single wait */

#define QEMU_FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MRG_RXBUF) | \
		       F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_RING_F_EVENT_IDX) | \
		       F(VIRTIO_F_NOTIFY_ON_EMPTY))
#define HDR_LEN	12	/* VERSION_1: struct virtio_net_hdr_mrg_rxbuf */
#define SLOT	2048	/* bytes per TX/RX buffer */


/* ---- shell and interfaces ------------------------------------------------------------ */

/* A veth pair va/vb, both up. Returns 0, R_SKIP (no `ip`/veth) or R_FAIL. */
static inline int veth_create(const char *va, const char *vb)
{
	if (system("command -v ip >/dev/null 2>&1"))
		CASE_SKIP("iproute2 `ip` not found");
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
static inline uint64_t dev_slot(int k)
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

static inline void dev_close(struct dev *d)
{
	if (d->vfd >= 0)
		close(d->vfd);
	d->vfd = -1;
	vr_close(&d->rx);
	vr_close(&d->tx);
}

/* Opens @path as device @k of the case. */
static inline int dev_open(struct dev *d, const char *path, int k)
{
	memset(d, 0, sizeof(*d));
	d->rx.kick = d->rx.call = d->tx.kick = d->tx.call = -1;
	d->path = path;
	d->name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	d->k = k;
	d->vfd = open(path, O_RDWR | O_CLOEXEC);
	if (d->vfd < 0) {
		if (errno == ENOENT)
			CASE_SKIP("%s not present", path);
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
static inline int dev_setup(struct dev *d, uint64_t want, int fork)
{
	const char *what;
	uint64_t have;
	int r;

	if (fork >= 0) {
		uint8_t v = fork;

		if (ioctl(d->vfd, VHOST_SET_FORK_FROM_OWNER, &v) < 0) {
			if (errno == ENOTTY)
				CASE_SKIP("%s: no VHOST_SET_FORK_FROM_OWNER", d->name);
			FAIL("%s: VHOST_SET_FORK_FROM_OWNER %u: %s", d->name, v, errno_name(errno));
		}
	}
	if (ioctl(d->vfd, VHOST_SET_OWNER) < 0)
		FAIL("%s: VHOST_SET_OWNER: %s", d->name, errno_name(errno));
	if (ioctl(d->vfd, VHOST_GET_FEATURES, &have) < 0)
		FAIL("%s: VHOST_GET_FEATURES: %s", d->name, errno_name(errno));
	if (want & ~have)
		CASE_SKIP("%s does not offer features %#llx (offers %#llx)", d->name,
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

static inline int set_backend(int vfd, unsigned int idx, int fd)
{
	struct vhost_vring_file b = { .index = idx, .fd = fd };

	return ioctl(vfd, VHOST_NET_SET_BACKEND, &b) < 0 ? -errno : 0;
}

/* Both queues on @fd. */
static inline int dev_backend(struct dev *d, int fd)
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
static inline int dev_tx_add(struct dev *d, const uint8_t *f, size_t len)
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
static inline int dev_tx_reclaim(struct dev *d)
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
static inline int dev_tx_one(struct dev *d, const uint8_t *f, size_t len)
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
static inline int dev_rx_post(struct dev *d, unsigned int n)
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
static inline int dev_rx_take(struct dev *d, uint8_t *buf, size_t cap)
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
static inline int dev_rx_expect(struct dev *d, const uint8_t *f, size_t len, const char *what)
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
static inline int cap_expect(int cap, const char *devname, const uint8_t *f, size_t len,
			     const char *what)
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
static inline int dev_txrx(struct dev *d, int cap, int snd, int rx_if, const uint8_t *dst,
			   uint32_t seed)
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

static inline int tapc_create(struct tapc *c, int extra_flags, int mtu)
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

static inline void tapc_close(struct tapc *c)
{
	if (c->t.fd >= 0)
		close(c->t.fd);
	if (c->cap >= 0)
		close(c->cap);
	if (c->snd >= 0)
		close(c->snd);
	c->t.fd = c->cap = c->snd = -1;
}

/*
 * Device @d, number @k of the case, at @path set up as QEMU does (QEMU_FEATURES; dev_setup()'s
 * @fork), both queues on backend @fd.
 */
static inline int dev_up(struct dev *d, const char *path, int k, int fork, int fd)
{
	int r = dev_open(d, path, k);

	if (r == R_PASS)
		r = dev_setup(d, QEMU_FEATURES, fork);
	if (r == R_PASS)
		r = dev_backend(d, fd);
	return r;
}

/* Device @d at @path set up as QEMU does (QEMU_FEATURES), with tap @a as its backend. */
static inline int dev_on_tap(struct dev *d, const char *path, struct tapc *a)
{
	return dev_up(d, path, 0, -1, a->t.fd);
}

/* Tap @a, and device @d at @path on it (dev_on_tap). */
static inline int tap_dev(struct tapc *a, struct dev *d, const char *path)
{
	int r = tapc_create(a, 0, 1500);

	return r == R_PASS ? dev_on_tap(d, path, a) : r;
}

/* The same, and a second tap @b. */
static inline int two_taps_dev(struct tapc *a, struct tapc *b, struct dev *d, const char *path)
{
	int r = tap_dev(a, d, path);

	return r == R_PASS ? tapc_create(b, 0, 1500) : r;
}

/* Waits for child @pid for up to @ms; its wait status, or -1 on timeout. */
static inline int wait_child(pid_t pid, int ms)
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

/* ---- files, the kernel log ------------------------------------------------------------ */

/* Writes @val to @path; 0 or -errno. */
static inline int write_file(const char *path, const char *val)
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
 * The number after @key in the last line of @path that starts with @start and holds @has
 * (NULL: any), or -1.
 */
static inline long long file_number(const char *path, const char *start, const char *has,
				    const char *key)
{
	char line[512], *p;
	long long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, start, strlen(start)) || (has && !strstr(line, has)))
			continue;
		p = strstr(line, key);
		if (p)
			v = atoll(p + strlen(key));
	}
	fclose(f);
	return v;
}

/* /dev/kmsg, read from its end on: the fd for kmsg_check(), or -1 (then nothing is checked). */
static inline int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	else
		ktap_diag("note: /dev/kmsg: %s: the kernel log is not checked", strerror(errno));
	return fd;
}

/*
 * R_FAIL if BUG/WARNING/KASAN/Oops records came since kmsg_open() (each printed, and how
 * many for @name), else R_PASS; closes @fd.
 */
static inline int kmsg_check(int fd, const char *name)
{
	static const char *const words[] = { "BUG", "WARNING", "KASAN", "Oops" };
	unsigned int bad = 0, i;
	char rec[8192];
	ssize_t n;

	if (fd < 0)
		return R_PASS;
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)	/* records overwritten under us: read on */
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		for (i = 0; i < 4; i++) {
			if (strstr(rec, words[i])) {
				rec[strcspn(rec, "\n")] = 0;
				ktap_diag("kmsg: %s", rec);
				bad++;
				break;
			}
		}
	}
	close(fd);
	if (!bad)
		return R_PASS;
	FAIL("%s: %u BUG/WARNING/KASAN/Oops lines in the kernel log during the case", name, bad);
}

/* ---- allocation failures, injected ----------------------------------------------------- */

/*
 * The kernel's fault injection: with fail-nth, the Nth allocation (slab or page) this thread
 * makes fails. The defaults spare GFP_KERNEL and order-0 allocations, which are nearly all of
 * ours; open them up, and keep the log quiet (a stack per injection would flood it). 0, or
 * -errno.
 */
static inline int fault_setup(void)
{
	static const char *const knobs[][2] = {
		{ "/sys/kernel/debug/failslab/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/failslab/verbose", "0" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/min-order", "0" },
		{ "/sys/kernel/debug/fail_page_alloc/verbose", "0" },
	};
	unsigned int i;
	int r;

	if (access("/sys/kernel/debug/failslab", F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		if ((r = write_file(knobs[i][0], knobs[i][1])))
			return r;
	return 0;
}

static int fail_nth_fd = -1;	/* /proc/thread-self/fail-nth, opened by the case */

/* fault_setup() and fail_nth_fd: R_PASS, or R_SKIP where the kernel has no fault injection. */
static inline int fail_nth_open(void)
{
	int r = fault_setup();

	if (r)
		CASE_SKIP("fault injection knobs in debugfs: %s", strerror(-r));
	fail_nth_fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (fail_nth_fd < 0)
		CASE_SKIP("/proc/thread-self/fail-nth: %s (CONFIG_FAULT_INJECTION)",
			  strerror(errno));
	return R_PASS;
}

/* Arms the Nth allocation of this thread to fail (0 disarms). */
static inline void fail_nth(int n)
{
	char b[16];
	int len = snprintf(b, sizeof(b), "%d", n);

	if (pwrite(fail_nth_fd, b, len, 0) != len)
		ktap_diag("fail-nth %d: %s", n, strerror(errno));
}

/* True if the armed failure was injected (the counter reached 0); disarms. */
static inline bool fail_nth_fired(void)
{
	char b[16] = { 0 };
	bool fired = pread(fail_nth_fd, b, sizeof(b) - 1, 0) > 0 && atoi(b) == 0;

	fail_nth(0);
	return fired;
}

/* Adds errno @e's name to the space-separated @list (of @n bytes) unless it is there. */
static inline void note_errno(char *list, size_t n, int e)
{
	char one[24];

	snprintf(one, sizeof(one), "%s ", errno_name(e));
	if (!strstr(list, one) && strlen(list) + strlen(one) < n)
		strcat(list, one);
}

/* ---- the worker thread and our counters ---------------------------------------------- */

/*
 * Worker threads of owner @pid: "vhost-PID", and unless @first_only "vhost-PID-N" too (ours
 * with more than one worker: split_workers puts TX on worker 1). Up to @max tids into @tids;
 * returns how many.
 */
static inline int find_workers(pid_t pid, bool first_only, int *tids, int max)
{
	char path[320], comm[32], want[32];
	struct dirent *e;
	int n = 0;
	size_t k;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	k = snprintf(want, sizeof(want), "vhost-%d", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", pid, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, want, k) &&
		    (comm[k] == '\n' || (!first_only && comm[k] == '-')))
			tids[n++] = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return n;
}

/* All the worker threads of owner @pid (see find_workers()). */
static inline int worker_tids(pid_t pid, int *tids, int max)
{
	return find_workers(pid, false, tids, max);
}

/* The worker thread of owner @pid ("vhost-PID", RX's with split workers): its tid, or -1. */
static inline int worker_tid(pid_t pid)
{
	int tid = -1;

	return find_workers(pid, true, &tid, 1) ? tid : -1;
}

/* Whether @d is our device (the C one has no counters). */
static inline bool dev_ours(const struct dev *d)
{
	return strstr(d->path, "vhost-rs") != NULL;
}

/* Our debugfs directory of device @vfd, as its fdinfo names it: 0, or -1. */
static inline int debugfs_dir(int vfd, char *dir, size_t n)
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
static inline long long debugfs_counter(int vfd, const char *q, const char *name)
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
static inline long long counter(const struct dev *d, const char *q, const char *name)
{
	return dev_ours(d) ? debugfs_counter(d->vfd, q, name) : -1;
}

/* ---- running the cases --------------------------------------------------------------- */

/*
 * Test @n of fixture @fx (VCASE_FIXTURE()), for programs that run every case's body_@n
 * through one function @run(path, body), which sets up and checks what all their cases share.
 */
#define VCASE_BODY(fx, run, n)						\
	static int case_##n(const char *dev)				\
	{								\
		return run(dev, body_##n);				\
	}								\
	TEST_F_TIMEOUT(fx, n, CASE_TMO_S)				\
	{								\
		vcase_run(_metadata, case_##n, self->path);		\
	}

#endif /* VHOST_CASE_H */
