// SPDX-License-Identifier: GPL-2.0

//! The guest-memory accessor: how the ring engine reaches the guest. The worker runs in the
//! owner's address space (a thread of the owner, or a kthread that adopted its mm), so ring
//! and buffer addresses are plain user addresses, copied with `copy_{from,to}_user` and
//! never trusted.

use crate::{
    mem::{self, MemTable},
    ring::{GuestMemory, RingError},
    sys::EventFdCtx,
    user,
};
use kernel::sync::barrier::{smp_mb, Full, Read, Write};

/// Dirty logging of used-ring writes: the log bitmap, the used ring's guest address, and
/// the eventfd to tell the VMM.
pub(crate) struct UsedLog<'a> {
    pub(crate) base: u64,
    pub(crate) addr: u64,
    pub(crate) ctx: Option<&'a EventFdCtx>,
}

/// Guest memory of one device, for one round of queue processing.
pub(crate) struct UserMem<'a> {
    pub(crate) table: &'a MemTable,
    pub(crate) used_log: Option<UsedLog<'a>>,
}

impl GuestMemory for UserMem<'_> {
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        user::read_into(uaddr, buf).map_err(|_| RingError::Fault)
    }

    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), RingError> {
        user::write(uaddr, buf).map_err(|_| RingError::Fault)
    }

    fn read_u16(&self, uaddr: u64) -> Result<u16, RingError> {
        user::read_u16(uaddr).map_err(|_| RingError::Fault)
    }

    fn write_u16(&self, uaddr: u64, v: u16) -> Result<(), RingError> {
        user::write_u16(uaddr, v).map_err(|_| RingError::Fault)
    }

    fn lookup(&self, gpa: u64, last: u64) -> Option<(u64, u64, u64)> {
        self.table.lookup(gpa, last)
    }

    fn log_used(&self, offset: u64, len: u64) {
        if let Some(log) = &self.used_log {
            // As __vhost_add_used_n(): the used-ring write is visible before its dirty bit,
            // so a migrating VMM that sees the bit copies the new bytes.
            smp_mb(Write);
            // As log_used(): a failed log write does not fail the ring update.
            let _ = mem::log_write(log.base, log.addr.wrapping_add(offset), len);
            if let Some(ctx) = log.ctx {
                ctx.signal();
            }
        }
    }

    fn rmb(&self) {
        smp_mb(Read);
    }

    fn wmb(&self) {
        smp_mb(Write);
    }

    fn mb(&self) {
        smp_mb(Full);
    }
}
