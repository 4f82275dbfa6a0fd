// SPDX-License-Identifier: GPL-2.0

//! The generic vhost device, as `drivers/vhost/vhost.c` (Linux 7.3): the owner, the memory
//! table, the dirty log, the virtqueues with their kick polls and locks, the vring ioctls, and
//! the workers with their pending work and ioctls. It knows no socket and no net feature: a
//! device type (the net device, net.rs) wraps each [`Vq`] in a queue of its own
//! ([`DevQueue`]), says when that queue is active (`vq->private_data` in C), and runs the
//! work the polls note.
//! Functions are named after their C counterparts, errno values are theirs.

use crate::{
    guest::{IotlbView, UsedLog, UserMem},
    mem::{self, Map, MemTable},
    ring::{
        self, Chain, ChainBuf, GuestMemory, Iov, LogEntry, Part, RingError, Vring, ACCESS_RO,
        ACCESS_RW, ACCESS_WO,
    },
    sys::{self, params, EventFdCtx, Poll, PollWake, Worker, WorkerOps, EPOLLIN, EPOLLRDNORM},
    uapi::*,
    user,
};
use kernel::{
    fs::File,
    mm::MmWithUser,
    new_spinlock,
    prelude::*,
    static_lock_class,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Full, Release},
        poll::{PollCondVarBox, PollTable},
        Arc, SpinLock,
    },
};

/// The pending-work bit of queue `i`'s kick; a device type uses the bits above
/// `KICK_BITS` for its own work.
pub(crate) const fn kick_bit(i: usize) -> u32 {
    1 << i
}

/// Bits `kick_bit()` may use: at most this many queues.
pub(crate) const KICK_BITS: usize = 2;

/// Counters every queue keeps, whatever the device: signals of the call eventfd, and of the
/// err eventfd (malformed input).
#[derive(Clone, Copy, Default)]
pub(crate) struct VqCounters {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
}

/// One virtqueue (`struct vhost_virtqueue` without `private_data`, which the device type's
/// queue holds beside it).
pub(crate) struct Vq {
    /// The ring, split or packed: addresses, indices, notification state.
    ring: Vring,
    /// Dirty logging of used-ring writes at guest physical `log_addr`.
    log_used: bool,
    log_addr: u64,
    log_base: u64,
    acked_features: Features,
    acked_backend_features: u64,
    /// Polls the kick eventfd; declared before the file it polls, so that it is stopped
    /// before that is released.
    kick_poll: Option<Poll>,
    kick: Option<ARef<File>>,
    call: Option<EventFdCtx>,
    err: Option<EventFdCtx>,
    busyloop_timeout: u32,
    /// Translated segments of the chains being processed (`vq->iov`, `UIO_MAXIOV`).
    iov: KVec<Iov>,
    /// Writable descriptors of those chains, for the dirty log (`vq->log`).
    log: KVec<LogEntry>,
    /// Used elements waiting to be published (`vq->heads`), with IN_ORDER how many
    /// buffers each stands for (`vq->nheads`), and the descriptors their chains took
    /// (which a packed ring's used side skips).
    heads: KVec<(u32, u32)>,
    nheads: KVec<u16>,
    ndescs: KVec<u16>,
    counters: VqCounters,
    /// Whether the device IOTLB translates this queue's addresses (`vq->iotlb`).
    iotlb: bool,
    /// The IOTLB mappings covering each whole ring part, as the last prefetch found them
    /// (`vq->meta_iotlb`), by [`Part`].
    meta: [Option<Map>; 3],
    /// The queue's index in its device, for the misses it reports (set with the owner).
    index: usize,
}

/// The guest memory of a device, for the rounds of its queues: the memory table and the
/// eventfd that tells the VMM about dirty-log writes. Each queue adds its own used-ring log
/// ([`Vq::mem`]).
#[derive(Clone, Copy)]
pub(crate) struct GuestView<'a> {
    umem: Option<&'a MemTable>,
    log_ctx: Option<&'a EventFdCtx>,
    iotlb: Option<&'a MemTable>,
    msgs: &'a IotlbMsgs,
}

impl Default for Vq {
    fn default() -> Self {
        Self::new()
    }
}

impl Vq {
    /// The state `vhost_vq_reset()` leaves.
    pub(crate) fn new() -> Self {
        Self {
            ring: Vring::new(),
            log_used: false,
            log_addr: u64::MAX,
            log_base: 0,
            acked_features: [0; FEATURES_U64S],
            acked_backend_features: 0,
            kick_poll: None,
            kick: None,
            call: None,
            err: None,
            busyloop_timeout: 0,
            iov: KVec::new(),
            log: KVec::new(),
            heads: KVec::new(),
            nheads: KVec::new(),
            ndescs: KVec::new(),
            counters: VqCounters::default(),
            iotlb: false,
            meta: [None; 3],
            index: 0,
        }
    }

    /// `vhost_dev_alloc_iovecs()` and the kick poll of `vhost_dev_init()`: what a queue
    /// needs once an owner exists. `heads` holds `heads` used elements.
    ///
    /// # Safety
    ///
    /// `target` outlives the poll (as [`Poll::new`]).
    unsafe fn set_owner<T: PollWake>(&mut self, target: &T, bit: u32, heads: usize) -> Result {
        let mut iov = KVec::with_capacity(ring::MAX_IOV, GFP_KERNEL)?;
        iov.resize(ring::MAX_IOV, Iov::default(), GFP_KERNEL)?;
        let mut log = KVec::with_capacity(ring::MAX_IOV, GFP_KERNEL)?;
        log.resize(ring::MAX_IOV, LogEntry::default(), GFP_KERNEL)?;
        let mut h = KVec::with_capacity(heads, GFP_KERNEL)?;
        h.resize(heads, (0, 0), GFP_KERNEL)?;
        let mut nh = KVec::with_capacity(heads, GFP_KERNEL)?;
        nh.resize(heads, 0, GFP_KERNEL)?;
        let mut nd = KVec::with_capacity(heads, GFP_KERNEL)?;
        nd.resize(heads, 0, GFP_KERNEL)?;
        // SAFETY: the caller's contract.
        self.kick_poll = Some(unsafe { Poll::new(target, EPOLLIN, bit) }?);
        self.iov = iov;
        self.log = log;
        self.heads = h;
        self.nheads = nh;
        self.ndescs = nd;
        self.index = bit.trailing_zeros() as usize;
        Ok(())
    }

    /// `vhost_dev_free_iovecs()`, and the kick poll stopped: undoes `set_owner`.
    fn drop_owner(&mut self) {
        self.kick_poll = None;
        self.iov = KVec::new();
        self.log = KVec::new();
        self.heads = KVec::new();
        self.nheads = KVec::new();
        self.ndescs = KVec::new();
    }

    /// Takes on negotiated features: the ring's layout and notification behaviour.
    pub(crate) fn set_features(&mut self, features: Features) {
        self.acked_features = features;
        self.ring.set_features(
            has_feature(&features, VIRTIO_F_RING_PACKED),
            has_feature(&features, VIRTIO_RING_F_EVENT_IDX),
            has_feature(&features, VIRTIO_F_NOTIFY_ON_EMPTY),
            has_feature(&features, VIRTIO_F_IN_ORDER),
        );
    }

    pub(crate) fn set_backend_features(&mut self, features: u64) {
        self.acked_backend_features = features;
    }

    pub(crate) fn has_feature(&self, bit: u32) -> bool {
        has_feature(&self.acked_features, bit)
    }

    pub(crate) fn busyloop_timeout(&self) -> u32 {
        self.busyloop_timeout
    }

    pub(crate) fn counters(&self) -> &VqCounters {
        &self.counters
    }

    /// Entries in the ring (`vq->num`).
    pub(crate) fn num(&self) -> u32 {
        self.ring.num()
    }

    /// The segments the last chains were translated into.
    pub(crate) fn iov(&self) -> &[Iov] {
        &self.iov
    }

    pub(crate) fn iov_mut(&mut self) -> &mut [Iov] {
        &mut self.iov
    }

    /// Used elements from `i` on, waiting to be published by
    /// [`Vq::add_used_and_signal_n`]: `(id, len)` and the descriptors of each chain.
    pub(crate) fn used_mut(&mut self, i: usize) -> (&mut [(u32, u32)], &mut [u16]) {
        (
            self.heads.get_mut(i..).unwrap_or_default(),
            self.ndescs.get_mut(i..).unwrap_or_default(),
        )
    }

    /// Used element `i` for [`Vq::add_used_and_signal_n`]: `(id, len)` of a chain of
    /// `ndesc` descriptors. False if there is no element `i`.
    pub(crate) fn set_used(&mut self, i: usize, id: u32, len: u32, ndesc: u16) -> bool {
        match (self.heads.get_mut(i), self.ndescs.get_mut(i)) {
            (Some(h), Some(nd)) => {
                *h = (id, len);
                *nd = ndesc;
                true
            }
            _ => false,
        }
    }

    /// Used element `i` for [`Vq::add_used_in_order_and_signal`]: `(id, len)` of the last
    /// of the `n` buffers it stands for, `ndesc` descriptors in all. False if there is no
    /// element `i`.
    pub(crate) fn set_used_in_order(
        &mut self,
        i: usize,
        id: u32,
        len: u32,
        n: u16,
        ndesc: u16,
    ) -> bool {
        match (
            self.heads.get_mut(i),
            self.nheads.get_mut(i),
            self.ndescs.get_mut(i),
        ) {
            (Some(h), Some(nh), Some(nd)) => {
                *h = (id, len);
                *nh = n;
                *nd = ndesc;
                true
            }
            _ => false,
        }
    }

    /// The descriptors recorded for used element `i` so far (0 if there is none).
    pub(crate) fn used_ndesc(&self, i: usize) -> u16 {
        self.ndescs.get(i).copied().unwrap_or(0)
    }

    /// Whether `VIRTIO_F_IN_ORDER` was negotiated.
    pub(crate) fn in_order(&self) -> bool {
        self.ring.in_order()
    }

    /// Whether the ring is packed (`VIRTIO_F_RING_PACKED` negotiated).
    pub(crate) fn packed(&self) -> bool {
        self.ring.is_packed()
    }

    /// The memory a round on this queue works in: the device's, with this queue's used-ring
    /// log and, with the device IOTLB, its ring translations. `None` before the first
    /// `SET_MEM_TABLE`.
    pub(crate) fn mem<'a>(&self, view: GuestView<'a>) -> Option<UserMem<'a>> {
        let iotlb = match (self.iotlb, view.iotlb) {
            (true, Some(table)) => Some(IotlbView {
                table,
                meta: self.meta,
                msgs: view.msgs,
                vq: self.index,
                v2: self.acked_backend_features & (1 << VHOST_BACKEND_F_IOTLB_MSG_V2) != 0,
            }),
            _ => None,
        };
        // With the IOTLB the used ring is logged by its ring address, translated
        // (log_used()); `log_addr` is then an I/O virtual address vhost never uses.
        let (desc, _, used) = self.ring.addrs();
        let addr = if iotlb.is_some() { used } else { self.log_addr };
        Some(UserMem {
            table: view.umem?,
            iotlb,
            used_log: self.log_used.then_some(UsedLog {
                base: self.log_base,
                addr,
                desc,
                ctx: view.log_ctx,
            }),
        })
    }

    /// `vq_meta_prefetch()`, at the start of a round: false if the queue cannot run now —
    /// its rings were never placed (all three addresses 0, as after the switch to the
    /// IOTLB), or, with the IOTLB, a ring part is not mapped (a miss is reported and the
    /// answer requeues the queue) or not with the access it needs. Caches the mappings
    /// that cover a whole part.
    pub(crate) fn prefetch(&mut self, view: GuestView<'_>) -> bool {
        let (desc, avail, used) = self.ring.addrs();
        if desc == 0 && avail == 0 && used == 0 {
            return false;
        }
        let Some(table) = view.iotlb.filter(|_| self.iotlb) else {
            return true;
        };
        let parts = self.ring.parts(self.ring.num(), desc, avail, used);
        for (part, access, addr, len) in parts {
            if !self.iotlb_access_ok(table, view.msgs, part, access, addr, len) {
                return false;
            }
        }
        true
    }

    /// `iotlb_access_ok()`: `[addr, addr + len)` of ring part `part` is mapped for `access`.
    fn iotlb_access_ok(
        &mut self,
        table: &MemTable,
        msgs: &IotlbMsgs,
        part: Part,
        access: u8,
        addr: u64,
        len: u64,
    ) -> bool {
        // As vhost_vq_meta_fetch(): a cached mapping is proof enough.
        if self.meta[part as usize].is_some() {
            return true;
        }
        let orig = addr;
        let last = addr.wrapping_add(len).wrapping_sub(1);
        let (mut addr, mut s) = (addr, 0u64);
        while len > s {
            let m = match table.lookup(addr, last) {
                Some(m) if m.start <= addr => *m,
                _ => {
                    msgs.miss(self.index, addr, access, self.v2());
                    return false;
                }
            };
            // All of it: a packed ring's descriptors are read and written.
            if m.perm & access != access {
                return false;
            }
            let size = m.size().wrapping_sub(addr - m.start);
            // vhost_vq_meta_update(): cached only with the access the part is used for.
            if orig == addr && size >= len {
                self.meta[part as usize] = Some(m);
            }
            s = s.saturating_add(size);
            addr = addr.wrapping_add(size);
        }
        true
    }

    fn v2(&self) -> bool {
        self.acked_backend_features & (1 << VHOST_BACKEND_F_IOTLB_MSG_V2) != 0
    }

    /// `__vhost_vq_meta_reset()`
    fn meta_reset(&mut self) {
        self.meta = [None; 3];
    }

    /// `vhost_vq_invalidate_access()`: the ring addresses were in the other address space
    /// (user addresses against I/O virtual ones): forgotten until set again.
    fn invalidate_access(&mut self) {
        self.ring.set_addrs(0, 0, 0);
        self.log_used = false;
        self.log_addr = u64::MAX;
        self.meta_reset();
    }

    /// `vq_err()`: a guest error on this queue. Logged at debug level only, as vhost does
    /// (a guest must not be able to flood the log), and signalled on the err eventfd.
    pub(crate) fn error(&mut self, what: &str, e: RingError) {
        if e == RingError::Miss {
            // Not the guest's error: the queue waits for the VMM to answer the miss
            // (vhost_get_vq_desc() leaves -EAGAIN unreported).
            return;
        }
        pr_debug!("vhost-rs: {}: {:?}\n", what, e);
        self.counters.errors += 1;
        if let Some(err) = &self.err {
            err.signal();
        }
    }

    /// `vhost_get_vq_desc()`: the next available chain, its segments into `iov[iov_at..]`
    /// and, with `log_at`, its writable descriptors into `log[log_at..]` for the dirty log.
    pub(crate) fn get_desc(
        &mut self,
        mem: &UserMem<'_>,
        iov_at: usize,
        log_at: Option<usize>,
    ) -> Result<Option<Chain>, RingError> {
        let iov = self.iov.get_mut(iov_at..).ok_or(RingError::Fault)?;
        let log = match log_at {
            Some(at) => Some(self.log.get_mut(at..).ok_or(RingError::Fault)?),
            None => None,
        };
        self.ring.get_desc(mem, &mut ChainBuf { iov, log })
    }

    /// `vhost_discard_vq_desc()`: gives back the last `n` chains taken, `ndesc` descriptors
    /// in all.
    pub(crate) fn discard(&mut self, n: u16, ndesc: u16) {
        self.ring.discard(n, ndesc);
    }

    /// Whether the guest has buffers we have not taken (`!vhost_vq_avail_empty()`).
    pub(crate) fn has_avail(&mut self, mem: &UserMem<'_>) -> Result<bool, RingError> {
        self.ring.has_avail(mem)
    }

    /// `vhost_disable_notify()`: no kicks while we process; a failure is the queue's error.
    pub(crate) fn disable_notify(&mut self, mem: &UserMem<'_>) {
        if let Err(e) = self.ring.disable_notify(mem) {
            self.error("disabling notification", e);
        }
    }

    /// `vhost_enable_notify()`: kicks again. True if the guest made buffers available
    /// meanwhile; a failure is the queue's error.
    pub(crate) fn enable_notify(&mut self, mem: &UserMem<'_>) -> bool {
        match self.ring.enable_notify(mem) {
            Ok(more) => more,
            Err(e) => {
                self.error("enabling notification", e);
                false
            }
        }
    }

    /// Out of buffers: kicks again; if the guest made buffers available meanwhile, kicks
    /// off again and true, so that the caller processes them instead of sleeping (the
    /// `vhost_enable_notify()` / `vhost_disable_notify()` pair of net.c's handlers).
    pub(crate) fn rearm(&mut self, mem: &UserMem<'_>) -> bool {
        if !self.enable_notify(mem) {
            return false;
        }
        let _ = self.ring.disable_notify(mem);
        true
    }

    /// `vhost_add_used_and_signal_n()`: publishes the first `n` of `heads` and signals the
    /// guest if it wants it.
    pub(crate) fn add_used_and_signal_n(&mut self, mem: &UserMem<'_>, n: usize) {
        if n == 0 {
            return;
        }
        let (Some(heads), Some(ndescs)) = (self.heads.get(..n), self.ndescs.get(..n)) else {
            return;
        };
        if let Err(e) = self.ring.add_used_n(mem, heads, ndescs) {
            self.error("used ring write failed", e);
            return;
        }
        self.signal(mem);
    }

    /// `vhost_add_used_and_signal_n()` with `nheads` (IN_ORDER): publishes the first `n`
    /// elements set by [`Vq::set_used_in_order`] and signals the guest if it wants it.
    pub(crate) fn add_used_in_order_and_signal(&mut self, mem: &UserMem<'_>, n: usize) {
        if n == 0 {
            return;
        }
        let (Some(heads), Some(nheads), Some(ndescs)) = (
            self.heads.get(..n),
            self.nheads.get(..n),
            self.ndescs.get(..n),
        ) else {
            return;
        };
        if let Err(e) = self.ring.add_used_n_in_order(mem, heads, nheads, ndescs) {
            self.error("used ring write failed", e);
            return;
        }
        self.signal(mem);
    }

    /// `vhost_signal()`: the call eventfd, if the guest wants an interrupt now.
    fn signal(&mut self, mem: &UserMem<'_>) {
        let wanted = match self.ring.notify(mem) {
            Ok(w) => w,
            Err(e) => {
                // As vhost_notify(): the queue's error, and the interrupt all the same.
                self.error("reading the guest's notification state", e);
                true
            }
        };
        if wanted {
            if let Some(call) = &self.call {
                call.signal();
                self.counters.calls += 1;
            }
        }
    }

    /// `vhost_log_write()` with the device IOTLB: marks dirty, whole, the user ranges
    /// `iov` a packet was written to. As vhost.c, without telling the log eventfd.
    pub(crate) fn log_write_iotlb(&self, mem: &UserMem<'_>, iov: &[Iov]) {
        mem.log_hva(self.log_base, iov);
    }

    /// Whether the device IOTLB translates this queue's addresses.
    pub(crate) fn iotlb(&self) -> bool {
        self.iotlb
    }

    /// `vhost_log_write()`: marks dirty the pages of the first `len` bytes written through
    /// the first `log_num` writable descriptors recorded by `get_desc`.
    pub(crate) fn log_write(&self, log_num: usize, len: u64) {
        let mut left = len;
        for e in self.log.iter().take(log_num) {
            if left == 0 {
                break;
            }
            let l = e.len.min(left);
            // As vhost.c: a failed log write does not fail the packet.
            let _ = mem::log_write(self.log_base, e.gpa, l);
            left -= l;
        }
    }

    /// `vq_access_ok()`: the three rings of `num` entries are user memory. With the IOTLB
    /// they are I/O virtual addresses, checked by each round's prefetch instead.
    fn rings_access_ok(&self, num: u32, desc: u64, avail: u64, used: u64) -> bool {
        self.iotlb
            || self
                .ring
                .parts(num, desc, avail, used)
                .iter()
                .all(|&(_, _, addr, len)| sys::access_ok(addr, len))
    }

    /// `vq_log_used_access_ok()`: with the IOTLB `log_addr` is never used (the used ring is
    /// logged through its translation).
    fn log_used_access_ok(&self, log_base: u64, log_used: bool, log_addr: u64) -> bool {
        self.iotlb || !log_used || mem::log_access_ok(log_base, log_addr, self.ring.used_log_size())
    }

    /// `vq_log_access_ok()`
    fn log_access_ok(&self, umem: Option<&MemTable>, log_base: u64) -> bool {
        mem::memory_access_ok(umem, log_base, self.has_feature(VHOST_F_LOG_ALL))
            && self.log_used_access_ok(log_base, self.log_used, self.log_addr)
    }

    /// `vhost_vq_access_ok()`: can this queue be started?
    fn access_ok(&self, umem: Option<&MemTable>) -> bool {
        let (desc, avail, used) = self.ring.addrs();
        self.log_access_ok(umem, self.log_base)
            && self.rings_access_ok(self.ring.num(), desc, avail, used)
    }

    /// `vhost_vq_init_access()`, for a queue that has just become active: publishes our
    /// used flags (`vhost_update_used_flags()`) and reads the used index the guest's ring
    /// holds.
    pub(crate) fn init_access(&mut self, view: GuestView<'_>) -> Result {
        let mem = self.mem(view).ok_or(EFAULT)?;
        if let Err(e) = self.ring.init_access(&mem) {
            if self.iotlb {
                // Through the IOTLB's slow path, which reports its failures
                // (__vhost_get_user_slow()).
                self.error("writing used flags", e);
            }
            return Err(EFAULT);
        }
        if self.ring.is_packed() {
            // Its used position came with VHOST_SET_VRING_BASE.
            return Ok(());
        }
        let idx_addr = self.ring.addrs().2.wrapping_add(ring::USED_IDX_OFFSET);
        let idx = if self.iotlb {
            // vhost_get_used_idx() through the IOTLB.
            mem.ring_read_u16(Part::Used, idx_addr)
        } else if !sys::access_ok(idx_addr, 2) {
            return Err(EFAULT);
        } else {
            user::read_u16(idx_addr).map_err(|_| RingError::Fault)
        };
        match idx {
            Ok(idx) => {
                self.ring.set_last_used(idx);
                Ok(())
            }
            Err(e) => {
                self.error("reading the used index", e);
                Err(EFAULT)
            }
        }
    }
}

/// A device type's queue: a [`Vq`] and what the device keeps beside it.
pub(crate) trait DevQueue {
    /// The state of a queue after open and after `RESET_OWNER`.
    fn new() -> Self;
    fn vq(&self) -> &Vq;
    fn vq_mut(&mut self) -> &mut Vq;
    /// Whether a backend is attached (`vq->private_data` in C): the rings are then in use,
    /// and may not be moved or resized.
    fn active(&self) -> bool;
}

/// A queue of a device with the device state its rounds read, as C's `vq->umem`,
/// `vq->iotlb` and `vq->log_ctx`: behind the queue's own lock, so that a worker runs the
/// queue without the device's lock, and the two queues of a device on two workers at once.
/// The device replaces these under every queue's lock (`vhost_dev_lock_vqs()`).
pub(crate) struct Slot<Q> {
    q: Q,
    umem: Option<Arc<MemTable>>,
    log_ctx: Option<Arc<EventFdCtx>>,
    /// This queue's copy of the device IOTLB: each message updates every copy.
    iotlb: Option<MemTable>,
}

impl<Q: DevQueue> Slot<Q> {
    pub(crate) fn new() -> Self {
        Self {
            q: Q::new(),
            umem: None,
            log_ctx: None,
            iotlb: None,
        }
    }

    pub(crate) fn q(&self) -> &Q {
        &self.q
    }

    pub(crate) fn q_mut(&mut self) -> &mut Q {
        &mut self.q
    }

    fn vq(&self) -> &Vq {
        self.q.vq()
    }

    fn vq_mut(&mut self) -> &mut Vq {
        self.q.vq_mut()
    }

    fn active(&self) -> bool {
        self.q.active()
    }

    /// The guest memory and the queue, borrowed apart for a round of work.
    pub(crate) fn parts<'a>(&'a mut self, msgs: &'a IotlbMsgs) -> (GuestView<'a>, &'a mut Q) {
        (
            GuestView {
                umem: self.umem.as_deref(),
                log_ctx: self.log_ctx.as_deref(),
                iotlb: self.iotlb.as_ref(),
                msgs,
            },
            &mut self.q,
        )
    }
}

/// The device state (`struct vhost_dev` without its queues), behind the device's lock;
/// the queues are behind locks of their own, taken after it ([`Dev`]).
pub(crate) struct DevState {
    /// The owner's address space (`dev->mm`), held with `mmget` as vhost does.
    owner: Option<ARef<MmWithUser>>,
    /// `VHOST_FORK_OWNER_TASK` (true) or `_KTHREAD` (false).
    fork_owner: bool,
    /// `None` until the first `SET_MEM_TABLE`; `RESET_OWNER` leaves an empty table. Each
    /// queue holds it too.
    umem: Option<Arc<MemTable>>,
    log_ctx: Option<Arc<EventFdCtx>>,
    /// Whether the device IOTLB is in place (`dev->iotlb`), with
    /// `VIRTIO_F_ACCESS_PLATFORM`; its mappings are in each queue's copy.
    iotlb: bool,
    /// Its messages, which the device file reads without this device's lock.
    msgs: Arc<IotlbMsgs>,
}

impl DevState {
    /// A device whose IOTLB messages go through `msgs`.
    pub(crate) fn new(msgs: Arc<IotlbMsgs>) -> Self {
        Self {
            owner: None,
            fork_owner: params::fork_from_owner_default(),
            umem: None,
            log_ctx: None,
            iotlb: false,
            msgs,
        }
    }

    pub(crate) fn has_owner(&self) -> bool {
        self.owner.is_some()
    }

    pub(crate) fn fork_owner(&self) -> bool {
        self.fork_owner
    }

    /// `vhost_dev_check_owner()`: the caller shares the owner's address space.
    pub(crate) fn check_owner(&self) -> Result {
        match (&self.owner, current_mm()) {
            (Some(owner), Some(mm)) if owner.as_raw() == mm => Ok(()),
            _ => Err(EPERM),
        }
    }

    /// `vhost_worker_ioctl()`: `VHOST_NEW_WORKER`, `VHOST_FREE_WORKER`,
    /// `VHOST_ATTACH_VRING_WORKER`, `VHOST_GET_VRING_WORKER` on `workers`, whose threads
    /// run `target`. `None` for any other command. Only the device lock is held: freeing
    /// a worker waits for its round, which takes a queue's lock.
    pub(crate) fn worker_ioctl<T: WorkerOps, const N: usize>(
        &mut self,
        workers: &Workers<N>,
        target: &T,
        cmd: u32,
        arg: u64,
    ) -> Option<Result> {
        if !matches!(
            cmd,
            VHOST_NEW_WORKER
                | VHOST_FREE_WORKER
                | VHOST_ATTACH_VRING_WORKER
                | VHOST_GET_VRING_WORKER
        ) {
            return None;
        }
        Some((|| {
            if !self.has_owner() {
                return Err(EINVAL);
            }
            self.check_owner()?;
            match cmd {
                VHOST_NEW_WORKER => {
                    // vhost_tasks count against the owner's NPROC, kthreads do not: only
                    // the former may be made on request.
                    if !self.fork_owner {
                        return Err(EFAULT);
                    }
                    let id = workers.free_id().ok_or(ENOMEM)?;
                    // SAFETY: the device type's contract for `workers` ([`Workers`]).
                    unsafe { workers.start(target, id, true) }?;
                    let r = user::write(arg, &(id as u32).to_ne_bytes());
                    if r.is_err() {
                        workers.work(id).stop();
                    }
                    r
                }
                VHOST_FREE_WORKER => {
                    let id = u32::from_ne_bytes(user::read(arg)?) as usize;
                    workers.free(id)
                }
                _ => {
                    // `struct vhost_vring_worker` is `{ index, worker_id }`: a vring state.
                    let w = VringState::from_bytes(&user::read(arg)?);
                    let q = w.index as usize;
                    if q >= N {
                        return Err(ENOBUFS);
                    }
                    if cmd == VHOST_ATTACH_VRING_WORKER {
                        workers.attach(q, w.num as usize)
                    } else {
                        let w = VringState {
                            index: w.index,
                            num: workers.worker_of(q) as u32,
                        };
                        user::write(arg, &w.to_bytes())
                    }
                }
            }
        })())
    }
}

/// The device (`struct vhost_dev`) with `N` queues of type `Q`, locked: the device's lock
/// and each queue's, in that order (as vhost.c's `dev->mutex`, then `vq->mutex`).
pub(crate) struct Dev<'a, Q, const N: usize> {
    st: &'a mut DevState,
    vqs: [&'a mut Slot<Q>; N],
}

/// The calling task's address space, if it has one.
fn current_mm() -> Option<*mut kernel::bindings::mm_struct> {
    kernel::current!().mm().map(|mm| mm.as_raw())
}

impl<'a, Q: DevQueue, const N: usize> Dev<'a, Q, N> {
    pub(crate) fn new(st: &'a mut DevState, vqs: [&'a mut Slot<Q>; N]) -> Self {
        Self { st, vqs }
    }

    pub(crate) fn vqs_mut(&mut self) -> impl Iterator<Item = &mut Q> + use<'_, 'a, Q, N> {
        self.vqs.iter_mut().map(|s| s.q_mut())
    }

    pub(crate) fn q_mut(&mut self, i: usize) -> &mut Q {
        self.vqs[i].q_mut()
    }

    /// The guest memory and queue `i`, borrowed apart.
    pub(crate) fn parts(&mut self, i: usize) -> (GuestView<'_>, &mut Q) {
        self.vqs[i].parts(&self.st.msgs)
    }

    pub(crate) fn state(&self) -> &DevState {
        self.st
    }

    pub(crate) fn has_owner(&self) -> bool {
        self.st.has_owner()
    }

    pub(crate) fn check_owner(&self) -> Result {
        self.st.check_owner()
    }

    /// `vhost_dev_set_owner()` without the workers (the device starts them): the caller's
    /// address space becomes the owner's, and each queue gets its arrays (`heads` used
    /// elements) and its kick poll, which wakes `target` with `kick_bit(i)`. All or nothing.
    ///
    /// # Safety
    ///
    /// `target` outlives the polls: they are kept in this device, which `target` owns.
    pub(crate) unsafe fn set_owner<T: PollWake>(&mut self, target: &T, heads: usize) -> Result {
        if self.has_owner() {
            return Err(EBUSY);
        }
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        for (i, q) in self.vqs.iter_mut().enumerate() {
            // SAFETY: the caller's contract.
            if let Err(e) = unsafe { q.vq_mut().set_owner(target, kick_bit(i), heads) } {
                self.drop_owner();
                return Err(e);
            }
        }
        self.st.owner = Some(ARef::from(mm));
        Ok(())
    }

    /// Undoes `set_owner` (after a later step of the device's own set-up failed); state set
    /// before the owner (features, ring addresses) stays.
    pub(crate) fn drop_owner(&mut self) {
        for q in self.vqs.iter_mut() {
            q.vq_mut().drop_owner();
        }
        self.st.owner = None;
    }

    /// `vhost_dev_cleanup()`: forgets everything the owner set up; the device type has taken
    /// its backends out first, to drop them after unlocking.
    pub(crate) fn cleanup(&mut self) {
        for q in self.vqs.iter_mut() {
            **q = Slot::new();
        }
        self.st.log_ctx = None;
        self.st.umem = None;
        self.st.iotlb = false;
        // vhost_clear_msg(), and readers woken to find no IOTLB.
        self.st.msgs.clear();
        self.st.owner = None;
    }

    /// `vhost_init_device_iotlb()`: a new, empty device IOTLB. Ring addresses set before
    /// were user addresses: forgotten, unless an IOTLB was already in place.
    pub(crate) fn init_device_iotlb(&mut self) -> Result {
        let limit = params::max_iotlb_entries();
        if limit <= 0 {
            return Err(EINVAL);
        }
        let old = core::mem::replace(&mut self.st.iotlb, true);
        for q in self.vqs.iter_mut() {
            q.iotlb = Some(MemTable::new(limit as usize));
            let vq = q.vq_mut();
            vq.iotlb = true;
            if old {
                vq.meta_reset();
            } else {
                vq.invalidate_access();
            }
        }
        self.st.msgs.set_iotlb();
        Ok(())
    }

    /// `vhost_clear_device_iotlb()`: back to user addresses; ring addresses set meanwhile
    /// were I/O virtual ones, and are forgotten. Misses waiting are dropped, readers woken.
    pub(crate) fn clear_device_iotlb(&mut self) {
        if !core::mem::replace(&mut self.st.iotlb, false) {
            return;
        }
        for q in self.vqs.iter_mut() {
            q.iotlb = None;
            let vq = q.vq_mut();
            vq.iotlb = false;
            vq.invalidate_access();
        }
        self.st.msgs.clear();
    }

    /// `vhost_process_iotlb_msg()`: an `UPDATE` or `INVALIDATE` written by the VMM. Returns
    /// the kick bits of the queues whose miss the update answers, to be requeued.
    pub(crate) fn process_iotlb_msg(&mut self, msg: &IotlbMsg) -> Result<u32> {
        let last = msg.iova.wrapping_add(msg.size).wrapping_sub(1);
        match msg.kind {
            VHOST_IOTLB_UPDATE => {
                if !self.st.iotlb {
                    return Err(EFAULT);
                }
                if !umem_access_ok(msg.uaddr, msg.size, msg.perm) {
                    return Err(EFAULT);
                }
                // Every copy takes the range; they hold the same ranges, so they fail
                // alike but for an allocation.
                let mut r = Ok(());
                for q in self.vqs.iter_mut() {
                    q.vq_mut().meta_reset();
                    if let Some(iotlb) = q.iotlb.as_mut() {
                        r = r.and(iotlb.add_range(msg.iova, last, msg.uaddr, msg.perm));
                    }
                }
                r.map_err(|_| ENOMEM)?;
                Ok(self.st.msgs.answered(msg.iova, msg.size))
            }
            VHOST_IOTLB_INVALIDATE => {
                if !self.st.iotlb {
                    return Err(EFAULT);
                }
                if msg.size == 0 {
                    return Err(EINVAL);
                }
                for q in self.vqs.iter_mut() {
                    q.vq_mut().meta_reset();
                    if let Some(iotlb) = q.iotlb.as_mut() {
                        iotlb.del_range(msg.iova, last);
                    }
                }
                Ok(0)
            }
            _ => Err(EINVAL),
        }
    }

    /// `vhost_dev_reset_owner()`: as cleanup, but with an empty memory table in place.
    pub(crate) fn reset_owner(&mut self) {
        self.cleanup();
        self.st.fork_owner = params::fork_from_owner_default();
        let umem = MemTable::new(params::max_iotlb_entries().max(0) as usize);
        // Without memory for an empty table the device has none, as before the first
        // SET_MEM_TABLE.
        self.set_umem(Arc::new(umem, GFP_KERNEL).ok());
    }

    /// Puts `umem` in place, for the device and every queue.
    fn set_umem(&mut self, umem: Option<Arc<MemTable>>) {
        for q in self.vqs.iter_mut() {
            q.umem = umem.clone();
        }
        self.st.umem = umem;
    }

    /// Stops every kick poll and takes the kick files out, to be dropped after unlocking.
    pub(crate) fn stop_kicks(&mut self) -> [Option<ARef<File>>; N] {
        core::array::from_fn(|i| {
            let vq = self.vqs[i].vq_mut();
            vq.kick_poll = None;
            vq.kick.take()
        })
    }

    /// `vhost_vq_access_ok()` for queue `i`.
    pub(crate) fn vq_access_ok(&self, i: usize) -> bool {
        self.vqs
            .get(i)
            .is_some_and(|q| q.vq().access_ok(self.st.umem.as_deref()))
    }

    /// `memory_access_ok()`: can the active queues use `umem`?
    fn memory_access_ok(&self, umem: Option<&MemTable>, log_all: bool) -> bool {
        self.vqs.iter().all(|q| {
            !q.active()
                || mem::memory_access_ok(
                    umem,
                    q.vq().log_base,
                    log_all || q.vq().has_feature(VHOST_F_LOG_ALL),
                )
        })
    }

    /// `vhost_log_access_ok()`: can every active queue log writes to all of memory?
    pub(crate) fn log_access_ok(&self) -> bool {
        self.memory_access_ok(self.st.umem.as_deref(), true)
    }

    /// `vhost_dev_ioctl()` without `VHOST_SET_OWNER` (the device type handles that itself).
    /// `None` means "not a device ioctl" (`-ENOIOCTLCMD` in C): try the vring ioctls.
    pub(crate) fn dev_ioctl(&mut self, cmd: u32, arg: u64) -> Option<Result> {
        match cmd {
            VHOST_SET_FORK_FROM_OWNER => return Some(self.set_fork_owner(arg)),
            VHOST_GET_FORK_FROM_OWNER => {
                let val = u8::from(self.st.fork_owner);
                return Some(user::write(arg, &[val]));
            }
            _ => {}
        }
        if let Err(e) = self.check_owner() {
            return Some(Err(e));
        }
        match cmd {
            VHOST_SET_MEM_TABLE => Some(self.set_memory(arg)),
            VHOST_SET_LOG_BASE => Some(self.set_log_base(arg)),
            VHOST_SET_LOG_FD => Some(self.set_log_fd(arg)),
            _ => None,
        }
    }

    fn set_fork_owner(&mut self, arg: u64) -> Result {
        // Only before there is an owner: the workers are created with the owner.
        if self.has_owner() {
            return Err(EBUSY);
        }
        let [val]: [u8; 1] = user::read(arg)?;
        if val != VHOST_FORK_OWNER_TASK && val != VHOST_FORK_OWNER_KTHREAD {
            return Err(EINVAL);
        }
        self.st.fork_owner = val != 0;
        Ok(())
    }

    /// `vhost_set_memory()`: replaces the memory table, all or nothing.
    fn set_memory(&mut self, arg: u64) -> Result {
        let hdr = MemoryHdr::from_bytes(&user::read(arg)?);
        if hdr.padding != 0 {
            return Err(EOPNOTSUPP);
        }
        if hdr.nregions > params::max_mem_regions() {
            return Err(E2BIG);
        }
        let limit = params::max_iotlb_entries();
        if limit <= 0 {
            return Err(EINVAL);
        }
        let n = hdr.nregions as usize;
        let mut raw = KVVec::with_capacity(n * MEMORY_REGION_SIZE, GFP_KERNEL)?;
        raw.resize(n * MEMORY_REGION_SIZE, 0, GFP_KERNEL)?;
        user::read_into(arg.wrapping_add(MEMORY_HDR_SIZE as u64), &mut raw)?;

        let mut table = MemTable::new(limit as usize);
        for chunk in raw.chunks_exact(MEMORY_REGION_SIZE) {
            let r = MemoryRegion::from_bytes(chunk);
            let last = r
                .guest_phys_addr
                .wrapping_add(r.memory_size)
                .wrapping_sub(1);
            // Any failure to build the table is EFAULT, as in vhost_set_memory().
            table
                .add_range(r.guest_phys_addr, last, r.userspace_addr, ACCESS_RW)
                .map_err(|_| EFAULT)?;
        }
        if !self.memory_access_ok(Some(&table), false) {
            return Err(EFAULT);
        }
        self.set_umem(Some(Arc::new(table, GFP_KERNEL)?));
        Ok(())
    }

    /// `VHOST_SET_LOG_BASE`: queues whose log would not be accessible keep their old base
    /// and make the ioctl fail; the others take the new one (as vhost.c does).
    fn set_log_base(&mut self, arg: u64) -> Result {
        let base = u64::from_ne_bytes(user::read(arg)?);
        let mut r = Ok(());
        let umem = self.st.umem.as_deref();
        for q in self.vqs.iter_mut() {
            let active = q.active();
            let vq = q.vq_mut();
            if active && !vq.log_access_ok(umem, base) {
                r = Err(EFAULT);
            } else {
                vq.log_base = base;
            }
        }
        r
    }

    fn set_log_fd(&mut self, arg: u64) -> Result {
        let fd = i32::from_ne_bytes(user::read(arg)?);
        let ctx = match eventfd_or_unbind(fd)? {
            Some(ctx) => Some(Arc::new(ctx, GFP_KERNEL)?),
            None => None,
        };
        for q in self.vqs.iter_mut() {
            q.log_ctx = ctx.clone();
        }
        self.st.log_ctx = ctx;
        Ok(())
    }

    /// `vhost_vring_ioctl()`
    pub(crate) fn vring_ioctl(&mut self, cmd: u32, arg: u64) -> Result {
        // vhost_get_vq_from_user(): the index is read (and checked) before anything else.
        let idx = u32::from_ne_bytes(user::read(arg)?);
        let q = &mut **self.vqs.get_mut(idx as usize).ok_or(ENOBUFS)?;
        let active = q.active();
        let vq = q.vq_mut();
        if cmd == VHOST_SET_VRING_NUM || cmd == VHOST_SET_VRING_ADDR {
            // vhost_vring_set_num_addr(): the cached ring mappings were for the old rings,
            // whether or not the new ones are taken.
            vq.meta_reset();
        }
        match cmd {
            VHOST_SET_VRING_NUM => {
                // Resizing a ring with an active backend? You don't want to do that.
                if active {
                    return Err(EBUSY);
                }
                let s = VringState::from_bytes(&user::read(arg)?);
                if !ring::valid_num(s.num) {
                    return Err(EINVAL);
                }
                vq.ring.set_num(s.num);
            }
            VHOST_SET_VRING_ADDR => {
                let a = VringAddr::from_bytes(&user::read(arg)?);
                if a.flags & !(1 << VHOST_VRING_F_LOG) != 0 {
                    return Err(EOPNOTSUPP);
                }
                if !vq.ring.addr_aligned(
                    a.desc_user_addr,
                    a.avail_user_addr,
                    a.used_user_addr,
                    a.log_guest_addr,
                ) {
                    return Err(EINVAL);
                }
                let log_used = a.flags & (1 << VHOST_VRING_F_LOG) != 0;
                // Checked here only with a backend; otherwise when one is attached.
                if active
                    && (!vq.rings_access_ok(
                        vq.ring.num(),
                        a.desc_user_addr,
                        a.avail_user_addr,
                        a.used_user_addr,
                    ) || !vq.log_used_access_ok(vq.log_base, log_used, a.log_guest_addr))
                {
                    return Err(EINVAL);
                }
                vq.log_used = log_used;
                vq.ring
                    .set_addrs(a.desc_user_addr, a.avail_user_addr, a.used_user_addr);
                vq.log_addr = a.log_guest_addr;
            }
            VHOST_SET_VRING_BASE => {
                // Moving base with an active backend? You don't want to do that.
                if active {
                    return Err(EBUSY);
                }
                let s = VringState::from_bytes(&user::read(arg)?);
                // Also forgets the cached avail index value.
                vq.ring.set_base(s.num).map_err(|_| EINVAL)?;
            }
            VHOST_GET_VRING_BASE => {
                let num = vq.ring.get_base();
                user::write(arg, &VringState { index: idx, num }.to_bytes())?;
            }
            VHOST_SET_VRING_KICK => {
                let f = VringFile::from_bytes(&user::read(arg)?);
                let kick = if f.fd == VHOST_FILE_UNBIND {
                    None
                } else {
                    Some(sys::eventfd_fget(f.fd)?)
                };
                // The same eventfd again changes nothing; the new reference is dropped.
                let same = match (&kick, &vq.kick) {
                    (Some(a), Some(b)) => core::ptr::eq(a.as_ptr(), b.as_ptr()),
                    _ => false,
                };
                if !same {
                    // Stop polling the old file before it may be released.
                    if let Some(poll) = vq.kick_poll.as_mut() {
                        poll.stop();
                    }
                    vq.kick = kick;
                    if let (Some(poll), Some(file)) = (vq.kick_poll.as_mut(), vq.kick.as_ref()) {
                        poll.start(file)?;
                    }
                }
            }
            VHOST_SET_VRING_CALL => {
                let f = VringFile::from_bytes(&user::read(arg)?);
                vq.call = eventfd_or_unbind(f.fd)?;
            }
            VHOST_SET_VRING_ERR => {
                let f = VringFile::from_bytes(&user::read(arg)?);
                vq.err = eventfd_or_unbind(f.fd)?;
            }
            VHOST_SET_VRING_BUSYLOOP_TIMEOUT => {
                let s = VringState::from_bytes(&user::read(arg)?);
                vq.busyloop_timeout = s.num;
            }
            VHOST_GET_VRING_BUSYLOOP_TIMEOUT => {
                let s = VringState {
                    index: idx,
                    num: vq.busyloop_timeout,
                };
                user::write(arg, &s.to_bytes())?;
            }
            // VHOST_SET/GET_VRING_ENDIAN exist only with CONFIG_VHOST_CROSS_ENDIAN_LEGACY,
            // which is off by default: like vhost-net built so, we do not know them.
            _ => return Err(ENOTTY),
        }
        Ok(())
    }
}

/// `umem_access_ok()`: an IOTLB update's user range does not wrap and, for each access it
/// grants, is user memory.
fn umem_access_ok(uaddr: u64, size: u64, perm: u8) -> bool {
    if size != 0 && uaddr > u64::MAX - size + 1 {
        return false;
    }
    perm & (ACCESS_RO | ACCESS_WO) == 0 || sys::access_ok(uaddr, size)
}

/// A miss waiting for the VMM (`struct vhost_msg_node` of `VHOST_IOTLB_MISS`): on the read
/// list until the VMM reads it, then on the pending list until an update answers it.
#[derive(Clone, Copy)]
struct Miss {
    iova: u64,
    perm: u8,
    v2: bool,
    /// Order of arrival, for reading in order.
    seq: u64,
    read: bool,
}

struct MsgState {
    /// Each queue's miss (`vq->iotlb_miss`): processing stops at the first, so there is
    /// never more than one a queue.
    miss: [Option<Miss>; KICK_BITS],
    seq: u64,
    /// Whether the device has an IOTLB: without, a blocking read fails (`EBADFD`).
    iotlb: bool,
}

/// What `read()` of the device file returns.
pub(crate) enum MsgRead {
    /// The message and the queue it is for.
    Msg([u8; VHOST_MSG_SIZE], usize),
    /// No message, and `O_NONBLOCK` (`EAGAIN`), a signal (`ERESTARTSYS`) or no IOTLB
    /// (`EBADFD`).
    Err(Error),
}

/// The device IOTLB's messages (`dev->read_list`, `dev->pending_list`, `dev->wait` and
/// `dev->iotlb_lock`), read and polled through the device file without the device lock.
#[pin_data]
pub(crate) struct IotlbMsgs {
    #[pin]
    state: SpinLock<MsgState>,
    /// Readers and pollers of the device file; freed after an RCU grace period.
    wait: PollCondVarBox,
}

impl IotlbMsgs {
    pub(crate) fn new() -> Result<Arc<Self>> {
        let wait = PollCondVarBox::new(c"IotlbMsgs::wait", static_lock_class!())?;
        Arc::pin_init(
            pin_init!(Self {
                state <- new_spinlock!(
                    MsgState {
                        miss: [None; KICK_BITS],
                        seq: 0,
                        iotlb: false,
                    },
                    "IotlbMsgs::state"
                ),
                wait,
            }),
            GFP_KERNEL,
        )
    }

    /// `vhost_iotlb_miss()`: queue `vq` needs `iova` for `perm`; nothing if it already
    /// waits for an answer.
    pub(crate) fn miss(&self, vq: usize, iova: u64, perm: u8, v2: bool) {
        {
            let mut st = self.state.lock();
            let seq = st.seq;
            let Some(slot) = st.miss.get_mut(vq) else {
                return;
            };
            if slot.is_some() {
                return;
            }
            *slot = Some(Miss {
                iova,
                perm,
                v2,
                seq,
                read: false,
            });
            st.seq = seq.wrapping_add(1);
        }
        self.wait.notify_all();
    }

    /// `vhost_chr_read_iter()`'s wait: the oldest unread miss, moved to the pending list.
    pub(crate) fn read(&self, nonblock: bool) -> MsgRead {
        let mut st = self.state.lock();
        loop {
            let next = st
                .miss
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.filter(|m| !m.read).map(|m| (i, m)))
                .min_by_key(|(_, m)| m.seq);
            if let Some((i, m)) = next {
                if let Some(slot) = st.miss[i].as_mut() {
                    slot.read = true;
                }
                let msg = IotlbMsg {
                    iova: m.iova,
                    size: 0,
                    uaddr: 0,
                    perm: m.perm,
                    kind: VHOST_IOTLB_MISS,
                };
                let ty = if m.v2 {
                    VHOST_IOTLB_MSG_V2
                } else {
                    VHOST_IOTLB_MSG
                };
                return MsgRead::Msg(msg.to_msg(ty), i);
            }
            if nonblock {
                return MsgRead::Err(EAGAIN);
            }
            if kernel::current!().signal_pending() {
                return MsgRead::Err(ERESTARTSYS);
            }
            if !st.iotlb {
                return MsgRead::Err(EBADFD);
            }
            // Woken by a miss, or by the IOTLB going away; a signal is checked above.
            let _ = self.wait.wait_interruptible(&mut st);
        }
    }

    /// The copy of queue `vq`'s miss to the reader fell short: the message is dropped (and
    /// the queue may report its miss again).
    pub(crate) fn drop_read(&self, vq: usize) {
        if let Some(slot) = self.state.lock().miss.get_mut(vq) {
            *slot = None;
        }
    }

    /// `vhost_chr_poll()`: readable while a miss waits to be read.
    pub(crate) fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &self.wait);
        let st = self.state.lock();
        if st.miss.iter().flatten().any(|m| !m.read) {
            EPOLLIN | EPOLLRDNORM
        } else {
            0
        }
    }

    /// `vhost_iotlb_notify_vq()`: the misses already read that the update `[iova, iova +
    /// size)` answers are dropped; their queues' kick bits are returned.
    fn answered(&self, iova: u64, size: u64) -> u32 {
        let last = iova.wrapping_add(size).wrapping_sub(1);
        let mut kicks = 0;
        let mut st = self.state.lock();
        for (i, slot) in st.miss.iter_mut().enumerate() {
            if let Some(m) = slot {
                if m.read && iova <= m.iova && last >= m.iova {
                    *slot = None;
                    kicks |= kick_bit(i);
                }
            }
        }
        kicks
    }

    fn set_iotlb(&self) {
        self.state.lock().iotlb = true;
    }

    /// `vhost_clear_msg()` and the wakeup after it: every miss dropped; the device has an
    /// IOTLB no longer.
    fn clear(&self) {
        {
            let mut st = self.state.lock();
            st.miss = [None; KICK_BITS];
            st.iotlb = false;
        }
        self.wait.notify_all();
    }
}

/// An eventfd context for `fd`, or none for `VHOST_FILE_UNBIND`.
fn eventfd_or_unbind(fd: i32) -> Result<Option<EventFdCtx>> {
    if fd == VHOST_FILE_UNBIND {
        Ok(None)
    } else {
        EventFdCtx::fdget(fd).map(Some)
    }
}

/// A worker and its pending work (`struct vhost_worker` with its work list): a wakeup notes
/// work as bits (`kick_bit()` for kicks; the device type's own above those) and wakes the
/// thread, which takes them all at once.
#[pin_data]
pub(crate) struct Work {
    #[pin]
    worker: Worker,
    pending: Atomic<u32>,
    /// The owner was killed and took this worker's thread with it (`worker->killed`).
    killed: Atomic<bool>,
}

impl Work {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            worker <- Worker::new(),
            pending: Atomic::new(0),
            killed: Atomic::new(false),
        })
    }

    /// Notes `bits` without waking the worker (it is running and will look again).
    pub(crate) fn add(&self, bits: u32) {
        let mut old = self.pending.load(Acquire);
        while let Err(cur) = self.pending.cmpxchg(old, old | bits, Full) {
            old = cur;
        }
    }

    /// `vhost_poll_queue()`: notes `bits` and wakes the worker. Callable in atomic context.
    pub(crate) fn queue(&self, bits: u32) {
        self.add(bits);
        self.worker.wake();
    }

    /// Takes all the pending work.
    pub(crate) fn take(&self) -> u32 {
        self.pending.xchg(0, Full)
    }

    /// Whether any work is pending (a busy poll gives way to it).
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Acquire) != 0
    }

    /// `vhost_worker_killed()`: nothing will run this worker's work any more.
    pub(crate) fn killed(&self) {
        self.killed.store(true, Release);
        self.pending.store(0, Release);
    }

    /// Stops the worker and waits for it (not from the worker itself, nor holding a lock
    /// the worker takes); its pending work is forgotten.
    pub(crate) fn stop(&self) {
        self.worker.stop();
        self.pending.store(0, Release);
        self.killed.store(false, Release);
    }
}

/// The most workers a device has at once: its default ones and those made with
/// `VHOST_NEW_WORKER` (ids `0..MAX_WORKERS`); one more is `ENOMEM`, as a failed
/// `vhost_worker_create()`.
pub(crate) const MAX_WORKERS: usize = 16;

/// The workers of a device with `N` queues, and the worker each queue runs on
/// (`dev->worker_xa` and `vq->worker`). Wakeups read the map in atomic context; the device
/// changes workers and map under its lock.
///
/// The device type keeps this in the object its workers run ([`WorkerOps`]), and stops
/// every worker ([`Workers::stop_all`]) before any other part of it is dropped.
#[pin_data]
pub(crate) struct Workers<const N: usize> {
    #[pin]
    works: [Work; MAX_WORKERS],
    vq_worker: [Atomic<u32>; N],
    /// The pending-work bits of each queue: a wakeup goes to the worker of the queue whose
    /// bits it carries.
    masks: [u32; N],
}

impl<const N: usize> Workers<N> {
    /// Workers for queues whose work bits are `masks`; none running, every queue on 0.
    pub(crate) fn new(masks: [u32; N]) -> impl PinInit<Self> {
        pin_init!(Self {
            works <- pin_init::pin_init_array_from_fn(|_| Work::new()),
            vq_worker: core::array::from_fn(|_| Atomic::new(0)),
            masks,
        })
    }

    /// Worker `id` (0 for an id out of range, which no caller passes).
    pub(crate) fn work(&self, id: usize) -> &Work {
        &self.works[id.min(MAX_WORKERS - 1)]
    }

    /// The worker queue `q` runs on.
    pub(crate) fn worker_of(&self, q: usize) -> usize {
        self.vq_worker[q].load(Acquire) as usize
    }

    /// `vhost_poll_queue()` for a wakeup: `bits` go to the worker of their queue.
    /// Callable in atomic context.
    pub(crate) fn queue(&self, bits: u32) {
        self.route(bits, None);
    }

    /// Work a round of worker `from` gave way on: noted for the worker of its queue, woken
    /// unless that is `from` itself (which looks again).
    pub(crate) fn requeue(&self, bits: u32, from: usize) {
        self.route(bits, Some(from));
    }

    fn route(&self, bits: u32, from: Option<usize>) {
        for (q, mask) in self.masks.iter().enumerate() {
            let b = bits & mask;
            if b == 0 {
                continue;
            }
            let w = self.worker_of(q);
            if Some(w) == from {
                self.work(w).add(b);
            } else {
                self.work(w).queue(b);
            }
        }
    }

    /// The lowest id with no worker, if any.
    fn free_id(&self) -> Option<usize> {
        (0..MAX_WORKERS).find(|&i| !self.works[i].worker.running())
    }

    /// `vhost_worker_create()` as worker `id` of `target`, forked from the owner when
    /// `fork_owner`.
    ///
    /// # Safety
    ///
    /// `self` is part of `target`, which stops every worker before any of its other fields
    /// is dropped.
    pub(crate) unsafe fn start<T: WorkerOps>(
        &self,
        target: &T,
        id: usize,
        fork_owner: bool,
    ) -> Result {
        let work = self.works.get(id).ok_or(ENOMEM)?;
        // SAFETY: the caller's contract.
        unsafe { work.worker.start(target, id, fork_owner) }
    }

    /// `__vhost_vq_attach_worker()`: queue `q` runs on worker `id` from now on; work
    /// already noted for the old worker moves with it. The queue's lock keeps the two
    /// workers from running it at once.
    fn attach(&self, q: usize, id: usize) -> Result {
        let work = self.works.get(id).ok_or(ENODEV)?;
        if !work.worker.running() {
            return Err(ENODEV);
        }
        if work.killed.load(Acquire) {
            return Ok(());
        }
        let old = self.vq_worker[q].xchg(id as u32, Full) as usize;
        if old != id {
            let bits = self.work(old).take();
            self.queue(bits);
        }
        Ok(())
    }

    /// Queue `q` runs on worker `id` (set-up: the worker was just started).
    pub(crate) fn set_worker(&self, q: usize, id: usize) {
        self.vq_worker[q].store(id as u32, Release);
    }

    /// `vhost_free_worker()`: a worker some queue runs on, or one whose owner was killed,
    /// is `EBUSY`.
    fn free(&self, id: usize) -> Result {
        let work = self.works.get(id).ok_or(ENODEV)?;
        if !work.worker.running() {
            return Err(ENODEV);
        }
        if (0..N).any(|q| self.worker_of(q) == id) || work.killed.load(Acquire) {
            return Err(EBUSY);
        }
        work.stop();
        Ok(())
    }

    /// The running workers, as (id, thread id).
    pub(crate) fn running(&self) -> impl Iterator<Item = (usize, i32)> + '_ {
        self.works
            .iter()
            .enumerate()
            .filter(|(_, w)| w.worker.running())
            .map(|(i, w)| (i, w.worker.tid()))
    }

    /// `vhost_workers_free()`: stops every worker (not holding a lock a round takes); every
    /// queue is back on worker 0.
    pub(crate) fn stop_all(&self) {
        for w in &self.works {
            w.stop();
        }
        for q in &self.vq_worker {
            q.store(0, Release);
        }
    }
}
