// SPDX-License-Identifier: GPL-2.0

//! TX: `handle_tx()` with `handle_tx_copy()` and `handle_tx_zerocopy()` of net.c. Each chain
//! the guest made available is one packet, sent by one of three steps: copied into a batch
//! for one sendmsg per 64 (packets that fit in a page, on a tun/tap or macvtap socket with
//! an unlimited sndbuf), sent zero-copy as the guest's pinned pages (large packets on a
//! backend with zero-copy, see zerocopy.rs), or copied by the socket on its own.

use super::{busy, skip_bytes, NetVq, Round, BATCH, NVQS};
use crate::{
    dev::{IotlbMsgs, Slot, Workers},
    guest::UserMem,
    ring::{Chain, RingError},
    zerocopy::GOODCOPY_LEN,
};
use kernel::{prelude::*, sync::Mutex};

/// What became of one chain.
enum Tx {
    /// Sent, or dropped: the buffer goes back to the guest now.
    Used,
    /// Sent zero-copy: the buffer goes back when the network stack lets go of its pages.
    Pending,
    /// The socket is full for now: the chain was given back, to be sent when it drains.
    Retry,
}

/// The errors of a non-blocking send into a socket that is full for now.
fn full(e: Error) -> bool {
    e == EAGAIN || e == ENOMEM || e == ENOBUFS
}

/// `handle_tx()`: sends what the guest made available, until the ring is empty, the socket
/// is full, or the queue has had its share. Returns true if the queue gave way to its
/// weight (or to other work, during a busy poll) and must run again.
pub(super) fn handle_tx(
    slot: &mut Slot<NetVq>,
    rx: &Mutex<Slot<NetVq>>,
    msgs: &IotlbMsgs,
    workers: &Workers<NVQS>,
    id: usize,
) -> bool {
    let (view, nvq) = slot.parts(msgs);
    let Some(mut round) = Round::begin(nvq, view) else {
        return false;
    };
    let mut done = 0usize;
    let mut requeue = false;
    let in_order = in_order(nvq);
    let batching = nvq.zcopy.is_none()
        && nvq.txbatch.is_some()
        && nvq.backend.as_ref().is_some_and(|s| s.can_batch());
    loop {
        if round.exceeds_weight(&mut nvq.stats) {
            requeue = true;
            break;
        }
        // Zero-copy buffers the stack has let go of go back to the guest first.
        if let Some(zc) = nvq.zcopy.as_mut() {
            let (heads, ndescs) = nvq.vq.used_mut(done);
            done += zc.collect(heads, ndescs, &mut nvq.stats);
            if done >= BATCH {
                flush(nvq, &round.mem, done);
                done = 0;
            }
        }
        let mut chain = nvq.vq.get_desc(&round.mem, 0, None);
        let mut busyloop_intr = false;
        if matches!(chain, Ok(None)) && nvq.vq.busyloop_timeout() != 0 {
            // vhost_net_tx_get_vq_desc(): publish what is done, watch the rings and the RX
            // socket a while, then look again.
            flush(nvq, &round.mem, done);
            done = 0;
            // The RX queue only if it is free (`mutex_trylock()`).
            if let Some(mut rvq) = rx.try_lock() {
                busyloop_intr = busy::busy_poll(rvq.q_mut(), nvq, view, workers, id, false);
            }
            chain = nvq.vq.get_desc(&round.mem, 0, None);
        }
        if !matches!(chain, Ok(Some(_))) {
            // Out of work or stopping: what is batched goes now, before we sleep.
            flush(nvq, &round.mem, done);
            done = 0;
        }
        let chain = match chain {
            Ok(Some(c)) => c,
            // Other work is waiting: give way to it, and come back.
            Ok(None) if busyloop_intr => {
                requeue = true;
                break;
            }
            Ok(None) if nvq.vq.rearm(&round.mem) => continue,
            Ok(None) => break,
            Err(e) => {
                nvq.vq.error("TX: bad descriptor chain", e);
                break;
            }
        };
        let Some(pkt) = packet(nvq, &chain) else {
            break;
        };
        let outcome = if batching {
            match batched(nvq, &pkt) {
                Some(Tx::Retry) => {
                    // No memory for now: what is batched goes first.
                    flush(nvq, &round.mem, done);
                    done = 0;
                    Tx::Retry
                }
                Some(t) => t,
                None => {
                    // Too big for a page: sent alone, after what is batched.
                    flush(nvq, &round.mem, done);
                    done = 0;
                    single(nvq, &pkt)
                }
            }
        } else {
            single(nvq, &pkt)
        };
        match outcome {
            Tx::Retry => {
                retry_later(nvq, chain.ndesc);
                break;
            }
            Tx::Used if in_order => {
                // As vhost-net's heads[0].id: the batch's one element names its last chain,
                // and covers the descriptors of all of them.
                done += 1;
                let before = if done == 1 { 0 } else { nvq.vq.used_ndesc(0) };
                let ndesc = before.wrapping_add(chain.ndesc);
                nvq.vq
                    .set_used_in_order(0, u32::from(chain.head), 0, done as u16, ndesc);
            }
            Tx::Used => {
                if nvq.vq.set_used(done, u32::from(chain.head), 0, chain.ndesc) {
                    done += 1;
                }
            }
            Tx::Pending => {}
        }
        if done >= BATCH {
            flush(nvq, &round.mem, done);
            done = 0;
        }
        round.total += pkt.len as usize;
    }
    flush(nvq, &round.mem, done);
    requeue
}

/// A chain as a packet: its payload in `iov[first..out]` after the virtio-net header vhost
/// strips, `payload` bytes of it, `len` bytes with the header.
struct Packet {
    head: u16,
    ndesc: u16,
    first: usize,
    out: usize,
    payload: usize,
    len: u64,
}

/// `get_tx_bufs()`: checks the chain's shape and skips the header. `None` (the queue's
/// error signalled) for a chain with device-writable buffers, or no payload.
fn packet(nvq: &mut NetVq, chain: &Chain) -> Option<Packet> {
    if chain.in_num != 0 {
        nvq.vq
            .error("TX: unexpected descriptor format", RingError::OutAfterIn);
        return None;
    }
    let out = chain.out_num;
    let len: u64 = nvq.vq.iov().iter().take(out).map(|s| s.len).sum();
    let hlen = nvq.vhost_hlen as u64;
    let first = skip_bytes(nvq.vq.iov_mut(), out, hlen);
    match first {
        Some(first) if len > hlen => Some(Packet {
            head: chain.head,
            ndesc: chain.ndesc,
            first,
            out,
            payload: (len - hlen) as usize,
            len,
        }),
        _ => {
            nvq.vq
                .error("TX: shorter than the virtio-net header", RingError::Fault);
            None
        }
    }
}

/// The batched step (`vhost_net_build_xdp()`): copies the packet into the batch. `None` if
/// it does not fit in a page (the caller sends it alone).
fn batched(nvq: &mut NetVq, pkt: &Packet) -> Option<Tx> {
    let (Some(b), Some(sock)) = (nvq.txbatch.as_mut(), nvq.backend.as_ref()) else {
        return Some(Tx::Retry);
    };
    let iov = nvq.vq.iov().get(pkt.first..pkt.out).unwrap_or_default();
    match b.add(sock, iov, pkt.payload, nvq.sock_hlen) {
        Ok(()) => {
            b.bytes += pkt.len;
            Some(Tx::Used)
        }
        Err(e) if e == ENOSPC => None,
        // No memory for now: as vhost-net, give the chain back and retry once the socket
        // polls writable.
        Err(e) if e == ENOMEM => Some(Tx::Retry),
        // A buffer we cannot read or a header that points past the data: dropped, as a
        // failed send would be. (vhost-net gives such a chain back and stops, to meet it
        // again at the next kick: a guest could stall its own queue.)
        Err(_) => {
            nvq.stats.drops += 1;
            Some(Tx::Used)
        }
    }
}

/// A packet sent on its own: zero-copy when the backend has it and the packet qualifies
/// (`vhost_net_tx_select_zcopy()`), else copied by the socket.
fn single(nvq: &mut NetVq, pkt: &Packet) -> Tx {
    let zcopy = nvq
        .zcopy
        .as_ref()
        .map(|zc| zc.select(pkt.payload, nvq.vq.num()));
    let outcome = match zcopy {
        Some(true) => zerocopy(nvq, pkt),
        Some(false) => {
            if pkt.payload >= GOODCOPY_LEN {
                nvq.stats.zcopy_fallbacks += 1;
            }
            copy(nvq, pkt)
        }
        None => copy(nvq, pkt),
    };
    if !matches!(outcome, Tx::Retry) {
        if let Some(zc) = nvq.zcopy.as_mut() {
            zc.packet();
        }
    }
    outcome
}

/// The copy step (`handle_tx_copy()`'s sendmsg): the socket copies the guest's buffer.
fn copy(nvq: &mut NetVq, pkt: &Packet) -> Tx {
    let Some(sock) = nvq.backend.as_ref() else {
        return Tx::Retry;
    };
    let iov = nvq.vq.iov().get(pkt.first..pkt.out).unwrap_or_default();
    match sock.sendmsg(iov, pkt.payload) {
        Err(e) if full(e) => Tx::Retry,
        Ok(_) => {
            nvq.stats.packets += 1;
            nvq.stats.bytes += pkt.len;
            Tx::Used
        }
        // Any other failure drops the packet, as vhost-net does; the buffer is used.
        Err(_) => {
            nvq.stats.drops += 1;
            Tx::Used
        }
    }
}

/// The zero-copy step (`handle_tx_zerocopy()`'s sendmsg): the guest's pages go to the
/// socket; a failed send other than "full" drops the packet, its slot returned in order.
fn zerocopy(nvq: &mut NetVq, pkt: &Packet) -> Tx {
    let (Some(zc), Some(sock)) = (nvq.zcopy.as_mut(), nvq.backend.as_ref()) else {
        return Tx::Retry;
    };
    let iov = nvq.vq.iov().get(pkt.first..pkt.out).unwrap_or_default();
    match zc.send(pkt.head, pkt.ndesc, sock, iov, pkt.payload, &mut nvq.stats) {
        Err(e) if full(e) => Tx::Retry,
        Ok(_) => {
            nvq.stats.packets += 1;
            nvq.stats.bytes += pkt.len;
            Tx::Pending
        }
        Err(_) => {
            nvq.stats.drops += 1;
            Tx::Pending
        }
    }
}

/// Gives the chain just taken (`ndesc` descriptors) back to the ring and polls the socket,
/// which wakes the worker once it is writable again (`vhost_discard_vq_desc()` and
/// `vhost_net_enable_vq()`).
fn retry_later(nvq: &mut NetVq, ndesc: u16) {
    nvq.vq.discard(1, ndesc);
    if let (Some(poll), Some(sock)) = (nvq.sock_poll.as_mut(), nvq.backend.as_ref()) {
        let _ = poll.start(sock.file());
    }
}

/// IN_ORDER on TX: the chains used go back as one used element naming the last of them
/// (`vhost_tx_batch()`); not on the zero-copy path, which vhost-net leaves out of order.
fn in_order(nvq: &NetVq) -> bool {
    nvq.zcopy.is_none() && nvq.vq.in_order()
}

/// `vhost_tx_batch()`: sends the batched packets, then publishes `n` used elements, or with
/// IN_ORDER the one element for all `n` (set as they were used). A failed batch send drops
/// its packets (the guest gets its buffers back all the same).
fn flush(nvq: &mut NetVq, mem: &UserMem<'_>, n: usize) {
    if let (Some(b), Some(sock)) = (nvq.txbatch.as_mut(), nvq.backend.as_ref()) {
        let (pkts, bytes) = (b.len() as u64, b.bytes);
        if pkts != 0 {
            if b.flush(sock).is_ok() {
                nvq.stats.packets += pkts;
                nvq.stats.bytes += bytes;
                nvq.stats.batches += 1;
                nvq.stats.batched += pkts;
            } else {
                nvq.stats.drops += pkts;
            }
        }
    }
    if in_order(nvq) {
        nvq.vq.add_used_in_order_and_signal(mem, n.min(1));
    } else {
        nvq.vq.add_used_and_signal_n(mem, n);
    }
}
