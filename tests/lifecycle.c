// SPDX-License-Identifier: GPL-2.0
/*
 * Lifecycle and ownership of a vhost-net device, differential, on the kernel's
 * kselftest_harness.h: the fixture's two variants are the two devices, /dev/vhost-net (the C
 * reference) and /dev/vhost-rs-net (ours), and every test runs on each with the same
 * assertions. A device that is not there skips its tests. Prints TAP (the harness's), one
 * line per test and device, named lifecycle.<device>.<test>; `-v vhost_rs_net` runs one
 * device, `-t <test>` one test, `-l` lists them.
 *
 * Tests: open/close churn, SET_OWNER churn (a worker created and destroyed each time), two
 * processes racing SET_OWNER on one shared file, a second thread of the owner acting as the
 * owner, the owner's file surviving a child that held it and exited, 64 owned devices at once.
 * The devices agree on all of them: no XFAIL_ADD().
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

#include "kselftest_harness.h"

static char failmsg[512];

/* Records why owner_race_200 failed; the first reason wins, the helper returns -1. */
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

/* --- the fixture: one device per variant ------------------------------------------------ */

FIXTURE(lifecycle) {
	const char *dev;
};

FIXTURE_VARIANT(lifecycle) {
	const char *path;
};

FIXTURE_VARIANT_ADD(lifecycle, vhost_net) {
	.path = "/dev/vhost-net",
};

FIXTURE_VARIANT_ADD(lifecycle, vhost_rs_net) {
	.path = "/dev/vhost-rs-net",
};

FIXTURE_SETUP(lifecycle)
{
	if (access(variant->path, F_OK))
		SKIP(return, "%s not present", variant->path);
	self->dev = variant->path;
}

FIXTURE_TEARDOWN(lifecycle)
{
}

/*
 * Each test runs in a process of its own, which the harness ends at the first failed ASSERT
 * (and at the timeout, whole process group): what the test opened goes with it.
 */
#define TMO 300	/* s: one test on one device; the harness's default is 30 */

/* --- tests ------------------------------------------------------------------------------ */

TEST_F_TIMEOUT(lifecycle, open_close_1000, TMO)
{
	for (int i = 0; i < 1000; i++) {
		int fd = open_dev(self->dev), e = errno, r;

		ASSERT_LE(0, fd) TH_LOG("open #%d: %s", i, strerror(e));
		r = close(fd) ? -errno : 0;
		ASSERT_EQ(0, r) TH_LOG("close #%d: %s", i, strerror(-r));
	}
}

TEST_F_TIMEOUT(lifecycle, set_owner_1000, TMO)
{
	for (int i = 0; i < 1000; i++) {
		int fd = open_dev(self->dev), e = errno, r;

		ASSERT_LE(0, fd) TH_LOG("open #%d: %s", i, strerror(e));
		r = xioctl(fd, VHOST_SET_OWNER, NULL);
		close(fd);
		ASSERT_EQ(0, r) TH_LOG("SET_OWNER #%d: %s", i, strerror(-r));
	}
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

/* 200 rounds of race_round(); 0, or -1 with the reason in failmsg. */
static int owner_race_200(const char *dev)
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

TEST_F_TIMEOUT(lifecycle, owner_race_200, TMO)
{
	ASSERT_EQ(0, owner_race_200(self->dev)) TH_LOG("%s", failmsg);
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

TEST_F_TIMEOUT(lifecycle, thread_is_owner, TMO)
{
	struct thread_arg a = { .vring_num = 1, .set_owner = 1 };
	pthread_t th;
	int r, e;

	a.fd = open_dev(self->dev);
	e = errno;
	ASSERT_LE(0, a.fd) TH_LOG("open: %s", strerror(e));
	ASSERT_EQ(-EPERM, set_vring_num(a.fd, 0, 256)) TH_LOG("SET_VRING_NUM before SET_OWNER");
	r = xioctl(a.fd, VHOST_SET_OWNER, NULL);
	ASSERT_EQ(0, r) TH_LOG("SET_OWNER: %s", strerror(-r));
	r = pthread_create(&th, NULL, owner_thread, &a);
	ASSERT_EQ(0, r) TH_LOG("pthread_create: %s", strerror(r));
	pthread_join(th, NULL);
	close(a.fd);
	EXPECT_EQ(0, a.vring_num) TH_LOG("SET_VRING_NUM from a second thread");
	EXPECT_EQ(-EBUSY, a.set_owner) TH_LOG("SET_OWNER again from a second thread");
}

TEST_F_TIMEOUT(lifecycle, child_exits_with_fd, TMO)
{
	int fd, r, e, status, pfd[2], child_r = 1;
	__u64 features = 0;
	pid_t pid;

	fd = open_dev(self->dev);
	e = errno;
	ASSERT_LE(0, fd) TH_LOG("open: %s", strerror(e));
	r = xioctl(fd, VHOST_SET_OWNER, NULL);
	ASSERT_EQ(0, r) TH_LOG("SET_OWNER: %s", strerror(-r));
	r = pipe(pfd) ? -errno : 0;
	ASSERT_EQ(0, r) TH_LOG("pipe: %s", strerror(-r));
	fflush(stdout);
	pid = fork();
	e = errno;
	ASSERT_LE(0, pid) TH_LOG("fork: %s", strerror(e));
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
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child exited abnormally (status 0x%x)", status);
	ASSERT_EQ(-EPERM, child_r) TH_LOG("SET_VRING_NUM from the child");
	/* After the child exited, the owner's ioctls work. */
	ASSERT_EQ(0, set_vring_num(fd, 0, 256));
	ASSERT_EQ(0, set_vring_num(fd, 1, 256));
	ASSERT_EQ(0, set_empty_mem_table(fd));
	ASSERT_EQ(0, xioctl(fd, VHOST_GET_FEATURES, &features));
	close(fd);
}

#define MANY 64

TEST_F_TIMEOUT(lifecycle, open_64_owned, TMO)
{
	int fds[MANY], i, r, e;

	for (i = 0; i < MANY; i++) {
		fds[i] = open_dev(self->dev);
		e = errno;
		ASSERT_LE(0, fds[i]) TH_LOG("open #%d: %s", i, strerror(e));
		r = xioctl(fds[i], VHOST_SET_OWNER, NULL);
		ASSERT_EQ(0, r) TH_LOG("SET_OWNER #%d: %s", i, strerror(-r));
	}
	for (i = 0; i < MANY; i++) {
		r = set_vring_num(fds[i], 0, 256);
		ASSERT_EQ(0, r) TH_LOG("SET_VRING_NUM on #%d: %s", i, strerror(-r));
	}
	for (i = 0; i < MANY; i++)
		close(fds[i]);
}

TEST_HARNESS_MAIN
