// SPDX-License-Identifier: GPL-2.0

//! The generic vhost device: owner, memory table, dirty log and the vring ioctls, with the
//! semantics and errno values of `drivers/vhost/vhost.c` (Linux 7.3). The functions are named
//! after their C counterparts so that a reviewer can lay the two side by side.

use crate::{
    mem::{self, MemTable},
    ring::{self, Iov, LogEntry, Ring, RingError},
    stats::VqStats,
    sys::{self, params, EventFdCtx, Poll, RxQueue, Socket, TxBatch},
    uapi::*,
    user,
    zerocopy::ZeroCopy,
};
use kernel::{fs::File, mm::MmWithUser, prelude::*, sync::aref::ARef};

/// vhost-net has two virtqueues: RX (0) and TX (1).
pub(crate) const NVQS: usize = 2;

/// One virtqueue (`struct vhost_virtqueue`).
pub(crate) struct Vq {
    /// The ring: addresses, indices, notification state.
    pub(crate) ring: Ring,
    /// Dirty logging of used-ring writes at guest physical `log_addr`.
    pub(crate) log_used: bool,
    pub(crate) log_addr: u64,
    pub(crate) log_base: u64,
    pub(crate) acked_features: Features,
    pub(crate) acked_backend_features: u64,
    /// Polls the kick eventfd and the backend socket; declared before the files they poll,
    /// so that they are stopped before those are released.
    pub(crate) kick_poll: Option<Poll>,
    pub(crate) sock_poll: Option<Poll>,
    pub(crate) kick: Option<ARef<File>>,
    pub(crate) call: Option<EventFdCtx>,
    pub(crate) err: Option<EventFdCtx>,
    pub(crate) busyloop_timeout: u32,
    /// RX packets batched from the backend's ring (RX only, with an owner); declared before
    /// `backend`: they go back to its ring when it is dropped.
    pub(crate) rxq: Option<RxQueue>,
    /// Zero-copy TX state of the backend (TX with `experimental_zcopytx` on a tun/tap or
    /// macvtap queue); declared before `backend`: it waits for the buffers in flight.
    pub(crate) zcopy: Option<ZeroCopy>,
    /// The backend socket (`private_data` in C); `Some` makes the queue active.
    pub(crate) backend: Option<Socket>,
    /// Virtio-net header lengths added by vhost and expected from the socket (net.c).
    pub(crate) vhost_hlen: usize,
    pub(crate) sock_hlen: usize,
    /// Translated segments of the chains being processed (`vq->iov`, `UIO_MAXIOV`).
    pub(crate) iov: KVec<Iov>,
    /// Writable descriptors of those chains, for the dirty log (`vq->log`).
    pub(crate) log: KVec<LogEntry>,
    /// Used elements waiting to be published (`vq->heads`).
    pub(crate) heads: KVec<(u32, u32)>,
    /// Small TX packets copied and waiting for one sendmsg (TX only, with an owner).
    pub(crate) txbatch: Option<TxBatch>,
    /// Counters since the last reset (stats.rs).
    pub(crate) stats: VqStats,
}

/// A backend taken out of its queue. Dropping it first waits for its zero-copy buffers in
/// flight, then releases the socket (the order of `vhost_net_flush()` and `sockfd_put()`).
pub(crate) struct Backend {
    pub(crate) zcopy: Option<ZeroCopy>,
    /// Held only to be released last.
    pub(crate) _sock: Option<Socket>,
}

impl Vq {
    /// The state `vhost_vq_reset()` leaves.
    pub(crate) fn new() -> Self {
        Self {
            ring: Ring::new(),
            log_used: false,
            log_addr: u64::MAX,
            log_base: 0,
            acked_features: [0; FEATURES_U64S],
            acked_backend_features: 0,
            kick_poll: None,
            sock_poll: None,
            kick: None,
            call: None,
            err: None,
            busyloop_timeout: 0,
            rxq: None,
            zcopy: None,
            backend: None,
            vhost_hlen: 0,
            sock_hlen: 0,
            iov: KVec::new(),
            log: KVec::new(),
            heads: KVec::new(),
            txbatch: None,
            stats: VqStats::default(),
        }
    }

    /// `vhost_dev_alloc_iovecs()`: the per-queue arrays, allocated once an owner exists.
    pub(crate) fn alloc_iovecs(&mut self) -> Result {
        let mut iov = KVec::with_capacity(ring::MAX_IOV, GFP_KERNEL)?;
        iov.resize(ring::MAX_IOV, Iov::default(), GFP_KERNEL)?;
        let mut log = KVec::with_capacity(ring::MAX_IOV, GFP_KERNEL)?;
        log.resize(ring::MAX_IOV, LogEntry::default(), GFP_KERNEL)?;
        // RX gathers up to 64 packets' heads and then a packet of up to MAX_IOV more, as
        // vhost-net's UIO_MAXIOV + VHOST_NET_BATCH.
        let n = ring::MAX_IOV + 65;
        let mut heads = KVec::with_capacity(n, GFP_KERNEL)?;
        heads.resize(n, (0, 0), GFP_KERNEL)?;
        self.iov = iov;
        self.log = log;
        self.heads = heads;
        Ok(())
    }

    /// `vhost_dev_free_iovecs()`
    pub(crate) fn free_iovecs(&mut self) {
        self.iov = KVec::new();
        self.log = KVec::new();
        self.heads = KVec::new();
        self.txbatch = None;
        if let Some(q) = self.rxq.as_mut() {
            q.attach(None);
        }
        self.rxq = None;
    }

    /// Takes on negotiated features: ring behaviour and header lengths.
    pub(crate) fn set_features(&mut self, features: Features, vhost_hlen: usize, sock_hlen: usize) {
        self.acked_features = features;
        self.ring.event_idx = has_feature(&features, VIRTIO_RING_F_EVENT_IDX);
        self.ring.notify_on_empty = has_feature(&features, VIRTIO_F_NOTIFY_ON_EMPTY);
        self.vhost_hlen = vhost_hlen;
        self.sock_hlen = sock_hlen;
    }

    /// Takes the backend out, to be dropped after unlocking.
    pub(crate) fn take_backend(&mut self) -> Backend {
        if let Some(q) = self.rxq.as_mut() {
            q.attach(None);
        }
        Backend {
            zcopy: self.zcopy.take(),
            _sock: self.backend.take(),
        }
    }

    /// The length of the next packet on the RX backend, or 0 (`peek_head_len()`). Counts
    /// the refills of the RX batch and the packets they take.
    pub(crate) fn rx_peek_len(&mut self) -> usize {
        match (self.rxq.as_mut(), self.backend.as_ref()) {
            (Some(q), Some(s)) => {
                let (len, taken) = q.peek_len(s);
                if taken > 0 {
                    self.stats.batches += 1;
                    self.stats.batched += taken as u64;
                }
                len
            }
            (None, Some(s)) => s.peek_len(),
            _ => 0,
        }
    }

    /// `vq_err()`: a guest error on this queue. Logged at debug level only, as vhost does
    /// (a guest must not be able to flood the log), and signalled on the err eventfd.
    pub(crate) fn error(&mut self, what: &str, e: RingError) {
        pr_debug!("vhost-rs: {}: {:?}\n", what, e);
        self.stats.errors += 1;
        if let Some(err) = &self.err {
            err.signal();
        }
    }

    pub(crate) fn has_feature(&self, bit: u32) -> bool {
        has_feature(&self.acked_features, bit)
    }

    fn event_idx(&self) -> bool {
        self.ring.event_idx
    }

    /// `vq_access_ok()`: the three rings of `num` entries are user memory.
    fn rings_access_ok(&self, num: u32, desc: u64, avail: u64, used: u64) -> bool {
        let ev = self.event_idx();
        sys::access_ok(desc, ring::desc_size(num))
            && sys::access_ok(avail, ring::avail_size(num, ev))
            && sys::access_ok(used, ring::used_size(num, ev))
    }

    /// `vq_log_used_access_ok()`
    fn log_used_access_ok(&self, log_base: u64, log_used: bool, log_addr: u64) -> bool {
        !log_used
            || mem::log_access_ok(
                log_base,
                log_addr,
                ring::used_size(self.ring.num, self.event_idx()),
            )
    }

    /// `vq_log_access_ok()`
    fn log_access_ok(&self, umem: Option<&MemTable>, log_base: u64) -> bool {
        mem::memory_access_ok(umem, log_base, self.has_feature(VHOST_F_LOG_ALL))
            && self.log_used_access_ok(log_base, self.log_used, self.log_addr)
    }

    /// `vhost_vq_access_ok()`: can this queue be started?
    pub(crate) fn access_ok(&self, umem: Option<&MemTable>) -> bool {
        self.log_access_ok(umem, self.log_base)
            && self.rings_access_ok(
                self.ring.num,
                self.ring.desc,
                self.ring.avail,
                self.ring.used,
            )
    }

    /// `vhost_vq_init_access()`: publishes our used flags and reads the used index the
    /// guest's ring holds, when a backend is attached.
    pub(crate) fn init_access(&mut self, log_ctx: Option<&EventFdCtx>) -> Result {
        if self.backend.is_none() {
            return Ok(());
        }
        let flags_addr = self.ring.used.wrapping_add(ring::USED_FLAGS_OFFSET);
        user::write_u16(flags_addr, self.ring.used_flags)?;
        if self.log_used {
            // As vhost_update_used_flags(): a failed log write is not the caller's error.
            let _ = mem::log_write(
                self.log_base,
                self.log_addr.wrapping_add(ring::USED_FLAGS_OFFSET),
                2,
            );
            if let Some(ctx) = log_ctx {
                ctx.signal();
            }
        }
        self.ring.signalled_used_valid = false;
        let idx_addr = self.ring.used.wrapping_add(ring::USED_IDX_OFFSET);
        if !sys::access_ok(idx_addr, 2) {
            return Err(EFAULT);
        }
        self.ring.last_used_idx = user::read_u16(idx_addr)?;
        Ok(())
    }
}

/// The device (`struct vhost_dev`), behind the open file's mutex.
pub(crate) struct Dev {
    /// The owner's address space (`dev->mm`), held with `mmget` as vhost does.
    pub(crate) owner: Option<ARef<MmWithUser>>,
    /// `VHOST_FORK_OWNER_TASK` (true) or `_KTHREAD` (false).
    pub(crate) fork_owner: bool,
    /// `None` until the first `SET_MEM_TABLE`; `RESET_OWNER` leaves an empty table.
    pub(crate) umem: Option<MemTable>,
    pub(crate) log_ctx: Option<EventFdCtx>,
    pub(crate) vqs: [Vq; NVQS],
}

/// The calling task's address space, if it has one.
fn current_mm() -> Option<*mut kernel::bindings::mm_struct> {
    kernel::current!().mm().map(|mm| mm.as_raw())
}

impl Dev {
    pub(crate) fn new() -> Self {
        Self {
            owner: None,
            fork_owner: params::fork_from_owner_default(),
            umem: None,
            log_ctx: None,
            vqs: [Vq::new(), Vq::new()],
        }
    }

    pub(crate) fn has_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// `vhost_dev_check_owner()`: the caller shares the owner's address space.
    pub(crate) fn check_owner(&self) -> Result {
        match (&self.owner, current_mm()) {
            (Some(owner), Some(mm)) if owner.as_raw() == mm => Ok(()),
            _ => Err(EPERM),
        }
    }

    /// `vhost_dev_set_owner()`
    pub(crate) fn set_owner(&mut self) -> Result {
        if self.has_owner() {
            return Err(EBUSY);
        }
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        self.owner = Some(ARef::from(mm));
        Ok(())
    }

    /// `vhost_dev_cleanup()`: forgets everything the owner set up; the caller has taken the
    /// backends out first, to drop them after unlocking.
    pub(crate) fn cleanup(&mut self) {
        for vq in self.vqs.iter_mut() {
            *vq = Vq::new();
        }
        self.log_ctx = None;
        self.umem = None;
        self.owner = None;
    }

    /// `vhost_dev_reset_owner()`: as cleanup, but with an empty memory table in place.
    pub(crate) fn reset_owner(&mut self) {
        self.cleanup();
        self.fork_owner = params::fork_from_owner_default();
        self.umem = Some(MemTable::new(params::max_iotlb_entries().max(0) as usize));
    }

    /// Takes every backend out of its queue, as `vhost_net_stop()`.
    pub(crate) fn take_backends(&mut self) -> [Backend; NVQS] {
        let [rx, tx] = &mut self.vqs;
        [rx.take_backend(), tx.take_backend()]
    }

    /// Stops every poll and takes the kick files out, to be dropped after unlocking.
    pub(crate) fn stop_polls(&mut self) -> [Option<ARef<File>>; NVQS] {
        for vq in self.vqs.iter_mut() {
            vq.kick_poll = None;
            vq.sock_poll = None;
        }
        let [rx, tx] = &mut self.vqs;
        [rx.kick.take(), tx.kick.take()]
    }

    /// `memory_access_ok()`: can the active queues use `umem`?
    fn memory_access_ok(&self, umem: Option<&MemTable>, log_all: bool) -> bool {
        self.vqs.iter().all(|vq| {
            vq.backend.is_none()
                || mem::memory_access_ok(
                    umem,
                    vq.log_base,
                    log_all || vq.has_feature(VHOST_F_LOG_ALL),
                )
        })
    }

    /// `vhost_log_access_ok()`: can every active queue log writes to all of memory?
    pub(crate) fn log_access_ok(&self) -> bool {
        self.memory_access_ok(self.umem.as_ref(), true)
    }

    /// `vhost_dev_ioctl()` without `VHOST_SET_OWNER` (vhost-net handles that itself).
    /// `None` means "not a device ioctl" (`-ENOIOCTLCMD` in C): try the vring ioctls.
    pub(crate) fn dev_ioctl(&mut self, cmd: u32, arg: u64) -> Option<Result> {
        match cmd {
            VHOST_SET_FORK_FROM_OWNER => return Some(self.set_fork_owner(arg)),
            VHOST_GET_FORK_FROM_OWNER => {
                let val = u8::from(self.fork_owner);
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
        // Only before there is an owner: the worker is created with the owner.
        if self.has_owner() {
            return Err(EBUSY);
        }
        let [val]: [u8; 1] = user::read(arg)?;
        if val != VHOST_FORK_OWNER_TASK && val != VHOST_FORK_OWNER_KTHREAD {
            return Err(EINVAL);
        }
        self.fork_owner = val != 0;
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
                .add_range(r.guest_phys_addr, last, r.userspace_addr)
                .map_err(|_| EFAULT)?;
        }
        if !self.memory_access_ok(Some(&table), false) {
            return Err(EFAULT);
        }
        self.umem = Some(table);
        Ok(())
    }

    /// `VHOST_SET_LOG_BASE`: queues whose log would not be accessible keep their old base
    /// and make the ioctl fail; the others take the new one (as vhost.c does).
    fn set_log_base(&mut self, arg: u64) -> Result {
        let base = u64::from_ne_bytes(user::read(arg)?);
        let mut r = Ok(());
        let umem = self.umem.as_ref();
        for vq in self.vqs.iter_mut() {
            if vq.backend.is_some() && !vq.log_access_ok(umem, base) {
                r = Err(EFAULT);
            } else {
                vq.log_base = base;
            }
        }
        r
    }

    fn set_log_fd(&mut self, arg: u64) -> Result {
        let fd = i32::from_ne_bytes(user::read(arg)?);
        self.log_ctx = eventfd_or_unbind(fd)?;
        Ok(())
    }

    /// `vhost_vring_ioctl()`
    pub(crate) fn vring_ioctl(&mut self, cmd: u32, arg: u64) -> Result {
        // vhost_get_vq_from_user(): the index is read (and checked) before anything else.
        let idx = u32::from_ne_bytes(user::read(arg)?);
        let vq = self.vqs.get_mut(idx as usize).ok_or(ENOBUFS)?;
        match cmd {
            VHOST_SET_VRING_NUM => {
                // Resizing a ring with an active backend? You don't want to do that.
                if vq.backend.is_some() {
                    return Err(EBUSY);
                }
                let s = VringState::from_bytes(&user::read(arg)?);
                if !ring::valid_num(s.num) {
                    return Err(EINVAL);
                }
                vq.ring.num = s.num;
            }
            VHOST_SET_VRING_ADDR => {
                let a = VringAddr::from_bytes(&user::read(arg)?);
                if a.flags & !(1 << VHOST_VRING_F_LOG) != 0 {
                    return Err(EOPNOTSUPP);
                }
                if a.avail_user_addr % ring::AVAIL_ALIGN != 0
                    || a.used_user_addr % ring::USED_ALIGN != 0
                    || a.log_guest_addr % ring::USED_ALIGN != 0
                {
                    return Err(EINVAL);
                }
                let log_used = a.flags & (1 << VHOST_VRING_F_LOG) != 0;
                // Checked here only with a backend; otherwise when one is attached.
                if vq.backend.is_some()
                    && (!vq.rings_access_ok(
                        vq.ring.num,
                        a.desc_user_addr,
                        a.avail_user_addr,
                        a.used_user_addr,
                    ) || !vq.log_used_access_ok(vq.log_base, log_used, a.log_guest_addr))
                {
                    return Err(EINVAL);
                }
                vq.log_used = log_used;
                vq.ring.desc = a.desc_user_addr;
                vq.ring.avail = a.avail_user_addr;
                vq.ring.used = a.used_user_addr;
                vq.log_addr = a.log_guest_addr;
            }
            VHOST_SET_VRING_BASE => {
                // Moving base with an active backend? You don't want to do that.
                if vq.backend.is_some() {
                    return Err(EBUSY);
                }
                let s = VringState::from_bytes(&user::read(arg)?);
                if vq.has_feature(VIRTIO_F_RING_PACKED) {
                    vq.ring.last_avail_idx = s.num as u16;
                    vq.ring.next_avail_head = vq.ring.last_avail_idx;
                    vq.ring.last_used_idx = (s.num >> 16) as u16;
                } else {
                    let num = u16::try_from(s.num).map_err(|_| EINVAL)?;
                    vq.ring.last_avail_idx = num;
                    vq.ring.next_avail_head = num;
                }
                // Forget the cached index value.
                vq.ring.avail_idx = vq.ring.last_avail_idx;
            }
            VHOST_GET_VRING_BASE => {
                let num = if vq.has_feature(VIRTIO_F_RING_PACKED) {
                    u32::from(vq.ring.last_avail_idx) | (u32::from(vq.ring.last_used_idx) << 16)
                } else {
                    u32::from(vq.ring.last_avail_idx)
                };
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

/// An eventfd context for `fd`, or none for `VHOST_FILE_UNBIND`.
fn eventfd_or_unbind(fd: i32) -> Result<Option<EventFdCtx>> {
    if fd == VHOST_FILE_UNBIND {
        Ok(None)
    } else {
        EventFdCtx::fdget(fd).map(Some)
    }
}
