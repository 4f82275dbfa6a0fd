// SPDX-License-Identifier: GPL-2.0
/*
 * Lifecycle and ownership of a vhost-net device, differential: every case runs against each
 * device path given on the command line (default /dev/vhost-net /dev/vhost-rs-net), and the
 * same assertions hold for the C reference and for ours. Prints KTAP.
 *
 * Cases: open/close churn, SET_OWNER churn (a worker created and destroyed each time), two
 * processes racing SET_OWNER on one shared file, a second thread of the owner acting as the
 * owner, the owner's file surviving a child that held it and exited, 64 owned devices at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>

static int n_pass, n_fail, n_skip, n_test;
static char failmsg[512];

/* Records why a case failed; the first reason wins, the case returns -1. */
static int fail(const char *fmt, ...)
{
	va_list ap;

	if (!failmsg[0]) {
		va_start(ap, fmt);
		vsnprintf(failmsg, sizeof(failmsg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

#define CHECK(cond, ...) do { if (!(cond)) return fail(__VA_ARGS__); } while (0)

static int open_dev(const char *path)
{
	return open(path, O_RDWR | O_CLOEXEC);
}

/* ioctl returning 0 or -errno, so results can be compared and sent through pipes. */
static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

static int set_vring_num(int fd, unsigned int index, unsigned int num)
{
	struct vhost_vring_state s = { .index = index, .num = num };

	return xioctl(fd, VHOST_SET_VRING_NUM, &s);
}

static int set_empty_mem_table(int fd)
{
	struct vhost_memory mem = { .nregions = 0 };

	return xioctl(fd, VHOST_SET_MEM_TABLE, &mem);
}

/* --- cases ------------------------------------------------------------------------------ */

static int t_open_close_1000(const char *dev)
{
	for (int i = 0; i < 1000; i++) {
		int fd = open_dev(dev);

		CHECK(fd >= 0, "open #%d: %s", i, strerror(errno));
		CHECK(close(fd) == 0, "close #%d: %s", i, strerror(errno));
	}
	return 0;
}

static int t_set_owner_1000(const char *dev)
{
	for (int i = 0; i < 1000; i++) {
		int fd = open_dev(dev), r;

		CHECK(fd >= 0, "open #%d: %s", i, strerror(errno));
		r = xioctl(fd, VHOST_SET_OWNER, NULL);
		close(fd);
		CHECK(r == 0, "SET_OWNER #%d: %s", i, strerror(-r));
	}
	return 0;
}

/* Both processes meet here, then call SET_OWNER at once: a spin barrier on shared memory
 * starts them closer together than a pipe wake-up would. */
struct barrier {
	int arrived;
	int round;
};

static int barrier_wait(struct barrier *b, int round)
{
	struct timespec t0, t;

	__atomic_add_fetch(&b->arrived, 1, __ATOMIC_SEQ_CST);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (__atomic_load_n(&b->arrived, __ATOMIC_SEQ_CST) < 2 * round) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 30)
			return -1;
	}
	return 0;
}

/* The child side of one race round: results go back as {set_owner, set_mem_table}. */
static void race_child(int fd, struct barrier *b, int round, int wfd)
{
	int res[2] = { -EINTR, 1 };

	if (barrier_wait(b, round) == 0) {
		res[0] = xioctl(fd, VHOST_SET_OWNER, NULL);
		res[1] = res[0] ? set_empty_mem_table(fd) : 1;
	}
	if (write(wfd, res, sizeof(res)) != sizeof(res))
		_exit(2);
	_exit(0);
}

static int race_round(const char *dev, struct barrier *b, int round, int *child_won)
{
	int pfd[2], fd, mine, theirs[2] = { 0, 0 }, status;
	pid_t pid;
	ssize_t n;

	fd = open_dev(dev);
	CHECK(fd >= 0, "round %d: open: %s", round, strerror(errno));
	if (pipe(pfd)) {
		close(fd);
		return fail("pipe: %s", strerror(errno));
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(fd);
		return fail("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(pfd[0]);
		race_child(fd, b, round, pfd[1]);
	}
	close(pfd[1]);
	if (barrier_wait(b, round)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(fd);
		close(pfd[0]);
		return fail("round %d: child never reached the barrier", round);
	}
	mine = xioctl(fd, VHOST_SET_OWNER, NULL);
	n = read(pfd[0], theirs, sizeof(theirs));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (n != sizeof(theirs) || theirs[0] == -EINTR) {
		close(fd);
		return fail("round %d: no result from the child", round);
	}
	if (mine == 0 && theirs[0] == -EBUSY) {
		/* We own it: the child (another mm) was refused. */
		if (theirs[1] != -EPERM) {
			close(fd);
			return fail("round %d: loser (child) SET_MEM_TABLE gave %d, want -EPERM",
				    round, theirs[1]);
		}
	} else if (mine == -EBUSY && theirs[0] == 0) {
		int r = set_empty_mem_table(fd);

		++*child_won;
		if (r != -EPERM) {
			close(fd);
			return fail("round %d: loser (parent) SET_MEM_TABLE gave %d, want -EPERM",
				    round, r);
		}
	} else {
		close(fd);
		return fail("round %d: SET_OWNER results parent %d, child %d; want one 0 and one -EBUSY",
			    round, mine, theirs[0]);
	}
	close(fd);
	return 0;
}

static int t_owner_race_200(const char *dev)
{
	struct barrier *b;
	int child_won = 0, r = 0;

	b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(b != MAP_FAILED, "mmap: %s", strerror(errno));
	memset(b, 0, sizeof(*b));
	for (int round = 1; round <= 200 && r == 0; round++)
		r = race_round(dev, b, round, &child_won);
	munmap(b, sizeof(*b));
	if (r == 0)
		printf("# owner_race_200: child won %d of 200, parent %d\n", child_won,
		       200 - child_won);
	return r;
}

struct thread_arg {
	int fd;
	int vring_num;
	int set_owner;
};

static void *owner_thread(void *p)
{
	struct thread_arg *a = p;

	a->vring_num = set_vring_num(a->fd, 0, 256);
	a->set_owner = xioctl(a->fd, VHOST_SET_OWNER, NULL);
	return NULL;
}

static int t_thread_is_owner(const char *dev)
{
	struct thread_arg a = { .vring_num = 1, .set_owner = 1 };
	pthread_t th;
	int r;

	a.fd = open_dev(dev);
	CHECK(a.fd >= 0, "open: %s", strerror(errno));
	r = set_vring_num(a.fd, 0, 256);
	if (r != -EPERM) {
		close(a.fd);
		return fail("SET_VRING_NUM before SET_OWNER gave %d, want -EPERM", r);
	}
	r = xioctl(a.fd, VHOST_SET_OWNER, NULL);
	if (r) {
		close(a.fd);
		return fail("SET_OWNER: %s", strerror(-r));
	}
	r = pthread_create(&th, NULL, owner_thread, &a);
	if (r) {
		close(a.fd);
		return fail("pthread_create: %s", strerror(r));
	}
	pthread_join(th, NULL);
	close(a.fd);
	CHECK(a.vring_num == 0, "SET_VRING_NUM from a second thread gave %d, want 0", a.vring_num);
	CHECK(a.set_owner == -EBUSY, "SET_OWNER again from a second thread gave %d, want -EBUSY",
	      a.set_owner);
	return 0;
}

static int t_child_exits_with_fd(const char *dev)
{
	int fd, r, status, pfd[2], child_r = 1;
	pid_t pid;

	fd = open_dev(dev);
	CHECK(fd >= 0, "open: %s", strerror(errno));
	r = xioctl(fd, VHOST_SET_OWNER, NULL);
	if (r || pipe(pfd)) {
		close(fd);
		return fail("SET_OWNER or pipe failed: %d", r);
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(fd);
		return fail("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* The child holds its own reference to the file (and a dup), is not the owner,
		 * and exits without closing anything. */
		int dupfd = dup(fd);

		close(pfd[0]);
		child_r = set_vring_num(dupfd, 0, 128);
		if (write(pfd[1], &child_r, sizeof(child_r)) != sizeof(child_r))
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &child_r, sizeof(child_r)) != sizeof(child_r))
		child_r = 1;
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		close(fd);
		return fail("child exited abnormally (status 0x%x)", status);
	}
	if (child_r != -EPERM) {
		close(fd);
		return fail("SET_VRING_NUM from the child gave %d, want -EPERM", child_r);
	}
	r = set_vring_num(fd, 0, 256);
	if (r == 0)
		r = set_vring_num(fd, 1, 256);
	if (r == 0)
		r = set_empty_mem_table(fd);
	if (r == 0) {
		__u64 features = 0;

		r = xioctl(fd, VHOST_GET_FEATURES, &features);
	}
	close(fd);
	CHECK(r == 0, "after the child exited, the owner's ioctls failed: %s", strerror(-r));
	return 0;
}

#define MANY 64

static int t_open_64_owned(const char *dev)
{
	int fds[MANY], i, r = 0;

	for (i = 0; i < MANY; i++)
		fds[i] = -1;
	for (i = 0; i < MANY && r == 0; i++) {
		fds[i] = open_dev(dev);
		if (fds[i] < 0) {
			r = fail("open #%d: %s", i, strerror(errno));
			break;
		}
		if ((r = xioctl(fds[i], VHOST_SET_OWNER, NULL)))
			r = fail("SET_OWNER #%d: %s", i, strerror(-r));
	}
	for (i = 0; i < MANY && r == 0; i++)
		if ((r = set_vring_num(fds[i], 0, 256)))
			r = fail("SET_VRING_NUM on #%d: %s", i, strerror(-r));
	for (i = 0; i < MANY; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

/* --- driver ----------------------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(const char *dev);
} cases[] = {
	{ "open_close_1000", t_open_close_1000 },
	{ "set_owner_1000", t_set_owner_1000 },
	{ "owner_race_200", t_owner_race_200 },
	{ "thread_is_owner", t_thread_is_owner },
	{ "child_exits_with_fd", t_child_exits_with_fd },
	{ "open_64_owned", t_open_64_owned },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

int main(int argc, char **argv)
{
	static const char *const defaults[] = { "/dev/vhost-net", "/dev/vhost-rs-net" };
	const char *const *devs = defaults;
	int ndevs = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1) {
		devs = (const char *const *)&argv[1];
		ndevs = argc - 1;
	}
	printf("KTAP version 1\n1..%d\n", (int)(ndevs * NCASES));
	for (int d = 0; d < ndevs; d++) {
		const char *dev = devs[d];
		const char *shortname = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
		int present = access(dev, F_OK) == 0;

		for (size_t c = 0; c < NCASES; c++) {
			n_test++;
			if (!present) {
				n_skip++;
				printf("ok %d %s %s # SKIP %s not present\n", n_test, cases[c].name,
				       shortname, dev);
				continue;
			}
			failmsg[0] = 0;
			if (cases[c].fn(dev) == 0) {
				n_pass++;
				printf("ok %d %s %s\n", n_test, cases[c].name, shortname);
			} else {
				n_fail++;
				printf("# %s %s: %s\n", cases[c].name, shortname, failmsg);
				printf("not ok %d %s %s\n", n_test, cases[c].name, shortname);
			}
		}
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n", n_pass, n_fail,
	       n_skip);
	return n_fail ? 1 : 0;
}
