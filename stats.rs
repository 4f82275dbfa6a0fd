// SPDX-License-Identifier: GPL-2.0

//! Per-queue counters of the net device. The worker keeps them in each queue's `VqStats`
//! (and the generic queue its `VqCounters`: calls, errors), under the device lock, with
//! plain additions; they are shown in `/proc/PID/fdinfo/FD` of the device file
//! (read under the lock) and in debugfs, `/sys/kernel/debug/vhost-rs/<tgid>-<n>/{rx,tx}`,
//! one `name value` line each. Debugfs reads a copy, `QueueStats`, which the device
//! publishes after every worker round and every ioctl: a reader never takes the device lock
//! and so never waits behind a busy queue. vhost-net has no counters at all.

use crate::{dev::VqCounters, sys};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{debugfs::Dir, fmt, prelude::*, str::CString};

/// Per-queue counters, since the queue's last reset (`Vq::new()`).
#[derive(Clone, Copy, Default)]
pub(crate) struct VqStats {
    /// Packets sent (TX) or received into the guest (RX), and their bytes with headers.
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// Packets dropped: failed sends, oversized or failed receives.
    pub(crate) drops: u64,
    /// Busy polls that found work before the timeout, and those that did not.
    pub(crate) busy_hits: u64,
    pub(crate) busy_misses: u64,
    /// Rounds that gave way to the weight limit and were requeued.
    pub(crate) requeues: u64,
    /// Zero-copy TX: buffers sent as the guest's pages; of those returned to the guest,
    /// the ones the stack used in place and the ones it copied after all; large buffers
    /// copied by us instead (too many in flight, or too many copied recently).
    pub(crate) zcopy: u64,
    pub(crate) zcopy_done: u64,
    pub(crate) zcopy_copied: u64,
    pub(crate) zcopy_fallbacks: u64,
    /// Batching: on TX, sendmsg calls that carried a batch and the packets in them; on RX,
    /// refills of the batch from the socket's ring and the packets they took.
    pub(crate) batches: u64,
    pub(crate) batched: u64,
}

/// What fdinfo and debugfs show of a queue, in this order. `kicks` is counted in the kick
/// wakeup, outside the device lock; `busyloop_timeout`, `zcopy_inflight` and `packed_ring`
/// (1 when the queue's ring is packed) are state.
const NAMES: [&str; NSTATS] = [
    "packets",
    "bytes",
    "drops",
    "kicks",
    "calls",
    "errors",
    "busy_hits",
    "busy_misses",
    "requeues",
    "busyloop_timeout",
    "zcopy",
    "zcopy_done",
    "zcopy_copied",
    "zcopy_fallbacks",
    "zcopy_inflight",
    "batches",
    "batched",
    "packed_ring",
];
const NSTATS: usize = 18;
const KICKS: usize = 3;

/// What a queue shows: the net counters, the generic queue's, and three pieces of state.
pub(crate) struct Snapshot<'a> {
    pub(crate) stats: &'a VqStats,
    pub(crate) counters: &'a VqCounters,
    pub(crate) busyloop_timeout: u32,
    pub(crate) zcopy_inflight: usize,
    pub(crate) packed: bool,
}

/// The values of `NAMES` (`kicks` as 0: it is not kept in the queue).
fn values(q: &Snapshot<'_>) -> [u64; NSTATS] {
    let st = q.stats;
    [
        st.packets,
        st.bytes,
        st.drops,
        0,
        q.counters.calls,
        q.counters.errors,
        st.busy_hits,
        st.busy_misses,
        st.requeues,
        u64::from(q.busyloop_timeout),
        st.zcopy,
        st.zcopy_done,
        st.zcopy_copied,
        st.zcopy_fallbacks,
        q.zcopy_inflight as u64,
        st.batches,
        st.batched,
        u64::from(q.packed),
    ]
}

/// A queue's counters as debugfs shows them. One writer at a time (`publish()` under the
/// device lock, `kick()` with atomic additions); any number of readers.
pub(crate) struct QueueStats {
    v: [AtomicU64; NSTATS],
}

impl QueueStats {
    pub(crate) fn new() -> Self {
        Self {
            v: [const { AtomicU64::new(0) }; NSTATS],
        }
    }

    /// A guest kick, counted in the wakeup (atomic context).
    pub(crate) fn kick(&self) {
        self.v[KICKS].fetch_add(1, Ordering::Relaxed);
    }

    /// Copies a queue's counters. The caller holds the device lock, so stores do not race.
    pub(crate) fn publish(&self, q: &Snapshot<'_>) {
        for (i, v) in values(q).into_iter().enumerate() {
            if i != KICKS {
                self.v[i].store(v, Ordering::Relaxed);
            }
        }
    }

    /// Writes a queue's counters (exact: the caller holds the device lock) on the line
    /// `prefix: name value name value ...`, for fdinfo.
    pub(crate) fn show_line(
        &self,
        q: &Snapshot<'_>,
        m: &kernel::seq_file::SeqFile,
        prefix: fmt::Arguments<'_>,
    ) {
        let mut vals = values(q);
        vals[KICKS] = self.v[KICKS].load(Ordering::Relaxed);
        kernel::seq_print!(m, "{}:", prefix);
        for (name, v) in NAMES.iter().zip(vals) {
            kernel::seq_print!(m, " {} {}", name, v);
        }
    }

    /// The debugfs file: `name value`, a line each.
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, v) in NAMES.iter().zip(&self.v) {
            writeln!(f, "{} {}", name, v.load(Ordering::Relaxed))?;
        }
        Ok(())
    }
}

/// Numbers the devices' debugfs directories, so that one process may open many.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A device's debugfs directory: its name (relative to the debugfs mount), which the device
/// keeps, and its handle, which only the device's files keep (`queue_file()`).
pub(crate) struct DebugDir {
    pub(crate) name: CString,
    pub(crate) dir: Dir,
}

impl DebugDir {
    /// `vhost-rs/<tgid>-<n>` for a device opened by the current process. Without debugfs
    /// the handle is inert and the files exist only in memory.
    pub(crate) fn new() -> Result<Self> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let tgid = kernel::current!().tgid();
        let leaf = CString::try_from_fmt(fmt!("{}-{}", tgid, id))?;
        let name = CString::try_from_fmt(fmt!("vhost-rs/{}-{}", tgid, id))?;
        // The root exists from module init to exit; devices are opened only in between.
        let dir = sys::debugfs_root().ok_or(ENODEV)?.subdir(&leaf);
        Ok(Self { name, dir })
    }
}

/// The read-only file `name` in `dir`, showing the queue counters it owns.
pub(crate) fn queue_file<'a>(
    dir: &'a Dir,
    name: &'a CStr,
) -> impl PinInit<kernel::debugfs::File<QueueStats>> + 'a {
    dir.read_callback_file(name, QueueStats::new(), &QueueStats::show)
}
