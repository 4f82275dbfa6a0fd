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

bool vhost_rs_access_ok(u64 addr, u64 size);
u64 vhost_rs_clear_user(u64 addr, u64 len);
int vhost_rs_set_bit_to_user(int nr, u64 addr);
void vhost_rs_cond_resched(void);

#endif
