// SPDX-License-Identifier: GPL-2.0

//! The one place for FFI: declarations of the C glue in `helpers.c` and safe owners of the
//! kernel objects it hands out (eventfd contexts, eventfd files, sockets). Every `unsafe`
//! of the module outside the guest-memory accessor is here.

use crate::{net::VhostNet, ring::Iov};
use core::{ffi::c_void, ptr::NonNull};
use kernel::{
    debugfs::Dir,
    error::to_result,
    fs::File,
    prelude::*,
    sync::{aref::ARef, SpinLockIrq},
};

/// Opaque `struct eventfd_ctx`.
#[repr(C)]
pub(crate) struct RawEventfdCtx {
    _p: [u8; 0],
}

/// Opaque `struct vhost_rs_poll`.
#[repr(C)]
pub(crate) struct RawPoll {
    _p: [u8; 0],
}

/// Opaque `struct vhost_rs_worker`.
#[repr(C)]
pub(crate) struct RawWorker {
    _p: [u8; 0],
}

/// Opaque `struct vhost_rs_rxq`.
#[repr(C)]
pub(crate) struct RawRxq {
    _p: [u8; 0],
}

/// Opaque `struct vhost_rs_txbatch`.
#[repr(C)]
pub(crate) struct RawTxBatch {
    _p: [u8; 0],
}

/// Opaque `struct vhost_rs_zc`.
#[repr(C)]
pub(crate) struct RawZc {
    _p: [u8; 0],
}

/// Opaque `struct socket`.
#[repr(C)]
pub(crate) struct RawSocket {
    _p: [u8; 0],
}

extern "C" {
    fn vhost_rs_max_mem_regions() -> u32;
    fn vhost_rs_max_iotlb_entries() -> i32;
    fn vhost_rs_fork_from_owner_default() -> bool;
    fn vhost_rs_eventfd_ctx_fdget(fd: i32, out: *mut *mut RawEventfdCtx) -> i32;
    fn vhost_rs_eventfd_ctx_put(ctx: *mut RawEventfdCtx);
    fn vhost_rs_eventfd_signal(ctx: *mut RawEventfdCtx);
    fn vhost_rs_eventfd_fget(fd: i32, out: *mut *mut core::ffi::c_void) -> i32;
    fn vhost_rs_get_raw_socket(fd: i32, out: *mut *mut RawSocket) -> i32;
    fn vhost_rs_get_tap_socket(fd: i32, out: *mut *mut RawSocket) -> i32;
    fn vhost_rs_sockfd_put(sock: *mut RawSocket);
    fn vhost_rs_sock_poll(sock: *mut RawSocket) -> u32;
    fn vhost_rs_sock_file(sock: *mut RawSocket) -> *mut c_void;
    fn vhost_rs_access_ok(addr: u64, size: u64) -> bool;
    fn vhost_rs_clear_user(addr: u64, len: u64) -> u64;
    fn vhost_rs_set_bit_to_user(nr: i32, addr: u64) -> i32;
    fn vhost_rs_get_user_u16(addr: u64, out: *mut u16) -> i32;
    fn vhost_rs_put_user_u16(addr: u64, val: u16) -> i32;
    fn vhost_rs_cond_resched();
    fn vhost_rs_set_running();
    fn vhost_rs_busy_clock() -> u64;
    fn vhost_rs_can_busy_poll(endtime: u64) -> bool;
    fn vhost_rs_cpu_relax();
    fn vhost_rs_poll_alloc(mask: u32, data: *const c_void, bit: u32) -> *mut RawPoll;
    fn vhost_rs_poll_start(poll: *mut RawPoll, file: *mut c_void) -> i32;
    fn vhost_rs_poll_stop(poll: *mut RawPoll);
    fn vhost_rs_poll_free(poll: *mut RawPoll);
    fn vhost_rs_worker_create(
        fork_owner: bool,
        data: *const c_void,
        out: *mut *mut RawWorker,
    ) -> i32;
    fn vhost_rs_worker_wake(w: *mut RawWorker);
    fn vhost_rs_worker_stop(w: *mut RawWorker);
    fn vhost_rs_sock_sendmsg(sock: *mut RawSocket, iov: *const Iov, nr: usize, len: usize) -> i32;
    fn vhost_rs_sock_recvmsg(sock: *mut RawSocket, iov: *const Iov, nr: usize, len: usize) -> i32;
    fn vhost_rs_sock_peek_len(sock: *mut RawSocket) -> i32;
    fn vhost_rs_sock_zcopy(sock: *mut RawSocket) -> bool;
    fn vhost_rs_rxq_alloc() -> *mut RawRxq;
    fn vhost_rs_rxq_free(q: *mut RawRxq);
    fn vhost_rs_rxq_attach(q: *mut RawRxq, sock: *mut RawSocket);
    fn vhost_rs_rxq_active(q: *mut RawRxq) -> bool;
    fn vhost_rs_rxq_peek_len(q: *mut RawRxq, taken: *mut i32) -> i32;
    fn vhost_rs_rxq_recvmsg(
        q: *mut RawRxq,
        sock: *mut RawSocket,
        iov: *const Iov,
        nr: usize,
        len: usize,
    ) -> i32;
    fn vhost_rs_txbatch_alloc() -> *mut RawTxBatch;
    fn vhost_rs_txbatch_free(b: *mut RawTxBatch);
    fn vhost_rs_sock_can_batch(sock: *mut RawSocket) -> bool;
    fn vhost_rs_txbatch_len(b: *mut RawTxBatch) -> u32;
    fn vhost_rs_txbatch_add(
        b: *mut RawTxBatch,
        sock: *mut RawSocket,
        iov: *const Iov,
        nr: usize,
        len: usize,
        sock_hlen: u32,
    ) -> i32;
    fn vhost_rs_txbatch_flush(b: *mut RawTxBatch, sock: *mut RawSocket) -> i32;
    fn vhost_rs_zc_slots() -> u32;
    fn vhost_rs_zc_alloc(data: *const c_void, bit: u32) -> *mut RawZc;
    fn vhost_rs_zc_state(zc: *mut RawZc, slot: u32) -> u32;
    fn vhost_rs_zc_set_state(zc: *mut RawZc, slot: u32, state: u32);
    fn vhost_rs_zc_sendmsg(
        zc: *mut RawZc,
        slot: u32,
        sock: *mut RawSocket,
        iov: *const Iov,
        nr: usize,
        len: usize,
    ) -> i32;
    fn vhost_rs_zc_inflight(zc: *mut RawZc) -> i32;
    fn vhost_rs_zc_wait(zc: *mut RawZc);
    fn vhost_rs_zc_free(zc: *mut RawZc);
}

/// Module parameters (declared in C so that they appear in sysfs, as vhost's do).
pub(crate) mod params {
    /// `max_mem_regions`: the most regions `VHOST_SET_MEM_TABLE` accepts.
    pub(crate) fn max_mem_regions() -> u32 {
        // SAFETY: reads a module parameter; no preconditions.
        unsafe { super::vhost_rs_max_mem_regions() }
    }
    /// `max_iotlb_entries`: the capacity of a memory table.
    pub(crate) fn max_iotlb_entries() -> i32 {
        // SAFETY: reads a module parameter; no preconditions.
        unsafe { super::vhost_rs_max_iotlb_entries() }
    }
    /// `fork_from_owner_default`: workers are tasks forked from the owner (true) or kthreads.
    pub(crate) fn fork_from_owner_default() -> bool {
        // SAFETY: reads a module parameter; no preconditions.
        unsafe { super::vhost_rs_fork_from_owner_default() }
    }
}

/// A reference to an eventfd context (`eventfd_ctx_fdget`), dropped with `eventfd_ctx_put`.
pub(crate) struct EventFdCtx(NonNull<RawEventfdCtx>);

// SAFETY: eventfd contexts are reference counted and may be signalled and released from any
// thread.
unsafe impl Send for EventFdCtx {}
// SAFETY: `signal` is safe to call concurrently (eventfd takes its own lock).
unsafe impl Sync for EventFdCtx {}

impl EventFdCtx {
    /// Looks up `fd`: `EBADF` if it is no open file, `EINVAL` if it is not an eventfd.
    pub(crate) fn fdget(fd: i32) -> Result<Self> {
        let mut ctx = core::ptr::null_mut();
        // SAFETY: `ctx` is a valid out-pointer; on success it holds a counted reference.
        to_result(unsafe { vhost_rs_eventfd_ctx_fdget(fd, &mut ctx) })?;
        NonNull::new(ctx).map(Self).ok_or(EINVAL)
    }

    /// Adds one to the eventfd's counter, waking its readers.
    pub(crate) fn signal(&self) {
        // SAFETY: `self.0` is a counted reference, valid until drop.
        unsafe { vhost_rs_eventfd_signal(self.0.as_ptr()) }
    }
}

impl Drop for EventFdCtx {
    fn drop(&mut self) {
        // SAFETY: we own one reference, taken in `fdget`.
        unsafe { vhost_rs_eventfd_ctx_put(self.0.as_ptr()) }
    }
}

/// The file of an eventfd (`eventfd_fget`), as vhost keeps the kick fd: a file, so that the
/// worker can poll it. Dropping the `ARef` calls `fput`.
pub(crate) fn eventfd_fget(fd: i32) -> Result<ARef<File>> {
    let mut file = core::ptr::null_mut();
    // SAFETY: `file` is a valid out-pointer; on success it holds a counted file reference.
    to_result(unsafe { vhost_rs_eventfd_fget(fd, &mut file) })?;
    let file = NonNull::new(file.cast::<File>()).ok_or(EBADF)?;
    // SAFETY: `File` is a transparent wrapper of `struct file`, and we own the reference that
    // `eventfd_fget` took; the `ARef` releases it with `fput`.
    Ok(unsafe { ARef::from_raw(file) })
}

/// A backend socket: an AF_PACKET raw socket, or the socket of a tun/tap or macvtap queue.
/// Holds the reference on the socket's file that the lookup took (`sockfd_put` on drop).
pub(crate) struct Socket(NonNull<RawSocket>);

// SAFETY: the socket is kept alive by the file reference we own; socket operations take
// their own locks and may be called from any thread.
unsafe impl Send for Socket {}
// SAFETY: as above; `&Socket` only allows thread-safe socket operations.
unsafe impl Sync for Socket {}

impl Socket {
    /// `get_raw_socket()`: `ENOTSOCK` (no socket), `ESOCKTNOSUPPORT`, `EPFNOSUPPORT`.
    pub(crate) fn raw(fd: i32) -> Result<Self> {
        let mut sock = core::ptr::null_mut();
        // SAFETY: `sock` is a valid out-pointer; on success it holds a file reference.
        to_result(unsafe { vhost_rs_get_raw_socket(fd, &mut sock) })?;
        NonNull::new(sock).map(Self).ok_or(ENOTSOCK)
    }

    /// `get_tap_socket()`: `EBADF`, or the error of `tap_get_socket` (`EINVAL`, `EBADFD`).
    pub(crate) fn tap(fd: i32) -> Result<Self> {
        let mut sock = core::ptr::null_mut();
        // SAFETY: `sock` is a valid out-pointer; on success it holds a file reference.
        to_result(unsafe { vhost_rs_get_tap_socket(fd, &mut sock) })?;
        NonNull::new(sock).map(Self).ok_or(ENOTSOCK)
    }

    /// The socket's current poll mask (`vfs_poll` without registering a waiter).
    pub(crate) fn poll_mask(&self) -> u32 {
        // SAFETY: `self.0` is valid while we hold its file reference.
        unsafe { vhost_rs_sock_poll(self.0.as_ptr()) }
    }

    /// `vhost_sock_zcopy()`: zero-copy TX is on (`experimental_zcopytx`) and the socket
    /// takes pinned pages with a completion (tun/tap and macvtap queues).
    pub(crate) fn zcopy(&self) -> bool {
        // SAFETY: `self.0` is valid while we hold its file reference.
        unsafe { vhost_rs_sock_zcopy(self.0.as_ptr()) }
    }

    /// Whether TX may batch into this socket (`sock_can_batch` in `handle_tx_copy()`): its
    /// sndbuf is unlimited, as tun's is by default.
    pub(crate) fn can_batch(&self) -> bool {
        // SAFETY: `self.0` is valid while we hold its file reference.
        unsafe { vhost_rs_sock_can_batch(self.0.as_ptr()) }
    }

    /// Whether two handles name the same socket.
    pub(crate) fn same_as(&self, other: &Socket) -> bool {
        self.0 == other.0
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: we own the file reference the lookup took.
        unsafe { vhost_rs_sockfd_put(self.0.as_ptr()) }
    }
}

/// `access_ok()` of the calling task's address space.
pub(crate) fn access_ok(addr: u64, size: u64) -> bool {
    // SAFETY: a pure range check; no memory is accessed.
    unsafe { vhost_rs_access_ok(addr, size) }
}

/// `clear_user()`: returns the number of bytes that could not be cleared.
pub(crate) fn clear_user(addr: u64, len: u64) -> u64 {
    // SAFETY: `clear_user` checks the range itself and handles faults.
    unsafe { vhost_rs_clear_user(addr, len) }
}

/// `set_bit_to_user()`: atomically sets bit `nr` of the user byte at `addr`.
pub(crate) fn set_bit_to_user(nr: i32, addr: u64) -> Result {
    // SAFETY: pins the user page itself; a bad address gives an error, not a fault.
    to_result(unsafe { vhost_rs_set_bit_to_user(nr, addr) })
}

/// `get_user()` of a 16-bit value in the CPU's byte order: one load, never torn by a
/// concurrent store (unlike a copy of two bytes).
pub(crate) fn get_user_u16(addr: u64) -> Result<u16> {
    let mut v = 0u16;
    // SAFETY: `v` is a valid out-pointer; `get_user` checks the address and handles faults.
    to_result(unsafe { vhost_rs_get_user_u16(addr, &mut v) })?;
    Ok(v)
}

/// `put_user()` of a 16-bit value in the CPU's byte order: one store.
pub(crate) fn put_user_u16(addr: u64, val: u16) -> Result {
    // SAFETY: `put_user` checks the address and handles faults.
    to_result(unsafe { vhost_rs_put_user_u16(addr, val) })
}

/// Gives way to the scheduler in long loops driven by user input.
pub(crate) fn cond_resched() {
    // SAFETY: called from process context without spinlocks held.
    unsafe { vhost_rs_cond_resched() }
}

/// Marks the running worker as busy (`__set_current_state(TASK_RUNNING)`): the worker loop
/// calls us in `TASK_INTERRUPTIBLE`, and work that may sleep must not run in that state.
/// `busy_clock()`: a clock for busy-poll deadlines, in units of about a microsecond.
pub(crate) fn busy_clock() -> u64 {
    // SAFETY: reads the local clock; no preconditions.
    unsafe { vhost_rs_busy_clock() }
}

/// `vhost_can_busy_poll()`: before `endtime`, and nothing else wants this CPU or task (no
/// reschedule due, no signal pending).
pub(crate) fn can_busy_poll(endtime: u64) -> bool {
    // SAFETY: reads the current task's flags and the clock; no preconditions.
    unsafe { vhost_rs_can_busy_poll(endtime) }
}

/// `cpu_relax()`, for spin loops.
pub(crate) fn cpu_relax() {
    // SAFETY: a pause instruction; no preconditions.
    unsafe { vhost_rs_cpu_relax() }
}

pub(crate) fn set_running() {
    // SAFETY: changes the current task's state only; no preconditions.
    unsafe { vhost_rs_set_running() }
}

/// `EPOLLIN`, `EPOLLOUT`, `EPOLLERR` as poll masks.
pub(crate) const EPOLLIN: u32 = 0x1;
pub(crate) const EPOLLOUT: u32 = 0x4;
pub(crate) const EPOLLERR: u32 = 0x8;

/// A wait-queue entry that calls [`VhostNet::poll_wake`] with `bit` when the file it is
/// started on becomes ready for `mask` (vhost's `struct vhost_poll`).
pub(crate) struct Poll(NonNull<RawPoll>);

// SAFETY: the entry is only touched under the waitqueue's lock (by the kernel) or by its
// owner holding `&mut` (start/stop through the device mutex).
unsafe impl Send for Poll {}
// SAFETY: as above; `&Poll` gives no access.
unsafe impl Sync for Poll {}

impl Poll {
    /// # Safety
    ///
    /// `net` must outlive the returned `Poll`: the poll is owned by `net` itself (stopped at
    /// the latest when `net`'s fields are dropped), so that every wakeup finds it alive.
    pub(crate) unsafe fn new(net: &VhostNet, mask: u32, bit: u32) -> Result<Self> {
        let data = core::ptr::from_ref(net).cast::<c_void>();
        // SAFETY: allocation only; `data` is stored, and dereferenced by the wakeup only
        // while the poll is started, which the caller's contract covers.
        let raw = unsafe { vhost_rs_poll_alloc(mask, data, bit) };
        NonNull::new(raw).map(Self).ok_or(ENOMEM)
    }

    /// Starts polling `file` (a no-op if already started): a file that is already ready
    /// wakes at once, one that polls as an error is `EINVAL` (`vhost_poll_start()`). The
    /// caller stops the poll before `file` may be released.
    pub(crate) fn start(&mut self, file: &File) -> Result {
        // SAFETY: `self.0` is valid until drop; `file` is a live file; the caller stops the
        // poll before dropping its reference to `file`.
        to_result(unsafe { vhost_rs_poll_start(self.0.as_ptr(), file.as_ptr().cast()) })
    }

    /// Stops polling; on return no wakeup of this entry is running or will run.
    pub(crate) fn stop(&mut self) {
        // SAFETY: `self.0` is valid until drop; removal takes the waitqueue's lock.
        unsafe { vhost_rs_poll_stop(self.0.as_ptr()) }
    }
}

impl Drop for Poll {
    fn drop(&mut self) {
        // SAFETY: we own the allocation; free stops the poll first.
        unsafe { vhost_rs_poll_free(self.0.as_ptr()) }
    }
}

/// The device's worker thread: a `vhost_task` of the owner, or a kthread using the owner's
/// mm, calling [`VhostNet::worker_run`] whenever woken.
#[pin_data(PinnedDrop)]
pub(crate) struct Worker {
    /// The running worker; the lock orders `wake` against `stop`, so a wakeup never sees a
    /// freed worker.
    #[pin]
    raw: SpinLockIrq<Option<NonNull<RawWorker>>>,
}

// SAFETY: the raw worker is only used under the spinlock.
unsafe impl Send for Worker {}
// SAFETY: as above.
unsafe impl Sync for Worker {}

impl Worker {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { raw <- kernel::new_spinlock_irq!(None, "vhost_rs::Worker") })
    }

    /// Starts a worker for `net`, forked from the calling task (the owner) when `fork_owner`.
    ///
    /// # Safety
    ///
    /// `net` must outlive the worker: `self` is a field of `net`, and `net` stops it before
    /// any of its other fields is dropped.
    pub(crate) unsafe fn start(&self, net: &VhostNet, fork_owner: bool) -> Result {
        let data = core::ptr::from_ref(net).cast::<c_void>();
        let mut raw = core::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; `data` stays valid per the contract.
        to_result(unsafe { vhost_rs_worker_create(fork_owner, data, &mut raw) })?;
        let raw = NonNull::new(raw).ok_or(ENOMEM)?;
        let old = self.raw.lock().replace(raw);
        if let Some(old) = old {
            // SAFETY: `old` was a running worker we owned; no wakeup can reach it now.
            unsafe { vhost_rs_worker_stop(old.as_ptr()) };
        }
        Ok(())
    }

    /// Wakes the worker, if there is one. Callable in atomic context.
    pub(crate) fn wake(&self) {
        let raw = self.raw.lock();
        if let Some(w) = *raw {
            // SAFETY: the worker is alive while it is in the slot (we hold the lock).
            unsafe { vhost_rs_worker_wake(w.as_ptr()) };
        }
    }

    /// Stops the worker and waits for it to exit. Must not be called by the worker itself,
    /// nor with a lock held that the worker may take.
    pub(crate) fn stop(&self) {
        let raw = self.raw.lock().take();
        if let Some(w) = raw {
            // SAFETY: taken out of the slot, so no wake can use it; we own it.
            unsafe { vhost_rs_worker_stop(w.as_ptr()) };
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Worker {
    fn drop(self: Pin<&mut Self>) {
        self.stop();
    }
}

// The callbacks from helpers.c. Each `data` is the address of the `VhostNet` given to
// `Poll::new` or `Worker::start`, which guarantee (by their contracts) that it is alive.

#[no_mangle]
extern "C" fn vhost_rs_poll_wake(data: *const c_void, bit: u32) {
    // SAFETY: see above: `data` is a live `VhostNet`.
    let net = unsafe { &*data.cast::<VhostNet>() };
    net.poll_wake(bit);
}

#[no_mangle]
extern "C" fn vhost_rs_worker_run(data: *const c_void) -> bool {
    // SAFETY: see above: `data` is a live `VhostNet`.
    let net = unsafe { &*data.cast::<VhostNet>() };
    net.worker_run()
}

#[no_mangle]
extern "C" fn vhost_rs_worker_killed(data: *const c_void) {
    // SAFETY: see above: `data` is a live `VhostNet`.
    let net = unsafe { &*data.cast::<VhostNet>() };
    net.worker_killed();
}

impl Socket {
    /// The socket's file, for polling.
    pub(crate) fn file(&self) -> &File {
        // SAFETY: a socket's file pointer is set at creation and stays valid while we hold
        // the file reference taken by the lookup.
        unsafe { File::from_raw_file(vhost_rs_sock_file(self.0.as_ptr()).cast()) }
    }

    /// Sends the owner memory described by `iov` as one packet, without blocking.
    /// Returns the bytes sent or the socket's errno (`EAGAIN` when full).
    pub(crate) fn sendmsg(&self, iov: &[Iov], len: usize) -> Result<usize> {
        // SAFETY: `iov` is a valid array of `struct iovec`-layout entries (`Iov` is
        // `repr(C)` {u64, u64}, and we are 64-bit); the addresses are user addresses,
        // checked by the copy routines against the current mm, which is the owner's.
        let r = unsafe { vhost_rs_sock_sendmsg(self.0.as_ptr(), iov.as_ptr(), iov.len(), len) };
        usize::try_from(r).map_err(|_| Error::from_errno(r))
    }

    /// The length of the next packet waiting, or 0.
    pub(crate) fn peek_len(&self) -> usize {
        // SAFETY: `self.0` is valid while we hold its file reference.
        let r = unsafe { vhost_rs_sock_peek_len(self.0.as_ptr()) };
        usize::try_from(r).unwrap_or(0)
    }
}

/// State of a zero-copy slot (`VHOST_DMA_*_LEN` in vhost-net).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ZcState {
    /// Free, or released to the guest.
    Clear,
    /// Sent; the network stack holds the guest's pages.
    InProgress,
    /// Completed: the pages were used in place, or copied (`Failed`, a fallback).
    Done,
    Failed,
}

/// The ubufs of a zero-copy TX backend (`struct vhost_net_ubuf_ref` with the queue's
/// `ubuf_info` array): a slot per buffer in flight, a completion per slot that marks it done
/// and wakes the worker, and a count of those in flight that close and backend changes wait
/// on. Dropping it waits for every buffer in flight.
pub(crate) struct Zc(NonNull<RawZc>);

// SAFETY: the slots are written by their completion (atomically, in C) and otherwise only
// through `&mut self`; the count is atomic.
unsafe impl Send for Zc {}
// SAFETY: `&Zc` only reads atomics.
unsafe impl Sync for Zc {}

impl Zc {
    /// Slots in the ring (`UIO_MAXIOV`, `VHOST_RS_ZC_SLOTS` in C; `new` checks they agree).
    pub(crate) const SLOTS: usize = 1024;

    /// # Safety
    ///
    /// `net` must outlive the returned `Zc`: it is owned by `net`'s device, and dropping it
    /// waits for every completion, which is what dereferences `net`.
    pub(crate) unsafe fn new(net: &VhostNet, bit: u32) -> Result<Self> {
        // SAFETY: a constant; no preconditions.
        if unsafe { vhost_rs_zc_slots() } as usize != Self::SLOTS {
            return Err(EINVAL);
        }
        let data = core::ptr::from_ref(net).cast::<c_void>();
        // SAFETY: allocation only; `data` is dereferenced by completions, which the
        // caller's contract covers.
        let raw = unsafe { vhost_rs_zc_alloc(data, bit) };
        NonNull::new(raw).map(Self).ok_or(ENOMEM)
    }

    /// The state of `slot` (< `SLOTS`), with acquire ordering against its completion.
    pub(crate) fn state(&self, slot: usize) -> ZcState {
        // SAFETY: `self.0` is valid until drop; C bounds nothing, so we check.
        match unsafe { vhost_rs_zc_state(self.0.as_ptr(), Self::slot(slot)) } {
            1 => ZcState::InProgress,
            2 => ZcState::Done,
            3 => ZcState::Failed,
            _ => ZcState::Clear,
        }
    }

    /// Sets a slot that is not in flight.
    pub(crate) fn set_state(&mut self, slot: usize, state: ZcState) {
        let v = match state {
            ZcState::Clear => 0,
            ZcState::InProgress => 1,
            ZcState::Done => 2,
            ZcState::Failed => 3,
        };
        // SAFETY: `self.0` is valid until drop; the slot is ours (not in flight).
        unsafe { vhost_rs_zc_set_state(self.0.as_ptr(), Self::slot(slot), v) }
    }

    /// Sends the owner memory `iov` from `sock` as pinned pages with slot `slot`'s ubuf,
    /// without blocking. On an error the slot holds no reference (it is `InProgress` if
    /// the socket never took it, else completed).
    pub(crate) fn sendmsg(
        &mut self,
        slot: usize,
        sock: &Socket,
        iov: &[Iov],
        len: usize,
    ) -> Result<usize> {
        // SAFETY: as `Socket::sendmsg`; the slot is free (the caller's ring guarantees it),
        // and `self` stays alive until its completion (drop waits).
        let r = unsafe {
            vhost_rs_zc_sendmsg(
                self.0.as_ptr(),
                Self::slot(slot),
                sock.0.as_ptr(),
                iov.as_ptr(),
                iov.len(),
                len,
            )
        };
        usize::try_from(r).map_err(|_| Error::from_errno(r))
    }

    /// Buffers in flight.
    pub(crate) fn inflight(&self) -> usize {
        // SAFETY: an atomic read.
        unsafe { vhost_rs_zc_inflight(self.0.as_ptr()).max(0) as usize }
    }

    /// Waits until every buffer in flight has completed (uninterruptibly, as vhost-net).
    pub(crate) fn wait(&mut self) {
        // SAFETY: `self.0` is valid; we hold the base reference, which `wait` drops and
        // takes again.
        unsafe { vhost_rs_zc_wait(self.0.as_ptr()) }
    }

    fn slot(slot: usize) -> u32 {
        (slot % Self::SLOTS) as u32
    }
}

impl Drop for Zc {
    fn drop(&mut self) {
        self.wait();
        // SAFETY: nothing is in flight; `free` waits out completions still unwinding.
        unsafe { vhost_rs_zc_free(self.0.as_ptr()) }
    }
}

/// Up to 64 small TX packets copied into page fragments as `xdp_buff`s, for one sendmsg
/// into a tun/tap or macvtap socket (`nvq->xdp` with `vhost_net_build_xdp()`).
pub(crate) struct TxBatch {
    raw: NonNull<RawTxBatch>,
    /// Bytes of the packets batched (for the queue's counters).
    pub(crate) bytes: u64,
}

// SAFETY: only used through `&mut self`, under the device mutex.
unsafe impl Send for TxBatch {}
// SAFETY: `&TxBatch` gives no access.
unsafe impl Sync for TxBatch {}

impl TxBatch {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: allocation only.
        let raw = unsafe { vhost_rs_txbatch_alloc() };
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
            bytes: 0,
        })
    }

    /// Packets batched and not yet sent.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: `self.raw` is valid until drop.
        unsafe { vhost_rs_txbatch_len(self.raw.as_ptr()) as usize }
    }

    /// Copies the packet in the owner memory `iov` (`len` bytes, the socket's header of
    /// `sock_hlen` first) into the batch, for `sock`. `ENOSPC`: too big, send it alone.
    pub(crate) fn add(
        &mut self,
        sock: &Socket,
        iov: &[Iov],
        len: usize,
        sock_hlen: usize,
    ) -> Result {
        // SAFETY: as `Socket::sendmsg` for `iov`; the batch has room (the caller flushes
        // at 64, and C checks again).
        to_result(unsafe {
            vhost_rs_txbatch_add(
                self.raw.as_ptr(),
                sock.0.as_ptr(),
                iov.as_ptr(),
                iov.len(),
                len,
                sock_hlen as u32,
            )
        })
    }

    /// Sends the batch to `sock` (the socket the packets were added for). On an error the
    /// packets are dropped. The batch is empty afterwards.
    pub(crate) fn flush(&mut self, sock: &Socket) -> Result {
        self.bytes = 0;
        // SAFETY: `self.raw` is valid; `sock` is a live socket.
        to_result(unsafe { vhost_rs_txbatch_flush(self.raw.as_ptr(), sock.0.as_ptr()) })
    }
}

impl Drop for TxBatch {
    fn drop(&mut self) {
        // SAFETY: we own the allocation; it frees any fragment still batched.
        unsafe { vhost_rs_txbatch_free(self.raw.as_ptr()) }
    }
}

kernel::sync::global_lock! {
    // SAFETY: initialised by `DebugfsRoot::new()`, from the module initialiser, before the
    // device is registered, hence before any other use.
    unsafe(uninit) static DEBUGFS_ROOT: Mutex<Option<Dir>> = None;
}

/// Owns `/sys/kernel/debug/vhost-rs` while the module is loaded; dropping it removes the
/// directory once the last device's subdirectory is gone.
pub(crate) struct DebugfsRoot(());

impl DebugfsRoot {
    /// Called once, from the module initialiser.
    pub(crate) fn new() -> Self {
        // SAFETY: the module initialiser runs once per load, and nothing uses the lock
        // before it: the device is registered after this.
        unsafe { DEBUGFS_ROOT.init() };
        *DEBUGFS_ROOT.lock() = Some(Dir::new(c"vhost-rs"));
        Self(())
    }
}

impl Drop for DebugfsRoot {
    fn drop(&mut self) {
        *DEBUGFS_ROOT.lock() = None;
    }
}

/// The module's debugfs directory; `None` only outside the module's lifetime.
pub(crate) fn debugfs_root() -> Option<Dir> {
    DEBUGFS_ROOT.lock().clone()
}

/// RX packets taken from a tun/tap or macvtap socket's ring 64 at a time (`struct
/// vhost_net_buf`). Attached to the RX backend; whatever is still batched goes back to the
/// socket's ring when it is detached or dropped.
pub(crate) struct RxQueue(NonNull<RawRxq>);

// SAFETY: only used through `&mut self`, under the device mutex.
unsafe impl Send for RxQueue {}
// SAFETY: `&RxQueue` gives no access.
unsafe impl Sync for RxQueue {}

impl RxQueue {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: allocation only.
        NonNull::new(unsafe { vhost_rs_rxq_alloc() })
            .map(Self)
            .ok_or(ENOMEM)
    }

    /// Batches from `sock`'s ring from now on, if it has one (`None`: from nothing). What
    /// was batched from the previous socket goes back to its ring first, so the caller
    /// calls this while that socket is still held.
    pub(crate) fn attach(&mut self, sock: Option<&Socket>) {
        let raw = sock.map_or(core::ptr::null_mut(), |s| s.0.as_ptr());
        // SAFETY: `self.0` is valid; `raw` is null or a live socket, the one the queue
        // batches from until the next attach.
        unsafe { vhost_rs_rxq_attach(self.0.as_ptr(), raw) }
    }

    /// The length of the next packet of `sock` (the socket attached), or 0; and how many
    /// packets a refill of the batch took from the socket's ring just now (or 0).
    pub(crate) fn peek_len(&mut self, sock: &Socket) -> (usize, usize) {
        let mut taken = 0i32;
        // SAFETY: `self.0` is valid; an attached ring belongs to a socket we hold; `taken`
        // is a local the call writes.
        let r = unsafe {
            if vhost_rs_rxq_active(self.0.as_ptr()) {
                vhost_rs_rxq_peek_len(self.0.as_ptr(), &mut taken)
            } else {
                vhost_rs_sock_peek_len(sock.0.as_ptr())
            }
        };
        (
            usize::try_from(r).unwrap_or(0),
            usize::try_from(taken).unwrap_or(0),
        )
    }

    /// Receives the packet `peek_len` announced into the owner memory `iov`, as
    /// `Socket::recvmsg` (which it is without a ring).
    pub(crate) fn recvmsg(&mut self, sock: &Socket, iov: &[Iov], len: usize) -> Result<usize> {
        // SAFETY: as `Socket::recvmsg`; the batch holds the packet `peek_len` saw.
        let r = unsafe {
            if vhost_rs_rxq_active(self.0.as_ptr()) {
                vhost_rs_rxq_recvmsg(
                    self.0.as_ptr(),
                    sock.0.as_ptr(),
                    iov.as_ptr(),
                    iov.len(),
                    len,
                )
            } else {
                vhost_rs_sock_recvmsg(sock.0.as_ptr(), iov.as_ptr(), iov.len(), len)
            }
        };
        usize::try_from(r).map_err(|_| Error::from_errno(r))
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        // SAFETY: we own the allocation; the owner detached it before its socket went.
        unsafe { vhost_rs_rxq_free(self.0.as_ptr()) }
    }
}
