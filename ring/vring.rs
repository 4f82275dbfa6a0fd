// SPDX-License-Identifier: GPL-2.0

//! One ring of either layout: the split [`Ring`] or the packed [`PackedRing`], chosen by
//! the negotiated `VIRTIO_F_RING_PACKED`. The device layer (dev.rs) keeps a [`Vring`] per
//! queue and drives it through one set of methods, so that the device types above it see
//! chains and iovecs, not layouts. What differs between the layouts at the vhost ABI is
//! here too: the parts' sizes and alignment, the access the descriptor part needs, and
//! the `VHOST_{GET,SET}_VRING_BASE` encoding.

use super::{
    packed::{self, PackedRing},
    Chain, ChainBuf, GuestMemory, Part, Ring, RingError, ACCESS_RO, ACCESS_RW, ACCESS_WO,
    AVAIL_ALIGN, USED_ALIGN,
};

/// The ring of one virtqueue, split or packed.
#[derive(Clone, Debug)]
pub(crate) enum Vring {
    Split(Ring),
    Packed(PackedRing),
}

impl Default for Vring {
    fn default() -> Self {
        Self::new()
    }
}

/// Calls the same method on whichever layout the ring has.
macro_rules! either {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Vring::Split($r) => $e,
            Vring::Packed($r) => $e,
        }
    };
}

impl Vring {
    /// The state `vhost_vq_reset()` leaves: split until a packed ring is negotiated.
    pub(crate) const fn new() -> Self {
        Vring::Split(Ring::new())
    }

    pub(crate) fn is_packed(&self) -> bool {
        matches!(self, Vring::Packed(_))
    }

    /// Entries in the ring (`vq->num`).
    pub(crate) fn num(&self) -> u32 {
        either!(self, r => r.num)
    }

    /// `VHOST_SET_VRING_NUM` (a packed ring whose positions lie past the new size starts
    /// afresh: `PackedRing::set_num`).
    pub(crate) fn set_num(&mut self, num: u32) {
        match self {
            Vring::Split(r) => r.num = num,
            Vring::Packed(r) => r.set_num(num),
        }
    }

    /// The three ring addresses as `VHOST_SET_VRING_ADDR` gave them: descriptors, avail
    /// (packed: driver area), used (packed: device area).
    pub(crate) fn addrs(&self) -> (u64, u64, u64) {
        either!(self, r => (r.desc, r.avail, r.used))
    }

    pub(crate) fn set_addrs(&mut self, desc: u64, avail: u64, used: u64) {
        either!(self, r => {
            r.desc = desc;
            r.avail = avail;
            r.used = used;
        })
    }

    /// Takes on negotiated features. A change of layout (`VIRTIO_F_RING_PACKED` acked or
    /// dropped) starts a ring of the other layout from its initial state, keeping the size
    /// and the addresses already set: QEMU and DPDK set features before the ring, but
    /// vhost.c lets them come in any order.
    pub(crate) fn set_features(
        &mut self,
        packed: bool,
        event_idx: bool,
        notify_on_empty: bool,
        in_order: bool,
    ) {
        if packed != self.is_packed() {
            let num = self.num();
            let (desc, avail, used) = self.addrs();
            *self = if packed {
                Vring::Packed(PackedRing::new())
            } else {
                Vring::Split(Ring::new())
            };
            self.set_num(num);
            self.set_addrs(desc, avail, used);
        }
        either!(self, r => {
            r.event_idx = event_idx;
            r.notify_on_empty = notify_on_empty;
            r.in_order = in_order;
        })
    }

    pub(crate) fn event_idx(&self) -> bool {
        either!(self, r => r.event_idx)
    }

    pub(crate) fn in_order(&self) -> bool {
        either!(self, r => r.in_order)
    }

    /// Whether `VHOST_SET_VRING_ADDR` may place the parts there: vhost.c's checks of the
    /// avail and used alignment (and of the log address, against the used one), and for a
    /// packed ring the spec's 16-byte descriptor ring and 4-byte event areas (2.8.10.1).
    pub(crate) fn addr_aligned(&self, desc: u64, avail: u64, used: u64, log: u64) -> bool {
        let split = avail % AVAIL_ALIGN == 0 && used % USED_ALIGN == 0 && log % USED_ALIGN == 0;
        split && (!self.is_packed() || packed::addr_aligned(desc, avail, used))
    }

    /// The parts of a ring of `num` entries, as `(part, access, address, bytes)`: what
    /// `vq_access_ok()` checks and the IOTLB prefetch maps. A packed ring's descriptors
    /// are written too (its used descriptors).
    pub(crate) fn parts(
        &self,
        num: u32,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> [(Part, u8, u64, u64); 3] {
        match self {
            Vring::Split(r) => [
                (Part::Desc, ACCESS_RO, desc, super::desc_size(num)),
                (
                    Part::Avail,
                    ACCESS_RO,
                    avail,
                    super::avail_size(num, r.event_idx),
                ),
                (
                    Part::Used,
                    ACCESS_WO,
                    used,
                    super::used_size(num, r.event_idx),
                ),
            ],
            Vring::Packed(_) => [
                (Part::Desc, ACCESS_RW, desc, packed::desc_size(num)),
                (Part::Avail, ACCESS_RO, avail, packed::EVENT_SIZE),
                (Part::Used, ACCESS_WO, used, packed::EVENT_SIZE),
            ],
        }
    }

    /// Bytes of the used part (packed: the device area) that dirty logging covers from
    /// `log_addr`.
    pub(crate) fn used_log_size(&self) -> u64 {
        self.parts(self.num(), 0, 0, 0)[Part::Used as usize].3
    }

    /// `VHOST_GET_VRING_BASE`: the split last avail index, or vhost.c's packed encoding
    /// (avail position and wrap counter low, used high).
    pub(crate) fn get_base(&self) -> u32 {
        match self {
            Vring::Split(r) => u32::from(r.last_avail_idx),
            Vring::Packed(r) => r.get_base(),
        }
    }

    /// `VHOST_SET_VRING_BASE`. Split: a 16-bit avail index (the used index is read from
    /// the ring when a backend starts). Packed: both positions, refused outside the ring.
    ///
    /// DPDK's virtio-user sends a packed ring's initial state as `1 << 15` alone, with no
    /// used half (its vhost-user backend takes both positions from the low 16 bits); a zero
    /// used half with that avail half is read as a fresh ring, whose used side starts
    /// where the avail side does. (The one state this misreads, a whole ring in flight
    /// exactly at the end of an odd lap, is not one a stopped vhost-net queue leaves.)
    pub(crate) fn set_base(&mut self, base: u32) -> Result<(), RingError> {
        match self {
            Vring::Split(r) => {
                let idx = u16::try_from(base).map_err(|_| RingError::IndexOutOfRange {
                    idx: base,
                    num: r.num,
                })?;
                r.last_avail_idx = idx;
                r.next_avail_head = idx;
                r.avail_idx = idx;
                Ok(())
            }
            Vring::Packed(r) => {
                let start = u32::from(packed::RingPos::START.encode());
                if base == start {
                    return r.set_base(start | start << 16);
                }
                r.set_base(base)
            }
        }
    }

    /// `vhost_vq_init_access()`'s ring part, as a backend starts: publishes our
    /// notification flags (split: `vhost_update_used_flags()`, packed: the device area's
    /// flags) and forgets the last signalled position. The split caller then reads the
    /// used index the guest's ring holds ([`Vring::set_last_used`]); a packed ring's
    /// used position came with `VHOST_SET_VRING_BASE`.
    pub(crate) fn init_access<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<(), RingError> {
        match self {
            Vring::Split(r) => {
                r.signalled_used_valid = false;
                r.update_used_flags(mem)
            }
            Vring::Packed(r) => {
                r.signalled_used_valid = false;
                r.init_event_flags(mem)
            }
        }
    }

    /// The used index read from a split ring's used part (nothing for a packed ring).
    pub(crate) fn set_last_used(&mut self, idx: u16) {
        if let Vring::Split(r) = self {
            r.last_used_idx = idx;
        }
    }

    /// The next available chain, translated into `buf` (`vhost_get_vq_desc()`).
    pub(crate) fn get_desc<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        buf: &mut ChainBuf<'_>,
    ) -> Result<Option<Chain>, RingError> {
        either!(self, r => r.get_desc(mem, buf))
    }

    /// Gives back the last `n` chains taken, `ndesc` descriptors in all.
    pub(crate) fn discard(&mut self, n: u16, ndesc: u16) {
        either!(self, r => r.discard(n, ndesc))
    }

    /// Publishes used buffers: `heads[i]` is `(id, written length)`, `ndesc[i]` the
    /// descriptors its chain took (`Chain::ndesc`, which only a packed ring needs).
    pub(crate) fn add_used_n<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        heads: &[(u32, u32)],
        ndesc: &[u16],
    ) -> Result<(), RingError> {
        match self {
            Vring::Split(r) => r.add_used_n(mem, heads),
            Vring::Packed(r) => r.add_used_n(mem, heads, ndesc),
        }
    }

    /// Publishes in-order batches: `heads[i]` names the last buffer of batch `i`, which
    /// is `nbufs[i]` buffers of `ndesc[i]` descriptors (the split ring counts buffers, the
    /// packed one ring slots).
    pub(crate) fn add_used_n_in_order<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        heads: &[(u32, u32)],
        nbufs: &[u16],
        ndesc: &[u16],
    ) -> Result<(), RingError> {
        match self {
            Vring::Split(r) => r.add_used_n_in_order(mem, heads, nbufs),
            Vring::Packed(r) => r.add_used_n_in_order(mem, heads, ndesc),
        }
    }

    /// `vhost_notify()`: whether the guest wants an interrupt for what was just used;
    /// an unreadable suppression field is an error, on which the caller signals anyway.
    pub(crate) fn notify<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<bool, RingError> {
        either!(self, r => r.notify_checked(mem))
    }

    /// `vhost_disable_notify()`
    pub(crate) fn disable_notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<(), RingError> {
        either!(self, r => r.disable_notify(mem))
    }

    /// `vhost_enable_notify()`: `Ok(true)` if the guest made buffers available meanwhile.
    pub(crate) fn enable_notify<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        either!(self, r => r.enable_notify(mem))
    }

    /// Whether the guest has buffers we have not taken.
    pub(crate) fn has_avail<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, RingError> {
        either!(self, r => r.has_avail(mem))
    }
}
