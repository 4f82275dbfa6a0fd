/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C glue for vhost-rs: what the 7.3 Rust bindings lack (eventfd, tun/tap and packet socket
 * lookup, poll, user-memory helpers that are macros in C, and module parameters visible in
 * sysfs). Thin wrappers only; the policy lives in Rust. Declared again in sys/mod.rs.
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

int vhost_rs_eventfd_ctx_fdget(int fd, struct eventfd_ctx **out);
void vhost_rs_eventfd_ctx_put(struct eventfd_ctx *ctx);
void vhost_rs_eventfd_signal(struct eventfd_ctx *ctx);
int vhost_rs_eventfd_fget(int fd, struct file **out);

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
void vhost_rs_cpu_relax(void);

/* A wait-queue entry on a file's poll queue (struct vhost_poll in vhost.c). */
struct vhost_rs_poll;
struct vhost_rs_poll *vhost_rs_poll_alloc(unsigned int mask, const void *data, unsigned int bit);
int vhost_rs_poll_start(struct vhost_rs_poll *poll, struct file *file);
void vhost_rs_poll_stop(struct vhost_rs_poll *poll);
void vhost_rs_poll_free(struct vhost_rs_poll *poll);
/* Implemented in Rust (net.rs): called from the wakeup, in atomic context. */
void vhost_rs_poll_wake(const void *data, unsigned int bit);

/* The per-device worker: a vhost_task of the owner, or a kthread using its mm. */
struct vhost_rs_worker;
int vhost_rs_worker_create(bool fork_owner, const void *data, struct vhost_rs_worker **out);
void vhost_rs_worker_wake(struct vhost_rs_worker *w);
void vhost_rs_worker_stop(struct vhost_rs_worker *w);
/* Implemented in Rust (net.rs): one round of work; true if it did any. */
bool vhost_rs_worker_run(const void *data);
/* Implemented in Rust (net.rs): the owner was killed; the worker is gone. */
void vhost_rs_worker_killed(const void *data);

struct iovec;
int vhost_rs_sock_sendmsg(struct socket *sock, const struct iovec *iov, unsigned long nr, size_t len);
int vhost_rs_sock_recvmsg(struct socket *sock, const struct iovec *iov, unsigned long nr, size_t len);
int vhost_rs_sock_peek_len(struct socket *sock);

/* Zero-copy TX: the ubufs of one TX backend (helpers.c). Slot states: */
#define VHOST_RS_ZC_CLEAR 0
#define VHOST_RS_ZC_IN_PROGRESS 1
#define VHOST_RS_ZC_DONE 2
#define VHOST_RS_ZC_FAILED 3
struct vhost_rs_zc;
bool vhost_rs_sock_zcopy(struct socket *sock);
unsigned int vhost_rs_zc_slots(void);
struct vhost_rs_zc *vhost_rs_zc_alloc(const void *data, unsigned int bit);
unsigned int vhost_rs_zc_state(struct vhost_rs_zc *zc, unsigned int slot);
void vhost_rs_zc_set_state(struct vhost_rs_zc *zc, unsigned int slot, unsigned int state);
int vhost_rs_zc_sendmsg(struct vhost_rs_zc *zc, unsigned int slot, struct socket *sock,
			const struct iovec *iov, unsigned long nr, size_t len);
int vhost_rs_zc_inflight(struct vhost_rs_zc *zc);
void vhost_rs_zc_wait(struct vhost_rs_zc *zc);
void vhost_rs_zc_free(struct vhost_rs_zc *zc);

/* TX batching into tun/tap and macvtap (helpers.c). */
struct vhost_rs_txbatch;
struct vhost_rs_txbatch *vhost_rs_txbatch_alloc(void);
void vhost_rs_txbatch_free(struct vhost_rs_txbatch *b);
bool vhost_rs_sock_can_batch(struct socket *sock);
unsigned int vhost_rs_txbatch_len(struct vhost_rs_txbatch *b);
int vhost_rs_txbatch_add(struct vhost_rs_txbatch *b, struct socket *sock, const struct iovec *iov,
			 unsigned long nr, size_t len, unsigned int sock_hlen);
int vhost_rs_txbatch_flush(struct vhost_rs_txbatch *b, struct socket *sock);

/* RX batching from tun/tap and macvtap (helpers.c). */
struct vhost_rs_rxq;
struct vhost_rs_rxq *vhost_rs_rxq_alloc(void);
void vhost_rs_rxq_free(struct vhost_rs_rxq *q);
void vhost_rs_rxq_attach(struct vhost_rs_rxq *q, struct socket *sock);
bool vhost_rs_rxq_active(struct vhost_rs_rxq *q);
int vhost_rs_rxq_peek_len(struct vhost_rs_rxq *q, int *taken);
int vhost_rs_rxq_recvmsg(struct vhost_rs_rxq *q, struct socket *sock, const struct iovec *iov,
			 unsigned long nr, size_t len);

#endif
