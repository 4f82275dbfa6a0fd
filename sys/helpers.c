// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for vhost-rs; see helpers.h. Each function mirrors the C vhost-net code it is
 * named after, so that errno values match drivers/vhost/{vhost,net}.c exactly.
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/if_packet.h>
#include <linux/if_tap.h>
#include <linux/if_tun.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/net.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/socket.h>
#include <linux/uaccess.h>
#include <net/sock.h>
#include <uapi/linux/vhost.h>

#include "helpers.h"

/*
 * Module parameters, named and typed as vhost.ko's and vhost_net.ko's. They live here, not
 * in the Rust module! macro, because its parameters are not visible in sysfs and operators
 * (and QEMU, for max_mem_regions) read them there.
 */
static ushort max_mem_regions = 64;
module_param(max_mem_regions, ushort, 0444);
MODULE_PARM_DESC(max_mem_regions,
	"Maximum number of memory regions in memory map. (default: 64)");
static int max_iotlb_entries = 2048;
module_param(max_iotlb_entries, int, 0444);
MODULE_PARM_DESC(max_iotlb_entries,
	"Maximum number of iotlb entries. (default: 2048)");
/* Accepted for compatibility with vhost_net's parameter; zero-copy TX is not built yet. */
static int experimental_zcopytx;
module_param(experimental_zcopytx, int, 0444);
MODULE_PARM_DESC(experimental_zcopytx, "Enable Zero Copy TX; 1 -Enable; 0 - Disable");
static bool fork_from_owner_default = VHOST_FORK_OWNER_TASK;
module_param(fork_from_owner_default, bool, 0444);
MODULE_PARM_DESC(fork_from_owner_default,
	"Set task mode as the default(default: Y)");

unsigned int vhost_rs_max_mem_regions(void) { return max_mem_regions; }
int vhost_rs_max_iotlb_entries(void) { return max_iotlb_entries; }
bool vhost_rs_fork_from_owner_default(void) { return fork_from_owner_default; }

int vhost_rs_eventfd_ctx_fdget(int fd, struct eventfd_ctx **out)
{
	struct eventfd_ctx *ctx = eventfd_ctx_fdget(fd);

	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	*out = ctx;
	return 0;
}

void vhost_rs_eventfd_ctx_put(struct eventfd_ctx *ctx)
{
	eventfd_ctx_put(ctx);
}

void vhost_rs_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}

int vhost_rs_eventfd_fget(int fd, struct file **out)
{
	struct file *file = eventfd_fget(fd);

	if (IS_ERR(file))
		return PTR_ERR(file);
	*out = file;
	return 0;
}

/* get_raw_socket() in drivers/vhost/net.c: only AF_PACKET SOCK_RAW sockets. */
int vhost_rs_get_raw_socket(int fd, struct socket **out)
{
	int r;
	struct socket *sock = sockfd_lookup(fd, &r);

	if (!sock)
		return -ENOTSOCK;
	if (sock->sk->sk_type != SOCK_RAW) {
		r = -ESOCKTNOSUPPORT;
		goto err;
	}
	if (sock->sk->sk_family != AF_PACKET) {
		r = -EPFNOSUPPORT;
		goto err;
	}
	*out = sock;
	return 0;
err:
	sockfd_put(sock);
	return r;
}

/* get_tap_socket() in drivers/vhost/net.c: a tun/tap or macvtap queue file. */
int vhost_rs_get_tap_socket(int fd, struct socket **out)
{
	struct file *file = fget(fd);
	struct socket *sock;

	if (!file)
		return -EBADF;
	sock = tun_get_socket(file);
	if (IS_ERR(sock))
		sock = tap_get_socket(file);
	if (IS_ERR(sock)) {
		fput(file);
		return PTR_ERR(sock);
	}
	*out = sock;
	return 0;
}

/* Drops the file reference taken by either lookup above. */
void vhost_rs_sockfd_put(struct socket *sock)
{
	sockfd_put(sock);
}

unsigned int vhost_rs_sock_poll(struct socket *sock)
{
	return (__force unsigned int)vfs_poll(sock->file, NULL);
}

bool vhost_rs_access_ok(u64 addr, u64 size)
{
	if (addr > ULONG_MAX || size > ULONG_MAX)
		return false;
	return access_ok((void __user *)(unsigned long)addr, (unsigned long)size);
}

u64 vhost_rs_clear_user(u64 addr, u64 len)
{
	return clear_user((void __user *)(unsigned long)addr, (unsigned long)len);
}

/* set_bit_to_user() in drivers/vhost/vhost.c: an atomic set of one dirty-log bit. */
int vhost_rs_set_bit_to_user(int nr, u64 addr)
{
	unsigned long log = (unsigned long)addr;
	struct page *page;
	void *base;
	int bit = nr + (log % PAGE_SIZE) * 8;
	int r;

	r = pin_user_pages_fast(log, 1, FOLL_WRITE, &page);
	if (r < 0)
		return r;
	if (r != 1)
		return -EFAULT;
	base = kmap_local_page(page);
	set_bit(bit, base);
	kunmap_local(base);
	unpin_user_pages_dirty_lock(&page, 1, true);
	return 0;
}

void vhost_rs_cond_resched(void)
{
	cond_resched();
}
