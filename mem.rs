// SPDX-License-Identifier: GPL-2.0

//! The guest memory table (`VHOST_SET_MEM_TABLE`) and the dirty log (`VHOST_SET_LOG_BASE`).
//!
//! A table maps guest physical ranges to the owner's virtual addresses. It follows
//! `vhost_iotlb_add_range_ctx()` (drivers/vhost/iotlb.c) rule for rule, so that the same
//! tables are accepted and refused as by vhost-net: overlapping regions are accepted (as
//! there), `[0, U64_MAX]` is split in two, and a full table retires its oldest entry.

use crate::sys;
use kernel::prelude::*;

/// `VHOST_PAGE_SIZE`: the dirty log has one bit per 4 KiB guest page, whatever the host's.
pub(crate) const VHOST_PAGE_SIZE: u64 = 0x1000;

/// One mapping: guest physical (or, in the device IOTLB, I/O virtual) `[start, last]` at
/// user address `addr`, with permissions `perm` (always RW in the memory table).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Map {
    pub(crate) start: u64,
    pub(crate) last: u64,
    pub(crate) addr: u64,
    pub(crate) perm: u8,
}

impl Map {
    /// Length in bytes; never 0 and never overflows because `[0, U64_MAX]` is split.
    pub(crate) fn size(&self) -> u64 {
        self.last.wrapping_sub(self.start).wrapping_add(1)
    }
}

/// A mapping in a table: with its age (the order of insertion, which decides which entry
/// a full table retires) and the largest `last` of it and every mapping before it.
#[derive(Clone, Copy)]
struct Entry {
    map: Map,
    seq: u64,
    max_last: u64,
}

/// A memory table, or the device IOTLB: up to `max_iotlb_entries` mappings, kept sorted by
/// start (equal starts in insertion order) with a running maximum of their ends, so that a
/// lookup is a binary search, as the interval tree of iotlb.c makes it a tree walk. A table
/// changes only by ioctl or IOTLB message; it is looked up for every buffer.
pub(crate) struct MemTable {
    maps: KVec<Entry>,
    limit: usize,
    seq: u64,
}

impl MemTable {
    /// An empty table holding at most `limit` mappings (`max_iotlb_entries`).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            maps: KVec::new(),
            limit,
            seq: 0,
        }
    }

    /// Recomputes the running maximum of ends from entry `from` on.
    fn fix_max_last(&mut self, from: usize) {
        let mut max = match from.checked_sub(1).and_then(|i| self.maps.get(i)) {
            Some(e) => e.max_last,
            None => 0,
        };
        for e in self.maps.iter_mut().skip(from) {
            max = max.max(e.map.last);
            e.max_last = max;
        }
    }

    /// `vhost_iotlb_add_range()` with `VHOST_IOTLB_FLAG_RETIRE`.
    pub(crate) fn add_range(&mut self, start: u64, last: u64, addr: u64, perm: u8) -> Result {
        if last < start {
            return Err(EFAULT);
        }
        if self.limit == 0 {
            return Err(EINVAL);
        }
        let (mut start, mut addr) = (start, addr);
        if start == 0 && last == u64::MAX {
            // Its size would overflow u64: map it as two halves.
            if self.limit < 2 {
                return Err(ENOSPC);
            }
            let mid = last / 2;
            self.add_range(start, mid, addr, perm)?;
            addr = addr.wrapping_add(mid + 1);
            start = mid + 1;
        }
        if self.maps.len() >= self.limit {
            // VHOST_IOTLB_FLAG_RETIRE: the oldest entry makes room.
            let oldest = (0..self.maps.len()).min_by_key(|&i| self.maps[i].seq);
            if let Some(i) = oldest {
                self.maps.remove(i)?;
                self.fix_max_last(i);
            }
        }
        let map = Map {
            start,
            last,
            addr,
            perm,
        };
        // After every entry starting at or before it: among equal starts the oldest is
        // found first, as in the interval tree.
        let at = self.maps.partition_point(|e| e.map.start <= start);
        self.maps.reserve(1, GFP_KERNEL)?;
        let e = Entry {
            map,
            seq: self.seq,
            max_last: 0,
        };
        self.maps
            .insert_within_capacity(at, e)
            .map_err(|_| ENOMEM)?;
        self.seq = self.seq.wrapping_add(1);
        self.fix_max_last(at);
        Ok(())
    }

    /// `vhost_iotlb_del_range()`: removes every mapping overlapping `[start, last]`, whole.
    pub(crate) fn del_range(&mut self, start: u64, last: u64) {
        self.maps
            .retain(|e| !(e.map.start <= last && e.map.last >= start));
        self.fix_max_last(0);
    }

    /// The mappings, by start.
    pub(crate) fn maps(&self) -> impl Iterator<Item = &Map> {
        self.maps.iter().map(|e| &e.map)
    }
}

/// `vhost_overflow()`: whether `[uaddr, uaddr + size)` wraps the address space.
fn overflows(uaddr: u64, size: u64) -> bool {
    size != 0 && uaddr > u64::MAX - size + 1
}

/// `log_access_ok()`: whether the log bitmap covering `[addr, addr + sz)` is in user memory.
pub(crate) fn log_access_ok(log_base: u64, addr: u64, sz: u64) -> bool {
    let a = addr / VHOST_PAGE_SIZE / 8;
    if a > u64::MAX - log_base {
        return false;
    }
    let bytes = sz.wrapping_add(VHOST_PAGE_SIZE * 8 - 1) / VHOST_PAGE_SIZE / 8;
    sys::access_ok(log_base + a, bytes)
}

/// `vq_memory_access_ok()`: every mapping is user memory (and loggable when `log_all`).
/// No table at all (a device that never had `SET_MEM_TABLE`) is not ok.
pub(crate) fn memory_access_ok(table: Option<&MemTable>, log_base: u64, log_all: bool) -> bool {
    let Some(table) = table else {
        return false;
    };
    table.maps().all(|m| {
        !overflows(m.addr, m.size())
            && sys::access_ok(m.addr, m.size())
            && (!log_all || log_access_ok(log_base, m.start, m.size()))
    })
}

/// `log_write()`: marks the guest pages of `[addr, addr + len)` dirty in the bitmap at
/// `log_base`, one atomic bit per page.
pub(crate) fn log_write(log_base: u64, addr: u64, len: u64) -> Result {
    if len == 0 {
        return Ok(());
    }
    let mut page = addr / VHOST_PAGE_SIZE;
    let mut len = len.wrapping_add(addr % VHOST_PAGE_SIZE);
    loop {
        let log = log_base.wrapping_add(page / 8);
        sys::set_bit_to_user((page % 8) as i32, log)?;
        if len <= VHOST_PAGE_SIZE {
            return Ok(());
        }
        len -= VHOST_PAGE_SIZE;
        page = page.wrapping_add(1);
    }
}

impl MemTable {
    /// `vhost_iotlb_itree_first()`: the mapping with the lowest start overlapping
    /// `[gpa, last]` (among equal starts the oldest), in O(log n).
    pub(crate) fn lookup(&self, gpa: u64, last: u64) -> Option<&Map> {
        // The first entry whose running maximum of ends reaches `gpa` is the first whose
        // own end does: no entry before it overlaps. It is the answer unless it starts
        // past `last`, and then so does every later one.
        let i = self.maps.partition_point(|e| e.max_last < gpa);
        self.maps.get(i).map(|e| &e.map).filter(|m| m.start <= last)
    }
}

/// `log_write_hva()`: marks dirty the guest pages behind user range `[hva, hva + len)`,
/// found through the memory table (several guest ranges may share a user range: each is
/// logged). `EFAULT` if some part is in no region. Used with the device IOTLB, whose
/// buffers are known by user address only.
pub(crate) fn log_write_hva(umem: &MemTable, log_base: u64, hva: u64, len: u64) -> Result {
    let (mut hva, mut len) = (hva, len);
    // As C: `hit` is not reset between chunks, and the step is the shortest piece logged.
    let mut hit = false;
    while len != 0 {
        let mut min = len;
        for u in umem.maps() {
            let ulast = u.addr.wrapping_sub(1).wrapping_add(u.size());
            let last = hva.wrapping_sub(1).wrapping_add(len);
            if u.addr > last || ulast < hva {
                continue;
            }
            let start = u.addr.max(hva);
            let end = ulast.min(last);
            let l = end.wrapping_sub(start).wrapping_add(1);
            log_write(log_base, u.start.wrapping_add(start - u.addr), l)?;
            hit = true;
            min = min.min(l);
        }
        if !hit {
            return Err(EFAULT);
        }
        len -= min;
        hva = hva.wrapping_add(min);
    }
    Ok(())
}
