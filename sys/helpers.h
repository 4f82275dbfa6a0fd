/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C glue for vhost-rs: what the 7.3 Rust bindings lack (tun/tap and packet socket lookup,
 * poll entries, user-memory helpers that are macros in C, the XDP TX batch, ptr_ring and
 * ubuf helpers, and module parameters visible in sysfs); see helpers.c for why each is C.
 * Declared again in sys/mod.rs.
 */
#ifndef VHOST_RS_HELPERS_H
#define VHOST_RS_HELPERS_H

#include <linux/types.h>

struct eventfd_ctx;
struct socket;
struct file;

unsigned int vhost_rs_max_mem_regions(void);
int vhost_rs_max_iotlb_entries(void);
bool vhost_rs_fork_from_owner_default(void);
bool vhost_rs_split_workers(void);


int vhost_rs_get_raw_socket(int fd, struct socket **out);
int vhost_rs_get_tap_socket(int fd, struct socket **out);
void vhost_rs_sockfd_put(struct socket *sock);
unsigned int vhost_rs_sock_poll(struct socket *sock);
struct file *vhost_rs_sock_file(struct socket *sock);

bool vhost_rs_access_ok(u64 addr, u64 size);
u64 vhost_rs_clear_user(u64 addr, u64 len);
int vhost_rs_set_bit_to_user(int nr, u64 addr);
void vhost_rs_cond_resched(void);
void vhost_rs_set_running(void);
u64 vhost_rs_busy_clock(void);
bool vhost_rs_can_busy_poll(u64 endtime);
int vhost_rs_get_user_u16(u64 addr, u16 *out);
int vhost_rs_put_user_u16(u64 addr, u16 val);

/*
 * Callbacks into Rust: one trampoline per kind, generic over the device type (sys/mod.rs),
 * with the device as @data. C never knows which device it calls.
 */
typedef void (*vhost_rs_wake_fn)(const void *data, unsigned int bit);

/* A wait-queue entry on a file's poll queue (struct vhost_poll in vhost.c). */
struct vhost_rs_poll;
struct vhost_rs_poll *vhost_rs_poll_alloc(unsigned int mask, vhost_rs_wake_fn wake,
					  const void *data, unsigned int bit);
int vhost_rs_poll_start(struct vhost_rs_poll *poll, struct file *file);
void vhost_rs_poll_stop(struct vhost_rs_poll *poll);
void vhost_rs_poll_free(struct vhost_rs_poll *poll);

/* For the kthread worker's loop (sys/mod.rs). */
void vhost_rs_set_interruptible(void);

struct iovec;
int vhost_rs_sock_sendmsg(struct socket *sock, const struct iovec *iov, unsigned long nr, size_t len);
int vhost_rs_sock_recvmsg(struct socket *sock, void *ptr, const struct iovec *iov,
			  unsigned long nr, size_t len);
int vhost_rs_sock_peek_len(struct socket *sock);

/* Zero-copy TX: the ubufs of one TX backend (helpers.c). */
struct ubuf_info_msgzc;
bool vhost_rs_sock_zcopy(struct socket *sock);
struct ubuf_info_msgzc *vhost_rs_ubufs_alloc(unsigned int n);
void vhost_rs_ubufs_free(struct ubuf_info_msgzc *ubufs);
int vhost_rs_zc_sendmsg(struct ubuf_info_msgzc *ubufs, unsigned int slot, void *ctx,
			struct socket *sock, const struct iovec *iov, unsigned long nr, size_t len);
/* Implemented in Rust (sys/mod.rs, Zc): the completion of slot @slot of context @ctx. */
void vhost_rs_zc_complete(void *ctx, unsigned int slot, bool success);

/* TX batching into tun/tap and macvtap (helpers.c). */
struct vhost_rs_txbatch;
struct vhost_rs_txbatch *vhost_rs_txbatch_alloc(void);
void vhost_rs_txbatch_free(struct vhost_rs_txbatch *b);
bool vhost_rs_sock_can_batch(struct socket *sock);
unsigned int vhost_rs_txbatch_len(struct vhost_rs_txbatch *b);
int vhost_rs_txbatch_add(struct vhost_rs_txbatch *b, struct socket *sock, const struct iovec *iov,
			 unsigned long nr, size_t len, unsigned int sock_hlen);
int vhost_rs_txbatch_flush(struct vhost_rs_txbatch *b, struct socket *sock);

/* RX batching from tun/tap and macvtap: the ptr_ring operations (helpers.c). */
struct ptr_ring;
struct ptr_ring *vhost_rs_sock_ptr_ring(struct socket *sock);
int vhost_rs_ptr_ring_consume(struct ptr_ring *ring, struct socket *sock, void **batch, int n);
void vhost_rs_ptr_ring_unconsume(struct ptr_ring *ring, void **batch, int n);
int vhost_rs_rx_ptr_len(void *ptr);

/* poll() on the device file (helpers.c): called from open. */
struct poll_table_struct;
struct kiocb;
void vhost_rs_file_add_poll(struct file *file);
bool vhost_rs_kiocb_nonblock(struct kiocb *iocb);
/* Implemented in Rust (vhost_rs.rs): the device's poll, with the file's private_data. */
unsigned int vhost_rs_file_poll(void *data, struct file *file, struct poll_table_struct *wait);

#endif
