// SPDX-License-Identifier: GPL-2.0

//! The vhost-net device: what `drivers/vhost/net.c` adds to the generic vhost device —
//! feature negotiation, ownership with its net-side state, and the socket backend of each
//! queue (AF_PACKET raw sockets, tun/tap and macvtap queues).

use crate::{
    dev::{Backend, Dev, Vq, NVQS},
    guest::{UsedLog, UserMem},
    mem,
    ring::{ChainBuf, Iov, RingError},
    stats::{self, DebugDir, QueueStats},
    sys::{self, Poll, RxQueue, Socket, TxBatch, Worker, EPOLLERR, EPOLLIN, EPOLLOUT},
    uapi::*,
    user,
    zerocopy::{ZeroCopy, GOODCOPY_LEN},
};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    debugfs, new_mutex, prelude::*, seq_file::SeqFile, seq_print, str::CString, sync::Mutex,
};

/// Feature bits we offer, by word of the 128-bit feature array: what the data path
/// implements, the set vhost_net.ko offers for the same capabilities. It also offers
/// ACCESS_PLATFORM (device IOTLB), RING_RESET, IN_ORDER and the UDP tunnel GSO bits, which
/// we do not yet.
const NET_FEATURES: Features = [
    1 << VIRTIO_F_NOTIFY_ON_EMPTY
        | 1 << VIRTIO_RING_F_INDIRECT_DESC
        | 1 << VIRTIO_RING_F_EVENT_IDX
        | 1 << VHOST_F_LOG_ALL
        | 1 << VIRTIO_F_ANY_LAYOUT // the same bit as VHOST_NET_F_VIRTIO_NET_HDR
        | 1 << VIRTIO_F_VERSION_1
        | 1 << VIRTIO_NET_F_MRG_RXBUF,
    0,
];

/// Backend features we offer: none yet (vhost_net.ko offers IOTLB_MSG_V2, which belongs to
/// the device IOTLB that ACCESS_PLATFORM needs).
const NET_BACKEND_FEATURES: u64 = 0;

/// Queue indices (`VHOST_NET_VQ_RX`, `VHOST_NET_VQ_TX`).
const RX: usize = 0;
const TX: usize = 1;

/// Pending-work bits, set by wakeups and taken by the worker: a kick or a socket event on
/// each queue, zero-copy completions on TX. Kick bits are `1 << queue`, socket bits
/// `4 << queue`, completions `16 << TX`.
const KICK: u32 = 1;
const SOCK: u32 = 4;
/// Zero-copy buffers completed (only on TX: `ZCOPY << TX`).
const ZCOPY: u32 = 16;

/// A queue gives way after this many bytes or packets in one round and is requeued
/// (`VHOST_NET_WEIGHT`, `VHOST_NET_PKT_WEIGHT`: the limits adopted for CVE-2019-3900).
const WEIGHT_BYTES: usize = 0x80000;
const WEIGHT_PKTS: usize = 256;
/// Used elements are published and signalled at least this often (`VHOST_NET_BATCH`).
const BATCH: usize = 64;
/// The largest virtio-net header (`struct virtio_net_hdr_mrg_rxbuf`).
const HDR_MAX: usize = 12;

/// Largest feature-array tail we scan between two scheduling points.
const RESCHED_EVERY: u64 = 4096;

/// One open `/dev/vhost-rs-net`.
#[pin_data(PinnedDrop)]
pub(crate) struct VhostNet {
    /// Declared first so that it is dropped first: its polls stop before the worker goes.
    #[pin]
    dev: Mutex<Dev>,
    #[pin]
    worker: Worker,
    /// Work waiting for the worker (`KICK`/`SOCK` bits per queue).
    pending: AtomicU32,
    /// The queues' counters as debugfs shows them (stats.rs), in files of `debugfs`.
    #[pin]
    rx_stats: debugfs::File<QueueStats>,
    #[pin]
    tx_stats: debugfs::File<QueueStats>,
    /// Their directory, relative to the debugfs mount.
    debugfs: CString,
}

#[pinned_drop]
impl PinnedDrop for VhostNet {
    fn drop(self: Pin<&mut Self>) {
        // The worker dereferences `self`: it must be gone before any field is.
        self.worker.stop();
    }
}

impl VhostNet {
    /// A device whose counters go into `dir` (its files keep the directory alive).
    pub(crate) fn new(dir: DebugDir) -> impl PinInit<Self, Error> {
        let DebugDir { name, dir } = dir;
        try_pin_init!(Self {
            rx_stats <- stats::queue_file(&dir, c"rx"),
            tx_stats <- stats::queue_file(&dir, c"tx"),
            debugfs: name,
            dev <- new_mutex!(Dev::new(), "VhostNet::dev"),
            worker <- Worker::new(),
            pending: AtomicU32::new(0),
        }? Error)
    }

    /// A queue's counters as debugfs shows them.
    fn stats(&self, q: usize) -> &QueueStats {
        if q == RX {
            &self.rx_stats
        } else {
            &self.tx_stats
        }
    }

    /// Copies the queues' counters for debugfs (the caller holds the device lock).
    fn publish_stats(&self, dev: &Dev) {
        for (q, vq) in dev.vqs.iter().enumerate() {
            self.stats(q).publish(vq);
        }
    }

    /// `vhost_net_release()`: stops the worker and drops every file reference, before the
    /// memory goes (`PinnedDrop` would stop the worker too; here it happens while the
    /// owner's file table is still intact).
    pub(crate) fn release(&self) {
        let (backends, kicks) = {
            let mut dev = self.dev.lock();
            let backends = dev.take_backends();
            let kicks = dev.stop_polls();
            (backends, kicks)
        };
        self.worker.stop();
        drop(backends);
        drop(kicks);
    }

    /// Called from a poll wakeup, in atomic context: note the work, wake the worker.
    pub(crate) fn poll_wake(&self, bit: u32) {
        for q in [RX, TX] {
            if bit == KICK << q {
                self.stats(q).kick();
            }
        }
        self.pending.fetch_or(bit, Ordering::AcqRel);
        self.worker.wake();
    }

    /// The owner was killed and took the worker with it: nothing will run the queues any
    /// more; the device stays usable for ioctls until it is closed or reset.
    pub(crate) fn worker_killed(&self) {
        self.pending.store(0, Ordering::Release);
    }

    /// One round of the worker: handles what the wakeups noted. Returns whether there was
    /// any work; the worker sleeps when there was none.
    pub(crate) fn worker_run(&self) -> bool {
        let pending = self.pending.swap(0, Ordering::AcqRel);
        if pending == 0 {
            return false;
        }
        sys::set_running();
        let mut again = 0;
        {
            let mut dev = self.dev.lock();
            if pending & ((KICK | SOCK | ZCOPY) << TX) != 0 && handle_tx(&mut dev, &self.pending) {
                again |= KICK << TX;
            }
            if pending & ((KICK | SOCK) << RX) != 0 && handle_rx(&mut dev, &self.pending) {
                again |= KICK << RX;
            }
            self.publish_stats(&dev);
        }
        if again != 0 {
            // Requeued for fairness: run again after giving way to the scheduler.
            self.pending.fetch_or(again, Ordering::AcqRel);
        }
        sys::cond_resched();
        true
    }

    /// The device's counters, per queue, for `/proc/PID/fdinfo/FD` (vhost-net has none),
    /// and where debugfs shows them.
    pub(crate) fn show_fdinfo(&self, m: &SeqFile) {
        let dev = self.dev.lock();
        for (q, vq) in dev.vqs.iter().enumerate() {
            let name = if q == RX { "rx" } else { "tx" };
            self.stats(q).show_line(vq, m, fmt!("vq{} {}", q, name));
        }
        seq_print!(m, "debugfs: {}\n", self.debugfs.to_str().unwrap_or("?"));
    }

    /// `vhost_net_set_owner()`: the owner's worker, the queues' polls and arrays.
    fn set_owner(&self) -> Result {
        let mut dev = self.dev.lock();
        dev.set_owner()?;
        let fork_owner = dev.fork_owner;
        let r = (|| -> Result {
            for (i, vq) in dev.vqs.iter_mut().enumerate() {
                vq.alloc_iovecs()?;
                if i == TX {
                    vq.txbatch = Some(TxBatch::new()?);
                } else {
                    vq.rxq = Some(RxQueue::new()?);
                }
                let sock_mask = if i == TX { EPOLLOUT } else { EPOLLIN };
                // SAFETY: the polls are stored in `self.dev`, so `self` outlives them.
                vq.kick_poll = Some(unsafe { Poll::new(self, EPOLLIN, KICK << i) }?);
                // SAFETY: as above.
                vq.sock_poll = Some(unsafe { Poll::new(self, sock_mask, SOCK << i) }?);
            }
            // SAFETY: the worker is `self.worker`, stopped in `PinnedDrop` before any other
            // field of `self` is dropped.
            unsafe { self.worker.start(self, fork_owner) }
        })();
        if r.is_err() {
            // Undo what this call set up; state set before the owner (features) stays.
            for vq in dev.vqs.iter_mut() {
                vq.kick_poll = None;
                vq.sock_poll = None;
                vq.free_iovecs();
            }
            dev.owner = None;
        }
        r
    }

    /// `vhost_net_ioctl()`
    pub(crate) fn ioctl(&self, cmd: u32, arg: u64) -> Result<isize> {
        let r = self.do_ioctl(cmd, arg);
        // Resets, backend changes and timeouts show in debugfs at once.
        self.publish_stats(&self.dev.lock());
        r
    }

    fn do_ioctl(&self, cmd: u32, arg: u64) -> Result<isize> {
        match cmd {
            VHOST_NET_SET_BACKEND => {
                let f = VringFile::from_bytes(&user::read(arg)?);
                self.set_backend(f.index, f.fd)?;
            }
            VHOST_GET_FEATURES => user::write(arg, &NET_FEATURES[0].to_ne_bytes())?,
            VHOST_SET_FEATURES => {
                let features = u64::from_ne_bytes(user::read(arg)?);
                if features & !NET_FEATURES[0] != 0 {
                    return Err(EOPNOTSUPP);
                }
                self.set_features([features, 0])?;
            }
            VHOST_GET_FEATURES_ARRAY => get_features_array(arg)?,
            VHOST_SET_FEATURES_ARRAY => {
                let features = read_features_array(arg)?;
                self.set_features(features)?;
            }
            VHOST_GET_BACKEND_FEATURES => user::write(arg, &NET_BACKEND_FEATURES.to_ne_bytes())?,
            VHOST_SET_BACKEND_FEATURES => {
                let features = u64::from_ne_bytes(user::read(arg)?);
                if features & !NET_BACKEND_FEATURES != 0 {
                    return Err(EOPNOTSUPP);
                }
                let mut dev = self.dev.lock();
                for vq in dev.vqs.iter_mut() {
                    vq.acked_backend_features = features;
                }
            }
            VHOST_RESET_OWNER => self.reset_owner()?,
            VHOST_SET_OWNER => self.set_owner()?,
            _ => {
                let mut dev = self.dev.lock();
                match dev.dev_ioctl(cmd, arg) {
                    Some(r) => r?,
                    None => dev.vring_ioctl(cmd, arg)?,
                }
            }
        }
        Ok(0)
    }

    /// `vhost_net_set_features()`: no owner needed, as in vhost-net.
    fn set_features(&self, features: Features) -> Result {
        // The virtio-net header is 12 bytes with MRG_RXBUF or VERSION_1, else 10 (5.1.6).
        let hdr_len = if has_feature(&features, VIRTIO_NET_F_MRG_RXBUF)
            || has_feature(&features, VIRTIO_F_VERSION_1)
        {
            12
        } else {
            10
        };
        let (vhost_hlen, sock_hlen) = if has_feature(&features, VHOST_NET_F_VIRTIO_NET_HDR) {
            (hdr_len, 0)
        } else {
            (0, hdr_len)
        };
        let mut dev = self.dev.lock();
        if has_feature(&features, VHOST_F_LOG_ALL) && !dev.log_access_ok() {
            return Err(EFAULT);
        }
        for vq in dev.vqs.iter_mut() {
            vq.set_features(features, vhost_hlen, sock_hlen);
        }
        Ok(())
    }

    /// `vhost_net_reset_owner()`: back to the state of a fresh open, with an empty memory
    /// table; the backends' sockets are released after the lock is dropped.
    fn reset_owner(&self) -> Result {
        let (backends, kicks) = {
            let mut dev = self.dev.lock();
            dev.check_owner()?;
            let backends = dev.take_backends();
            let kicks = dev.stop_polls();
            dev.reset_owner();
            (backends, kicks)
        };
        // Outside the lock: the worker may be waiting for it to finish its round.
        self.worker.stop();
        self.pending.store(0, Ordering::Release);
        drop(backends);
        drop(kicks);
        Ok(())
    }

    /// `vhost_net_set_backend()`: attaches `fd`'s socket to queue `index`, or detaches with -1.
    /// A TX backend replaced with zero-copy buffers in flight is kept until the network
    /// stack has let go of them all, then they are returned to the guest; only then does
    /// the call return (`vhost_net_ubuf_put_wait_and_free()`).
    fn set_backend(&self, index: u32, fd: i32) -> Result {
        let mut old = {
            let mut dev = self.dev.lock();
            dev.check_owner()?;
            let index = index as usize;
            if index >= NVQS {
                return Err(ENOBUFS);
            }
            let Dev {
                umem, vqs, log_ctx, ..
            } = &mut *dev;
            let vq = &mut vqs[index];
            // Verify that the ring has been set up correctly.
            if !vq.access_ok(umem.as_ref()) {
                return Err(EFAULT);
            }
            let sock = get_socket(fd)?;
            let same = match (&sock, &vq.backend) {
                (Some(a), Some(b)) => a.same_as(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Ok(());
            }
            let zcopy = match &sock {
                Some(s) if index == TX && s.zcopy() => {
                    // SAFETY: the state is kept in `self.dev`, so `self` outlives it.
                    Some(unsafe { ZeroCopy::new(self, ZCOPY << TX) }?)
                }
                _ => None,
            };
            // Stop polling the old socket before it may be released (vhost_net_disable_vq).
            if let Some(poll) = vq.sock_poll.as_mut() {
                poll.stop();
            }
            let old_sock = core::mem::replace(&mut vq.backend, sock);
            // RX batches from the new socket's ring; what it took from the old one goes back.
            if let Some(q) = vq.rxq.as_mut() {
                q.attach(vq.backend.as_ref());
            }
            if let Err(e) = vq
                .init_access(log_ctx.as_ref())
                .and_then(|()| enable_vq(vq))
            {
                // Put the old backend back; the new socket is released on return.
                let _new = core::mem::replace(&mut vq.backend, old_sock);
                if let Some(q) = vq.rxq.as_mut() {
                    q.attach(vq.backend.as_ref());
                }
                let _ = enable_vq(vq);
                return Err(e);
            }
            // No explicit wake: starting the socket poll wakes the worker exactly when
            // vhost_poll_start() would (TX at once, the socket being writable; RX only
            // with a packet waiting), so the rings see the same writes as with vhost-net.
            Backend {
                zcopy: core::mem::replace(&mut vq.zcopy, zcopy),
                _sock: old_sock,
            }
        };
        if let Some(zc) = old.zcopy.as_mut() {
            // Outside the lock: completions do not need it, the worker may.
            zc.wait();
            let mut dev = self.dev.lock();
            let Dev {
                umem, vqs, log_ctx, ..
            } = &mut *dev;
            let vq = &mut vqs[TX];
            if let Some(mem) = guest_mem(umem, (vq.log_used, vq.log_base, vq.log_addr), log_ctx) {
                loop {
                    let n = zc.collect(&mut vq.heads, &mut vq.stats);
                    if n == 0 {
                        break;
                    }
                    flush_used(vq, &mem, n);
                }
            }
        }
        drop(old);
        Ok(())
    }
}

/// `get_socket()`: -1 detaches; a raw packet socket, else a tun/tap or macvtap queue; any
/// other fd is `ENOTSOCK`, whatever the lookups said.
fn get_socket(fd: i32) -> Result<Option<Socket>> {
    if fd == -1 {
        return Ok(None);
    }
    if let Ok(sock) = Socket::raw(fd) {
        return Ok(Some(sock));
    }
    if let Ok(sock) = Socket::tap(fd) {
        return Ok(Some(sock));
    }
    Err(ENOTSOCK)
}

/// `vhost_net_enable_vq()`: polls the backend socket; one that polls as an error (a tun
/// file with no device attached) is refused with `EINVAL`, as `vhost_poll_start()` does.
fn enable_vq(vq: &mut Vq) -> Result {
    let (Some(sock), Some(poll)) = (vq.backend.as_ref(), vq.sock_poll.as_mut()) else {
        return Ok(());
    };
    if sock.poll_mask() & EPOLLERR != 0 {
        return Err(EINVAL);
    }
    poll.start(sock.file())
}

/// `VHOST_GET_FEATURES_ARRAY`: `{ u64 count; u64 features[count]; }`; words past ours are
/// zeroed.
fn get_features_array(arg: u64) -> Result {
    let count = u64::from_ne_bytes(user::read(arg)?);
    let copied = count.min(FEATURES_U64S as u64) as usize;
    let mut words = [0u8; 8 * FEATURES_U64S];
    for (i, w) in NET_FEATURES.iter().enumerate() {
        words[8 * i..8 * i + 8].copy_from_slice(&w.to_ne_bytes());
    }
    let base = arg.wrapping_add(8);
    user::write(base, &words[..8 * copied])?;
    let tail = (count - copied as u64).saturating_mul(8);
    if sys::clear_user(base.wrapping_add(8 * copied as u64), tail) != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// `VHOST_SET_FEATURES_ARRAY`: reads the array; any bit we do not offer, including any bit
/// beyond our 128, is `EOPNOTSUPP`.
fn read_features_array(arg: u64) -> Result<Features> {
    let count = u64::from_ne_bytes(user::read(arg)?);
    let copied = count.min(FEATURES_U64S as u64) as usize;
    let mut words = [0u8; 8 * FEATURES_U64S];
    user::read_into(arg.wrapping_add(8), &mut words[..8 * copied])?;
    // The tail is user-sized: read it word by word as vhost-net does, but let the scheduler
    // and a fatal signal in, so a huge count cannot pin the CPU.
    for i in copied as u64..count {
        let addr = arg.wrapping_add(8).wrapping_add(i.wrapping_mul(8));
        if u64::from_ne_bytes(user::read(addr)?) != 0 {
            return Err(EOPNOTSUPP);
        }
        if (i - copied as u64) % RESCHED_EVERY == RESCHED_EVERY - 1 {
            if kernel::current!().signal_pending() {
                return Err(EINTR);
            }
            sys::cond_resched();
        }
    }
    let mut features = [0u64; FEATURES_U64S];
    for (i, f) in features.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&words[8 * i..8 * i + 8]);
        *f = u64::from_ne_bytes(w);
        if *f & !NET_FEATURES[i] != 0 {
            return Err(EOPNOTSUPP);
        }
    }
    Ok(features)
}

/// The guest memory a queue works in: the device's table, and the used-ring log when
/// logging is on for the queue. `None` before the first `SET_MEM_TABLE`.
fn guest_mem<'a>(
    umem: &'a Option<mem::MemTable>,
    vq_log: (bool, u64, u64),
    log_ctx: &'a Option<sys::EventFdCtx>,
) -> Option<UserMem<'a>> {
    let (log_used, base, addr) = vq_log;
    Some(UserMem {
        table: umem.as_ref()?,
        used_log: log_used.then_some(UsedLog {
            base,
            addr,
            ctx: log_ctx.as_ref(),
        }),
    })
}

/// Starts a round on a queue: the guest memory it works in, and guest kicks off while we
/// process (`vhost_disable_notify()`). `None` without a backend or a memory table.
fn begin_round<'a>(
    vq: &mut Vq,
    umem: &'a Option<mem::MemTable>,
    log_ctx: &'a Option<sys::EventFdCtx>,
) -> Option<UserMem<'a>> {
    vq.backend.as_ref()?;
    let mem = guest_mem(umem, (vq.log_used, vq.log_base, vq.log_addr), log_ctx)?;
    if let Err(e) = vq.ring.disable_notify(&mem) {
        vq.error("disabling notification", e);
    }
    Some(mem)
}

/// Out of buffers: asks the guest for kicks again (`vhost_enable_notify()`). True if it made
/// buffers available meanwhile, so the caller processes again instead of sleeping.
fn rearm(vq: &mut Vq, mem: &UserMem<'_>) -> bool {
    match vq.ring.enable_notify(mem) {
        Ok(true) => {
            let _ = vq.ring.disable_notify(mem);
            true
        }
        Ok(false) => false,
        Err(e) => {
            vq.error("enabling notification", e);
            false
        }
    }
}

/// Publishes `n` used elements from `vq.heads` and signals the guest if it wants it
/// (`vhost_add_used_and_signal_n()`).
fn flush_used(vq: &mut Vq, mem: &UserMem<'_>, n: usize) {
    if n == 0 {
        return;
    }
    if let Err(e) = vq.ring.add_used_n(mem, &vq.heads[..n]) {
        vq.error("used ring write failed", e);
        return;
    }
    if vq.ring.notify(mem) {
        if let Some(call) = &vq.call {
            call.signal();
            vq.stats.calls += 1;
        }
    }
}

/// Skips the first `n` bytes of `iov[..cnt]` in place. Returns the index of the first
/// segment left, or `None` if there are fewer than `n` bytes.
fn skip_bytes(iov: &mut [Iov], cnt: usize, mut n: u64) -> Option<usize> {
    let mut i = 0;
    while n > 0 {
        let seg = iov[..cnt].get_mut(i)?;
        let take = seg.len.min(n);
        seg.addr = seg.addr.wrapping_add(take);
        seg.len -= take;
        n -= take;
        if seg.len == 0 {
            i += 1;
        }
    }
    Some(i)
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

/// `handle_tx()` with `handle_tx_copy()` and `handle_tx_zerocopy()`: sends each chain the
/// guest made available as one packet, large ones zero-copy when the backend has it (see
/// zerocopy.rs); otherwise packets that fit in a page are copied into a batch for one
/// sendmsg per 64 when the socket allows it (tun/tap and macvtap with an unlimited sndbuf).
/// Returns true if the queue gave way to its weight and must run again.
fn handle_tx(dev: &mut Dev, pending: &AtomicU32) -> bool {
    let Dev {
        umem, vqs, log_ctx, ..
    } = dev;
    let [rvq, vq] = vqs;
    let Some(mem) = begin_round(vq, umem, log_ctx) else {
        return false;
    };
    // The socket is polled only while it is full (vhost_net_disable_vq()).
    if let Some(poll) = vq.sock_poll.as_mut() {
        poll.stop();
    }
    let (mut total, mut pkts, mut done) = (0usize, 0usize, 0usize);
    let mut requeue = false;
    let batching = vq.zcopy.is_none()
        && vq.txbatch.is_some()
        && vq.backend.as_ref().is_some_and(|s| s.can_batch());
    loop {
        // Every round counts towards the weight, as in the C do-while loop.
        if total >= WEIGHT_BYTES || pkts >= WEIGHT_PKTS {
            vq.stats.requeues += 1;
            requeue = true;
            break;
        }
        pkts += 1;
        // Zero-copy buffers the stack has let go of go back to the guest first.
        if let Some(zc) = vq.zcopy.as_mut() {
            done += zc.collect(&mut vq.heads[done..], &mut vq.stats);
            if done >= BATCH {
                tx_flush(vq, &mem, done);
                done = 0;
            }
        }
        let mut chain = tx_get_desc(vq, &mem);
        let mut busyloop_intr = false;
        if matches!(chain, Ok(None)) && vq.busyloop_timeout != 0 {
            // vhost_net_tx_get_vq_desc(): publish what is done, watch the rings and the RX
            // socket a while, then look again.
            tx_flush(vq, &mem, done);
            done = 0;
            busyloop_intr = busy_poll(rvq, vq, umem, log_ctx, pending, false);
            chain = tx_get_desc(vq, &mem);
        }
        if !matches!(chain, Ok(Some(_))) {
            // Out of work or stopping: what is batched goes now, before we sleep.
            tx_flush(vq, &mem, done);
            done = 0;
        }
        let chain = match chain {
            Ok(Some(c)) => c,
            // Other work is waiting: give way to it, and come back.
            Ok(None) if busyloop_intr => {
                requeue = true;
                break;
            }
            Ok(None) if rearm(vq, &mem) => continue,
            Ok(None) => break,
            Err(e) => {
                vq.error("TX: bad descriptor chain", e);
                break;
            }
        };
        if chain.in_num != 0 {
            // Device-writable buffers on the TX queue (get_tx_bufs()).
            vq.error("TX: unexpected descriptor format", RingError::OutAfterIn);
            break;
        }
        let out = chain.out_num;
        let len: u64 = vq.iov[..out].iter().map(|s| s.len).sum();
        let Some(first) = skip_bytes(&mut vq.iov, out, vq.vhost_hlen as u64) else {
            vq.error("TX: shorter than the virtio-net header", RingError::Fault);
            break;
        };
        let payload = (len - vq.vhost_hlen as u64) as usize;
        if payload == 0 {
            vq.error("TX: shorter than the virtio-net header", RingError::Fault);
            break;
        }
        // Copied into the batch (or dropped on the way), else sent on its own below.
        let mut batched = false;
        if batching {
            let (Some(b), Some(sock)) = (vq.txbatch.as_mut(), vq.backend.as_ref()) else {
                break;
            };
            match b.add(sock, &vq.iov[first..out], payload, vq.sock_hlen) {
                // Too big for a page: sent alone, after what is batched.
                Err(e) if e == ENOSPC => {
                    tx_flush(vq, &mem, done);
                    done = 0;
                }
                // No memory for now: as vhost-net, give the chain back and retry once the
                // socket polls writable.
                Err(e) if e == ENOMEM => {
                    tx_flush(vq, &mem, done);
                    done = 0;
                    tx_retry_later(vq);
                    break;
                }
                Ok(()) => {
                    b.bytes += len;
                    batched = true;
                }
                // A buffer we cannot read or a header that points past the data: dropped,
                // as a failed send would be. (vhost-net gives such a chain back and stops,
                // to meet it again at the next kick: a guest could stall its own queue.)
                Err(_) => {
                    vq.stats.drops += 1;
                    batched = true;
                }
            }
        }
        let mut zcopy_used = false;
        if !batched {
            let Some(sock) = vq.backend.as_ref() else {
                break;
            };
            let iov = &vq.iov[first..out];
            let num = vq.ring.num;
            let sent;
            (sent, zcopy_used) = match vq.zcopy.as_mut() {
                Some(zc) if zc.select(payload, num) => {
                    (zc.send(chain.head, sock, iov, payload, &mut vq.stats), true)
                }
                zc => {
                    if zc.is_some() && payload >= GOODCOPY_LEN {
                        vq.stats.zcopy_fallbacks += 1;
                    }
                    (sock.sendmsg(iov, payload), false)
                }
            };
            match sent {
                // The errors a non-blocking send gives while the socket is full for now.
                Err(e) if e == EAGAIN || e == ENOMEM || e == ENOBUFS => {
                    // Full for now: give the chain back and wait for the socket to drain.
                    tx_retry_later(vq);
                    break;
                }
                Ok(_) => {
                    vq.stats.packets += 1;
                    vq.stats.bytes += len;
                }
                // Any other failure drops the packet, as vhost-net does; the buffer is used.
                Err(_) => vq.stats.drops += 1,
            }
            if let Some(zc) = vq.zcopy.as_mut() {
                zc.packet();
            }
        }
        // A zero-copy buffer goes back to the guest when the stack lets go of it.
        if !zcopy_used {
            vq.heads[done] = (u32::from(chain.head), 0);
            done += 1;
        }
        if done >= BATCH {
            tx_flush(vq, &mem, done);
            done = 0;
        }
        total += len as usize;
    }
    tx_flush(vq, &mem, done);
    requeue
}

/// Gives the chain just taken back to the ring and polls the socket, which wakes the worker
/// once it is writable again (`vhost_discard_vq_desc()` and `vhost_net_enable_vq()`).
fn tx_retry_later(vq: &mut Vq) {
    vq.ring.discard(1);
    if let (Some(poll), Some(sock)) = (vq.sock_poll.as_mut(), vq.backend.as_ref()) {
        let _ = poll.start(sock.file());
    }
}

/// `vhost_tx_batch()`: sends the batched packets, then publishes `n` used elements. A
/// failed batch send drops its packets (the guest gets its buffers back all the same).
fn tx_flush(vq: &mut Vq, mem: &UserMem<'_>, n: usize) {
    if let (Some(b), Some(sock)) = (vq.txbatch.as_mut(), vq.backend.as_ref()) {
        let (pkts, bytes) = (b.len() as u64, b.bytes);
        if pkts != 0 {
            if b.flush(sock).is_ok() {
                vq.stats.packets += pkts;
                vq.stats.bytes += bytes;
                vq.stats.batches += 1;
                vq.stats.batched += pkts;
            } else {
                vq.stats.drops += pkts;
            }
        }
    }
    flush_used(vq, mem, n);
}

/// The next TX chain into `vq.iov`.
fn tx_get_desc(vq: &mut Vq, mem: &UserMem<'_>) -> Result<Option<crate::ring::Chain>, RingError> {
    let mut buf = ChainBuf {
        iov: &mut vq.iov,
        log: None,
    };
    vq.ring.get_desc(mem, &mut buf)
}

/// `vhost_net_busy_poll()`: the handler of `poll_rx ? RX : TX` ran out of work; for up to
/// that queue's busy-loop timeout (about microseconds) it spins, watching the TX ring and
/// the RX socket with the RX ring, while the paired queue takes no kicks. It stops at a
/// reschedule or a signal (then the caller sleeps until the next kick, as vhost-net's
/// worker does) and gives way to other pending work (then returns true: the caller
/// requeues); afterwards the paired queue runs if it has work, else takes kicks again.
/// Counts a hit (work appeared) or a miss on the polling queue.
fn busy_poll(
    rvq: &mut Vq,
    tvq: &mut Vq,
    umem: &Option<mem::MemTable>,
    log_ctx: &Option<sys::EventFdCtx>,
    pending: &AtomicU32,
    poll_rx: bool,
) -> bool {
    let (Some(rmem), Some(tmem)) = (
        guest_mem(umem, (rvq.log_used, rvq.log_base, rvq.log_addr), log_ctx),
        guest_mem(umem, (tvq.log_used, tvq.log_base, tvq.log_addr), log_ctx),
    ) else {
        return false;
    };
    // The paired queue is left alone unless it is running (its rings are then valid).
    let (pvq, pmem, pbit) = if poll_rx {
        (&mut *tvq, &tmem, KICK << TX)
    } else {
        (&mut *rvq, &rmem, KICK << RX)
    };
    let paired = pvq.backend.is_some();
    if paired {
        if let Err(e) = pvq.ring.disable_notify(pmem) {
            pvq.error("disabling notification", e);
        }
    }
    let timeout = if poll_rx {
        rvq.busyloop_timeout
    } else {
        tvq.busyloop_timeout
    };
    let end = sys::busy_clock().saturating_add(u64::from(timeout));
    let (mut intr, mut hit) = (false, false);
    while sys::can_busy_poll(end) {
        if pending.load(Ordering::Acquire) != 0 {
            intr = true;
            break;
        }
        let rx_data = rvq.rx_peek_len() > 0;
        // A ring that cannot be read counts as not empty: its handler reports the error.
        if (rx_data && rvq.ring.has_avail(&rmem).unwrap_or(true))
            || (tvq.backend.is_some() && tvq.ring.has_avail(&tmem).unwrap_or(true))
        {
            hit = true;
            break;
        }
        sys::cpu_relax();
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
    let (pvq, pmem) = if poll_rx {
        (&mut *tvq, &tmem)
    } else {
        (&mut *rvq, &rmem)
    };
    if poll_rx || rx_data {
        // vhost_net_busy_poll_try_queue(): run the paired queue if it has work.
        let work = match pvq.ring.has_avail(pmem) {
            Ok(true) | Err(_) => true,
            Ok(false) => rearm(pvq, pmem),
        };
        if work {
            pending.fetch_or(pbit, Ordering::AcqRel);
        }
    } else if let Err(e) = pvq.ring.enable_notify(pmem) {
        // TX polled and RX has no data: RX takes kicks again.
        pvq.error("enabling notification", e);
    }
    intr
}

/// `handle_rx()`: receives each waiting packet into as many guest buffers as it needs
/// (one without `VIRTIO_NET_F_MRG_RXBUF`), taking packets from a tun/tap or macvtap ring
/// 64 at a time and publishing used buffers (and signalling) once more than 64 are done,
/// as vhost-net. Returns true if the queue gave way to its weight and must run again.
fn handle_rx(dev: &mut Dev, pending: &AtomicU32) -> bool {
    let Dev {
        umem, vqs, log_ctx, ..
    } = dev;
    let [vq, tvq] = vqs;
    let Some(mem) = begin_round(vq, umem, log_ctx) else {
        return false;
    };
    let mergeable = vq.has_feature(VIRTIO_NET_F_MRG_RXBUF);
    // A VERSION_1 header always has num_buffers (5.1.6), mergeable or not.
    let set_num_buffers = mergeable || vq.has_feature(VIRTIO_F_VERSION_1);
    let logging = vq.has_feature(VHOST_F_LOG_ALL);
    // As vhost_net_disable_vq(): the socket wakes us again only once it has been drained
    // (below). After an error, or with the guest out of buffers, only a kick restarts the
    // queue, so packets arriving for a stalled guest cost no work.
    if let Some(poll) = vq.sock_poll.as_mut() {
        poll.stop();
    }
    let (mut total, mut pkts, mut done) = (0usize, 0usize, 0usize);
    let mut requeue = false;
    let mut drained = false;
    let mut busyloop_intr = false;
    while vq.backend.is_some() {
        // Every round counts towards the weight, dropped packets too.
        if total >= WEIGHT_BYTES || pkts >= WEIGHT_PKTS {
            vq.stats.requeues += 1;
            requeue = true;
            break;
        }
        pkts += 1;
        let mut sock_len = vq.rx_peek_len();
        if sock_len == 0 && vq.busyloop_timeout != 0 {
            // vhost_net_rx_peek_head_len(): publish what is done, then watch the socket
            // (and the TX ring) a while.
            flush_used(vq, &mem, done);
            done = 0;
            busyloop_intr = busy_poll(vq, tvq, umem, log_ctx, pending, true);
            sock_len = vq.rx_peek_len();
        }
        if sock_len == 0 {
            // Drained: the socket wakes us again, unless other work cut the poll short
            // (then we come back by requeue, as vhost-net does).
            requeue |= busyloop_intr;
            drained = !busyloop_intr;
            break;
        }
        let sock_len = sock_len + vq.sock_hlen;
        let vhost_len = sock_len + vq.vhost_hlen;
        let quota = if mergeable { crate::ring::MAX_IOV } else { 1 };
        let got = match get_rx_bufs(vq, &mem, vhost_len as u64, done, quota, logging) {
            Ok(g) => g,
            Err(e) => {
                vq.error("RX: bad descriptor chain", e);
                break;
            }
        };
        let Some(RxBufs {
            heads,
            segs,
            log_num,
        }) = got
        else {
            // Not enough buffers: wait for the guest to add some (it kicks).
            if busyloop_intr {
                requeue = true;
                break;
            }
            if rearm(vq, &mem) {
                continue;
            }
            break;
        };
        let (Some(sock), Some(rxq)) = (vq.backend.as_ref(), vq.rxq.as_mut()) else {
            break;
        };
        if heads == 0 {
            // Larger than the buffers may ever be (no MRG_RXBUF): drop it as vhost-net
            // does, with a 1-byte MSG_TRUNC receive into the first buffer just given back
            // (tun ignores an empty receive, leaving the packet queued). get_rx_bufs took
            // at least one chain, so `iov[0]` is one of its non-empty segments.
            let _ = rxq.recvmsg(sock, &vq.iov[..1], 1);
            vq.stats.drops += 1;
            continue;
        }
        // The header's segments, before skipping shortens them: at most 12 bytes, so at
        // most 12 non-empty segments.
        let mut hdr = [Iov::default(); HDR_MAX];
        let nhdr = segs.min(HDR_MAX);
        hdr[..nhdr].copy_from_slice(&vq.iov[..nhdr]);
        let Some(first) = skip_bytes(&mut vq.iov, segs, vq.vhost_hlen as u64) else {
            vq.ring.discard(heads as u16);
            break;
        };
        match rxq.recvmsg(sock, &vq.iov[first..segs], sock_len) {
            Ok(n) if n == sock_len => {}
            _ => {
                // Truncated or failed: discard the packet and give the buffers back.
                vq.ring.discard(heads as u16);
                vq.stats.drops += 1;
                continue;
            }
        }
        if let Err(e) = rx_fixup(vq, &hdr[..nhdr], heads, vhost_len, set_num_buffers, log_num) {
            vq.error("RX: writing the virtio-net header", e);
            break;
        }
        done += heads;
        if done > BATCH {
            flush_used(vq, &mem, done);
            done = 0;
        }
        vq.stats.packets += 1;
        vq.stats.bytes += vhost_len as u64;
        total += vhost_len;
    }
    flush_used(vq, &mem, done);
    if drained {
        if let (Some(poll), Some(sock)) = (vq.sock_poll.as_mut(), vq.backend.as_ref()) {
            let _ = poll.start(sock.file());
        }
    }
    requeue
}

/// Buffers gathered for one packet: chains (`heads`), segments, log entries.
struct RxBufs {
    heads: usize,
    segs: usize,
    log_num: usize,
}

/// `get_rx_bufs()`: takes chains until they hold `len` bytes, at most `quota` of them, and
/// records them in `vq.heads` from index `at` (after the packets not yet published).
/// `Ok(None)` when the guest has not made enough available (all are given back);
/// `heads == 0` when the packet can never fit (vhost-net drops it).
fn get_rx_bufs(
    vq: &mut Vq,
    mem: &UserMem<'_>,
    len: u64,
    at: usize,
    quota: usize,
    logging: bool,
) -> Result<Option<RxBufs>, RingError> {
    let (mut heads, mut segs, mut log_num) = (0usize, 0usize, 0usize);
    let mut datalen = len;
    while datalen > 0 && heads < quota {
        let chain = {
            let (iov, log) = (&mut vq.iov[segs..], &mut vq.log[log_num..]);
            let mut buf = ChainBuf {
                iov,
                log: logging.then_some(log),
            };
            vq.ring.get_desc(mem, &mut buf)
        };
        let chain = match chain {
            Ok(Some(c)) => c,
            Ok(None) => {
                vq.ring.discard(heads as u16);
                return Ok(None);
            }
            Err(e) => {
                vq.ring.discard(heads as u16);
                return Err(e);
            }
        };
        if chain.out_num != 0 || chain.in_num == 0 {
            // As get_rx_bufs(): the bad chain stays consumed, the earlier ones go back.
            vq.ring.discard(heads as u16);
            return Err(RingError::OutAfterIn);
        }
        let size: u64 = vq.iov[segs..segs + chain.in_num]
            .iter()
            .map(|s| s.len)
            .sum();
        let used = size.min(datalen);
        vq.heads[at + heads] = (u32::from(chain.head), used as u32);
        datalen -= used;
        segs += chain.in_num;
        log_num += chain.log_num;
        heads += 1;
    }
    if datalen > 0 {
        // Does not fit even in `quota` buffers: give them back; the caller drops the packet.
        vq.ring.discard(heads as u16);
        return Ok(Some(RxBufs {
            heads: 0,
            segs: 0,
            log_num: 0,
        }));
    }
    Ok(Some(RxBufs {
        heads,
        segs,
        log_num,
    }))
}

/// After a packet landed in the guest: the header vhost provides (zeroed, as vhost-net
/// writes `GSO_NONE`), `num_buffers` (mergeable buffers or VERSION_1), and the dirty log.
fn rx_fixup(
    vq: &Vq,
    hdr: &[Iov],
    heads: usize,
    vhost_len: usize,
    set_num_buffers: bool,
    log_num: usize,
) -> Result<(), RingError> {
    if vq.vhost_hlen > 0 {
        let zero = [0u8; HDR_MAX];
        write_at(hdr, 0, &zero[..vq.vhost_hlen]).map_err(|_| RingError::Fault)?;
    }
    if set_num_buffers {
        // `num_buffers` follows the 10-byte `struct virtio_net_hdr` (5.1.6).
        write_at(hdr, 10, &(heads as u16).to_le_bytes()).map_err(|_| RingError::Fault)?;
    }
    if vq.has_feature(VHOST_F_LOG_ALL) {
        // vhost_log_write(): mark the pages of the bytes actually written.
        let mut left = vhost_len as u64;
        for e in &vq.log[..log_num] {
            if left == 0 {
                break;
            }
            let l = e.len.min(left);
            let _ = mem::log_write(vq.log_base, e.gpa, l);
            left -= l;
        }
    }
    Ok(())
}
