// SPDX-License-Identifier: GPL-2.0

//! RX: `handle_rx()` of net.c. Each packet waiting on the backend socket goes into as many
//! guest buffers as it needs (one without `VIRTIO_NET_F_MRG_RXBUF`), packets being taken
//! from a tun/tap or macvtap ring 64 at a time, used buffers published (and signalled) once
//! more than 64 are done.

use super::{busy, skip_bytes, NetVq, Round, BATCH, HDR_MAX, NVQS};
use crate::{
    dev::{IotlbMsgs, Slot, Workers},
    guest::UserMem,
    ring::{self, Iov, RingError},
    uapi::*,
    user,
};
use kernel::{prelude::*, sync::Mutex};

/// `handle_rx()`: receives until the socket is drained, the guest is out of buffers, or the
/// queue has had its share. Returns true if the queue gave way to its weight (or to other
/// work, during a busy poll) and must run again.
pub(super) fn handle_rx(
    slot: &mut Slot<NetVq>,
    tx: &Mutex<Slot<NetVq>>,
    msgs: &IotlbMsgs,
    workers: &Workers<NVQS>,
    id: usize,
) -> bool {
    let (view, nvq) = slot.parts(msgs);
    // As vhost_net_disable_vq(), in Round::begin: the socket wakes us again only once it
    // has been drained (below). After an error, or with the guest out of buffers, only a
    // kick restarts the queue, so packets arriving for a stalled guest cost no work.
    let Some(mut round) = Round::begin(nvq, view) else {
        return false;
    };
    let mergeable = nvq.vq.has_feature(VIRTIO_NET_F_MRG_RXBUF);
    // A VERSION_1 header always has num_buffers (5.1.6), mergeable or not.
    let set_num_buffers = mergeable || nvq.vq.has_feature(VIRTIO_F_VERSION_1);
    let logging = nvq.vq.has_feature(VHOST_F_LOG_ALL);
    // IN_ORDER: one used element per packet, naming its last buffer (`count` of them);
    // without, one per buffer. `done` counts buffers, for the batch threshold.
    let in_order = nvq.vq.in_order();
    let mut count = 0usize;
    let mut done = 0usize;
    let mut requeue = false;
    let mut drained = false;
    let mut busyloop_intr = false;
    while nvq.backend.is_some() {
        if round.exceeds_weight(&mut nvq.stats) {
            requeue = true;
            break;
        }
        let mut sock_len = nvq.rx_peek_len();
        if sock_len == 0 && nvq.vq.busyloop_timeout() != 0 {
            // vhost_net_rx_peek_head_len(): publish what is done, then watch the socket
            // (and the TX ring) a while.
            publish(nvq, &round.mem, count, in_order);
            (done, count) = (0, 0);
            // The TX queue only if it is free (`mutex_trylock()`): its worker may be in a
            // round.
            if let Some(mut tvq) = tx.try_lock() {
                busyloop_intr = busy::busy_poll(nvq, tvq.q_mut(), view, workers, id, true);
            }
            sock_len = nvq.rx_peek_len();
        }
        if sock_len == 0 {
            // Drained: the socket wakes us again, unless other work cut the poll short
            // (then we come back by requeue, as vhost-net does).
            requeue |= busyloop_intr;
            drained = !busyloop_intr;
            break;
        }
        let sock_len = sock_len + nvq.sock_hlen;
        let vhost_len = sock_len + nvq.vhost_hlen;
        let quota = if mergeable { ring::MAX_IOV } else { 1 };
        let at = if in_order { count } else { done };
        let got = match get_rx_bufs(nvq, &round.mem, vhost_len as u64, at, quota, logging) {
            Ok(g) => g,
            Err(e) => {
                nvq.vq.error("RX: bad descriptor chain", e);
                break;
            }
        };
        let Some(RxBufs {
            heads,
            segs,
            log_num,
            ndesc,
        }) = got
        else {
            // Not enough buffers: wait for the guest to add some (it kicks).
            if busyloop_intr {
                requeue = true;
                break;
            }
            if nvq.vq.rearm(&round.mem) {
                continue;
            }
            break;
        };
        let (Some(sock), Some(rxq)) = (nvq.backend.as_ref(), nvq.rxq.as_mut()) else {
            break;
        };
        if heads == 0 {
            // Larger than the buffers may ever be (no MRG_RXBUF): drop it as vhost-net
            // does, with a 1-byte MSG_TRUNC receive into the first buffer just given back
            // (tun ignores an empty receive, leaving the packet queued). get_rx_bufs took
            // at least one chain, so `iov[0]` is one of its non-empty segments.
            let _ = rxq.recvmsg(sock, nvq.vq.iov().get(..1).unwrap_or_default(), 1);
            nvq.stats.drops += 1;
            continue;
        }
        // The header's segments, before skipping shortens them: at most 12 bytes, so at
        // most 12 non-empty segments.
        let mut hdr = [Iov::default(); HDR_MAX];
        let nhdr = segs.min(HDR_MAX);
        hdr[..nhdr].copy_from_slice(&nvq.vq.iov()[..nhdr]);
        let Some(first) = skip_bytes(nvq.vq.iov_mut(), segs, nvq.vhost_hlen as u64) else {
            nvq.vq.discard(heads as u16, ndesc);
            break;
        };
        let iov = nvq.vq.iov().get(first..segs).unwrap_or_default();
        match rxq.recvmsg(sock, iov, sock_len) {
            Ok(n) if n == sock_len => {}
            _ => {
                // Truncated or failed: discard the packet and give the buffers back.
                nvq.vq.discard(heads as u16, ndesc);
                nvq.stats.drops += 1;
                continue;
            }
        }
        if let Err(e) = fixup(nvq, &hdr[..nhdr], heads, set_num_buffers) {
            nvq.vq.error("RX: writing the virtio-net header", e);
            break;
        }
        if logging && nvq.vq.iotlb() {
            // vhost_log_write() with the IOTLB: the buffers' segments, whole, by user
            // address; the first ones as they were before the header was skipped.
            nvq.vq.log_write_iotlb(&round.mem, &hdr[..nhdr]);
            let rest = nvq.vq.iov().get(nhdr..segs).unwrap_or_default();
            nvq.vq.log_write_iotlb(&round.mem, rest);
        } else if logging {
            // vhost_log_write(): mark the pages of the bytes actually written.
            nvq.vq.log_write(log_num, vhost_len as u64);
        }
        done += heads;
        count += if in_order { 1 } else { heads };
        if done > BATCH {
            publish(nvq, &round.mem, count, in_order);
            (done, count) = (0, 0);
        }
        nvq.stats.packets += 1;
        nvq.stats.bytes += vhost_len as u64;
        round.total += vhost_len;
    }
    publish(nvq, &round.mem, count, in_order);
    if drained {
        if let (Some(poll), Some(sock)) = (nvq.sock_poll.as_mut(), nvq.backend.as_ref()) {
            let _ = poll.start(sock.file());
        }
    }
    requeue
}

/// `vhost_net_signal_used()`: publishes `count` used elements, per packet with IN_ORDER.
fn publish(nvq: &mut NetVq, mem: &UserMem<'_>, count: usize, in_order: bool) {
    if in_order {
        nvq.vq.add_used_in_order_and_signal(mem, count);
    } else {
        nvq.vq.add_used_and_signal_n(mem, count);
    }
}

/// Buffers gathered for one packet: chains (`heads`) of `ndesc` descriptors, segments, log
/// entries.
struct RxBufs {
    heads: usize,
    segs: usize,
    log_num: usize,
    ndesc: u16,
}

/// `get_rx_bufs()`: takes chains until they hold `len` bytes, at most `quota` of them, and
/// records them in the queue's heads from index `at` (after the packets not yet published),
/// or with IN_ORDER as one element at `at` naming the last of them.
/// `Ok(None)` when the guest has not made enough available (all are given back);
/// `heads == 0` when the packet can never fit (vhost-net drops it).
fn get_rx_bufs(
    nvq: &mut NetVq,
    mem: &UserMem<'_>,
    len: u64,
    at: usize,
    quota: usize,
    logging: bool,
) -> Result<Option<RxBufs>, RingError> {
    let vq = &mut nvq.vq;
    let in_order = vq.in_order();
    let (mut heads, mut segs, mut log_num) = (0usize, 0usize, 0usize);
    let mut ndesc = 0u16;
    let mut datalen = len;
    while datalen > 0 && heads < quota {
        let chain = match vq.get_desc(mem, segs, logging.then_some(log_num)) {
            Ok(Some(c)) => c,
            Ok(None) => {
                vq.discard(heads as u16, ndesc);
                return Ok(None);
            }
            Err(e) => {
                vq.discard(heads as u16, ndesc);
                return Err(e);
            }
        };
        if chain.out_num != 0 || chain.in_num == 0 {
            // As get_rx_bufs(): the bad chain stays consumed, the earlier ones go back.
            vq.discard(heads as u16, ndesc);
            return Err(RingError::OutAfterIn);
        }
        let size: u64 = vq.iov()[segs..segs + chain.in_num]
            .iter()
            .map(|s| s.len)
            .sum();
        let used = size.min(datalen);
        let head = u32::from(chain.head);
        let recorded = if in_order {
            // At most `quota` (UIO_MAXIOV) buffers: the count fits in u16.
            let n = heads as u16 + 1;
            vq.set_used_in_order(at, head, used as u32, n, ndesc.wrapping_add(chain.ndesc))
        } else {
            vq.set_used(at + heads, head, used as u32, chain.ndesc)
        };
        if !recorded {
            vq.discard(heads as u16 + 1, ndesc.wrapping_add(chain.ndesc));
            return Err(RingError::TooManySegments);
        }
        ndesc = ndesc.wrapping_add(chain.ndesc);
        datalen -= used;
        segs += chain.in_num;
        log_num += chain.log_num;
        heads += 1;
    }
    if datalen > 0 {
        // Does not fit even in `quota` buffers: give them back; the caller drops the packet.
        vq.discard(heads as u16, ndesc);
        return Ok(Some(RxBufs {
            heads: 0,
            segs: 0,
            log_num: 0,
            ndesc: 0,
        }));
    }
    Ok(Some(RxBufs {
        heads,
        segs,
        log_num,
        ndesc,
    }))
}

/// After a packet landed in the guest: the header vhost provides (zeroed, as vhost-net
/// writes `GSO_NONE`) and `num_buffers` (mergeable buffers or VERSION_1).
fn fixup(nvq: &NetVq, hdr: &[Iov], heads: usize, set_num_buffers: bool) -> Result<(), RingError> {
    if nvq.vhost_hlen > 0 {
        // `struct virtio_net_hdr` (10 bytes) only, as vhost-net: the hash and tunnel fields
        // of a 24-byte header keep what the guest's buffer held.
        let zero = [0u8; 10];
        write_at(hdr, 0, &zero[..nvq.vhost_hlen.min(10)]).map_err(|_| RingError::Fault)?;
    }
    if set_num_buffers {
        // `num_buffers` follows the 10-byte `struct virtio_net_hdr` (5.1.6).
        write_at(hdr, 10, &(heads as u16).to_le_bytes()).map_err(|_| RingError::Fault)?;
    }
    Ok(())
}

/// Writes `data` at byte `off` of the buffer `iov` describes.
fn write_at(iov: &[Iov], mut off: u64, data: &[u8]) -> Result {
    let mut done = 0usize;
    for seg in iov {
        if done == data.len() {
            break;
        }
        if off >= seg.len {
            off -= seg.len;
            continue;
        }
        let take = ((seg.len - off) as usize).min(data.len() - done);
        user::write(seg.addr.wrapping_add(off), &data[done..done + take])?;
        done += take;
        off = 0;
    }
    if done == data.len() {
        Ok(())
    } else {
        Err(EFAULT)
    }
}
