// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for vhost-rs; see helpers.h. Each function mirrors the C vhost-net code it is
 * named after, so that errno values match drivers/vhost/{vhost,net}.c exactly.
 *
 * What is here, and why it is C: wrappers of inline functions and macros the Rust bindings
 * cannot reach (access_ok, get_user/put_user, cond_resched, set_current_state, the
 * ptr_ring and skb helpers, ubuf set-up), and three whole concepts built from such inline
 * pieces, each a few dozen lines: the socket lookups of net.c (get_raw_socket and
 * get_tap_socket, with their errno values), the poll entry (struct vhost_poll: poll_table
 * and wait-queue entry initialisers are inline), and the XDP TX batch (vhost_net_build_xdp
 * with tun's xdp_buff layout). The module parameters live here so that sysfs shows them.
 * Everything with state that Rust also touches (worker, zero-copy slots, RX batch) is in
 * Rust: sys/mod.rs.
 */
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/if_packet.h>
#include <linux/if_vlan.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/rcupdate.h>
#include <linux/skbuff.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/skb_array.h>
#include <linux/virtio_net.h>
#include <linux/page_frag_cache.h>
#include <net/xdp.h>
#include <linux/if_tap.h>
#include <linux/if_tun.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mutex.h>
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
/* As vhost_net's: zero-copy TX on tun/tap and macvtap queues; off by default (README). */
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

/*
 * Ours: each device's RX and TX on workers of their own, from VHOST_SET_OWNER (read then), so
 * that unchanged QEMU gets them. On by default: TX and RX at once moved 2.5 to 3 times the
 * packets of one worker in `make bench` (bidi64, 2026-12-07, README), one way as many.
 */
static bool split_workers = true;
module_param(split_workers, bool, 0644);
MODULE_PARM_DESC(split_workers,
		 "RX and TX on workers of their own, from VHOST_SET_OWNER (default: Y); "
		 "N - one worker per device, as vhost-net");
bool vhost_rs_split_workers(void) { return READ_ONCE(split_workers); }

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

struct file *vhost_rs_sock_file(struct socket *sock)
{
	return sock->file;
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

/*
 * The ring's 16-bit fields (avail and used indexes, flags, event indexes) change under the
 * other side's feet: one aligned load or store each, as vhost.c's __get_user/__put_user,
 * never copy_{from,to}_user, which may move a byte at a time (x86's copy of fewer than 8
 * bytes does), so that an index read as the guest moves it from 0x12ff to 0x1300 can come
 * out as 0x13ff, 256 entries it never made available.
 */
int vhost_rs_get_user_u16(u64 addr, u16 *out)
{
	return get_user(*out, (u16 __user *)(unsigned long)addr) ? -EFAULT : 0;
}

int vhost_rs_put_user_u16(u64 addr, u16 val)
{
	return put_user(val, (u16 __user *)(unsigned long)addr) ? -EFAULT : 0;
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

/* busy_clock() and vhost_can_busy_poll() of net.c: about a microsecond a unit. */
u64 vhost_rs_busy_clock(void)
{
	return local_clock() >> 10;
}

bool vhost_rs_can_busy_poll(u64 endtime)
{
	return !need_resched() && !time_after64(vhost_rs_busy_clock(), endtime) &&
	       !signal_pending(current);
}

void vhost_rs_set_running(void)
{
	__set_current_state(TASK_RUNNING);
}

/* struct vhost_poll, without the work item: the wakeup calls back into Rust. */
struct vhost_rs_poll {
	poll_table table;
	wait_queue_head_t *wqh;
	wait_queue_entry_t wait;
	__poll_t mask;
	vhost_rs_wake_fn wake;
	const void *data;
	unsigned int bit;
};

/* vhost_poll_wakeup(): runs under the waitqueue lock; the callback only flags and wakes. */
static int vhost_rs_poll_wakeup(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct vhost_rs_poll *poll = container_of(wait, struct vhost_rs_poll, wait);

	if (!(key_to_poll(key) & poll->mask))
		return 0;
	poll->wake(poll->data, poll->bit);
	return 0;
}

/* vhost_poll_func(): hooks the entry onto the file's queue during vfs_poll(). */
static void vhost_rs_poll_func(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct vhost_rs_poll *poll = container_of(pt, struct vhost_rs_poll, table);

	poll->wqh = wqh;
	add_wait_queue(wqh, &poll->wait);
}

struct vhost_rs_poll *vhost_rs_poll_alloc(unsigned int mask, vhost_rs_wake_fn wake,
					  const void *data, unsigned int bit)
{
	struct vhost_rs_poll *poll = kzalloc(sizeof(*poll), GFP_KERNEL);

	if (!poll)
		return NULL;
	init_waitqueue_func_entry(&poll->wait, vhost_rs_poll_wakeup);
	init_poll_funcptr(&poll->table, vhost_rs_poll_func);
	poll->mask = (__force __poll_t)mask;
	poll->wake = wake;
	poll->data = data;
	poll->bit = bit;
	return poll;
}

/* vhost_poll_start(): an already-ready file wakes at once; an erroring one is refused. */
int vhost_rs_poll_start(struct vhost_rs_poll *poll, struct file *file)
{
	__poll_t mask;

	if (poll->wqh)
		return 0;
	mask = vfs_poll(file, &poll->table);
	if (mask & poll->mask)
		poll->wake(poll->data, poll->bit);
	if (mask & EPOLLERR) {
		vhost_rs_poll_stop(poll);
		return -EINVAL;
	}
	return 0;
}

void vhost_rs_poll_stop(struct vhost_rs_poll *poll)
{
	if (poll->wqh) {
		remove_wait_queue(poll->wqh, &poll->wait);
		poll->wqh = NULL;
	}
}

void vhost_rs_poll_free(struct vhost_rs_poll *poll)
{
	vhost_rs_poll_stop(poll);
	kfree(poll);
}

/* set_current_state(TASK_INTERRUPTIBLE), with its barrier: the kthread worker's loop. */
void vhost_rs_set_interruptible(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

/* sock->ops->sendmsg on the owner's memory, never blocking (handle_tx_copy()). */
int vhost_rs_sock_sendmsg(struct socket *sock, const struct iovec *iov, unsigned long nr, size_t len)
{
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT };

	iov_iter_init(&msg.msg_iter, ITER_SOURCE, iov, nr, len);
	return sock->ops->sendmsg(sock, &msg, len);
}

/*
 * sock->ops->recvmsg into the owner's memory; MSG_TRUNC returns the full length. @ptr, if
 * not NULL, is a packet taken from the socket's ring (tun and tap receive it from
 * msg_control instead of their ring).
 */
int vhost_rs_sock_recvmsg(struct socket *sock, void *ptr, const struct iovec *iov,
			  unsigned long nr, size_t len)
{
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_TRUNC, .msg_control = ptr };

	iov_iter_init(&msg.msg_iter, ITER_DEST, iov, nr, len);
	return sock->ops->recvmsg(sock, &msg, len, MSG_DONTWAIT | MSG_TRUNC);
}

/* peek_head_len() without the ptr_ring fast path: the next packet's length, or 0. */
int vhost_rs_sock_peek_len(struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct sk_buff *head;
	int len = 0;
	unsigned long flags;

	if (sock->ops->peek_len)
		return sock->ops->peek_len(sock);

	spin_lock_irqsave(&sk->sk_receive_queue.lock, flags);
	head = skb_peek(&sk->sk_receive_queue);
	if (likely(head)) {
		len = head->len;
		if (skb_vlan_tag_present(head))
			len += VLAN_HLEN;
	}
	spin_unlock_irqrestore(&sk->sk_receive_queue.lock, flags);
	return len;
}

/*
 * Zero-copy TX (the ubuf part of drivers/vhost/net.c): the ubuf_info a zero-copy skb
 * carries, its set-up and its completion. The slots, their states, the count of buffers
 * in flight and the wait for them are in Rust (sys/mod.rs, Zc), which the completion
 * reaches through vhost_rs_zc_complete() with the context given at the send.
 */
bool vhost_rs_sock_zcopy(struct socket *sock)
{
	return unlikely(experimental_zcopytx) && sock_flag(sock->sk, SOCK_ZEROCOPY);
}

/* vhost_zerocopy_complete(): the last reference to the skb data (clones included) is gone. */
static void vhost_rs_zc_complete_cb(struct sk_buff *skb, struct ubuf_info *ubuf_base, bool success)
{
	struct ubuf_info_msgzc *ubuf;

	if (!refcount_dec_and_test(&ubuf_base->refcnt))
		return;
	ubuf = uarg_to_msgzc(ubuf_base);
	vhost_rs_zc_complete(ubuf->ctx, ubuf->desc, success);
}

static const struct ubuf_info_ops vhost_rs_zc_ops = {
	.complete = vhost_rs_zc_complete_cb,
};

struct ubuf_info_msgzc *vhost_rs_ubufs_alloc(unsigned int n)
{
	return kvcalloc(n, sizeof(struct ubuf_info_msgzc), GFP_KERNEL_ACCOUNT);
}

void vhost_rs_ubufs_free(struct ubuf_info_msgzc *ubufs)
{
	kvfree(ubufs);
}

/* handle_tx_zerocopy()'s send: the buffer goes as pinned pages with ubuf @slot of @ubufs. */
int vhost_rs_zc_sendmsg(struct ubuf_info_msgzc *ubufs, unsigned int slot, void *ctx,
			struct socket *sock, const struct iovec *iov, unsigned long nr, size_t len)
{
	struct ubuf_info_msgzc *ubuf = &ubufs[slot];
	struct tun_msg_ctl ctl = { .type = TUN_MSG_UBUF, .ptr = &ubuf->ubuf };
	struct msghdr msg = {
		.msg_flags = MSG_DONTWAIT,
		.msg_control = &ctl,
		.msg_controllen = sizeof(ctl),
	};

	ubuf->ctx = ctx;
	ubuf->desc = slot;
	ubuf->ubuf.ops = &vhost_rs_zc_ops;
	ubuf->ubuf.flags = SKBFL_ZEROCOPY_FRAG;
	refcount_set(&ubuf->ubuf.refcnt, 1);
	iov_iter_init(&msg.msg_iter, ITER_SOURCE, iov, nr, len);
	return sock->ops->sendmsg(sock, &msg, len);
}

/*
 * TX batching into tun/tap and macvtap (vhost_net_build_xdp() and vhost_tx_batch()): with
 * an unlimited sndbuf, each small packet is copied once into a page fragment laid out as
 * an xdp_buff, and up to VHOST_RS_TX_BATCH of them go to the socket in one sendmsg
 * (TUN_MSG_PTR), which builds the skbs around the fragments without another copy.
 */
#define VHOST_RS_TX_BATCH 64
#define VHOST_RS_RX_PAD (NET_IP_ALIGN + NET_SKB_PAD)

struct vhost_rs_txbatch {
	struct page_frag_cache pf;
	unsigned int n;
	struct xdp_buff xdp[VHOST_RS_TX_BATCH];
};

struct vhost_rs_txbatch *vhost_rs_txbatch_alloc(void)
{
	struct vhost_rs_txbatch *b = kzalloc(sizeof(*b), GFP_KERNEL_ACCOUNT);

	if (b)
		page_frag_cache_init(&b->pf);
	return b;
}

/* Drops what is still batched (never sent) and the fragment cache. */
void vhost_rs_txbatch_free(struct vhost_rs_txbatch *b)
{
	unsigned int i;

	for (i = 0; i < b->n; i++)
		put_page(virt_to_head_page(b->xdp[i].data));
	page_frag_cache_drain(&b->pf);
	kfree(b);
}

/* handle_tx_copy(): batching only with an unlimited sndbuf (tun's default, QEMU's too). */
bool vhost_rs_sock_can_batch(struct socket *sock)
{
	return READ_ONCE(sock->sk->sk_sndbuf) == INT_MAX;
}

unsigned int vhost_rs_txbatch_len(struct vhost_rs_txbatch *b) { return b->n; }

/*
 * vhost_net_build_xdp(): the packet (@len bytes of user memory at @iov, the socket's
 * virtio-net header of @sock_hlen bytes first) into the next xdp_buff. -ENOSPC if it does
 * not fit in a page (the caller sends it alone), -EFAULT, -EINVAL (a header whose
 * checksum lies beyond the data), -ENOMEM.
 */
int vhost_rs_txbatch_add(struct vhost_rs_txbatch *b, struct socket *sock, const struct iovec *iov,
			 unsigned long nr, size_t len, unsigned int sock_hlen)
{
	struct xdp_buff *xdp = &b->xdp[b->n];
	int headroom = sock_flag(sock->sk, SOCK_XDP) ? XDP_PACKET_HEADROOM : 0;
	int buflen = SKB_DATA_ALIGN(sizeof(struct skb_shared_info));
	int pad = SKB_DATA_ALIGN(VHOST_RS_RX_PAD + headroom + sock_hlen);
	struct virtio_net_hdr *gso;
	struct iov_iter from;
	void *buf;

	if (WARN_ON_ONCE(b->n >= VHOST_RS_TX_BATCH))
		return -ENOSPC;
	if (unlikely(len < sock_hlen))
		return -EFAULT;
	if (SKB_DATA_ALIGN(len + pad) + SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) > PAGE_SIZE)
		return -ENOSPC;
	buflen += SKB_DATA_ALIGN(len + pad);
	buf = page_frag_alloc_align(&b->pf, buflen, GFP_KERNEL, SMP_CACHE_BYTES);
	if (unlikely(!buf))
		return -ENOMEM;
	iov_iter_init(&from, ITER_SOURCE, iov, nr, len);
	if (copy_from_iter(buf + pad - sock_hlen, len, &from) != len)
		goto fault;
	if (!sock_hlen) {
		memset(buf, 0, pad);
		gso = buf;
	} else {
		gso = buf + pad - sock_hlen;
	}
	if ((gso->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    __virtio16_to_cpu(true, gso->csum_start) + __virtio16_to_cpu(true, gso->csum_offset) + 2 >
	    __virtio16_to_cpu(true, gso->hdr_len)) {
		gso->hdr_len = __cpu_to_virtio16(true, __virtio16_to_cpu(true, gso->csum_start) +
						 __virtio16_to_cpu(true, gso->csum_offset) + 2);
		if (__virtio16_to_cpu(true, gso->hdr_len) > len) {
			page_frag_free(buf);
			return -EINVAL;
		}
	}
	/* The header goes at the start of the buffer, where tun_xdp_one() reads it. */
	memcpy(buf, buf + pad - sock_hlen, sock_hlen);
	xdp_init_buff(xdp, buflen, NULL);
	xdp_prepare_buff(xdp, buf, pad, len - sock_hlen, true);
	b->n++;
	return 0;
fault:
	page_frag_free(buf);
	return -EFAULT;
}

/*
 * vhost_tx_batch(): hands the batch to the socket. On an error the fragments are freed
 * here (the packets are lost, as in vhost-net). Returns 0 or the error.
 */
int vhost_rs_txbatch_flush(struct vhost_rs_txbatch *b, struct socket *sock)
{
	struct tun_msg_ctl ctl = { .type = TUN_MSG_PTR, .num = b->n, .ptr = b->xdp };
	struct msghdr msg = {
		.msg_flags = MSG_DONTWAIT,
		.msg_control = &ctl,
		.msg_controllen = sizeof(ctl),
	};
	unsigned int i;
	int err;

	if (!b->n)
		return 0;
	err = sock->ops->sendmsg(sock, &msg, 0);
	if (unlikely(err < 0)) {
		for (i = 0; i < b->n; i++)
			put_page(virt_to_head_page(b->xdp[i].data));
	}
	b->n = 0;
	return err < 0 ? err : 0;
}

/*
 * RX batching from tun/tap and macvtap (struct vhost_net_buf): the inline ptr_ring
 * operations the batch needs. The batch itself (its array, head and tail) is in Rust
 * (sys/mod.rs, RxQueue).
 */

/* The ring of a tun/tap or macvtap socket (tun_get_tx_ring/tap_get_ptr_ring), or NULL. */
struct ptr_ring *vhost_rs_sock_ptr_ring(struct socket *sock)
{
	struct ptr_ring *ring;

	if (!sock->file)
		return NULL;
	ring = tun_get_tx_ring(sock->file);
	if (IS_ERR(ring))
		ring = tap_get_ptr_ring(sock->file);
	return IS_ERR(ring) ? NULL : ring;
}

/* vhost_net_buf_produce(): up to @n packets into @batch under the consumer lock. */
int vhost_rs_ptr_ring_consume(struct ptr_ring *ring, struct socket *sock, void **batch, int n)
{
	int got;

	spin_lock(&ring->consumer_lock);
	got = __ptr_ring_consume_batched(ring, batch, n);
	if (got)
		tun_wake_queue(sock->file, got);
	spin_unlock(&ring->consumer_lock);
	return got;
}

/* vhost_net_buf_unproduce(): @n packets back to the front of the ring, in order. */
void vhost_rs_ptr_ring_unconsume(struct ptr_ring *ring, void **batch, int n)
{
	ptr_ring_unconsume(ring, batch, n, tun_ptr_free);
}

/* vhost_net_buf_peek_len(): the length of a batched packet (an xdp_frame or an skb). */
int vhost_rs_rx_ptr_len(void *ptr)
{
	if (tun_is_xdp_frame(ptr))
		return tun_ptr_to_xdp(ptr)->len;
	return __skb_array_len_with_tag(ptr);
}

/*
 * poll() on the device file. The 7.3 Rust miscdevice builds file_operations without .poll;
 * vhost-net's fd is polled by the VMM for IOTLB misses (vhost_chr_poll). At open, the
 * file's operations (the Rust ones) are copied once with .poll added, and the file is
 * switched to the copy; the device's Rust poll (vhost_rs_file_poll) gets private_data.
 */
static struct file_operations vhost_rs_fops;
static DEFINE_MUTEX(vhost_rs_fops_lock);
static bool vhost_rs_fops_ready;

static __poll_t vhost_rs_fop_poll(struct file *file, poll_table *wait)
{
	return vhost_rs_file_poll(file->private_data, file, wait);
}

void vhost_rs_file_add_poll(struct file *file)
{
	mutex_lock(&vhost_rs_fops_lock);
	if (!vhost_rs_fops_ready) {
		vhost_rs_fops = *file->f_op;
		vhost_rs_fops.poll = vhost_rs_fop_poll;
		vhost_rs_fops.llseek = noop_llseek;
		vhost_rs_fops_ready = true;
	}
	mutex_unlock(&vhost_rs_fops_lock);
	replace_fops(file, fops_get(&vhost_rs_fops));
}

/* The calling file's O_NONBLOCK, for read(). */
bool vhost_rs_kiocb_nonblock(struct kiocb *iocb)
{
	return iocb->ki_filp->f_flags & O_NONBLOCK;
}
