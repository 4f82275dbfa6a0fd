/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the vhost-rs test programs: KTAP diagnostics, a memfd
 * used as guest memory, a tap/tun opener and errno names.
 */
#ifndef VHOST_TEST_H
#define VHOST_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>

/* ---- diagnostics --------------------------------------------------------- */

/*
 * A KTAP diagnostic line ("# ..."), flushed at once. The KTAP results themselves are the
 * harness's (kselftest_harness.h): every program here is a set of its tests.
 */
static inline void __attribute__((format(printf, 1, 2)))
ktap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* ---- errno names ------------------------------------------------------- */

static inline const char *errno_name(int e)
{
	switch (e) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case E2BIG: return "E2BIG";
	case ENODEV: return "ENODEV";
	case ENOBUFS: return "ENOBUFS";
	case ENOTSOCK: return "ENOTSOCK";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
	case EPFNOSUPPORT: return "EPFNOSUPPORT";
	case EBADFD: return "EBADFD";
	case EAGAIN: return "EAGAIN";
	case EIO: return "EIO";
	default: return "E?";
	}
}

/* ---- guest memory ---------------------------------------------------------- */

/* A memfd of @size bytes mapped shared into this process, or MAP_FAILED. */
static inline void *guest_mem_create(size_t size, int *memfd)
{
	void *p;
	int fd = memfd_create("vhost-guest", MFD_CLOEXEC);

	if (fd < 0)
		return MAP_FAILED;
	if (ftruncate(fd, size) < 0) {
		close(fd);
		return MAP_FAILED;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return MAP_FAILED;
	}
	*memfd = fd;
	return p;
}

/* ---- tun/tap --------------------------------------------------------------- */

/*
 * Open /dev/net/tun; if @flags is non-zero, attach it to a new interface with
 * TUNSETIFF (e.g. IFF_TAP | IFF_NO_PI | IFF_VNET_HDR). The interface is not
 * persistent and is never brought up: it goes away when the fd is closed.
 * Returns the fd or -errno.
 */
static inline int tun_open(int flags)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	int e;

	if (fd < 0)
		return -errno;
	if (!flags)
		return fd;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = flags;
	strcpy(ifr.ifr_name, "vrs%d");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

#endif /* VHOST_TEST_H */
