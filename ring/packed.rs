// SPDX-License-Identifier: GPL-2.0

//! Packed virtqueues (virtio 1.x spec, 2.8 "Packed Virtqueues", `VIRTIO_F_RING_PACKED`):
//! the device side of one ring, in the shape of the split [`Ring`](super::Ring) (same
//! method names, chains, segments and errors), so that the device layer drives either
//! layout and sees chains and iovecs, not layouts.
//!
//! One descriptor ring serves both ways: the driver makes descriptors available by setting
//! their AVAIL and USED flags from its wrap counter, the device writes used descriptors back
//! over them. Two 4-byte event suppression areas replace the split ring's flags and
//! `used_event`/`avail_event`. `VHOST_SET_VRING_ADDR` names the three parts as QEMU's vhost
//! does for a packed ring: `desc_user_addr` the descriptor ring, `avail_user_addr` the
//! driver area (driver event suppression, read by us), `used_user_addr` the device area
//! (device event suppression, written by us); here [`PackedRing::desc`], `avail`, `used`.
//!
//! vhost.c has no packed engine (7.3 only encodes the packed state of
//! `VHOST_{GET,SET}_VRING_BASE`), so the rules follow the spec, checked against QEMU's
//! `virtqueue_packed_pop()`/`virtqueue_packed_flush()`, DPDK's vhost library
//! (`fill_vec_buf_packed()`, `vhost_vring_call_packed()`) and the Linux driver
//! (drivers/virtio/virtio_ring.c). Where the spec leaves the device a choice we take the
//! strict one, unless a driver in use would trip on it (said where it applies).
//!
//! Driving it, as the split ring: `get_desc()` until `None`; `add_used_n()` with each
//! chain's [`Chain::head`] (the buffer id), written length and [`Chain::ndesc`] (the slots
//! it took, which the used side skips); `discard()` with the same slot counts; `notify()`
//! after used writes; `disable_notify()`/`enable_notify()` around processing.
//!
//! Memory: descriptors are read through `ring_read*(Part::Desc, ..)` and written through
//! `ring_write_desc*()`, logged by `log_desc()` at offsets into the descriptor ring; the
//! driver area is read through `ring_read_u16(Part::Avail, ..)`; the device area is written
//! through `ring_write_u16()` and logged by `log_used()` at offsets into it.

#![allow(dead_code)]

use super::{
    add_desc, read_table_entry, translate_table, Chain, ChainBuf, GuestMemory, Part, RingError,
    DESC_SIZE, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};

/// Largest queue size: "Packed virtqueues support up to 2^15 entries each" (2.8), so that
/// a position and its wrap counter fit the 16 bits of `off_wrap` and of each half of the
/// `VHOST_GET_VRING_BASE` state.
pub(crate) const MAX_NUM: u32 = 0x8000;

/// Alignment of the parts (2.8.10.1, "Structure Size and Alignment": descriptor ring 16,
/// event suppression areas 4; the driver MUST align them). QEMU does not check them; we
/// do, as vhost checks the split parts it casts: the 16-bit flags and `off_wrap` are read
/// and written in single accesses, which must not straddle pages.
pub(crate) const DESC_ALIGN: u64 = 16;
pub(crate) const EVENT_ALIGN: u64 = 4;
/// Size of `struct pvirtq_event_suppress { le16 desc; le16 flags; }`.
pub(crate) const EVENT_SIZE: u64 = 4;

/// Offsets in `struct pvirtq_desc { le64 addr; le32 len; le16 id; le16 flags; }`.
pub(crate) const DESC_LEN_OFFSET: u64 = 8;
pub(crate) const DESC_ID_OFFSET: u64 = 12;
pub(crate) const DESC_FLAGS_OFFSET: u64 = 14;
/// Offsets in `struct pvirtq_event_suppress`: `desc` (off_wrap), then `flags`.
pub(crate) const EVENT_OFF_WRAP_OFFSET: u64 = 0;
pub(crate) const EVENT_FLAGS_OFFSET: u64 = 2;

/// Descriptor flags of the packed layout (2.8.1), beside NEXT, WRITE and INDIRECT.
pub(crate) const VIRTQ_DESC_F_AVAIL: u16 = 1 << 7;
pub(crate) const VIRTQ_DESC_F_USED: u16 = 1 << 15;
/// Event suppression flags (2.8.10); DESC only with `VIRTIO_RING_F_EVENT_IDX`.
pub(crate) const RING_EVENT_FLAGS_ENABLE: u16 = 0;
pub(crate) const RING_EVENT_FLAGS_DISABLE: u16 = 1;
pub(crate) const RING_EVENT_FLAGS_DESC: u16 = 2;
/// The wrap counter's bit in `off_wrap` (`VRING_PACKED_EVENT_F_WRAP_CTR`).
pub(crate) const VRING_PACKED_EVENT_F_WRAP_CTR: u16 = 15;

/// Whether `num` is a packed queue size: 1..=32768, any value. The spec does not ask for a
/// power of two (2.8.10.1) and DPDK's vhost-user accepts any size for packed rings; QEMU
/// caps queues at 1024, and vhost.c's `VHOST_SET_VRING_NUM` wants a power of two whatever
/// the layout, so QEMU with kernel vhost only ever sends powers of two.
pub(crate) fn valid_num(num: u32) -> bool {
    num != 0 && num <= MAX_NUM
}

/// Bytes of the descriptor ring.
pub(crate) fn desc_size(num: u32) -> u64 {
    DESC_SIZE * u64::from(num)
}

/// Whether the three ring addresses are aligned as 2.8.10.1 asks.
pub(crate) fn addr_aligned(desc: u64, avail: u64, used: u64) -> bool {
    desc & (DESC_ALIGN - 1) == 0 && avail & (EVENT_ALIGN - 1) == 0 && used & (EVENT_ALIGN - 1) == 0
}

/// A slot of the descriptor ring and the wrap counter that goes with it (2.8.1): both
/// sides' counters start at 1 and flip each time their position wraps past `num - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingPos {
    pub(crate) idx: u16,
    pub(crate) wrap: bool,
}

impl RingPos {
    /// Where both sides start.
    pub(crate) const START: RingPos = RingPos { idx: 0, wrap: true };

    /// `idx | wrap << 15`: the encoding of `off_wrap` and of `VHOST_{GET,SET}_VRING_BASE`.
    pub(crate) fn encode(self) -> u16 {
        self.idx | u16::from(self.wrap) << VRING_PACKED_EVENT_F_WRAP_CTR
    }

    pub(crate) fn decode(v: u16) -> Self {
        RingPos {
            idx: v & !(1 << VRING_PACKED_EVENT_F_WRAP_CTR),
            wrap: v >> VRING_PACKED_EVENT_F_WRAP_CTR != 0,
        }
    }

    /// The position as one number modulo `2 * num`: two laps tell the wrap counter's two
    /// values apart, so distances and `vring_need_event()` work as on a split ring's
    /// free-running index, modulo `2 * num` instead of 65536.
    fn lin(self, num: u32) -> u32 {
        let num = num.max(1);
        (u32::from(self.idx) + if self.wrap { 0 } else { num }) % (2 * num)
    }

    fn from_lin(l: u32, num: u32) -> Self {
        let num = num.max(1);
        let l = l % (2 * num);
        // l < 2 * num <= 0x10000: either half fits in 16 bits.
        if l < num {
            RingPos {
                idx: l as u16,
                wrap: true,
            }
        } else {
            RingPos {
                idx: (l - num) as u16,
                wrap: false,
            }
        }
    }

    /// `n` slots on, wrapping at `num` and flipping the counter.
    pub(crate) fn advance(self, n: u32, num: u32) -> Self {
        let m = 2 * num.max(1);
        Self::from_lin(self.lin(num) + n % m, num)
    }

    /// `n` slots back.
    pub(crate) fn rewind(self, n: u32, num: u32) -> Self {
        let m = 2 * num.max(1);
        Self::from_lin(self.lin(num) + m - n % m, num)
    }

    /// Slots from `self` on to `to`, modulo two laps.
    pub(crate) fn distance(self, to: RingPos, num: u32) -> u32 {
        let m = 2 * num.max(1);
        (to.lin(num) + m - self.lin(num)) % m
    }
}

/// The packed `vring_need_event()`: has the device's used position, moving from `old` to
/// `new`, passed the position `off_wrap` the driver asked to be told about? As the Linux
/// driver's `virtqueue_kick_prepare_packed()` and DPDK's `vhost_vring_call_packed()`, with
/// the wrap counter placing the event in this lap or the last one; here modulo two laps.
pub(crate) fn need_event(off_wrap: u16, new: RingPos, old: RingPos, num: u32) -> bool {
    let m = 2 * num.max(1);
    let event = RingPos::decode(off_wrap).lin(num);
    let new = new.lin(num);
    (new + 2 * m - event - 1) % m < (new + m - old.lin(num)) % m
}

/// A descriptor, decoded from its little-endian bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Desc {
    addr: u64,
    len: u32,
    id: u16,
    flags: u16,
}

impl Desc {
    fn from_bytes(b: &[u8; 16]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[0..8]);
        Desc {
            addr: u64::from_le_bytes(a),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            id: u16::from_le_bytes([b[12], b[13]]),
            flags: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// Whether `flags` mark a descriptor available in the lap of driver wrap counter `wrap`:
/// AVAIL equal to it and USED not (2.8.1).
fn is_avail(flags: u16, wrap: bool) -> bool {
    (flags & VIRTQ_DESC_F_AVAIL != 0) == wrap && (flags & VIRTQ_DESC_F_USED != 0) != wrap
}

/// The flags of a used descriptor written in the lap of device wrap counter `wrap`: AVAIL
/// and USED both equal to it; WRITE when the device wrote into the buffer, since the spec
/// makes `len` of a used descriptor without WRITE reserved (2.8.3, 2.8.4; DPDK sets it
/// likewise, the Linux driver reads `len` either way).
fn used_flags(wrap: bool, len: u32) -> u16 {
    let mut f = if wrap {
        VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED
    } else {
        0
    };
    if len != 0 {
        f |= VRING_DESC_F_WRITE;
    }
    f
}

/// The device side of one packed ring.
#[derive(Clone, Debug)]
pub(crate) struct PackedRing {
    pub(crate) num: u32,
    /// Owner addresses of the descriptor ring, the driver area (driver event suppression)
    /// and the device area (device event suppression), named as the split parts that
    /// `VHOST_SET_VRING_ADDR` passes them as.
    pub(crate) desc: u64,
    pub(crate) avail: u64,
    pub(crate) used: u64,
    /// The next descriptor to take, with the driver wrap counter it must carry.
    pub(crate) last_avail_idx: RingPos,
    /// Where the furthest chain taken ended: what the split ring's cached avail index is
    /// to it. Chains given back by `discard()` lie before it; only a descriptor made
    /// available here is new to `enable_notify()`.
    pub(crate) avail_idx: RingPos,
    /// Where the next used descriptor goes, with the device wrap counter.
    pub(crate) last_used_idx: RingPos,
    /// The device area flags last written (the split ring's `used_flags`).
    pub(crate) event_flags: u16,
    pub(crate) signalled_used: RingPos,
    pub(crate) signalled_used_valid: bool,
    /// Negotiated `VIRTIO_RING_F_EVENT_IDX`, `VIRTIO_F_NOTIFY_ON_EMPTY` and
    /// `VIRTIO_F_IN_ORDER` (the last changes nothing in taking chains: a packed ring is
    /// always taken in ring order; it lets the used side batch, `add_used_n_in_order()`).
    pub(crate) event_idx: bool,
    pub(crate) notify_on_empty: bool,
    pub(crate) in_order: bool,
}

impl Default for PackedRing {
    fn default() -> Self {
        Self::new()
    }
}

impl PackedRing {
    /// A reset ring: both wrap counters 1 (2.8.1), notifications enabled (the driver zeroes
    /// the device area: flags ENABLE).
    pub(crate) const fn new() -> Self {
        PackedRing {
            num: 1,
            desc: 0,
            avail: 0,
            used: 0,
            last_avail_idx: RingPos::START,
            avail_idx: RingPos::START,
            last_used_idx: RingPos::START,
            event_flags: RING_EVENT_FLAGS_ENABLE,
            signalled_used: RingPos::START,
            signalled_used_valid: false,
            event_idx: false,
            notify_on_empty: false,
            in_order: false,
        }
    }

    /// `VHOST_SET_VRING_NUM`. Positions set for a larger ring would lie past this one,
    /// where `slot()` refuses them but the comparisons of `has_avail()`, `enable_notify()`
    /// and `discard()` (by encoded position) no longer hold: the ring then starts afresh,
    /// as the `VHOST_SET_VRING_BASE` that QEMU and DPDK send after the size would set it.
    /// (Found by the packed fuzz target: a resize after the base, then a failed `get_desc()`
    /// and its `discard()`, left `has_avail()` true for ever.)
    pub(crate) fn set_num(&mut self, num: u32) {
        self.num = num;
        let inside = |p: RingPos| u32::from(p.idx) < num;
        if !(inside(self.last_avail_idx) && inside(self.avail_idx) && inside(self.last_used_idx)) {
            self.last_avail_idx = RingPos::START;
            self.avail_idx = RingPos::START;
            self.last_used_idx = RingPos::START;
            self.signalled_used_valid = false;
        }
    }

    /// `VHOST_GET_VRING_BASE` of a packed ring, as vhost.c and QEMU encode it:
    /// `last_avail_idx | avail_wrap << 15` low, `last_used_idx | used_wrap << 15` high.
    pub(crate) fn get_base(&self) -> u32 {
        u32::from(self.last_avail_idx.encode()) | u32::from(self.last_used_idx.encode()) << 16
    }

    /// `VHOST_SET_VRING_BASE` of a packed ring (`num` set first, as QEMU does). vhost.c
    /// takes any value; a position past the ring would make us read and write outside
    /// it, so both must be below `num`.
    pub(crate) fn set_base(&mut self, base: u32) -> Result<(), RingError> {
        let avail = RingPos::decode(base as u16);
        let used = RingPos::decode((base >> 16) as u16);
        for p in [avail, used] {
            if u32::from(p.idx) >= self.num {
                return Err(RingError::IndexOutOfRange {
                    idx: p.idx.into(),
                    num: self.num,
                });
            }
        }
        self.last_avail_idx = avail;
        self.avail_idx = avail;
        self.last_used_idx = used;
        self.signalled_used_valid = false;
        Ok(())
    }

    /// Ring address of descriptor `idx`, which must be in the ring.
    fn slot(&self, idx: u16) -> Result<u64, RingError> {
        if u32::from(idx) >= self.num {
            return Err(RingError::IndexOutOfRange {
                idx: idx.into(),
                num: self.num,
            });
        }
        Ok(self.desc.wrapping_add(u64::from(idx) * DESC_SIZE))
    }

    /// Whether the descriptor at `pos` is available, from its flags alone.
    fn avail_at<M: GuestMemory + ?Sized>(&self, mem: &M, pos: RingPos) -> Result<bool, RingError> {
        let at = self.slot(pos.idx)?.wrapping_add(DESC_FLAGS_OFFSET);
        Ok(is_avail(mem.ring_read_u16(Part::Desc, at)?, pos.wrap))
    }

    /// Takes the next available chain (QEMU's `virtqueue_packed_pop()`, DPDK's
    /// `fill_vec_buf_packed()`), translating its buffers into `buf`. `Ok(None)` when the
    /// descriptor at `last_avail_idx` is not available. The chain's `head` is its buffer
    /// id, that of its last descriptor (2.8.6); its `ndesc` the ring slots it took.
    pub(crate) fn get_desc<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        buf: &mut ChainBuf<'_>,
    ) -> Result<Option<Chain>, RingError> {
        let head = self.last_avail_idx;
        if !self.avail_at(mem, head)? {
            return Ok(None);
        }
        // The driver makes a chain's first descriptor available last, after a write
        // barrier (2.8.6, 2.8.21.1): read the rest only after seeing it.
        mem.rmb();
        let mut chain = Chain {
            head: 0,
            out_num: 0,
            in_num: 0,
            log_num: 0,
            ndesc: 0,
        };
        let mut pos = head;
        let mut ndesc = 0u32;
        loop {
            // A list no longer than the queue (2.8.17); more is a loop round the ring.
            ndesc += 1;
            if ndesc > self.num {
                return Err(RingError::Loop);
            }
            let mut raw = [0u8; 16];
            mem.ring_read(Part::Desc, self.slot(pos.idx)?, &mut raw)?;
            let desc = Desc::from_bytes(&raw);
            // Every descriptor of a chain carries its lap's flags (2.8.6); one that does
            // not was never made available, or was so a lap ago: taking it would hand
            // the driver's stale or in-progress buffer to the device. QEMU and DPDK look
            // at the first descriptor only.
            if ndesc > 1 && !is_avail(desc.flags, pos.wrap) {
                return Err(RingError::Unavailable {
                    idx: pos.idx.into(),
                });
            }
            if desc.flags & VRING_DESC_F_INDIRECT != 0 {
                // "A driver MUST NOT write direct descriptors with DESC_F_INDIRECT set in
                // a scatter-gather list linked by VIRTQ_DESC_F_NEXT" (2.8.19): an
                // indirect descriptor is its buffer's only one. (vhost's split walk
                // accepts one mid-chain; Linux and DPDK drivers never write that.)
                if ndesc > 1 || desc.flags & VRING_DESC_F_NEXT != 0 {
                    return Err(RingError::IndirectInChain);
                }
                get_indirect(mem, &desc, buf, &mut chain)?;
            } else {
                add_desc(mem, desc.addr, desc.len, desc.flags, buf, &mut chain)?;
            }
            pos = pos.advance(1, self.num);
            if desc.flags & VRING_DESC_F_NEXT == 0 {
                chain.head = desc.id;
                break;
            }
        }
        // ndesc <= num <= 0x8000.
        chain.ndesc = ndesc as u16;
        let pending = self.last_avail_idx.distance(self.avail_idx, self.num);
        self.last_avail_idx = pos;
        if ndesc >= pending {
            self.avail_idx = pos;
        }
        Ok(Some(chain))
    }

    /// `vhost_discard_vq_desc()`: gives back the last `n` chains taken, `ndesc` ring slots
    /// in all (the sum of their `Chain::ndesc`); only the slots matter here.
    pub(crate) fn discard(&mut self, _n: u16, ndesc: u16) {
        self.last_avail_idx = self.last_avail_idx.rewind(ndesc.into(), self.num);
    }

    /// Publishes used buffers (QEMU's `virtqueue_packed_flush()`): `heads[i]` is a
    /// `(buffer id, written length)` pair, `ndesc[i]` the ring slots its chain took
    /// (its `Chain::ndesc`, at least 1), which the next used descriptor skips, as the
    /// driver does (2.8.6). The caller passes them, as QEMU keeps `ndescs` per element,
    /// rather than the ring keeping a table per buffer id.
    ///
    /// A batch appears to the driver at once: every descriptor but the first is written
    /// whole, then after a write barrier the first one's flags (2.8.9 "Multi-buffer
    /// requests"; the driver reads on only past a used first descriptor).
    pub(crate) fn add_used_n<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        heads: &[(u32, u32)],
        ndesc: &[u16],
    ) -> Result<(), RingError> {
        self.put_used_batch(mem, heads, ndesc)
    }

    /// The in-order used side (2.8.8, `VIRTIO_F_IN_ORDER`), as the split ring's
    /// `add_used_n_in_order()`: element `i`, `heads[i]`, stands for a batch of buffers
    /// used in order, named by the last of them, and `ndesc[i]` is the ring slots of the
    /// whole batch. One used descriptor per batch goes where the batch's first buffer
    /// began; the slots skipped keep what they held. The driver takes the skipped buffers
    /// as wholly used (the Linux driver gives them their full writable length).
    pub(crate) fn add_used_n_in_order<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        heads: &[(u32, u32)],
        ndesc: &[u16],
    ) -> Result<(), RingError> {
        self.put_used_batch(mem, heads, ndesc)
    }

    fn put_used_batch<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        heads: &[(u32, u32)],
        ndesc: &[u16],
    ) -> Result<(), RingError> {
        let n = heads.len().min(ndesc.len());
        if n == 0 {
            return Ok(());
        }
        let num = self.num;
        let start = self.last_used_idx;
        let mut pos = start;
        let mut total = 0u32;
        // Ids are the driver's buffer ids as `get_desc()` returned them: 16 bits.
        let id16 =
            |id: u32| u16::try_from(id).map_err(|_| RingError::IndexOutOfRange { idx: id, num });
        for (k, (&(id, len), &nd)) in heads.iter().zip(ndesc).enumerate() {
            if k != 0 {
                self.put_used_desc(mem, pos, id16(id)?, len)?;
                mem.ring_write_desc_u16(
                    self.slot(pos.idx)?.wrapping_add(DESC_FLAGS_OFFSET),
                    used_flags(pos.wrap, len),
                )?;
            }
            total = total.saturating_add(nd.into());
            pos = pos.advance(nd.into(), num);
        }
        let (id, len) = heads[0];
        self.put_used_desc(mem, start, id16(id)?, len)?;
        // Everything above visible before the flags that hand it to the driver.
        mem.wmb();
        mem.ring_write_desc_u16(
            self.slot(start.idx)?.wrapping_add(DESC_FLAGS_OFFSET),
            used_flags(start.wrap, len),
        )?;
        // Log what was written: len, id and flags of each used descriptor.
        let mut at = start;
        for &nd in ndesc.iter().take(n) {
            mem.log_desc(
                u64::from(at.idx) * DESC_SIZE + DESC_LEN_OFFSET,
                DESC_SIZE - DESC_LEN_OFFSET,
            );
            at = at.advance(nd.into(), num);
        }
        self.last_used_idx = pos;
        // If the driver asked for an event at a position we just passed over (two laps
        // on), make sure notify() still sends one (split's `signalled_used` guard).
        let passed = start.distance(self.signalled_used, num);
        if self.signalled_used_valid && (total >= 2 * num || (passed != 0 && passed <= total)) {
            self.signalled_used_valid = false;
        }
        Ok(())
    }

    /// Writes `len` and `id` of the used descriptor at `pos`, not its flags.
    fn put_used_desc<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        pos: RingPos,
        id: u16,
        len: u32,
    ) -> Result<(), RingError> {
        let mut b = [0u8; 6];
        b[0..4].copy_from_slice(&len.to_le_bytes());
        b[4..6].copy_from_slice(&id.to_le_bytes());
        mem.ring_write_desc(self.slot(pos.idx)?.wrapping_add(DESC_LEN_OFFSET), &b)
    }

    /// Whether the driver wants a used buffer notification for what was just used (QEMU's
    /// `virtio_packed_should_notify()`, DPDK's `vhost_vring_call_packed()`), from its
    /// event suppression area: ENABLE yes, DISABLE no, DESC (with EVENT_IDX) when the
    /// used position passed its `off_wrap`. What cannot be read is a yes, as in split.
    pub(crate) fn notify<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> bool {
        self.notify_checked(mem).unwrap_or(true)
    }

    /// [`PackedRing::notify`], with the fault of an unreadable driver area as the error:
    /// the caller signals the driver anyway and reports the queue's error, as
    /// `vhost_notify()` does for a split ring (`vq_err()`, then true).
    pub(crate) fn notify_checked<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        // Flush the used descriptors before reading the driver's suppression state
        // (paired with the barrier the driver executes when enabling events).
        mem.mb();
        if self.notify_on_empty
            && self.last_avail_idx == self.avail_idx
            && !matches!(self.avail_at(mem, self.last_avail_idx), Ok(true))
        {
            return Ok(true);
        }
        let flags = mem.ring_read_u16(Part::Avail, self.avail.wrapping_add(EVENT_FLAGS_OFFSET))?;
        if !self.event_idx {
            // DESC is meaningless without EVENT_IDX, and 3 reserved: anything but
            // DISABLE asks for events (a spurious one is harmless, a lost one is not).
            return Ok(flags != RING_EVENT_FLAGS_DISABLE);
        }
        let old = self.signalled_used;
        let valid = self.signalled_used_valid;
        let new = self.last_used_idx;
        self.signalled_used = new;
        self.signalled_used_valid = true;
        match flags {
            RING_EVENT_FLAGS_DISABLE => Ok(false),
            RING_EVENT_FLAGS_DESC if valid => {
                // The driver writes off_wrap before the flags that make it count.
                mem.rmb();
                let off_wrap =
                    mem.ring_read_u16(Part::Avail, self.avail.wrapping_add(EVENT_OFF_WRAP_OFFSET))?;
                Ok(need_event(off_wrap, new, old, self.num))
            }
            _ => Ok(true),
        }
    }

    /// Writes the device area's flags, logged.
    fn put_event_flags<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        flags: u16,
    ) -> Result<(), RingError> {
        mem.ring_write_u16(self.used.wrapping_add(EVENT_FLAGS_OFFSET), flags)?;
        mem.log_used(EVENT_FLAGS_OFFSET, 2);
        Ok(())
    }

    /// As a backend starts (`vhost_vq_init_access()`): publishes the device area as this
    /// ring's notification state has it (with DESC, its `off_wrap` first).
    pub(crate) fn init_event_flags<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<(), RingError> {
        if self.event_flags == RING_EVENT_FLAGS_DESC {
            self.put_event_off_wrap(mem)?;
        }
        self.put_event_flags(mem, self.event_flags)
    }

    /// Writes the device area's `off_wrap` (the position past the furthest chain taken),
    /// logged, and orders it before the flags that make it count: the driver may read the
    /// two fields apart (Linux reads both in one load, DPDK's driver flags first).
    fn put_event_off_wrap<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<(), RingError> {
        mem.ring_write_u16(
            self.used.wrapping_add(EVENT_OFF_WRAP_OFFSET),
            self.avail_idx.encode(),
        )?;
        mem.log_used(EVENT_OFF_WRAP_OFFSET, 2);
        mem.wmb();
        Ok(())
    }

    /// `vhost_disable_notify()`: asks the driver not to send available buffer
    /// notifications while we are processing (device area flags DISABLE, with or without
    /// EVENT_IDX: a stale `off_wrap` a lap old could still match).
    pub(crate) fn disable_notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<(), RingError> {
        if self.event_flags == RING_EVENT_FLAGS_DISABLE {
            return Ok(());
        }
        self.put_event_flags(mem, RING_EVENT_FLAGS_DISABLE)?;
        self.event_flags = RING_EVENT_FLAGS_DISABLE;
        Ok(())
    }

    /// `vhost_enable_notify()`: asks for notifications again (ENABLE, or with EVENT_IDX
    /// DESC at the position past the furthest chain taken). `Ok(true)` if a descriptor
    /// was made available there meanwhile, so the caller must process again rather than
    /// sleep. As the split ring (7.3's RX livelock fix), chains given back by a discard
    /// are not new: they do not count.
    pub(crate) fn enable_notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        if self.event_flags != RING_EVENT_FLAGS_DISABLE {
            return Ok(false);
        }
        let flags = if self.event_idx {
            self.put_event_off_wrap(mem)?;
            RING_EVENT_FLAGS_DESC
        } else {
            RING_EVENT_FLAGS_ENABLE
        };
        self.put_event_flags(mem, flags)?;
        self.event_flags = flags;
        // They could have made one available as we were doing that: make sure our
        // flags are visible, then look again.
        mem.mb();
        self.avail_at(mem, self.avail_idx)
    }

    /// Whether the driver has buffers we have not taken (`vhost_vq_avail_empty()`
    /// negated): chains given back, or the next descriptor available.
    pub(crate) fn has_avail<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        if self.last_avail_idx != self.avail_idx {
            return Ok(true);
        }
        self.avail_at(mem, self.last_avail_idx)
    }
}

/// An indirect table (2.8.7): `len / 16` descriptors, all of them the buffer's. WRITE is
/// the only flag that counts in it; "others are reserved and are ignored by the device",
/// and we do ignore NEXT, AVAIL and USED, which DPDK's virtio PMD writes there (NEXT for a
/// multi-segment mbuf). An INDIRECT among them is refused, as vhost's split walk does
/// (`get_indirect()`): no driver writes one. Length rules as split: a multiple of 16, at
/// most 65536 entries, not empty.
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
    if count == 0 {
        // As split's get_indirect(): its first entry is already past the table.
        return Err(RingError::Loop);
    }
    for i in 0..count {
        let desc = Desc::from_bytes(&read_table_entry(mem, &table[..segs], i * DESC_SIZE)?);
        if desc.flags & VRING_DESC_F_INDIRECT != 0 {
            return Err(RingError::NestedIndirect);
        }
        let flags = desc.flags & VRING_DESC_F_WRITE;
        add_desc(mem, desc.addr, desc.len, flags, buf, chain)?;
    }
    Ok(())
}
