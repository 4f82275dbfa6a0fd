// SPDX-License-Identifier: GPL-2.0

//! Split virtqueues (virtio 1.x spec, 2.7 "Split Virtqueues"): layout, descriptor chains
//! with indirect tables, the used ring, and notification suppression with and without
//! `VIRTIO_RING_F_EVENT_IDX`. Packed virtqueues (2.8) are in [`packed`], built on the same
//! memory trait, segments, chains and errors.
//!
//! No kernel I/O here: the engine reaches guest memory through [`GuestMemory`], so the same
//! file builds in the host crate under `tests/host`, where it is unit-tested against a fake
//! memory. The rules and their order follow `vhost_get_vq_desc_n()`, `get_indirect()`,
//! `translate_desc()`, `__vhost_add_used_n()`, `vhost_notify()` and
//! `vhost_{en,dis}able_notify()` in drivers/vhost/vhost.c, so that a guest sees the same
//! device either way. Ring indices wrap explicitly; every loop is bounded by the ring size.

#![allow(dead_code)]

// A path relative to this file, so that the host crates, which include ring.rs by
// `#[path]` (and so resolve its plain `mod`s beside it), find ring/packed.rs too.
#[path = "ring/packed.rs"]
pub(crate) mod packed;
#[path = "ring/vring.rs"]
mod vring;
pub(crate) use vring::Vring;

/// Largest queue size vhost accepts (any power of two up to 0xffff).
pub(crate) const MAX_NUM: u32 = 0xffff;
/// Size of one `struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }`.
pub(crate) const DESC_SIZE: u64 = 16;
/// Alignment of the avail and used rings (2.7, "Virtqueue Part Alignment"); vhost checks
/// these two, and the log address against the used alignment.
pub(crate) const AVAIL_ALIGN: u64 = 2;
pub(crate) const USED_ALIGN: u64 = 4;
/// Offsets in `struct virtq_used { le16 flags; le16 idx; struct virtq_used_elem ring[]; }`.
pub(crate) const USED_FLAGS_OFFSET: u64 = 0;
pub(crate) const USED_IDX_OFFSET: u64 = 2;
const USED_RING_OFFSET: u64 = 4;
const USED_ELEM_SIZE: u64 = 8;
/// Offsets in `struct virtq_avail { le16 flags; le16 idx; le16 ring[]; }`.
const AVAIL_FLAGS_OFFSET: u64 = 0;
const AVAIL_IDX_OFFSET: u64 = 2;
const AVAIL_RING_OFFSET: u64 = 4;

pub(crate) const VRING_DESC_F_NEXT: u16 = 1;
pub(crate) const VRING_DESC_F_WRITE: u16 = 2;
pub(crate) const VRING_DESC_F_INDIRECT: u16 = 4;
pub(crate) const VRING_USED_F_NO_NOTIFY: u16 = 1;
pub(crate) const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// `UIO_MAXIOV`: most segments one chain may translate to.
pub(crate) const MAX_IOV: usize = 1024;

/// Whether `num` is a queue size `VHOST_SET_VRING_NUM` accepts: a power of two, 1..=0xffff.
pub(crate) fn valid_num(num: u32) -> bool {
    num != 0 && num <= MAX_NUM && num.is_power_of_two()
}

/// Bytes of the descriptor table.
pub(crate) fn desc_size(num: u32) -> u64 {
    DESC_SIZE * u64::from(num)
}

/// Bytes of the avail ring: flags, idx, ring[num], and `used_event` with EVENT_IDX.
pub(crate) fn avail_size(num: u32, event_idx: bool) -> u64 {
    4 + 2 * u64::from(num) + if event_idx { 2 } else { 0 }
}

/// Bytes of the used ring: flags, idx, ring[num] of 8-byte elements, and `avail_event`.
pub(crate) fn used_size(num: u32, event_idx: bool) -> u64 {
    4 + 8 * u64::from(num) + if event_idx { 2 } else { 0 }
}

/// `vring_need_event()` (2.7.7.2): has `new_idx` passed `event_idx` since `old`?
pub(crate) fn need_event(event_idx: u16, new_idx: u16, old: u16) -> bool {
    new_idx.wrapping_sub(event_idx).wrapping_sub(1) < new_idx.wrapping_sub(old)
}

/// Why a ring could not be used. Each is an error of the queue, not of the host: the
/// caller stops the queue and signals its err eventfd, as vhost does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingError {
    /// Ring or buffer memory not accessible, or a buffer outside every memory region.
    Fault,
    /// The avail index moved by more than the ring size.
    AvailIdx { from: u16, to: u16 },
    /// A head or next index past the ring (or indirect table).
    IndexOutOfRange { idx: u32, num: u32 },
    /// A chain longer than its table: a loop.
    Loop,
    /// An indirect table whose length is not a multiple of 16 bytes.
    IndirectLen(u32),
    /// An indirect table of more than 65536 entries.
    IndirectTooBig(u32),
    /// An indirect descriptor inside an indirect table.
    NestedIndirect,
    /// A device-readable descriptor after a device-writable one.
    OutAfterIn,
    /// More than [`MAX_IOV`] segments.
    TooManySegments,
    /// Packed: a descriptor of a chain not marked available for its lap (2.8.1), though
    /// the chain's first one was.
    Unavailable { idx: u32 },
    /// Packed: an indirect descriptor chained to others by NEXT (2.8.7).
    IndirectInChain,
    /// An address the device IOTLB does not map: a miss was reported to the VMM, and the
    /// queue waits for its answer (`-EAGAIN` of `translate_desc()`; not the queue's error).
    Miss,
    /// An IOTLB mapping without the access asked for.
    Perm,
}

impl RingError {
    /// The errno vhost returns for the same fault.
    pub(crate) fn errno(self) -> i32 {
        match self {
            RingError::Fault => 14,            // EFAULT
            RingError::TooManySegments => 105, // ENOBUFS
            RingError::IndirectTooBig(_) => 7, // E2BIG
            RingError::Miss => 11,             // EAGAIN
            RingError::Perm => 1,              // EPERM
            _ => 22,                           // EINVAL
        }
    }
}

/// Access permissions of a mapping, and the access a translation asks for
/// (`VHOST_ACCESS_RO`, `_WO`, `_RW`; `VHOST_MAP_*` in iotlb.h are the same bits).
pub(crate) const ACCESS_RO: u8 = 1;
pub(crate) const ACCESS_WO: u8 = 2;
pub(crate) const ACCESS_RW: u8 = 3;

/// The part of a ring an access is to (`VHOST_ADDR_DESC`, `_AVAIL`, `_USED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Desc = 0,
    Avail = 1,
    Used = 2,
}

/// Guest memory as the ring engine sees it. Ring addresses are the VMM's (owner's) virtual
/// addresses, or with the device IOTLB I/O virtual addresses, and reach memory through the
/// `ring_*` methods; buffer addresses in descriptors are guest physical (or I/O virtual)
/// and go through `lookup`; the other methods take the owner addresses those give.
pub(crate) trait GuestMemory {
    /// Reads `buf.len()` bytes at owner address `uaddr`.
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), RingError>;
    /// Writes `buf` at owner address `uaddr`.
    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), RingError>;
    /// Reads the little-endian 16-bit ring field at `uaddr` in one load (the other side may
    /// be changing it: a byte-wise copy could return half the old and half the new value).
    fn read_u16(&self, uaddr: u64) -> Result<u16, RingError> {
        let mut b = [0u8; 2];
        self.read(uaddr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Writes the little-endian 16-bit ring field at `uaddr` in one store.
    fn write_u16(&self, uaddr: u64, v: u16) -> Result<(), RingError> {
        self.write(uaddr, &v.to_le_bytes())
    }
    /// The mapping of guest address `gpa` (the one with the lowest start overlapping
    /// `[gpa, last]`, which must start at or before `gpa`) for `access`, as
    /// `(start, size, uaddr)`: `Fault` outside memory, `Miss` (reported) when the device
    /// IOTLB has no mapping yet, `Perm` when its mapping does not allow `access`.
    fn lookup(&self, gpa: u64, last: u64, access: u8) -> Result<(u64, u64, u64), RingError>;
    /// Reads `buf.len()` bytes of ring part `part` at ring address `addr`.
    fn ring_read(&self, _part: Part, addr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        self.read(addr, buf)
    }
    /// Reads the 16-bit field of ring part `part` at ring address `addr` in one load.
    fn ring_read_u16(&self, _part: Part, addr: u64) -> Result<u16, RingError> {
        self.read_u16(addr)
    }
    /// Writes `buf` into the used ring at ring address `addr`.
    fn ring_write(&self, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.write(addr, buf)
    }
    /// Writes the 16-bit field of the used ring at ring address `addr` in one store.
    fn ring_write_u16(&self, addr: u64, v: u16) -> Result<(), RingError> {
        self.write_u16(addr, v)
    }
    /// Writes `buf` into the descriptor ring at ring address `addr`. Only a packed ring
    /// writes there (its used descriptors, 2.8.1); the default refuses, so that a memory
    /// not yet told how to reach the descriptor ring for writing (with the device IOTLB:
    /// its translation, with write access) fails the queue rather than write elsewhere.
    fn ring_write_desc(&self, _addr: u64, _buf: &[u8]) -> Result<(), RingError> {
        Err(RingError::Fault)
    }
    /// Writes the 16-bit descriptor field at ring address `addr` in one store (a packed
    /// descriptor's `flags`, which the driver polls).
    fn ring_write_desc_u16(&self, _addr: u64, _v: u16) -> Result<(), RingError> {
        Err(RingError::Fault)
    }
    /// Marks `len` bytes at `offset` into the used ring dirty (when dirty logging is on).
    /// For a packed ring the "used ring" is its device event suppression area.
    fn log_used(&self, offset: u64, len: u64);
    /// Marks `len` bytes at `offset` into the descriptor ring dirty: the used descriptors
    /// of a packed ring. Nothing to do where `ring_write_desc` writes nothing.
    fn log_desc(&self, _offset: u64, _len: u64) {}
    /// Read, write and full memory barriers (`smp_rmb`, `smp_wmb`, `smp_mb`).
    fn rmb(&self);
    fn wmb(&self);
    fn mb(&self);
}

/// One translated segment of a buffer: `len` bytes at owner address `addr`. Laid out as
/// `struct iovec` on 64-bit, so a slice of these is handed to the socket as is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Iov {
    pub(crate) addr: u64,
    pub(crate) len: u64,
}

/// A device-writable descriptor, remembered for the dirty log (`struct vhost_log`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogEntry {
    pub(crate) gpa: u64,
    pub(crate) len: u64,
}

/// A chain taken from the avail ring: its head, and how many segments of `iov` it filled,
/// device-readable (`out`) first, then device-writable (`in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) head: u16,
    pub(crate) out_num: usize,
    pub(crate) in_num: usize,
    /// Writable descriptors recorded in the log buffer (0 without logging).
    pub(crate) log_num: usize,
    /// Descriptors of the descriptor table it took (an indirect table counts as one): what
    /// `discard` gives back of `next_avail_head`.
    pub(crate) ndesc: u16,
}

/// Where a chain's segments and log entries go.
pub(crate) struct ChainBuf<'a> {
    pub(crate) iov: &'a mut [Iov],
    pub(crate) log: Option<&'a mut [LogEntry]>,
}

/// A descriptor, decoded from its little-endian bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

impl Desc {
    fn from_bytes(b: &[u8; 16]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[0..8]);
        Desc {
            addr: u64::from_le_bytes(a),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// `translate_desc()`: guest physical `[gpa, gpa + len)` to owner-address segments for
/// `access`, appended to `iov` from index `at`. Returns how many were added.
pub(crate) fn translate<M: GuestMemory + ?Sized>(
    mem: &M,
    gpa: u64,
    len: u32,
    iov: &mut [Iov],
    at: usize,
    access: u8,
) -> Result<usize, RingError> {
    let len = u64::from(len);
    let mut addr = gpa;
    let last = gpa.wrapping_add(len).wrapping_sub(1);
    let mut done = 0u64;
    let mut n = 0usize;
    while len > done {
        let slot = iov.get_mut(at + n).ok_or(RingError::TooManySegments)?;
        let (start, size, uaddr) = mem.lookup(addr, last, access)?;
        if start > addr {
            return Err(RingError::Fault);
        }
        let avail = size - (addr - start);
        *slot = Iov {
            addr: uaddr.wrapping_add(addr - start),
            len: (len - done).min(avail),
        };
        done = done.saturating_add(avail);
        addr = addr.wrapping_add(avail);
        n += 1;
    }
    Ok(n)
}

/// The device side of one split ring.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    pub(crate) num: u32,
    /// Owner addresses of the three parts.
    pub(crate) desc: u64,
    pub(crate) avail: u64,
    pub(crate) used: u64,
    pub(crate) last_avail_idx: u16,
    /// The avail index last read from the guest (cached).
    pub(crate) avail_idx: u16,
    pub(crate) last_used_idx: u16,
    pub(crate) next_avail_head: u16,
    pub(crate) used_flags: u16,
    pub(crate) signalled_used: u16,
    pub(crate) signalled_used_valid: bool,
    /// Negotiated `VIRTIO_RING_F_EVENT_IDX`, `VIRTIO_F_NOTIFY_ON_EMPTY` and
    /// `VIRTIO_F_IN_ORDER`.
    pub(crate) event_idx: bool,
    pub(crate) notify_on_empty: bool,
    pub(crate) in_order: bool,
}

impl Default for Ring {
    fn default() -> Self {
        Self::new()
    }
}

impl Ring {
    /// The state `vhost_vq_reset()` leaves.
    pub(crate) const fn new() -> Self {
        Ring {
            num: 1,
            desc: 0,
            avail: 0,
            used: 0,
            last_avail_idx: 0,
            avail_idx: 0,
            last_used_idx: 0,
            next_avail_head: 0,
            used_flags: 0,
            signalled_used: 0,
            signalled_used_valid: false,
            event_idx: false,
            notify_on_empty: false,
            in_order: false,
        }
    }

    fn used_event_addr(&self) -> u64 {
        // `used_event` follows the avail ring's entries.
        self.avail
            .wrapping_add(AVAIL_RING_OFFSET + 2 * u64::from(self.num))
    }

    fn avail_event_offset(&self) -> u64 {
        // `avail_event` follows the used ring's elements.
        USED_RING_OFFSET + USED_ELEM_SIZE * u64::from(self.num)
    }

    /// `vhost_get_avail_idx()`: re-reads the guest's avail index. `Ok(true)` if it moved.
    pub(crate) fn get_avail_idx<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        let idx = mem.ring_read_u16(Part::Avail, self.avail.wrapping_add(AVAIL_IDX_OFFSET))?;
        if u32::from(idx.wrapping_sub(self.last_avail_idx)) > self.num {
            return Err(RingError::AvailIdx {
                from: self.last_avail_idx,
                to: idx,
            });
        }
        if idx == self.avail_idx {
            return Ok(false);
        }
        self.avail_idx = idx;
        // Order the index read before the reads of ring entries it covers.
        mem.rmb();
        Ok(true)
    }

    /// `vhost_get_vq_desc_n()`: takes the next available chain, translating its buffers
    /// into `buf`. `Ok(None)` when the guest has made nothing new available. With IN_ORDER
    /// the chain starts at `next_avail_head`, where the last one ended: the avail ring's
    /// entries are not read (the driver makes descriptors available in table order).
    pub(crate) fn get_desc<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        buf: &mut ChainBuf<'_>,
    ) -> Result<Option<Chain>, RingError> {
        if self.avail_idx == self.last_avail_idx && !self.get_avail_idx(mem)? {
            return Ok(None);
        }
        let head = if self.in_order {
            // `num` is a power of two (valid_num), at most 32768: the mask fits in u16.
            self.next_avail_head & (self.num - 1) as u16
        } else {
            let slot = u64::from(self.last_avail_idx) % u64::from(self.num);
            mem.ring_read_u16(
                Part::Avail,
                self.avail.wrapping_add(AVAIL_RING_OFFSET + 2 * slot),
            )?
        };
        if u32::from(head) >= self.num {
            return Err(RingError::IndexOutOfRange {
                idx: head.into(),
                num: self.num,
            });
        }
        let mut chain = Chain {
            head,
            out_num: 0,
            in_num: 0,
            log_num: 0,
            ndesc: 0,
        };
        let mut i = u32::from(head);
        let mut found = 0u32;
        let mut ndesc = 0u16;
        loop {
            if i >= self.num {
                return Err(RingError::IndexOutOfRange {
                    idx: i,
                    num: self.num,
                });
            }
            found += 1;
            if found > self.num {
                return Err(RingError::Loop);
            }
            let mut raw = [0u8; 16];
            let at = self.desc.wrapping_add(u64::from(i) * DESC_SIZE);
            mem.ring_read(Part::Desc, at, &mut raw)?;
            let desc = Desc::from_bytes(&raw);
            ndesc = ndesc.wrapping_add(1);
            if desc.flags & VRING_DESC_F_INDIRECT != 0 {
                get_indirect(mem, &desc, buf, &mut chain)?;
            } else {
                add_desc(mem, desc.addr, desc.len, desc.flags, buf, &mut chain)?;
            }
            if desc.flags & VRING_DESC_F_NEXT == 0 {
                break;
            }
            i = u32::from(desc.next);
        }
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        self.next_avail_head = self.next_avail_head.wrapping_add(ndesc);
        chain.ndesc = ndesc;
        Ok(Some(chain))
    }

    /// `vhost_discard_vq_desc()`: gives back the last `n` chains taken, `ndesc` descriptors
    /// in all (the sum of their `Chain::ndesc`).
    pub(crate) fn discard(&mut self, n: u16, ndesc: u16) {
        self.next_avail_head = self.next_avail_head.wrapping_sub(ndesc);
        self.last_avail_idx = self.last_avail_idx.wrapping_sub(n);
    }

    /// `__vhost_add_used_n()` and the index update of `vhost_add_used_n()`: publishes
    /// `(head, len)` pairs, then the new used index.
    pub(crate) fn add_used_n<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        heads: &[(u32, u32)],
    ) -> Result<(), RingError> {
        let mut idx = self.last_used_idx;
        for &(id, len) in heads {
            self.put_used_elem(mem, u32::from(idx) % self.num, id, len)?;
            idx = idx.wrapping_add(1);
        }
        self.publish_used(mem, idx)
    }

    /// `vhost_add_used_n_in_order()` and the index update of `vhost_add_used_n()`: element
    /// `i`, `heads[i]`, stands for `nheads[i]` buffers used in order (the last of them
    /// named); it is written where the first of them would go, and the used index moves
    /// past all of them. The slots skipped keep what they held.
    pub(crate) fn add_used_n_in_order<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        heads: &[(u32, u32)],
        nheads: &[u16],
    ) -> Result<(), RingError> {
        let num = self.num;
        let mut start = u32::from(self.last_used_idx) & (num - 1);
        let mut idx = self.last_used_idx;
        for (&(id, len), &n) in heads.iter().zip(nheads) {
            // (vhost.c logs from the first element to the end of the ring, and past the
            // wrap by the element count; we log the elements written.)
            self.put_used_elem(mem, start, id, len)?;
            start = (start + u32::from(n)) & (num - 1);
            idx = idx.wrapping_add(n);
        }
        self.publish_used(mem, idx)
    }

    /// `vhost_put_used()` of one element, at `slot` of the used ring, logged.
    fn put_used_elem<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        slot: u32,
        id: u32,
        len: u32,
    ) -> Result<(), RingError> {
        let off = USED_RING_OFFSET + USED_ELEM_SIZE * u64::from(slot);
        let mut e = [0u8; 8];
        e[0..4].copy_from_slice(&id.to_le_bytes());
        e[4..8].copy_from_slice(&len.to_le_bytes());
        mem.ring_write(self.used.wrapping_add(off), &e)?;
        mem.log_used(off, USED_ELEM_SIZE);
        Ok(())
    }

    /// The end of `vhost_add_used_n()`: the new used index, after the elements it covers.
    fn publish_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        idx: u16,
    ) -> Result<(), RingError> {
        // Make the elements visible before the index that covers them.
        mem.wmb();
        mem.ring_write_u16(self.used.wrapping_add(USED_IDX_OFFSET), idx)?;
        mem.log_used(USED_IDX_OFFSET, 2);
        let old = self.last_used_idx;
        self.last_used_idx = idx;
        // If the guest asked for an interrupt at an index we just passed over, make sure
        // vhost_notify() still sends one (the C "signalled_used" wrap guard).
        if self.signalled_used_valid
            && idx.wrapping_sub(self.signalled_used) < idx.wrapping_sub(old)
        {
            self.signalled_used_valid = false;
        }
        Ok(())
    }

    /// `vhost_notify()`: whether the guest wants an interrupt for what was just used.
    /// What cannot be read is a yes (a lost interrupt would stall the guest).
    pub(crate) fn notify<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> bool {
        self.notify_checked(mem).unwrap_or(true)
    }

    /// [`Ring::notify`], with the fault of an unreadable flags or `used_event` field as the
    /// error: the caller signals the guest anyway and reports the queue's error, as
    /// `vhost_notify()` does (`vq_err()`, then true).
    pub(crate) fn notify_checked<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        // Flush the used index before reading the guest's suppression state (paired with
        // the barrier the guest executes when enabling interrupts).
        mem.mb();
        if self.notify_on_empty && self.avail_idx == self.last_avail_idx {
            return Ok(true);
        }
        if !self.event_idx {
            let f = mem.ring_read_u16(Part::Avail, self.avail.wrapping_add(AVAIL_FLAGS_OFFSET))?;
            return Ok(f & VRING_AVAIL_F_NO_INTERRUPT == 0);
        }
        let old = self.signalled_used;
        let valid = self.signalled_used_valid;
        let new = self.last_used_idx;
        self.signalled_used = new;
        self.signalled_used_valid = true;
        if !valid {
            return Ok(true);
        }
        let event = mem.ring_read_u16(Part::Avail, self.used_event_addr())?;
        Ok(need_event(event, new, old))
    }

    /// `vhost_update_used_flags()`
    pub(crate) fn update_used_flags<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
    ) -> Result<(), RingError> {
        mem.ring_write_u16(self.used.wrapping_add(USED_FLAGS_OFFSET), self.used_flags)?;
        mem.log_used(USED_FLAGS_OFFSET, 2);
        Ok(())
    }

    /// `vhost_update_avail_event()`: asks for a kick once the guest passes our avail index.
    fn update_avail_event<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<(), RingError> {
        let off = self.avail_event_offset();
        mem.ring_write_u16(self.used.wrapping_add(off), self.avail_idx)?;
        mem.log_used(off, 2);
        Ok(())
    }

    /// `vhost_disable_notify()`: asks the guest not to kick while we are processing.
    pub(crate) fn disable_notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<(), RingError> {
        if self.used_flags & VRING_USED_F_NO_NOTIFY != 0 {
            return Ok(());
        }
        self.used_flags |= VRING_USED_F_NO_NOTIFY;
        if !self.event_idx {
            self.update_used_flags(mem)?;
        }
        Ok(())
    }

    /// `vhost_enable_notify()`: asks for kicks again. `Ok(true)` if the guest's avail index
    /// moved past the one we last read, so the caller must process again rather than
    /// sleep; an avail index more than `num` ahead is an error, as in `vhost_get_avail_idx()`.
    ///
    /// Moved, not "buffers not yet taken" (7.3's fix): RX gives back the buffers of a packet
    /// that does not fit in what the guest has made available, and would otherwise be told
    /// to try again at once, for ever (a worker at 100% CPU until the guest adds buffers).
    pub(crate) fn enable_notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        if self.used_flags & VRING_USED_F_NO_NOTIFY == 0 {
            return Ok(false);
        }
        self.used_flags &= !VRING_USED_F_NO_NOTIFY;
        if self.event_idx {
            self.update_avail_event(mem)?;
        } else {
            self.update_used_flags(mem)?;
        }
        // They could have slipped one in as we were doing that: make sure it's written,
        // then check again, through the same range check as any read of the index.
        mem.mb();
        self.get_avail_idx(mem)
    }

    /// Whether the guest has buffers we have not taken (`vhost_vq_avail_empty()` negated).
    pub(crate) fn has_avail<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        if self.avail_idx != self.last_avail_idx {
            return Ok(true);
        }
        self.get_avail_idx(mem)
    }
}

/// Translates one direct descriptor (`addr`, `len`, `flags`: the same bits in both
/// layouts) into `buf`, keeping readable before writable.
fn add_desc<M: GuestMemory + ?Sized>(
    mem: &M,
    addr: u64,
    len: u32,
    flags: u16,
    buf: &mut ChainBuf<'_>,
    chain: &mut Chain,
) -> Result<(), RingError> {
    let at = chain.out_num + chain.in_num;
    let write = flags & VRING_DESC_F_WRITE != 0;
    let access = if write { ACCESS_WO } else { ACCESS_RO };
    let n = translate(mem, addr, len, buf.iov, at, access)?;
    if write {
        chain.in_num += n;
        if n != 0 {
            if let Some(log) = buf.log.as_deref_mut() {
                let slot = log
                    .get_mut(chain.log_num)
                    .ok_or(RingError::TooManySegments)?;
                *slot = LogEntry {
                    gpa: addr,
                    len: len.into(),
                };
                chain.log_num += 1;
            }
        }
    } else {
        // Device-readable descriptors all come before the writable ones (2.7.4.2).
        if chain.in_num != 0 {
            return Err(RingError::OutAfterIn);
        }
        chain.out_num += n;
    }
    Ok(())
}

/// `get_indirect()`: walks an indirect table (2.7.5.3), which must not nest.
fn get_indirect<M: GuestMemory + ?Sized>(
    mem: &M,
    indirect: &Desc,
    buf: &mut ChainBuf<'_>,
    chain: &mut Chain,
) -> Result<(), RingError> {
    if u64::from(indirect.len) % DESC_SIZE != 0 {
        return Err(RingError::IndirectLen(indirect.len));
    }
    let (table, segs) = translate_table(mem, indirect.addr, indirect.len)?;
    let count = u64::from(indirect.len) / DESC_SIZE;
    if count > 0x10000 {
        return Err(RingError::IndirectTooBig(indirect.len));
    }
    let mut i = 0u64;
    let mut found = 0u64;
    loop {
        found += 1;
        if found > count {
            return Err(RingError::Loop);
        }
        let desc = Desc::from_bytes(&read_table_entry(mem, &table[..segs], i * DESC_SIZE)?);
        if desc.flags & VRING_DESC_F_INDIRECT != 0 {
            return Err(RingError::NestedIndirect);
        }
        add_desc(mem, desc.addr, desc.len, desc.flags, buf, chain)?;
        if desc.flags & VRING_DESC_F_NEXT == 0 {
            return Ok(());
        }
        // As get_indirect(): the table is read in order, whatever `next` says; `next`
        // only tells whether the chain goes on. The loop check above bounds it.
        i += 1;
    }
}

/// Translates an indirect table at guest address `addr`, `len` bytes: the table itself
/// may span memory regions (at most 16 of them; more is the table's fault).
fn translate_table<M: GuestMemory + ?Sized>(
    mem: &M,
    addr: u64,
    len: u32,
) -> Result<([Iov; 16], usize), RingError> {
    let mut table = [Iov::default(); 16];
    let segs = match translate(mem, addr, len, &mut table, 0, ACCESS_RO) {
        Err(RingError::TooManySegments) => return Err(RingError::Fault),
        r => r?,
    };
    Ok((table, segs))
}

/// Reads the 16 bytes of the entry at byte `off` of an indirect table given as segments
/// (undecoded: the two layouts order `flags` and `next`/`id` differently).
fn read_table_entry<M: GuestMemory + ?Sized>(
    mem: &M,
    table: &[Iov],
    off: u64,
) -> Result<[u8; 16], RingError> {
    let mut raw = [0u8; 16];
    let mut got = 0usize;
    let mut skip = off;
    for seg in table {
        if skip >= seg.len {
            skip -= seg.len;
            continue;
        }
        let take = ((seg.len - skip) as usize).min(16 - got);
        mem.read(seg.addr.wrapping_add(skip), &mut raw[got..got + take])?;
        got += take;
        skip = 0;
        if got == 16 {
            return Ok(raw);
        }
    }
    Err(RingError::Fault)
}
