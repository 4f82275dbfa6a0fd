// SPDX-License-Identifier: GPL-2.0

//! The one place for FFI: declarations of the C glue in `helpers.c` and safe owners of the
//! kernel objects it hands out (eventfd contexts, eventfd files, sockets). Every `unsafe`
//! of the module outside the guest-memory accessor is here.

use core::ptr::NonNull;
use kernel::{error::to_result, fs::File, prelude::*, sync::aref::ARef};

/// Opaque `struct eventfd_ctx`.
#[repr(C)]
pub(crate) struct RawEventfdCtx {
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
    fn vhost_rs_access_ok(addr: u64, size: u64) -> bool;
    fn vhost_rs_clear_user(addr: u64, len: u64) -> u64;
    fn vhost_rs_set_bit_to_user(nr: i32, addr: u64) -> i32;
    fn vhost_rs_cond_resched();
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

/// Gives way to the scheduler in long loops driven by user input.
pub(crate) fn cond_resched() {
    // SAFETY: called from process context without spinlocks held.
    unsafe { vhost_rs_cond_resched() }
}
