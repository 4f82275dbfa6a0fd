/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The driver side of a fake virtio-net guest, for the vhost data-path tests:
 * guest memory (one memfd, exposed to vhost as three regions), a split-ring
 * driver (descriptor chains, indirect tables, event idx), a packed-ring driver
 * (struct pvr: the same, with explicit wrap counters) and a tap interface.
 * The AF_PACKET sockets that feed and watch the tap are in frames.h.
 *
 * Guest memory layout. The memfd (8 MiB) is mapped once; vhost sees:
 *   region A: GPA [0, 2M)         -> memfd [2M, 4M)
 *   region B: GPA [2M, 4M)        -> memfd [0, 2M)
 *   region C: GPA [1G, 1G + 4M)   -> memfd [4M, 8M)
 * A and B are contiguous in guest-physical space but swapped in the mapping,
 * so a descriptor that crosses GPA 2M must be split by the device into two
 * userspace ranges that are 2M apart (a device that only translates the
 * start address reads the wrong bytes). C sits behind a gap.
 */
#ifndef GUEST_H
#define GUEST_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/vhost.h>
#include <linux/virtio_ring.h>

#define G_MEM_SIZE	(8UL << 20)
#define G_AB_BOUNDARY	0x200000ULL		/* GPA where region A ends, B starts */
#define G_C_GPA		0x40000000ULL		/* region C, behind a gap */
#define G_C_SIZE	(4ULL << 20)

struct g_region {
	uint64_t gpa, size, off;		/* off: offset in the memfd */
};

static const struct g_region g_regions[] = {
	{ 0x0, 2ULL << 20, 2ULL << 20 },
	{ G_AB_BOUNDARY, 2ULL << 20, 0 },
	{ G_C_GPA, G_C_SIZE, 4ULL << 20 },
};
#define G_NREGIONS (sizeof(g_regions) / sizeof(g_regions[0]))

struct guest {
	int memfd;
	uint8_t *mem;
};

static inline int guest_init(struct guest *g)
{
	g->memfd = memfd_create("vhost-data-guest", MFD_CLOEXEC);
	if (g->memfd < 0)
		return -errno;
	if (ftruncate(g->memfd, G_MEM_SIZE) < 0)
		return -errno;
	g->mem = mmap(NULL, G_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
	if (g->mem == MAP_FAILED)
		return -errno;
	return 0;
}

/* Userspace address of @gpa and how many bytes are contiguous from there, or NULL. */
static inline uint8_t *g_hva(const struct guest *g, uint64_t gpa, uint64_t *contig)
{
	unsigned int i;

	for (i = 0; i < G_NREGIONS; i++) {
		const struct g_region *r = &g_regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			if (contig)
				*contig = r->size - (gpa - r->gpa);
			return g->mem + r->off + (gpa - r->gpa);
		}
	}
	return NULL;
}

static inline int g_copy(const struct guest *g, uint64_t gpa, void *buf, size_t len, bool to_guest)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t contig;
		uint8_t *h = g_hva(g, gpa, &contig);
		size_t n;

		if (!h)
			return -EFAULT;
		n = len < contig ? len : contig;
		if (to_guest)
			memcpy(h, p, n);
		else
			memcpy(p, h, n);
		p += n;
		gpa += n;
		len -= n;
	}
	return 0;
}

static inline int g_write(const struct guest *g, uint64_t gpa, const void *buf, size_t len)
{
	return g_copy(g, gpa, (void *)buf, len, true);
}

static inline int g_read(const struct guest *g, uint64_t gpa, void *buf, size_t len)
{
	return g_copy(g, gpa, buf, len, false);
}

static inline int g_set_mem_table(const struct guest *g, int vfd)
{
	struct vhost_memory *m;
	unsigned int i;
	int r;

	m = calloc(1, sizeof(*m) + G_NREGIONS * sizeof(m->regions[0]));
	if (!m)
		return -ENOMEM;
	m->nregions = G_NREGIONS;
	for (i = 0; i < G_NREGIONS; i++) {
		m->regions[i].guest_phys_addr = g_regions[i].gpa;
		m->regions[i].memory_size = g_regions[i].size;
		m->regions[i].userspace_addr = (uint64_t)(uintptr_t)(g->mem + g_regions[i].off);
	}
	r = ioctl(vfd, VHOST_SET_MEM_TABLE, m) < 0 ? -errno : 0;
	free(m);
	return r;
}

/* A bump allocator over guest-physical space. */
struct galloc {
	uint64_t cur, end;
};

static inline uint64_t galloc(struct galloc *a, uint64_t len)
{
	uint64_t p = a->cur;

	if (len > a->end - a->cur)
		return 0;
	a->cur += (len + 7) & ~7ULL;
	return p;
}

/* ---- split ring, driver side ------------------------------------------------ */

#define VR_NUM 256

struct vr_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;			/* device-writable */
};

struct vr {
	struct guest *g;
	unsigned int num;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, last_used;
	uint16_t free_stack[VR_NUM], nfree;
	uint16_t chain_len[VR_NUM];
	int kick, call;
};

/* Lays out a ring of VR_NUM entries at @gpa (needs 12 KiB, contiguous). */
static inline int vr_init(struct vr *vr, struct guest *g, uint64_t gpa)
{
	unsigned int i;

	memset(vr, 0, sizeof(*vr));
	vr->g = g;
	vr->num = VR_NUM;
	vr->desc_gpa = gpa;
	vr->avail_gpa = gpa + 16 * VR_NUM;
	vr->used_gpa = gpa + 8192;
	vr->desc = (void *)g_hva(g, vr->desc_gpa, NULL);
	vr->avail = (void *)g_hva(g, vr->avail_gpa, NULL);
	vr->used = (void *)g_hva(g, vr->used_gpa, NULL);
	memset(vr->desc, 0, 12288);
	for (i = 0; i < VR_NUM; i++)
		vr->free_stack[i] = VR_NUM - 1 - i;
	vr->nfree = VR_NUM;
	vr->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vr->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vr->kick < 0 || vr->call < 0)
		return -errno;
	return 0;
}

static inline void vr_close(struct vr *vr)
{
	if (vr->kick > 0)
		close(vr->kick);
	if (vr->call > 0)
		close(vr->call);
	vr->kick = vr->call = -1;
}

/* SET_VRING_NUM/BASE/ADDR/KICK/CALL for queue @idx. */
static inline int vr_setup_vhost(struct vr *vr, int vfd, unsigned int idx, const char **what)
{
	struct vhost_vring_state s = { .index = idx, .num = vr->num };
	struct vhost_vring_addr a = {
		.index = idx,
		.desc_user_addr = (uint64_t)(uintptr_t)vr->desc,
		.avail_user_addr = (uint64_t)(uintptr_t)vr->avail,
		.used_user_addr = (uint64_t)(uintptr_t)vr->used,
	};
	struct vhost_vring_file f = { .index = idx };

	*what = "VHOST_SET_VRING_NUM";
	if (ioctl(vfd, VHOST_SET_VRING_NUM, &s) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_BASE";
	s.num = 0;
	if (ioctl(vfd, VHOST_SET_VRING_BASE, &s) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_ADDR";
	if (ioctl(vfd, VHOST_SET_VRING_ADDR, &a) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_KICK";
	f.fd = vr->kick;
	if (ioctl(vfd, VHOST_SET_VRING_KICK, &f) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_CALL";
	f.fd = vr->call;
	if (ioctl(vfd, VHOST_SET_VRING_CALL, &f) < 0)
		return -errno;
	return 0;
}

/*
 * Adds a chain of @n segments; with @indirect_gpa != 0 as one descriptor pointing
 * at an indirect table written at that GPA. Returns the head or -1 (ring full).
 */
static inline int vr_add(struct vr *vr, const struct vr_seg *segs, unsigned int n, uint64_t indirect_gpa)
{
	unsigned int i, ndesc = indirect_gpa ? 1 : n;
	uint16_t idx[VR_NUM];

	if (!n || ndesc > vr->nfree)
		return -1;
	for (i = 0; i < ndesc; i++)
		idx[i] = vr->free_stack[--vr->nfree];
	if (indirect_gpa) {
		struct vring_desc t[64];

		if (n > 64)
			return -1;
		for (i = 0; i < n; i++) {
			t[i].addr = segs[i].gpa;
			t[i].len = segs[i].len;
			t[i].flags = (segs[i].write ? VRING_DESC_F_WRITE : 0) |
				     (i + 1 < n ? VRING_DESC_F_NEXT : 0);
			t[i].next = i + 1 < n ? i + 1 : 0;
		}
		g_write(vr->g, indirect_gpa, t, n * sizeof(t[0]));
		vr->desc[idx[0]].addr = indirect_gpa;
		vr->desc[idx[0]].len = n * sizeof(t[0]);
		vr->desc[idx[0]].flags = VRING_DESC_F_INDIRECT;
		vr->desc[idx[0]].next = 0;
	} else {
		for (i = 0; i < n; i++) {
			vr->desc[idx[i]].addr = segs[i].gpa;
			vr->desc[idx[i]].len = segs[i].len;
			vr->desc[idx[i]].flags = (segs[i].write ? VRING_DESC_F_WRITE : 0) |
						 (i + 1 < n ? VRING_DESC_F_NEXT : 0);
			vr->desc[idx[i]].next = i + 1 < n ? idx[i + 1] : 0;
		}
	}
	vr->chain_len[idx[0]] = ndesc;
	return idx[0];
}

static inline void vr_publish(struct vr *vr, int head)
{
	vr->avail->ring[vr->avail_idx & (vr->num - 1)] = head;
	vr->avail_idx++;
	__atomic_store_n(&vr->avail->idx, vr->avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void vr_kick(struct vr *vr)
{
	uint64_t one = 1;

	if (vr->kick >= 0 && write(vr->kick, &one, sizeof(one)) != sizeof(one))
		perror("kick");
}

static inline uint16_t *vr_used_event(struct vr *vr)
{
	return &vr->avail->ring[vr->num];
}

static inline uint16_t vr_avail_event(struct vr *vr)
{
	return __atomic_load_n((uint16_t *)&vr->used->ring[vr->num], __ATOMIC_ACQUIRE);
}

static inline void vr_set_used_event(struct vr *vr, uint16_t v)
{
	__atomic_store_n(vr_used_event(vr), v, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void vr_set_no_interrupt(struct vr *vr, bool on)
{
	uint16_t f = vr->avail->flags;

	f = on ? (f | VRING_AVAIL_F_NO_INTERRUPT) : (f & ~VRING_AVAIL_F_NO_INTERRUPT);
	__atomic_store_n(&vr->avail->flags, f, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline uint16_t vr_used_idx(struct vr *vr)
{
	return __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE);
}

static inline unsigned int vr_used_pending(struct vr *vr)
{
	return (uint16_t)(vr_used_idx(vr) - vr->last_used);
}

/* Takes the next used element and frees its chain. 0 if none. */
static inline int vr_get_used(struct vr *vr, uint32_t *id, uint32_t *len)
{
	struct vring_used_elem e;
	unsigned int i, d;

	if (!vr_used_pending(vr))
		return 0;
	e = vr->used->ring[vr->last_used & (vr->num - 1)];
	vr->last_used++;
	*id = e.id;
	*len = e.len;
	if (e.id >= vr->num || !vr->chain_len[e.id])
		return -1;		/* not a head we posted */
	d = e.id;
	for (i = 0; i < vr->chain_len[e.id]; i++) {
		vr->free_stack[vr->nfree++] = d;
		d = vr->desc[d].next;
	}
	vr->chain_len[e.id] = 0;
	return 1;
}

static inline long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Waits until at least @n used entries are pending; false on timeout. */
static inline bool vr_wait_used(struct vr *vr, unsigned int n, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (vr_used_pending(vr) < n) {
		if (now_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* Waits for the call eventfd; returns the number of signals read (0 on timeout). */
static inline uint64_t vr_wait_call(struct vr *vr, int timeout_ms)
{
	struct pollfd p = { .fd = vr->call, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	if (read(vr->call, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* Reads the call eventfd without waiting: signals since the last read. */
static inline uint64_t vr_take_calls(struct vr *vr)
{
	uint64_t v = 0;

	if (read(vr->call, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* ---- packed ring, driver side ------------------------------------------------ */

/*
 * The driver side of a packed virtqueue (virtio 1.x, 2.8 "Packed Virtqueues",
 * VIRTIO_F_RING_PACKED), as Linux's virtqueue_add_packed() and
 * virtqueue_get_buf_ctx_packed() drive one, with every step explicit so that the tests
 * can also break them on purpose.
 *
 * One descriptor ring serves both ways. Each side has a position in it and a wrap
 * counter; both counters start at 1 and flip each time their position passes the end of
 * the ring. The driver makes a chain available by writing its descriptors at its avail
 * position with AVAIL = its wrap counter and USED = the inverse; the chain's first
 * descriptor's flags are written last, after a release barrier, since they hand the whole
 * chain over (2.8.21.1). The buffer id goes in the chain's last descriptor (2.8.6). The
 * device writes one used descriptor per buffer (id, written length, AVAIL = USED = its
 * wrap counter, WRITE when it wrote into the buffer) at its used position, and skips the
 * slots the chain took; so does the driver, by the slot count it recorded for that id.
 * Ids come from a free list: the device must name buffers by id, never by slot.
 *
 * Two 4-byte event suppression areas ({ le16 off_wrap; le16 flags; }, flags ENABLE 0,
 * DISABLE 1, DESC 2, the last only with EVENT_IDX): the driver area, written here and
 * read by the device (do we want used buffer notifications, and with DESC from which
 * used position on), and the device area, written by the device (does it want kicks).
 * VHOST_SET_VRING_ADDR passes the descriptor ring, the driver area and the device area as
 * desc_user_addr, avail_user_addr and used_user_addr (QEMU's vhost layout).
 * VHOST_{GET,SET}_VRING_BASE carry both positions: avail | avail_wrap << 15 in the low
 * 16 bits, used | used_wrap << 15 in the high 16 (pvr_pos()).
 */
#define PVR_NUM		256		/* largest ring this driver keeps state for */
#define PVR_BASE_START	0x80008000u	/* SET_VRING_BASE of a fresh ring: positions 0, counters 1 */
#define PVR_F_AVAIL	((uint16_t)(1U << VRING_PACKED_DESC_F_AVAIL))
#define PVR_F_USED	((uint16_t)(1U << VRING_PACKED_DESC_F_USED))
#define PVR_JUNK_ID	0x4000		/* or'ed into the id of a chain's non-last descriptors */
#define PVR_AREA_GAP	64		/* bytes from the driver area to the device area */

struct pvr {
	struct guest *g;
	unsigned int num;
	uint64_t desc_gpa, drv_gpa, dev_gpa;
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *drv;	/* driver area: ours */
	struct vring_packed_desc_event *dev;	/* device area: the device's */
	uint16_t avail_idx, used_idx;		/* next slot to make available / to read used */
	bool avail_wrap, used_wrap;		/* the driver's two wrap counters */
	unsigned int slots_free;		/* slots not held by a buffer in flight */
	uint16_t free_ids[PVR_NUM], nfree;
	uint16_t id_ndesc[PVR_NUM];		/* slots the buffer took; 0: id not in flight */
	uint16_t id_slot[PVR_NUM];		/* its first slot (diagnostics) */
	uint16_t last_slot;			/* where the last chain added begins, */
	bool last_wrap;				/* and the wrap counter it was made available with */
	int kick, call, err;
};

/* @idx with wrap counter @wrap, as off_wrap and each half of VHOST_{GET,SET}_VRING_BASE. */
static inline uint16_t pvr_pos(uint16_t idx, bool wrap)
{
	return idx | (uint16_t)(wrap ? 1U << VRING_PACKED_EVENT_F_WRAP_CTR : 0);
}

/* The AVAIL/USED bits that make a descriptor available in the lap of driver counter @wrap. */
static inline uint16_t pvr_avail_bits(bool wrap)
{
	return wrap ? PVR_F_AVAIL : PVR_F_USED;
}

/* The AVAIL/USED bits of a descriptor the device used in the lap of device counter @wrap. */
static inline uint16_t pvr_used_bits(bool wrap)
{
	return wrap ? PVR_F_AVAIL | PVR_F_USED : 0;
}

/* Whether @flags mark a descriptor used in the lap of device counter @wrap (AVAIL = USED = @wrap). */
static inline bool pvr_flags_used(uint16_t flags, bool wrap)
{
	return !!(flags & PVR_F_AVAIL) == wrap && !!(flags & PVR_F_USED) == wrap;
}

/* Position @idx/@wrap moved on by @n slots in a ring of @num. */
static inline void pvr_advance(uint16_t *idx, bool *wrap, unsigned int n, unsigned int num)
{
	unsigned int i = *idx + n % num;

	if (n >= num && (n / num) % 2)
		*wrap = !*wrap;
	if (i >= num) {
		i -= num;
		*wrap = !*wrap;
	}
	*idx = (uint16_t)i;
}

/*
 * Lays out a ring of @num (<= PVR_NUM) entries at @gpa (16-aligned, 16 * @num + 68 bytes
 * contiguous in one region): the descriptor ring, the driver area right after it (so
 * 4-aligned), the device area PVR_AREA_GAP bytes further (its own cache line, as the two
 * are written by different sides). All zeroed: flags 0 is not available in the first lap
 * (AVAIL must be 1), and both event areas say ENABLE. Plus the kick, call and err
 * eventfds. 0 or -errno (-EINVAL for a bad @num or @gpa).
 */
static inline int pvr_init(struct pvr *p, struct guest *g, uint64_t gpa, unsigned int num)
{
	uint64_t contig = 0, bytes = 16ULL * num + PVR_AREA_GAP + 4;
	unsigned int i;

	memset(p, 0, sizeof(*p));
	p->kick = p->call = p->err = -1;
	if (!num || num > PVR_NUM || (gpa & 15))
		return -EINVAL;
	p->g = g;
	p->num = num;
	p->desc_gpa = gpa;
	p->drv_gpa = gpa + 16ULL * num;
	p->dev_gpa = p->drv_gpa + PVR_AREA_GAP;
	p->desc = (void *)g_hva(g, p->desc_gpa, &contig);
	if (!p->desc || contig < bytes)
		return -EINVAL;
	p->drv = (void *)g_hva(g, p->drv_gpa, NULL);
	p->dev = (void *)g_hva(g, p->dev_gpa, NULL);
	memset(p->desc, 0, bytes);
	p->avail_wrap = p->used_wrap = true;
	p->last_wrap = true;
	p->slots_free = num;
	for (i = 0; i < num; i++)
		p->free_ids[i] = num - 1 - i;
	p->nfree = num;
	p->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->kick < 0 || p->call < 0 || p->err < 0)
		return -errno;
	return 0;
}

static inline void pvr_close(struct pvr *p)
{
	if (p->kick >= 0)
		close(p->kick);
	if (p->call >= 0)
		close(p->call);
	if (p->err >= 0)
		close(p->err);
	p->kick = p->call = p->err = -1;
}

/*
 * SET_VRING_NUM, SET_VRING_BASE @base (PVR_BASE_START for a fresh ring), SET_VRING_ADDR
 * (descriptor ring, driver area, device area), KICK, CALL and ERR for queue @idx.
 * VIRTIO_F_RING_PACKED must have been set with SET_FEATURES first: the device picks the
 * layout (and the meaning of the base and addresses) from it. 0 or -errno, *what
 * naming the ioctl that failed.
 */
static inline int pvr_setup_vhost(struct pvr *p, int vfd, unsigned int idx, uint32_t base,
				  const char **what)
{
	struct vhost_vring_state s = { .index = idx, .num = p->num };
	struct vhost_vring_addr a = {
		.index = idx,
		.desc_user_addr = (uint64_t)(uintptr_t)p->desc,
		.avail_user_addr = (uint64_t)(uintptr_t)p->drv,
		.used_user_addr = (uint64_t)(uintptr_t)p->dev,
	};
	struct vhost_vring_file f = { .index = idx };

	*what = "VHOST_SET_VRING_NUM";
	if (ioctl(vfd, VHOST_SET_VRING_NUM, &s) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_BASE";
	s.num = base;
	if (ioctl(vfd, VHOST_SET_VRING_BASE, &s) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_ADDR";
	if (ioctl(vfd, VHOST_SET_VRING_ADDR, &a) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_KICK";
	f.fd = p->kick;
	if (ioctl(vfd, VHOST_SET_VRING_KICK, &f) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_CALL";
	f.fd = p->call;
	if (ioctl(vfd, VHOST_SET_VRING_CALL, &f) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_ERR";
	f.fd = p->err;
	if (ioctl(vfd, VHOST_SET_VRING_ERR, &f) < 0)
		return -errno;
	return 0;
}

/* What VHOST_GET_VRING_BASE of an idle queue must say: our avail and used positions. */
static inline uint32_t pvr_base(const struct pvr *p)
{
	return pvr_pos(p->avail_idx, p->avail_wrap) |
	       (uint32_t)pvr_pos(p->used_idx, p->used_wrap) << 16;
}

/* The id pvr_add() will give the next buffer (to place its data by id), or -1 if none is free. */
static inline int pvr_peek_id(const struct pvr *p)
{
	return p->nfree ? p->free_ids[p->nfree - 1] : -1;
}

/*
 * Makes a buffer of @n segments available under an id from the free list: @n descriptors
 * chained by NEXT, or with @indirect_gpa != 0 one INDIRECT descriptor pointing at a table
 * of @n (<= 64) written at that GPA (table entries carry only WRITE, the one flag that
 * counts there, 2.8.7). The id goes in the last descriptor; the others carry
 * id | PVR_JUNK_ID, so a device that reports the head's id shows up. The head's flags are
 * stored last, with release semantics, then a full fence orders them before the kick and
 * before any later read of the device area (Linux: virtio_wmb() and virtio_mb()).
 * Returns the id, or -1 if the ring lacks slots or ids.
 */
static inline int pvr_add(struct pvr *p, const struct vr_seg *segs, unsigned int n,
			  uint64_t indirect_gpa)
{
	unsigned int i, ndesc = indirect_gpa ? 1 : n;
	uint16_t id, slot = p->avail_idx, head_flags = 0;
	bool wrap = p->avail_wrap;

	if (!n || ndesc > p->slots_free || !p->nfree || (indirect_gpa && n > 64))
		return -1;
	id = p->free_ids[p->nfree - 1];
	if (indirect_gpa) {
		struct vring_packed_desc t[64];

		for (i = 0; i < n; i++) {
			t[i].addr = segs[i].gpa;
			t[i].len = segs[i].len;
			t[i].id = 0;
			t[i].flags = segs[i].write ? VRING_DESC_F_WRITE : 0;
		}
		if (g_write(p->g, indirect_gpa, t, n * sizeof(t[0])))
			return -1;
		p->desc[slot].addr = indirect_gpa;
		p->desc[slot].len = n * sizeof(t[0]);
		p->desc[slot].id = id;
		head_flags = VRING_DESC_F_INDIRECT | pvr_avail_bits(wrap);
		pvr_advance(&slot, &wrap, 1, p->num);
	} else {
		for (i = 0; i < n; i++) {
			uint16_t f = (segs[i].write ? VRING_DESC_F_WRITE : 0) |
				     (i + 1 < n ? VRING_DESC_F_NEXT : 0) | pvr_avail_bits(wrap);

			p->desc[slot].addr = segs[i].gpa;
			p->desc[slot].len = segs[i].len;
			p->desc[slot].id = i + 1 < n ? (uint16_t)(id | PVR_JUNK_ID) : id;
			if (i == 0)
				head_flags = f;
			else	/* ordered before the head's flags by their release store */
				__atomic_store_n(&p->desc[slot].flags, f, __ATOMIC_RELAXED);
			pvr_advance(&slot, &wrap, 1, p->num);
		}
	}
	p->nfree--;
	p->id_ndesc[id] = ndesc;
	p->id_slot[id] = p->avail_idx;
	p->last_slot = p->avail_idx;
	p->last_wrap = p->avail_wrap;
	p->slots_free -= ndesc;
	__atomic_store_n(&p->desc[p->avail_idx].flags, head_flags, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	p->avail_idx = slot;
	p->avail_wrap = wrap;
	return id;
}

/*
 * Writes descriptor @slot raw: addr, len and id, then @flags (release), and a full fence.
 * For layouts pvr_add() never makes (the hostile cases); our positions, free list and
 * slot counts do not move.
 */
static inline void pvr_put_desc(struct pvr *p, unsigned int slot, uint64_t addr, uint32_t len,
				uint16_t id, uint16_t flags)
{
	p->desc[slot].addr = addr;
	p->desc[slot].len = len;
	p->desc[slot].id = id;
	__atomic_store_n(&p->desc[slot].flags, flags, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void pvr_kick(struct pvr *p)
{
	uint64_t one = 1;

	if (p->kick >= 0 && write(p->kick, &one, sizeof(one)) != sizeof(one))
		perror("kick");
}

/* The flags of descriptor @slot, loaded with acquire semantics (what follows is read after). */
static inline uint16_t pvr_desc_flags(const struct pvr *p, unsigned int slot)
{
	return __atomic_load_n(&p->desc[slot].flags, __ATOMIC_ACQUIRE);
}

/*
 * Takes the next used descriptor, at our used position with our used wrap counter
 * (Linux's virtqueue_get_buf_ctx_packed()): *id, *len and *flags as the device wrote
 * them; then skips the slots that buffer took and frees its id. 1 if taken; 0 if the
 * descriptor there is not used yet; -1 if it is used but its id is not a buffer in flight
 * (then nothing moves; *id, *len, *flags say what was there).
 */
static inline int pvr_get_used(struct pvr *p, uint32_t *id, uint32_t *len, uint16_t *flags)
{
	const struct vring_packed_desc *d = &p->desc[p->used_idx];
	uint16_t f = pvr_desc_flags(p, p->used_idx);

	if (!pvr_flags_used(f, p->used_wrap))
		return 0;
	*flags = f;
	*id = d->id;
	*len = d->len;
	if (*id >= p->num || !p->id_ndesc[*id])
		return -1;
	pvr_advance(&p->used_idx, &p->used_wrap, p->id_ndesc[*id], p->num);
	p->slots_free += p->id_ndesc[*id];
	p->id_ndesc[*id] = 0;
	p->free_ids[p->nfree++] = *id;
	return 1;
}

/*
 * How many of the next @n used descriptors are there, walking from our used position by
 * the slot counts of the ids they name, without taking them. One whose id is not in
 * flight counts, and ends the walk: pvr_get_used() reports it.
 */
static inline unsigned int pvr_used_ready(const struct pvr *p, unsigned int n)
{
	uint16_t idx = p->used_idx;
	bool wrap = p->used_wrap;
	unsigned int k;

	for (k = 0; k < n; k++) {
		uint16_t f = pvr_desc_flags(p, idx), id;

		if (!pvr_flags_used(f, wrap))
			break;
		id = p->desc[idx].id;
		if (id >= p->num || !p->id_ndesc[id])
			return k + 1;
		pvr_advance(&idx, &wrap, p->id_ndesc[id], p->num);
	}
	return k;
}

/* Waits until @n used descriptors are there (pvr_used_ready()); false on timeout. */
static inline bool pvr_wait_used(struct pvr *p, unsigned int n, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	while (pvr_used_ready(p, n) < n) {
		if (now_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/*
 * Writes the driver area: @flags (VRING_PACKED_EVENT_FLAG_ENABLE, _DISABLE, or with
 * EVENT_IDX _DESC) and, for DESC, the used position @idx/@wrap from which on we want a
 * used buffer notification. off_wrap first, the flags that make it count after it
 * (release), then a full fence before whatever we do next (Linux's
 * virtqueue_enable_cb_prepare_packed(): off_wrap, virtio_wmb(), flags; virtio_mb()).
 */
static inline void pvr_set_driver_event(struct pvr *p, uint16_t flags, uint16_t idx, bool wrap)
{
	__atomic_store_n(&p->drv->off_wrap, pvr_pos(idx, wrap), __ATOMIC_RELAXED);
	__atomic_store_n(&p->drv->flags, flags, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Reads the device area: its flags, then (acquire) the off_wrap that goes with them. */
static inline void pvr_device_event(const struct pvr *p, uint16_t *off_wrap, uint16_t *flags)
{
	*flags = __atomic_load_n(&p->dev->flags, __ATOMIC_ACQUIRE);
	*off_wrap = __atomic_load_n(&p->dev->off_wrap, __ATOMIC_RELAXED);
}

/* Position @idx/@wrap as one number modulo two laps (wrap counter 1: the first lap). */
static inline unsigned int pvr_lin(uint16_t idx, bool wrap, unsigned int num)
{
	return (idx + (wrap ? 0 : num)) % (2 * num);
}

/*
 * Whether the chains made available since our avail position was @old_idx/@old_wrap need a
 * kick (Linux's virtqueue_kick_prepare_packed()). Call it after making them available:
 * pvr_add() ends with a full fence, so the device area is read after the descriptors are
 * visible (read before, a device that re-enables kicks in between would be missed). The
 * device area: DISABLE no; DESC (EVENT_IDX) if the position it names lies in [old, our avail
 * position), modulo two laps as vring_need_event(); ENABLE or a reserved value yes.
 */
static inline bool pvr_kick_needed(const struct pvr *p, uint16_t old_idx, bool old_wrap)
{
	unsigned int m = 2 * p->num, ev, nw, od;
	uint16_t off_wrap, flags;

	pvr_device_event(p, &off_wrap, &flags);
	if (flags == VRING_PACKED_EVENT_FLAG_DISABLE)
		return false;
	if (flags != VRING_PACKED_EVENT_FLAG_DESC)
		return true;
	ev = pvr_lin(off_wrap & 0x7fff, off_wrap >> VRING_PACKED_EVENT_F_WRAP_CTR, p->num);
	nw = pvr_lin(p->avail_idx, p->avail_wrap, p->num);
	od = pvr_lin(old_idx, old_wrap, p->num);
	return (nw + 2 * m - ev - 1) % m < (nw + m - od) % m;
}

/* Waits up to @timeout_ms for eventfd @fd; the count read, 0 on timeout. */
static inline uint64_t pvr_efd_wait(int fd, int timeout_ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	uint64_t v = 0;

	if (fd < 0 || poll(&pf, 1, timeout_ms) <= 0)
		return 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* Used buffer notifications (call eventfd) within @timeout_ms (0: only those pending). */
static inline uint64_t pvr_wait_call(struct pvr *p, int timeout_ms)
{
	return pvr_efd_wait(p->call, timeout_ms);
}

static inline uint64_t pvr_take_calls(struct pvr *p)
{
	return pvr_efd_wait(p->call, 0);
}

/* The queue's err eventfd (vq_err()) within @timeout_ms (0: only what is pending). */
static inline uint64_t pvr_wait_err(struct pvr *p, int timeout_ms)
{
	return pvr_efd_wait(p->err, timeout_ms);
}

static inline uint64_t pvr_take_err(struct pvr *p)
{
	return pvr_efd_wait(p->err, 0);
}

/* ---- tap -------------------------------------------------------------------- */

struct tap {
	int fd;
	int ifindex;
	char name[IFNAMSIZ];
};

/* Writes @val to a /proc/sys file; errors are ignored (e.g. no IPv6). */
static inline void sysctl_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, val, strlen(val)) < 0) {
		/* best effort */
	}
	close(fd);
}

/*
 * Creates a tap interface (@flags e.g. IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), sets its
 * vnet header size (if @vnet_hdr_sz) and MTU, and brings it up with IPv6 off, so
 * that the stack sends nothing of its own into it. Returns 0 or -errno, *what says
 * which step failed.
 */
static inline int tap_create(struct tap *t, int flags, int vnet_hdr_sz, int mtu, const char **what)
{
	struct ifreq ifr;
	char path[128];
	int s, e;

	t->fd = -1;
	*what = "open /dev/net/tun";
	t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (t->fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = flags;
	strcpy(ifr.ifr_name, "vdata%d");
	*what = "TUNSETIFF";
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0)
		goto err;
	memcpy(t->name, ifr.ifr_name, IFNAMSIZ);
	*what = "TUNSETVNETHDRSZ";
	if (vnet_hdr_sz && ioctl(t->fd, TUNSETVNETHDRSZ, &vnet_hdr_sz) < 0)
		goto err;
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", t->name);
	sysctl_write(path, "1");
	*what = "socket(AF_INET)";
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		goto err;
	*what = "SIOCSIFMTU";
	ifr.ifr_mtu = mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
		goto err_s;
	*what = "SIOCGIFFLAGS";
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		goto err_s;
	ifr.ifr_flags |= IFF_UP | IFF_NOARP;
	*what = "SIOCSIFFLAGS";
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		goto err_s;
	*what = "SIOCGIFINDEX";
	if (ioctl(s, SIOCGIFINDEX, &ifr) < 0)
		goto err_s;
	t->ifindex = ifr.ifr_ifindex;
	close(s);
	return 0;
err_s:
	e = errno;
	close(s);
	errno = e;
err:
	e = errno;
	close(t->fd);
	t->fd = -1;
	return -e;
}

/*
 * Writes one IOTLB message to the device file @vfd, as struct vhost_msg_v2 (@v2) or struct
 * vhost_msg. 0, -errno, or -EMSGSIZE for a short write.
 */
static inline int g_iotlb_write(int vfd, bool v2, uint8_t type, uint64_t iova, uint64_t size,
				uint64_t uaddr, uint8_t perm)
{
	struct vhost_msg_v2 m2 = { .type = VHOST_IOTLB_MSG_V2 };
	struct vhost_msg m1 = { .type = VHOST_IOTLB_MSG };
	struct vhost_iotlb_msg *m = v2 ? &m2.iotlb : &m1.iotlb;
	ssize_t n;

	m->iova = iova;
	m->size = size;
	m->uaddr = uaddr;
	m->perm = perm;
	m->type = type;
	n = v2 ? write(vfd, &m2, sizeof(m2)) : write(vfd, &m1, sizeof(m1));
	if (n < 0)
		return -errno;
	return n == (ssize_t)(v2 ? sizeof(m2) : sizeof(m1)) ? 0 : -EMSGSIZE;
}

#endif /* GUEST_H */
