// SPDX-License-Identifier: GPL-2.0

//! Copies to and from the calling task's memory: ioctl arguments now, the guest's rings and
//! buffers (which live in the owner's address space) with the data path. Each call is one
//! `copy_{from,to}_user`, so a fault anywhere in the range is `EFAULT` as in vhost.c.

use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

fn slice(addr: u64, len: usize) -> Result<UserSlice> {
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    Ok(UserSlice::new(UserPtr::from_addr(addr), len))
}

/// Reads `N` bytes at `addr`.
pub(crate) fn read<const N: usize>(addr: u64) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    read_into(addr, &mut b)?;
    Ok(b)
}

/// Fills `out` from `addr`.
pub(crate) fn read_into(addr: u64, out: &mut [u8]) -> Result {
    slice(addr, out.len())?.reader().read_slice(out)
}

/// Writes `data` at `addr`.
pub(crate) fn write(addr: u64, data: &[u8]) -> Result {
    slice(addr, data.len())?.writer().write_slice(data)
}

/// Reads the little-endian 16-bit value at `addr` in one load: the rings' indexes and flags,
/// which the other side may be changing (a copy of two bytes could see half of each).
pub(crate) fn read_u16(addr: u64) -> Result<u16> {
    crate::sys::get_user_u16(addr).map(u16::from_le)
}

/// Writes the little-endian 16-bit value `val` at `addr` in one store.
pub(crate) fn write_u16(addr: u64, val: u16) -> Result {
    crate::sys::put_user_u16(addr, val.to_le())
}
