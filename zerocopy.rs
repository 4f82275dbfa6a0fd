// SPDX-License-Identifier: GPL-2.0

//! Zero-copy transmit (`handle_tx_zerocopy()` of `drivers/vhost/net.c`): a large TX buffer
//! goes to a tun/tap or macvtap socket as the guest's own pages, pinned by the socket, with
//! a completion that fires once the last skb (clones included) lets go of them. Until then
//! the buffer is not returned to the guest, so it cannot be reused under the network stack.
//!
//! The buffers in flight form a ring of `UIO_MAXIOV` slots: `upend` is the next slot to
//! send, `done` the oldest not yet returned. Completions may come in any order; buffers go
//! back to the guest in the order they were sent, from `done` while slots are complete.
//! Small buffers, a queue with too many in flight, and a socket whose zero-copy sends keep
//! failing (falling back to copies inside the stack) take the copy path instead.

use crate::{
    ring::Iov,
    stats::VqStats,
    sys::{PollWake, Socket, Zc, ZcState},
};
use kernel::prelude::*;

/// Buffers shorter than this are copied (`VHOST_GOODCOPY_LEN`).
pub(crate) const GOODCOPY_LEN: usize = 256;
/// At most this many buffers in flight, and a quarter of the ring (`VHOST_MAX_PEND`).
const MAX_PEND: usize = 128;

/// The zero-copy state of a TX backend; dropping it waits for every buffer in flight.
pub(crate) struct ZeroCopy {
    zc: Zc,
    /// The head of the chain in each slot, and the descriptors it took.
    heads: KVec<(u16, u16)>,
    upend: usize,
    done: usize,
    /// Packets since the last reset of the error rate, and zero-copy sends among them that
    /// the stack completed with a copy (`tx_packets`, `tx_zcopy_err`).
    tx_packets: u32,
    tx_zcopy_err: u32,
}

impl ZeroCopy {
    /// Completions wake `target` with `bit`.
    ///
    /// # Safety
    ///
    /// As [`Zc::new`]: `target` outlives the result (it is kept in `target`'s device).
    pub(crate) unsafe fn new<T: PollWake>(target: &T, bit: u32) -> Result<Self> {
        let mut heads = KVec::with_capacity(Zc::SLOTS, GFP_KERNEL)?;
        heads.resize(Zc::SLOTS, (0, 0), GFP_KERNEL)?;
        Ok(Self {
            // SAFETY: the caller's contract.
            zc: unsafe { Zc::new(target, bit) }?,
            heads,
            upend: 0,
            done: 0,
            tx_packets: 0,
            tx_zcopy_err: 0,
        })
    }

    /// Buffers sent and not yet returned to the guest.
    fn outstanding(&self) -> usize {
        (self.upend + Zc::SLOTS - self.done) % Zc::SLOTS
    }

    /// Buffers the network stack still holds (for fdinfo).
    pub(crate) fn inflight(&self) -> usize {
        self.zc.inflight()
    }

    /// `vhost_exceeds_maxpend()` for a ring of `num` entries.
    fn exceeds_maxpend(&self, num: u32) -> bool {
        self.outstanding() > MAX_PEND.min(num as usize >> 2)
    }

    /// Whether a buffer of `len` bytes (after the header) goes zero-copy: large enough, not
    /// too many in flight, and not more than one in 64 recent sends fell back to a copy
    /// (`vhost_net_tx_select_zcopy()`).
    pub(crate) fn select(&self, len: usize, num: u32) -> bool {
        len >= GOODCOPY_LEN
            && !self.exceeds_maxpend(num)
            && self.tx_packets / 64 >= self.tx_zcopy_err
    }

    /// `vhost_net_tx_packet()`: a packet was handled; the error rate restarts every 1024.
    pub(crate) fn packet(&mut self) {
        self.tx_packets += 1;
        if self.tx_packets >= 1024 {
            self.tx_packets = 0;
            self.tx_zcopy_err = 0;
        }
    }

    /// Sends chain `head` of `ndesc` descriptors (`iov`, `len` bytes) zero-copy. A socket that is full for now
    /// (`EAGAIN`, `ENOMEM`, `ENOBUFS`) leaves no trace: the caller gives the chain back. Any
    /// other error drops the packet and the slot is returned in order like a sent one.
    pub(crate) fn send(
        &mut self,
        head: u16,
        ndesc: u16,
        sock: &Socket,
        iov: &[Iov],
        len: usize,
        stats: &mut VqStats,
    ) -> Result<usize> {
        let slot = self.upend;
        self.heads[slot] = (head, ndesc);
        self.upend = (slot + 1) % Zc::SLOTS;
        let r = self.zc.sendmsg(slot, sock, iov, len);
        match r {
            Err(e) if e == EAGAIN || e == ENOMEM || e == ENOBUFS => {
                self.upend = slot;
                self.zc.set_state(slot, ZcState::Clear);
            }
            Err(_) => {
                stats.zcopy += 1;
                self.zc.set_state(slot, ZcState::Done);
            }
            Ok(_) => stats.zcopy += 1,
        }
        r
    }

    /// `vhost_zerocopy_signal_used()`: moves the buffers completed in order from `done` to
    /// `out` as used elements (length 0, as vhost-net), their descriptor counts to `ndescs`,
    /// and returns how many.
    pub(crate) fn collect(
        &mut self,
        out: &mut [(u32, u32)],
        ndescs: &mut [u16],
        stats: &mut VqStats,
    ) -> usize {
        let mut n = 0;
        while self.done != self.upend && n < out.len().min(ndescs.len()) {
            match self.zc.state(self.done) {
                ZcState::Done => stats.zcopy_done += 1,
                ZcState::Failed => {
                    self.tx_zcopy_err += 1;
                    stats.zcopy_copied += 1;
                }
                ZcState::InProgress | ZcState::Clear => break,
            }
            self.zc.set_state(self.done, ZcState::Clear);
            let (head, ndesc) = self.heads[self.done];
            out[n] = (u32::from(head), 0);
            ndescs[n] = ndesc;
            n += 1;
            self.done = (self.done + 1) % Zc::SLOTS;
        }
        n
    }

    /// Waits until the network stack has let go of every buffer (`vhost_net_flush()`'s
    /// wait); afterwards `collect` returns them all.
    pub(crate) fn wait(&mut self) {
        self.zc.wait();
    }
}
