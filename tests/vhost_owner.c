// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_owner: the owner and its worker: a kthread worker (FORK_FROM_OWNER 0), the owner
 * SIGKILLed mid-traffic, the owner exiting while another process holds the file.
 *
 * Every case runs against both devices, as the two variants of fixture `owner` of the
 * kernel's kselftest_harness.h (owner.vhost_net.<case>, owner.vhost_rs_net.<case>), each in
 * a process and network namespace of its own (vhost_case.h); a device that is not there
 * skips its tests. `-v vhost_rs_net` runs one device, `-t <case>` one case, `-l` lists them.
 */
#include "kselftest_harness.h"
#include "vhost_case.h"

/* ---- kthread worker ------------------------------------------------------------------ */

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

/* ---- owner SIGKILLed mid-traffic -------------------------------------------------------- */

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

/* ---- owner exits while another process holds the file ---------------------------------- */

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

VCASE_FIXTURE(owner, NULL)

TEST_F_TIMEOUT(owner, kthread_worker, CASE_TMO_S)
{
	vcase_run(_metadata, case_kthread, variant->path);
}

TEST_F_TIMEOUT(owner, owner_sigkilled, CASE_TMO_S)
{
	vcase_run(_metadata, case_owner_killed, variant->path);
}

TEST_F_TIMEOUT(owner, owner_exits_fd_shared, CASE_TMO_S)
{
	vcase_run(_metadata, case_owner_exits, variant->path);
}

TEST_HARNESS_MAIN
