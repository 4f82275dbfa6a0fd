// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_fuzz: a seeded, structure-aware fuzzer of the guest side of a vhost-net device.
 *
 * Each episode (one seed) opens the device, acks a random subset of its features, gives it
 * the three-region guest memory of guest.h (regions A and B swapped in the mapping, C behind
 * a gap, PROT_NONE guard pages around the whole mapping), rings of a random size and a tap,
 * and then plays the guest for a random number of steps: random and adversarial descriptor
 * chains (lengths of 0 to 4 GiB, addresses in holes, past the end of memory or across
 * regions, loops, next out of range, nested or misaligned indirect tables, writable
 * descriptors on TX and read-only ones on RX), virtio-net headers with random flags, GSO
 * types and offsets over plausible TCP/UDP frames, avail indexes that jump, heads out of
 * range, flags and event indexes at random, kicks or none, frames injected into the tap at
 * random sizes, backends detached and attached again. The same seed gives the same episode
 * on both devices. Among the features are IN_ORDER and ACCESS_PLATFORM: with the latter the
 * guest's addresses are IOVAs, mapped (identity, as v1 or v2 messages) whole or not at all at
 * first, then churned: ranges invalidated and mapped again with random permissions, hostile
 * messages (bad types, sizes, wrapping ranges, no permission), and misses answered a page or
 * a region at a time (one outside guest memory maps a scratch page with guard pages).
 *
 * Packed mode: when the device offers VIRTIO_F_RING_PACKED (only /dev/vhost-rs-net does),
 * one episode in three, chosen from the seed alone (so a seed plays the same either way, and
 * on vhost_net, which lacks the bit, every episode is a split one), acks RING_PACKED besides
 * the random subset and plays a packed driver on both queues: at F_RING_GPA(q) the
 * descriptor ring (+0, 16 * num bytes), the driver event area (+0x1000, read by the device)
 * and the device event area (+F_USED_OFF, written by it), SET_VRING_BASE 0x80008000 (after
 * a hostile value now and then: refused, or kept when it names slots in the ring). Chains go
 * in at the driver's position with AVAIL = its wrap counter and USED = the inverse, the
 * buffer id in every descriptor, the head's flags written last, from the same generators
 * as split chains; hostile ones add wrong AVAIL/USED pairs, a later descriptor carrying the
 * last lap's flags, INDIRECT with NEXT, any 16-bit id (ids are reused while in flight
 * anyway), chains longer than the ring, heads never published or published first; damage
 * adds random driver area flags (ENABLE, DISABLE, DESC, 3) and off_wrap, random bytes over
 * descriptor slots, stale or random flags at the driver's position, and position jumps.
 * The driver walks its used position now and then (a slot is used when AVAIL and USED both
 * equal its used wrap counter; it skips the slots that id's chain took).
 *
 * Invariants checked after every episode (a failure prints the seed to replay it):
 * - the device answers: detaching the backends and GET_VRING_BASE succeed, and no ioctl or
 *   episode takes longer than the watchdog allows (a hang is reported, then the program
 *   exits);
 * - no byte of guest memory changed except the used rings and bytes that some
 *   device-writable descriptor of this episode described (every writable descriptor the
 *   fuzzer writes lies inside the RX arena or wholly outside guest memory; everything else
 *   is compared against a shadow copy); in a packed episode, instead of the used rings,
 *   the device areas (4 bytes) and bytes 8..15 (len, id, flags) of every descriptor slot,
 *   never bytes 0..7 (the address);
 * - every used element names a head this episode put in the avail ring; packed: every used
 *   descriptor the driver's walk reads (during the episode, and after the quiesce) names an
 *   id the episode wrote into that queue's descriptor ring, and so does every slot of the
 *   ring after the quiesce (an id there was written either by the fuzzer or by the device
 *   as a used id; a read that races with the device is read again before it counts);
 * - another device running sane traffic at the same time still moves a frame each way;
 * - after RESET_OWNER the fuzzed device, set up afresh, moves a frame each way;
 * - the kernel log has no BUG, WARNING, KASAN, lockdep, RCU stall or hung task line.
 *
 * One test, fuzz.<device>.episodes of the kernel's kselftest_harness.h, per device (variants
 * vhost_net and vhost_rs_net, the same seeds on both), in a process and network namespace of
 * its own; a device that is not there skips its test. `-v vhost_rs_net` runs one device.
 * Environment: VHOST_FUZZ_SECONDS (run time of both devices together, default 60: half
 * each), VHOST_FUZZ_SEED (first seed, default 1), VHOST_FUZZ_EPISODES (stop after this many
 * episodes per device; default no limit), VHOST_FUZZ_VERBOSE=1 (one line per episode).
 * Replay one episode: VHOST_FUZZ_SEED=S VHOST_FUZZ_EPISODES=1 tests/bin/vhost_fuzz -v DEVICE
 * (DEVICE: vhost_net or vhost_rs_net). The summary line counts the packed episodes (0 on
 * vhost_net); with VHOST_FUZZ_VERBOSE=1 the line of a packed episode says so.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <linux/virtio_net.h>
#include "kselftest_harness.h"
#include "vhost_test.h"
#include "guest.h"
#include "frames.h"

#define RX 0
#define TX 1

/* Guest-physical layout of the fuzzed device (regions A and B, 4 MiB, no gap between). */
#define F_RING_GPA(q)	((uint64_t)(q) * 0x4000)	/* desc +0, avail +0x1000, used +0x2000 */
#define F_USED_OFF	0x2000
#define F_IND_GPA	0x8000ULL			/* indirect tables */
#define F_IND_END	0x20000ULL
#define F_TX_GPA	0x20000ULL			/* TX data arena */
#define F_TX_END	0x180000ULL
#define F_RX_GPA	0x180000ULL			/* RX arena: the only writable target */
#define F_RX_END	0x400000ULL			/* = end of region B; a hole follows */
/* The sane companion device: region C, first 2 MiB; the rest of C is a canary. */
#define S_BASE		G_C_GPA
#define S_END		(G_C_GPA + 0x200000ULL)
#define F_MEM_END	(G_C_GPA + G_C_SIZE)			/* end of guest memory */

#define MAX_NUM		256
#define FRAME_MAX	9000

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	/* splitmix64 */
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rn(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

static bool chance(struct rng *r, unsigned int pct)
{
	return rn(r, 100) < pct;
}

static struct guest G;
static uint8_t *scratch;		/* one page, guard pages around: misses outside memory */
static uint8_t *shadow;			/* what guest memory must hold, but for allowed bytes */
static uint8_t *rx_written;		/* per byte of the RX arena: described writable */
static int kmsg_fd = -1;

/* Watchdog: the main thread stamps its progress; a stall of WATCHDOG_S seconds is a hang. */
#define WATCHDOG_S 120
static _Atomic long long progress_ms;
static char wd_what[256];
static _Atomic int wd_armed;

static void stamp(const char *what)
{
	atomic_store(&progress_ms, now_ms());
	if (what)
		snprintf(wd_what, sizeof(wd_what), "%s", what);
}

static void *watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(2);
		if (atomic_load(&wd_armed) && now_ms() - atomic_load(&progress_ms) > WATCHDOG_S * 1000) {
			printf("# HANG: no progress for %d s in %s: the device stopped answering\n",
			       WATCHDOG_S, wd_what);
			fflush(stdout);
			_exit(3);
		}
	}
	return NULL;
}

/* ---- guest memory with guard pages and a shadow ------------------------------------------ */

static int fuzz_guest_init(void)
{
	size_t guard = 64 << 10;
	uint8_t *res;

	G.memfd = memfd_create("vhost-fuzz-guest", MFD_CLOEXEC);
	if (G.memfd < 0 || ftruncate(G.memfd, G_MEM_SIZE) < 0)
		return -errno;
	res = mmap(NULL, G_MEM_SIZE + 2 * guard, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	G.mem = mmap(res + guard, G_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		     G.memfd, 0);
	if (G.mem == MAP_FAILED)
		return -errno;
	res = mmap(NULL, 3 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED || mprotect(res + 4096, 4096, PROT_READ | PROT_WRITE))
		return -errno;
	scratch = res + 4096;
	shadow = malloc(G_MEM_SIZE);
	rx_written = malloc(F_RX_END - F_RX_GPA);
	if (!shadow || !rx_written)
		return -ENOMEM;
	return 0;
}

/* Fills all guest memory with a pattern of the seed and makes it the shadow. */
static void mem_reset(struct rng *r)
{
	uint64_t *p = (uint64_t *)G.mem, x = rnd(r);
	size_t i;

	for (i = 0; i < G_MEM_SIZE / 8; i++)
		p[i] = x + i * 0x0101010101010101ULL;
	memcpy(shadow, G.mem, G_MEM_SIZE);
	memset(rx_written, 0, F_RX_END - F_RX_GPA);
}

/* A write by the guest (the fuzzer): to memory and to the shadow. */
static void gw(uint64_t gpa, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		uint64_t contig;
		uint8_t *h = g_hva(&G, gpa, &contig);
		size_t n;

		if (!h)
			return;
		n = len < contig ? len : contig;
		memcpy(h, p, n);
		memcpy(shadow + (h - G.mem), p, n);
		p += n;
		gpa += n;
		len -= n;
	}
}

static void gw16(uint64_t gpa, uint16_t v)
{
	gw(gpa, &v, 2);
}

/* Marks [gpa, gpa + len) as described device-writable (the part inside the RX arena). */
static void mark_writable(uint64_t gpa, uint64_t len)
{
	uint64_t s = gpa, e = gpa + len;

	if (e < s)
		e = UINT64_MAX;
	if (s < F_RX_GPA)
		s = F_RX_GPA;
	if (e > F_RX_END)
		e = F_RX_END;
	if (s < e)
		memset(rx_written + (s - F_RX_GPA), 1, e - s);
}

/*
 * Offset of guest memory bytes the device may change, in the memfd: true if allowed. A
 * packed ring (@packed) has the device write its device area (4 bytes) and len, id and
 * flags (bytes 8..15) of descriptor slots, never their address; a split ring its used ring.
 */
static bool write_allowed(size_t off, unsigned int num, bool packed)
{
	unsigned int i;

	for (i = 0; i < G_NREGIONS; i++) {
		const struct g_region *g = &g_regions[i];
		uint64_t gpa;

		if (off < g->off || off - g->off >= g->size)
			continue;
		gpa = g->gpa + (off - g->off);
		if (gpa >= S_BASE && gpa < S_END)
			return true;		/* the sane device's rings and buffers */
		if (gpa >= F_RX_GPA && gpa < F_RX_END)
			return rx_written[gpa - F_RX_GPA];
		for (unsigned int q = 0; q < 2; q++) {
			uint64_t u = F_RING_GPA(q) + F_USED_OFF, dr = F_RING_GPA(q);

			if (packed) {
				if (gpa >= u && gpa < u + 4)
					return true;
				if (gpa >= dr && gpa < dr + 16ULL * num)
					return (gpa - dr) % 16 >= 8;
			} else if (gpa >= u && gpa < u + 6 + 8ULL * num) {
				return true;
			}
		}
		return false;
	}
	return false;
}

/* Compares memory with the shadow; describes the first difference. Returns the count. */
static size_t mem_check(unsigned int num, bool packed, char *why, size_t cap)
{
	size_t off, bad = 0;

	for (off = 0; off < G_MEM_SIZE; off += 4096) {
		size_t i;

		if (!memcmp(G.mem + off, shadow + off, 4096))
			continue;
		for (i = off; i < off + 4096; i++) {
			if (G.mem[i] == shadow[i] || write_allowed(i, num, packed))
				continue;
			if (!bad++)
				snprintf(why, cap, "memfd offset %#zx changed (%#x, expected %#x)", i,
					 G.mem[i], shadow[i]);
		}
	}
	return bad;
}

/* ---- kernel log ---------------------------------------------------------------------------- */

/* Reads new kernel log lines; returns the number of bad ones, the first in @why. */
static int kmsg_check(char *why, size_t cap)
{
	static const char *const bad[] = { "BUG", "WARNING", "KASAN", "lockdep", "possible circular",
		"possible recursive", "rcu_sched", "rcu_preempt", "hung_task", "blocked for more",
		"Oops", "general protection", "kmemleak", "scheduling while atomic",
		"sleeping function called", "UBSAN" };
	char line[2048];
	int n = 0;
	ssize_t len;

	if (kmsg_fd < 0)
		return 0;
	while ((len = read(kmsg_fd, line, sizeof(line) - 1)) != 0) {
		unsigned int i;

		if (len < 0) {
			if (errno == EPIPE)
				continue;	/* overwritten records: go on */
			break;
		}
		line[len] = 0;
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			if (strstr(line, bad[i])) {
				if (!n++)
					snprintf(why, cap, "kernel log: %.200s", strchr(line, ';') ?
						 strchr(line, ';') + 1 : line);
				break;
			}
	}
	return n;
}

/* ---- one device, set up by the fuzzer ------------------------------------------------------ */

struct fq {
	unsigned int num;
	uint16_t avail_idx;	/* the next avail index we publish */
	int kick, call, err;
	uint8_t heads_seen[MAX_NUM + 1];	/* heads put in the avail ring this episode */
	/* Packed: the driver's avail and used positions with their wrap counters, and every
	 * id this episode wrote into the descriptor ring (a bit each). */
	uint16_t pa_idx, pu_idx;
	bool pa_wrap, pu_wrap;
	uint8_t ids_seen[65536 / 8];
};

struct fdev {
	int vfd;
	struct tap t;
	int snd;		/* packet socket injecting frames into the tap (the guest's RX) */
	uint64_t features;
	unsigned int hlen;	/* the virtio-net header the guest writes on TX */
	bool v2;		/* IOTLB messages as struct vhost_msg_v2 */
	bool packed;		/* VIRTIO_F_RING_PACKED acked: a packed guest */
	struct fq q[2];
};

struct stats {
	unsigned long long episodes, chains[2], hostile, frames, kicks, errs, steps, calls, misses;
	unsigned long long packed;	/* episodes played with packed rings */
	unsigned long long used;	/* used descriptors the packed driver read back */
};

/* Everything vhost-net offers but LOG_ALL (logging needs a log region: see the note) and
 * RING_RESET (nothing to fuzz: it changes no ioctl). */
#define FUZZ_FEATURES ((1ULL << VIRTIO_F_NOTIFY_ON_EMPTY) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
		       (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VHOST_NET_F_VIRTIO_NET_HDR) | \
		       (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MRG_RXBUF) | \
		       (1ULL << VIRTIO_F_IN_ORDER) | (1ULL << VIRTIO_F_ACCESS_PLATFORM))
#define F_AP (1ULL << VIRTIO_F_ACCESS_PLATFORM)
#ifndef VIRTIO_F_RING_PACKED
#define VIRTIO_F_RING_PACKED 34
#endif
#define F_PACKED (1ULL << VIRTIO_F_RING_PACKED)

/* A packed ring descriptor (struct pvirtq_desc), host-endian (the tests run little-endian). */
struct pdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t id, flags;
};

/* Per queue of a packed episode: the slots the last chain made available with an id took
 * (the driver's used walk skips them), 0 if none. */
static uint16_t p_id_ndesc[2][65536];

static void id_mark(struct fq *q, uint16_t id)
{
	q->ids_seen[id >> 3] |= 1 << (id & 7);
}

static bool id_seen(const struct fq *q, uint16_t id)
{
	return q->ids_seen[id >> 3] & (1 << (id & 7));
}

static int set_backend(int vfd, unsigned int idx, int fd)
{
	struct vhost_vring_file f = { .index = idx, .fd = fd };

	return ioctl(vfd, VHOST_NET_SET_BACKEND, &f) < 0 ? -errno : 0;
}

static void fq_close(struct fq *q)
{
	if (q->kick >= 0)
		close(q->kick);
	if (q->call >= 0)
		close(q->call);
	if (q->err >= 0)
		close(q->err);
	q->kick = q->call = q->err = -1;
}

/*
 * Rings of @num entries at F_RING_GPA(q), zeroed, with kick/call/err eventfds. Packed
 * (d->packed): the descriptor ring at +0, the driver area at +0x1000, the device area at
 * +F_USED_OFF, base 0x80008000, sometimes after a hostile base (which, if the device takes
 * it and it names slots in the ring, the driver adopts); only then is @r used, so split
 * episodes draw what they always drew.
 */
static int fq_setup(struct rng *r, struct fdev *d, unsigned int qi, unsigned int num,
		    const char **what)
{
	struct fq *q = &d->q[qi];
	uint64_t base = F_RING_GPA(qi);
	struct vhost_vring_state s = { .index = qi, .num = num };
	struct vhost_vring_addr a = {
		.index = qi,
		.desc_user_addr = (uint64_t)(uintptr_t)g_hva(&G, base, NULL),
		.avail_user_addr = (uint64_t)(uintptr_t)g_hva(&G, base + 0x1000, NULL),
		.used_user_addr = (uint64_t)(uintptr_t)g_hva(&G, base + F_USED_OFF, NULL),
	};
	struct vhost_vring_file f = { .index = qi };
	static const uint8_t zero[0x4000];

	/* With ACCESS_PLATFORM the ring addresses are IOVAs too: the GPAs, mapped identity. */
	if (d->features & F_AP) {
		a.desc_user_addr = base;
		a.avail_user_addr = base + 0x1000;
		a.used_user_addr = base + F_USED_OFF;
	}
	q->num = num;
	q->avail_idx = 0;
	memset(q->heads_seen, 0, sizeof(q->heads_seen));
	q->heads_seen[0] = 1;		/* an avail ring entry never written reads as head 0 */
	q->pa_idx = q->pu_idx = 0;
	q->pa_wrap = q->pu_wrap = true;
	memset(q->ids_seen, 0, sizeof(q->ids_seen));
	id_mark(q, 0);			/* a slot never written reads as id 0 */
	memset(p_id_ndesc[qi], 0, sizeof(p_id_ndesc[qi]));
	gw(base, zero, sizeof(zero));
	q->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	*what = "eventfd";
	if (q->kick < 0 || q->call < 0 || q->err < 0)
		return -errno;
	*what = "VHOST_SET_VRING_NUM";
	if (ioctl(d->vfd, VHOST_SET_VRING_NUM, &s) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_BASE";
	s.num = 0;
	if (d->packed) {
		bool fresh = true;

		if (chance(r, 20)) {
			uint32_t v;

			switch (rn(r, 4)) {
			case 0: v = rnd(r); break;
			case 1: v = rn(r, 2 * num) | (uint32_t)rn(r, 2 * num) << 16; break;
			case 2: v = PVR_BASE_START & (rn(r, 2) ? 0xffff : 0xffff0000u); break;
			default: v = rn(r, num) | (uint32_t)rn(r, 2) << 15 |
				     (uint32_t)(rn(r, num) | rn(r, 2) << 15) << 16;
			}
			s.num = v;
			if (!ioctl(d->vfd, VHOST_SET_VRING_BASE, &s) && chance(r, 50)) {
				/* Taken: the device reads 0x8000 alone as a fresh ring. */
				if (v == 0x8000)
					v = PVR_BASE_START;
				if ((v & 0x7fff) < num && (v >> 16 & 0x7fff) < num) {
					q->pa_idx = v & 0x7fff;
					q->pa_wrap = v >> 15 & 1;
					q->pu_idx = v >> 16 & 0x7fff;
					q->pu_wrap = v >> 31;
					fresh = false;
				}
			}
		}
		s.num = PVR_BASE_START;
		if (fresh && ioctl(d->vfd, VHOST_SET_VRING_BASE, &s) < 0)
			return -errno;
	} else if (ioctl(d->vfd, VHOST_SET_VRING_BASE, &s) < 0) {
		return -errno;
	}
	*what = "VHOST_SET_VRING_ADDR";
	if (ioctl(d->vfd, VHOST_SET_VRING_ADDR, &a) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_KICK";
	f.fd = q->kick;
	if (ioctl(d->vfd, VHOST_SET_VRING_KICK, &f) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_CALL";
	f.fd = q->call;
	if (ioctl(d->vfd, VHOST_SET_VRING_CALL, &f) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_ERR";
	f.fd = q->err;
	if (ioctl(d->vfd, VHOST_SET_VRING_ERR, &f) < 0)
		return -errno;
	return 0;
}

static uint64_t ev_read(int fd)
{
	uint64_t v = 0;

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static void kick(struct fq *q)
{
	uint64_t one = 1;

	if (write(q->kick, &one, sizeof(one)) < 0) {
		/* an eventfd write cannot fail here but for overflow */
	}
}

/* ---- generators ---------------------------------------------------------------------------- */

/* A guest-physical address for a device-readable buffer: anywhere, often somewhere odd. */
static uint64_t any_gpa(struct rng *r)
{
	switch (rn(r, 12)) {
	case 0: return rn(r, G_MEM_SIZE);				/* rings, tables, anything */
	case 1: return G_AB_BOUNDARY - rn(r, 64);			/* across A/B */
	case 2: return F_RX_END - rn(r, 64);				/* running into the hole */
	case 3: return F_RX_END + rn(r, G_C_GPA - F_RX_END);		/* in the hole */
	case 4: return G_C_GPA + G_C_SIZE - rn(r, 64);			/* off the end of C */
	case 5: return UINT64_MAX - rn(r, 4096);			/* wraps */
	case 6: return rnd(r);
	default: return F_TX_GPA + rn(r, F_TX_END - F_TX_GPA);		/* TX arena */
	}
}

/* A length: small, MTU-ish, page-ish, huge. */
static uint32_t any_len(struct rng *r)
{
	switch (rn(r, 8)) {
	case 0: return 0;
	case 1: return rn(r, 16);
	case 2: return 0xffffffffu - rn(r, 16);
	case 3: return rn(r, 70000);
	default: return rn(r, 2048);
	}
}

/*
 * A device-writable buffer: inside the RX arena (possibly running off its end, which is the
 * end of guest memory) or wholly outside guest memory. Marks what it describes.
 */
static void writable_buf(struct rng *r, uint64_t *gpa, uint32_t *len)
{
	if (chance(r, 10)) {
		/* Wholly outside guest memory: in the hole before C, or at the top of the space. */
		if (chance(r, 50)) {
			*gpa = F_RX_END + rn(r, G_C_GPA - F_RX_END - 0x100000);
			*len = any_len(r);
			if (*len > G_C_GPA - *gpa)
				*len = G_C_GPA - *gpa;
		} else {
			*gpa = UINT64_MAX - rn(r, 65536);
			*len = any_len(r);
			if (*len > UINT64_MAX - *gpa)
				*len = UINT64_MAX - *gpa;
		}
		return;
	}
	/* In the RX arena; a long one runs off the end of guest memory into the hole. */
	*gpa = F_RX_GPA + rn(r, F_RX_END - F_RX_GPA);
	*len = chance(r, 5) ? any_len(r) : 1 + rn(r, chance(r, 20) ? 65536 : 2048);
	mark_writable(*gpa, *len);
}

/* A descriptor for queue @qi; @hostile allows any combination of fields. */
static void gen_desc(struct rng *r, unsigned int qi, bool hostile, unsigned int num,
		     struct vring_desc *d)
{
	bool write = qi == RX;

	if (hostile && chance(r, 15))
		write = !write;
	if (write) {
		uint64_t gpa;
		uint32_t len;

		writable_buf(r, &gpa, &len);
		d->addr = gpa;
		d->len = len;
		d->flags = VRING_DESC_F_WRITE;
	} else {
		d->addr = hostile ? any_gpa(r) : F_TX_GPA + rn(r, F_TX_END - F_TX_GPA - 2048);
		d->len = hostile ? any_len(r) : 1 + rn(r, 2048);
		d->flags = 0;
	}
	d->next = rn(r, hostile && chance(r, 10) ? 65536 : num);
	if (hostile && chance(r, 10))
		d->flags |= rn(r, 8) & VRING_DESC_F_INDIRECT;
}

/* Fills @buf with a frame: Ethernet, often IPv4/IPv6 with TCP or UDP, random payload. */
static size_t gen_frame(struct rng *r, uint8_t *buf, size_t max)
{
	size_t len = 14 + rn(r, chance(r, 70) ? 200 : max - 14), i;
	unsigned int proto = rn(r, 4);

	if (len > max)
		len = max;
	for (i = 0; i < len; i++)
		buf[i] = rnd(r);
	buf[0] &= 0xfe;			/* unicast */
	if (proto == 0 && len >= 14 + 20 + 20) {	/* IPv4/TCP */
		buf[12] = 0x08, buf[13] = 0x00;
		buf[14] = 0x45, buf[23] = 6;
		buf[16] = (len - 14) >> 8, buf[17] = len - 14;
		buf[26 + 20] = 0x50;
	} else if (proto == 1 && len >= 14 + 40 + 8) {	/* IPv6/UDP */
		buf[12] = 0x86, buf[13] = 0xdd;
		buf[14] = 0x60, buf[20] = 17;
		buf[18] = (len - 54) >> 8, buf[19] = len - 54;
	}
	return len;
}

/* A virtio-net header, sane or not. */
static void gen_hdr(struct rng *r, uint8_t *h, unsigned int hlen, size_t frame_len)
{
	struct virtio_net_hdr_v1 v = { 0 };

	if (chance(r, 50)) {
		/* random bytes */
		for (unsigned int i = 0; i < sizeof(v); i++)
			((uint8_t *)&v)[i] = rnd(r);
	} else if (chance(r, 50)) {
		static const uint8_t gso[] = { VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
			VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP_L4,
			VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN };

		v.flags = rn(r, 2) ? VIRTIO_NET_HDR_F_NEEDS_CSUM : rn(r, 8);
		v.gso_type = gso[rn(r, sizeof(gso))];
		v.hdr_len = chance(r, 50) ? 54 : rn(r, frame_len + 64);
		v.gso_size = chance(r, 50) ? 1 + rn(r, 1500) : rn(r, 65536);
		v.csum_start = chance(r, 50) ? 34 : rn(r, frame_len + 64);
		v.csum_offset = chance(r, 50) ? 16 : rn(r, 65536);
	}
	memcpy(h, &v, hlen < sizeof(v) ? hlen : sizeof(v));
}

static uint64_t ind_next = F_IND_GPA;

/* Room for an indirect table of @n entries in the indirect area (wraps around). */
static uint64_t ind_alloc(unsigned int n)
{
	uint64_t p;

	if (ind_next + 16ULL * n > F_IND_END)
		ind_next = F_IND_GPA;
	p = ind_next;
	ind_next += 16ULL * n;
	return p;
}

static uint64_t tx_next = F_TX_GPA;

static uint64_t tx_alloc(size_t len)
{
	uint64_t p;

	if (tx_next + len > F_TX_END)
		tx_next = F_TX_GPA;
	p = tx_next;
	tx_next += (len + 63) & ~63ULL;
	return p;
}

/*
 * The buffers of one chain for queue @qi, in @ds (room for 8), *@n of them (in: the count
 * for an RX chain). Sane chains are a TX packet (header, frame, split in 1-4 pieces) or RX
 * buffers; hostile ones anything the generators give. NEXT and next are the caller's.
 */
static void gen_chain(struct rng *r, struct fdev *d, unsigned int qi, bool hostile,
		      struct vring_desc *ds, unsigned int *np, struct stats *st)
{
	struct fq *q = &d->q[qi];
	unsigned int n = *np, i;

	if (hostile) {
		st->hostile++;
		n = 1 + rn(r, 8);
		for (i = 0; i < n; i++)
			gen_desc(r, qi, true, q->num, &ds[i]);
	} else if (qi == TX) {
		static uint8_t pkt[FRAME_MAX + 16];
		size_t flen = gen_frame(r, pkt + d->hlen, chance(r, 90) ? 1514 : FRAME_MAX);
		size_t total = d->hlen + flen, off = 0;
		uint64_t gpa = tx_alloc(total);

		gen_hdr(r, pkt, d->hlen, flen);
		gw(gpa, pkt, total);
		if (n > total)
			n = total;
		for (i = 0; i < n; i++) {
			size_t piece = i + 1 == n ? total - off : rn(r, total - off - (n - 1 - i)) + 1;

			ds[i].addr = gpa + off;
			ds[i].len = piece;
			ds[i].flags = 0;
			ds[i].next = 0;
			off += piece;
		}
	} else {
		for (i = 0; i < n; i++)
			gen_desc(r, RX, false, q->num, &ds[i]);
	}
	*np = n;
}

/* Writes one chain for queue @qi with its head at descriptor @head and publishes it. */
static void post_chain(struct rng *r, struct fdev *d, unsigned int qi, bool hostile,
		       struct stats *st)
{
	struct fq *q = &d->q[qi];
	uint64_t base = F_RING_GPA(qi), avail = base + 0x1000;
	unsigned int head = rn(r, q->num), n = 1 + rn(r, 4), i;
	struct vring_desc ds[8];
	bool indirect = (d->features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC) || hostile) &&
			chance(r, 25);

	st->chains[qi]++;
	gen_chain(r, d, qi, hostile, ds, &n, st);
	if (indirect) {
		uint64_t t = ind_alloc(n);

		for (i = 0; i < n; i++) {
			if (!hostile || chance(r, 80)) {
				ds[i].next = i + 1;
				ds[i].flags = (ds[i].flags & ~VRING_DESC_F_NEXT) |
					      (i + 1 < n ? VRING_DESC_F_NEXT : 0);
			}
		}
		gw(t, ds, n * sizeof(ds[0]));
		ds[0].addr = t;
		ds[0].len = n * sizeof(ds[0]);
		if (hostile && chance(r, 30))
			ds[0].len = any_len(r);
		ds[0].flags = VRING_DESC_F_INDIRECT;
		if (hostile && chance(r, 20))
			ds[0].flags |= rn(r, 8);
		ds[0].next = 0;
		n = 1;
	} else {
		/* A chain through consecutive descriptors from the head, or scattered. */
		unsigned int idx[8];

		for (i = 0; i < n; i++)
			idx[i] = i ? (chance(r, 70) ? (idx[i - 1] + 1) % q->num : rn(r, q->num)) : head;
		for (i = 0; i < n; i++) {
			if (!hostile || chance(r, 80)) {
				ds[i].flags &= ~VRING_DESC_F_NEXT;
				if (i + 1 < n) {
					ds[i].flags |= VRING_DESC_F_NEXT;
					ds[i].next = idx[i + 1];
				}
			}
			gw(base + 16ULL * idx[i], &ds[i], sizeof(ds[i]));
		}
		n = 0;
	}
	if (n)
		gw(base + 16ULL * head, &ds[0], sizeof(ds[0]));
	/* Publish: the head in the avail ring, then the index. */
	if (hostile && chance(r, 10))
		head = rn(r, 65536);
	q->heads_seen[head < q->num ? head : MAX_NUM] = 1;
	gw16(avail + 4 + 2ULL * (q->avail_idx % q->num), head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->avail_idx++;
	gw16(avail + 2, q->avail_idx);
}

/* Random damage to ring state the guest owns. */
static void garbage(struct rng *r, struct fdev *d, unsigned int qi)
{
	struct fq *q = &d->q[qi];
	uint64_t base = F_RING_GPA(qi), avail = base + 0x1000;
	struct vring_desc ds;
	uint16_t v;

	switch (rn(r, 6)) {
	case 0:		/* the avail index jumps (sometimes further than the ring) */
		q->avail_idx += chance(r, 50) ? q->num + rn(r, 65536) : rn(r, 2 * q->num);
		gw16(avail + 2, q->avail_idx);
		/* Entries never written read as whatever is there: heads up to num - 1. */
		memset(q->heads_seen, 1, q->num);
		break;
	case 1:		/* an avail ring entry */
		v = rn(r, chance(r, 50) ? q->num : 65536);
		q->heads_seen[v < q->num ? v : MAX_NUM] = 1;
		gw16(avail + 4 + 2ULL * rn(r, q->num), v);
		break;
	case 2:		/* a descriptor */
		gen_desc(r, qi, true, q->num, &ds);
		gw(base + 16ULL * rn(r, q->num), &ds, sizeof(ds));
		break;
	case 3:		/* avail flags */
		gw16(avail, rn(r, 4));
		break;
	case 4:		/* used_event */
		gw16(avail + 4 + 2ULL * q->num, rnd(r));
		break;
	default:	/* an indirect table entry */
		gen_desc(r, qi, true, q->num, &ds);
		gw(F_IND_GPA + 16 * rn(r, (F_IND_END - F_IND_GPA) / 16), &ds, sizeof(ds));
		break;
	}
}

/* ---- the packed guest ------------------------------------------------------------------ */

/*
 * Whether the device may write [gpa, gpa + len): it lies in the RX arena (and may run off
 * it into the hole, as writable_buf() makes them) or wholly outside guest memory.
 */
static bool wr_ok(uint64_t gpa, uint64_t len)
{
	uint64_t e = gpa + len;

	if (!len)
		return true;
	if (e < gpa)
		return false;
	return (gpa >= F_RX_GPA && gpa < F_RX_END) || (gpa >= F_RX_END && e <= G_C_GPA) ||
	       gpa >= F_MEM_END;
}

/*
 * Keeps what the device may be given in a packed ring slot within the shadow's rules, for
 * slots made of random bytes, flags changed alone, and the flags a head keeps until its
 * own are written (the device sets WRITE in used descriptors, over any address): WRITE
 * stays only where the device may write (marked so), and an indirect table never lies in
 * the rings, whose slots the device rewrites (a used slot there could hold WRITE over an
 * address it must not write; nor does one run past the top of the space round to them).
 * WRITE on an INDIRECT descriptor stays: the device ignores it.
 */
static void psanitize(struct pdesc *pd)
{
	if (pd->flags & VRING_DESC_F_INDIRECT) {
		if (pd->addr < F_IND_GPA)
			pd->addr += F_IND_GPA;
		else if (pd->addr + pd->len < pd->addr)
			pd->len = -pd->addr;	/* up to the top of the space, not round to 0 */
		return;
	}
	if (!(pd->flags & VRING_DESC_F_WRITE))
		return;
	if (wr_ok(pd->addr, pd->len))
		mark_writable(pd->addr, pd->len);
	else
		pd->flags &= ~VRING_DESC_F_WRITE;
}

/*
 * Writes descriptor slot @slot of queue @qi whole (one 16-byte copy), recording its new id
 * as made available, and the two ids a device read torn between the old and the new one
 * (byte by byte) would see. With @keep_flags the slot keeps the flags it holds (a head,
 * whose flags come last).
 */
static void pslot_write(struct fdev *d, unsigned int qi, unsigned int slot, struct pdesc *pd,
			bool keep_flags)
{
	struct fq *q = &d->q[qi];
	uint64_t at = F_RING_GPA(qi) + 16ULL * slot;
	uint16_t old = 0;

	g_read(&G, at + 12, &old, 2);
	if (keep_flags)
		g_read(&G, at + 14, &pd->flags, 2);
	psanitize(pd);
	id_mark(q, pd->id);
	id_mark(q, (old & 0xff00) | (pd->id & 0x00ff));
	id_mark(q, (old & 0x00ff) | (pd->id & 0xff00));
	gw(at, pd, sizeof(*pd));
}

/*
 * Flags of a descriptor in @qi's ring at @slot (only they: the id stays; the address and
 * length there decide whether WRITE and INDIRECT may stay, as psanitize()).
 */
static void pslot_flags(unsigned int qi, unsigned int slot, uint16_t flags)
{
	uint64_t at = F_RING_GPA(qi) + 16ULL * slot;
	struct pdesc pd;

	g_read(&G, at, &pd, sizeof(pd));
	if ((flags & VRING_DESC_F_INDIRECT) && pd.addr < F_IND_GPA)
		flags &= ~VRING_DESC_F_INDIRECT;
	pd.flags = flags;
	psanitize(&pd);
	gw16(at + 14, pd.flags);
}

/* Random AVAIL/USED bits, any of the four pairs. */
static uint16_t any_avail_bits(struct rng *r)
{
	static const uint16_t pairs[4] = { 0, PVR_F_AVAIL, PVR_F_USED, PVR_F_AVAIL | PVR_F_USED };

	return pairs[rn(r, 4)];
}

/* Random AVAIL/USED bits and any of NEXT, WRITE, INDIRECT. */
static uint16_t any_flags(struct rng *r)
{
	uint16_t f = any_avail_bits(r);

	return f | rn(r, 8);
}

/*
 * Makes one chain available at the driver's position of packed queue @qi, as a packed
 * driver does: the descriptors from the position on, each with AVAIL = the wrap counter of
 * its slot and USED its inverse, the id in each (it counts in the last), the head's flags
 * last. The buffers come from gen_chain(); hostile chains add the packed ring's own faults.
 */
static void post_chain_packed(struct rng *r, struct fdev *d, unsigned int qi, bool hostile,
			      struct stats *st)
{
	struct fq *q = &d->q[qi];
	static struct vring_desc ds[MAX_NUM + 8];
	static struct pdesc rd[MAX_NUM + 8];
	unsigned int n = 1 + rn(r, 4), m, i, slot;
	bool indirect = (d->features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC) || hostile) &&
			chance(r, 25);
	uint16_t id = rn(r, q->num), idx, head_flags;
	bool wrap, head_first = false, head_never = false;

	st->chains[qi]++;
	gen_chain(r, d, qi, hostile, ds, &n, st);
	if (hostile && chance(r, 10))
		id = rnd(r);			/* any id, not one of a free list */
	if (hostile && !indirect && chance(r, 3)) {
		/* A chain longer than the ring: it runs over its own head. */
		unsigned int len = q->num + 1 + rn(r, 4);

		for (i = n; i < len; i++)
			gen_desc(r, qi, true, q->num, &ds[i]);
		n = len;
	}
	if (indirect) {
		uint64_t t = ind_alloc(n);

		/* The table: WRITE is the only flag that counts there (hostile: any). */
		for (i = 0; i < n; i++) {
			struct pdesc e = { ds[i].addr, ds[i].len, hostile ? (uint16_t)rnd(r) : 0,
					   ds[i].flags };

			if (!hostile || chance(r, 80))
				e.flags &= VRING_DESC_F_WRITE;
			gw(t + 16ULL * i, &e, sizeof(e));
		}
		rd[0] = (struct pdesc){ t, n * 16, id, VRING_DESC_F_INDIRECT };
		if (hostile && chance(r, 30))
			rd[0].len = any_len(r);
		if (hostile && chance(r, 20))
			rd[0].flags |= rn(r, 8) & ~VRING_DESC_F_INDIRECT;
		m = 1;
		if (hostile && chance(r, 30)) {
			/* INDIRECT with NEXT: one or two more descriptors after it in the ring. */
			unsigned int extra = 1 + rn(r, 2);

			rd[0].flags |= VRING_DESC_F_NEXT;
			for (m = 1; m <= extra; m++) {
				gen_desc(r, qi, true, q->num, &ds[0]);
				rd[m] = (struct pdesc){ ds[0].addr, ds[0].len, id,
							(ds[0].flags & ~VRING_DESC_F_NEXT) |
							(m < extra ? VRING_DESC_F_NEXT : 0) };
			}
		}
	} else {
		for (i = 0; i < n; i++) {
			rd[i] = (struct pdesc){ ds[i].addr, ds[i].len, id,
						ds[i].flags & (VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT) };
			if (i + 1 < n)
				rd[i].flags |= VRING_DESC_F_NEXT;
			if (hostile && chance(r, 20))	/* NEXT wrong, either way */
				rd[i].flags ^= VRING_DESC_F_NEXT;
			if (hostile && i + 1 < n && chance(r, 10))
				rd[i].id = rnd(r);	/* only the last id counts */
		}
		m = n;
	}
	/* AVAIL/USED of each slot's lap; hostile: wrong pairs, a later one a lap stale. */
	idx = q->pa_idx;
	wrap = q->pa_wrap;
	for (i = 0; i < m; i++) {
		uint16_t bits = pvr_avail_bits(wrap);

		if (hostile && chance(r, 5))
			bits = any_avail_bits(r);
		else if (hostile && i && chance(r, 8))
			bits = pvr_avail_bits(!wrap);	/* the previous lap's flags */
		rd[i].flags = (rd[i].flags & ~(PVR_F_AVAIL | PVR_F_USED)) | bits;
		psanitize(&rd[i]);
		pvr_advance(&idx, &wrap, 1, q->num);
	}
	if (hostile) {
		head_first = chance(r, 5);
		head_never = !head_first && chance(r, 3);
	}
	/* The rest of the chain, then the head but for its flags, then (released) those. */
	head_flags = rd[0].flags;
	if (head_first)
		pslot_write(d, qi, q->pa_idx, &rd[0], false);
	idx = q->pa_idx;
	wrap = q->pa_wrap;
	for (i = 1; i < m; i++) {
		pvr_advance(&idx, &wrap, 1, q->num);
		pslot_write(d, qi, idx, &rd[i], false);
	}
	slot = q->pa_idx;
	if (!head_first) {
		pslot_write(d, qi, slot, &rd[0], true);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		if (!head_never)
			pslot_flags(qi, slot, head_flags);
	}
	p_id_ndesc[qi][id] = m;
	pvr_advance(&q->pa_idx, &q->pa_wrap, m, q->num);
}

/* Random damage to a packed ring's state the guest owns. */
static void garbage_packed(struct rng *r, struct fdev *d, unsigned int qi)
{
	struct fq *q = &d->q[qi];
	uint64_t drv = F_RING_GPA(qi) + 0x1000;
	unsigned int slot = rn(r, q->num), i;
	struct vring_desc ds;
	struct pdesc pd;

	switch (rn(r, 8)) {
	case 0:		/* random bytes over a descriptor slot, or all of it */
		g_read(&G, F_RING_GPA(qi) + 16ULL * slot, &pd, sizeof(pd));
		for (i = chance(r, 30) ? 16 : 1 + rn(r, 4); i > 0; i--) {
			unsigned int at = rn(r, 16);

			((uint8_t *)&pd)[at] = rnd(r);
		}
		pslot_write(d, qi, slot, &pd, false);
		break;
	case 1:		/* a hostile descriptor with any AVAIL/USED pair */
		gen_desc(r, qi, true, q->num, &ds);
		pd.addr = ds.addr;
		pd.len = ds.len;
		pd.id = chance(r, 50) ? rn(r, q->num) : rnd(r);
		pd.flags = (ds.flags & (VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT)) | any_flags(r);
		pslot_write(d, qi, slot, &pd, false);
		break;
	case 2:		/* driver area flags: ENABLE, DISABLE, DESC or the reserved 3 */
		gw16(drv + 2, rn(r, 4));
		break;
	case 3:		/* driver area off_wrap: a position in the ring, or anything */
		if (chance(r, 50)) {
			uint16_t at = rn(r, q->num);

			gw16(drv, pvr_pos(at, rn(r, 2)));
		} else {
			gw16(drv, rnd(r));
		}
		break;
	case 4:		/* the flags at the driver's position: stale, random or available */
		pslot_flags(qi, q->pa_idx, chance(r, 30) ? (uint16_t)rnd(r) : any_flags(r));
		break;
	case 5:		/* the driver's position jumps (the device waits at its own) */
		pvr_advance(&q->pa_idx, &q->pa_wrap, rn(r, 2 * q->num), q->num);
		break;
	case 6:		/* a slot's flags only, any pair */
		pslot_flags(qi, slot, any_flags(r));
		break;
	default:	/* an indirect table entry (packed layout; only WRITE counts there) */
		gen_desc(r, qi, true, q->num, &ds);
		pd.addr = ds.addr;
		pd.len = ds.len;
		pd.id = rnd(r);
		pd.flags = ds.flags;
		gw(F_IND_GPA + 16 * rn(r, (F_IND_END - F_IND_GPA) / 16), &pd, sizeof(pd));
		break;
	}
}

/*
 * The driver's used walk on packed queue @qi: from its used position, while the slot there
 * is used in the lap of its used wrap counter (AVAIL = USED = it), the id must be one the
 * episode wrote into the ring; the walk then skips the slots of that id's last chain (1 if
 * unknown), at most one lap per call. @live: the device may be writing meanwhile, so an
 * unknown id counts only if it reads the same again a little later. 0, or -1 with @why.
 */
static int preap(struct fdev *d, unsigned int qi, bool live, struct stats *st, char *why,
		 size_t cap)
{
	struct fq *q = &d->q[qi];
	unsigned int k, skip;

	for (k = 0; k < q->num; k++) {
		uint64_t at = F_RING_GPA(qi) + 16ULL * q->pu_idx;
		uint16_t flags = 0, id = 0, flags2 = 0, id2 = 0;

		g_read(&G, at + 14, &flags, 2);
		if (!pvr_flags_used(flags, q->pu_wrap))
			break;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		g_read(&G, at + 12, &id, 2);
		if (!id_seen(q, id)) {
			if (live) {
				usleep(2000);
				g_read(&G, at + 14, &flags2, 2);
				__atomic_thread_fence(__ATOMIC_ACQUIRE);
				g_read(&G, at + 12, &id2, 2);
			}
			if (!live || (flags2 == flags && id2 == id)) {
				snprintf(why, cap, "packed queue %u: used descriptor at slot %u (wrap %d) names id %u, never made available (num %u)",
					 qi, q->pu_idx, q->pu_wrap, id, q->num);
				return -1;
			}
			break;		/* in flux: the next walk reads it again */
		}
		st->used++;
		skip = p_id_ndesc[qi][id];
		if (!skip || skip > q->num)
			skip = 1;
		pvr_advance(&q->pu_idx, &q->pu_wrap, skip, q->num);
	}
	return 0;
}

/* After the quiesce: every slot of packed queue @qi holds an id the episode wrote there. */
static int pslots_check(struct fdev *d, unsigned int qi, char *why, size_t cap)
{
	struct fq *q = &d->q[qi];
	unsigned int slot;

	for (slot = 0; slot < q->num; slot++) {
		uint16_t id = 0, flags = 0;

		g_read(&G, F_RING_GPA(qi) + 16ULL * slot + 12, &id, 2);
		g_read(&G, F_RING_GPA(qi) + 16ULL * slot + 14, &flags, 2);
		if (!id_seen(q, id)) {
			snprintf(why, cap, "packed queue %u: slot %u holds id %u (flags %#x), never made available (num %u)",
				 qi, slot, id, flags, q->num);
			return -1;
		}
	}
	return 0;
}

/* ---- the sane path: one frame each way through a device set up from scratch ------------- */

static int roundtrip(int vfd, struct tap *t, uint64_t ring_gpa, uint64_t tx_buf, uint64_t rx_buf,
		     char *why, size_t cap)
{
	struct vr rx, tx;
	const char *what = "";
	uint8_t f[256], got[2048 + 12];
	struct vr_seg s;
	int cap_fd = -1, snd = -1, r = -1, i;
	uint64_t feat = (1ULL << VIRTIO_F_VERSION_1);
	ssize_t n;

	struct ifreq ifr = { 0 };
	int sz = 12;

	/* What an earlier owner left queued in the tap, and its header, are QEMU's to reset. */
	while (read(t->fd, got, sizeof(got)) >= 0)
		;
	if (ioctl(t->fd, TUNGETIFF, &ifr) < 0 || ioctl(t->fd, TUNSETVNETHDRSZ, &sz) < 0) {
		snprintf(why, cap, "TUNGETIFF/TUNSETVNETHDRSZ: %s", strerror(errno));
		return -1;
	}
	if (!(ifr.ifr_flags & IFF_VNET_HDR))
		feat |= 1ULL << VHOST_NET_F_VIRTIO_NET_HDR;	/* the header is vhost's to add */
	if (vr_init(&rx, &G, ring_gpa) || vr_init(&tx, &G, ring_gpa + 0x4000)) {
		snprintf(why, cap, "eventfd: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vfd, VHOST_SET_FEATURES, &feat) < 0 || g_set_mem_table(&G, vfd) ||
	    vr_setup_vhost(&rx, vfd, RX, &what) || vr_setup_vhost(&tx, vfd, TX, &what) ||
	    set_backend(vfd, RX, t->fd) || set_backend(vfd, TX, t->fd)) {
		snprintf(why, cap, "sane setup (%s): %s", what, strerror(errno));
		goto out;
	}
	cap_fd = pkt_capture_open(t->ifindex, false);
	snd = pkt_sender_open();
	if (cap_fd < 0 || snd < 0) {
		snprintf(why, cap, "packet sockets: %s", strerror(-(cap_fd < 0 ? cap_fd : snd)));
		goto out;
	}
	for (i = 0; i < (int)sizeof(f); i++)
		f[i] = i * 7 + 3;
	memset(f, 0xff, 6);
	memcpy(f + 6, "\x02\x00\x00\x00\x00\x01", 6);
	f[12] = 0x88, f[13] = 0xb5;	/* local experimental ethertype */
	/* TX: header (zero) + frame, captured on the tap. */
	memset(got, 0, 12);
	memcpy(got + 12, f, sizeof(f));
	g_write(&G, tx_buf, got, 12 + sizeof(f));
	s = (struct vr_seg){ tx_buf, 12 + sizeof(f), false };
	vr_publish(&tx, vr_add(&tx, &s, 1, 0));
	vr_kick(&tx);
	n = pkt_recv(cap_fd, got, sizeof(got), 5000);
	if (n != (ssize_t)sizeof(f) || memcmp(got, f, sizeof(f))) {
		snprintf(why, cap, "sane TX frame: %s", n < 0 ? strerror(-n) : "wrong bytes");
		goto out;
	}
	/* RX: one buffer, a frame sent into the tap. */
	s = (struct vr_seg){ rx_buf, 2048, true };
	vr_publish(&rx, vr_add(&rx, &s, 1, 0));
	vr_kick(&rx);
	f[0] = 0x02;
	if (pkt_send(snd, t->ifindex, f, sizeof(f)) < 0 || !vr_wait_used(&rx, 1, 5000)) {
		snprintf(why, cap, "sane RX frame: not received");
		goto out;
	}
	g_read(&G, rx_buf, got, 12 + sizeof(f));
	if (rx.used->ring[0].len != 12 + sizeof(f) || memcmp(got + 12, f, sizeof(f))) {
		snprintf(why, cap, "sane RX frame: used len %u, bytes %s", rx.used->ring[0].len,
			 memcmp(got + 12, f, sizeof(f)) ? "differ" : "right");
		goto out;
	}
	r = 0;
out:
	set_backend(vfd, RX, -1);
	set_backend(vfd, TX, -1);
	if (cap_fd >= 0)
		close(cap_fd);
	if (snd >= 0)
		close(snd);
	vr_close(&rx);
	vr_close(&tx);
	return r;
}

/* ---- an episode ---------------------------------------------------------------------------- */

static int tap_open(struct tap *t, struct rng *r, bool vnet_hdr, char *why, size_t cap)
{
	const char *what = "";
	int e = tap_create(t, IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0),
			   vnet_hdr ? (r && chance(r, 70) ? 10 : 12) : 0, 1500 + (r ? rn(r, 7500) : 0),
			   &what);

	if (e)
		snprintf(why, cap, "tap (%s): %s", what, strerror(-e));
	return e;
}

/* ---- the device IOTLB, when ACCESS_PLATFORM is acked --------------------------------- */

/* One IOTLB message; the device's errors are its answer to hostile ones. */
static void iotlb_msg(struct fdev *d, uint8_t type, uint64_t iova, uint64_t size,
		      uint64_t uaddr, uint8_t perm)
{
	g_iotlb_write(d->vfd, d->v2, type, iova, size, uaddr, perm);
}

/* UPDATEs mapping guest memory in [gpa, gpa + len) at the same IOVAs with @perm. */
static void iotlb_map(struct fdev *d, uint64_t gpa, uint64_t len, uint8_t perm)
{
	unsigned int i;

	for (i = 0; i < G_NREGIONS; i++) {
		const struct g_region *g = &g_regions[i];
		uint64_t a = gpa > g->gpa ? gpa : g->gpa;
		uint64_t b = gpa + len < g->gpa + g->size ? gpa + len : g->gpa + g->size;

		if (a < b)
			iotlb_msg(d, VHOST_IOTLB_UPDATE, a, b - a,
				  (uint64_t)(uintptr_t)(G.mem + g->off + (a - g->gpa)), perm);
	}
}

/*
 * Answers up to 32 misses the device reported: the page of one in guest memory, or its
 * whole memory, read-write; a page outside it maps the scratch page.
 */
static void iotlb_answer(struct rng *r, struct fdev *d, struct stats *st)
{
	struct pollfd p = { .fd = d->vfd, .events = POLLIN };
	/* struct vhost_msg and struct vhost_msg_v2 both hold the iotlb message at 8. */
	uint64_t buf[9];
	const struct vhost_iotlb_msg *m = (const void *)(buf + 1);
	int k;

	for (k = 0; k < 32 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN); k++) {
		uint64_t page;

		if (read(d->vfd, buf, sizeof(buf)) != sizeof(buf) || m->type != VHOST_IOTLB_MISS)
			break;
		st->misses++;
		page = m->iova & ~0xfffULL;
		if (!g_hva(&G, m->iova, NULL))
			iotlb_msg(d, VHOST_IOTLB_UPDATE, page, 4096, (uint64_t)(uintptr_t)scratch,
				  VHOST_ACCESS_RW);
		else if (chance(r, 50))
			iotlb_map(d, page, 4096, VHOST_ACCESS_RW);
		else
			iotlb_map(d, 0, F_MEM_END, VHOST_ACCESS_RW);
	}
}

/* IOTLB churn: invalidations, remaps with random permissions, hostile messages, answers. */
static void iotlb_churn(struct rng *r, struct fdev *d, struct stats *st)
{
	uint64_t iova = (chance(r, 80) ? rn(r, F_RX_END + 0x100000) : G_C_GPA + rn(r, G_C_SIZE)) &
			~0xfffULL;
	uint64_t size = 1 + rn(r, 0x100000);
	uint8_t type;

	switch (rn(r, 6)) {
	case 0:
		iotlb_msg(d, VHOST_IOTLB_INVALIDATE, iova, chance(r, 90) ? size : -iova, 0, 0);
		break;
	case 1:
		iotlb_map(d, iova, size, rn(r, 4));
		break;
	case 2:	/* hostile: any type, size and permission, but never a usable mapping past the
		 * scratch page: an UPDATE larger than it is larger than user space, refused */
		type = rn(r, 10);
		size = rn(r, 4097);
		if (chance(r, 50))
			size = type == VHOST_IOTLB_UPDATE ? (1ULL << 63) | rnd(r) : rnd(r);
		iotlb_msg(d, type, chance(r, 50) ? iova : rnd(r), size,
			  (uint64_t)(uintptr_t)scratch, rn(r, 8));
		break;
	default:
		iotlb_answer(r, d, st);
	}
}

/*
 * Attaches the tap to queue @qi. With ACCESS_PLATFORM, rings churned out of the IOTLB make
 * that EFAULT, as in vhost.c (vhost_vq_init_access()): then the rings are mapped again and
 * it must work.
 */
static int attach(struct fdev *d, unsigned int qi)
{
	int e = set_backend(d->vfd, qi, d->t.fd);

	if (e == -EFAULT && (d->features & F_AP)) {
		iotlb_map(d, 0, F_IND_GPA, VHOST_ACCESS_RW);
		e = set_backend(d->vfd, qi, d->t.fd);
	}
	return e;
}

static int episode(const char *path, uint64_t seed, struct stats *st, char *why, size_t cap)
{
	struct rng r = { seed }, pr = { seed ^ 0x7061636b65645f31ULL };
	/* Packed or not, from the seed alone: split episodes draw from @r as they always did. */
	bool want_packed = rn(&pr, 3) == 0;
	static struct fdev d;
	struct tap st_tap = { .fd = -1 };
	int sane = -1, res = -1, steps, i, k, e;
	uint64_t offered;
	unsigned int num = 1u << rn(&r, 9);
	const char *what = "";
	char step[128];

	memset(&d, 0, sizeof(d));
	d.vfd = d.t.fd = d.snd = -1;
	for (i = 0; i < 2; i++)
		d.q[i].kick = d.q[i].call = d.q[i].err = -1;
	mem_reset(&r);
	ind_next = F_IND_GPA;
	tx_next = F_TX_GPA;
	snprintf(step, sizeof(step), "%s seed %llu: setup", path, (unsigned long long)seed);
	stamp(step);
	/* The sane companion device, in region C, working before the fuzzing starts. */
	sane = open(path, O_RDWR | O_CLOEXEC);
	if (sane < 0 || ioctl(sane, VHOST_SET_OWNER) < 0) {
		snprintf(why, cap, "companion %s: %s", path, strerror(errno));
		goto out;
	}
	if (tap_open(&st_tap, NULL, true, why, cap))
		goto out;
	d.vfd = open(path, O_RDWR | O_CLOEXEC);
	if (d.vfd < 0 || ioctl(d.vfd, VHOST_SET_OWNER) < 0 ||
	    ioctl(d.vfd, VHOST_GET_FEATURES, &offered) < 0) {
		snprintf(why, cap, "%s: open/SET_OWNER/GET_FEATURES: %s", path, strerror(errno));
		goto out;
	}
	d.features = offered & FUZZ_FEATURES & rnd(&r);
	if (want_packed && (offered & F_PACKED)) {
		d.features |= F_PACKED;
		d.packed = true;
		st->packed++;
	}
	if (ioctl(d.vfd, VHOST_SET_FEATURES, &d.features) < 0) {
		snprintf(why, cap, "SET_FEATURES %#llx: %s", (unsigned long long)d.features,
			 strerror(errno));
		goto out;
	}
	d.hlen = (d.features & ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MRG_RXBUF))) ?
		 12 : 10;
	e = g_set_mem_table(&G, d.vfd);
	if (e) {
		snprintf(why, cap, "SET_MEM_TABLE: %s", strerror(-e));
		goto out;
	}
	if (d.features & F_AP) {
		uint64_t bf = 1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2;

		d.v2 = chance(&r, 50);
		if (d.v2 && ioctl(d.vfd, VHOST_SET_BACKEND_FEATURES, &bf) < 0) {
			snprintf(why, cap, "SET_BACKEND_FEATURES IOTLB_MSG_V2: %s", strerror(errno));
			goto out;
		}
		/* All of guest memory, or the rings alone (else SET_BACKEND fails, as in
		 * vhost.c): the buffers then miss. */
		iotlb_map(&d, 0, chance(&r, 80) ? F_MEM_END : F_IND_GPA, VHOST_ACCESS_RW);
	}
	for (i = 0; i < 2; i++)
		if ((e = fq_setup(&r, &d, i, num, &what))) {
			snprintf(why, cap, "%s: %s", what, strerror(-e));
			goto out;
		}
	if (tap_open(&d.t, &r, chance(&r, 85), why, cap))
		goto out;
	d.snd = pkt_sender_open();
	if (d.snd < 0 || set_backend(d.vfd, RX, d.t.fd) || set_backend(d.vfd, TX, d.t.fd)) {
		snprintf(why, cap, "packet socket/SET_BACKEND: %s", strerror(errno));
		goto out;
	}
	steps = 20 + rn(&r, 400);
	for (i = 0; i < steps; i++) {
		unsigned int qi = rn(&r, 2), op = rn(&r, 100);
		uint8_t f[FRAME_MAX];

		snprintf(step, sizeof(step), "%s seed %llu step %d op %u", path,
			 (unsigned long long)seed, i, op);
		stamp(step);
		st->steps++;
		if (op < 35) {				/* chains, then maybe a kick */
			for (k = 1 + rn(&r, chance(&r, 20) ? 64 : 8); k > 0; k--) {
				bool hostile = chance(&r, 30);

				if (d.packed)
					post_chain_packed(&r, &d, qi, hostile, st);
				else
					post_chain(&r, &d, qi, hostile, st);
			}
			if (chance(&r, 80)) {
				kick(&d.q[qi]);
				st->kicks++;
			}
		} else if (op < 55) {			/* frames into the tap */
			for (k = 1 + rn(&r, 16); k > 0; k--) {
				size_t len = gen_frame(&r, f, chance(&r, 90) ? 1514 : sizeof(f));

				if (!pkt_send(d.snd, d.t.ifindex, f, len))
					st->frames++;
			}
		} else if (op < 70) {			/* damage */
			if (d.packed)
				garbage_packed(&r, &d, qi);
			else
				garbage(&r, &d, qi);
		} else if (op < 80) {			/* a kick with nothing new */
			kick(&d.q[qi]);
			st->kicks++;
		} else if (op < 83) {			/* the backend goes and comes back */
			if (set_backend(d.vfd, qi, -1) || attach(&d, qi)) {
				snprintf(why, cap, "seed %llu: SET_BACKEND swap: %s",
					 (unsigned long long)seed, strerror(errno));
				goto out;
			}
		} else {				/* let the device run a little */
			struct pollfd p[4] = {
				{ .fd = d.q[0].call, .events = POLLIN },
				{ .fd = d.q[1].call, .events = POLLIN },
				{ .fd = d.q[0].err, .events = POLLIN },
				{ .fd = d.q[1].err, .events = POLLIN },
			};

			if (d.features & F_AP)
				iotlb_churn(&r, &d, st);
			poll(p, 4, rn(&r, 20));
			/* The packed driver reads what was used meanwhile. */
			for (k = 0; d.packed && k < 2; k++)
				if (preap(&d, k, true, st, why, cap))
					goto out_seed;
		}
		for (k = 0; k < 2; k++) {
			st->errs += ev_read(d.q[k].err);
			st->calls += ev_read(d.q[k].call);
		}
	}
	snprintf(step, sizeof(step), "%s seed %llu: companion roundtrip", path,
		 (unsigned long long)seed);
	stamp(step);
	/* Another device, working meanwhile, is unaffected. */
	if (roundtrip(sane, &st_tap, S_BASE, S_BASE + 0x10000, S_BASE + 0x100000, why, cap)) {
		strncat(why, " (the companion device, during the fuzzing)", cap - strlen(why) - 1);
		goto out;
	}
	/* Quiesce: detaching the backends waits for the worker; then nothing may change. */
	snprintf(step, sizeof(step), "%s seed %llu: detach", path, (unsigned long long)seed);
	stamp(step);
	for (i = 0; i < 2; i++) {
		struct vhost_vring_state s = { .index = i };

		if ((e = set_backend(d.vfd, i, -1)) || ioctl(d.vfd, VHOST_GET_VRING_BASE, &s) < 0) {
			snprintf(why, cap, "seed %llu: detach/GET_VRING_BASE of queue %d: %s",
				 (unsigned long long)seed, i, strerror(e ? -e : errno));
			goto out;
		}
	}
	for (i = 0; i < 2 && d.packed; i++) {
		st->errs += ev_read(d.q[i].err);
		if (preap(&d, i, false, st, why, cap) || pslots_check(&d, i, why, cap))
			goto out_seed;
	}
	for (i = 0; i < 2 && !d.packed; i++) {
		uint16_t idx = 0;
		unsigned int u;

		st->errs += ev_read(d.q[i].err);
		g_read(&G, F_RING_GPA(i) + F_USED_OFF + 2, &idx, 2);
		for (u = 0; u < num && u < idx; u++) {
			uint32_t id;

			g_read(&G, F_RING_GPA(i) + F_USED_OFF + 4 + 8ULL * ((idx - 1 - u) % num), &id, 4);
			if (id >= num || !d.q[i].heads_seen[id]) {
				snprintf(why, cap, "seed %llu: queue %d used element names head %u, never made available (num %u)",
					 (unsigned long long)seed, i, id, num);
				goto out;
			}
		}
	}
	if (mem_check(num, d.packed, why, cap)) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "seed %llu: guest memory outside the buffers%s: %s",
			 (unsigned long long)seed, d.packed ? " (packed)" : "", why);
		snprintf(why, cap, "%s", tmp);
		goto out;
	}
	/* Usable after a reset: a new owner setup moves a frame each way. */
	snprintf(step, sizeof(step), "%s seed %llu: after RESET_OWNER", path, (unsigned long long)seed);
	stamp(step);
	if (ioctl(d.vfd, VHOST_RESET_OWNER) < 0 || ioctl(d.vfd, VHOST_SET_OWNER) < 0) {
		snprintf(why, cap, "seed %llu: RESET_OWNER/SET_OWNER: %s", (unsigned long long)seed,
			 strerror(errno));
		goto out;
	}
	if (roundtrip(d.vfd, &d.t, F_RING_GPA(0), F_TX_GPA, F_RX_GPA, why, cap)) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "seed %llu: after RESET_OWNER: %s", (unsigned long long)seed,
			 why);
		snprintf(why, cap, "%s", tmp);
		goto out;
	}
	res = 0;
	goto out;
out_seed:
	{
		char tmp[400];

		snprintf(tmp, sizeof(tmp), "seed %llu: %s", (unsigned long long)seed, why);
		snprintf(why, cap, "%s", tmp);
	}
out:
	for (i = 0; i < 2; i++)
		fq_close(&d.q[i]);
	if (d.vfd >= 0)
		close(d.vfd);
	if (sane >= 0)
		close(sane);
	if (d.snd >= 0)
		close(d.snd);
	if (d.t.fd >= 0)
		close(d.t.fd);
	if (st_tap.fd >= 0)
		close(st_tap.fd);
	st->episodes++;
	return res;
}

/* ---- the fuzzer as a test of kselftest_harness.h, one variant per device --------------- */

FIXTURE(fuzz) {
};

FIXTURE_VARIANT(fuzz) {
	const char *path, *name;
};

FIXTURE_VARIANT_ADD(fuzz, vhost_net) {
	.path = "/dev/vhost-net",
	.name = "vhost_net",
};

FIXTURE_VARIANT_ADD(fuzz, vhost_rs_net) {
	.path = "/dev/vhost-rs-net",
	.name = "vhost_rs_net",
};

FIXTURE_SETUP(fuzz)
{
	if (access(variant->path, F_OK))
		SKIP(return, "%s not present", variant->path);
	ASSERT_EQ(0, unshare(CLONE_NEWNET)) TH_LOG("unshare(CLONE_NEWNET): %s", strerror(errno));
	ASSERT_EQ(0, fuzz_guest_init()) TH_LOG("guest memory: %s", strerror(errno));
	sysctl_write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	sysctl_write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	signal(SIGPIPE, SIG_IGN);
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
}

FIXTURE_TEARDOWN(fuzz)
{
}

/*
 * Episodes from the first seed on, until half of VHOST_FUZZ_SECONDS or VHOST_FUZZ_EPISODES;
 * fails on any failed episode, on no episode at all, and on a bad kernel log line. A hang is
 * the watchdog's: it ends the process, which fails the test. The harness's own timeout is
 * far above any run time we use; the watchdog and the deadline bound it.
 */
TEST_F_TIMEOUT(fuzz, episodes, 86400)
{
	const char *dn = strrchr(variant->path, '/') + 1, *env;
	bool verbose = getenv("VHOST_FUZZ_VERBOSE") != NULL;
	uint64_t seed0 = 1, s, max_ep = UINT64_MAX;
	char why[512], kwhy[512], first[640] = "";
	long long t0, deadline;
	struct stats st = { 0 };
	double seconds = 60;
	int failed = 0, kbad = 0;
	pthread_t wd;

	if ((env = getenv("VHOST_FUZZ_SECONDS")))
		seconds = atof(env);
	if ((env = getenv("VHOST_FUZZ_SEED")))
		seed0 = strtoull(env, NULL, 0);
	if ((env = getenv("VHOST_FUZZ_EPISODES")))
		max_ep = strtoull(env, NULL, 0);
	stamp("start");
	atomic_store(&wd_armed, 1);
	ASSERT_EQ(0, pthread_create(&wd, NULL, watchdog, NULL));
	ktap_diag("%s: seeds from %llu, %.0f s; replay one: VHOST_FUZZ_SEED=S VHOST_FUZZ_EPISODES=1 tests/bin/vhost_fuzz -v %s",
		  dn, (unsigned long long)seed0, seconds / 2, variant->name);
	t0 = now_ms();
	deadline = t0 + (long long)(seconds * 500);
	for (s = seed0; s - seed0 < max_ep && now_ms() < deadline; s++) {
		long long e0 = now_ms();
		unsigned long long p0 = st.packed;
		int r;

		why[0] = 0;
		r = episode(variant->path, s, &st, why, sizeof(why));
		if (r && !failed++)
			snprintf(first, sizeof(first), "%s", why);
		if (r)
			ktap_diag("%s seed %llu: %s", dn, (unsigned long long)s, why);
		else if (verbose)
			ktap_diag("%s seed %llu: ok in %lld ms%s", dn, (unsigned long long)s,
				  now_ms() - e0, st.packed != p0 ? " (packed)" : "");
		if (kmsg_check(kwhy, sizeof(kwhy)) && !kbad++)
			ktap_diag("%s seed %llu: %s", dn, (unsigned long long)s, kwhy);
	}
	atomic_store(&wd_armed, 0);
	ktap_diag("%s: %llu episodes (%llu packed, %llu used descriptors read back; seeds %llu..%llu), %llu steps, %llu chains (RX %llu, TX %llu; %llu hostile), %llu frames injected, %llu kicks, %llu calls, %llu errors signalled, %llu IOTLB misses answered, %lld s",
		  dn, st.episodes, st.packed, st.used, (unsigned long long)seed0,
		  (unsigned long long)(seed0 + st.episodes - 1), st.steps,
		  st.chains[0] + st.chains[1], st.chains[0], st.chains[1], st.hostile, st.frames,
		  st.kicks, st.calls, st.errs, st.misses, (now_ms() - t0) / 1000);
	EXPECT_LE(0, kmsg_fd) TH_LOG("no /dev/kmsg: the kernel log could not be checked");
	EXPECT_EQ(0, failed) TH_LOG("%d episodes failed; the first: %s", failed, first);
	EXPECT_LT(0ULL, st.episodes) TH_LOG("no episode ran");
	EXPECT_EQ(0, kbad) TH_LOG("the kernel log got %d bad lines (the first above)", kbad);
}

TEST_HARNESS_MAIN
