// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_queue: what the worker does on a queue besides moving frames: the dirty log on
 * RX, busy polling, TX and RX batching, one queue reset under the other's traffic
 * (VIRTIO_F_RING_RESET), tun's IFF_BACKPRESSURE woken by RX, RX short of buffers
 * waiting rather than spinning, and our per-queue statistics (debugfs, fdinfo), which vhost-net
 * does not have: the counter checks run on ours only.
 *
 * Every case runs against both devices, as the two variants of fixture `queue` of the
 * kernel's kselftest_harness.h (queue.vhost_net.<case>, queue.vhost_rs_net.<case>), each in
 * a process and network namespace of its own (vhost_case.h); a device that is not there
 * skips its tests. `-v vhost_rs_net` runs one device, `-t <case>` one case, `-l` lists them.
 */
#include "kselftest_harness.h"
#include "vhost_case.h"

/* ---- dirty log ------------------------------------------------------------------------- */

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

/* ---- busy polling -------------------------------------------------------------------------- */

static int set_busyloop(int vfd, unsigned int idx, unsigned int us)
{
	struct vhost_vring_state s = { .index = idx, .num = us };

	return ioctl(vfd, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &s) < 0 ? -errno : 0;
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

/*
 * CPU time of all the worker threads of owner @pid ("vhost-PID", and "vhost-PID-N" of ours
 * with more than one worker: TX polls on worker 1 with split_workers), in clock ticks, or -1
 * without any.
 */
#define MAX_WORKERS_SEEN 16
static long workers_ticks(pid_t pid)
{
	int tids[MAX_WORKERS_SEEN], n, i;
	long sum = -1, t;

	n = worker_tids(pid, tids, MAX_WORKERS_SEEN);
	for (i = 0; i < n; i++)
		if ((t = thread_ticks(pid, tids[i])) >= 0)
			sum = (sum < 0 ? 0 : sum) + t;
	return sum;
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
		c0 = tid > 0 ? workers_ticks(pid) : -1;
		sleep_ms(1000);
		c1 = tid > 0 ? workers_ticks(pid) : -1;
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

/* ---- batching ---------------------------------------------------------------------------- */

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

/* ---- statistics -------------------------------------------------------------------------- */

/* A counter of queue @q ("rx"/"tx") from our fdinfo, or -1 (vhost-net has none). */
static long long fdinfo_counter(int vfd, const char *q, const char *name)
{
	char path[64], key[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", vfd);
	snprintf(key, sizeof(key), " %s ", name);
	return file_number(path, "vq", q, key);
}

/* The counters of each queue, as stats.rs names them. */
static const char *const stat_names[] = {
	"packets", "bytes", "drops", "kicks", "calls", "errors", "busy_hits", "busy_misses",
	"requeues", "busyloop_timeout", "zcopy", "zcopy_done", "zcopy_copied", "zcopy_fallbacks",
	"zcopy_inflight", "batches", "batched", "packed_ring",
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
		CASE_SKIP("vhost-net has no per-queue statistics (ours has them in debugfs)");
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

/* ---- RING_RESET ------------------------------------------------------------------------ */

/* An ioctl on queue @idx that must fail with EBUSY while the queue has a backend. */
static int busy_while_attached(struct dev *d, unsigned long req, const char *rn,
			       unsigned int idx, void *arg)
{
	if (ioctl(d->vfd, req, arg) == 0)
		FAIL("%s: %s on queue %u with its backend attached succeeded, expected EBUSY",
		     d->name, rn, idx);
	if (errno != EBUSY)
		FAIL("%s: %s on queue %u with its backend attached: %s, expected EBUSY", d->name,
		     rn, idx, errno_name(errno));
	return R_PASS;
}

/*
 * One queue reset as QEMU's vhost_net_virtqueue_reset() and _restart() do it for
 * VIRTIO_F_RING_RESET: SET_VRING_NUM and _BASE refused with EBUSY while its backend is
 * attached; NET_SET_BACKEND -1; GET_VRING_BASE gives every buffer taken so far (all were
 * used); the ring set up again at another address with 128 entries and fresh eventfds;
 * attached again. The other queue carries a frame while this one is detached; afterwards
 * both carry frames.
 */
static int reset_one_queue(struct dev *d, struct tapc *tc, unsigned int q, uint32_t seed)
{
	struct vr *vr = q == 0 ? &d->rx : &d->tx;
	struct vhost_vring_state st = { .index = q, .num = 128 };
	static uint8_t f[SLOT];
	const char *what;
	unsigned int i;
	int r;

	/* (SET_VRING_ADDR is not refused while attached: vhost.c checks the new addresses.) */
	if (busy_while_attached(d, VHOST_SET_VRING_NUM, "VHOST_SET_VRING_NUM", q, &st) ||
	    busy_while_attached(d, VHOST_SET_VRING_BASE, "VHOST_SET_VRING_BASE", q, &st))
		return R_FAIL;
	r = set_backend(d->vfd, q, -1);
	if (r)
		FAIL("%s: VHOST_NET_SET_BACKEND %u fd -1: %s", d->name, q, errno_name(-r));
	/* The other queue runs on. */
	frame_eth_seq(f, 200, seed, NULL);
	if (q == 0) {
		if (dev_tx_one(d, f, 200) || cap_expect(tc->cap, d->name, f, 200, "TX, RX reset"))
			return R_FAIL;
	} else {
		if (dev_rx_post(d, 1))
			return R_FAIL;
		r = pkt_send(tc->snd, tc->t.ifindex, f, 200);
		if (r)
			FAIL("%s: sending 200 bytes: %s", d->name, strerror(-r));
		if (dev_rx_expect(d, f, 200, "RX, TX reset"))
			return R_FAIL;
	}
	st.num = 0xffff;
	if (ioctl(d->vfd, VHOST_GET_VRING_BASE, &st) < 0)
		FAIL("%s: VHOST_GET_VRING_BASE %u: %s", d->name, q, errno_name(errno));
	if (st.num != vr->last_used)
		FAIL("%s: VHOST_GET_VRING_BASE %u after detach: %u, expected %u (the buffers used)",
		     d->name, q, st.num, vr->last_used);
	/* The ring again, elsewhere and smaller, with fresh eventfds; base 0. */
	vr_close(vr);
	if (vr_init(vr, &G, G_C_GPA + d->k * 0x10000 + 0x8000 + q * 0x4000))
		FAIL("eventfd: %s", strerror(errno));
	vr->num = 128;
	for (i = 0; i < 128; i++)
		vr->free_stack[i] = 127 - i;
	vr->nfree = 128;
	if (q == 0)
		d->post_head = d->post_tail = 0;
	else
		d->tx_head = d->tx_tail = 0;
	r = vr_setup_vhost(vr, d->vfd, q, &what);
	if (r)
		FAIL("%s: queue %u detached: %s: %s", d->name, q, what, errno_name(-r));
	r = set_backend(d->vfd, q, tc->t.fd);
	if (r)
		FAIL("%s: VHOST_NET_SET_BACKEND %u again: %s", d->name, q, errno_name(-r));
	return dev_txrx(d, tc->cap, tc->snd, tc->t.ifindex, NULL, seed + 100);
}

/*
 * VIRTIO_F_RING_RESET: offered (vhost_net.ko 7.3 offers it: a device without it fails, it
 * does not skip), negotiated, then RX and after it TX reset one at a time under the other's
 * traffic (reset_one_queue).
 */
static int case_ring_reset(const char *path)
{
	struct dev d = { .vfd = -1 };
	struct tapc tc;
	uint64_t have = 0;
	int r;

	r = tapc_create(&tc, 0, 1500);
	if (r == R_PASS)
		r = dev_open(&d, path, 0);
	if (r == R_PASS && ioctl(d.vfd, VHOST_GET_FEATURES, &have) < 0) {
		ktap_diag("%s: VHOST_GET_FEATURES: %s", d.name, errno_name(errno));
		r = R_FAIL;
	}
	if (r == R_PASS && !(have & F(VIRTIO_F_RING_RESET))) {
		ktap_diag("%s does not offer VIRTIO_F_RING_RESET (offers %#llx)", d.name,
			  (unsigned long long)have);
		r = R_FAIL;
	}
	if (r == R_PASS)
		r = dev_setup(&d, QEMU_FEATURES | F(VIRTIO_F_RING_RESET), -1);
	if (r == R_PASS)
		r = dev_backend(&d, tc.t.fd);
	if (r == R_PASS)
		r = dev_txrx(&d, tc.cap, tc.snd, tc.t.ifindex, NULL, 500);
	if (r == R_PASS)
		r = reset_one_queue(&d, &tc, 0, 600);
	if (r == R_PASS)
		r = reset_one_queue(&d, &tc, 1, 700);
	dev_close(&d);
	tapc_close(&tc);
	return r;
}

/* ---- tun's IFF_BACKPRESSURE ------------------------------------------------------------- */

#define BP_FRAMES 400	/* tun's ring holds 100 (txqueuelen 100); the rest wait in the qdisc */

/* The tap's tx_dropped (sysfs), or -1. */
static long long tap_tx_dropped(const char *ifname)
{
	char p[128];
	long long v = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/sys/class/net/%s/statistics/tx_dropped", ifname);
	f = fopen(p, "r");
	if (f) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/*
 * tun's IFF_BACKPRESSURE (7.3): with a queueing qdisc, tun stops the tap's TX queue when its
 * ring is full instead of dropping, and whoever consumes from the ring must wake the queue
 * again (tun_wake_queue(), which vhost_net_buf_produce() calls). The tap's txqueuelen (and
 * so tun's ring) is set to 100, and BP_FRAMES frames go in while the guest has no RX
 * buffers: 100 fill the ring (the device may hold some in its RX batch), the rest wait in
 * a pfifo qdisc (not fq_codel, which would drop what waits). Then the guest takes them, 64 buffers
 * at a time: every frame must arrive, in order and byte for byte, and the tap must have
 * dropped none. A module without the wake (checked by removing it) stops after 101 frames.
 * (The default txqueuelen of 1000 holds all 400 in the ring: the queue would never stop.)
 */
static int case_rx_backpressure(const char *path)
{
	static uint8_t f[SLOT];
	struct dev d = { .vfd = -1 };
	unsigned int sent, got = 0, i, n;
	struct tapc tc;
	long long drops;
	char what[48];
	int r;

	r = tapc_create(&tc, IFF_BACKPRESSURE, 1500);
	if (r == R_PASS && run("ip link set dev %s txqueuelen 100 && "
			       "tc qdisc replace dev %s root pfifo limit 1000", tc.t.name,
			       tc.t.name)) {
		ktap_diag("cannot set txqueuelen 100 and a pfifo qdisc on %s", tc.t.name);
		r = R_FAIL;
	}
	if (r == R_PASS)
		r = dev_on_tap(&d, path, &tc);
	for (sent = 0; r == R_PASS && sent < BP_FRAMES; sent++) {
		frame_eth_seq(f, 100, 1000 + sent, NULL);
		r = pkt_send(tc.snd, tc.t.ifindex, f, 100);
		if (r) {
			ktap_diag("%s: sending frame %u into the tap: %s", d.name, sent, strerror(-r));
			r = R_FAIL;
		}
	}
	while (r == R_PASS && got < BP_FRAMES) {
		n = BP_FRAMES - got < 64 ? BP_FRAMES - got : 64;
		r = dev_rx_post(&d, n);
		for (i = 0; r == R_PASS && i < n; i++, got++) {
			snprintf(what, sizeof(what), "frame %u of %u", got + 1, BP_FRAMES);
			frame_eth_seq(f, 100, 1000 + got, NULL);
			r = dev_rx_expect(&d, f, 100, what);
		}
	}
	if (r != R_PASS && got < BP_FRAMES && sent == BP_FRAMES)
		ktap_diag("%s: %u of %u frames reached the guest (tun's ring holds 100: a TX queue "
			  "left stopped strands the rest in the qdisc)", d.name, got, BP_FRAMES);
	drops = tc.t.fd >= 0 ? tap_tx_dropped(tc.t.name) : 0;
	if (r == R_PASS && drops != 0) {
		ktap_diag("%s: the tap dropped %lld frames (tx_dropped), expected none", d.name,
			  drops);
		r = R_FAIL;
	}
	dev_close(&d);
	tapc_close(&tc);
	return r;
}

/* ---- short of RX buffers: waiting, not spinning ------------------------------------------ */

/*
 * 7.3's fix of an RX livelock: a frame larger than all the buffers the guest has made
 * available (mergeable: 9012 bytes, two 2048-byte buffers) must leave the worker waiting
 * for a kick, not retrying at once for ever at 100% CPU. Over one second the worker may use
 * little CPU and deliver nothing; then, with eight more buffers posted and kicked, the frame
 * arrives in five (num_buffers 5).
 */
static int case_rx_short_of_buffers(const char *path)
{
	static uint8_t f[9000], buf[SLOT];
	struct dev d = { .vfd = -1 };
	long long cpu0, cpu;
	struct tapc tc;
	int r, tid = -1;

	r = tapc_create(&tc, 0, 9000);
	if (r == R_PASS)
		r = dev_on_tap(&d, path, &tc);
	if (r == R_PASS) {
		tid = worker_tid(getpid());
		if (tid < 0) {
			ktap_diag("%s: no worker thread vhost-%d", d.name, getpid());
			r = R_FAIL;
		}
	}
	if (r == R_PASS)
		r = dev_rx_post(&d, 2);
	frame_eth_seq(f, sizeof(f), 900, NULL);
	if (r == R_PASS) {
		r = pkt_send(tc.snd, tc.t.ifindex, f, sizeof(f));
		if (r) {
			ktap_diag("%s: sending 9000 bytes: %s", d.name, strerror(-r));
			r = R_FAIL;
		}
	}
	if (r == R_PASS) {
		long hz = sysconf(_SC_CLK_TCK);

		sleep_ms(200);
		cpu0 = thread_ticks(getpid(), tid);
		sleep_ms(1000);
		cpu = (thread_ticks(getpid(), tid) - cpu0) * 1000 / (hz > 0 ? hz : 100);
		ktap_diag("%s: worker CPU over 1 s short of buffers: %lld ms", d.name, cpu);
		if (cpu0 < 0 || cpu > 300) {
			ktap_diag("%s: the worker spins (%lld ms of CPU in 1 s), expected it to wait "
				  "for a kick", d.name, cpu);
			r = R_FAIL;
		}
		if (vr_used_idx(&d.rx) != 0) {
			ktap_diag("%s: used idx %u with too few buffers, expected 0", d.name,
				  vr_used_idx(&d.rx));
			r = R_FAIL;
		}
	}
	if (r == R_PASS)
		r = dev_rx_post(&d, 8);
	if (r == R_PASS && !vr_wait_used(&d.rx, 5, TMO)) {
		ktap_diag("%s: %u used elements after 8 more buffers, expected 5", d.name,
			  vr_used_pending(&d.rx));
		r = R_FAIL;
	}
	if (r == R_PASS) {
		g_read(&G, d.rx_gpa[d.posted[0]], buf, HDR_LEN);
		if (((struct virtio_net_hdr_mrg_rxbuf *)buf)->num_buffers != 5) {
			ktap_diag("%s: num_buffers %u, expected 5", d.name,
				  ((struct virtio_net_hdr_mrg_rxbuf *)buf)->num_buffers);
			r = R_FAIL;
		}
	}
	dev_close(&d);
	tapc_close(&tc);
	return r;
}

VCASE_FIXTURE(queue, NULL)

TEST_F_TIMEOUT(queue, dirty_log_rx, CASE_TMO_S)
{
	vcase_run(_metadata, case_dirty_log, variant->path);
}

TEST_F_TIMEOUT(queue, busy_poll, CASE_TMO_S)
{
	vcase_run(_metadata, case_busy_poll, variant->path);
}

TEST_F_TIMEOUT(queue, tx_batching, CASE_TMO_S)
{
	vcase_run(_metadata, case_tx_batching, variant->path);
}

TEST_F_TIMEOUT(queue, rx_batching, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_batching, variant->path);
}

TEST_F_TIMEOUT(queue, stats_debugfs, CASE_TMO_S)
{
	vcase_run(_metadata, case_stats, variant->path);
}

TEST_F_TIMEOUT(queue, ring_reset, CASE_TMO_S)
{
	vcase_run(_metadata, case_ring_reset, variant->path);
}

TEST_F_TIMEOUT(queue, rx_backpressure, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_backpressure, variant->path);
}

TEST_F_TIMEOUT(queue, rx_short_of_buffers, CASE_TMO_S)
{
	vcase_run(_metadata, case_rx_short_of_buffers, variant->path);
}

TEST_HARNESS_MAIN
