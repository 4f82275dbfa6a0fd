// SPDX-License-Identifier: GPL-2.0

//! The guest-memory accessor: how the ring engine reaches the guest. The worker runs in the
//! owner's address space (a thread of the owner, or a kthread that adopted its mm), so ring
//! and buffer addresses become plain user addresses, copied with `copy_{from,to}_user` and
//! never trusted.
//!
//! Without the device IOTLB, ring addresses are user addresses and buffer addresses guest
//! physical ones, translated through the memory table. With it (`VIRTIO_F_ACCESS_PLATFORM`)
//! both are I/O virtual addresses, translated through the IOTLB the VMM fills on demand:
//! a translation it lacks is a miss, reported to the VMM, and the queue waits for the
//! answer (vhost.c's `translate_desc()`, `vhost_copy_{to,from}_user()`, `vhost_get_user()`).

use crate::{
    dev::IotlbMsgs,
    mem::{self, Map, MemTable},
    ring::{self, GuestMemory, Iov, Part, RingError, ACCESS_RO, ACCESS_WO},
    sys::EventFdCtx,
    user,
};
use kernel::sync::barrier::{smp_mb, Full, Read, Write};

/// Dirty logging of used-ring writes: the log bitmap, the used ring's guest address (its
/// ring address with the IOTLB), the descriptor ring's ring address (a packed ring writes
/// its used descriptors there), and the eventfd to tell the VMM.
pub(crate) struct UsedLog<'a> {
    pub(crate) base: u64,
    pub(crate) addr: u64,
    pub(crate) desc: u64,
    pub(crate) ctx: Option<&'a EventFdCtx>,
}

/// The device IOTLB as one round on one queue sees it: the table, the ring parts'
/// translations the prefetch cached (`vq->meta_iotlb`), and where a miss is reported.
pub(crate) struct IotlbView<'a> {
    pub(crate) table: &'a MemTable,
    pub(crate) meta: [Option<Map>; 3],
    pub(crate) msgs: &'a IotlbMsgs,
    /// The queue's index, and whether misses go out as `vhost_msg_v2`.
    pub(crate) vq: usize,
    pub(crate) v2: bool,
}

/// Guest memory of one device, for one round of processing on one queue.
pub(crate) struct UserMem<'a> {
    /// The memory table (`dev->umem`).
    pub(crate) table: &'a MemTable,
    pub(crate) iotlb: Option<IotlbView<'a>>,
    pub(crate) used_log: Option<UsedLog<'a>>,
}

/// Most segments one ring access is translated into: 16 bytes at most (a descriptor), one
/// byte per mapping at worst.
const RING_SEGS: usize = 16;

impl UserMem<'_> {
    /// `vhost_vq_meta_fetch()`: the user address of `[addr, addr + len)` of ring part
    /// `part`, if the prefetch cached a mapping covering it.
    fn meta(&self, part: Part, addr: u64, len: usize) -> Option<u64> {
        let m = self.iotlb.as_ref()?.meta[part as usize]?;
        let last = addr.checked_add(len as u64)?.checked_sub(1)?;
        (m.start <= addr && last <= m.last).then(|| m.addr.wrapping_add(addr - m.start))
    }

    /// The slow path of a ring access through the IOTLB: `[addr, addr + len)` translated
    /// for `access`. Any failure is the ring's fault (vhost.c's callers return `-EFAULT`).
    fn ring_segs(
        &self,
        addr: u64,
        len: usize,
        access: u8,
    ) -> Result<([Iov; RING_SEGS], usize), RingError> {
        let mut iov = [Iov::default(); RING_SEGS];
        let n = ring::translate(self, addr, len as u32, &mut iov, 0, access)
            .map_err(|_| RingError::Fault)?;
        Ok((iov, n))
    }

    /// `__vhost_get_user_slow()`: the one user address of a 2-byte ring field; a field
    /// split between mappings cannot be accessed atomically and is a fault. vhost.c asks
    /// for read access here, for stores too.
    fn ring_u16_addr(&self, part: Part, addr: u64) -> Result<u64, RingError> {
        if let Some(u) = self.meta(part, addr, 2) {
            return Ok(u);
        }
        let (iov, n) = self.ring_segs(addr, 2, ACCESS_RO)?;
        if n != 1 || iov[0].len != 2 {
            return Err(RingError::Fault);
        }
        Ok(iov[0].addr)
    }

    /// `vhost_log_write()` with the IOTLB: marks dirty the guest pages behind the user
    /// ranges `iov`, whole (the device knows them by user address only).
    pub(crate) fn log_hva(&self, log_base: u64, iov: &[Iov]) {
        for s in iov {
            if mem::log_write_hva(self.table, log_base, s.addr, s.len).is_err() {
                return;
            }
        }
    }
}

impl UserMem<'_> {
    /// `vhost_copy_to_user()` into ring part `part` (the used ring, or a packed ring's
    /// descriptors): through the prefetched mapping, or translated for write access.
    fn ring_write_part(&self, part: Part, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        if self.iotlb.is_none() {
            return self.write(addr, buf);
        }
        if let Some(u) = self.meta(part, addr, buf.len()) {
            return self.write(u, buf);
        }
        let (iov, n) = self.ring_segs(addr, buf.len(), ACCESS_WO)?;
        let mut at = 0usize;
        for s in &iov[..n] {
            let end = at + s.len as usize;
            self.write(s.addr, buf.get(at..end).ok_or(RingError::Fault)?)?;
            at = end;
        }
        Ok(())
    }
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

    fn lookup(&self, gpa: u64, last: u64, access: u8) -> Result<(u64, u64, u64), RingError> {
        let Some(t) = &self.iotlb else {
            return match self.table.lookup(gpa, last) {
                Some(m) if m.start <= gpa => Ok((m.start, m.size(), m.addr)),
                _ => Err(RingError::Fault),
            };
        };
        match t.table.lookup(gpa, last) {
            Some(m) if m.start <= gpa => {
                if m.perm & access == 0 {
                    Err(RingError::Perm)
                } else {
                    Ok((m.start, m.size(), m.addr))
                }
            }
            _ => {
                // vhost_iotlb_miss(): ask the VMM; the queue stops here until it answers.
                t.msgs.miss(t.vq, gpa, access, t.v2);
                Err(RingError::Miss)
            }
        }
    }

    fn ring_read(&self, part: Part, addr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        if self.iotlb.is_none() {
            return self.read(addr, buf);
        }
        if let Some(u) = self.meta(part, addr, buf.len()) {
            return self.read(u, buf);
        }
        // vhost_copy_from_user(): the range may span mappings.
        let (iov, n) = self.ring_segs(addr, buf.len(), ACCESS_RO)?;
        let mut at = 0usize;
        for s in &iov[..n] {
            let end = at + s.len as usize;
            self.read(s.addr, buf.get_mut(at..end).ok_or(RingError::Fault)?)?;
            at = end;
        }
        Ok(())
    }

    fn ring_read_u16(&self, part: Part, addr: u64) -> Result<u16, RingError> {
        if self.iotlb.is_none() {
            return self.read_u16(addr);
        }
        self.read_u16(self.ring_u16_addr(part, addr)?)
    }

    fn ring_write(&self, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.ring_write_part(Part::Used, addr, buf)
    }

    fn ring_write_u16(&self, addr: u64, v: u16) -> Result<(), RingError> {
        if self.iotlb.is_none() {
            return self.write_u16(addr, v);
        }
        self.write_u16(self.ring_u16_addr(Part::Used, addr)?, v)
    }

    fn ring_write_desc(&self, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.ring_write_part(Part::Desc, addr, buf)
    }

    fn ring_write_desc_u16(&self, addr: u64, v: u16) -> Result<(), RingError> {
        if self.iotlb.is_none() {
            return self.write_u16(addr, v);
        }
        self.write_u16(self.ring_u16_addr(Part::Desc, addr)?, v)
    }

    fn log_desc(&self, offset: u64, len: u64) {
        let Some(log) = &self.used_log else {
            return;
        };
        // As log_used(): the write before its dirty bit; a failed log write does not fail
        // the ring update. The descriptor ring is known by ring address only (QEMU passes
        // no guest address for it): its user range, to guest pages.
        smp_mb(Write);
        let addr = log.desc.wrapping_add(offset);
        if self.iotlb.is_some() {
            if let Ok((iov, n)) = self.ring_segs(addr, len as usize, ACCESS_WO) {
                self.log_hva(log.base, &iov[..n]);
            }
        } else {
            let _ = mem::log_write_hva(self.table, log.base, addr, len);
        }
        if let Some(ctx) = log.ctx {
            ctx.signal();
        }
    }

    fn log_used(&self, offset: u64, len: u64) {
        let Some(log) = &self.used_log else {
            return;
        };
        // As __vhost_add_used_n(): the used-ring write is visible before its dirty bit,
        // so a migrating VMM that sees the bit copies the new bytes.
        smp_mb(Write);
        // As log_used(): a failed log write does not fail the ring update.
        if self.iotlb.is_some() {
            // The used ring's I/O virtual range, to user ranges, to guest pages.
            if let Ok((iov, n)) =
                self.ring_segs(log.addr.wrapping_add(offset), len as usize, ACCESS_WO)
            {
                self.log_hva(log.base, &iov[..n]);
            }
        } else {
            let _ = mem::log_write(log.base, log.addr.wrapping_add(offset), len);
        }
        if let Some(ctx) = log.ctx {
            ctx.signal();
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
