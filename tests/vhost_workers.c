// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_workers: a worker per queue, vhost.c's worker ioctls wired for the net device
 * (VHOST_NEW_WORKER, _FREE_WORKER, _ATTACH_VRING_WORKER, _GET_VRING_WORKER) and the module
 * parameter split_workers (/sys/module/vhost_rs/parameters/split_workers, read at SET_OWNER:
 * N puts RX and TX on worker 0, Y puts TX on worker 1). Cases that need a value set it and
 * put the old one back (after the case, and at the program's exit).
 *
 * Every case runs on both devices, as the two variants of fixture `workers` (vcase.h).
 * What each device must answer (EPERM is the owner check, on both):
 *                          ours (/dev/vhost-rs-net)           vhost_net.ko
 *   before SET_OWNER,      EINVAL (no owner yet)              EPERM (vhost_dev_ioctl()'s owner
 *   after RESET_OWNER                                         check comes first)
 *   not the owner's mm     EPERM                              EPERM
 *   the owner              vhost.c's answers (ENOBUFS, ENODEV, ENOTTY: net.c never wires them
 *                          EBUSY, ENOMEM, EFAULT)             (ENOBUFS when the argument's
 *                                                             first u32 is 2 or more, see
 *                                                             c_errno())
 * Where they differ the case says "differs on purpose" and checks each device's own value.
 * Workers are named vhost-PID (id 0) and vhost-PID-N, threads of the owner (the cases set
 * VHOST_FORK_OWNER_TASK explicitly) or kthreads (VHOST_FORK_OWNER_KTHREAD); vhost_net.ko has
 * one, vhost-PID. Ours shows them in fdinfo (" worker N" on each queue's line, a line
 * "worker N: tid T" each): GET_VRING_WORKER, fdinfo and /proc must agree (check_state()).
 * After every passing case no thread named for a worker of ours is left, and /dev/kmsg shows
 * no BUG/WARNING/KASAN/Oops line. Every wait is bounded. Prints KTAP (the harness's).
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "vhost_case.h"

/* linux/vhost.h's worker ioctls, with its numbers, should the headers lack them. */
#ifndef VHOST_NEW_WORKER
struct vhost_worker_state {
	__u32 worker_id;
};
struct vhost_vring_worker {
	__u32 index;
	__u32 worker_id;
};
#define VHOST_NEW_WORKER _IOR(VHOST_VIRTIO, 0x8, struct vhost_worker_state)
#define VHOST_FREE_WORKER _IOW(VHOST_VIRTIO, 0x9, struct vhost_worker_state)
#define VHOST_ATTACH_VRING_WORKER _IOW(VHOST_VIRTIO, 0x15, struct vhost_vring_worker)
#define VHOST_GET_VRING_WORKER _IOWR(VHOST_VIRTIO, 0x16, struct vhost_vring_worker)
#endif

#define MAXW		16	/* workers per device of ours: ids 0..15 */
#define ALLW		0xffffu
#define WAIT_MS		5000	/* for a worker thread to appear in /proc or leave it */
#define TASK		VHOST_FORK_OWNER_TASK
#define KTHREAD		VHOST_FORK_OWNER_KTHREAD
#define SPLIT		"/sys/module/vhost_rs/parameters/split_workers"
#define NTH_MAX		3000	/* fail-nth: a call that still meets a failure here fails */

/* The case's device: its path, whether it is ours, the owner (this process, whose only thread
 * calls SET_OWNER: the "PID" of the workers' names). */
static struct {
	const char *path, *name;
	bool ours;
	pid_t pid;
} W;

/* The case's device file and taps, closed by wcase() after the case. */
static struct dev D;
static struct tapc T, T2;

static char split_saved[8];	/* split_workers at the program's start; "": none */

/* ---- small things ----------------------------------------------------------------------- */

/* The first line of @path, without its newline. 0, or -1. */
static int read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return -1;
	ok = fgets(buf, n, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* @what returned @got (0 or an errno), @want expected: R_PASS, or R_FAIL with a diagnostic. */
static int __attribute__((format(printf, 3, 4))) expect(int got, int want, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	if (got == want)
		return R_PASS;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ktap_diag("%s: %s: %s, expected %s", W.name, what, errno_name(got), errno_name(want));
	return R_FAIL;
}

#define EXPECT(got, want, ...) do {					\
		if (expect(got, want, __VA_ARGS__))			\
			return R_FAIL;					\
	} while (0)

static const char *mask_str(unsigned int mask, char *b, size_t n)
{
	size_t k = snprintf(b, n, "{");
	int id;

	for (id = 0; id < MAXW && k < n; id++)
		if (mask >> id & 1)
			k += snprintf(b + k, n - k, "%s%d", k > 1 ? "," : "", id);
	if (k < n)
		snprintf(b + k, n - k, "}");
	return b;
}

/* ---- the worker ioctls: 0 or an errno ---------------------------------------------------- */

static int w_new(int vfd, uint32_t *id)
{
	struct vhost_worker_state s = { .worker_id = 0 };

	if (ioctl(vfd, VHOST_NEW_WORKER, &s) < 0)
		return errno;
	*id = s.worker_id;
	return 0;
}

static int w_free(int vfd, uint32_t id)
{
	struct vhost_worker_state s = { .worker_id = id };

	return ioctl(vfd, VHOST_FREE_WORKER, &s) < 0 ? errno : 0;
}

static int w_attach(int vfd, uint32_t idx, uint32_t id)
{
	struct vhost_vring_worker w = { .index = idx, .worker_id = id };

	return ioctl(vfd, VHOST_ATTACH_VRING_WORKER, &w) < 0 ? errno : 0;
}

static int w_get(int vfd, uint32_t idx, struct vhost_vring_worker *w)
{
	*w = (struct vhost_vring_worker){ .index = idx, .worker_id = 0xdead };
	return ioctl(vfd, VHOST_GET_VRING_WORKER, w) < 0 ? errno : 0;
}

/*
 * vhost_net.ko's answer to the owner: its vhost_net_ioctl() hands ioctls it does not know
 * to vhost_dev_ioctl(), then vhost_vring_ioctl(), which reads a queue index from the
 * argument's first u32 (ENOBUFS past its 2 queues) before it finds no such ioctl (ENOTTY).
 */
static int c_errno(uint32_t first)
{
	return first >= 2 ? ENOBUFS : ENOTTY;
}

/* NEW_WORKER must give id @want (the lowest free). */
static int new_is(uint32_t want)
{
	uint32_t id = UINT32_MAX;
	int e = w_new(D.vfd, &id);

	if (e || id != want)
		FAIL("%s: NEW_WORKER: %s, id %u; expected id %u (the lowest free)", W.name,
		     errno_name(e), id, want);
	return R_PASS;
}

/* The worker ioctls with arguments an owner could use, then ones it could not. */
#define NCALLS 7
static const char *const call_name[NCALLS] = {
	"NEW_WORKER", "FREE_WORKER {0}", "ATTACH_VRING_WORKER {0, 0}", "GET_VRING_WORKER {1}",
	"FREE_WORKER {99}", "ATTACH_VRING_WORKER {2, 0}", "GET_VRING_WORKER {2}",
};

static void calls(int vfd, int e[NCALLS])
{
	struct vhost_vring_worker g;
	uint32_t id;

	e[0] = w_new(vfd, &id);
	e[1] = w_free(vfd, 0);
	e[2] = w_attach(vfd, 0, 0);
	e[3] = w_get(vfd, 1, &g);
	e[4] = w_free(vfd, 99);
	e[5] = w_attach(vfd, 2, 0);
	e[6] = w_get(vfd, 2, &g);
}

/* Each of calls()' @e must be @want. */
static int calls_are(const int e[NCALLS], int want, const char *when)
{
	int i, bad = 0;

	for (i = 0; i < NCALLS; i++)
		bad |= expect(e[i], want, "%s %s", call_name[i], when);
	return bad ? R_FAIL : R_PASS;
}

/*
 * vhost_net.ko, to its owner: ENOTTY for the four (ENOBUFS where c_errno() says), and says
 * that this differs on purpose.
 */
static int c_lacks(void)
{
	struct vhost_vring_worker g;
	uint32_t id, i;

	EXPECT(w_new(D.vfd, &id), ENOTTY, "NEW_WORKER (owner)");
	for (i = 0; i < 3; i++) {
		EXPECT(w_free(D.vfd, i), c_errno(i), "FREE_WORKER {%u} (owner)", i);
		EXPECT(w_attach(D.vfd, i, 0), c_errno(i), "ATTACH_VRING_WORKER {%u, 0} (owner)", i);
		EXPECT(w_get(D.vfd, i, &g), c_errno(i), "GET_VRING_WORKER {%u} (owner)", i);
	}
	ktap_diag("%s: differs on purpose: vhost_net.ko does not wire vhost.c's worker ioctls "
		  "(ENOTTY to the owner; ENOBUFS where the first u32 is read as a queue index >= 2)",
		  W.name);
	return R_PASS;
}

/* ---- the module parameter ---------------------------------------------------------------- */

static void split_restore(void)
{
	if (split_saved[0])
		write_file(SPLIT, split_saved);
}

/* split_workers = @on, read back. */
static int split_set(bool on)
{
	char v[8] = "";
	int r = write_file(SPLIT, on ? "Y" : "N");

	if (r)
		FAIL("%s: writing %s: %s (the split_workers parameter)", W.name, SPLIT, strerror(-r));
	if (read_line(SPLIT, v, sizeof(v)) || (v[0] == 'Y' || v[0] == '1') != on)
		FAIL("%s: %s reads \"%s\" after writing %s", W.name, SPLIT, v, on ? "Y" : "N");
	return R_PASS;
}

/* ---- worker threads in /proc ------------------------------------------------------------- */

/* Worker @id's name for owner @pid. */
static void worker_name(char *b, size_t n, pid_t pid, int id)
{
	if (id)
		snprintf(b, n, "vhost-%d-%d", pid, id);
	else
		snprintf(b, n, "vhost-%d", pid);
}

/*
 * Which worker of owner @pid a thread called @comm is: its id, or -1. A task's comm is cut to
 * 15 characters; a kthread's /proc comm shows the whole name. (Up to 5-digit pids the longest
 * name, vhost-NNNNN-15, fits in 15; past them a cut name could match two ids.)
 */
static int worker_id_of(const char *comm, pid_t pid)
{
	char full[32];
	int id;

	for (id = 0; id < MAXW; id++) {
		worker_name(full, sizeof(full), pid, id);
		if (!strcmp(comm, full) ||
		    (strlen(full) > 15 && strlen(comm) == 15 && !strncmp(comm, full, 15)))
			return id;
	}
	return -1;
}

struct wscan {
	int tid[MAXW];	/* by id: its thread; 0 none, -1 more than one */
	int other;	/* worker-named threads of the other kind (kthread, or the owner's own) */
	int stray;	/* threads of the owner named vhost-... for no id */
};

static void note_tid(int *tid, int id, int t)
{
	tid[id] = tid[id] ? -1 : t;
}

/* The threads of @pid named as its workers, into @tid; others named vhost-... into @stray. */
static void scan_task(pid_t pid, int *tid, int *stray)
{
	char path[300], comm[80];
	struct dirent *e;
	DIR *d;
	int id;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return;		/* the owner is gone, and its threads with it */
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", pid, e->d_name);
		if (read_line(path, comm, sizeof(comm)))
			continue;
		id = worker_id_of(comm, pid);
		if (id >= 0)
			note_tid(tid, id, atoi(e->d_name));
		else if (!strncmp(comm, "vhost-", 6))
			(*stray)++;
	}
	closedir(d);
}

/*
 * The kthreads (children of kthreadd, pid 2) named as workers of @pid, into @tid. One read
 * of /proc/N/stat each ("N (comm) S ppid ...", the comm as /proc/N/comm shows it): this runs
 * at every poll of wait_workers().
 */
static void scan_kthreads(pid_t pid, int *tid)
{
	char path[300], line[512];
	struct dirent *e;
	DIR *d = opendir("/proc");
	int ppid, id;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *lp, *rp;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (read_line(path, line, sizeof(line)))
			continue;
		lp = strchr(line, '(');
		rp = strrchr(line, ')');
		if (!lp || !rp || rp < lp ||
		    sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != 2)
			continue;
		*rp = 0;
		id = worker_id_of(lp + 1, pid);
		if (id >= 0)
			note_tid(tid, id, atoi(e->d_name));
	}
	closedir(d);
}

static void scan_workers(pid_t pid, bool kt, struct wscan *s)
{
	int t2[MAXW] = { 0 }, id;

	memset(s, 0, sizeof(*s));
	if (kt) {
		scan_kthreads(pid, s->tid);
		scan_task(pid, t2, &s->stray);
	} else {
		scan_task(pid, s->tid, &s->stray);
		scan_kthreads(pid, t2);
	}
	for (id = 0; id < MAXW; id++)
		s->other += t2[id] != 0;
}

static bool scan_is(const struct wscan *s, unsigned int mask)
{
	int id;

	for (id = 0; id < MAXW; id++)
		if (s->tid[id] < 0 || (s->tid[id] > 0) != (mask >> id & 1))
			return false;
	return !s->other && !s->stray;
}

/*
 * Waits up to WAIT_MS for owner @pid's worker threads to be exactly the ids in @mask, each
 * named for its id, as kthreads (@kt) or else as threads of the owner, none of the other
 * kind (a thread leaves /proc a little after its worker was stopped). R_PASS, or R_FAIL with
 * a diagnostic.
 */
static int wait_workers(pid_t pid, bool kt, unsigned int mask, struct wscan *s)
{
	long long end = now_ms() + WAIT_MS;
	char b1[80], b2[80], b3[80];
	unsigned int got = 0, dup = 0;
	int id;

	for (;;) {
		scan_workers(pid, kt, s);
		if (scan_is(s, mask))
			return R_PASS;
		if (now_ms() > end)
			break;
		sleep_ms(10);
	}
	for (id = 0; id < MAXW; id++) {
		got |= (s->tid[id] != 0) << id;
		dup |= (s->tid[id] < 0) << id;
	}
	FAIL("%s: worker threads of %d after %d ms: ids %s as %s (named twice: %s), %d as %s, "
	     "%d more named vhost-...; expected ids %s as %s", W.name, pid, WAIT_MS,
	     mask_str(got, b1, sizeof(b1)), kt ? "kthreads" : "its own threads",
	     mask_str(dup, b2, sizeof(b2)), s->other, kt ? "its own threads" : "kthreads",
	     s->stray, mask_str(mask, b3, sizeof(b3)), kt ? "kthreads" : "its own threads");
}

/* ---- fdinfo ------------------------------------------------------------------------------ */

struct fdi {
	int nvq[2];		/* lines "vq0 rx:" and "vq1 tx:" */
	int vq[2];		/* their " worker <id>"; -1 if none */
	int tid[MAXW];		/* by id: the tid of its line "worker <id>: tid <tid>"; 0 if none */
	unsigned int mask;	/* ids with such a line */
};

static int fdinfo_read(int vfd, struct fdi *fi)
{
	char path[64], line[1024];
	unsigned int id;
	FILE *f;
	int tid;

	memset(fi, 0, sizeof(*fi));
	fi->vq[0] = fi->vq[1] = -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", vfd);
	f = fopen(path, "r");
	if (!f)
		FAIL("%s: %s: %s", W.name, path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "vq0 rx:", 7) || !strncmp(line, "vq1 tx:", 7)) {
			int q = line[2] - '0';
			char *p = strstr(line, " worker ");

			fi->nvq[q]++;
			fi->vq[q] = p ? atoi(p + 8) : -1;
		} else if (sscanf(line, "worker %u: tid %d", &id, &tid) == 2) {
			if (id >= MAXW || fi->tid[id]) {
				fclose(f);
				line[strcspn(line, "\n")] = 0;
				FAIL("%s: fdinfo: \"%s\": an id past 15, or a second line for it",
				     W.name, line);
			}
			fi->tid[id] = tid;
			fi->mask |= 1u << id;
		}
	}
	fclose(f);
	return R_PASS;
}

/*
 * Ours: RX on worker @rx, TX on @tx, the live workers exactly the ids in @mask, as kthreads
 * (@kt) or threads of this process, named for their ids. GET_VRING_WORKER, fdinfo and /proc
 * must all say so, fdinfo's tids being the threads /proc names for the ids.
 */
static int check_state(int rx, int tx, unsigned int mask, bool kt)
{
	const int want[2] = { rx, tx };
	struct vhost_vring_worker g;
	struct wscan s;
	struct fdi fi;
	char b1[80], b2[80];
	int q, id, e;

	for (q = 0; q < 2; q++) {
		e = w_get(D.vfd, q, &g);
		if (e || g.index != (uint32_t)q || g.worker_id != (uint32_t)want[q])
			FAIL("%s: GET_VRING_WORKER {%d}: %s, {%u, %u}; expected {%d, %d}", W.name, q,
			     errno_name(e), g.index, g.worker_id, q, want[q]);
	}
	if (fdinfo_read(D.vfd, &fi))
		return R_FAIL;
	for (q = 0; q < 2; q++)
		if (fi.nvq[q] != 1 || fi.vq[q] != want[q])
			FAIL("%s: fdinfo: %d \"vq%d %s:\" lines, the last with worker %d; expected one, "
			     "with \" worker %d\"", W.name, fi.nvq[q], q, q ? "tx" : "rx", fi.vq[q],
			     want[q]);
	if (fi.mask != mask)
		FAIL("%s: fdinfo has \"worker N: tid\" lines for ids %s, expected %s", W.name,
		     mask_str(fi.mask, b1, sizeof(b1)), mask_str(mask, b2, sizeof(b2)));
	if (wait_workers(W.pid, kt, mask, &s))
		return R_FAIL;
	for (id = 0; id < MAXW; id++) {
		if (!(mask >> id & 1) || fi.tid[id] == s.tid[id])
			continue;
		worker_name(b1, sizeof(b1), W.pid, id);
		FAIL("%s: worker %d: fdinfo says tid %d, /proc has %s as tid %d", W.name, id,
		     fi.tid[id], b1, s.tid[id]);
	}
	return R_PASS;
}

/* vhost_net.ko: its one worker, vhost-PID. */
static int c_one_worker(bool kt)
{
	struct wscan s;

	return wait_workers(W.pid, kt, 1, &s);
}

/* ---- one device -------------------------------------------------------------------------- */

/*
 * FORK_FROM_OWNER @mode. Task mode is what vhost.c does by default, made explicit (module
 * parameters can change the default, and RESET_OWNER restores it).
 */
static int w_fork(uint8_t mode)
{
	/* Without the ioctl (CONFIG_VHOST_ENABLE_FORK_OWNER_CONTROL off) task mode is all there is. */
	if (ioctl(D.vfd, VHOST_SET_FORK_FROM_OWNER, &mode) < 0 && !(errno == ENOTTY && mode == TASK)) {
		if (errno == ENOTTY)
			CASE_SKIP("%s: no VHOST_SET_FORK_FROM_OWNER", W.name);
		FAIL("%s: VHOST_SET_FORK_FROM_OWNER %u: %s", W.name, mode, errno_name(errno));
	}
	return R_PASS;
}

static int w_set_owner(void)
{
	if (ioctl(D.vfd, VHOST_SET_OWNER) < 0)
		FAIL("%s: VHOST_SET_OWNER: %s", W.name, errno_name(errno));
	return R_PASS;
}

/* FORK_FROM_OWNER @mode, then SET_OWNER. */
static int w_own(uint8_t mode)
{
	int r = w_fork(mode);

	return r == R_PASS ? w_set_owner() : r;
}

/* A fresh open of the device, FORK_FROM_OWNER @mode set: the next SET_OWNER owns it. */
static int w_reopen(uint8_t mode)
{
	int r;

	dev_close(&D);
	r = dev_open(&D, W.path, 0);
	return r == R_PASS ? w_fork(mode) : r;
}

/* A fresh open of the device, owned in @mode. */
static int w_fresh(uint8_t mode)
{
	int r = w_reopen(mode);

	return r == R_PASS ? w_set_owner() : r;
}

/* split_workers = @split on ours (vhost_net.ko has no such parameter), then w_fresh(TASK). */
static int w_start(bool split)
{
	if (W.ours && split_set(split))
		return R_FAIL;
	return w_fresh(TASK);
}

/* vhost_net.ko after SET_OWNER in task mode: c_lacks(), and its one worker. */
static int c_plain(void)
{
	return c_lacks() ? R_FAIL : c_one_worker(false);
}

/*
 * No owner (@when: before SET_OWNER, after RESET_OWNER): no worker thread, and each of calls()
 * gives EINVAL on ours (vhost_worker_ioctl(): no owner), EPERM on vhost_net.ko.
 */
static int no_owner_calls(const char *when)
{
	struct wscan s;
	int e[NCALLS];

	if (wait_workers(W.pid, false, 0, &s))
		return R_FAIL;
	calls(D.vfd, e);
	if (calls_are(e, W.ours ? EINVAL : EPERM, when))
		return R_FAIL;
	if (!W.ours)
		ktap_diag("%s: differs on purpose: %s vhost_net.ko says EPERM (its owner check "
			  "comes first), ours EINVAL (no owner)", W.name, when);
	return R_PASS;
}

/* ---- traffic ----------------------------------------------------------------------------- */

#define TX_SEQ0	0x10000000u
#define RX_SEQ0	0x20000000u

/* Frame @seq's length: 60..1514. */
static unsigned int flow_len(uint32_t seq)
{
	return 60 + seq * 97 % 1455;
}

struct flow {
	uint32_t tx_sent, tx_seen;	/* posted by the guest; on the wire, in order */
	uint32_t rx_sent, rx_got;	/* sent into the tap; in the guest, in order */
};

/*
 * TX and RX at once on D, backend T, for @ms and at least @min frames each way: up to 64 TX
 * frames not yet on the wire, 64 RX buffers posted, up to 32 frames sent into the tap ahead
 * of the guest (fewer than the buffers: the tap never drops one). Every frame must arrive
 * whole and in order, every TX buffer be used in order; then everything in flight is drained.
 */
static int flow_run(struct flow *fl, int ms, uint32_t min)
{
	static uint8_t f[SLOT], got[SLOT];
	long long end = now_ms() + ms, last = now_ms();
	ssize_t n;
	int k;

	for (;;) {
		bool more = now_ms() < end || fl->tx_sent < min || fl->rx_sent < min;
		unsigned int len, progress = 0;

		while (more && D.tx.nfree > 1 && fl->tx_sent - fl->tx_seen < 64) {
			len = flow_len(fl->tx_sent);
			frame_eth_seq(f, len, TX_SEQ0 + fl->tx_sent, NULL);
			if (dev_tx_add(&D, f, len) < 0)
				break;
			fl->tx_sent++;
		}
		vr_kick(&D.tx);
		k = dev_tx_reclaim(&D);
		if (k < 0)
			return R_FAIL;
		progress += k;
		while ((n = pkt_recv(T.cap, got, sizeof(got), 0)) >= 0) {
			len = flow_len(fl->tx_seen);
			frame_eth_seq(f, len, TX_SEQ0 + fl->tx_seen, NULL);
			if ((size_t)n != len || first_diff(got, f, len) >= 0)
				FAIL("%s: TX frame %u: %zd bytes (seq %#x) on the wire, expected %u bytes "
				     "(seq %#x): lost, reordered or damaged", W.name, fl->tx_seen, n,
				     n >= 18 ? frame_seq(got) : 0, len, TX_SEQ0 + fl->tx_seen);
			fl->tx_seen++;
			progress++;
		}
		k = 64 - (uint16_t)(D.post_tail - D.post_head);
		if (k > 0 && dev_rx_post(&D, k) != R_PASS)
			return R_FAIL;
		while (more && fl->rx_sent - fl->rx_got < 32) {
			len = flow_len(fl->rx_sent);
			frame_eth_seq(f, len, RX_SEQ0 + fl->rx_sent, NULL);
			if (pkt_send(T.snd, T.t.ifindex, f, len))
				break;		/* the socket's buffer: again next round */
			fl->rx_sent++;
		}
		while ((k = dev_rx_take(&D, got, sizeof(got))) > 0) {
			len = flow_len(fl->rx_got);
			frame_eth_seq(f, len, RX_SEQ0 + fl->rx_got, NULL);
			if ((unsigned int)k != len || first_diff(got, f, len) >= 0)
				FAIL("%s: RX frame %u: %d bytes (seq %#x) in the guest, expected %u bytes "
				     "(seq %#x): lost, reordered or damaged", W.name, fl->rx_got, k,
				     k >= 18 ? frame_seq(got) : 0, len, RX_SEQ0 + fl->rx_got);
			fl->rx_got++;
			progress++;
		}
		if (k < 0)
			return R_FAIL;
		if (!more && fl->tx_seen == fl->tx_sent && fl->rx_got == fl->rx_sent)
			return R_PASS;
		if (progress) {
			last = now_ms();
		} else if (now_ms() - last > TMO) {
			FAIL("%s: no progress for %d ms: TX %u posted, %u on the wire (used idx %u, "
			     "avail idx %u); RX %u sent, %u in the guest (used idx %u)", W.name, TMO,
			     fl->tx_sent, fl->tx_seen, vr_used_idx(&D.tx), D.tx.avail_idx,
			     fl->rx_sent, fl->rx_got, vr_used_idx(&D.rx));
		} else {
			sleep_ms(1);
		}
	}
}

/* split_workers=Y on ours, then D on a new tap T, owned in @mode, both queues on the tap. */
static int flow_setup(uint8_t mode)
{
	int r;

	if (W.ours && split_set(true))
		return R_FAIL;
	r = tapc_create(&T, 0, 1500);
	return r == R_PASS ? dev_up(&D, W.path, 0, mode, T.t.fd) : r;
}

/* How many times thread @tid went to sleep (voluntary_ctxt_switches), or -1. */
static long long sleeps(int tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	return file_number(path, "voluntary_ctxt_switches:", NULL, "voluntary_ctxt_switches:");
}

/* ---- the cases --------------------------------------------------------------------------- */

/*
 * Before SET_OWNER: no worker thread; the seven calls() give EINVAL on ours, EPERM on
 * vhost_net.ko; they change nothing: SET_OWNER works after them and makes the usual workers.
 */
static int body_pre_owner(void)
{
	int r;

	r = dev_open(&D, W.path, 0);
	if (r != R_PASS)
		return r;
	if (no_owner_calls("before SET_OWNER"))
		return R_FAIL;
	if (W.ours && split_set(false))
		return R_FAIL;
	r = w_own(TASK);
	if (r != R_PASS)
		return r;
	if (W.ours)
		return check_state(0, 0, 1, false);
	return c_one_worker(false) ? R_FAIL : c_lacks();
}

/*
 * fork() with a pipe @pfd from the child (pfd[1]) to this process (pfd[0], its write end
 * closed here). R_PASS, *@pid 0 in the child; or R_FAIL.
 */
static int fork_pipe(int pfd[2], pid_t *pid)
{
	if (pipe2(pfd, O_CLOEXEC))
		FAIL("pipe: %s", strerror(errno));
	fflush(stdout);		/* else the child prints what is buffered again */
	*pid = fork();
	if (*pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (*pid)
		close(pfd[1]);
	return R_PASS;
}

/* Another thread of the owner: vhost checks the mm, so it is the owner. */
static void *get_tx_thread(void *arg)
{
	struct vhost_vring_worker *g = arg;
	int e = w_get(D.vfd, 1, g);

	if (e)
		g->index = 1000 + e;
	return NULL;
}

/*
 * A forked child (another mm) of an owner: EPERM for each of calls(), on both devices; the
 * owner's workers are as before. Another thread of the owner is the owner: GET_VRING_WORKER
 * {1} gives worker 1 (split_workers=Y) on ours, ENOTTY on vhost_net.ko.
 */
static int body_not_owner(void)
{
	struct vhost_vring_worker g;
	int e[NCALLS], pfd[2], r, st;
	pthread_t th;
	ssize_t n;
	pid_t pid;

	r = w_start(true);
	if (r != R_PASS)
		return r;
	r = W.ours ? check_state(0, 1, 3, false) : c_one_worker(false);
	if (r != R_PASS)
		return r;
	if (fork_pipe(pfd, &pid))
		return R_FAIL;
	if (!pid) {
		calls(D.vfd, e);
		_exit(write(pfd[1], e, sizeof(e)) == sizeof(e) ? 0 : 1);
	}
	n = read(pfd[0], e, sizeof(e));
	close(pfd[0]);
	st = wait_child(pid, 20000);
	if (n != sizeof(e) || st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		FAIL("%s: the child did not report its calls (status %d)", W.name, st);
	if (calls_are(e, EPERM, "from a forked child of the owner"))
		return R_FAIL;
	if (pthread_create(&th, NULL, get_tx_thread, &g))
		FAIL("pthread_create: %s", strerror(errno));
	pthread_join(th, NULL);
	if (W.ours && (g.index != 1 || g.worker_id != 1))
		FAIL("%s: GET_VRING_WORKER {1} from another thread of the owner: %s {%u, %u}, "
		     "expected worker 1", W.name, g.index >= 1000 ? errno_name(g.index - 1000) : "OK",
		     g.index, g.worker_id);
	if (!W.ours && g.index != 1000 + ENOTTY)
		FAIL("%s: GET_VRING_WORKER {1} from another thread of the owner: %s, expected ENOTTY",
		     W.name, g.index >= 1000 ? errno_name(g.index - 1000) : "OK");
	return W.ours ? check_state(0, 1, 3, false) : c_lacks();
}

/*
 * split_workers, read at SET_OWNER (changing it afterwards changes nothing): N puts both
 * queues on worker 0, vhost-PID; Y puts TX on worker 1, vhost-PID-1. GET_VRING_WORKER of a
 * queue past the two: ENOBUFS. vhost_net.ko: one worker, vhost-PID, and c_lacks().
 */
static int body_default_workers(void)
{
	struct vhost_vring_worker g;
	struct wscan s;
	int on, r;

	if (!W.ours) {
		r = w_fresh(TASK);
		if (r == R_PASS)
			r = c_one_worker(false);
		if (r == R_PASS)
			EXPECT(w_get(D.vfd, UINT32_MAX, &g), ENOBUFS, "GET_VRING_WORKER {0xffffffff}");
		return r == R_PASS ? c_lacks() : r;
	}
	for (on = 0; on < 2; on++) {
		if (split_set(on))
			return R_FAIL;
		r = w_fresh(TASK);
		if (r != R_PASS)
			return r;
		if (split_set(!on) || check_state(0, on, on ? 3 : 1, false))
			return R_FAIL;
		EXPECT(w_get(D.vfd, 2, &g), ENOBUFS, "GET_VRING_WORKER {2}");
		EXPECT(w_get(D.vfd, UINT32_MAX, &g), ENOBUFS, "GET_VRING_WORKER {0xffffffff}");
		dev_close(&D);
		if (wait_workers(W.pid, false, 0, &s))
			return R_FAIL;
		ktap_diag("%s: split_workers=%s at SET_OWNER: RX on worker 0, TX on worker %d", W.name,
			  on ? "Y" : "N", on);
	}
	return R_PASS;
}

/*
 * NEW_WORKER gives the lowest free id: 1..15 after split_workers=N, each a thread named for
 * it; the one that would make a 17th worker fails ENOMEM and makes no thread; freed ids are
 * given again, lowest first. vhost_net.ko: ENOTTY, no thread.
 */
static int body_new_worker(void)
{
	uint32_t i, id;
	int r;

	r = w_start(false);
	if (r != R_PASS)
		return r;
	if (!W.ours)
		return c_plain();
	for (i = 1; i < MAXW; i++)
		if (new_is(i))
			return R_FAIL;
	if (check_state(0, 0, ALLW, false))
		return R_FAIL;
	EXPECT(w_new(D.vfd, &id), ENOMEM, "NEW_WORKER with 16 workers");
	if (check_state(0, 0, ALLW, false))
		return R_FAIL;
	EXPECT(w_free(D.vfd, 5), 0, "FREE_WORKER {5}");
	if (check_state(0, 0, ALLW & ~(1u << 5), false) || new_is(5))
		return R_FAIL;
	EXPECT(w_free(D.vfd, 9), 0, "FREE_WORKER {9}");
	EXPECT(w_free(D.vfd, 3), 0, "FREE_WORKER {3}");
	if (new_is(3) || new_is(9))
		return R_FAIL;
	EXPECT(w_new(D.vfd, &id), ENOMEM, "NEW_WORKER with 16 workers, again");
	return check_state(0, 0, ALLW, false);
}

/*
 * FREE_WORKER: an id never made or freed already: ENODEV; a worker a queue is on: EBUSY;
 * otherwise 0, and its thread goes. Worker 0 too, once no queue is on it; NEW_WORKER then
 * gives 0 again. vhost_net.ko: ENOTTY (ENOBUFS for ids >= 2, c_errno()).
 */
static int body_free_worker(void)
{
	int r;

	r = w_start(true);
	if (r != R_PASS)
		return r;
	if (!W.ours) {
		if (c_lacks())
			return R_FAIL;
		EXPECT(w_free(D.vfd, 99), ENOBUFS, "FREE_WORKER {99} (owner)");
		return c_one_worker(false);
	}
	if (check_state(0, 1, 3, false))
		return R_FAIL;
	EXPECT(w_free(D.vfd, 2), ENODEV, "FREE_WORKER {2} (never made)");
	EXPECT(w_free(D.vfd, 16), ENODEV, "FREE_WORKER {16}");
	EXPECT(w_free(D.vfd, UINT32_MAX), ENODEV, "FREE_WORKER {0xffffffff}");
	EXPECT(w_free(D.vfd, 0), EBUSY, "FREE_WORKER {0} (RX is on it)");
	EXPECT(w_free(D.vfd, 1), EBUSY, "FREE_WORKER {1} (TX is on it)");
	if (new_is(2))
		return R_FAIL;
	EXPECT(w_free(D.vfd, 2), 0, "FREE_WORKER {2} (no queue on it)");
	if (check_state(0, 1, 3, false))
		return R_FAIL;
	EXPECT(w_free(D.vfd, 2), ENODEV, "FREE_WORKER {2} (freed already)");
	if (new_is(2))
		return R_FAIL;
	EXPECT(w_attach(D.vfd, 1, 2), 0, "ATTACH_VRING_WORKER {1, 2}");
	EXPECT(w_free(D.vfd, 1), 0, "FREE_WORKER {1} (TX moved off it)");
	EXPECT(w_free(D.vfd, 2), EBUSY, "FREE_WORKER {2} (TX is on it)");
	if (check_state(0, 2, 5, false))
		return R_FAIL;
	EXPECT(w_attach(D.vfd, 0, 2), 0, "ATTACH_VRING_WORKER {0, 2}");
	EXPECT(w_free(D.vfd, 0), 0, "FREE_WORKER {0} (RX moved off it)");
	if (check_state(2, 2, 4, false) || new_is(0))
		return R_FAIL;
	return check_state(2, 2, 5, false);
}

/*
 * ATTACH_VRING_WORKER: a queue past the two: ENOBUFS, whatever the worker (the index is
 * checked first, as vhost.c does); a worker never made: ENODEV; else 0, GET_VRING_WORKER
 * and fdinfo follow, attaching a queue to its own worker again included. vhost_net.ko:
 * ENOTTY, ENOBUFS for queues past the two.
 */
static int body_attach_worker(void)
{
	struct vhost_vring_worker g;
	int r;

	r = w_start(false);
	if (r != R_PASS)
		return r;
	EXPECT(w_attach(D.vfd, UINT32_MAX, 0), W.ours ? ENOBUFS : c_errno(UINT32_MAX),
	       "ATTACH_VRING_WORKER {0xffffffff, 0}");
	EXPECT(w_attach(D.vfd, 2, 99), W.ours ? ENOBUFS : c_errno(2), "ATTACH_VRING_WORKER {2, 99}");
	if (!W.ours)
		return c_plain();
	EXPECT(w_attach(D.vfd, 2, 0), ENOBUFS, "ATTACH_VRING_WORKER {2, 0}");
	EXPECT(w_attach(D.vfd, 0, 1), ENODEV, "ATTACH_VRING_WORKER {0, 1} (no worker 1)");
	EXPECT(w_attach(D.vfd, 1, 15), ENODEV, "ATTACH_VRING_WORKER {1, 15}");
	EXPECT(w_attach(D.vfd, 0, UINT32_MAX), ENODEV, "ATTACH_VRING_WORKER {0, 0xffffffff}");
	if (check_state(0, 0, 1, false) || new_is(1))
		return R_FAIL;
	EXPECT(w_attach(D.vfd, 1, 1), 0, "ATTACH_VRING_WORKER {1, 1}");
	if (check_state(0, 1, 3, false))
		return R_FAIL;
	EXPECT(w_attach(D.vfd, 1, 1), 0, "ATTACH_VRING_WORKER {1, 1} (where it is already)");
	EXPECT(w_attach(D.vfd, 0, 1), 0, "ATTACH_VRING_WORKER {0, 1}");
	if (check_state(1, 1, 3, false))
		return R_FAIL;
	EXPECT(w_attach(D.vfd, 0, 0), 0, "ATTACH_VRING_WORKER {0, 0}");
	EXPECT(w_attach(D.vfd, 1, 0), 0, "ATTACH_VRING_WORKER {1, 0}");
	EXPECT(w_get(D.vfd, 2, &g), ENOBUFS, "GET_VRING_WORKER {2}");
	return check_state(0, 0, 3, false);
}

/*
 * fdinfo with four workers and the queues on neither default one: each queue's line names
 * its worker, a line per live worker gives its tid, the thread /proc names for that id;
 * after two are freed their lines go. vhost_net.ko has no queue or worker lines.
 */
static int body_fdinfo(void)
{
	struct fdi fi;
	int r, id;

	r = w_start(true);
	if (r != R_PASS)
		return r;
	if (!W.ours) {
		if (fdinfo_read(D.vfd, &fi))
			return R_FAIL;
		if (fi.nvq[0] || fi.nvq[1] || fi.mask)
			FAIL("%s: fdinfo has queue or worker lines: vhost_net.ko has no show_fdinfo",
			     W.name);
		return c_plain();
	}
	if (new_is(2) || new_is(3))
		return R_FAIL;
	EXPECT(w_attach(D.vfd, 0, 3), 0, "ATTACH_VRING_WORKER {0, 3}");
	EXPECT(w_attach(D.vfd, 1, 2), 0, "ATTACH_VRING_WORKER {1, 2}");
	if (check_state(3, 2, 0xf, false))
		return R_FAIL;
	EXPECT(w_free(D.vfd, 0), 0, "FREE_WORKER {0}");
	EXPECT(w_free(D.vfd, 1), 0, "FREE_WORKER {1}");
	if (check_state(3, 2, 0xc, false) || fdinfo_read(D.vfd, &fi))
		return R_FAIL;
	for (id = 2; id < 4; id++)
		ktap_diag("%s: fdinfo: worker %d: tid %d", W.name, id, fi.tid[id]);
	if (fi.tid[2] == fi.tid[3])
		FAIL("%s: workers 2 and 3 share tid %d", W.name, fi.tid[2]);
	return R_PASS;
}

/*
 * FORK_FROM_OWNER 0: the workers are kthreads (parent kthreadd), none a thread of the owner,
 * named as in task mode; split_workers=Y still makes two; NEW_WORKER: EFAULT (vhost.c: a
 * kthread is not charged to the owner's NPROC). Frames move both ways; TX moved onto worker
 * 0 and worker 1 freed, they still do. vhost_net.ko: one kthread vhost-PID, ENOTTY (its
 * ioctl never reaches vhost_worker_ioctl()'s EFAULT), frames both ways.
 */
static int body_kthread(void)
{
	uint32_t id;
	int r;

	r = flow_setup(KTHREAD);
	if (r != R_PASS)
		return r;
	if (!W.ours) {
		r = c_lacks();
		if (r == R_PASS)
			r = c_one_worker(true);
		pkt_drain(T.cap);
		return r == R_PASS ? dev_txrx(&D, T.cap, T.snd, T.t.ifindex, NULL, 0x61000) : r;
	}
	EXPECT(w_new(D.vfd, &id), EFAULT, "NEW_WORKER in kthread mode");
	if (check_state(0, 1, 3, true))
		return R_FAIL;
	pkt_drain(T.cap);
	if (dev_txrx(&D, T.cap, T.snd, T.t.ifindex, NULL, 0x61000))
		return R_FAIL;
	EXPECT(w_attach(D.vfd, 1, 0), 0, "ATTACH_VRING_WORKER {1, 0} in kthread mode");
	EXPECT(w_free(D.vfd, 1), 0, "FREE_WORKER {1} in kthread mode");
	if (check_state(0, 0, 1, true))
		return R_FAIL;
	return dev_txrx(&D, T.cap, T.snd, T.t.ifindex, NULL, 0x62000);
}

/*
 * RESET_OWNER stops every worker (their threads go); then the seven calls() give EINVAL on
 * ours (no owner) until SET_OWNER, which makes the workers split_workers now says, ids from
 * 0 again. Closing the file leaves no worker thread. vhost_net.ko: EPERM after the reset,
 * one worker before and after, gone at the reset and at the close.
 */
static int body_reset_owner(void)
{
	struct wscan s;
	struct fdi fi;
	int r;

	r = w_start(true);
	if (r != R_PASS)
		return r;
	if (W.ours && (new_is(2) || check_state(0, 1, 7, false)))
		return R_FAIL;
	if (!W.ours && c_one_worker(false))
		return R_FAIL;
	if (ioctl(D.vfd, VHOST_RESET_OWNER) < 0)
		FAIL("%s: VHOST_RESET_OWNER: %s", W.name, errno_name(errno));
	if (no_owner_calls("after RESET_OWNER"))
		return R_FAIL;
	if (W.ours) {
		if (fdinfo_read(D.vfd, &fi))
			return R_FAIL;
		if (fi.mask)
			FAIL("%s: fdinfo has worker lines after RESET_OWNER", W.name);
		if (split_set(false))
			return R_FAIL;
	}
	r = w_own(TASK);
	if (r != R_PASS)
		return r;
	if (W.ours && (check_state(0, 0, 1, false) || new_is(1) || check_state(0, 0, 3, false)))
		return R_FAIL;
	if (!W.ours && (c_one_worker(false) || c_lacks()))
		return R_FAIL;
	dev_close(&D);
	return wait_workers(W.pid, false, 0, &s);
}

/* ---- the owner SIGKILLed ---------------------------------------------------------------- */

static int wait_byte(int rfd, int ms)
{
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) <= 0)
		return -1;
	return read(rfd, &c, 1) == 1 ? 0 : -1;
}

/*
 * The child owner: D on T in @mode; ours in task mode with workers 2 and 3 made and RX on 2,
 * TX on 3. TX and RX forever; 'k' on @wfd once 20 TX frames were used. Exits 2 if the setup
 * failed, 3 if the worker ioctls did, 4 if NEW_WORKER gave not the errno expected, 5..8 on
 * traffic errors.
 */
static void __attribute__((noreturn)) killed_child(uint8_t mode, int wfd)
{
	static uint8_t f[SLOT];
	uint32_t id, seq = 0;
	int used = 0, n;
	bool told = false;

	alarm(60);
	if (dev_up(&D, W.path, 0, mode, T.t.fd))
		_exit(2);
	if (W.ours && mode == TASK) {
		if (w_new(D.vfd, &id) || id != 2 || w_new(D.vfd, &id) || id != 3 ||
		    w_attach(D.vfd, 0, 2) || w_attach(D.vfd, 1, 3))
			_exit(3);
	} else if (w_new(D.vfd, &id) != (W.ours ? EFAULT : ENOTTY)) {
		_exit(4);
	}
	if (dev_rx_post(&D, 64))
		_exit(5);
	for (;;) {
		while (D.tx.nfree > 1) {
			frame_eth_seq(f, 200, 0x100000 + seq++, NULL);
			if (dev_tx_add(&D, f, 200) < 0)
				break;
		}
		vr_kick(&D.tx);
		n = dev_tx_reclaim(&D);
		if (n < 0)
			_exit(6);
		used += n;
		while ((n = dev_rx_take(&D, f, sizeof(f))) > 0)
			dev_rx_post(&D, 1);
		if (n < 0)
			_exit(7);
		if (!told && used >= 20) {
			if (write(wfd, "k", 1) != 1)
				_exit(8);
			told = true;
		}
		sleep_ms(1);
	}
}

/*
 * A child owns the device (split_workers=Y), with several workers on ours, and moves frames
 * both ways; SIGKILLed, it must go, and its worker threads with it (kthreads too, in kthread
 * mode); the kernel log stays clean (wcase()), and a fresh device on a fresh tap moves frames.
 */
static int owner_killed(uint8_t mode)
{
	static uint8_t f[SLOT];
	bool kt = mode == KTHREAD;
	unsigned int mask = !W.ours ? 1 : kt ? 3 : 0xf, i;
	int r, pfd[2], st;
	struct wscan s;
	pid_t pid;

	r = tapc_create(&T, 0, 1500);
	if (r != R_PASS)
		return r;
	if (kt) {
		/* Without FORK_FROM_OWNER control the child could not say why: ask here. */
		r = w_fresh(KTHREAD);
		dev_close(&D);
		if (r != R_PASS)
			return r;
		if (wait_workers(W.pid, kt, 0, &s))
			return R_FAIL;
	}
	if (W.ours && split_set(true))
		return R_FAIL;
	if (fork_pipe(pfd, &pid))
		return R_FAIL;
	if (!pid) {
		close(pfd[0]);
		killed_child(mode, pfd[1]);
	}
	r = wait_byte(pfd[0], 20000);
	close(pfd[0]);
	if (r) {
		st = wait_child(pid, 100);
		kill(pid, SIGKILL);
		wait_child(pid, 10000);
		FAIL("%s: the owner child's TX did not get going within 20 s (%s %d)", W.name,
		     st < 0 ? "running" : "exited, status", WIFEXITED(st) ? WEXITSTATUS(st) : st);
	}
	for (i = 0; i < 200; i++) {
		frame_eth_seq(f, 300, 0x200000 + i, NULL);
		pkt_send(T.snd, T.t.ifindex, f, 300);
	}
	if (wait_workers(pid, kt, mask, &s)) {
		kill(pid, SIGKILL);
		wait_child(pid, 10000);
		return R_FAIL;
	}
	kill(pid, SIGKILL);
	st = wait_child(pid, 20000);
	if (st < 0)
		FAIL("%s: the SIGKILLed owner did not exit within 20 s", W.name);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		FAIL("%s: the owner ended with status %#x, not by SIGKILL", W.name, st);
	if (wait_workers(pid, kt, 0, &s))
		FAIL("%s: worker threads of the killed owner %d remain", W.name, pid);
	ktap_diag("%s: the owner %d, killed with workers %s moving frames, left no thread", W.name,
		  pid, kt ? "(kthreads)" : "(its threads)");
	if (!W.ours)
		ktap_diag("%s: differs on purpose: vhost_net.ko does not wire vhost.c's worker ioctls "
			  "(the owner's NEW_WORKER: ENOTTY), one worker", W.name);
	r = tapc_create(&T2, 0, 1500);
	if (r == R_PASS)
		r = dev_up(&D, W.path, 1, TASK, T2.t.fd);
	return r == R_PASS ? dev_txrx(&D, T2.cap, T2.snd, T2.t.ifindex, NULL, 0x63000) : r;
}

static int body_owner_killed(void)
{
	return owner_killed(TASK);
}

static int body_owner_killed_kthread(void)
{
	return owner_killed(KTHREAD);
}

/* ---- allocation failures in worker creation -------------------------------------------- */

/*
 * A call under fault injection, for fault_runs(): @prep readies a fresh device up to the call
 * (R_PASS, or what ends the case); @call makes it (0 or an errno); @after checks the device
 * after it gave @e, its allocation @n failing.
 */
struct fault_call {
	const char *name;
	int (*prep)(void);
	int (*call)(void);
	int (*after)(int e, int n);
};

/*
 * @fc's call with its Nth allocation failing, N = 1.. until it makes no more: it may fail only
 * if a failure was injected; fc->after() checks the device, whose close leaves no thread. How
 * many failures were injected into *@inj.
 */
static int fault_runs(const struct fault_call *fc, int *inj)
{
	int r, n, e, errs = 0, coped = 0;
	char errnos[128] = "";
	struct wscan s;
	bool fired;

	*inj = 0;
	for (n = 1;; n++) {
		if (n > NTH_MAX)
			FAIL("%s: %s still meets an injected failure at allocation %d", W.name,
			     fc->name, n);
		r = fc->prep();
		if (r != R_PASS)
			return r;
		fail_nth(n);
		e = fc->call();
		fired = fail_nth_fired();
		if (!fired && e)
			FAIL("%s: %s failed (%s) with no fault injected", W.name, fc->name,
			     errno_name(e));
		if (e) {
			errs++;
			note_errno(errnos, sizeof(errnos), e);
		} else {
			coped += fired;
		}
		*inj += fired;
		if (fc->after(e, n))
			return R_FAIL;
		dev_close(&D);
		if (wait_workers(W.pid, false, 0, &s))
			return R_FAIL;
		if (!fired)
			break;
	}
	ktap_diag("%s: %s: %d failures injected: %d returned an error (%s), %d coped", W.name,
		  fc->name, *inj, errs, errnos[0] ? errnos : "none", coped);
	return R_PASS;
}

static int set_owner_prep(void)
{
	return w_reopen(TASK);
}

static int set_owner_call(void)
{
	return ioctl(D.vfd, VHOST_SET_OWNER) < 0 ? errno : 0;
}

/* A failed SET_OWNER leaves no worker thread, and SET_OWNER again works. */
static int set_owner_after(int e, int n)
{
	struct wscan s;

	if (e) {
		if (wait_workers(W.pid, false, 0, &s))
			FAIL("%s: SET_OWNER, failing (%s) at allocation %d, left worker threads",
			     W.name, errno_name(e), n);
		if (ioctl(D.vfd, VHOST_SET_OWNER) < 0)
			FAIL("%s: SET_OWNER after a failure injected at allocation %d: %s", W.name,
			     n, errno_name(errno));
	}
	if (W.ours ? check_state(0, 1, 3, false) : c_one_worker(false)) {
		ktap_diag("%s: after SET_OWNER met a failure at allocation %d", W.name, n);
		return R_FAIL;
	}
	return R_PASS;
}

static uint32_t fault_id;	/* what NEW_WORKER gave under fault injection */

static int new_worker_prep(void)
{
	return w_fresh(TASK);
}

static int new_worker_call(void)
{
	fault_id = UINT32_MAX;
	return w_new(D.vfd, &fault_id);
}

/* After a failed NEW_WORKER the workers are as before, and it works again. */
static int new_worker_after(int e, int n)
{
	if (e) {
		if (check_state(0, 1, 3, false)) {
			ktap_diag("%s: after NEW_WORKER failed (%s) at allocation %d", W.name,
				  errno_name(e), n);
			return R_FAIL;
		}
		if (new_is(2))
			return R_FAIL;
	} else if (fault_id != 2) {
		FAIL("%s: NEW_WORKER gave id %u, expected 2", W.name, fault_id);
	}
	return check_state(0, 1, 7, false);
}

/*
 * SET_OWNER (split_workers=Y: two workers on ours) with its Nth allocation failing, N = 1..
 * until it makes no more: it fails with an errno and leaves no worker thread, and SET_OWNER
 * again works; or it copes; either way the workers are then as without the failure. The same
 * for NEW_WORKER on ours (vhost_net.ko: ENOTTY). Each device closed leaves no thread.
 */
static int body_fault(void)
{
	static const struct fault_call set_owner = {
		"SET_OWNER", set_owner_prep, set_owner_call, set_owner_after,
	};
	static const struct fault_call new_worker = {
		"NEW_WORKER", new_worker_prep, new_worker_call, new_worker_after,
	};
	int r, inj;

	r = fail_nth_open();
	if (r != R_PASS)
		return r;
	if (W.ours && split_set(true))
		return R_FAIL;
	r = fault_runs(&set_owner, &inj);
	if (r != R_PASS)
		return r;
	if (!inj)
		FAIL("%s: no failure was ever injected into SET_OWNER: fault injection does not reach "
		     "the device", W.name);
	if (!W.ours) {
		r = w_fresh(TASK);
		return r == R_PASS ? c_lacks() : r;
	}
	r = fault_runs(&new_worker, &inj);
	if (r != R_PASS)
		return r;
	if (!inj)
		FAIL("%s: no failure was ever injected into NEW_WORKER", W.name);
	return R_PASS;
}

/* ---- traffic on split workers ----------------------------------------------------------- */

/*
 * split_workers=Y: RX on worker 0 and TX on worker 1, two threads with different tids
 * (fdinfo and /proc agree); 3 s and at least 2000 frames each way at once, all arriving in
 * order, and each worker thread was woken during them. vhost_net.ko: the same traffic on its
 * one worker, and c_lacks().
 */
static int body_traffic_split(void)
{
	long long s0[2], s1[2];
	struct flow fl = { 0 };
	struct fdi fi;
	int r, id, n = W.ours ? 2 : 1;

	r = flow_setup(TASK);
	if (r != R_PASS)
		return r;
	if (W.ours) {
		if (check_state(0, 1, 3, false) || fdinfo_read(D.vfd, &fi))
			return R_FAIL;
		if (fi.tid[0] == fi.tid[1])
			FAIL("%s: RX and TX workers share tid %d", W.name, fi.tid[0]);
	} else {
		struct wscan s;

		if (c_lacks() || wait_workers(W.pid, false, 1, &s))
			return R_FAIL;
		fi.tid[0] = s.tid[0];
	}
	for (id = 0; id < n; id++)
		s0[id] = sleeps(fi.tid[id]);
	pkt_drain(T.cap);
	if (flow_run(&fl, 3000, 2000))
		return R_FAIL;
	for (id = 0; id < n; id++) {
		s1[id] = sleeps(fi.tid[id]);
		if (s0[id] < 0 || s1[id] <= s0[id])
			FAIL("%s: worker %d (tid %d) never slept and woke during the traffic "
			     "(voluntary_ctxt_switches %lld, then %lld)", W.name, id, fi.tid[id], s0[id],
			     s1[id]);
	}
	ktap_diag("%s: %u TX and %u RX frames at once, in order; %s", W.name, fl.tx_sent,
		  fl.rx_sent, W.ours ? "RX on worker 0, TX on worker 1" : "on its one worker");
	return W.ours ? check_state(0, 1, 3, false) : R_PASS;
}

struct mover {
	volatile int stop;
	int calls, bad;
	uint32_t last;
	char what[160];
};

/* Moves TX between workers 0, 1 and 2 until told to stop; each ATTACH must succeed. */
static void *mover_thread(void *arg)
{
	struct mover *m = arg;

	while (!m->stop) {
		uint32_t id = m->calls % 3;
		int e = w_attach(D.vfd, 1, id), want = W.ours ? 0 : ENOTTY;

		if (e != want && !m->bad++)
			snprintf(m->what, sizeof(m->what), "ATTACH_VRING_WORKER {1, %u}: %s, expected %s",
				 id, errno_name(e), errno_name(want));
		if (!e)
			m->last = id;
		m->calls++;
		sleep_ms(m->calls % 3);
	}
	return NULL;
}

/*
 * Ours, split_workers=Y and a third worker: a thread moves TX between workers 0, 1 and 2
 * (each ATTACH 0) while frames flow both ways for 4 s; every frame arrives, in order, and
 * TX ends where it was moved last. vhost_net.ko: every ATTACH says ENOTTY, the frames flow.
 */
static int body_attach_traffic(void)
{
	struct mover m = { 0 };
	struct flow fl = { 0 };
	pthread_t th;
	int r;

	r = flow_setup(TASK);
	if (r != R_PASS)
		return r;
	if (W.ours && new_is(2))
		return R_FAIL;
	m.last = 1;
	pkt_drain(T.cap);
	if (pthread_create(&th, NULL, mover_thread, &m))
		FAIL("pthread_create: %s", strerror(errno));
	r = flow_run(&fl, 4000, 2000);
	m.stop = 1;
	pthread_join(th, NULL);
	if (r != R_PASS)
		return r;
	ktap_diag("%s: %d ATTACH_VRING_WORKER calls on TX while %u TX and %u RX frames went, in "
		  "order", W.name, m.calls, fl.tx_sent, fl.rx_sent);
	if (m.bad)
		FAIL("%s: %d of %d moves failed, the first: %s", W.name, m.bad, m.calls, m.what);
	if (!W.ours) {
		ktap_diag("%s: differs on purpose: vhost_net.ko does not wire vhost.c's worker ioctls",
			  W.name);
		return R_PASS;
	}
	if (m.calls < 200)
		FAIL("%s: only %d moves in 4 s", W.name, m.calls);
	return check_state(0, m.last, 7, false);
}

/* ---- the cases as tests of kselftest_harness.h ------------------------------------------ */

/*
 * Runs @body on the device at @path: its files closed after it, split_workers put back;
 * a passing case must leave no worker thread of this process, and the kernel log clean.
 */
static int wcase(const char *path, int (*body)(void))
{
	struct wscan s;
	int r, kfd = kmsg_open();

	W.path = path;
	W.name = strrchr(path, '/') + 1;
	W.ours = strstr(path, "vhost-rs") != NULL;
	W.pid = getpid();
	memset(&D, 0, sizeof(D));
	D.vfd = D.rx.kick = D.rx.call = D.tx.kick = D.tx.call = -1;
	T.t.fd = T.cap = T.snd = T2.t.fd = T2.cap = T2.snd = -1;
	r = body();
	dev_close(&D);
	tapc_close(&T);
	tapc_close(&T2);
	if (W.ours && split_saved[0] && write_file(SPLIT, split_saved)) {
		ktap_diag("%s: could not put split_workers back to %s", W.name, split_saved);
		r = R_FAIL;
	}
	if (r == R_PASS && wait_workers(W.pid, false, 0, &s)) {
		ktap_diag("%s: worker threads left after every file was closed", W.name);
		r = R_FAIL;
	}
	if (kmsg_check(kfd, W.name))
		r = R_FAIL;
	return r;
}

VCASE_FIXTURE(workers, NULL);

#define WCASE(n) VCASE_BODY(workers, wcase, n)

WCASE(pre_owner)
WCASE(not_owner)
WCASE(default_workers)
WCASE(new_worker)
WCASE(free_worker)
WCASE(attach_worker)
WCASE(fdinfo)
WCASE(kthread)
WCASE(reset_owner)
WCASE(owner_killed)
WCASE(owner_killed_kthread)
WCASE(fault)
WCASE(traffic_split)
WCASE(attach_traffic)

/* TEST_HARNESS_MAIN, with split_workers noted first and put back at exit (after a timeout). */
int main(int argc, char **argv)
{
	if (read_line(SPLIT, split_saved, sizeof(split_saved)))
		split_saved[0] = 0;
	atexit(split_restore);
	return test_harness_run(argc, argv);
}
