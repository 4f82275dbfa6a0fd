// SPDX-License-Identifier: GPL-2.0

//! Split virtqueue layout (virtio 1.x spec, 2.7 "Split Virtqueues").
//!
//! No kernel I/O here: the same file builds in the host crate under `tests/host`, where it
//! is unit-tested. The descriptor-chain engine joins it with the data path.

#![allow(dead_code)]

/// Largest queue size a split ring may have (2.7: "Queue Size ... maximum 32768"); vhost
/// itself accepts any power of two up to 0xffff, so we do too.
pub(crate) const MAX_NUM: u32 = 0xffff;
/// Size of one `struct virtq_desc`.
pub(crate) const DESC_SIZE: u64 = 16;
/// Alignment the spec requires of the avail and used rings (2.7, table "Virtqueue Part
/// Alignment"); vhost checks these two, and the log address against the used alignment.
pub(crate) const AVAIL_ALIGN: u64 = 2;
pub(crate) const USED_ALIGN: u64 = 4;
/// Offsets in `struct virtq_used`: `le16 flags; le16 idx; struct virtq_used_elem ring[]`.
pub(crate) const USED_FLAGS_OFFSET: u64 = 0;
pub(crate) const USED_IDX_OFFSET: u64 = 2;
/// `VRING_USED_F_NO_NOTIFY`
pub(crate) const USED_F_NO_NOTIFY: u16 = 1;

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
