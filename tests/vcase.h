/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The glue between our test cases and the kernel's kselftest_harness.h, for the programs
 * whose cases run on one device at a time (vhost_data, and those of vhost_case.h).
 *
 * A case is a function of the device's path returning R_PASS, R_FAIL (after diagnostics:
 * FAIL()) or R_SKIP (with skip_reason: CASE_SKIP()). A program makes each case a test of its
 * fixture (VCASE_FIXTURE(): one variant per device, vhost_net and vhost_rs_net) with the same
 * expectations on both; the harness runs every test in a process of its own under a timeout
 * (CASE_TMO_S), and vcase_setup() gives it a network namespace of its own (and a mount
 * namespace with a private sysfs, so that /sys/class/net shows that namespace) and fresh
 * guest memory (guest.h).
 */
#ifndef VCASE_H
#define VCASE_H

#include <sched.h>
#include <stdarg.h>
#include <sys/mount.h>

#include "kselftest_harness.h"
#include "vhost_test.h"
#include "guest.h"

#define CASE_TMO_S 300	/* s: a whole case (TEST_F_TIMEOUT); the harness's default is 30 */

enum { R_PASS, R_FAIL, R_SKIP };

static struct guest G;
static char skip_reason[256];	/* why the case returned R_SKIP */

#define FAIL(...) do { ktap_diag(__VA_ARGS__); return R_FAIL; } while (0)
#define CASE_SKIP(...) do { snprintf(skip_reason, 256, __VA_ARGS__); return R_SKIP; } while (0)

/* Runs a shell command; on failure prints its output as diagnostics. Returns its status. */
static inline int __attribute__((format(printf, 1, 2))) run(const char *fmt, ...)
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

/* The case's own namespaces: a fresh netns, and a private sysfs that shows it. 0, or -1. */
static inline int case_namespaces(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
		ktap_diag("unshare(CLONE_NEWNET | CLONE_NEWNS): %s (must run as root)", strerror(errno));
		return -1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
		ktap_diag("note: private sysfs: %s", strerror(errno));
	/* Our counters are in debugfs, which the new sysfs hides. */
	else if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL) < 0)
		ktap_diag("note: debugfs: %s", strerror(errno));
	sysctl_write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	sysctl_write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	return 0;
}

/* ---- the cases as tests of kselftest_harness.h ---------------------------------------- */

/*
 * A test's FIXTURE_SETUP, in the test's own process: SKIP if the variant's device is not
 * there; else @prepare (if set: it fails the test if it fails), the case's own namespaces
 * and fresh guest memory.
 */
static inline void vcase_setup(struct __test_metadata *_metadata, const char *path,
			       int (*prepare)(void))
{
	int r;

	if (access(path, F_OK))
		SKIP(return, "%s not present", path);
	if (prepare)
		ASSERT_EQ(0, prepare()) TH_LOG("the program's setup failed (see above)");
	ASSERT_EQ(0, case_namespaces());
	r = guest_init(&G);
	ASSERT_EQ(0, r) TH_LOG("guest memory: %s", strerror(-r));
}

/*
 * The fixture @fx of a program's cases: one variant per device, vhost_net (the C reference)
 * and vhost_rs_net (ours), set up by vcase_setup() with @prepare (or NULL).
 */
#define VCASE_FIXTURE(fx, prepare)					\
	FIXTURE(fx) {							\
		const char *path;					\
	};								\
	FIXTURE_VARIANT(fx) {						\
		const char *path;					\
	};								\
	FIXTURE_VARIANT_ADD(fx, vhost_net) {				\
		.path = "/dev/vhost-net",				\
	};								\
	FIXTURE_VARIANT_ADD(fx, vhost_rs_net) {				\
		.path = "/dev/vhost-rs-net",				\
	};								\
	FIXTURE_SETUP(fx)						\
	{								\
		self->path = variant->path;				\
		vcase_setup(_metadata, variant->path, prepare);		\
	}								\
	FIXTURE_TEARDOWN(fx)						\
	{								\
	}

/*
 * A test's body: case @fn on the variant's device, its R_PASS, R_FAIL (with the case's own
 * diagnostics) or R_SKIP (with its reason) as the test's result.
 */
static inline void vcase_run(struct __test_metadata *_metadata, int (*fn)(const char *),
			     const char *path)
{
	long long t0 = now_ms();
	int r;

	skip_reason[0] = 0;
	r = fn(path);
	fflush(stdout);
	if (now_ms() - t0 > 5000)
		ktap_diag("%s took %lld ms", _metadata->name, now_ms() - t0);
	if (r == R_SKIP)
		SKIP(return, "%s", skip_reason);
	ASSERT_EQ(R_PASS, r) TH_LOG("the case failed: its diagnostics are above");
}

#endif /* VCASE_H */
