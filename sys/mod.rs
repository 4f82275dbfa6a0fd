// SPDX-License-Identifier: GPL-2.0

//! The one place for FFI: declarations of the C glue in `helpers.c` and safe owners of the
//! kernel objects it hands out (eventfd contexts, eventfd files, sockets, poll entries, the
//! worker). It knows no device type: the C callbacks reach Rust through the traits
//! [`PollWake`] and [`WorkerOps`], one `unsafe extern "C"` trampoline per kind, generic over
//! the device that implements them (as binder's trampolines are).

use crate::ring::Iov;
use core::{ffi::c_void, ptr::NonNull};
use kernel::{
    bindings,
    debugfs::Dir,
    error::to_result,
    ffi::{c_char, c_int},
    fs::File,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Full, Relaxed, Release},
        rcu, CondVar, SpinLockIrq,
    },
};

/// Opaque `struct vhost_rs_poll`.
#[repr(C)]
pub(crate) struct RawPoll {
    _p: [u8; 0],
}

/// Opaque `struct vhost_task`.
#[repr(C)]
pub(crate) struct RawVhostTask {
    _p: [u8; 0],
}

/// Opaque `struct ptr_ring`.
#[repr(C)]
pub(crate) struct RawPtrRing {
    _p: [u8; 0],
}

/// Opaque `struct vhost_rs_txbatch`.
#[repr(C)]
pub(crate) struct RawTxBatch {
    _p: [u8; 0],
}

/// Opaque `struct ubuf_info_msgzc`.
#[repr(C)]
pub(crate) struct RawUbuf {
    _p: [u8; 0],
}

/// Opaque `struct socket`.
#[repr(C)]
pub(crate) struct RawSocket {
    _p: [u8; 0],
}

/// `vhost_rs_wake_fn`, `vhost_rs_run_fn`, `vhost_rs_killed_fn` of helpers.h.
type WakeFn = unsafe extern "C" fn(data: *const c_void, bit: u32);
type RunFn = unsafe extern "C" fn(data: *const c_void) -> bool;
type KilledFn = unsafe extern "C" fn(data: *const c_void);

extern "C" {
    fn vhost_rs_max_mem_regions() -> u32;
    fn vhost_rs_max_iotlb_entries() -> i32;
    fn vhost_rs_fork_from_owner_default() -> bool;
    fn vhost_rs_split_workers() -> bool;
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
    fn vhost_rs_poll_alloc(mask: u32, wake: WakeFn, data: *const c_void, bit: u32) -> *mut RawPoll;
    fn vhost_rs_poll_start(poll: *mut RawPoll, file: *mut c_void) -> i32;
    fn vhost_rs_poll_stop(poll: *mut RawPoll);
    fn vhost_rs_poll_free(poll: *mut RawPoll);
    fn vhost_rs_set_interruptible();
    fn vhost_rs_file_add_poll(file: *mut c_void);
    fn vhost_rs_kiocb_nonblock(iocb: *mut c_void) -> bool;
    // linux/sched/vhost_task.h: exported (GPL), not in the Rust bindings.
    fn vhost_task_create(
        f: RunFn,
        handle_kill: KilledFn,
        arg: *const c_void,
        name: *const c_char,
    ) -> *mut RawVhostTask;
    fn vhost_task_start(vtsk: *mut RawVhostTask);
    fn vhost_task_stop(vtsk: *mut RawVhostTask);
    fn vhost_task_wake(vtsk: *mut RawVhostTask);
    fn vhost_rs_sock_sendmsg(sock: *mut RawSocket, iov: *const Iov, nr: usize, len: usize) -> i32;
    fn vhost_rs_sock_recvmsg(
        sock: *mut RawSocket,
        ptr: *mut c_void,
        iov: *const Iov,
        nr: usize,
        len: usize,
    ) -> i32;
    fn vhost_rs_sock_peek_len(sock: *mut RawSocket) -> i32;
    fn vhost_rs_sock_zcopy(sock: *mut RawSocket) -> bool;
    fn vhost_rs_sock_ptr_ring(sock: *mut RawSocket) -> *mut RawPtrRing;
    fn vhost_rs_ptr_ring_consume(
        ring: *mut RawPtrRing,
        sock: *mut RawSocket,
        batch: *mut *mut c_void,
        n: i32,
    ) -> i32;
    fn vhost_rs_ptr_ring_unconsume(ring: *mut RawPtrRing, batch: *mut *mut c_void, n: i32);
    fn vhost_rs_rx_ptr_len(ptr: *mut c_void) -> i32;
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
    fn vhost_rs_ubufs_alloc(n: u32) -> *mut RawUbuf;
    fn vhost_rs_ubufs_free(ubufs: *mut RawUbuf);
    fn vhost_rs_zc_sendmsg(
        ubufs: *mut RawUbuf,
        slot: u32,
        ctx: *const c_void,
        sock: *mut RawSocket,
        iov: *const Iov,
        nr: usize,
        len: usize,
    ) -> i32;
}

/// Gives an open device file a `poll()` (helpers.c): from the device's `open`, which the
/// Rust miscdevice lets set nothing but the operations it knows.
pub(crate) fn file_add_poll(file: &File) {
    // SAFETY: `file` is a file being opened on our device, its operations ours.
    unsafe { vhost_rs_file_add_poll(file.as_ptr().cast()) }
}

/// Whether the file of an I/O request was opened `O_NONBLOCK`.
pub(crate) fn kiocb_nonblock(iocb: *mut bindings::kiocb) -> bool {
    // SAFETY: the caller passes the valid kiocb of a read or write in progress.
    unsafe { vhost_rs_kiocb_nonblock(iocb.cast()) }
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
    /// `split_workers`: `VHOST_SET_OWNER` starts RX and TX on workers of their own.
    pub(crate) fn split_workers() -> bool {
        // SAFETY: reads a module parameter; no preconditions.
        unsafe { super::vhost_rs_split_workers() }
    }
}

/// A reference to an eventfd context (`eventfd_ctx_fdget`), dropped with `eventfd_ctx_put`.
pub(crate) struct EventFdCtx(NonNull<bindings::eventfd_ctx>);

// SAFETY: eventfd contexts are reference counted and may be signalled and released from any
// thread.
unsafe impl Send for EventFdCtx {}
// SAFETY: `signal` is safe to call concurrently (eventfd takes its own lock).
unsafe impl Sync for EventFdCtx {}

impl EventFdCtx {
    /// Looks up `fd`: `EBADF` if it is no open file, `EINVAL` if it is not an eventfd.
    pub(crate) fn fdget(fd: i32) -> Result<Self> {
        // SAFETY: looks `fd` up in the caller's file table; on success the result holds a
        // counted reference, otherwise it is an error pointer.
        let ctx = unsafe { bindings::eventfd_ctx_fdget(fd) };
        let ctx = kernel::error::from_err_ptr(ctx)?;
        NonNull::new(ctx).map(Self).ok_or(EINVAL)
    }

    /// Adds one to the eventfd's counter, waking its readers (`eventfd_signal()`).
    pub(crate) fn signal(&self) {
        // SAFETY: `self.0` is a counted reference, valid until drop.
        unsafe { bindings::eventfd_signal_mask(self.0.as_ptr(), 0) }
    }
}

impl Drop for EventFdCtx {
    fn drop(&mut self) {
        // SAFETY: we own one reference, taken in `fdget`.
        unsafe { bindings::eventfd_ctx_put(self.0.as_ptr()) }
    }
}

/// The file of an eventfd (`eventfd_fget`), as vhost keeps the kick fd: a file, so that the
/// worker can poll it. Dropping the `ARef` calls `fput`.
pub(crate) fn eventfd_fget(fd: i32) -> Result<ARef<File>> {
    // SAFETY: looks `fd` up in the caller's file table; on success the result holds a
    // counted file reference, otherwise it is an error pointer.
    let file = unsafe { bindings::eventfd_fget(fd) };
    let file = kernel::error::from_err_ptr(file)?;
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

pub(crate) fn set_running() {
    // SAFETY: changes the current task's state only; no preconditions.
    unsafe { vhost_rs_set_running() }
}

/// `EPOLLIN`, `EPOLLOUT`, `EPOLLERR` as poll masks.
pub(crate) const EPOLLIN: u32 = 0x1;
pub(crate) const EPOLLOUT: u32 = 0x4;
pub(crate) const EPOLLERR: u32 = 0x8;
pub(crate) const EPOLLRDNORM: u32 = 0x40;

/// What a poll entry or a zero-copy completion wakes: called with the entry's `bit` from the
/// wakeup, in atomic context (under the wait queue's lock, or in softirq), so it may only
/// note the work and wake a thread.
pub(crate) trait PollWake: Sync {
    fn poll_wake(&self, bit: u32);
}

/// What a worker runs: [`WorkerOps::worker_run`] each time it is woken, until it returns
/// false (then it sleeps); [`WorkerOps::worker_killed`] when the owner was killed and took
/// a `vhost_task` worker with it. `id` names the worker among its target's.
pub(crate) trait WorkerOps: Sync {
    fn worker_run(&self, id: usize) -> bool;
    fn worker_killed(&self, id: usize);
}

/// # Safety
///
/// `data` is a live `T`: the contracts of [`Poll::new`] and [`Zc::new`].
unsafe extern "C" fn poll_wake_trampoline<T: PollWake>(data: *const c_void, bit: u32) {
    // SAFETY: the function's contract.
    unsafe { &*data.cast::<T>() }.poll_wake(bit);
}

/// # Safety
///
/// `ctx` is the live `RunCtx` of a worker whose `data` is a live `T`: the contract of
/// [`Worker::start`].
unsafe extern "C" fn worker_run_trampoline<T: WorkerOps>(ctx: *const c_void) -> bool {
    // SAFETY: the function's contract.
    let ctx = unsafe { &*ctx.cast::<RunCtx>() };
    if ctx.tid.load(Relaxed) == 0 {
        ctx.tid.store(kernel::current!().pid(), Relaxed);
    }
    // SAFETY: the function's contract.
    unsafe { &*ctx.data.cast::<T>() }.worker_run(ctx.id)
}

/// # Safety
///
/// As [`worker_run_trampoline`].
unsafe extern "C" fn worker_killed_trampoline<T: WorkerOps>(ctx: *const c_void) {
    // SAFETY: the function's contract.
    let ctx = unsafe { &*ctx.cast::<RunCtx>() };
    // SAFETY: the function's contract.
    unsafe { &*ctx.data.cast::<T>() }.worker_killed(ctx.id);
}

/// A wait-queue entry that calls `target`'s [`PollWake::poll_wake`] with `bit` when the file
/// it is started on becomes ready for `mask` (vhost's `struct vhost_poll`).
pub(crate) struct Poll(NonNull<RawPoll>);

// SAFETY: the entry is only touched under the waitqueue's lock (by the kernel) or by its
// owner holding `&mut` (start/stop through the device mutex).
unsafe impl Send for Poll {}
// SAFETY: as above; `&Poll` gives no access.
unsafe impl Sync for Poll {}

impl Poll {
    /// # Safety
    ///
    /// `target` must outlive the returned `Poll`: the poll is owned by `target` itself
    /// (stopped at the latest when its fields are dropped), so that every wakeup finds it
    /// alive.
    pub(crate) unsafe fn new<T: PollWake>(target: &T, mask: u32, bit: u32) -> Result<Self> {
        let data = core::ptr::from_ref(target).cast::<c_void>();
        // SAFETY: allocation only; `data` is stored, and dereferenced by the wakeup (through
        // the trampoline for `T`) only while the poll is started, which the caller's
        // contract covers.
        let raw = unsafe { vhost_rs_poll_alloc(mask, poll_wake_trampoline::<T>, data, bit) };
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

/// A worker thread: a `vhost_task` of the owner, or a kthread using the owner's mm, calling
/// [`WorkerOps::worker_run`] of its target whenever woken.
#[pin_data(PinnedDrop)]
pub(crate) struct Worker {
    /// The running worker; the lock orders `wake` against `stop`, so a wakeup never sees a
    /// freed worker.
    #[pin]
    raw: SpinLockIrq<Option<RawWorker>>,
}

/// A running worker thread (`struct vhost_worker` with its task), with the context its
/// thread function gets.
struct RawWorker {
    thread: Thread,
    ctx: KBox<RunCtx>,
}

enum Thread {
    /// `VHOST_FORK_OWNER_TASK`: a thread of the owner, sharing its mm, files and signals,
    /// killed with it.
    Task(NonNull<RawVhostTask>),
    /// `VHOST_FORK_OWNER_KTHREAD`: a kthread that adopts the owner's mm (a reference held
    /// in the context) and runs `vhost_run_work_kthread_list()`'s loop.
    Kthread(NonNull<bindings::task_struct>),
}

/// What the thread function needs: the target and the worker's id in it, the loop to run
/// (and, for a kthread, the owner's mm, referenced); the thread notes its pid here.
struct RunCtx {
    data: *const c_void,
    id: usize,
    run: RunFn,
    mm: *mut bindings::mm_struct,
    tid: Atomic<i32>,
}

// SAFETY: the raw worker is only used under the spinlock; its task and mm are reference
// counted kernel objects usable from any thread.
unsafe impl Send for Worker {}
// SAFETY: as above.
unsafe impl Sync for Worker {}

/// The kthread's loop (`vhost_run_work_kthread_list()`): run work until there is none, then
/// sleep until woken or told to stop.
///
/// # Safety
///
/// `data` is the thread's `RunCtx`, which outlives the thread (freed after `kthread_stop`),
/// and whose `data` outlives it too (the contract of [`Worker::start`]).
unsafe extern "C" fn kthread_fn(data: *mut c_void) -> c_int {
    // SAFETY: the function's contract.
    let ctx = unsafe { &*data.cast::<RunCtx>() };
    // SAFETY: `ctx.mm` is referenced until after the thread exits.
    unsafe { bindings::kthread_use_mm(ctx.mm) };
    loop {
        // SAFETY: changes the current task's state; the barrier pairs with kthread_stop().
        unsafe { vhost_rs_set_interruptible() };
        // SAFETY: called from a kthread.
        if unsafe { bindings::kthread_should_stop() } {
            set_running();
            break;
        }
        // SAFETY: the function's contract; `run` takes the context.
        if !unsafe { (ctx.run)(data) } {
            // SAFETY: sleeps until woken (`wake_up_process`) or stopped.
            unsafe { bindings::schedule() };
        }
    }
    // SAFETY: adopted above.
    unsafe { bindings::kthread_unuse_mm(ctx.mm) };
    0
}

impl RawWorker {
    /// `vhost_worker_create()`: worker `id` of `data`, named `vhost-<owner pid>` as vhost's
    /// (worker 0), or `vhost-<owner pid>-<id>`, so that an operator can tell them apart.
    ///
    /// # Safety
    ///
    /// `data` is a live `T` that outlives the worker.
    unsafe fn create<T: WorkerOps>(
        data: *const c_void,
        id: usize,
        fork_owner: bool,
    ) -> Result<Self> {
        let current = kernel::current!();
        let name = if id == 0 {
            CString::try_from_fmt(fmt!("vhost-{}", current.pid()))?
        } else {
            CString::try_from_fmt(fmt!("vhost-{}-{}", current.pid(), id))?
        };
        let mut ctx = KBox::new(
            RunCtx {
                data,
                id,
                run: worker_run_trampoline::<T>,
                mm: core::ptr::null_mut(),
                tid: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let ctx_ptr = core::ptr::from_ref::<RunCtx>(&*ctx).cast::<c_void>();
        if fork_owner {
            // SAFETY: the trampolines are those of `T`; `ctx` lives in the `RawWorker`
            // until after `vhost_task_stop`, and its `data` is a live `T` for as long as
            // the task runs (the contract); `name` is copied.
            let vtsk = unsafe {
                vhost_task_create(
                    worker_run_trampoline::<T>,
                    worker_killed_trampoline::<T>,
                    ctx_ptr,
                    name.as_char_ptr(),
                )
            };
            let vtsk = NonNull::new(kernel::error::from_err_ptr(vtsk)?).ok_or(ENOMEM)?;
            // SAFETY: created above, not started yet.
            unsafe { vhost_task_start(vtsk.as_ptr()) };
            return Ok(RawWorker {
                thread: Thread::Task(vtsk),
                ctx,
            });
        }
        // SAFETY: `current` is the calling task; takes a reference on its mm, if any.
        let mm = unsafe { bindings::get_task_mm(current.as_ptr()) };
        if mm.is_null() {
            return Err(EINVAL);
        }
        ctx.mm = mm;
        // SAFETY: `kthread_fn`'s contract: `ctx` lives in the `RawWorker` until after
        // `kthread_stop`; the format is "%s" with a NUL-terminated `name`.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(kthread_fn),
                ctx_ptr.cast_mut(),
                bindings::NUMA_NO_NODE,
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        let task = match kernel::error::from_err_ptr(task).map(NonNull::new) {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => {
                // SAFETY: the reference taken above; the thread never ran.
                unsafe { bindings::mmput(mm) };
                return Err(kernel::error::from_err_ptr(task).err().unwrap_or(ENOMEM));
            }
        };
        // SAFETY: `task` is a new thread; we keep a reference until `kthread_stop`.
        unsafe {
            bindings::get_task_struct(task.as_ptr());
            bindings::wake_up_process(task.as_ptr());
        }
        Ok(RawWorker {
            thread: Thread::Kthread(task),
            ctx,
        })
    }

    /// Wakes the thread (`vhost_task_wake()` or `wake_up_process()`).
    fn wake(&self) {
        match self.thread {
            // SAFETY: the task is alive until `stop`.
            Thread::Task(t) => unsafe { vhost_task_wake(t.as_ptr()) },
            // SAFETY: we hold a reference on the task.
            Thread::Kthread(task) => unsafe {
                bindings::wake_up_process(task.as_ptr());
            },
        }
    }

    /// Waits for the worker to finish its current round and exit, then frees it.
    fn stop(self) {
        match self.thread {
            // SAFETY: the task is ours; it is not used after this.
            Thread::Task(t) => unsafe { vhost_task_stop(t.as_ptr()) },
            // SAFETY: we hold a reference on the task; once it returns, the thread has
            // exited and dropped its use of the context and of the mm.
            Thread::Kthread(task) => unsafe {
                bindings::kthread_stop(task.as_ptr());
                bindings::put_task_struct(task.as_ptr());
                bindings::mmput(self.ctx.mm);
            },
        }
    }
}

impl Worker {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { raw <- kernel::new_spinlock_irq!(None, "vhost_rs::Worker") })
    }

    /// Starts worker `id` of `target`, forked from the calling task (the owner) when
    /// `fork_owner`.
    ///
    /// # Safety
    ///
    /// `target` must outlive the worker: `self` is part of `target`, which stops it before
    /// any of its other fields is dropped.
    pub(crate) unsafe fn start<T: WorkerOps>(
        &self,
        target: &T,
        id: usize,
        fork_owner: bool,
    ) -> Result {
        let data = core::ptr::from_ref(target).cast::<c_void>();
        // SAFETY: `data` stays valid per the contract.
        let raw = unsafe { RawWorker::create::<T>(data, id, fork_owner) }?;
        // The thread notes its pid in its first round, which it runs at once: wait for that
        // (a bounded while), so that fdinfo names the thread as soon as the worker exists.
        for _ in 0..1000 {
            if raw.ctx.tid.load(Relaxed) != 0 {
                break;
            }
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1));
        }
        let old = self.raw.lock().replace(raw);
        if let Some(old) = old {
            old.stop();
        }
        Ok(())
    }

    /// Whether a thread is running (started and not stopped).
    pub(crate) fn running(&self) -> bool {
        self.raw.lock().is_some()
    }

    /// The thread's pid once it has run, else 0.
    pub(crate) fn tid(&self) -> i32 {
        self.raw
            .lock()
            .as_ref()
            .map_or(0, |w| w.ctx.tid.load(Relaxed))
    }

    /// Wakes the worker, if there is one. Callable in atomic context.
    pub(crate) fn wake(&self) {
        if let Some(w) = self.raw.lock().as_ref() {
            w.wake();
        }
    }

    /// Stops the worker and waits for it to exit. Must not be called by the worker itself,
    /// nor with a lock held that the worker may take.
    pub(crate) fn stop(&self) {
        let raw = self.raw.lock().take();
        if let Some(w) = raw {
            w.stop();
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Worker {
    fn drop(self: Pin<&mut Self>) {
        self.stop();
    }
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

impl ZcState {
    const fn raw(self) -> i8 {
        match self {
            ZcState::Clear => 0,
            ZcState::InProgress => 1,
            ZcState::Done => 2,
            ZcState::Failed => 3,
        }
    }

    const fn from_raw(v: i8) -> Self {
        match v {
            1 => ZcState::InProgress,
            2 => ZcState::Done,
            3 => ZcState::Failed,
            _ => ZcState::Clear,
        }
    }
}

/// What completions share with the queue (`struct vhost_net_ubuf_ref` and the states of
/// `vq->heads`): a reference count, 1 (ours) plus the buffers in flight, with the wait for
/// it to drain; a state per slot; and whom a completion wakes.
#[pin_data]
struct ZcShared {
    refcount: Atomic<i32>,
    state: [Atomic<i8>; Zc::SLOTS],
    wake: WakeFn,
    data: *const c_void,
    bit: u32,
    /// Orders the drain's wait against the last completion's notification.
    #[pin]
    lock: SpinLockIrq<()>,
    #[pin]
    drained: CondVar,
}

impl ZcShared {
    /// `vhost_net_ubuf_put()`: drops a reference; the last one wakes the drain's wait.
    /// Returns the references left. Inside an RCU read section: the wait's owner frees
    /// `self` only after a grace period.
    fn put(&self) -> i32 {
        let _rcu = rcu::read_lock();
        let left = self.refcount.fetch_sub(1, Full) - 1;
        if left == 0 {
            // Taken and dropped: a waiter has either not checked the count yet, or is
            // already on the condition variable's queue.
            drop(self.lock.lock());
            self.drained.notify_all();
        }
        left
    }
}

/// The ubufs of a zero-copy TX backend (`struct vhost_net_ubuf_ref` with the queue's
/// `ubuf_info` array): a slot per buffer in flight, a completion per slot that marks it done
/// and wakes the worker, and a count of those in flight that close and backend changes wait
/// on. Dropping it waits for every buffer in flight.
pub(crate) struct Zc {
    shared: Pin<KBox<ZcShared>>,
    /// `SLOTS` `struct ubuf_info_msgzc`, one per slot, set up at each send.
    ubufs: NonNull<RawUbuf>,
}

// SAFETY: the slots are written by their completion (atomically) and otherwise only through
// `&mut self`; the count is atomic; `data` is a device that outlives us (the contract of
// `new`) and is only used to wake it, which may be done from any thread.
unsafe impl Send for Zc {}
// SAFETY: `&Zc` only reads atomics.
unsafe impl Sync for Zc {}

/// The completion of slot `slot` (`vhost_zerocopy_complete()`), called by helpers.c once the
/// network stack has let go of the slot's pages: marks the slot and wakes the device when
/// the last buffer completes, and every 16th, so that rounds stay batched (as vhost-net).
///
/// # Safety
///
/// `ctx` is the `ZcShared` of a live [`Zc`], given to `vhost_rs_zc_sendmsg` with the slot;
/// a `Zc` is freed only after every completion and an RCU grace period.
#[no_mangle]
unsafe extern "C" fn vhost_rs_zc_complete(ctx: *const c_void, slot: u32, success: bool) {
    let _rcu = rcu::read_lock();
    // SAFETY: the function's contract; we are inside an RCU read section, which the `Zc`'s
    // drop waits out before freeing.
    let zc = unsafe { &*ctx.cast::<ZcShared>() };
    let state = if success {
        ZcState::Done
    } else {
        ZcState::Failed
    };
    if let Some(s) = zc.state.get(slot as usize) {
        s.store(state.raw(), Release);
    }
    let left = zc.put();
    if left <= 1 || left % 16 == 0 {
        // SAFETY: `data` is a live device of the type `wake` was made for (the contract of
        // `Zc::new`: the device outlives the `Zc`, which outlives its completions).
        unsafe { (zc.wake)(zc.data, zc.bit) };
    }
}

impl Zc {
    /// Slots in the ring (`UIO_MAXIOV`).
    pub(crate) const SLOTS: usize = 1024;

    /// A completion wakes `target` with `bit`.
    ///
    /// # Safety
    ///
    /// `target` must outlive the returned `Zc`: it is owned by `target`'s device, and
    /// dropping it waits for every completion, which is what dereferences `target`.
    pub(crate) unsafe fn new<T: PollWake>(target: &T, bit: u32) -> Result<Self> {
        let data = core::ptr::from_ref(target).cast::<c_void>();
        let shared = KBox::pin_init(
            pin_init!(ZcShared {
                refcount: Atomic::new(1),
                state: [const { Atomic::new(0) }; Zc::SLOTS],
                wake: poll_wake_trampoline::<T> as WakeFn,
                data,
                bit,
                lock <- kernel::new_spinlock_irq!((), "vhost_rs::Zc::lock"),
                drained <- kernel::new_condvar!("vhost_rs::Zc::drained"),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: allocation only.
        let ubufs = unsafe { vhost_rs_ubufs_alloc(Self::SLOTS as u32) };
        Ok(Self {
            shared,
            ubufs: NonNull::new(ubufs).ok_or(ENOMEM)?,
        })
    }

    /// The state of `slot`, with acquire ordering against its completion.
    pub(crate) fn state(&self, slot: usize) -> ZcState {
        ZcState::from_raw(self.shared.state[slot % Self::SLOTS].load(Acquire))
    }

    /// Sets a slot that is not in flight.
    pub(crate) fn set_state(&mut self, slot: usize, state: ZcState) {
        self.shared.state[slot % Self::SLOTS].store(state.raw(), Relaxed);
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
        let slot = slot % Self::SLOTS;
        self.set_state(slot, ZcState::InProgress);
        self.shared.refcount.fetch_add(1, Relaxed);
        let ctx = core::ptr::from_ref::<ZcShared>(&*self.shared).cast::<c_void>();
        // SAFETY: as `Socket::sendmsg` for `iov`; `slot` < `SLOTS`, the size of `ubufs`, and
        // the slot is free (the caller's ring guarantees it); `ctx` stays valid until its
        // completion (drop waits for it).
        let r = unsafe {
            vhost_rs_zc_sendmsg(
                self.ubufs.as_ptr(),
                slot as u32,
                ctx,
                sock.0.as_ptr(),
                iov.as_ptr(),
                iov.len(),
                len,
            )
        };
        // A ubuf the socket never took gets no completion: drop its reference here.
        if r < 0 && self.state(slot) == ZcState::InProgress {
            self.shared.put();
        }
        usize::try_from(r).map_err(|_| Error::from_errno(r))
    }

    /// Buffers in flight.
    pub(crate) fn inflight(&self) -> usize {
        (self.shared.refcount.load(Relaxed) - 1).max(0) as usize
    }

    /// Waits until every buffer in flight has completed, uninterruptibly, as vhost-net
    /// (`vhost_net_ubuf_put_and_wait()`); then takes our reference again, so that the ring
    /// can go on.
    pub(crate) fn wait(&mut self) {
        self.shared.put();
        let mut guard = self.shared.lock.lock();
        while self.shared.refcount.load(Acquire) != 0 {
            self.shared.drained.wait(&mut guard);
        }
        drop(guard);
        self.shared.refcount.store(1, Release);
    }
}

impl Drop for Zc {
    fn drop(&mut self) {
        self.wait();
        // A completion may still be inside its RCU read section, after its last touch of
        // the count: let it finish before the memory goes.
        rcu::synchronize_rcu();
        // SAFETY: we own the allocation, and no completion can use it any more.
        unsafe { vhost_rs_ubufs_free(self.ubufs.as_ptr()) }
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
/// vhost_net_buf`): `queue[head..tail]` are taken and not yet received. Attached to the RX
/// backend; whatever is still batched goes back to the socket's ring when it is detached
/// or dropped.
pub(crate) struct RxQueue {
    /// The attached socket's ring; `None` for a socket without one (then packets are
    /// received one by one from the socket itself).
    ring: Option<NonNull<RawPtrRing>>,
    head: usize,
    tail: usize,
    queue: [*mut c_void; RX_BATCH],
}

/// Packets taken from the ring at a time (`VHOST_NET_BATCH`).
const RX_BATCH: usize = 64;

// SAFETY: only used through `&mut self`, under the device mutex; the pointers are packets
// we own (taken from the ring) and a ring kept alive by the attached socket.
unsafe impl Send for RxQueue {}
// SAFETY: `&RxQueue` gives no access.
unsafe impl Sync for RxQueue {}

impl RxQueue {
    pub(crate) fn new() -> Self {
        Self {
            ring: None,
            head: 0,
            tail: 0,
            queue: [core::ptr::null_mut(); RX_BATCH],
        }
    }

    /// `vhost_net_buf_unproduce()`: what is batched goes back to the front of the ring, in
    /// order.
    fn unproduce(&mut self) {
        if let Some(ring) = self.ring {
            if self.tail > self.head {
                let batch = &mut self.queue[self.head..self.tail];
                // SAFETY: the ring is alive (its socket is still attached, the contract of
                // `attach`); the packets were taken from it and are ours to give back.
                unsafe {
                    vhost_rs_ptr_ring_unconsume(
                        ring.as_ptr(),
                        batch.as_mut_ptr(),
                        batch.len() as i32,
                    )
                };
            }
        }
        self.head = 0;
        self.tail = 0;
    }

    /// Batches from `sock`'s ring from now on, if it has one (`None`: from nothing). What
    /// was batched from the previous socket goes back to its ring first, so the caller
    /// calls this while that socket is still held.
    pub(crate) fn attach(&mut self, sock: Option<&Socket>) {
        self.unproduce();
        self.ring = sock.and_then(|s| {
            // SAFETY: `sock` is live; the ring it returns lives as long as the socket's
            // file, which stays attached (held by the caller) until the next `attach`.
            let ring = unsafe { vhost_rs_sock_ptr_ring(s.0.as_ptr()) };
            NonNull::new(ring)
        });
    }

    /// The length of the next packet of `sock` (the socket attached), or 0; and how many
    /// packets a refill of the batch took from the socket's ring just now (or 0).
    pub(crate) fn peek_len(&mut self, sock: &Socket) -> (usize, usize) {
        let Some(ring) = self.ring else {
            return (sock.peek_len(), 0);
        };
        let mut taken = 0;
        if self.head == self.tail {
            // SAFETY: the ring belongs to `sock`, which is live; `queue` has room for
            // `RX_BATCH` pointers.
            let n = unsafe {
                vhost_rs_ptr_ring_consume(
                    ring.as_ptr(),
                    sock.0.as_ptr(),
                    self.queue.as_mut_ptr(),
                    RX_BATCH as i32,
                )
            };
            self.head = 0;
            self.tail = usize::try_from(n).unwrap_or(0).min(RX_BATCH);
            taken = self.tail;
            if self.tail == 0 {
                return (0, 0);
            }
        }
        // SAFETY: `queue[head]` is a packet taken from the ring and not yet received.
        let len = unsafe { vhost_rs_rx_ptr_len(self.queue[self.head]) };
        (usize::try_from(len).unwrap_or(0), taken)
    }

    /// Receives the packet `peek_len` announced into the owner memory `iov`: the batch's
    /// next, or the socket's own without a ring.
    pub(crate) fn recvmsg(&mut self, sock: &Socket, iov: &[Iov], len: usize) -> Result<usize> {
        let ptr = if self.ring.is_some() {
            if self.head == self.tail {
                return Err(EAGAIN);
            }
            let p = self.queue[self.head];
            self.head += 1;
            p
        } else {
            core::ptr::null_mut()
        };
        // `ptr` is null or a packet taken from the socket's ring, which the socket's recvmsg
        // consumes (frees) whatever it returns; `iov` as in `Socket::sendmsg`.
        let (raw, n) = (sock.0.as_ptr(), iov.len());
        // SAFETY: `sock` is live, `ptr` and `iov` as said above.
        let r = unsafe { vhost_rs_sock_recvmsg(raw, ptr, iov.as_ptr(), n, len) };
        usize::try_from(r).map_err(|_| Error::from_errno(r))
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        // The owner detached it before its socket went (`attach(None)`); if not, this
        // gives the packets back to a ring that is still alive.
        self.unproduce();
    }
}
