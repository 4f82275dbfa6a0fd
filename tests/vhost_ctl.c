// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_ctl: differential test of the vhost-net control plane.
 *
 * Every case is an ioctl *sequence*: a function run once on a fresh fd of the
 * reference device (the C vhost-net, /dev/vhost-net) and once on a fresh fd of the device
 * under test (vhost-rs, /dev/vhost-rs-net), in one test of fixture `ctl` of the kernel's
 * kselftest_harness.h (ctl.<sequence>; `-t <sequence>` runs one, `-l` lists them), in the
 * test's own process and network namespace. Each step records the ioctl's return
 * value, errno and the data it returned (out-structs, feature words, bytes the
 * device wrote into guest memory such as used->flags). A case fails when the
 * two traces differ anywhere; the first differing step is printed.
 *
 * Each step also carries the result we expect from reading the C code
 * (drivers/vhost/vhost.c and net.c, Linux 7.3), so that without the DUT the
 * sequences still check the reference against our reading of it: a case then
 * prints "# SKIP" when the reference met every expectation, "not ok" if not.
 *
 * Feature bits: the DUT advertises the reference's bits plus exactly DUT_FEAT0
 * (RING_PACKED, which vhost_net.ko lacks). features_subset checks that and lists
 * what the DUT lacks; every other sequence sets only bits both devices
 * advertise, records GET_FEATURES* results masked to the intersection, and marks
 * the steps that set a bit only one side has as "differs on purpose" (REF-only:
 * REF must succeed, DUT must fail with EOPNOTSUPP; DUT-only: REF must fail with
 * EOPNOTSUPP, DUT must succeed), which the comparison prints instead of hiding.
 *
 * Assumes the test kernel's config: CONFIG_VHOST_CROSS_ENDIAN_LEGACY off (the
 * VRING_ENDIAN ioctls are ENOTTY), CONFIG_VHOST_ENABLE_FORK_OWNER_CONTROL on,
 * vhost module parameters at their defaults (max_mem_regions 64,
 * fork_from_owner_default 1, experimental_zcopytx 0). Needs root (tap devices,
 * raw sockets); runs in its own network namespace, and never brings an
 * interface up, so no packet leaves the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/vhost.h>
#include <linux/virtio_net.h>

#include "kselftest_harness.h"
#include "vhost_test.h"

/* ---- constants --------------------------------------------------------- */

#define PAGE		4096UL
#define GMEM_SIZE	(4UL << 20)	/* guest memory: one memfd */
#define QSZ		256		/* ring size used by the sequences */
#define RING_OFF	0x100000UL	/* rings live at gmem + RING_OFF + q * 0x10000 */
#define LOG_OFF		0x300000UL	/* dirty log buffer inside gmem */
#define PATTERN		0xa5a5a5a5a5a5a5a5ULL
#define NONE_W2		1	/* features_array_get: no expectation for word 2 */
#define NONE		(-1)		/* "no expectation" for an errno */
#define BADFD		9999		/* an fd number that is not open */

/* A null-page pointer and a kernel address: both must give EFAULT on copy. */
#define NULLP		((void *)16)
#define KPTR		((void *)0xffffffff81000000UL)
#define KADDR		0xffffffff81000000ULL

/* Bits of the reference as read in net.c (vhost_net_bits, VHOST_FEATURES in
 * vhost.h): used only as expectations for the reference's GET results. */
#define B(n)		(1ULL << (n))
#define KNOWN_FEAT0	(B(15) | B(24) | B(26) | B(27) | B(28) | B(29) | B(32) | \
			 B(33) | B(35) | B(40))
#define KNOWN_FEAT1	(B(65 - 64) | B(67 - 64))
/* Bits the DUT adds on purpose: VIRTIO_F_RING_PACKED (ring/packed.rs). */
#define DUT_FEAT0	B(34)
#define KNOWN_BFEAT	B(VHOST_BACKEND_F_IOTLB_MSG_V2)
#define F_LOG_ALL	B(VHOST_F_LOG_ALL)
#define F_ACCESS_PLATFORM B(33)

/* Unknown to vhost-net: type 0xAF, nr 0x7f (VDPA_GET_VRING_DESC_GROUP is
 * _IOWR 0x7f; the _IO form is nobody's). */
#define VHOST_UNKNOWN	_IO(VHOST_VIRTIO, 0x7f)

/* ---- traces -------------------------------------------------------------- */

#define MAX_STEPS 400

enum { K_IOCTL, K_VALUE };

struct step {
	char what[100];
	int kind;
	long ret;		/* K_IOCTL */
	int err;		/* K_IOCTL: errno, 0 when ret >= 0 */
	uint64_t val;		/* K_VALUE */
	int exp_err;		/* K_IOCTL: expected errno (0 = success), NONE */
	int has_exp_val;	/* K_VALUE */
	uint64_t exp_val;
	int dut_err;		/* > 0: differs on purpose, DUT must fail so; 0: DUT must succeed */
	int ref_only_val;	/* K_VALUE: REF's value is checked, the DUT's differs on purpose */
};

struct trace {
	int n;
	int overflow;
	struct step s[MAX_STEPS];
};

struct ctx {
	int fd;			/* the vhost device */
	struct trace *t;	/* in MAP_SHARED memory: a forked child appends */
	int xfd[32];		/* helper fds, closed after the sequence */
	int nx;
};

/* ---- global state ------------------------------------------------------ */

static uint8_t *gmem;		/* guest memory (memfd, MAP_SHARED) */
static int gmemfd;
static uint8_t *edge;		/* RW page followed by a PROT_NONE page */
static uint8_t *ro;		/* read-only page: zeros, u64 2 at offset 0x100 */

static uint64_t ref_feat[2], dut_feat[2], com_feat[2];
static uint64_t ref_bfeat, dut_bfeat, com_bfeat;

/* n bytes that end exactly at the guard page */
#define EDGE(n) ((void *)(edge + PAGE - (n)))

static uint64_t uaddr(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* ---- recording ----------------------------------------------------------- */

static struct step *new_step(struct ctx *c, int kind, const char *fmt, va_list ap)
{
	static struct step scratch;
	struct step *s;

	if (c->t->n >= MAX_STEPS) {
		c->t->overflow = 1;
		s = &scratch;
	} else {
		s = &c->t->s[c->t->n++];
	}
	memset(s, 0, sizeof(*s));
	vsnprintf(s->what, sizeof(s->what), fmt, ap);
	s->kind = kind;
	s->exp_err = NONE;
	s->dut_err = NONE;
	return s;
}

static long vio(struct ctx *c, int exp, int dut_err, unsigned long req,
		void *arg, const char *fmt, va_list ap)
{
	struct step *s = new_step(c, K_IOCTL, fmt, ap);
	long r;

	errno = 0;
	r = ioctl(c->fd, req, arg);
	s->ret = r;
	s->err = r < 0 ? errno : 0;
	s->exp_err = exp;
	s->dut_err = dut_err;
	return r;
}

/* One ioctl step; exp is the errno we expect from the reference (0: success). */
static long __attribute__((format(printf, 5, 6)))
io(struct ctx *c, int exp, unsigned long req, void *arg, const char *fmt, ...)
{
	va_list ap;
	long r;

	va_start(ap, fmt);
	r = vio(c, exp, NONE, req, arg, fmt, ap);
	va_end(ap);
	return r;
}

/* An ioctl step where REF and DUT differ on purpose: when ref_only is set, the DUT
 * must fail with dut_err (or succeed, dut_err 0: a bit only the DUT has), else it
 * must match REF as usual. */
static long __attribute__((format(printf, 7, 8)))
io_diff(struct ctx *c, int exp, int ref_only, int dut_err, unsigned long req,
	void *arg, const char *fmt, ...)
{
	va_list ap;
	long r;

	va_start(ap, fmt);
	r = vio(c, exp, ref_only ? dut_err : NONE, req, arg, fmt, ap);
	va_end(ap);
	return r;
}

/* A data step: something the device returned or wrote. */
static void __attribute__((format(printf, 5, 6)))
valx(struct ctx *c, int has_exp, uint64_t exp, uint64_t v, const char *fmt, ...)
{
	va_list ap;
	struct step *s;

	va_start(ap, fmt);
	s = new_step(c, K_VALUE, fmt, ap);
	va_end(ap);
	s->val = v;
	s->has_exp_val = has_exp;
	s->exp_val = exp;
}

/* A value only REF is held to: the DUT writes one on purpose (tests/vhost_workers.c checks
 * the DUT's). */
static void __attribute__((format(printf, 4, 5)))
val_ref(struct ctx *c, uint64_t exp, uint64_t v, const char *fmt, ...)
{
	va_list ap;
	struct step *s;

	va_start(ap, fmt);
	s = new_step(c, K_VALUE, fmt, ap);
	va_end(ap);
	s->val = v;
	s->has_exp_val = 1;
	s->exp_val = exp;
	s->ref_only_val = 1;
}

/* A worker ioctl: vhost_net.ko answers @ref (net.c never calls vhost_worker_ioctl()),
 * ours as vhost.c's vhost_worker_ioctl() does, @dut (0: success). */
#define WIO(c, ref, dut, req, arg)	io_diff(c, ref, (ref) != (dut), dut, req, arg, "%s", #req)

#define VAL(c, v, ...)		valx(c, 0, 0, v, __VA_ARGS__)
#define VALX(c, e, v, ...)	valx(c, 1, e, v, __VA_ARGS__)
#define IO(c, exp, req, arg)	io(c, exp, req, arg, "%s", #req)

/* ---- helper fds ------------------------------------------------------------ */

static int keep(struct ctx *c, int fd)
{
	if (fd >= 0 && c->nx < (int)(sizeof(c->xfd) / sizeof(c->xfd[0])))
		c->xfd[c->nx++] = fd;
	return fd;
}

static int mk_eventfd(struct ctx *c, unsigned int count)
{
	return keep(c, eventfd(count, EFD_CLOEXEC | EFD_NONBLOCK));
}

/* A tap (or, with flags 0, a tun fd without TUNSETIFF); the creation result is
 * a recorded step so both traces show it. */
static int mk_tun(struct ctx *c, int flags, const char *name)
{
	int fd = tun_open(flags);

	VALX(c, 1, fd >= 0, "create %s (%s)", name, fd >= 0 ? "ok" : errno_name(-fd));
	return keep(c, fd);
}

static int mk_tap(struct ctx *c)
{
	return mk_tun(c, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, "tap vnet_hdr");
}

static int mk_socket(struct ctx *c, int domain, int type, int proto, const char *name)
{
	int fd = socket(domain, type | SOCK_CLOEXEC, proto);

	VALX(c, 1, fd >= 0, "create socket %s (%s)", name, fd >= 0 ? "ok" : errno_name(errno));
	return keep(c, fd);
}

/* ---- typed ioctl helpers --------------------------------------------------- */

static long set_owner(struct ctx *c, int exp)
{
	return IO(c, exp, VHOST_SET_OWNER, NULL);
}

static long reset_owner(struct ctx *c, int exp)
{
	return IO(c, exp, VHOST_RESET_OWNER, NULL);
}

static long vstate_(struct ctx *c, int exp, unsigned long req, const char *rn,
		    unsigned int idx, unsigned int num)
{
	struct vhost_vring_state s = { .index = idx, .num = num };

	return io(c, exp, req, &s, "%s{%u,%#x}", rn, idx, num);
}
#define VSTATE(c, exp, req, idx, num) vstate_(c, exp, VHOST_##req, #req, idx, num)

/* GET_VRING_BASE / GET_VRING_BUSYLOOP_TIMEOUT: record what came back.
 * expnum < 0: no expectation. */
static void vget_(struct ctx *c, int exp, unsigned long req, const char *rn,
		  unsigned int idx, long long expnum)
{
	struct vhost_vring_state s = { .index = idx, .num = 0xdeadbeef };

	io(c, exp, req, &s, "%s{%u}", rn, idx);
	VALX(c, idx, s.index, "%s{%u} .index", rn, idx);
	if (expnum >= 0)
		VALX(c, (uint64_t)expnum, s.num, "%s{%u} .num", rn, idx);
	else
		VAL(c, s.num, "%s{%u} .num", rn, idx);
}
#define VGET(c, exp, req, idx, expnum) vget_(c, exp, VHOST_##req, #req, idx, expnum)

static long vfile_(struct ctx *c, int exp, unsigned long req, const char *rn,
		   unsigned int idx, int fd, const char *fdname)
{
	struct vhost_vring_file f = { .index = idx, .fd = fd };

	return io(c, exp, req, &f, "%s{%u,%s}", rn, idx, fdname);
}
#define VFILE(c, exp, req, idx, fd, name) vfile_(c, exp, VHOST_##req, #req, idx, fd, name)
#define BACKEND(c, exp, idx, fd, name) VFILE(c, exp, NET_SET_BACKEND, idx, fd, name)

static long set_u64_(struct ctx *c, int exp, unsigned long req, const char *rn, uint64_t v)
{
	uint64_t x = v;

	return io(c, exp, req, &x, "%s(%#llx)", rn, (unsigned long long)v);
}
#define SET_U64(c, exp, req, v) set_u64_(c, exp, VHOST_##req, #req, v)

/* SET_FEATURES of @v, which holds a bit only the DUT advertises: REF fails with
 * EOPNOTSUPP, the DUT must take it. */
static long set_features_dut_only(struct ctx *c, uint64_t v)
{
	uint64_t x = v;

	return io_diff(c, EOPNOTSUPP, 1, 0, VHOST_SET_FEATURES, &x, "SET_FEATURES(%#llx)",
		       (unsigned long long)v);
}

static long set_int_(struct ctx *c, int exp, unsigned long req, const char *rn,
		     int v, const char *name)
{
	int x = v;

	return io(c, exp, req, &x, "%s(%s)", rn, name);
}

static long set_log_fd(struct ctx *c, int exp, int fd, const char *name)
{
	return set_int_(c, exp, VHOST_SET_LOG_FD, "SET_LOG_FD", fd, name);
}

static long set_log_base(struct ctx *c, int exp, uint64_t base, const char *name)
{
	uint64_t x = base;

	return io(c, exp, VHOST_SET_LOG_BASE, &x, "SET_LOG_BASE(%s)", name);
}

/*
 * GET_FEATURES: the value is recorded masked to the features both devices
 * advertise, so that the trace does not depend on the deliberate difference
 * (features_subset reports that difference explicitly).
 */
static void get_features(struct ctx *c)
{
	uint64_t f = PATTERN;

	IO(c, 0, VHOST_GET_FEATURES, &f);
	VALX(c, KNOWN_FEAT0 & com_feat[0], f & com_feat[0],
	     "GET_FEATURES value & common");
}

static void get_backend_features(struct ctx *c)
{
	uint64_t f = PATTERN;

	IO(c, 0, VHOST_GET_BACKEND_FEATURES, &f);
	VALX(c, KNOWN_BFEAT & com_bfeat, f & com_bfeat,
	     "GET_BACKEND_FEATURES value & common");
}

/* expv: expected u64 around the u8 the kernel writes (prefilled with ~0) */
static void get_fork_owner(struct ctx *c, int exp, uint64_t expv)
{
	uint64_t v = ~0ULL;

	IO(c, exp, VHOST_GET_FORK_FROM_OWNER, &v);
	VALX(c, expv, v, "GET_FORK_FROM_OWNER u8 (in a ~0 u64)");
}

static long set_fork_owner(struct ctx *c, int exp, uint8_t v)
{
	uint8_t x = v;

	return io(c, exp, VHOST_SET_FORK_FROM_OWNER, &x, "SET_FORK_FROM_OWNER(%u)", v);
}

static long set_mem(struct ctx *c, int exp, uint32_t n, uint32_t padding,
		    const struct vhost_memory_region *r, const char *name)
{
	size_t sz = sizeof(struct vhost_memory) + (size_t)n * sizeof(*r);
	struct vhost_memory *m = calloc(1, sz);
	long ret;

	m->nregions = n;
	m->padding = padding;
	if (r)
		memcpy(m->regions, r, n * sizeof(*r));
	ret = io(c, exp, VHOST_SET_MEM_TABLE, m, "SET_MEM_TABLE(n=%u,pad=%u: %s)",
		 n, padding, name);
	free(m);
	return ret;
}

/* One region: guest-physical 0 .. GMEM_SIZE backed by the memfd mapping. */
static long set_mem_all(struct ctx *c, int exp)
{
	struct vhost_memory_region r = {
		.guest_phys_addr = 0,
		.memory_size = GMEM_SIZE,
		.userspace_addr = uaddr(gmem),
	};

	return set_mem(c, exp, 1, 0, &r, "all guest memory");
}

static long set_mem_region(struct ctx *c, int exp, uint64_t gpa, uint64_t size,
			   uint64_t ua, uint64_t fp, const char *name)
{
	struct vhost_memory_region r = {
		.guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = ua, .flags_padding = fp,
	};

	return set_mem(c, exp, 1, 0, &r, name);
}

/* ---- rings --------------------------------------------------------------- */

static uint8_t *ring_base(int q)	{ return gmem + RING_OFF + q * 0x10000UL; }
static uint64_t ring_desc(int q)	{ return uaddr(ring_base(q)); }
static uint64_t ring_avail(int q)	{ return uaddr(ring_base(q) + 0x1000); }
static uint64_t ring_used(int q)	{ return uaddr(ring_base(q) + 0x2000); }
static volatile uint16_t *used_flags(int q) { return (uint16_t *)(ring_base(q) + 0x2000); }
static volatile uint16_t *used_idx(int q)   { return (uint16_t *)(ring_base(q) + 0x2002); }
static volatile uint16_t *avail_idx(int q)  { return (uint16_t *)(ring_base(q) + 0x1002); }

static long set_addr(struct ctx *c, int exp, unsigned int idx, unsigned int flags,
		     uint64_t desc, uint64_t avail, uint64_t used, uint64_t log,
		     const char *name)
{
	struct vhost_vring_addr a = {
		.index = idx, .flags = flags, .desc_user_addr = desc,
		.used_user_addr = used, .avail_user_addr = avail,
		.log_guest_addr = log,
	};

	return io(c, exp, VHOST_SET_VRING_ADDR, &a, "SET_VRING_ADDR{%u,flags=%#x: %s}",
		  idx, flags, name);
}

static long set_addr_ring(struct ctx *c, int exp, int q)
{
	return set_addr(c, exp, q, 0, ring_desc(q), ring_avail(q), ring_used(q), 0,
			"ring in guest memory");
}

/* num QSZ, addresses in guest memory, base; avail->idx = base so the ring is
 * empty, used->flags and used->idx prefilled so writes are visible. */
static void setup_ring(struct ctx *c, int q, uint16_t base)
{
	*avail_idx(q) = base;
	*used_flags(q) = 0xabcd;
	*used_idx(q) = 0x1234;
	VSTATE(c, 0, SET_VRING_NUM, q, QSZ);
	set_addr_ring(c, 0, q);
	VSTATE(c, 0, SET_VRING_BASE, q, base);
}

/*
 * Wait until the device's work triggered by the previous ioctls is done. The
 * C module flushes its worker on every ioctl that goes through vhost_dev_ioctl
 * (vhost_net_ioctl's default branch calls vhost_net_flush), so one such ioctl
 * is enough there; for any implementation we also wait until used->flags of the
 * given queues stopped changing.
 */
static void settle(struct ctx *c, int q0, int q1)
{
	uint64_t v = 0;
	uint16_t a, b;
	int i;

	IO(c, 0, VHOST_GET_FORK_FROM_OWNER, &v);
	for (i = 0; i < 40; i++) {
		a = *used_flags(q0) ^ (uint16_t)(*used_flags(q1) << 1);
		usleep(25000);
		b = *used_flags(q0) ^ (uint16_t)(*used_flags(q1) << 1);
		if (a == b && *used_flags(q0) != 0xabcd && *used_flags(q1) != 0xabcd)
			break;
	}
}

/* Owner, guest memory, both rings ready (num QSZ, base 3). */
static void setup_dev(struct ctx *c)
{
	set_owner(c, 0);
	set_mem_all(c, 0);
	setup_ring(c, 0, 3);
	setup_ring(c, 1, 3);
}

static void in_child(struct ctx *c, void (*fn)(struct ctx *))
{
	pid_t pid;
	int st = -1;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		fn(c);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
	VALX(c, 0, (uint64_t)st, "forked child's wait status");
}

/* ======================================================================== */
/* ---- sequences ---------------------------------------------------------- */

/* A fresh fd: what the device reports before and right after SET_OWNER. */
static void seq_open_defaults(struct ctx *c)
{
	uint64_t a[3] = { 2, PATTERN, PATTERN };

	get_features(c);
	get_backend_features(c);
	/* vhost_dev_init: fork_owner = fork_from_owner_default (1) */
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
	IO(c, 0, VHOST_GET_FEATURES_ARRAY, a);
	VALX(c, KNOWN_FEAT0 & com_feat[0], a[1] & com_feat[0], "features[0] & common");
	VALX(c, KNOWN_FEAT1 & com_feat[1], a[2] & com_feat[1], "features[1] & common");
	VGET(c, EPERM, GET_VRING_BASE, 0, -1);
	set_owner(c, 0);
	/* vhost_vq_reset: last_avail_idx 0, busyloop_timeout 0 */
	VGET(c, 0, GET_VRING_BASE, 0, 0);
	VGET(c, 0, GET_VRING_BASE, 1, 0);
	VGET(c, 0, GET_VRING_BUSYLOOP_TIMEOUT, 0, 0);
	VGET(c, 0, GET_VRING_BUSYLOOP_TIMEOUT, 1, 0);
}

/*
 * Before SET_OWNER every ioctl that reaches vhost_dev_ioctl, except
 * SET_OWNER and GET/SET_FORK_FROM_OWNER, fails with EPERM from
 * vhost_dev_check_owner (dev->mm is NULL), and so does the vring path which is
 * only reached on -ENOIOCTLCMD. The feature ioctls are handled in
 * vhost_net_ioctl itself and need no owner.
 */
static void seq_owner_required(struct ctx *c)
{
	struct vhost_worker_state ws = { 0 };
	struct vhost_vring_worker vw = { 0, 0 };
	uint32_t zero = 0;
	uint64_t arr[3] = { 0, 0, 0 };

	set_mem(c, EPERM, 0, 0, NULL, "empty");
	set_log_base(c, EPERM, 0, "0");
	set_log_fd(c, EPERM, -1, "-1");
	VSTATE(c, EPERM, SET_VRING_NUM, 0, QSZ);
	set_addr_ring(c, EPERM, 0);
	VSTATE(c, EPERM, SET_VRING_BASE, 0, 0);
	VGET(c, EPERM, GET_VRING_BASE, 0, -1);
	VFILE(c, EPERM, SET_VRING_KICK, 0, -1, "-1");
	VFILE(c, EPERM, SET_VRING_CALL, 0, -1, "-1");
	VFILE(c, EPERM, SET_VRING_ERR, 0, -1, "-1");
	VSTATE(c, EPERM, SET_VRING_ENDIAN, 0, 0);
	VSTATE(c, EPERM, GET_VRING_ENDIAN, 0, 0);
	VSTATE(c, EPERM, SET_VRING_BUSYLOOP_TIMEOUT, 0, 0);
	VGET(c, EPERM, GET_VRING_BUSYLOOP_TIMEOUT, 0, -1);
	BACKEND(c, EPERM, 0, -1, "-1");	/* vhost_net_set_backend checks the owner */
	reset_owner(c, EPERM);		/* vhost_net_reset_owner too */
	/* vhost_worker_ioctl(): no owner is EINVAL, before its owner check */
	WIO(c, EPERM, EINVAL, VHOST_NEW_WORKER, &ws);
	WIO(c, EPERM, EINVAL, VHOST_FREE_WORKER, &ws);
	WIO(c, EPERM, EINVAL, VHOST_ATTACH_VRING_WORKER, &vw);
	WIO(c, EPERM, EINVAL, VHOST_GET_VRING_WORKER, &vw);
	IO(c, EPERM, VHOST_UNKNOWN, &zero);
	/* no owner needed */
	get_features(c);
	SET_U64(c, 0, SET_FEATURES, 0);
	IO(c, 0, VHOST_GET_FEATURES_ARRAY, arr);
	IO(c, 0, VHOST_SET_FEATURES_ARRAY, arr);
	get_backend_features(c);
	SET_U64(c, 0, SET_BACKEND_FEATURES, 0);
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
	set_fork_owner(c, 0, 1);
	set_owner(c, 0);
	VGET(c, 0, GET_VRING_BASE, 0, 0);
}

/* Which check comes first when both the owner and the argument are wrong. */
static void seq_owner_check_order(struct ctx *c)
{
	/* vhost_net_ioctl copies the vhost_vring_file before the owner check */
	IO(c, EFAULT, VHOST_NET_SET_BACKEND, NULLP);
	/* vhost_net_set_backend: owner check before the index check */
	BACKEND(c, EPERM, 5, -1, "-1");
	/* vhost_dev_ioctl checks the owner before touching argp */
	IO(c, EPERM, VHOST_SET_MEM_TABLE, NULLP);
	IO(c, EPERM, VHOST_SET_LOG_BASE, NULLP);
	IO(c, EPERM, VHOST_SET_LOG_FD, NULLP);
	IO(c, EPERM, VHOST_GET_VRING_BASE, NULLP);
	VSTATE(c, EPERM, SET_VRING_NUM, 7, 0);
	IO(c, EPERM, VHOST_UNKNOWN, NULLP);
	WIO(c, EPERM, EINVAL, VHOST_NEW_WORKER, NULLP);
	/* no owner check at all: the pointer is what fails */
	IO(c, EFAULT, VHOST_GET_FEATURES, NULLP);
	IO(c, EFAULT, VHOST_SET_FEATURES, NULLP);
	IO(c, EFAULT, VHOST_GET_FEATURES_ARRAY, NULLP);
	IO(c, EFAULT, VHOST_SET_FEATURES_ARRAY, NULLP);
	IO(c, EFAULT, VHOST_GET_BACKEND_FEATURES, NULLP);
	IO(c, EFAULT, VHOST_SET_BACKEND_FEATURES, NULLP);
	IO(c, EFAULT, VHOST_GET_FORK_FROM_OWNER, NULLP);
	IO(c, EFAULT, VHOST_SET_FORK_FROM_OWNER, NULLP);
	reset_owner(c, EPERM);
}

static void seq_set_owner_twice(struct ctx *c)
{
	set_owner(c, 0);
	set_owner(c, EBUSY);	/* vhost_net_set_owner: vhost_dev_has_owner */
	set_owner(c, EBUSY);
	VGET(c, 0, GET_VRING_BASE, 1, 0);
}

/* vhost_net_reset_owner -> vhost_dev_reset_owner: all vq state back to the
 * vhost_vq_reset defaults, the owner dropped (a second RESET is EPERM). */
static void seq_reset_owner_cycle(struct ctx *c)
{
	set_owner(c, 0);
	VSTATE(c, 0, SET_VRING_NUM, 0, QSZ);
	VSTATE(c, 0, SET_VRING_BASE, 0, 7);
	VSTATE(c, 0, SET_VRING_BASE, 1, 9);
	VSTATE(c, 0, SET_VRING_BUSYLOOP_TIMEOUT, 1, 100);
	reset_owner(c, 0);
	VGET(c, EPERM, GET_VRING_BASE, 0, -1);
	reset_owner(c, EPERM);
	set_owner(c, 0);
	VGET(c, 0, GET_VRING_BASE, 0, 0);
	VGET(c, 0, GET_VRING_BASE, 1, 0);
	VGET(c, 0, GET_VRING_BUSYLOOP_TIMEOUT, 1, 0);
	VSTATE(c, 0, SET_VRING_BASE, 0, 5);
	reset_owner(c, 0);
	set_owner(c, 0);
	VGET(c, 0, GET_VRING_BASE, 0, 0);
	reset_owner(c, 0);
}

/*
 * vhost_dev_reset_owner installs a fresh, empty umem (dev->umem = umem from
 * vhost_dev_reset_owner_prepare), unlike a fresh fd whose umem is NULL. So
 * after RESET_OWNER + SET_OWNER the ring passes vhost_vq_access_ok without any
 * SET_MEM_TABLE, and NET_SET_BACKEND(-1) succeeds where it fails on a new fd.
 */
static void seq_reset_owner_empty_memtable(struct ctx *c)
{
	set_owner(c, 0);
	BACKEND(c, EFAULT, 0, -1, "-1");	/* umem NULL: vq_memory_access_ok false */
	reset_owner(c, 0);
	set_owner(c, 0);
	BACKEND(c, 0, 0, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1");
}

static void child_not_owner(struct ctx *c)
{
	/* a forked child has its own mm: vhost_dev_check_owner fails */
	VGET(c, EPERM, GET_VRING_BASE, 0, -1);
	VSTATE(c, EPERM, SET_VRING_NUM, 0, QSZ);
	set_mem(c, EPERM, 0, 0, NULL, "empty");
	BACKEND(c, EPERM, 0, -1, "-1");
	reset_owner(c, EPERM);
	set_owner(c, EBUSY);
	set_fork_owner(c, EBUSY, 1);
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
	get_features(c);
	SET_U64(c, 0, SET_FEATURES, 0);		/* vhost_net_set_features: no owner check */
	SET_U64(c, 0, SET_BACKEND_FEATURES, 0);
	{
		uint32_t zero = 0;

		IO(c, EPERM, VHOST_UNKNOWN, &zero);
	}
}

static void seq_fork_child_not_owner(struct ctx *c)
{
	set_owner(c, 0);
	in_child(c, child_not_owner);
	VGET(c, 0, GET_VRING_BASE, 0, 0);
	reset_owner(c, 0);
}

static void child_takes_owner(struct ctx *c)
{
	set_owner(c, 0);
	VSTATE(c, 0, SET_VRING_BASE, 0, 11);
	VGET(c, 0, GET_VRING_BASE, 0, 11);
}

/* The owner is whoever called SET_OWNER first, even a short-lived child: the
 * device keeps its mm (get_task_mm) and the parent is locked out for good. */
static void seq_fork_child_becomes_owner(struct ctx *c)
{
	in_child(c, child_takes_owner);
	VGET(c, EPERM, GET_VRING_BASE, 0, -1);
	set_owner(c, EBUSY);
	reset_owner(c, EPERM);
	set_fork_owner(c, EBUSY, 1);
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
}

static void seq_features_set_get(struct ctx *c)
{
	get_features(c);
	SET_U64(c, 0, SET_FEATURES, com_feat[0]);	/* no owner needed */
	SET_U64(c, 0, SET_FEATURES, 0);
	SET_U64(c, EOPNOTSUPP, SET_FEATURES, B(0));	/* VIRTIO_NET_F_CSUM */
	set_features_dut_only(c, B(34));		/* RING_PACKED: ours only */
	SET_U64(c, EOPNOTSUPP, SET_FEATURES, B(63));
	SET_U64(c, EOPNOTSUPP, SET_FEATURES, ~0ULL);
	set_features_dut_only(c, com_feat[0] | B(34));
	set_owner(c, 0);
	SET_U64(c, 0, SET_FEATURES, com_feat[0]);
	get_features(c);		/* device features, not the acked ones */
	IO(c, EFAULT, VHOST_SET_FEATURES, KPTR);
	IO(c, EFAULT, VHOST_GET_FEATURES, KPTR);
	IO(c, EFAULT, VHOST_GET_FEATURES, (void *)ro);
	IO(c, EFAULT, VHOST_SET_FEATURES, EDGE(4));
}

/* Every bit alone through SET_FEATURES: REF accepts exactly its own bits
 * (vhost_net_ioctl: features & ~vhost_net_features[0] -> EOPNOTSUPP), the DUT its
 * own; a bit only one of them has differs on purpose. */
static void seq_features_each_bit(struct ctx *c)
{
	int b;

	for (b = 0; b < 64; b++) {
		uint64_t x = B(b);
		int in_ref = !!(ref_feat[0] & x), in_dut = !!(dut_feat[0] & x);

		io_diff(c, in_ref ? 0 : EOPNOTSUPP, in_ref != in_dut, in_dut ? 0 : EOPNOTSUPP,
			VHOST_SET_FEATURES, &x, "SET_FEATURES(bit %d)", b);
	}
	SET_U64(c, 0, SET_FEATURES, 0);
}

static void seq_features_array_each_bit(struct ctx *c)
{
	int b;

	for (b = 0; b < 128; b++) {
		uint64_t a[3] = { 2, 0, 0 };
		int w = b / 64;
		int in_ref = !!(ref_feat[w] & B(b % 64)), in_dut = !!(dut_feat[w] & B(b % 64));

		a[1 + w] = B(b % 64);
		io_diff(c, in_ref ? 0 : EOPNOTSUPP, in_ref != in_dut, in_dut ? 0 : EOPNOTSUPP,
			VHOST_SET_FEATURES_ARRAY, a, "SET_FEATURES_ARRAY(count 2, bit %d)", b);
	}
}

/* Record a returned feature word: untouched (PATTERN) as is, else masked. */
static void rec_fword(struct ctx *c, const char *what, int i, uint64_t w, uint64_t exp)
{
	uint64_t v = w;

	if (w != PATTERN && i < 2)
		v = w & com_feat[i];
	if (exp != PATTERN && i < 2)
		exp &= com_feat[i];
	VALX(c, exp, v, "%s: word %d%s", what, i, i < 2 ? " & common" : "");
}

static void get_farray(struct ctx *c, int exp, uint64_t count, int nwords,
		       const uint64_t *expw, const char *what)
{
	uint64_t a[1 + 4];
	int i;

	a[0] = count;
	for (i = 1; i < 5; i++)
		a[i] = PATTERN;
	io(c, exp, VHOST_GET_FEATURES_ARRAY, a, "GET_FEATURES_ARRAY(%s)", what);
	VALX(c, count, a[0], "%s: count not written back", what);
	for (i = 0; i < nwords; i++)
		rec_fword(c, what, i, a[1 + i], expw[i]);
}

/*
 * vhost_net_ioctl GET_FEATURES_ARRAY: copies min(count, 2) words, then
 * clear_user()s the remaining count - 2 words. With a huge count, size_mul
 * saturates, clear_user's access_ok fails and nothing is cleared: EFAULT
 * after the first two words were already written.
 */
static void seq_features_array_get(struct ctx *c)
{
	const uint64_t k[4] = { KNOWN_FEAT0, KNOWN_FEAT1, 0, 0 };
	const uint64_t e0[4] = { PATTERN, PATTERN, PATTERN, PATTERN };
	const uint64_t e1[4] = { KNOWN_FEAT0, PATTERN, PATTERN, PATTERN };
	const uint64_t e2[4] = { KNOWN_FEAT0, KNOWN_FEAT1, PATTERN, PATTERN };
	const uint64_t e3[4] = { KNOWN_FEAT0, KNOWN_FEAT1, 0, PATTERN };
	uint64_t *p;
	int i;

	get_farray(c, 0, 0, 4, e0, "count 0");
	get_farray(c, 0, 1, 4, e1, "count 1");
	get_farray(c, 0, 2, 4, e2, "count 2");
	get_farray(c, 0, 3, 4, e3, "count 3");
	get_farray(c, 0, 4, 4, k, "count 4");

	/* count + 3 words end at the guard page */
	struct { uint64_t count; const char *name; int exp; uint64_t w2; } t[] = {
		/* 2^55 words: the clear_user size (2^58 bytes) fails access_ok
		 * with 4- and 5-level paging alike; a size access_ok accepts is
		 * cleared up to the fault */
		{ 1ULL << 55, "count 2^55 at edge", EFAULT, PATTERN },
		{ 1ULL << 40, "count 2^40 at edge", EFAULT, NONE_W2 },
		{ ~0ULL, "count ~0 at edge", EFAULT, PATTERN },
		{ 5, "count 5 at edge (3 words room)", EFAULT, 0 },
		{ 3, "count 3 at edge (3 words room)", 0, 0 },
	};
	for (i = 0; i < (int)(sizeof(t) / sizeof(t[0])); i++) {
		uint64_t w2;

		p = EDGE(4 * 8);
		p[0] = t[i].count;
		p[1] = p[2] = p[3] = PATTERN;
		io(c, t[i].exp, VHOST_GET_FEATURES_ARRAY, p, "GET_FEATURES_ARRAY(%s)", t[i].name);
		rec_fword(c, t[i].name, 0, p[1], KNOWN_FEAT0);
		rec_fword(c, t[i].name, 1, p[2], KNOWN_FEAT1);
		/* 2^40 words: 8 TiB, in range with 5-level paging only; record
		 * without expectation (both devices run on the same machine) */
		w2 = t[i].w2 == NONE_W2 ? p[3] : t[i].w2;
		rec_fword(c, t[i].name, 2, p[3], w2);
	}
	/* count 2 with room for one word: the first word is still written */
	p = EDGE(2 * 8);
	p[0] = 2;
	p[1] = PATTERN;
	IO(c, EFAULT, VHOST_GET_FEATURES_ARRAY, p);
	rec_fword(c, "count 2, one word room", 0, p[1], KNOWN_FEAT0);
	/* count readable, nothing writable */
	p = EDGE(8);
	p[0] = 1;
	IO(c, EFAULT, VHOST_GET_FEATURES_ARRAY, p);
	/* read-only page: count 0 writes nothing and succeeds, count 2 fails */
	IO(c, 0, VHOST_GET_FEATURES_ARRAY, (void *)ro);
	IO(c, EFAULT, VHOST_GET_FEATURES_ARRAY, (void *)(ro + 0x100));
	IO(c, EFAULT, VHOST_GET_FEATURES_ARRAY, KPTR);
}

static long set_farray(struct ctx *c, int exp, uint64_t count, uint64_t w0,
		       uint64_t w1, uint64_t w2, uint64_t w3, const char *what)
{
	uint64_t a[5] = { count, w0, w1, w2, w3 };

	return io(c, exp, VHOST_SET_FEATURES_ARRAY, a, "SET_FEATURES_ARRAY(%s)", what);
}

/*
 * vhost_net_ioctl SET_FEATURES_ARRAY: words beyond the first two are read one
 * by one and must be zero (EOPNOTSUPP) *before* the supported-bits check, so
 * an unreadable trailing word wins (EFAULT) over an unsupported bit.
 */
static void seq_features_array_set(struct ctx *c)
{
	uint64_t *p;

	set_farray(c, 0, 0, PATTERN, PATTERN, PATTERN, PATTERN, "count 0, garbage after");
	set_farray(c, 0, 1, com_feat[0], PATTERN, PATTERN, PATTERN, "count 1 common, garbage after");
	set_farray(c, 0, 2, com_feat[0], com_feat[1], PATTERN, PATTERN, "count 2 common");
	set_farray(c, 0, 3, com_feat[0], com_feat[1], 0, PATTERN, "count 3, word 2 zero");
	set_farray(c, EOPNOTSUPP, 3, com_feat[0], com_feat[1], 1, 0, "count 3, word 2 = 1");
	set_farray(c, EOPNOTSUPP, 4, 0, 0, 0, B(63), "count 4, word 3 bit 63");
	set_farray(c, EOPNOTSUPP, 2, 0, B(63), 0, 0, "count 2, bit 127");
	set_farray(c, EOPNOTSUPP, 2, B(0), 0, 0, 0, "count 2, bit 0");
	{
		uint64_t a[5] = { 1, B(34), 0, 0, 0 };

		/* RING_PACKED: ours only */
		io_diff(c, EOPNOTSUPP, 1, 0, VHOST_SET_FEATURES_ARRAY, a,
			"SET_FEATURES_ARRAY(%s)", "count 1, RING_PACKED");
	}

	/* count 3 but only count + 2 words readable; word 0 also unsupported */
	p = EDGE(3 * 8);
	p[0] = 3; p[1] = B(0); p[2] = 0;
	IO(c, EFAULT, VHOST_SET_FEATURES_ARRAY, p);
	/* huge count, zeros up to the guard page */
	p = EDGE(4 * 8);
	p[0] = 1ULL << 45; p[1] = p[2] = p[3] = 0;
	IO(c, EFAULT, VHOST_SET_FEATURES_ARRAY, p);
	/* count 2 with one readable word */
	p = EDGE(2 * 8);
	p[0] = 2; p[1] = 0;
	IO(c, EFAULT, VHOST_SET_FEATURES_ARRAY, p);
	p = EDGE(8);
	p[0] = 1;
	IO(c, EFAULT, VHOST_SET_FEATURES_ARRAY, p);
	IO(c, EFAULT, VHOST_SET_FEATURES_ARRAY, KPTR);
	/* count 0 at the very edge: only the count is read */
	p = EDGE(8);
	p[0] = 0;
	IO(c, 0, VHOST_SET_FEATURES_ARRAY, p);
	set_owner(c, 0);
	set_farray(c, 0, 2, com_feat[0], com_feat[1], 0, 0, "count 2 common, owned");
	set_farray(c, 0, 0, 0, 0, 0, 0, "count 0, owned");
}

static void seq_backend_features(struct ctx *c)
{
	get_backend_features(c);
	SET_U64(c, 0, SET_BACKEND_FEATURES, 0);		/* no owner needed */
	SET_U64(c, 0, SET_BACKEND_FEATURES, com_bfeat);
	/* VHOST_BACKEND_F_IOTLB_MSG_V2 is a bit number (1): the value 1 is bit 0 */
	SET_U64(c, EOPNOTSUPP, SET_BACKEND_FEATURES, 1);
	SET_U64(c, EOPNOTSUPP, SET_BACKEND_FEATURES, com_bfeat | 1);
	SET_U64(c, EOPNOTSUPP, SET_BACKEND_FEATURES, ~0ULL);
	IO(c, EFAULT, VHOST_SET_BACKEND_FEATURES, KPTR);
	IO(c, EFAULT, VHOST_GET_BACKEND_FEATURES, KPTR);
	IO(c, EFAULT, VHOST_GET_BACKEND_FEATURES, (void *)ro);
	set_owner(c, 0);
	SET_U64(c, 0, SET_BACKEND_FEATURES, com_bfeat);
	get_backend_features(c);
}

static void seq_backend_features_each_bit(struct ctx *c)
{
	int b;

	for (b = 0; b < 64; b++) {
		uint64_t x = B(b);
		int in_ref = !!(ref_bfeat & x), in_dut = !!(dut_bfeat & x);

		io_diff(c, in_ref ? 0 : EOPNOTSUPP, in_ref && !in_dut, EOPNOTSUPP,
			VHOST_SET_BACKEND_FEATURES, &x, "SET_BACKEND_FEATURES(bit %d)", b);
	}
}

/* vhost_dev_ioctl, CONFIG_VHOST_ENABLE_FORK_OWNER_CONTROL branch. */
static void seq_fork_owner(struct ctx *c)
{
	uint8_t *p;

	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
	set_fork_owner(c, 0, 0);
	get_fork_owner(c, 0, 0xffffffffffffff00ULL);
	set_fork_owner(c, 0, 1);
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
	set_fork_owner(c, EINVAL, 2);
	set_fork_owner(c, EINVAL, 0xff);
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
	IO(c, EFAULT, VHOST_SET_FORK_FROM_OWNER, NULLP);
	IO(c, EFAULT, VHOST_GET_FORK_FROM_OWNER, NULLP);
	IO(c, EFAULT, VHOST_GET_FORK_FROM_OWNER, (void *)ro);
	/* exactly one byte is read and written: the last byte before the guard */
	p = EDGE(1);
	*p = 0;
	IO(c, 0, VHOST_SET_FORK_FROM_OWNER, p);
	*p = 0x77;
	IO(c, 0, VHOST_GET_FORK_FROM_OWNER, p);
	VALX(c, 0, *p, "GET_FORK_FROM_OWNER byte at edge");
	set_fork_owner(c, 0, 1);
	set_owner(c, 0);
	/* only before SET_OWNER; EBUSY comes before reading the argument */
	set_fork_owner(c, EBUSY, 0);
	set_fork_owner(c, EBUSY, 2);
	IO(c, EBUSY, VHOST_SET_FORK_FROM_OWNER, NULLP);
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
	reset_owner(c, 0);
	set_fork_owner(c, 0, 0);
	set_owner(c, 0);
	get_fork_owner(c, 0, 0xffffffffffffff00ULL);
	/* vhost_dev_reset_owner restores fork_from_owner_default */
	reset_owner(c, 0);
	get_fork_owner(c, 0, 0xffffffffffffff01ULL);
}

/* A kthread worker (fork_owner 0) with a live backend; NEW_WORKER is not wired
 * up in vhost-net (net.c never calls vhost_worker_ioctl), and ours refuses it in
 * kthread mode as vhost.c does (kthreads are not charged to the owner's NPROC). */
static void seq_fork_owner_kthread(struct ctx *c)
{
	struct vhost_worker_state ws = { 0 };
	int tap;

	set_fork_owner(c, 0, 0);
	setup_dev(c);
	WIO(c, ENOTTY, EFAULT, VHOST_NEW_WORKER, &ws);
	tap = mk_tap(c);
	BACKEND(c, 0, 1, tap, "tap");
	BACKEND(c, 0, 0, tap, "tap");
	settle(c, 0, 1);
	VALX(c, 0, *used_flags(0), "rx used->flags");
	VALX(c, 0, *used_flags(1), "tx used->flags");
	BACKEND(c, 0, 0, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1");
	get_fork_owner(c, 0, 0xffffffffffffff00ULL);
}

/* vhost_set_memory: padding, then nregions vs max_mem_regions, then the copy. */
static void seq_mem_table_counts(struct ctx *c)
{
	struct vhost_memory_region r[65];
	struct vhost_memory *m;
	int i;

	for (i = 0; i < 65; i++) {
		r[i].guest_phys_addr = i * 0x10000ULL;
		r[i].memory_size = PAGE;
		r[i].userspace_addr = uaddr(gmem + i * PAGE);
		r[i].flags_padding = 0;
	}
	set_owner(c, 0);
	set_mem(c, E2BIG, 65, 0, r, "65 regions");
	BACKEND(c, EFAULT, 0, -1, "-1");	/* still no table */
	set_mem(c, 0, 0, 0, NULL, "no regions");
	BACKEND(c, 0, 0, -1, "-1");
	set_mem(c, 0, 1, 0, r, "1 region");
	set_mem(c, 0, 64, 0, r, "64 regions");
	set_mem(c, EOPNOTSUPP, 0, 1, NULL, "padding 1");
	set_mem(c, EOPNOTSUPP, 65, 1, r, "65 regions, padding 1");
	set_mem(c, EOPNOTSUPP, 1, 0x80000000, r, "padding high bit");
	IO(c, EFAULT, VHOST_SET_MEM_TABLE, NULLP);
	IO(c, EFAULT, VHOST_SET_MEM_TABLE, KPTR);
	/* header readable, nregions huge: E2BIG without reading regions */
	m = EDGE(8);
	m->nregions = 0xffffffff;
	m->padding = 0;
	IO(c, E2BIG, VHOST_SET_MEM_TABLE, m);
	/* header readable, first region not */
	m->nregions = 1;
	IO(c, EFAULT, VHOST_SET_MEM_TABLE, m);
	m->nregions = 0;
	IO(c, 0, VHOST_SET_MEM_TABLE, m);
	/* second region crosses into the guard page */
	m = EDGE(8 + sizeof(r[0]) + 8);
	m->nregions = 2;
	m->padding = 0;
	memcpy(m->regions, r, sizeof(r[0]));
	IO(c, EFAULT, VHOST_SET_MEM_TABLE, m);
	/* padding unreadable */
	IO(c, EFAULT, VHOST_SET_MEM_TABLE, EDGE(4));
	/* failed calls keep the previous table */
	BACKEND(c, 0, 1, -1, "-1");
}

/*
 * Region contents are only checked by vhost_iotlb_add_range (last < start ->
 * EFAULT) and, for *attached* vqs only, by memory_access_ok. Nothing checks
 * alignment, flags_padding, overlap, or that userspace_addr is a user address.
 */
static void seq_mem_table_regions(struct ctx *c)
{
	struct vhost_memory_region r[3];

	set_owner(c, 0);
	set_mem_region(c, EFAULT, 0x1000, 0, uaddr(gmem), 0, "size 0 at gpa 0x1000");
	/* gpa 0 size 0: last = ~0, a [0, ULONG_MAX] range, split in two */
	set_mem_region(c, 0, 0, 0, uaddr(gmem), 0, "size 0 at gpa 0");
	set_mem_region(c, EFAULT, 0xfffffffffffff000ULL, 0x2000, uaddr(gmem), 0, "gpa+size wraps");
	set_mem_region(c, 0, 0xfffffffffffff000ULL, 0x1000, uaddr(gmem), 0, "ends at 2^64-1");
	set_mem_region(c, 0, 0, ~0ULL, uaddr(gmem), 0, "size ~0");
	set_mem_region(c, 0, 0, GMEM_SIZE, KADDR, 0, "kernel userspace_addr");
	set_mem_region(c, 0, 0x1001, 0x1001, uaddr(gmem) + 1, 0, "unaligned");
	set_mem_region(c, 0, 0, GMEM_SIZE, uaddr(gmem), ~0ULL, "flags_padding ~0");
	set_mem_region(c, 0, 0, GMEM_SIZE, 0x1000, 0, "unmapped userspace_addr");
	memset(r, 0, sizeof(r));
	r[0].guest_phys_addr = 0;      r[0].memory_size = 0x200000; r[0].userspace_addr = uaddr(gmem);
	r[1].guest_phys_addr = 0x100000; r[1].memory_size = 0x200000; r[1].userspace_addr = uaddr(gmem + 0x100000);
	r[2] = r[0];
	set_mem(c, 0, 2, 0, r, "overlapping regions");
	set_mem(c, 0, 3, 0, r, "overlapping + identical regions");
	r[1].userspace_addr = uaddr(gmem);
	set_mem(c, 0, 2, 0, r, "overlapping, different host addresses");
	BACKEND(c, 0, 0, -1, "-1");
}

/* With a backend attached, vhost_vq_access_ok / memory_access_ok check every
 * region with access_ok (vq_memory_access_ok). */
static void seq_mem_table_checked_when_attached(struct ctx *c)
{
	int tap;

	set_owner(c, 0);
	set_mem_region(c, 0, 0, GMEM_SIZE, KADDR, 0, "kernel userspace_addr");
	setup_ring(c, 0, 0);
	tap = mk_tap(c);
	BACKEND(c, EFAULT, 0, tap, "tap");	/* vhost_vq_access_ok fails */
	set_mem_all(c, 0);
	BACKEND(c, 0, 0, tap, "tap");
	set_mem_region(c, EFAULT, 0, GMEM_SIZE, KADDR, 0, "kernel userspace_addr");
	set_mem_region(c, EFAULT, 0, 0, uaddr(gmem), 0, "size 0 at gpa 0 (2^63 bytes)");
	set_mem_region(c, 0, 0, GMEM_SIZE, 0x1000, 0, "unmapped but user address");
	set_mem(c, 0, 0, 0, NULL, "no regions, while attached");
	set_mem_all(c, 0);
	BACKEND(c, 0, 0, -1, "-1");
	set_mem_region(c, 0, 0, GMEM_SIZE, KADDR, 0, "kernel userspace_addr, detached");
}

static void seq_log_base(struct ctx *c)
{
	set_owner(c, 0);
	set_log_base(c, 0, uaddr(gmem + LOG_OFF), "guest log buffer");
	set_log_base(c, 0, KADDR, "kernel address, nothing attached");
	set_log_base(c, 0, 0, "0");
	set_log_base(c, 0, ~0ULL, "~0");
	IO(c, EFAULT, VHOST_SET_LOG_BASE, NULLP);
	IO(c, EFAULT, VHOST_SET_LOG_BASE, KPTR);
	IO(c, EFAULT, VHOST_SET_LOG_BASE, EDGE(4));
}

/*
 * SET_LOG_BASE with a backend: vq_log_access_ok is checked only for attached
 * vqs, and the loop in vhost_dev_ioctl keeps going after a failure, so an
 * unattached vq gets the new (bad) base even though the ioctl returns EFAULT.
 * That vq then fails NET_SET_BACKEND with EFAULT.
 */
static void seq_log_base_attached(struct ctx *c)
{
	uint64_t log = uaddr(gmem + LOG_OFF);
	int tap;

	setup_dev(c);
	tap = mk_tap(c);
	BACKEND(c, 0, 0, tap, "tap");
	/* no LOG_ALL, log_used 0: the base is not checked */
	set_log_base(c, 0, KADDR, "kernel address");
	/* vhost_vring_set_addr on an attached vq: vq_log_used_access_ok */
	set_addr(c, EINVAL, 0, 1, ring_desc(0), ring_avail(0), ring_used(0), 0, "log on, bad base");
	set_log_base(c, 0, log, "guest log buffer");
	set_addr(c, 0, 0, 1, ring_desc(0), ring_avail(0), ring_used(0), 0, "log on");
	/* (no step for a log_guest_addr beyond the log: log_access_ok divides
	 * it by 32768, so with 5-level paging every u64 value is in range) */
	set_addr(c, 0, 1, 1, ring_desc(1), ring_avail(1), ring_used(1), 0x5000,
		 "log on at gpa 0x5000, detached");
	set_log_base(c, EFAULT, KADDR, "kernel address, rx logging");
	BACKEND(c, EFAULT, 1, tap, "tap (tx got the bad base)");
	set_log_base(c, 0, log, "guest log buffer");
	BACKEND(c, 0, 1, tap, "tap");
	BACKEND(c, 0, 0, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1");
	/* vhost_update_used_flags logs the used->flags write of the tx ring
	 * (log_used, even without VHOST_F_LOG_ALL): page 5 -> byte 0 bit 5 */
	VALX(c, 0x20, *(volatile uint64_t *)(gmem + LOG_OFF), "dirty log word 0");
}

static void seq_log_fd(struct ctx *c)
{
	int efd = mk_eventfd(c, 0);

	set_owner(c, 0);
	set_log_fd(c, 0, efd, "eventfd");
	set_log_fd(c, 0, efd, "same eventfd");
	set_log_fd(c, 0, -1, "-1");
	set_log_fd(c, 0, -1, "-1 again");
	set_log_fd(c, EINVAL, gmemfd, "memfd");	/* eventfd_ctx_fileget */
	set_log_fd(c, EBADF, BADFD, "closed fd");
	set_log_fd(c, EBADF, -2, "-2");
	set_log_fd(c, EBADF, 0x7fffffff, "INT_MAX");
	IO(c, EFAULT, VHOST_SET_LOG_FD, NULLP);
	IO(c, EFAULT, VHOST_SET_LOG_FD, EDGE(2));
	set_log_fd(c, 0, efd, "eventfd");
}

/* vhost_vring_set_num: power of two, 1..32768 (num <= 0xffff). */
static void seq_vring_num(struct ctx *c)
{
	struct vhost_vring_state *s;

	set_owner(c, 0);
	VSTATE(c, EINVAL, SET_VRING_NUM, 0, 0);
	VSTATE(c, EINVAL, SET_VRING_NUM, 0, 3);
	VSTATE(c, 0, SET_VRING_NUM, 0, 1);
	VSTATE(c, 0, SET_VRING_NUM, 0, 256);
	VSTATE(c, 0, SET_VRING_NUM, 0, 32768);
	VSTATE(c, EINVAL, SET_VRING_NUM, 0, 65536);
	VSTATE(c, EINVAL, SET_VRING_NUM, 0, 0xffff);
	VSTATE(c, EINVAL, SET_VRING_NUM, 0, 0x80000000);
	VSTATE(c, EINVAL, SET_VRING_NUM, 0, 0xffffffff);
	VSTATE(c, 0, SET_VRING_NUM, 1, 256);
	VSTATE(c, ENOBUFS, SET_VRING_NUM, 2, 256);
	VSTATE(c, ENOBUFS, SET_VRING_NUM, 0xffffffff, 256);
	IO(c, EFAULT, VHOST_SET_VRING_NUM, NULLP);
	/* index readable, num not: vhost_get_vq_from_user reads the index first */
	s = EDGE(4);
	s->index = 0;
	IO(c, EFAULT, VHOST_SET_VRING_NUM, s);
	s->index = 2;
	IO(c, ENOBUFS, VHOST_SET_VRING_NUM, s);
	VGET(c, 0, GET_VRING_BASE, 0, 0);
}

/* While a backend is attached, NUM and BASE are EBUSY, checked before the
 * rest of the argument is copied (vhost_vring_set_num, VHOST_SET_VRING_BASE). */
static void seq_vring_busy_attached(struct ctx *c)
{
	struct vhost_vring_state *s;
	int tap, efd = mk_eventfd(c, 0);

	setup_dev(c);
	tap = mk_tap(c);
	BACKEND(c, 0, 0, tap, "tap");
	VSTATE(c, EBUSY, SET_VRING_NUM, 0, QSZ);
	VSTATE(c, EBUSY, SET_VRING_NUM, 0, 3);
	VSTATE(c, EBUSY, SET_VRING_BASE, 0, 0);
	VSTATE(c, EBUSY, SET_VRING_BASE, 0, 0x10000);
	s = EDGE(4);
	s->index = 0;
	IO(c, EBUSY, VHOST_SET_VRING_NUM, s);
	IO(c, EBUSY, VHOST_SET_VRING_BASE, s);
	VSTATE(c, 0, SET_VRING_NUM, 1, QSZ);	/* tx is not attached */
	VSTATE(c, 0, SET_VRING_BASE, 1, 3);
	VGET(c, 0, GET_VRING_BASE, 0, 3);
	set_addr_ring(c, 0, 0);
	VFILE(c, 0, SET_VRING_KICK, 0, efd, "eventfd");
	VFILE(c, 0, SET_VRING_CALL, 0, efd, "eventfd");
	VSTATE(c, 0, SET_VRING_BUSYLOOP_TIMEOUT, 0, 10);
	BACKEND(c, 0, 0, -1, "-1");
	VSTATE(c, 0, SET_VRING_NUM, 0, QSZ);
	VSTATE(c, 0, SET_VRING_BASE, 0, 0);
}

/* vhost_vring_set_addr, no backend: flags, then alignment, no access check. */
static void seq_vring_addr(struct ctx *c)
{
	struct vhost_vring_addr *a;

	set_owner(c, 0);
	set_addr_ring(c, 0, 0);
	set_addr(c, EOPNOTSUPP, 0, 2, ring_desc(0), ring_avail(0), ring_used(0), 0, "flags 2");
	set_addr(c, EOPNOTSUPP, 0, ~0U, ring_desc(0), ring_avail(0), ring_used(0), 0, "flags ~0");
	set_addr(c, 0, 0, 1, ring_desc(0), ring_avail(0), ring_used(0), 0, "flags LOG");
	set_addr(c, EINVAL, 0, 0, ring_desc(0), ring_avail(0) + 1, ring_used(0), 0, "avail odd");
	set_addr(c, EINVAL, 0, 0, ring_desc(0), ring_avail(0), ring_used(0) + 2, 0, "used 2-aligned");
	set_addr(c, EINVAL, 0, 0, ring_desc(0), ring_avail(0), ring_used(0) + 1, 0, "used odd");
	set_addr(c, EINVAL, 0, 0, ring_desc(0), ring_avail(0), ring_used(0), 2,
		 "log_guest_addr 2-aligned, log off");
	set_addr(c, 0, 0, 0, ring_desc(0) + 1, ring_avail(0), ring_used(0), 0, "desc odd (not checked)");
	set_addr(c, 0, 0, 0, ring_desc(0), ring_avail(0) + 2, ring_used(0) + 4, 4, "avail 2, used 4, log 4");
	set_addr(c, EOPNOTSUPP, 0, 2, ring_desc(0), ring_avail(0) + 1, ring_used(0), 0,
		 "flags 2 and avail odd");
	set_addr(c, 0, 0, 0, KADDR, KADDR, KADDR, KADDR, "kernel addresses (not attached)");
	set_addr(c, 0, 1, 0, 0, 0, 0, 0, "all zero");
	set_addr(c, ENOBUFS, 2, 0, ring_desc(0), ring_avail(0), ring_used(0), 0, "index 2");
	IO(c, EFAULT, VHOST_SET_VRING_ADDR, NULLP);
	a = EDGE(16);
	memset(a, 0, 16);
	IO(c, EFAULT, VHOST_SET_VRING_ADDR, a);
}

/* With a backend, vhost_vring_set_addr checks access (EINVAL, not EFAULT). */
static void seq_vring_addr_attached(struct ctx *c)
{
	int tap;

	setup_dev(c);
	tap = mk_tap(c);
	BACKEND(c, 0, 0, tap, "tap");
	set_addr(c, EINVAL, 0, 0, KADDR, ring_avail(0), ring_used(0), 0, "kernel desc");
	set_addr(c, EINVAL, 0, 0, ring_desc(0), ring_avail(0), KADDR, 0, "kernel used");
	set_addr(c, EINVAL, 0, 0, ring_desc(0), ring_avail(0) + 1, ring_used(0), 0, "avail odd");
	set_addr(c, 0, 0, 0, 0x10000, 0x20000, 0x30000, 0, "unmapped user addresses");
	set_addr(c, 0, 0, 1, ring_desc(0), ring_avail(0), ring_used(0), 0x1000, "log on, NULL base");
	set_addr_ring(c, 0, 0);
	BACKEND(c, 0, 0, -1, "-1");
}

static void seq_vring_base(struct ctx *c)
{
	struct vhost_vring_state *s;

	set_owner(c, 0);
	VSTATE(c, EINVAL, SET_VRING_BASE, 0, 0x10000);
	VSTATE(c, EINVAL, SET_VRING_BASE, 0, 0xffffffff);
	VSTATE(c, 0, SET_VRING_BASE, 0, 0xffff);
	VGET(c, 0, GET_VRING_BASE, 0, 0xffff);
	VSTATE(c, 0, SET_VRING_BASE, 1, 5);
	VGET(c, 0, GET_VRING_BASE, 1, 5);
	VGET(c, 0, GET_VRING_BASE, 0, 0xffff);
	VGET(c, ENOBUFS, GET_VRING_BASE, 2, 0xdeadbeef);
	VSTATE(c, ENOBUFS, SET_VRING_BASE, 2, 0);
	IO(c, EFAULT, VHOST_GET_VRING_BASE, NULLP);
	IO(c, EFAULT, VHOST_SET_VRING_BASE, NULLP);
	/* index readable, num not writable: the copy_to_user fails */
	s = EDGE(4);
	s->index = 1;
	IO(c, EFAULT, VHOST_GET_VRING_BASE, s);
	VALX(c, 1, s->index, "GET_VRING_BASE at edge: index word");
	IO(c, EFAULT, VHOST_GET_VRING_BASE, (void *)ro);
	VSTATE(c, 0, SET_VRING_BASE, 0, 0);
	VGET(c, 0, GET_VRING_BASE, 0, 0);
}

static void vring_eventfd_common(struct ctx *c, unsigned long req, const char *rn)
{
	int efd = mk_eventfd(c, 0), efd1 = mk_eventfd(c, 1);

	set_owner(c, 0);
	vfile_(c, 0, req, rn, 0, efd, "eventfd");
	vfile_(c, 0, req, rn, 0, efd, "same eventfd");
	vfile_(c, 0, req, rn, 0, efd1, "signalled eventfd");
	vfile_(c, 0, req, rn, 1, efd1, "signalled eventfd");
	vfile_(c, 0, req, rn, 0, -1, "-1");
	vfile_(c, 0, req, rn, 0, -1, "-1 again");
	vfile_(c, EINVAL, req, rn, 0, gmemfd, "memfd");
	vfile_(c, EINVAL, req, rn, 0, c->fd, "the vhost fd");
	vfile_(c, EBADF, req, rn, 0, BADFD, "closed fd");
	vfile_(c, EBADF, req, rn, 0, -2, "-2");
	vfile_(c, ENOBUFS, req, rn, 2, efd, "eventfd");
	io(c, EFAULT, req, NULLP, "%s(NULL)", rn);
	io(c, EFAULT, req, EDGE(4), "%s(fd unreadable)", rn);
	vfile_(c, 0, req, rn, 1, -1, "-1");
}

static void seq_vring_kick(struct ctx *c)
{
	vring_eventfd_common(c, VHOST_SET_VRING_KICK, "SET_VRING_KICK");
}

static void seq_vring_call(struct ctx *c)
{
	vring_eventfd_common(c, VHOST_SET_VRING_CALL, "SET_VRING_CALL");
}

static void seq_vring_err(struct ctx *c)
{
	vring_eventfd_common(c, VHOST_SET_VRING_ERR, "SET_VRING_ERR");
}

/* CONFIG_VHOST_CROSS_ENDIAN_LEGACY=n: vhost_set/get_vring_endian return
 * -ENOIOCTLCMD (ENOTTY), but only after the index was read and checked. */
static void seq_vring_endian(struct ctx *c)
{
	set_owner(c, 0);
	VSTATE(c, ENOTTY, SET_VRING_ENDIAN, 0, VHOST_VRING_LITTLE_ENDIAN);
	VSTATE(c, ENOTTY, SET_VRING_ENDIAN, 1, VHOST_VRING_BIG_ENDIAN);
	VSTATE(c, ENOTTY, SET_VRING_ENDIAN, 0, 5);
	VSTATE(c, ENOTTY, GET_VRING_ENDIAN, 0, 0);
	VSTATE(c, ENOBUFS, SET_VRING_ENDIAN, 2, 0);
	VSTATE(c, ENOBUFS, GET_VRING_ENDIAN, 2, 0);
	IO(c, EFAULT, VHOST_SET_VRING_ENDIAN, NULLP);
	IO(c, EFAULT, VHOST_GET_VRING_ENDIAN, NULLP);
}

static void seq_busyloop(struct ctx *c)
{
	set_owner(c, 0);
	VSTATE(c, 0, SET_VRING_BUSYLOOP_TIMEOUT, 0, 50);
	VGET(c, 0, GET_VRING_BUSYLOOP_TIMEOUT, 0, 50);
	VGET(c, 0, GET_VRING_BUSYLOOP_TIMEOUT, 1, 0);
	VSTATE(c, 0, SET_VRING_BUSYLOOP_TIMEOUT, 1, 0xffffffff);	/* no limit */
	VGET(c, 0, GET_VRING_BUSYLOOP_TIMEOUT, 1, 0xffffffff);
	VSTATE(c, ENOBUFS, SET_VRING_BUSYLOOP_TIMEOUT, 2, 1);
	VGET(c, ENOBUFS, GET_VRING_BUSYLOOP_TIMEOUT, 2, 0xdeadbeef);
	IO(c, EFAULT, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, NULLP);
	IO(c, EFAULT, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, NULLP);
	IO(c, EFAULT, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, (void *)ro);
	IO(c, EFAULT, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, EDGE(4));
	reset_owner(c, 0);
	set_owner(c, 0);
	VGET(c, 0, GET_VRING_BUSYLOOP_TIMEOUT, 1, 0);
}

static void seq_backend_index(struct ctx *c)
{
	struct vhost_vring_file *f;

	set_owner(c, 0);
	set_mem(c, 0, 0, 0, NULL, "no regions");
	BACKEND(c, ENOBUFS, 2, -1, "-1");
	BACKEND(c, ENOBUFS, 0xffffffff, -1, "-1");
	BACKEND(c, ENOBUFS, 2, BADFD, "closed fd");
	IO(c, EFAULT, VHOST_NET_SET_BACKEND, NULLP);
	IO(c, EFAULT, VHOST_NET_SET_BACKEND, KPTR);
	f = EDGE(4);
	f->index = 0;
	IO(c, EFAULT, VHOST_NET_SET_BACKEND, f);
	BACKEND(c, 0, 0, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1");
}

/* vhost_net_set_backend checks vhost_vq_access_ok before looking at the fd:
 * with no memory table (umem NULL) everything is EFAULT, even fd -1. */
static void seq_backend_before_memtable(struct ctx *c)
{
	int efd = mk_eventfd(c, 0);
	int tap;

	set_owner(c, 0);
	BACKEND(c, EFAULT, 0, -1, "-1");
	BACKEND(c, EFAULT, 1, -1, "-1");
	BACKEND(c, EFAULT, 0, efd, "eventfd");
	BACKEND(c, EFAULT, 0, BADFD, "closed fd");
	setup_ring(c, 0, 0);
	tap = mk_tap(c);
	BACKEND(c, EFAULT, 0, tap, "tap");
	set_mem(c, 0, 0, 0, NULL, "no regions");
	BACKEND(c, 0, 0, -1, "-1");
	/* an empty table is enough for the access check; the ring is in
	 * process memory, which is what the checks look at */
	BACKEND(c, 0, 0, tap, "tap");
	BACKEND(c, 0, 0, -1, "-1");
}

/* get_socket: every failure of get_raw_socket and get_tap_socket becomes
 * ENOTSOCK, including a closed fd (not EBADF). */
static void seq_backend_not_socket(struct ctx *c)
{
	int efd = mk_eventfd(c, 0);
	int devnull = keep(c, open("/dev/null", O_RDWR | O_CLOEXEC));
	int udp, raw4, pktdgram, unix_s;
	int sv[2] = { -1, -1 };

	setup_dev(c);
	udp = mk_socket(c, AF_INET, SOCK_DGRAM, 0, "udp");
	raw4 = mk_socket(c, AF_INET, SOCK_RAW, IPPROTO_UDP, "AF_INET raw");
	pktdgram = mk_socket(c, AF_PACKET, SOCK_DGRAM, 0, "AF_PACKET dgram");
	VALX(c, 0, (uint64_t)socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	unix_s = keep(c, sv[0]);
	keep(c, sv[1]);
	BACKEND(c, ENOTSOCK, 0, gmemfd, "memfd (a regular file)");
	BACKEND(c, ENOTSOCK, 0, devnull, "/dev/null");
	BACKEND(c, ENOTSOCK, 0, efd, "eventfd");
	BACKEND(c, ENOTSOCK, 0, c->fd, "the vhost fd");
	BACKEND(c, ENOTSOCK, 0, udp, "udp socket");
	BACKEND(c, ENOTSOCK, 1, raw4, "AF_INET raw socket");
	BACKEND(c, ENOTSOCK, 1, pktdgram, "AF_PACKET dgram socket");
	BACKEND(c, ENOTSOCK, 0, unix_s, "unix socket");
	BACKEND(c, ENOTSOCK, 0, BADFD, "closed fd");
	BACKEND(c, ENOTSOCK, 0, -2, "-2");
	BACKEND(c, ENOTSOCK, 0, 0x7fffffff, "INT_MAX");
	VSTATE(c, 0, SET_VRING_NUM, 0, QSZ);	/* nothing got attached */
	VGET(c, 0, GET_VRING_BASE, 0, 3);
}

/*
 * A tun fd without TUNSETIFF: tun_get_socket accepts it, then
 * vhost_net_set_backend runs vhost_vq_init_access (writes used->flags, reads
 * used->idx) *before* vhost_net_enable_vq, whose vhost_poll_start sees EPOLLERR
 * (tun_chr_poll: no tun attached) and returns EINVAL. Without ring addresses,
 * the used->flags write faults first: EFAULT.
 */
static void seq_backend_tun_unattached(struct ctx *c)
{
	int tun = mk_tun(c, 0, "tun fd without TUNSETIFF");

	set_owner(c, 0);
	set_mem_all(c, 0);
	BACKEND(c, EFAULT, 0, tun, "tun without TUNSETIFF, no ring");
	setup_ring(c, 0, 0);
	setup_ring(c, 1, 0);
	BACKEND(c, EINVAL, 0, tun, "tun without TUNSETIFF");
	VALX(c, 0, *used_flags(0), "rx used->flags written before the poll failed");
	VALX(c, 0x1234, *used_idx(0), "rx used->idx untouched");
	BACKEND(c, EINVAL, 1, tun, "tun without TUNSETIFF");
	VSTATE(c, 0, SET_VRING_NUM, 0, QSZ);	/* backend rolled back */
	VSTATE(c, 0, SET_VRING_NUM, 1, QSZ);
}

/* The main path: a real tap on both queues, then detach. */
static void seq_backend_tap(struct ctx *c)
{
	int tap, kick0 = mk_eventfd(c, 0), kick1 = mk_eventfd(c, 1);
	int call0 = mk_eventfd(c, 0), call1 = mk_eventfd(c, 0);

	setup_dev(c);
	VFILE(c, 0, SET_VRING_KICK, 0, kick0, "eventfd");
	VFILE(c, 0, SET_VRING_KICK, 1, kick1, "signalled eventfd");
	VFILE(c, 0, SET_VRING_CALL, 0, call0, "eventfd");
	VFILE(c, 0, SET_VRING_CALL, 1, call1, "eventfd");
	tap = mk_tap(c);
	BACKEND(c, 0, 0, tap, "tap");
	BACKEND(c, 0, 1, tap, "tap");
	settle(c, 0, 1);
	/* vhost_vq_init_access wrote used_flags (0); the tx handler ran on the
	 * empty ring (disable/enable notify) and left it 0 */
	VALX(c, 0, *used_flags(0), "rx used->flags");
	VALX(c, 0, *used_flags(1), "tx used->flags");
	VALX(c, 0x1234, *used_idx(0), "rx used->idx");
	VALX(c, 0x1234, *used_idx(1), "tx used->idx");
	VGET(c, 0, GET_VRING_BASE, 0, 3);
	VGET(c, 0, GET_VRING_BASE, 1, 3);
	VSTATE(c, EBUSY, SET_VRING_NUM, 1, QSZ);
	VSTATE(c, EBUSY, SET_VRING_BASE, 1, 0);
	BACKEND(c, 0, 0, tap, "same tap again");
	BACKEND(c, 0, 0, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1 again");
	VGET(c, 0, GET_VRING_BASE, 0, 3);
	VGET(c, 0, GET_VRING_BASE, 1, 3);
	VSTATE(c, 0, SET_VRING_NUM, 1, QSZ);
	VSTATE(c, 0, SET_VRING_BASE, 1, 0);
	VGET(c, 0, GET_VRING_BASE, 1, 0);
	/* attach again and leave it attached: release must clean up */
	*used_flags(1) = 0xabcd;
	VSTATE(c, 0, SET_VRING_BASE, 1, 3);
	BACKEND(c, 0, 1, tap, "tap");
	settle(c, 1, 1);
	VALX(c, 0, *used_flags(1), "tx used->flags after re-attach");
}

static void seq_backend_tap_replace(struct ctx *c)
{
	int a, b, plain, tun;

	setup_dev(c);
	a = mk_tap(c);
	b = mk_tap(c);
	plain = mk_tun(c, IFF_TAP | IFF_NO_PI, "tap without vnet_hdr");
	tun = mk_tun(c, IFF_TUN | IFF_NO_PI, "tun");
	BACKEND(c, 0, 0, a, "tap A");
	BACKEND(c, 0, 0, b, "tap B replaces A");
	BACKEND(c, 0, 1, a, "tap A");
	BACKEND(c, 0, 1, plain, "tap without vnet_hdr");
	BACKEND(c, 0, 0, tun, "tun");
	settle(c, 0, 1);
	VGET(c, 0, GET_VRING_BASE, 0, 3);
	VGET(c, 0, GET_VRING_BASE, 1, 3);
	BACKEND(c, 0, 0, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1");
}

/* get_raw_socket: AF_PACKET + SOCK_RAW is the only accepted socket type. */
static void seq_backend_packet_socket(struct ctx *c)
{
	int pkt;

	setup_dev(c);
	pkt = mk_socket(c, AF_PACKET, SOCK_RAW, 0, "AF_PACKET raw");
	BACKEND(c, 0, 1, pkt, "AF_PACKET raw socket");
	BACKEND(c, 0, 0, pkt, "AF_PACKET raw socket");
	settle(c, 0, 1);
	VALX(c, 0, *used_flags(0), "rx used->flags");
	VALX(c, 0, *used_flags(1), "tx used->flags");
	VSTATE(c, EBUSY, SET_VRING_NUM, 0, QSZ);
	BACKEND(c, 0, 0, -1, "-1");
	BACKEND(c, 0, 1, -1, "-1");
	VGET(c, 0, GET_VRING_BASE, 1, 3);
}

/* vhost_net_reset_owner stops and drops the backends. */
static void seq_reset_owner_with_backend(struct ctx *c)
{
	int tap;

	setup_dev(c);
	tap = mk_tap(c);
	BACKEND(c, 0, 0, tap, "tap");
	BACKEND(c, 0, 1, tap, "tap");
	reset_owner(c, 0);
	VGET(c, EPERM, GET_VRING_BASE, 0, -1);
	set_owner(c, 0);
	VGET(c, 0, GET_VRING_BASE, 0, 0);
	VSTATE(c, 0, SET_VRING_NUM, 0, QSZ);	/* no longer attached */
	BACKEND(c, 0, 0, -1, "-1");		/* empty umem after reset */
	/* ring addresses were reset to NULL: used->flags write faults */
	BACKEND(c, EFAULT, 0, tap, "tap, ring reset");
	setup_ring(c, 0, 0);
	BACKEND(c, 0, 0, tap, "tap");
}

/*
 * Unknown ioctls go vhost_dev_ioctl (EPERM without owner) -> vhost_vring_ioctl,
 * which reads a u32 index from the argument first: EFAULT, ENOBUFS (>= 2),
 * and only then -ENOIOCTLCMD (ENOTTY). The whole command word is decoded:
 * known numbers with another direction or size are unknown.
 */
static void seq_unknown_ioctls(struct ctx *c)
{
	uint32_t v;
	uint64_t w = 0;
	struct vhost_vring_state s = { 0, QSZ };

	v = 0;
	IO(c, EPERM, VHOST_UNKNOWN, &v);
	IO(c, EPERM, VHOST_UNKNOWN, NULLP);
	set_owner(c, 0);
	v = 0;
	io(c, ENOTTY, VHOST_UNKNOWN, &v, "UNKNOWN(&0)");
	v = 1;
	io(c, ENOTTY, VHOST_UNKNOWN, &v, "UNKNOWN(&1)");
	v = 2;
	io(c, ENOBUFS, VHOST_UNKNOWN, &v, "UNKNOWN(&2)");
	v = 5;
	io(c, ENOBUFS, VHOST_UNKNOWN, &v, "UNKNOWN(&5)");
	IO(c, EFAULT, VHOST_UNKNOWN, NULLP);
	IO(c, EFAULT, VHOST_UNKNOWN, KPTR);
	IO(c, EFAULT, VHOST_UNKNOWN, EDGE(2));
	io(c, ENOTTY, VHOST_UNKNOWN, EDGE(4), "UNKNOWN(u32 0 at edge)");
	/* known numbers, wrong direction or size */
	io(c, ENOTTY, _IO(VHOST_VIRTIO, 0x00), &w, "_IO(0xAF,0x00)");
	io(c, ENOTTY, _IOWR(VHOST_VIRTIO, 0x00, __u64), &w, "_IOWR(0xAF,0x00,u64)");
	io(c, ENOTTY, _IOR(VHOST_VIRTIO, 0x00, __u32), &w, "_IOR(0xAF,0x00,u32)");
	io(c, ENOTTY, _IOW(VHOST_VIRTIO, 0x01, int), &w, "_IOW(0xAF,0x01,int)");
	io(c, ENOTTY, _IOR(VHOST_VIRTIO, 0x10, struct vhost_vring_state), &s, "_IOR(0xAF,0x10,state)");
	io(c, ENOTTY, _IO(VHOST_VIRTIO, 0x12), &s, "_IO(0xAF,0x12)");
	io(c, ENOTTY, _IOWR(VHOST_VIRTIO, 0x30, struct vhost_vring_file), &s, "_IOWR(0xAF,0x30,file)");
	io(c, ENOTTY, _IOW(VHOST_VIRTIO, 0x85, __u8), &w, "_IOW(0xAF,0x85,u8)");
	io(c, ENOTTY, _IOW('Z', 0x10, struct vhost_vring_state), &s, "_IOW('Z',0x10,state)");
	s.index = 3;
	io(c, ENOBUFS, _IOW('Z', 0x10, struct vhost_vring_state), &s, "_IOW('Z',0x10,state{3})");
	/* SET_OWNER is _IO: arg ignored */
	io(c, EBUSY, VHOST_SET_OWNER, NULLP, "SET_OWNER(NULL arg)");
	VGET(c, 0, GET_VRING_BASE, 0, 0);
}

/* The worker ioctls exist in vhost.h but vhost-net does not handle them:
 * they take the unknown-ioctl path (note NEW_WORKER's out-struct is read as
 * a vq index, and nothing is written back). Ours answers them as vhost.c's
 * vhost_worker_ioctl(); tests/vhost_workers.c checks what it writes. */
static void seq_worker_ioctls(struct ctx *c)
{
	struct vhost_worker_state ws;
	struct vhost_vring_worker vw;

	set_owner(c, 0);
	ws.worker_id = 0;
	WIO(c, ENOTTY, 0, VHOST_NEW_WORKER, &ws);
	val_ref(c, 0, ws.worker_id, "NEW_WORKER worker_id untouched");
	ws.worker_id = 7;
	WIO(c, ENOBUFS, 0, VHOST_NEW_WORKER, &ws);
	IO(c, EFAULT, VHOST_NEW_WORKER, NULLP);
	ws.worker_id = 0;
	/* worker 0 runs RX */
	WIO(c, ENOTTY, EBUSY, VHOST_FREE_WORKER, &ws);
	vw.index = 0; vw.worker_id = 0;
	WIO(c, ENOTTY, 0, VHOST_ATTACH_VRING_WORKER, &vw);
	vw.index = 2;
	IO(c, ENOBUFS, VHOST_ATTACH_VRING_WORKER, &vw);
	vw.index = 1; vw.worker_id = 0x5555;
	WIO(c, ENOTTY, ENODEV, VHOST_ATTACH_VRING_WORKER, &vw);
	vw.index = 2;
	IO(c, ENOBUFS, VHOST_GET_VRING_WORKER, &vw);
	vw.index = 1; vw.worker_id = 0x5555;
	WIO(c, ENOTTY, 0, VHOST_GET_VRING_WORKER, &vw);
	val_ref(c, 0x5555, vw.worker_id, "GET_VRING_WORKER worker_id untouched");
	IO(c, EFAULT, VHOST_GET_VRING_WORKER, NULLP);
}

/* ioctls of the other vhost drivers (scsi, vsock, vdpa): unknown here. */
static void seq_other_vhost_ioctls(struct ctx *c)
{
	uint64_t w;
	uint32_t v = 0;
	struct vhost_scsi_target st;

	set_owner(c, 0);
	w = 3;
	IO(c, ENOBUFS, VHOST_VSOCK_SET_GUEST_CID, &w);	/* cid 3 read as index */
	w = 1;
	IO(c, ENOTTY, VHOST_VSOCK_SET_GUEST_CID, &w);
	IO(c, ENOTTY, VHOST_VSOCK_SET_RUNNING, &v);
	IO(c, ENOTTY, VHOST_SCSI_GET_ABI_VERSION, &v);
	memset(&st, 0, sizeof(st));
	IO(c, ENOTTY, VHOST_SCSI_SET_ENDPOINT, &st);
	IO(c, ENOTTY, VHOST_VDPA_GET_DEVICE_ID, &v);
	IO(c, ENOTTY, VHOST_VDPA_SET_STATUS, &v);
	IO(c, ENOTTY, VHOST_VDPA_GET_VRING_NUM, &v);
	IO(c, ENOTTY, VHOST_VDPA_GET_VQS_COUNT, &v);
	/* _IO commands called with arg 0, as a caller would: the index read
	 * from address 0 faults */
	IO(c, EFAULT, VHOST_VDPA_SUSPEND, NULL);
	IO(c, EFAULT, VHOST_VDPA_RESUME, NULL);
	v = 0;
	IO(c, ENOTTY, VHOST_VDPA_SUSPEND, &v);
}

/* Bad pointers after SET_OWNER, for every ioctl that copies. */
static void seq_bad_pointers_owned(struct ctx *c)
{
	static const struct { unsigned long req; const char *name; int exp; } t[] = {
#define T(r, e) { VHOST_##r, #r, e }
		T(GET_FEATURES, EFAULT), T(SET_FEATURES, EFAULT),
		T(GET_FEATURES_ARRAY, EFAULT), T(SET_FEATURES_ARRAY, EFAULT),
		T(GET_BACKEND_FEATURES, EFAULT), T(SET_BACKEND_FEATURES, EFAULT),
		T(GET_FORK_FROM_OWNER, EFAULT), T(SET_FORK_FROM_OWNER, EBUSY),
		T(SET_MEM_TABLE, EFAULT), T(SET_LOG_BASE, EFAULT), T(SET_LOG_FD, EFAULT),
		T(SET_VRING_NUM, EFAULT), T(SET_VRING_ADDR, EFAULT),
		T(SET_VRING_BASE, EFAULT), T(GET_VRING_BASE, EFAULT),
		T(SET_VRING_KICK, EFAULT), T(SET_VRING_CALL, EFAULT),
		T(SET_VRING_ERR, EFAULT), T(SET_VRING_ENDIAN, EFAULT),
		T(GET_VRING_ENDIAN, EFAULT), T(SET_VRING_BUSYLOOP_TIMEOUT, EFAULT),
		T(GET_VRING_BUSYLOOP_TIMEOUT, EFAULT), T(NET_SET_BACKEND, EFAULT),
		T(NEW_WORKER, EFAULT), T(GET_VRING_WORKER, EFAULT),
#undef T
	};
	int i;

	set_owner(c, 0);
	for (i = 0; i < (int)(sizeof(t) / sizeof(t[0])); i++) {
		io(c, t[i].exp, t[i].req, NULL, "%s(NULL)", t[i].name);
		io(c, t[i].exp, t[i].req, KPTR, "%s(kernel pointer)", t[i].name);
		io(c, t[i].exp, t[i].req, (void *)~0UL, "%s(~0)", t[i].name);
	}
	/* read-only memory (zeros: index 0, count 0) for the out-ioctls */
	IO(c, EFAULT, VHOST_GET_FEATURES, (void *)ro);
	IO(c, EFAULT, VHOST_GET_BACKEND_FEATURES, (void *)ro);
	IO(c, EFAULT, VHOST_GET_FORK_FROM_OWNER, (void *)ro);
	IO(c, EFAULT, VHOST_GET_VRING_BASE, (void *)ro);
	IO(c, EFAULT, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, (void *)ro);
	IO(c, 0, VHOST_GET_FEATURES_ARRAY, (void *)ro);
	/* in-ioctls are fine with read-only memory */
	IO(c, 0, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, (void *)ro);
	IO(c, 0, VHOST_SET_FEATURES, (void *)ro);
	IO(c, 0, VHOST_SET_MEM_TABLE, (void *)ro);
}

/* VHOST_F_LOG_ALL: vhost_net_set_features checks vhost_log_access_ok. */
static void seq_log_all_feature(struct ctx *c)
{
	int tap;

	/*
	 * Both devices must offer LOG_ALL (so does ctl.features_pinned): one that does not
	 * fails this SET_FEATURES (EOPNOTSUPP), where until 2026-12-07 the sequence returned at
	 * once and passed (issue 17).
	 */
	SET_U64(c, 0, SET_FEATURES, F_LOG_ALL);	/* nothing attached: no check */
	SET_U64(c, 0, SET_FEATURES, 0);
	setup_dev(c);
	tap = mk_tap(c);
	BACKEND(c, 0, 0, tap, "tap");
	set_log_base(c, 0, KADDR, "kernel address");
	SET_U64(c, EFAULT, SET_FEATURES, F_LOG_ALL);
	set_log_base(c, 0, uaddr(gmem + LOG_OFF), "guest log buffer");
	SET_U64(c, 0, SET_FEATURES, F_LOG_ALL);
	set_log_base(c, EFAULT, KADDR, "kernel address, LOG_ALL");
	/* memory_access_ok with the acked LOG_ALL and the (good) rx base */
	set_mem_all(c, 0);
	SET_U64(c, 0, SET_FEATURES, 0);
	set_log_base(c, 0, KADDR, "kernel address, no LOG_ALL");
	BACKEND(c, 0, 0, -1, "-1");
}

/* VIRTIO_F_ACCESS_PLATFORM: the device IOTLB replaces the ring access checks,
 * but NET_SET_BACKEND still needs a umem (vq_memory_access_ok). */
static void seq_access_platform_feature(struct ctx *c)
{
	/* Both devices must offer it: a device that does not fails this SET_FEATURES. */
	SET_U64(c, 0, SET_FEATURES, F_ACCESS_PLATFORM);
	set_owner(c, 0);
	BACKEND(c, EFAULT, 0, -1, "-1");
	set_addr(c, 0, 0, 0, KADDR, KADDR, KADDR, 0, "kernel addresses");
	set_mem(c, 0, 0, 0, NULL, "no regions");
	BACKEND(c, 0, 0, -1, "-1");
	SET_U64(c, 0, SET_FEATURES, 0);
	BACKEND(c, 0, 1, -1, "-1");
}

/* Close with everything set and attached, kick pending: release cleans up. */
static void seq_close_busy(struct ctx *c)
{
	int tap = -1, efd = mk_eventfd(c, 1), lfd = mk_eventfd(c, 0);

	setup_dev(c);
	set_log_fd(c, 0, lfd, "eventfd");
	set_log_base(c, 0, uaddr(gmem + LOG_OFF), "guest log buffer");
	VFILE(c, 0, SET_VRING_KICK, 0, efd, "signalled eventfd");
	VFILE(c, 0, SET_VRING_KICK, 1, efd, "signalled eventfd");
	VFILE(c, 0, SET_VRING_CALL, 1, efd, "eventfd");
	VFILE(c, 0, SET_VRING_ERR, 1, efd, "eventfd");
	tap = mk_tap(c);
	BACKEND(c, 0, 0, tap, "tap");
	BACKEND(c, 0, 1, tap, "tap");
	VSTATE(c, 0, SET_VRING_BUSYLOOP_TIMEOUT, 1, 20);
	/* the runner closes the vhost fd before the tap and eventfds */
}

/* ---- running and comparing --------------------------------------------------- */

static void fmt_result(char *buf, size_t n, const struct step *s)
{
	if (s->kind == K_VALUE)
		snprintf(buf, n, "value %#llx", (unsigned long long)s->val);
	else if (s->ret < 0)
		snprintf(buf, n, "ret %ld %s", s->ret, errno_name(s->err));
	else
		snprintf(buf, n, "ret %ld", s->ret);
}

static int same_result(const struct step *a, const struct step *b)
{
	if (a->kind != b->kind || strcmp(a->what, b->what))
		return 0;
	if (a->kind == K_VALUE)
		return a->val == b->val;
	return a->ret == b->ret && a->err == b->err;
}

/* Run one sequence on a fresh fd of dev. Returns 0, or -errno of the open. */
static int run_on(const char *dev, void (*fn)(struct ctx *), struct trace *t)
{
	struct ctx c;
	int i;

	memset(t, 0, sizeof(*t));
	memset(gmem, 0, GMEM_SIZE);
	memset(edge, 0, PAGE);
	memset(&c, 0, sizeof(c));
	c.t = t;
	c.fd = open(dev, O_RDWR | O_CLOEXEC);
	if (c.fd < 0)
		return -errno;
	fn(&c);
	close(c.fd);
	for (i = 0; i < c.nx; i++)
		close(c.xfd[i]);
	return 0;
}

/* Check the reference trace against the expectations read from the C code. */
static int check_expectations(const struct trace *t)
{
	char got[64];
	int i, ok = 1;

	if (t->overflow) {
		ktap_diag("REF trace overflowed (%d steps max)", MAX_STEPS);
		ok = 0;
	}
	for (i = 0; i < t->n; i++) {
		const struct step *s = &t->s[i];

		if (s->kind == K_IOCTL && s->exp_err != NONE) {
			int good = s->exp_err ? (s->ret == -1 && s->err == s->exp_err) : s->ret >= 0;

			if (!good) {
				fmt_result(got, sizeof(got), s);
				ktap_diag("REF step %d %s: %s, expected %s (test's reading of vhost.c?)",
					  i, s->what, got, s->exp_err ? errno_name(s->exp_err) : "success");
				ok = 0;
			}
		} else if (s->kind == K_VALUE && s->has_exp_val && s->val != s->exp_val) {
			ktap_diag("REF step %d %s: value %#llx, expected %#llx",
				  i, s->what, (unsigned long long)s->val,
				  (unsigned long long)s->exp_val);
			ok = 0;
		}
	}
	return ok;
}

/* Compare the traces; on a deliberate difference check the DUT's side. */
static int compare(const struct trace *r, const struct trace *d)
{
	char a[64], b[64];
	int i, n = r->n > d->n ? r->n : d->n;

	if (d->overflow) {
		ktap_diag("DUT trace overflowed");
		return 0;
	}
	for (i = 0; i < n; i++) {
		const struct step *x = &r->s[i], *y = &d->s[i];

		if (i >= r->n || i >= d->n) {
			ktap_diag("traces differ in length: REF %d steps, DUT %d steps; first extra: %s",
				  r->n, d->n, i < r->n ? x->what : y->what);
			return 0;
		}
		if (x->kind == K_VALUE && x->ref_only_val && y->kind == K_VALUE &&
		    !strcmp(x->what, y->what)) {
			ktap_diag("differs on purpose: step %d %s: REF %#llx, DUT %#llx",
				  i, x->what, (unsigned long long)x->val,
				  (unsigned long long)y->val);
			continue;
		}
		if (x->dut_err != NONE && !strcmp(x->what, y->what)) {
			fmt_result(a, sizeof(a), x);
			fmt_result(b, sizeof(b), y);
			if (y->kind == K_IOCTL &&
			    (x->dut_err ? y->ret == -1 && y->err == x->dut_err : y->ret >= 0)) {
				ktap_diag("differs on purpose: step %d %s: REF %s, DUT %s",
					  i, x->what, a, b);
				continue;
			}
			ktap_diag("step %d %s: REF %s, DUT %s, but DUT was expected to %s %s (a bit only one side advertises)",
				  i, x->what, a, b, x->dut_err ? "fail with" : "succeed",
				  x->dut_err ? errno_name(x->dut_err) : "");
			return 0;
		}
		if (!same_result(x, y)) {
			fmt_result(a, sizeof(a), x);
			fmt_result(b, sizeof(b), y);
			if (strcmp(x->what, y->what))
				ktap_diag("step %d differs in kind: REF '%s', DUT '%s'",
					  i, x->what, y->what);
			else
				ktap_diag("first difference at step %d %s: REF %s, DUT %s",
					  i, x->what, a, b);
			return 0;
		}
	}
	return 1;
}

static int query_u64(int fd, unsigned long req, uint64_t *v)
{
	*v = 0;
	return ioctl(fd, req, v);
}

/* Feature sets of a device: GET_FEATURES, GET_FEATURES_ARRAY, GET_BACKEND_FEATURES. */
static int query_features(const char *dev, uint64_t f[2], uint64_t *bf, uint64_t *f64,
			  uint64_t *extra)
{
	uint64_t a[5] = { 4, 0, 0, 0, 0 };
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (query_u64(fd, VHOST_GET_FEATURES, f64) < 0 ||
	    ioctl(fd, VHOST_GET_FEATURES_ARRAY, a) < 0 ||
	    query_u64(fd, VHOST_GET_BACKEND_FEATURES, bf) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	f[0] = a[1];
	f[1] = a[2];
	*extra = a[3] | a[4];
	close(fd);
	return 0;
}

static void list_lacking(const char *what, int base, uint64_t ref, uint64_t dut)
{
	int b;

	for (b = 0; b < 64; b++)
		if ((ref & B(b)) && !(dut & B(b)))
			ktap_diag("differs on purpose: DUT lacks %s bit %d", what, base + b);
}

/* DUT <= REF for every feature query; list what the DUT lacks. */
static int features_subset(const char *ref, const char *dut)
{
	uint64_t rf[2], df[2], rb, db, r64, d64, rx, dx;
	int ok = 1;

	if (query_features(ref, rf, &rb, &r64, &rx) || query_features(dut, df, &db, &d64, &dx)) {
		ktap_diag("feature queries failed");
		return 0;
	}
	if (r64 != rf[0] || d64 != df[0]) {
		ktap_diag("GET_FEATURES differs from GET_FEATURES_ARRAY word 0: REF %#llx/%#llx DUT %#llx/%#llx",
			  (unsigned long long)r64, (unsigned long long)rf[0],
			  (unsigned long long)d64, (unsigned long long)df[0]);
		ok = 0;
	}
	if (rx || dx) {
		ktap_diag("GET_FEATURES_ARRAY words 2..3 not zeroed: REF %#llx DUT %#llx",
			  (unsigned long long)rx, (unsigned long long)dx);
		ok = 0;
	}
	if ((df[0] & ~rf[0]) != DUT_FEAT0 || (df[1] & ~rf[1]) || (db & ~rb)) {
		ktap_diag("DUT advertises bits REF lacks: features %#llx %#llx backend %#llx; "
			  "expected exactly %#llx (RING_PACKED) in word 0",
			  (unsigned long long)(df[0] & ~rf[0]), (unsigned long long)(df[1] & ~rf[1]),
			  (unsigned long long)(db & ~rb), (unsigned long long)DUT_FEAT0);
		ok = 0;
	} else {
		ktap_diag("differs on purpose: DUT adds feature bit 34 (RING_PACKED)");
	}
	list_lacking("feature", 0, rf[0], df[0]);
	list_lacking("feature", 64, rf[1], df[1]);
	list_lacking("backend feature", 0, rb, db);
	return ok;
}

static int setup_memory(void)
{
	uint64_t *p;

	gmem = guest_mem_create(GMEM_SIZE, &gmemfd);
	if (gmem == MAP_FAILED)
		return -1;
	edge = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (edge == MAP_FAILED || ro == MAP_FAILED)
		return -1;
	if (mprotect(edge + PAGE, PAGE, PROT_NONE))
		return -1;
	memset(ro, 0, PAGE);
	p = (uint64_t *)(ro + 0x100);
	*p = 2;
	return mprotect(ro, PAGE, PROT_READ);
}

/* ---- the sequences as tests of kselftest_harness.h ---------------------------------- */

#define REF "/dev/vhost-net"
#define DUT "/dev/vhost-rs-net"

/*
 * One fixture, no variants: a test is the comparison of the two devices, so each runs both,
 * in the test's own process and network namespace, with fresh guest memory.
 */
FIXTURE(ctl) {
	struct trace *tr, *td;	/* shared: a sequence's forked children record into them */
	int have_dut;
};

FIXTURE_SETUP(ctl)
{
	uint64_t f64, extra;
	int r;

	ASSERT_EQ(0, unshare(CLONE_NEWNET)) TH_LOG("unshare(CLONE_NEWNET): %s", strerror(errno));
	ASSERT_EQ(0, setup_memory()) TH_LOG("guest memory: %s", strerror(errno));
	self->tr = mmap(NULL, sizeof(struct trace), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	self->td = mmap(NULL, sizeof(struct trace), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->tr);
	ASSERT_NE(MAP_FAILED, self->td);
	r = query_features(REF, ref_feat, &ref_bfeat, &f64, &extra);
	if (r)
		SKIP(return, "REF %s unusable (%s): modprobe vhost_net", REF, strerror(-r));
	r = query_features(DUT, dut_feat, &dut_bfeat, &f64, &extra);
	self->have_dut = r == 0;
	if (!self->have_dut) {
		ktap_diag("DUT %s missing or unusable (%s): running REF only", DUT, strerror(-r));
		memcpy(dut_feat, ref_feat, sizeof(dut_feat));
		dut_bfeat = ref_bfeat;
	}
	com_feat[0] = ref_feat[0] & dut_feat[0];
	com_feat[1] = ref_feat[1] & dut_feat[1];
	com_bfeat = ref_bfeat & dut_bfeat;
}

FIXTURE_TEARDOWN(ctl)
{
}

/*
 * A sequence on REF, checked against the expectations read from the C code; then on DUT,
 * compared step by step with REF. Without DUT, a SKIP that says REF met the expectations.
 */
static void ctl_seq(struct __test_metadata *_metadata, FIXTURE_DATA(ctl) *self,
		    void (*fn)(struct ctx *))
{
	int ok, r;

	r = run_on(REF, fn, self->tr);
	ASSERT_EQ(0, r) TH_LOG("open %s: %s", REF, strerror(-r));
	ok = check_expectations(self->tr);
	if (!self->have_dut) {
		ASSERT_TRUE(ok) TH_LOG("REF missed the expectations above");
		SKIP(return, "DUT %s missing, REF met expectations (%d steps)", DUT, self->tr->n);
	}
	r = run_on(DUT, fn, self->td);
	ASSERT_EQ(0, r) TH_LOG("open %s: %s", DUT, strerror(-r));
	ok &= compare(self->tr, self->td);
	ASSERT_TRUE(ok) TH_LOG("see the steps above");
}

/* DUT's feature words are a subset of REF's; lists what DUT lacks. */
TEST_F(ctl, features_subset)
{
	ktap_diag("REF %s features %#llx %#llx backend %#llx", REF,
		  (unsigned long long)ref_feat[0], (unsigned long long)ref_feat[1],
		  (unsigned long long)ref_bfeat);
	if (!self->have_dut)
		SKIP(return, "DUT %s missing", DUT);
	ktap_diag("DUT %s features %#llx %#llx backend %#llx", DUT,
		  (unsigned long long)dut_feat[0], (unsigned long long)dut_feat[1],
		  (unsigned long long)dut_bfeat);
	ASSERT_TRUE(features_subset(REF, DUT));
}

/*
 * The feature set vhost_net.ko 7.3 offers, exactly (net.c's vhost_net_bits and
 * VHOST_NET_BACKEND_FEATURES): REF must offer it and the DUT it plus DUT_FEAT0, no bit
 * more, no bit less, so that a bit we lack (or REF lost, or either gained) fails here
 * instead of being skipped.
 */
#define PINNED_FEAT0 (B(VIRTIO_F_NOTIFY_ON_EMPTY) | B(VIRTIO_RING_F_INDIRECT_DESC) |	\
		      B(VIRTIO_RING_F_EVENT_IDX) | B(VHOST_F_LOG_ALL) |			\
		      B(VIRTIO_F_ANY_LAYOUT) | B(VIRTIO_F_VERSION_1) |			\
		      B(VIRTIO_NET_F_MRG_RXBUF) | B(VIRTIO_F_ACCESS_PLATFORM) |		\
		      B(VIRTIO_F_RING_RESET) | B(VIRTIO_F_IN_ORDER))
#define PINNED_FEAT1 (B(VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64) |			\
		      B(VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64))
#define PINNED_BFEAT B(VHOST_BACKEND_F_IOTLB_MSG_V2)

static int features_pinned(const char *dev, uint64_t add0)
{
	uint64_t f[2], bf, f64, extra;
	int r = query_features(dev, f, &bf, &f64, &extra);

	if (r) {
		ktap_diag("%s: feature queries: %s", dev, strerror(-r));
		return 0;
	}
	if (f[0] != (PINNED_FEAT0 | add0) || f[1] != PINNED_FEAT1 || bf != PINNED_BFEAT) {
		ktap_diag("%s offers features %#llx %#llx backend %#llx; expected %#llx %#llx "
			  "backend %#llx (vhost_net.ko 7.3's, plus %#llx)", dev,
			  (unsigned long long)f[0], (unsigned long long)f[1], (unsigned long long)bf,
			  (unsigned long long)(PINNED_FEAT0 | add0), (unsigned long long)PINNED_FEAT1,
			  (unsigned long long)PINNED_BFEAT, (unsigned long long)add0);
		return 0;
	}
	return 1;
}

TEST_F(ctl, features_pinned)
{
	int ref = features_pinned(REF, 0);

	if (!self->have_dut) {
		ASSERT_TRUE(ref);
		SKIP(return, "DUT %s missing", DUT);
	}
	ASSERT_TRUE(features_pinned(DUT, DUT_FEAT0) & ref);
}

/* The sequences, in the order they ran before (the harness runs tests in source order). */
#define SEQ(n) TEST_F_TIMEOUT(ctl, n, 120) { ctl_seq(_metadata, self, seq_##n); }
SEQ(open_defaults)
SEQ(owner_required)
SEQ(owner_check_order)
SEQ(set_owner_twice)
SEQ(reset_owner_cycle)
SEQ(reset_owner_empty_memtable)
SEQ(fork_child_not_owner)
SEQ(fork_child_becomes_owner)
SEQ(features_set_get)
SEQ(features_each_bit)
SEQ(features_array_each_bit)
SEQ(features_array_get)
SEQ(features_array_set)
SEQ(backend_features)
SEQ(backend_features_each_bit)
SEQ(fork_owner)
SEQ(fork_owner_kthread)
SEQ(mem_table_counts)
SEQ(mem_table_regions)
SEQ(mem_table_checked_when_attached)
SEQ(log_base)
SEQ(log_base_attached)
SEQ(log_fd)
SEQ(vring_num)
SEQ(vring_busy_attached)
SEQ(vring_addr)
SEQ(vring_addr_attached)
SEQ(vring_base)
SEQ(vring_kick)
SEQ(vring_call)
SEQ(vring_err)
SEQ(vring_endian)
SEQ(busyloop)
SEQ(backend_index)
SEQ(backend_before_memtable)
SEQ(backend_not_socket)
SEQ(backend_tun_unattached)
SEQ(backend_tap)
SEQ(backend_tap_replace)
SEQ(backend_packet_socket)
SEQ(reset_owner_with_backend)
SEQ(unknown_ioctls)
SEQ(worker_ioctls)
SEQ(other_vhost_ioctls)
SEQ(bad_pointers_owned)
SEQ(log_all_feature)
SEQ(access_platform_feature)
SEQ(close_busy)

TEST_HARNESS_MAIN
