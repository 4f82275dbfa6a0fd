// SPDX-License-Identifier: GPL-2.0

//! Busy polling (`vhost_net_busy_poll()` of net.c): a handler that ran out of work spins a
//! while (the queue's busy-loop timeout, about microseconds) watching the TX ring and the RX
//! socket with the RX ring, instead of sleeping until the next kick or wakeup.

use super::{NetVq, NVQS, RX, TX};
use crate::{
    dev::{kick_bit, GuestView, Workers},
    sys,
};
use kernel::processor::cpu_relax;

/// `vhost_net_busy_poll()`: the handler of `poll_rx ? RX : TX` ran out of work; for up to
/// that queue's busy-loop timeout it spins, watching the TX ring and the RX socket with the
/// RX ring, while the paired queue takes no kicks. It stops at a reschedule or a signal
/// (then the caller sleeps until the next kick, as vhost-net's worker does) and gives way
/// to other pending work (then returns true: the caller requeues); afterwards the paired
/// queue runs if it has work, else takes kicks again. Counts a hit (work appeared) or a
/// miss on the polling queue.
pub(super) fn busy_poll(
    rvq: &mut NetVq,
    tvq: &mut NetVq,
    view: GuestView<'_>,
    workers: &Workers<NVQS>,
    id: usize,
    poll_rx: bool,
) -> bool {
    let (Some(rmem), Some(tmem)) = (rvq.vq.mem(view), tvq.vq.mem(view)) else {
        return false;
    };
    // The paired queue is left alone unless it is running (its rings are then valid).
    let (pvq, pmem) = if poll_rx {
        (&mut *tvq, &tmem)
    } else {
        (&mut *rvq, &rmem)
    };
    let paired = pvq.backend.is_some();
    if paired {
        pvq.vq.disable_notify(pmem);
    }
    let timeout = if poll_rx {
        rvq.vq.busyloop_timeout()
    } else {
        tvq.vq.busyloop_timeout()
    };
    let end = sys::busy_clock().saturating_add(u64::from(timeout));
    let (mut intr, mut hit) = (false, false);
    while sys::can_busy_poll(end) {
        if workers.work(id).pending() {
            intr = true;
            break;
        }
        let rx_data = rvq.rx_peek_len() > 0;
        // A ring that cannot be read counts as not empty: its handler reports the error.
        if (rx_data && rvq.vq.has_avail(&rmem).unwrap_or(true))
            || (tvq.backend.is_some() && tvq.vq.has_avail(&tmem).unwrap_or(true))
        {
            hit = true;
            break;
        }
        cpu_relax();
    }
    let stats = if poll_rx {
        &mut rvq.stats
    } else {
        &mut tvq.stats
    };
    if hit {
        stats.busy_hits += 1;
    } else {
        stats.busy_misses += 1;
    }
    if !paired {
        return intr;
    }
    let rx_data = rvq.rx_peek_len() > 0;
    let (pvq, pmem, pbit) = if poll_rx {
        (&mut *tvq, &tmem, kick_bit(TX))
    } else {
        (&mut *rvq, &rmem, kick_bit(RX))
    };
    if poll_rx || rx_data {
        // vhost_net_busy_poll_try_queue(): run the paired queue if it has work.
        let has_work = match pvq.vq.has_avail(pmem) {
            Ok(true) | Err(_) => true,
            Ok(false) => pvq.vq.rearm(pmem),
        };
        if has_work {
            workers.requeue(pbit, id);
        }
    } else {
        // TX polled and RX has no data: RX takes kicks again.
        let _ = pvq.vq.enable_notify(pmem);
    }
    intr
}
