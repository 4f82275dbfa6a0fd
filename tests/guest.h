/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The driver side of a fake virtio-net guest, for the vhost data-path tests:
 * guest memory (one memfd, exposed to vhost as three regions), a split-ring
 * driver (descriptor chains, indirect tables, event idx) and a tap interface.
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
