// SPDX-License-Identifier: GPL-2.0

//! The vhost-net device, as `drivers/vhost/net.c`: what it adds to the generic vhost device
//! (dev.rs) — feature negotiation, the socket backend of each queue (AF_PACKET raw sockets,
//! tun/tap and macvtap queues) with its poll, batches and zero-copy state, and the work the
//! worker runs: TX (net/tx.rs), RX (net/rx.rs) and busy polling (net/busy.rs).

mod busy;
mod rx;
mod tx;

use crate::{
    dev::{
        kick_bit, Dev, DevQueue, DevState, GuestView, IotlbMsgs, MsgRead, Slot, Vq, Workers,
        KICK_BITS,
    },
    guest::UserMem,
    ring::{self, Iov},
    stats::{self, DebugDir, QueueStats, Snapshot, VqStats},
    sys::{
        self, params, Poll, PollWake, RxQueue, Socket, TxBatch, WorkerOps, EPOLLERR, EPOLLIN,
        EPOLLOUT,
    },
    uapi::*,
    user,
    zerocopy::ZeroCopy,
};
use core::ffi::c_void;
use kernel::{
    bindings, debugfs,
    fs::File,
    iov::{IovIterDest, IovIterSource},
    new_mutex,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    str::CString,
    sync::{aref::ARef, poll::PollTable, Arc, Mutex, MutexGuard},
    types::ForeignOwnable,
};

/// Feature bits we offer, by word of the 128-bit feature array: the set vhost_net.ko 7.3
/// offers.
///
/// ACCESS_PLATFORM: ring and buffer addresses are I/O virtual addresses, translated through
/// the device IOTLB the VMM fills by messages on the device file (dev.rs, guest.rs).
///
/// The UDP tunnel GSO bits (word 1, only through `*_FEATURES_ARRAY`) ask of vhost only the
/// 24-byte header (`struct virtio_net_hdr_v1_hash_tunnel`); the tunnel offload itself is
/// tun's, on the header as the guest wrote it.
///
/// IN_ORDER as 7.3's vhost: chains are taken in descriptor-table order
/// (`next_avail_head`); TX gives back each batch as one used element naming its last chain
/// (not on the zero-copy path), RX one element per packet naming its last buffer.
///
/// RING_PACKED, which vhost_net.ko lacks: the queue's ring is packed (ring/packed.rs), driven
/// through the same chains and used elements as a split one (dev.rs keeps the descriptor
/// count of each chain, which a packed ring's used side needs); `VHOST_{GET,SET}_VRING_BASE`
/// carry both positions with their wrap counters, as vhost.c encodes them.
///
/// RING_RESET asks nothing more of the device than vhost.c already does: the driver resets
/// one queue as QEMU's `vhost_net_virtqueue_reset()` does, by detaching that queue's backend
/// (`NET_SET_BACKEND` -1), setting the ring up again (NUM, BASE, ADDR, KICK, CALL are refused
/// with EBUSY only while a backend is attached) and attaching it again, while the other
/// queue runs on; vhost_net.ko 7.3 offers it on the same terms.
const NET_FEATURES: Features = [
    1 << VIRTIO_F_NOTIFY_ON_EMPTY
        | 1 << VIRTIO_RING_F_INDIRECT_DESC
        | 1 << VIRTIO_RING_F_EVENT_IDX
        | 1 << VHOST_F_LOG_ALL
        | 1 << VIRTIO_F_ANY_LAYOUT // the same bit as VHOST_NET_F_VIRTIO_NET_HDR
        | 1 << VIRTIO_F_VERSION_1
        | 1 << VIRTIO_F_ACCESS_PLATFORM
        | 1 << VIRTIO_NET_F_MRG_RXBUF
        | 1 << VIRTIO_F_IN_ORDER
        | 1 << VIRTIO_F_RING_PACKED
        | 1 << VIRTIO_F_RING_RESET,
    1 << (VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64) | 1 << (VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64),
];

/// Backend features we offer, as vhost_net.ko: IOTLB messages as `struct vhost_msg_v2`
/// (`IOTLB_BATCH` and `IOTLB_ASID` are vhost-vdpa's).
const NET_BACKEND_FEATURES: u64 = 1 << VHOST_BACKEND_F_IOTLB_MSG_V2;

/// vhost-net has two virtqueues: RX (0) and TX (1) (`VHOST_NET_VQ_RX`, `VHOST_NET_VQ_TX`).
const NVQS: usize = 2;
const RX: usize = 0;
const TX: usize = 1;
const _: () = assert!(NVQS <= KICK_BITS);

/// Pending-work bits of the net device, above the generic kick bits: the backend socket of
/// queue `q` became ready, and (TX only) zero-copy buffers completed.
const fn sock_bit(q: usize) -> u32 {
    1 << (KICK_BITS + q)
}
const ZCOPY_BIT: u32 = 1 << (KICK_BITS + NVQS);
/// The work of each queue, which its worker runs.
const RX_WORK: u32 = kick_bit(RX) | sock_bit(RX);
const TX_WORK: u32 = kick_bit(TX) | sock_bit(TX) | ZCOPY_BIT;

/// A queue gives way after this many bytes or packets in one round and is requeued
/// (`VHOST_NET_WEIGHT`, `VHOST_NET_PKT_WEIGHT`: the limits adopted for CVE-2019-3900).
const WEIGHT_BYTES: usize = 0x80000;
const WEIGHT_PKTS: usize = 256;
/// Used elements are published and signalled at least this often (`VHOST_NET_BATCH`).
const BATCH: usize = 64;
/// The largest virtio-net header (`struct virtio_net_hdr_v1_hash_tunnel`).
const HDR_MAX: usize = 24;
/// Used elements a queue can hold: RX gathers up to 64 packets' heads and then a packet of
/// up to `MAX_IOV` more, as vhost-net's `UIO_MAXIOV + VHOST_NET_BATCH`.
const HEADS: usize = ring::MAX_IOV + BATCH + 1;

/// Largest feature-array tail we scan between two scheduling points.
const RESCHED_EVERY: u64 = 4096;

/// One queue of the net device (`struct vhost_net_virtqueue`): the generic queue and its
/// socket backend with what goes with it.
pub(crate) struct NetVq {
    /// Declared first: its kick poll stops before anything else goes.
    vq: Vq,
    /// Polls the backend socket; declared before the socket, so that it is stopped before
    /// that is released.
    sock_poll: Option<Poll>,
    /// RX packets batched from the backend's ring (RX only, with an owner); declared before
    /// `backend`: they go back to its ring when it is dropped.
    rxq: Option<RxQueue>,
    /// Zero-copy TX state of the backend (TX with `experimental_zcopytx` on a tun/tap or
    /// macvtap queue); declared before `backend`: it waits for the buffers in flight.
    zcopy: Option<ZeroCopy>,
    /// The backend socket (`private_data` in C); `Some` makes the queue active.
    backend: Option<Socket>,
    /// Virtio-net header lengths added by vhost and expected from the socket.
    vhost_hlen: usize,
    sock_hlen: usize,
    /// Small TX packets copied and waiting for one sendmsg (TX only, with an owner).
    txbatch: Option<TxBatch>,
    /// Counters since the last reset (stats.rs).
    stats: VqStats,
}

impl DevQueue for NetVq {
    fn new() -> Self {
        Self {
            vq: Vq::new(),
            sock_poll: None,
            rxq: None,
            zcopy: None,
            backend: None,
            vhost_hlen: 0,
            sock_hlen: 0,
            txbatch: None,
            stats: VqStats::default(),
        }
    }

    fn vq(&self) -> &Vq {
        &self.vq
    }

    fn vq_mut(&mut self) -> &mut Vq {
        &mut self.vq
    }

    fn active(&self) -> bool {
        self.backend.is_some()
    }
}

/// A backend taken out of its queue. Dropping it first waits for its zero-copy buffers in
/// flight, then releases the socket (the order of `vhost_net_flush()` and `sockfd_put()`).
struct Backend {
    zcopy: Option<ZeroCopy>,
    /// Held only to be released last.
    _sock: Option<Socket>,
}

impl NetVq {
    /// The net side of `vhost_net_set_owner()` for queue `q`: its batch and socket poll.
    ///
    /// # Safety
    ///
    /// `net` outlives the poll: it is kept in `net`'s device.
    unsafe fn set_owner(&mut self, net: &VhostNet, q: usize) -> Result {
        if q == TX {
            self.txbatch = Some(TxBatch::new()?);
        } else {
            self.rxq = Some(RxQueue::new());
        }
        let mask = if q == TX { EPOLLOUT } else { EPOLLIN };
        // SAFETY: the caller's contract.
        self.sock_poll = Some(unsafe { Poll::new(net, mask, sock_bit(q)) }?);
        Ok(())
    }

    /// Undoes `set_owner`.
    fn drop_owner(&mut self) {
        self.sock_poll = None;
        self.txbatch = None;
        if let Some(q) = self.rxq.as_mut() {
            q.attach(None);
        }
        self.rxq = None;
    }

    /// Takes the backend out, to be dropped after unlocking (its socket poll stopped).
    fn take_backend(&mut self) -> Backend {
        self.sock_poll = None;
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
    fn rx_peek_len(&mut self) -> usize {
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

    /// `vhost_net_enable_vq()`: polls the backend socket; one that polls as an error (a tun
    /// file with no device attached) is refused with `EINVAL`, as `vhost_poll_start()` does.
    fn enable(&mut self) -> Result {
        let (Some(sock), Some(poll)) = (self.backend.as_ref(), self.sock_poll.as_mut()) else {
            return Ok(());
        };
        if sock.poll_mask() & EPOLLERR != 0 {
            return Err(EINVAL);
        }
        poll.start(sock.file())
    }

    /// `vhost_net_disable_vq()`: the socket no longer wakes the worker.
    fn disable(&mut self) {
        if let Some(poll) = self.sock_poll.as_mut() {
            poll.stop();
        }
    }

    /// What fdinfo and debugfs show of this queue.
    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            stats: &self.stats,
            counters: self.vq.counters(),
            busyloop_timeout: self.vq.busyloop_timeout(),
            zcopy_inflight: self.zcopy.as_ref().map_or(0, |z| z.inflight()),
            packed: self.vq.packed(),
        }
    }
}

/// One run of a handler (`handle_tx()` or `handle_rx()`) on a queue: the memory it works
/// in, and the work done, which the weight bounds (`vhost_exceeds_weight()`).
struct Round<'a> {
    mem: UserMem<'a>,
    total: usize,
    pkts: usize,
}

impl<'a> Round<'a> {
    /// Starts a round on `nvq`: guest kicks off while we process (`vhost_disable_notify()`)
    /// and the socket no longer wakes us (`vhost_net_disable_vq()`). `None` without a
    /// backend or a memory table.
    fn begin(nvq: &mut NetVq, view: GuestView<'a>) -> Option<Self> {
        nvq.backend.as_ref()?;
        if !nvq.vq.prefetch(view) {
            return None;
        }
        let mem = nvq.vq.mem(view)?;
        nvq.vq.disable_notify(&mem);
        nvq.disable();
        Some(Self {
            mem,
            total: 0,
            pkts: 0,
        })
    }

    /// Counts one more pass of the handler's loop (dropped packets count too, as in the C
    /// do-while loops); true when the queue has had its share and must give way.
    fn exceeds_weight(&mut self, stats: &mut VqStats) -> bool {
        if self.total >= WEIGHT_BYTES || self.pkts >= WEIGHT_PKTS {
            stats.requeues += 1;
            return true;
        }
        self.pkts += 1;
        false
    }
}

/// The backends and kick files of a stopped device, to be dropped after unlocking (and after
/// the worker is gone): backends first, as `vhost_net_release()`.
type Stopped = ([Backend; NVQS], [Option<ARef<File>>; NVQS]);

/// One open `/dev/vhost-rs-net`.
///
/// Locks, in the order taken: `dev`, then `rx`, then `tx` (vhost.c's `dev->mutex`, then
/// each `vq->mutex`). A worker's round takes only its queue's lock, and busy polling only
/// tries the other's, so RX and TX run at once on workers of their own.
#[pin_data(PinnedDrop)]
pub(crate) struct VhostNet {
    /// The device state; ioctls take it first.
    #[pin]
    dev: Mutex<DevState>,
    /// The queues, declared before the workers: their polls wake them.
    #[pin]
    rx: Mutex<Slot<NetVq>>,
    #[pin]
    tx: Mutex<Slot<NetVq>>,
    /// The workers, the work waiting for each, and the worker of each queue.
    #[pin]
    workers: Workers<NVQS>,
    /// The queues' counters as debugfs shows them (stats.rs), in files of `debugfs`.
    #[pin]
    rx_stats: debugfs::File<QueueStats>,
    #[pin]
    tx_stats: debugfs::File<QueueStats>,
    /// Their directory, relative to the debugfs mount.
    debugfs: CString,
    /// The device IOTLB's messages, read and polled without `dev`'s lock.
    msgs: Arc<IotlbMsgs>,
}

/// The device locked whole, for an ioctl.
struct Locked<'a> {
    st: MutexGuard<'a, DevState>,
    rx: MutexGuard<'a, Slot<NetVq>>,
    tx: MutexGuard<'a, Slot<NetVq>>,
}

impl Locked<'_> {
    fn dev(&mut self) -> Dev<'_, NetVq, NVQS> {
        Dev::new(&mut self.st, [&mut self.rx, &mut self.tx])
    }
}

#[pinned_drop]
impl PinnedDrop for VhostNet {
    fn drop(self: Pin<&mut Self>) {
        // The workers dereference `self`: they must be gone before any field is.
        self.workers.stop_all();
    }
}

impl PollWake for VhostNet {
    /// A kick or a ready socket, in atomic context: note the work, wake the queue's worker.
    fn poll_wake(&self, bit: u32) {
        for q in [RX, TX] {
            if bit == kick_bit(q) {
                self.stats(q).kick();
            }
        }
        self.workers.queue(bit);
    }
}

impl WorkerOps for VhostNet {
    /// One round of worker `id`: handles what the wakeups noted for it, each queue under
    /// its own lock. Returns whether there was any work; the worker sleeps when there was
    /// none.
    fn worker_run(&self, id: usize) -> bool {
        let pending = self.workers.work(id).take();
        if pending == 0 {
            return false;
        }
        sys::set_running();
        let mut again = 0;
        if pending & TX_WORK != 0 {
            let mut tx = self.tx.lock();
            if tx::handle_tx(&mut tx, &self.rx, &self.msgs, &self.workers, id) {
                again |= kick_bit(TX);
            }
            self.stats(TX).publish(&tx.q().snapshot());
        }
        if pending & RX_WORK != 0 {
            let mut rx = self.rx.lock();
            if rx::handle_rx(&mut rx, &self.tx, &self.msgs, &self.workers, id) {
                again |= kick_bit(RX);
            }
            self.stats(RX).publish(&rx.q().snapshot());
        }
        if again != 0 {
            // Requeued for fairness: run again after giving way to the scheduler.
            self.workers.requeue(again, id);
        }
        sys::cond_resched();
        true
    }

    /// The owner was killed and took the worker with it: nothing will run its queues any
    /// more; the device stays usable for ioctls until it is closed or reset.
    fn worker_killed(&self, id: usize) {
        self.workers.work(id).killed();
    }
}

impl VhostNet {
    /// A device whose counters go into `dir` (its files keep the directory alive).
    pub(crate) fn new(dir: DebugDir, msgs: Arc<IotlbMsgs>) -> impl PinInit<Self, Error> {
        let DebugDir { name, dir } = dir;
        let dev = DevState::new(msgs.clone());
        try_pin_init!(Self {
            rx_stats <- stats::queue_file(&dir, c"rx"),
            tx_stats <- stats::queue_file(&dir, c"tx"),
            debugfs: name,
            dev <- new_mutex!(dev, "VhostNet::dev"),
            rx <- new_mutex!(Slot::new(), "VhostNet::rx"),
            tx <- new_mutex!(Slot::new(), "VhostNet::tx"),
            workers <- Workers::new([RX_WORK, TX_WORK]),
            msgs,
        }? Error)
    }

    /// The device, locked whole.
    fn lock_all(&self) -> Locked<'_> {
        let st = self.dev.lock();
        let rx = self.rx.lock();
        let tx = self.tx.lock();
        Locked { st, rx, tx }
    }

    /// `vhost_chr_read_iter()`: the next IOTLB miss as a 72-byte message, waiting for one
    /// unless `nonblock`; 0 for a buffer too short for a message.
    pub(crate) fn read_msg(&self, out: &mut IovIterDest<'_>, nonblock: bool) -> Result<usize> {
        if out.len() < VHOST_MSG_SIZE {
            return Ok(0);
        }
        match self.msgs.read(nonblock) {
            MsgRead::Err(e) => Err(e),
            MsgRead::Msg(msg, vq) => {
                let n = out.copy_to_iter(&msg);
                if n != msg.len() {
                    // Not delivered: dropped, as vhost.c frees the node.
                    self.msgs.drop_read(vq);
                }
                Ok(n)
            }
        }
    }

    /// `vhost_chr_write_iter()`: one `struct vhost_msg` or `vhost_msg_v2` carrying an
    /// IOTLB update or invalidation. A message vhost cannot parse is `EINVAL`; one it
    /// cannot carry out (no IOTLB, a bad range or type) `EFAULT`; else the message's size.
    pub(crate) fn write_msg(&self, from: &mut IovIterSource<'_>) -> Result<usize> {
        let mut ty = [0u8; 4];
        if from.copy_from_iter(&mut ty) != ty.len() {
            return Err(EINVAL);
        }
        let ty = u32::from_ne_bytes(ty);
        if ty != VHOST_IOTLB_MSG && ty != VHOST_IOTLB_MSG_V2 {
            return Err(EINVAL);
        }
        // The hole after a v1 `type`, or a v2 `asid` (meaningful only with
        // VHOST_BACKEND_F_IOTLB_ASID, which vhost-net does not offer).
        from.advance(IOTLB_MSG_OFFSET - ty.to_ne_bytes().len());
        let mut raw = [0u8; IOTLB_MSG_SIZE];
        if from.copy_from_iter(&mut raw) != raw.len() {
            return Err(EINVAL);
        }
        let msg = IotlbMsg::from_bytes(&raw);
        if msg.kind == VHOST_IOTLB_UPDATE && msg.size == 0 {
            return Err(EINVAL);
        }
        let kicks = self
            .lock_all()
            .dev()
            .process_iotlb_msg(&msg)
            .map_err(|_| EFAULT)?;
        if kicks != 0 {
            // The queues that waited for this translation run again.
            self.workers.queue(kicks);
        }
        Ok(VHOST_MSG_SIZE)
    }

    /// `vhost_chr_poll()`
    pub(crate) fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        self.msgs.poll(file, table)
    }

    /// A queue's counters as debugfs shows them.
    fn stats(&self, q: usize) -> &QueueStats {
        if q == RX {
            &self.rx_stats
        } else {
            &self.tx_stats
        }
    }

    /// Copies the queues' counters for debugfs.
    fn publish_stats(&self) {
        for (q, slot) in [(RX, &self.rx), (TX, &self.tx)] {
            self.stats(q).publish(&slot.lock().q().snapshot());
        }
    }

    /// Takes every backend out and stops every poll (`vhost_net_stop()` and the polls of
    /// `vhost_dev_stop()`); what comes back is dropped after unlocking.
    fn stop(dev: &mut Dev<'_, NetVq, NVQS>) -> Stopped {
        let backends: [Backend; NVQS] = core::array::from_fn(|q| dev.q_mut(q).take_backend());
        let kicks = dev.stop_kicks();
        (backends, kicks)
    }

    /// `vhost_net_release()`: stops the workers and drops every file reference, before the
    /// memory goes (`PinnedDrop` would stop the workers too; here it happens while the
    /// owner's file table is still intact).
    pub(crate) fn release(&self) {
        let stopped = Self::stop(&mut self.lock_all().dev());
        self.workers.stop_all();
        drop(stopped);
    }

    /// The device's counters, per queue with the worker it runs on, for
    /// `/proc/PID/fdinfo/FD` (vhost-net has none); the workers' threads; where debugfs
    /// shows the counters.
    pub(crate) fn show_fdinfo(&self, m: &SeqFile) {
        for (q, slot) in [(RX, &self.rx), (TX, &self.tx)] {
            let name = if q == RX { "rx" } else { "tx" };
            self.stats(q)
                .show_line(&slot.lock().q().snapshot(), m, fmt!("vq{} {}", q, name));
            seq_print!(m, " worker {}\n", self.workers.worker_of(q));
        }
        for (id, tid) in self.workers.running() {
            seq_print!(m, "worker {}: tid {}\n", id, tid);
        }
        seq_print!(m, "debugfs: {}\n", self.debugfs.to_str().unwrap_or("?"));
    }

    /// `vhost_net_set_owner()`: the owner, the queues' polls and arrays, the workers: one,
    /// as vhost-net, or with `split_workers` one each for RX (worker 0) and TX (1).
    fn set_owner(&self) -> Result {
        let mut l = self.lock_all();
        let mut dev = l.dev();
        // SAFETY: the polls are stored in the queues, fields of `self`, so `self` outlives
        // them.
        unsafe { dev.set_owner(self, HEADS) }?;
        let fork_owner = dev.state().fork_owner();
        let r = (|| -> Result {
            for (q, nvq) in dev.vqs_mut().enumerate() {
                // SAFETY: as above.
                unsafe { nvq.set_owner(self, q) }?;
            }
            // SAFETY: the workers are part of `self.workers`, stopped in `PinnedDrop`
            // before any other field of `self` is dropped.
            unsafe { self.workers.start(self, 0, fork_owner) }?;
            if params::split_workers() {
                // SAFETY: as above.
                unsafe { self.workers.start(self, 1, fork_owner) }?;
                self.workers.set_worker(TX, 1);
            }
            Ok(())
        })();
        if r.is_err() {
            // Undo what this call set up; state set before the owner (features) stays.
            for nvq in dev.vqs_mut() {
                nvq.drop_owner();
            }
            dev.drop_owner();
            drop(l);
            // No kick or socket can wake them: the polls are gone.
            self.workers.stop_all();
        }
        r
    }

    /// `vhost_net_ioctl()`
    pub(crate) fn ioctl(&self, cmd: u32, arg: u64) -> Result<isize> {
        let r = self.do_ioctl(cmd, arg);
        // Resets, backend changes and timeouts show in debugfs at once.
        self.publish_stats();
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
                let mut l = self.lock_all();
                for nvq in l.dev().vqs_mut() {
                    nvq.vq.set_backend_features(features);
                }
            }
            VHOST_RESET_OWNER => self.reset_owner()?,
            VHOST_SET_OWNER => self.set_owner()?,
            _ => {
                // vhost_worker_ioctl() first, under the device lock alone, as vhost-scsi
                // and vhost-vsock call it (vhost-net does not: ENOTTY there).
                let r = self.dev.lock().worker_ioctl(&self.workers, self, cmd, arg);
                if let Some(r) = r {
                    r?;
                    return Ok(0);
                }
                let mut l = self.lock_all();
                let mut dev = l.dev();
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
        // The virtio-net header is 12 bytes with MRG_RXBUF or VERSION_1, else 10 (5.1.6);
        // 24 with either UDP tunnel GSO bit (`virtio_net_hdr_v1_hash_tunnel`), as 7.3's.
        let hdr_len = if has_feature(&features, VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO)
            || has_feature(&features, VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO)
        {
            24
        } else if has_feature(&features, VIRTIO_NET_F_MRG_RXBUF)
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
        let mut l = self.lock_all();
        let mut dev = l.dev();
        if has_feature(&features, VHOST_F_LOG_ALL) && !dev.log_access_ok() {
            return Err(EFAULT);
        }
        if has_feature(&features, VIRTIO_F_ACCESS_PLATFORM) {
            dev.init_device_iotlb().map_err(|_| EFAULT)?;
        } else {
            dev.clear_device_iotlb();
        }
        for nvq in dev.vqs_mut() {
            nvq.vq.set_features(features);
            nvq.vhost_hlen = vhost_hlen;
            nvq.sock_hlen = sock_hlen;
        }
        Ok(())
    }

    /// `vhost_net_reset_owner()`: back to the state of a fresh open, with an empty memory
    /// table; the backends' sockets are released after the lock is dropped.
    fn reset_owner(&self) -> Result {
        let stopped = {
            let mut l = self.lock_all();
            let mut dev = l.dev();
            dev.check_owner()?;
            let stopped = Self::stop(&mut dev);
            dev.reset_owner();
            stopped
        };
        // Outside the locks: a worker may be waiting for one to finish its round.
        self.workers.stop_all();
        drop(stopped);
        Ok(())
    }

    /// `vhost_net_set_backend()`: attaches `fd`'s socket to queue `index`, or detaches with -1.
    /// A TX backend replaced with zero-copy buffers in flight is kept until the network
    /// stack has let go of them all, then they are returned to the guest; only then does
    /// the call return (`vhost_net_ubuf_put_wait_and_free()`).
    fn set_backend(&self, index: u32, fd: i32) -> Result {
        let mut old = {
            let mut l = self.lock_all();
            let mut dev = l.dev();
            dev.check_owner()?;
            let index = index as usize;
            if index >= NVQS {
                return Err(ENOBUFS);
            }
            // Verify that the ring has been set up correctly.
            if !dev.vq_access_ok(index) {
                return Err(EFAULT);
            }
            let (view, nvq) = dev.parts(index);
            let sock = get_socket(fd)?;
            let same = match (&sock, &nvq.backend) {
                (Some(a), Some(b)) => a.same_as(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Ok(());
            }
            let zcopy = match &sock {
                Some(s) if index == TX && s.zcopy() => {
                    // SAFETY: the state is kept in `self.tx`, so `self` outlives it.
                    Some(unsafe { ZeroCopy::new(self, ZCOPY_BIT) }?)
                }
                _ => None,
            };
            // Stop polling the old socket before it may be released (vhost_net_disable_vq).
            nvq.disable();
            let old_sock = core::mem::replace(&mut nvq.backend, sock);
            // RX batches from the new socket's ring; what it took from the old one goes back.
            if let Some(q) = nvq.rxq.as_mut() {
                q.attach(nvq.backend.as_ref());
            }
            let started = if nvq.backend.is_some() {
                nvq.vq.init_access(view).and_then(|()| nvq.enable())
            } else {
                Ok(())
            };
            if let Err(e) = started {
                // Put the old backend back; the new socket is released on return.
                let _new = core::mem::replace(&mut nvq.backend, old_sock);
                if let Some(q) = nvq.rxq.as_mut() {
                    q.attach(nvq.backend.as_ref());
                }
                let _ = nvq.enable();
                return Err(e);
            }
            // No explicit wake: starting the socket poll wakes the worker exactly when
            // vhost_poll_start() would (TX at once, the socket being writable; RX only
            // with a packet waiting), so the rings see the same writes as with vhost-net.
            Backend {
                zcopy: core::mem::replace(&mut nvq.zcopy, zcopy),
                _sock: old_sock,
            }
        };
        if let Some(zc) = old.zcopy.as_mut() {
            // Outside the lock: completions do not need it, the worker may.
            zc.wait();
            let mut tx = self.tx.lock();
            let (view, nvq) = tx.parts(&self.msgs);
            if let Some(mem) = nvq.vq.mem(view) {
                loop {
                    let (heads, ndescs) = nvq.vq.used_mut(0);
                    let n = zc.collect(heads, ndescs, &mut nvq.stats);
                    if n == 0 {
                        break;
                    }
                    nvq.vq.add_used_and_signal_n(&mem, n);
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

/// `vhost_chr_poll()`, which helpers.c adds to the file's operations: readable while an
/// IOTLB miss waits to be read.
///
/// # Safety
///
/// `data` is the private data of `file`, a file open on our device (an `Arc<VhostNet>` made
/// foreign by the miscdevice's open), and `table` a poll table valid for the call.
#[no_mangle]
unsafe extern "C" fn vhost_rs_file_poll(
    data: *mut c_void,
    file: *mut bindings::file,
    table: *mut bindings::poll_table,
) -> u32 {
    // SAFETY: the caller's contract: the file holds the Arc for as long as it is open.
    let dev = unsafe { <Arc<VhostNet> as ForeignOwnable>::borrow(data) };
    // SAFETY: the caller's contract.
    let file = unsafe { File::from_raw_file(file) };
    // SAFETY: the caller's contract.
    let table = unsafe { PollTable::from_raw(table) };
    dev.poll(file, &table)
}
