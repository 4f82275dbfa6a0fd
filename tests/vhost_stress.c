// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_stress: the device under stress: torn ring-index accesses, allocation failures
 * injected in every setup step and in the worker, ioctls racing with traffic. The fault
 * cases need CONFIG_FAULT_INJECTION (fail-nth, failslab, fail_page_alloc) and skip without.
 *
 * Every case runs against both devices, as the two variants of fixture `stress` of the
 * kernel's kselftest_harness.h (stress.vhost_net.<case>, stress.vhost_rs_net.<case>), each in
 * a process and network namespace of its own (vhost_case.h); a device that is not there
 * skips its tests. `-v vhost_rs_net` runs one device, `-t <case>` one case, `-l` lists them.
 */
#include "kselftest_harness.h"
#include "vhost_case.h"

/* ---- ring indexes, read and written whole ------------------------------------------------ */

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

/* ---- allocation failures, injected --------------------------------------------------------- */

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
		CASE_SKIP("%s not present", path);
	r = fail_nth_open();
	if (r != R_PASS)
		return r;
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
				errs++;
				note_errno(errnos, sizeof(errnos), -e);
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

/* ---- allocation failures in the worker --------------------------------------------------- */

/*
 * Allocation failures in the worker: the device's worker threads (vhost-PID, and ours'
 * vhost-PID-1 with split_workers) are marked make-it-fail and failslab/fail_page_alloc fail 1 in 5 of its allocations (task-filter:
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
	int r, tids[4], nt, sent = 0, used = 0, n, i;
	long long end;

	r = tap_dev(&tc, &d, path);
	if (r != R_PASS)
		return r;
	r = fault_setup();
	if (r)
		CASE_SKIP("fault injection knobs in debugfs: %s", strerror(-r));
	nt = worker_tids(getpid(), tids, 4);
	if (worker_tid(getpid()) < 0)
		FAIL("%s: no worker thread vhost-%d", d.name, getpid());
	for (i = 0; i < nt; i++) {
		snprintf(p, sizeof(p), "/proc/%d/task/%d/make-it-fail", getpid(), tids[i]);
		if ((r = write_file(p, "1")))
			FAIL("%s: %s: %s", d.name, p, strerror(-r));
	}
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
	for (i = 0; i < nt; i++) {
		snprintf(p, sizeof(p), "/proc/%d/task/%d/make-it-fail", getpid(), tids[i]);
		write_file(p, "0");
	}
	if (r != R_PASS)
		return r;
	ktap_diag("%s: 2 s with 1 in 5 of the allocations of its %d worker thread(s) failing: %d TX frames posted, %d used in order",
		  d.name, nt, sent, used);
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

VCASE_FIXTURE(stress, NULL)

TEST_F_TIMEOUT(stress, ring_index_atomic, CASE_TMO_S)
{
	vcase_run(_metadata, case_ring_index_atomic, variant->path);
}

TEST_F_TIMEOUT(stress, alloc_faults, CASE_TMO_S)
{
	vcase_run(_metadata, case_alloc_faults, variant->path);
}

TEST_F_TIMEOUT(stress, ioctl_races, CASE_TMO_S)
{
	vcase_run(_metadata, case_ioctl_races, variant->path);
}

TEST_F_TIMEOUT(stress, worker_faults, CASE_TMO_S)
{
	vcase_run(_metadata, case_worker_faults, variant->path);
}

TEST_HARNESS_MAIN
