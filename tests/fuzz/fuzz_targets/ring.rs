// SPDX-License-Identifier: GPL-2.0

//! Coverage-guided fuzzing of ring.rs (`scripts/fuzz-host.sh`, `make fuzz-host`).
//!
//! The input is a scenario: a ring size, features, a guest memory table of a few regions
//! with holes between them, ring parts placed in a 64 KiB owner address space with pages
//! that fault, descriptor table, avail ring and indirect table contents, then a sequence of
//! device operations (`get_desc` with small or large buffers, `discard`, `add_used_n`,
//! notification) interleaved with guest writes (new chains, avail index, raw bytes) and
//! injected faults. The byte format is read by [`Input`]; `examples/seeds.rs` writes it.
//!
//! Every operation is checked twice. Against invariants that hold whatever the model says:
//! no panic or overflow (built with overflow checks), every segment non-empty and inside
//! one memory region, no more segments or log entries than the buffers given and nothing
//! written past them, writes only to the used ring (flags, idx, elements, `avail_event`)
//! and each one logged, reads only of descriptors, the avail ring and indirect tables, the
//! barriers of vhost.c (wmb before the used idx, rmb after a new avail idx, mb before the
//! re-read of `enable_notify()` and first in `notify()`), the avail index never more than
//! `num` ahead when it is read, `last_avail_idx` moved by exactly what was taken or
//! discarded. And against a reference
//! written from drivers/vhost/vhost.c (`vhost_get_vq_desc_n()`, `get_indirect()`,
//! `translate_desc()`, `vhost_add_used_n()`, `vhost_notify()`,
//! `vhost_{en,dis}able_notify()`): same result, same ring state, same bytes written.
//! Where ring.rs deliberately differs from the C (indirect tables of at most 16 segments,
//! a bounded log buffer, `enable_notify()` reporting any buffer not yet taken), the
//! reference says so.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::{Cell, RefCell};

#[path = "../../../ring.rs"]
mod ring;

use ring::*;

/// The owner (VMM) address space: 16 pages at `BASE`; everything else faults.
const BASE: u64 = 0x7f3a_0000_0000;
const PAGE: u64 = 0x1000;
const OWNER_SIZE: u64 = 16 * PAGE;
/// What an unwritten iov or log slot holds, to see that nothing is written past a chain.
const SENTINEL: Iov = Iov {
    addr: 0x5e47_1e11_5e47_1e11,
    len: 0x5e47_1e11,
};
const LOG_SENTINEL: LogEntry = LogEntry {
    gpa: 0x5e47_1e11_5e47_1e11,
    len: 0x5e47_1e11,
};
/// Most operations one input runs.
const MAX_OPS: usize = 256;

fuzz_target!(|data: &[u8]| run(data));

/// The fuzz input, read front to back; past its end every read gives 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One mapping of the memory table: guest physical `[start, last]` at owner `addr`.
#[derive(Clone, Copy, Debug)]
struct Map {
    start: u64,
    last: u64,
    addr: u64,
    /// Permissions (`ACCESS_RO | ACCESS_WO`): always both in the memory table.
    perm: u8,
}

impl Map {
    fn size(&self) -> u64 {
        self.last.wrapping_sub(self.start).wrapping_add(1)
    }
}

/// One write of ring.rs (at most 8 bytes: a used element): address, bytes, whether it
/// landed. Fixed-size, as a bulk `add_used_n` records 65535 of them.
#[derive(Clone, Copy, PartialEq, Eq)]
struct W {
    addr: u64,
    len: u8,
    bytes: [u8; 8],
    ok: bool,
}

impl W {
    fn new(addr: u64, data: &[u8], ok: bool) -> Self {
        assert!(
            data.len() <= 8,
            "write of {} bytes at {addr:#x}",
            data.len()
        );
        let mut bytes = [0; 8];
        bytes[..data.len()].copy_from_slice(data);
        W {
            addr,
            len: data.len() as u8,
            bytes,
            ok,
        }
    }
    fn data(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for W {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "W({:#x}, {:x?}, {})", self.addr, self.data(), self.ok)
    }
}

/// What ring.rs did to guest memory, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Read(u64, usize),
    Write(W),
    /// `log_used(offset, len)`.
    Log(u64, u64),
    Rmb,
    Wmb,
    Mb,
}

/// Guest memory as the module's `UserMem` and `MemTable` present it (guest.rs, mem.rs),
/// recording what ring.rs does, with an optional injected fault.
struct Mem {
    bytes: RefCell<Vec<u8>>,
    /// Pages (bit i: page i) that fault on read, and on write.
    no_read: u16,
    no_write: u16,
    maps: Vec<Map>,
    /// Every access and barrier of ring.rs in the current operation.
    events: RefCell<Vec<Ev>>,
    /// The ring's n-th next access fails (0: none); `injected` once it has.
    fail_in: Cell<u32>,
    injected: Cell<bool>,
    /// Buffers are translated through a device IOTLB (the maps' permissions hold, and a
    /// hole is a miss).
    iotlb: bool,
}

impl Mem {
    /// `MemTable::add_range()`: an empty range is refused, `[0, U64_MAX]` split in two.
    fn add_map(&mut self, start: u64, last: u64, addr: u64, perm: u8) {
        if last < start {
            return;
        }
        if start == 0 && last == u64::MAX {
            let mid = last / 2;
            self.maps.push(Map {
                start,
                last: mid,
                addr,
                perm,
            });
            self.maps.push(Map {
                start: mid + 1,
                last,
                addr: addr.wrapping_add(mid + 1),
                perm,
            });
            return;
        }
        self.maps.push(Map {
            start,
            last,
            addr,
            perm,
        });
    }

    /// `MemTable::lookup()`: the mapping with the lowest start overlapping `[gpa, last]`.
    fn find(&self, gpa: u64, last: u64) -> Option<Map> {
        self.maps
            .iter()
            .filter(|m| m.start <= last && m.last >= gpa)
            .min_by_key(|m| m.start)
            .copied()
    }

    /// Whether `[uaddr, uaddr + len)` is owner memory outside the `deny` pages.
    fn ok(&self, uaddr: u64, len: usize, deny: u16) -> bool {
        let Some(off) = uaddr.checked_sub(BASE) else {
            return false;
        };
        let Some(end) = off.checked_add(len as u64) else {
            return false;
        };
        if end > OWNER_SIZE {
            return false;
        }
        len == 0 || (off / PAGE..=(end - 1) / PAGE).all(|p| deny & (1 << p) == 0)
    }

    /// A read as the reference does it: never counts towards an injected fault.
    fn peek(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        if !self.ok(uaddr, buf.len(), self.no_read) {
            return Err(RingError::Fault);
        }
        let o = (uaddr - BASE) as usize;
        buf.copy_from_slice(&self.bytes.borrow()[o..o + buf.len()]);
        Ok(())
    }

    fn peek_u16(&self, uaddr: u64) -> Result<u16, RingError> {
        let mut b = [0; 2];
        self.peek(uaddr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// A guest write to its own memory at an owner address: whatever lies inside the
    /// owner space is written, page protection notwithstanding.
    fn poke(&self, uaddr: u64, data: &[u8]) {
        let mut b = self.bytes.borrow_mut();
        for (k, &v) in data.iter().enumerate() {
            let a = uaddr.wrapping_add(k as u64);
            if a >= BASE && a - BASE < OWNER_SIZE {
                b[(a - BASE) as usize] = v;
            }
        }
    }

    /// A guest write at a guest physical address, through the memory table.
    fn poke_gpa(&self, gpa: u64, data: &[u8]) {
        for (k, &v) in data.iter().enumerate() {
            let a = gpa.wrapping_add(k as u64);
            if let Some(m) = self.find(a, a) {
                self.poke(m.addr.wrapping_add(a - m.start), &[v]);
            }
        }
    }

    /// Counts one access of ring.rs; true if it is the one to fail.
    fn inject(&self) -> bool {
        match self.fail_in.get() {
            0 => false,
            1 => {
                self.fail_in.set(0);
                self.injected.set(true);
                true
            }
            n => {
                self.fail_in.set(n - 1);
                false
            }
        }
    }
}

impl GuestMemory for Mem {
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        self.events.borrow_mut().push(Ev::Read(uaddr, buf.len()));
        if self.inject() {
            return Err(RingError::Fault);
        }
        self.peek(uaddr, buf)
    }
    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), RingError> {
        let ok = !self.inject() && self.ok(uaddr, buf.len(), self.no_write);
        self.events
            .borrow_mut()
            .push(Ev::Write(W::new(uaddr, buf, ok)));
        if !ok {
            return Err(RingError::Fault);
        }
        let o = (uaddr - BASE) as usize;
        self.bytes.borrow_mut()[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    /// As `UserMem::lookup()` (guest.rs): with the device IOTLB, no mapping is a miss and
    /// a mapping without the access asked for a permission error.
    fn lookup(&self, gpa: u64, last: u64, access: u8) -> Result<(u64, u64, u64), RingError> {
        match self.find(gpa, last) {
            Some(m) if self.iotlb && m.start > gpa => Err(RingError::Miss),
            Some(m) if self.iotlb && m.perm & access == 0 => Err(RingError::Perm),
            Some(m) => Ok((m.start, m.size(), m.addr)),
            None if self.iotlb => Err(RingError::Miss),
            None => Err(RingError::Fault),
        }
    }
    fn log_used(&self, offset: u64, len: u64) {
        self.events.borrow_mut().push(Ev::Log(offset, len));
    }
    fn rmb(&self) {
        self.events.borrow_mut().push(Ev::Rmb);
    }
    fn wmb(&self) {
        self.events.borrow_mut().push(Ev::Wmb);
    }
    fn mb(&self) {
        self.events.borrow_mut().push(Ev::Mb);
    }
}

/// The ring's mutable state, as the reference tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    last_avail_idx: u16,
    avail_idx: u16,
    last_used_idx: u16,
    next_avail_head: u16,
    used_flags: u16,
    signalled_used: u16,
    signalled_used_valid: bool,
}

impl State {
    fn of(r: &Ring) -> Self {
        State {
            last_avail_idx: r.last_avail_idx,
            avail_idx: r.avail_idx,
            last_used_idx: r.last_used_idx,
            next_avail_head: r.next_avail_head,
            used_flags: r.used_flags,
            signalled_used: r.signalled_used,
            signalled_used_valid: r.signalled_used_valid,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

impl Desc {
    fn bytes(&self) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&self.addr.to_le_bytes());
        d[8..12].copy_from_slice(&self.len.to_le_bytes());
        d[12..14].copy_from_slice(&self.flags.to_le_bytes());
        d[14..16].copy_from_slice(&self.next.to_le_bytes());
        d
    }
    fn from(b: &[u8; 16]) -> Self {
        Desc {
            addr: u64::from_le_bytes(b[0..8].try_into().unwrap()),
            len: u32::from_le_bytes(b[8..12].try_into().unwrap()),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// A chain as the reference walks it.
#[derive(Debug, Default)]
struct RefChain {
    head: u16,
    out: Vec<Iov>,
    inn: Vec<Iov>,
    log: Vec<LogEntry>,
    ndesc: u16,
}

/// The reference: the rules of drivers/vhost/vhost.c, on the same memory, written from the
/// C rather than from ring.rs.
struct Reference<'a> {
    mem: &'a Mem,
    num: u32,
    desc: u64,
    avail: u64,
    used: u64,
    event_idx: bool,
    notify_on_empty: bool,
    in_order: bool,
}

impl Reference<'_> {
    /// `translate_desc()`; the running total is kept wide, so it cannot wrap.
    fn translate(&self, gpa: u64, len: u32, cap: usize, access: u8) -> Result<Vec<Iov>, RingError> {
        let iotlb = self.mem.iotlb;
        let len = u128::from(len);
        let last = gpa.wrapping_add(len as u64).wrapping_sub(1);
        let (mut addr, mut s, mut v) = (gpa, 0u128, Vec::new());
        while len > s {
            if v.len() >= cap {
                return Err(RingError::TooManySegments);
            }
            let hole = if iotlb {
                RingError::Miss
            } else {
                RingError::Fault
            };
            let m = self.mem.find(addr, last).ok_or(hole)?;
            if m.start > addr {
                return Err(hole);
            }
            if iotlb && m.perm & access == 0 {
                return Err(RingError::Perm);
            }
            let size = u128::from(m.size());
            let avail = size - u128::from(addr - m.start);
            v.push(Iov {
                addr: m.addr.wrapping_add(addr - m.start),
                len: (len - s).min(avail) as u64,
            });
            s += avail;
            addr = addr.wrapping_add(avail as u64);
        }
        Ok(v)
    }

    /// `vhost_get_avail_idx()`.
    fn get_avail_idx(&self, st: &mut State) -> Result<bool, RingError> {
        let idx = self.mem.peek_u16(self.avail.wrapping_add(2))?;
        if u32::from(idx.wrapping_sub(st.last_avail_idx)) > self.num {
            return Err(RingError::AvailIdx {
                from: st.last_avail_idx,
                to: idx,
            });
        }
        if idx == st.avail_idx {
            return Ok(false);
        }
        st.avail_idx = idx;
        Ok(true)
    }

    /// One direct descriptor, as in the loops of `vhost_get_vq_desc_n()` and
    /// `get_indirect()`. ring.rs bounds the log by the buffer given (the C sizes it so).
    fn add(
        &self,
        d: &Desc,
        c: &mut RefChain,
        cap: usize,
        log_cap: Option<usize>,
    ) -> Result<(), RingError> {
        let access = if d.flags & VRING_DESC_F_WRITE != 0 {
            ACCESS_WO
        } else {
            ACCESS_RO
        };
        let segs = self.translate(d.addr, d.len, cap - c.out.len() - c.inn.len(), access)?;
        if d.flags & VRING_DESC_F_WRITE != 0 {
            if !segs.is_empty() {
                if let Some(lc) = log_cap {
                    if c.log.len() >= lc {
                        return Err(RingError::TooManySegments);
                    }
                    c.log.push(LogEntry {
                        gpa: d.addr,
                        len: d.len.into(),
                    });
                }
            }
            c.inn.extend(segs);
        } else {
            if !c.inn.is_empty() {
                return Err(RingError::OutAfterIn);
            }
            c.out.extend(segs);
        }
        Ok(())
    }

    /// `get_indirect()`. ring.rs translates the table into at most 16 segments (the C
    /// allows UIO_MAXIOV); a table in more pieces is a fault.
    fn indirect(
        &self,
        ind: &Desc,
        c: &mut RefChain,
        cap: usize,
        log_cap: Option<usize>,
    ) -> Result<(), RingError> {
        if !ind.len.is_multiple_of(16) {
            return Err(RingError::IndirectLen(ind.len));
        }
        let table = match self.translate(ind.addr, ind.len, 16, ACCESS_RO) {
            Err(RingError::TooManySegments) => return Err(RingError::Fault),
            r => r?,
        };
        let count = u64::from(ind.len) / 16;
        if count > 0x10000 {
            return Err(RingError::IndirectTooBig(ind.len));
        }
        // The C reads the table in order through an iov_iter; `next` is not followed.
        let flat: Vec<(u64, u64)> = table.iter().map(|s| (s.addr, s.len)).collect();
        let mut j = 0;
        loop {
            if j >= count {
                return Err(RingError::Loop);
            }
            let d = self.table_entry(&flat, j * 16)?;
            if d.flags & VRING_DESC_F_INDIRECT != 0 {
                return Err(RingError::NestedIndirect);
            }
            self.add(&d, c, cap, log_cap)?;
            if d.flags & VRING_DESC_F_NEXT == 0 {
                return Ok(());
            }
            j += 1;
        }
    }

    /// Bytes `[off, off + 16)` of a table given as segments, read byte by byte.
    fn table_entry(&self, segs: &[(u64, u64)], off: u64) -> Result<Desc, RingError> {
        let mut raw = [0u8; 16];
        for (k, b) in raw.iter_mut().enumerate() {
            let mut at = off + k as u64;
            let seg = segs.iter().find(|&&(_, len)| {
                if at < len {
                    return true;
                }
                at -= len;
                false
            });
            let &(addr, _) = seg.ok_or(RingError::Fault)?;
            let mut one = [0u8];
            self.mem.peek(addr.wrapping_add(at), &mut one)?;
            *b = one[0];
        }
        Ok(Desc::from(&raw))
    }

    /// `vhost_get_vq_desc_n()`.
    fn get_desc(
        &self,
        st: &mut State,
        cap: usize,
        log_cap: Option<usize>,
    ) -> Result<Option<RefChain>, RingError> {
        if st.avail_idx == st.last_avail_idx && !self.get_avail_idx(st)? {
            return Ok(None);
        }
        // VIRTIO_F_IN_ORDER: the chain after the last one in the table; else the avail ring's.
        let head = if self.in_order {
            (u32::from(st.next_avail_head) % self.num) as u16
        } else {
            let slot = u32::from(st.last_avail_idx) % self.num;
            self.mem
                .peek_u16(self.avail.wrapping_add(4 + 2 * u64::from(slot)))?
        };
        if u32::from(head) >= self.num {
            return Err(RingError::IndexOutOfRange {
                idx: head.into(),
                num: self.num,
            });
        }
        let mut c = RefChain {
            head,
            ..Default::default()
        };
        let (mut i, mut found) = (u32::from(head), 0u32);
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
            self.mem
                .peek(self.desc.wrapping_add(16 * u64::from(i)), &mut raw)?;
            let d = Desc::from(&raw);
            c.ndesc = c.ndesc.wrapping_add(1);
            if d.flags & VRING_DESC_F_INDIRECT != 0 {
                self.indirect(&d, &mut c, cap, log_cap)?;
            } else {
                self.add(&d, &mut c, cap, log_cap)?;
            }
            if d.flags & VRING_DESC_F_NEXT == 0 {
                break;
            }
            i = d.next.into();
        }
        st.last_avail_idx = st.last_avail_idx.wrapping_add(1);
        st.next_avail_head = st.next_avail_head.wrapping_add(c.ndesc);
        Ok(Some(c))
    }

    /// The writes of a sequence that stops at the first one that faults, and the result.
    fn writes(&self, w: Vec<(u64, Vec<u8>)>) -> (Vec<W>, bool) {
        let mut out = Vec::with_capacity(w.len());
        for (a, b) in w {
            let ok = self.mem.ok(a, b.len(), self.mem.no_write);
            out.push(W::new(a, &b, ok));
            if !ok {
                return (out, false);
            }
        }
        (out, true)
    }

    /// `vhost_add_used_n()`: the elements, then the index.
    fn add_used_n(&self, st: &mut State, heads: &[(u32, u32)]) -> Vec<W> {
        let mut w = Vec::with_capacity(heads.len() + 1);
        let mut idx = st.last_used_idx;
        for &(id, len) in heads {
            let slot = u64::from(u32::from(idx) % self.num);
            let mut e = [0u8; 8];
            e[..4].copy_from_slice(&id.to_le_bytes());
            e[4..].copy_from_slice(&len.to_le_bytes());
            let at = self.used.wrapping_add(4 + 8 * slot);
            let ok = self.mem.ok(at, 8, self.mem.no_write);
            w.push(W::new(at, &e, ok));
            if !ok {
                return w;
            }
            idx = idx.wrapping_add(1);
        }
        let at = self.used.wrapping_add(2);
        let ok = self.mem.ok(at, 2, self.mem.no_write);
        w.push(W::new(at, &idx.to_le_bytes(), ok));
        if ok {
            let old = st.last_used_idx;
            st.last_used_idx = idx;
            if idx.wrapping_sub(st.signalled_used) < idx.wrapping_sub(old) {
                st.signalled_used_valid = false;
            }
        }
        w
    }

    /// `vhost_notify()`.
    fn notify(&self, st: &mut State) -> bool {
        if self.notify_on_empty && st.avail_idx == st.last_avail_idx {
            return true;
        }
        if !self.event_idx {
            return match self.mem.peek_u16(self.avail) {
                Ok(f) => f & VRING_AVAIL_F_NO_INTERRUPT == 0,
                Err(_) => true,
            };
        }
        let (old, valid) = (st.signalled_used, st.signalled_used_valid);
        let new = st.last_used_idx;
        st.signalled_used = new;
        st.signalled_used_valid = true;
        if !valid {
            return true;
        }
        let at = self.avail.wrapping_add(4 + 2 * u64::from(self.num));
        match self.mem.peek_u16(at) {
            // vring_need_event(), spelled as in the C header.
            Ok(event) => new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old),
            Err(_) => true,
        }
    }

    fn flags_write(&self, st: &State) -> (u64, Vec<u8>) {
        (self.used, st.used_flags.to_le_bytes().to_vec())
    }

    fn avail_event_write(&self, st: &State) -> (u64, Vec<u8>) {
        let at = self.used.wrapping_add(4 + 8 * u64::from(self.num));
        (at, st.avail_idx.to_le_bytes().to_vec())
    }

    /// `vhost_disable_notify()`.
    fn disable_notify(&self, st: &mut State) -> Vec<W> {
        if st.used_flags & VRING_USED_F_NO_NOTIFY != 0 {
            return Vec::new();
        }
        st.used_flags |= VRING_USED_F_NO_NOTIFY;
        if self.event_idx {
            return Vec::new();
        }
        self.writes(vec![self.flags_write(st)]).0
    }

    /// The writes of `vhost_enable_notify()`; [`Reference::enable_notify_tail`] does the
    /// rest once ring.rs has written, since its read of the avail index comes after.
    fn enable_notify_writes(&self, st: &mut State) -> Option<Vec<W>> {
        if st.used_flags & VRING_USED_F_NO_NOTIFY == 0 {
            return None;
        }
        st.used_flags &= !VRING_USED_F_NO_NOTIFY;
        let w = if self.event_idx {
            self.avail_event_write(st)
        } else {
            self.flags_write(st)
        };
        Some(self.writes(vec![w]).0)
    }

    /// The avail index re-read of `vhost_enable_notify()`, through `vhost_get_avail_idx()`
    /// and its range check: true if the index moved past the cached one (7.3), not merely
    /// if buffers are left untaken (after a discard).
    fn enable_notify_tail(&self, st: &mut State) -> Result<bool, RingError> {
        self.get_avail_idx(st)
    }
}

/// The guest-visible addresses a scenario names: regions and indirect tables.
struct Layout {
    tables: [u64; 4],
}

struct Fuzz<'a> {
    inp: Input<'a>,
    mem: Mem,
    ring: Ring,
    st: State,
    layout: Layout,
    log: bool,
    /// Heads taken since the last `add_used_n` of them, with their descriptor counts: what
    /// `discard` may give back.
    pending: Vec<(u16, u16)>,
    trace: bool,
}

fn run(data: &[u8]) {
    let mut f = Fuzz::new(data);
    for _ in 0..MAX_OPS {
        if f.inp.is_empty() {
            break;
        }
        f.op();
    }
}

impl<'a> Fuzz<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut inp = Input(data);
        let k = inp.u8();
        let num = 1u32 << if k < 0xe0 { k % 9 } else { k % 16 };
        debug_assert!(valid_num(num));
        let feat = inp.u8();
        let mut ring = Ring::new();
        ring.num = num;
        ring.event_idx = feat & 1 != 0;
        ring.notify_on_empty = feat & 2 != 0;
        ring.in_order = feat & 8 != 0;
        let log = feat & 4 != 0;
        // VHOST_SET_VRING_BASE, and the used index as vhost_vq_init_access() reads it.
        ring.last_avail_idx = inp.u16();
        ring.avail_idx = ring.last_avail_idx;
        ring.next_avail_head = ring.last_avail_idx;
        ring.last_used_idx = inp.u16();

        // Ring parts: contiguous, placed (aligned as VHOST_SET_VRING_ADDR wants, or not),
        // or one of them anywhere at all.
        let mode = inp.u8() % 4;
        let contiguous = |inp: &mut Input<'_>, r: &mut Ring| {
            r.desc = BASE + u64::from(inp.u16() & 0x7ff0);
            r.avail = r.desc + desc_size(num);
            r.used = (r.avail + avail_size(num, r.event_idx) + 3) & !3;
        };
        match mode {
            0 => contiguous(&mut inp, &mut ring),
            1 | 2 => {
                let m = if mode == 1 { [!15, !1, !3] } else { [!0; 3] };
                ring.desc = BASE + u64::from(inp.u16() & m[0]);
                ring.avail = BASE + u64::from(inp.u16() & m[1]);
                ring.used = BASE + u64::from(inp.u16() & m[2]);
            }
            _ => {
                contiguous(&mut inp, &mut ring);
                let wild = inp.u64();
                match inp.u8() % 3 {
                    0 => ring.desc = wild,
                    1 => ring.avail = wild,
                    _ => ring.used = wild,
                }
            }
        }

        let mut mem = Mem {
            bytes: RefCell::new(vec![0; OWNER_SIZE as usize]),
            no_read: 0,
            no_write: 0,
            maps: Vec::new(),
            events: RefCell::new(Vec::new()),
            fail_in: Cell::new(0),
            injected: Cell::new(false),
            iotlb: feat & 0x10 != 0,
        };
        // The memory table: 1 to 4 regions, usually small and inside the owner space.
        for _ in 0..1 + inp.u8() % 4 {
            let sel = inp.u8();
            let start = match sel & 3 {
                0 => u64::from(inp.u16()) * 16,
                1 => u64::from(inp.u8()) << 20,
                2 => inp.u64(),
                _ => u64::MAX - u64::from(inp.u16()),
            };
            let last = match (sel >> 2) & 3 {
                0 => start.saturating_add(u64::from(inp.u16())),
                1 => start.saturating_add(PAGE * (1 + u64::from(inp.u8() % 16)) - 1),
                2 => start.saturating_add(inp.u64()),
                _ => u64::MAX,
            };
            let addr = match (sel >> 4) & 3 {
                0 | 1 => BASE + u64::from(inp.u16()),
                2 => inp.u64(),
                _ => BASE.wrapping_sub(u64::from(inp.u16())),
            };
            let perm = if mem.iotlb { sel >> 6 } else { ACCESS_RW };
            mem.add_map(start, last, addr, perm);
        }
        if inp.u8() >= 0xc0 {
            mem.no_read = inp.u16();
            mem.no_write = inp.u16();
        }
        let mut tables = [0u64; 4];
        for t in tables.iter_mut() {
            let base = map_start(&mem, inp.u8());
            *t = base.wrapping_add(u64::from(inp.u16() & !15));
        }
        let st = State::of(&ring);
        let mut f = Fuzz {
            inp,
            mem,
            ring,
            st,
            layout: Layout { tables },
            log,
            pending: Vec::new(),
            trace: std::env::var_os("VHOST_RS_FUZZ_TRACE").is_some(),
        };
        if f.trace {
            eprintln!(
                "ring num {} desc {:#x} avail {:#x} used {:#x} event_idx {} notify_on_empty {} log {}",
                f.ring.num,
                f.ring.desc,
                f.ring.avail,
                f.ring.used,
                f.ring.event_idx,
                f.ring.notify_on_empty,
                f.log
            );
            eprintln!("maps {:x?} tables {:x?}", f.mem.maps, f.layout.tables);
            eprintln!(
                "no_read {:#x} no_write {:#x}",
                f.mem.no_read, f.mem.no_write
            );
            eprintln!("state {:?}", f.st);
        }

        // The guest's indices start where the device's do, as after a VMM restored both.
        let (avail_idx, used_idx) = (f.ring.last_avail_idx, f.ring.last_used_idx);
        f.mem
            .poke(f.ring.avail.wrapping_add(2), &avail_idx.to_le_bytes());
        f.mem
            .poke(f.ring.used.wrapping_add(2), &used_idx.to_le_bytes());
        // The initial image: descriptors, avail entries, indirect entries, raw bytes.
        for _ in 0..f.inp.u8() % 64 {
            match f.inp.u8() % 4 {
                0 => f.guest_desc(),
                1 => {
                    let slot = u32::from(f.inp.u16()) % num;
                    let head = f.head();
                    f.mem.poke(
                        f.ring.avail.wrapping_add(4 + 2 * u64::from(slot)),
                        &head.to_le_bytes(),
                    );
                }
                2 => {
                    let t = f.layout.tables[usize::from(f.inp.u8() % 4)];
                    let j = u64::from(f.inp.u8() % 16);
                    let d = f.desc();
                    f.mem.poke_gpa(t.wrapping_add(16 * j), &d.bytes());
                }
                _ => f.guest_poke(),
            }
        }
        f
    }

    fn reference(&self) -> Reference<'_> {
        Reference {
            mem: &self.mem,
            num: self.ring.num,
            desc: self.ring.desc,
            avail: self.ring.avail,
            used: self.ring.used,
            event_idx: self.ring.event_idx,
            notify_on_empty: self.ring.notify_on_empty,
            in_order: self.ring.in_order,
        }
    }

    /// A head for the avail ring: usually a valid index.
    fn head(&mut self) -> u16 {
        let h = self.inp.u8();
        if h < 0xf8 {
            (u32::from(h) % self.ring.num) as u16
        } else {
            self.inp.u16()
        }
    }

    /// A guest address: in a region, at its end, at an indirect table, or anything.
    fn gpa(&mut self, sel: u8) -> u64 {
        match sel & 3 {
            0 => {
                let s = map_start(&self.mem, self.inp.u8());
                s.wrapping_add(u64::from(self.inp.u16()))
            }
            1 => self.inp.u64(),
            2 => self.layout.tables[usize::from(self.inp.u8() % 4)],
            _ => {
                let k = self.inp.u8();
                let last = match self.mem.maps.len() {
                    0 => 0,
                    n => self.mem.maps[usize::from(k) % n].last,
                };
                last.wrapping_sub(u64::from(self.inp.u8()))
            }
        }
    }

    /// A length: small, a table of 0..8 entries, 16 bits, or anything.
    fn len(&mut self, sel: u8) -> u32 {
        match sel & 3 {
            0 => self.inp.u8().into(),
            1 => 16 * u32::from(self.inp.u8() % 9),
            2 => self.inp.u16().into(),
            _ => self.inp.u32(),
        }
    }

    /// A descriptor: flags from the selector's high bits, or any 16 bits.
    fn desc(&mut self) -> Desc {
        let sel = self.inp.u8();
        let addr = self.gpa(sel);
        let len = self.len(sel >> 2);
        let flags = if sel & 0x80 == 0 {
            u16::from((sel >> 4) & 7)
        } else {
            self.inp.u16()
        };
        let next = self.inp.u8().into();
        Desc {
            addr,
            len,
            flags,
            next,
        }
    }

    fn guest_desc(&mut self) {
        let i = u32::from(self.inp.u16()) % self.ring.num;
        let d = self.desc();
        let at = self.ring.desc.wrapping_add(16 * u64::from(i));
        self.mem.poke(at, &d.bytes());
    }

    fn guest_poke(&mut self) {
        let off = self.inp.u16();
        let n = usize::from(self.inp.u8() % 16);
        let bytes: Vec<u8> = (0..n).map(|_| self.inp.u8()).collect();
        self.mem.poke(BASE + u64::from(off), &bytes);
    }

    fn guest_avail_idx(&self) -> u16 {
        self.mem
            .peek_u16(self.ring.avail.wrapping_add(2))
            .unwrap_or(0)
    }

    fn op(&mut self) {
        let before = State::of(&self.ring);
        let cfg = (
            self.ring.num,
            self.ring.desc,
            self.ring.avail,
            self.ring.used,
        );
        let code = self.inp.u8() % 17;
        // Writes ring.rs should have made, when the reference knows them.
        let mut expect: Option<Vec<W>> = None;
        let mut read_only = true;
        match code {
            0 => self.get_desc(),
            1 => {
                let n = usize::from(self.inp.u8()) % (self.pending.len() + 1);
                let at = self.pending.len() - n;
                let ndesc = self.pending[at..]
                    .iter()
                    .fold(0u16, |a, &(_, d)| a.wrapping_add(d));
                self.ring.discard(n as u16, ndesc);
                self.st.last_avail_idx = self.st.last_avail_idx.wrapping_sub(n as u16);
                self.st.next_avail_head = self.st.next_avail_head.wrapping_sub(ndesc);
                self.pending.truncate(at);
                self.trace(format_args!("discard {n} ({ndesc} descriptors)"));
                assert_eq!(
                    self.ring.last_avail_idx,
                    before.last_avail_idx.wrapping_sub(n as u16)
                );
                assert_eq!(
                    self.ring.next_avail_head,
                    before.next_avail_head.wrapping_sub(ndesc)
                );
            }
            2 | 3 => {
                // The heads taken, oldest first, or any pairs at all.
                let heads: Vec<(u32, u32)> = if code == 2 {
                    let k = usize::from(self.inp.u8()) % (self.pending.len() + 1);
                    let taken: Vec<(u16, u16)> = self.pending.drain(..k).collect();
                    taken
                        .into_iter()
                        .map(|(h, _)| (u32::from(h), u32::from(self.inp.u16())))
                        .collect()
                } else {
                    let k = self.inp.u8();
                    if k != 0xff {
                        (0..k % 8)
                            .map(|_| (self.inp.u32(), self.inp.u32()))
                            .collect()
                    } else {
                        // Rarely, one pair up to 65535 times: enough to wrap the used
                        // index past signalled_used between two notify() calls.
                        let n = self.inp.u16();
                        vec![(self.inp.u32(), self.inp.u32()); n.into()]
                    }
                };
                read_only = false;
                let r = self.ring.add_used_n(&self.mem, &heads);
                match heads.len() {
                    0..=64 => self.trace(format_args!("add_used_n {heads:?}: {r:?}")),
                    n => self.trace(format_args!("add_used_n {n} x {:?}: {r:?}", heads[0])),
                }
                let refr = self.reference();
                let mut st = self.st;
                let w = refr.add_used_n(&mut st, &heads);
                let ok = w.last().is_none_or(|x| x.ok);
                self.st = st;
                self.agree(r.is_ok(), ok, "add_used_n result");
                expect = Some(w);
            }
            4 => {
                read_only = false;
                let mut st = self.st;
                let w = self.reference().enable_notify_writes(&mut st);
                let r = self.ring.enable_notify(&self.mem);
                self.trace(format_args!("enable_notify: {r:?}"));
                let want = match &w {
                    None => Ok(false),
                    Some(w) if w.last().is_some_and(|x| !x.ok) => Err(RingError::Fault),
                    Some(_) => self.reference().enable_notify_tail(&mut st),
                };
                self.st = st;
                self.agree(r, want, "enable_notify");
                expect = Some(w.unwrap_or_default());
            }
            5 => {
                read_only = false;
                let r = self.ring.disable_notify(&self.mem);
                self.trace(format_args!("disable_notify: {r:?}"));
                let mut st = self.st;
                let w = self.reference().disable_notify(&mut st);
                self.st = st;
                let want = if w.last().is_some_and(|x| !x.ok) {
                    Err(RingError::Fault)
                } else {
                    Ok(())
                };
                self.agree(r, want, "disable_notify");
                expect = Some(w);
            }
            6 => {
                let r = self.ring.notify(&self.mem);
                self.trace(format_args!("notify: {r}"));
                // vhost_notify(): the used index is flushed before the guest's flags are read.
                assert_eq!(self.mem.events.borrow().first(), Some(&Ev::Mb));
                let mut st = self.st;
                let want = self.reference().notify(&mut st);
                self.st = st;
                self.agree(r, want, "notify");
            }
            7 | 8 => {
                let r = if code == 7 {
                    self.ring.has_avail(&self.mem)
                } else {
                    self.ring.get_avail_idx(&self.mem)
                };
                self.trace(format_args!("has_avail/get_avail_idx ({code}): {r:?}"));
                let mut st = self.st;
                let refr = self.reference();
                let want = if code == 7 && st.avail_idx != st.last_avail_idx {
                    Ok(true)
                } else {
                    refr.get_avail_idx(&mut st)
                };
                self.st = st;
                self.agree(r, want, "has_avail/get_avail_idx");
            }
            9 => {
                read_only = false;
                let r = self.ring.update_used_flags(&self.mem);
                self.trace(format_args!("update_used_flags: {r:?}"));
                let refr = self.reference();
                let (w, ok) = refr.writes(vec![refr.flags_write(&self.st)]);
                self.agree(r.is_ok(), ok, "update_used_flags result");
                expect = Some(w);
            }
            10 => {
                // The guest makes k chains available, as a driver does: entries, then idx.
                let k = self.inp.u8() % 9;
                let idx = self.guest_avail_idx();
                for j in 0..u16::from(k) {
                    let slot = u32::from(idx.wrapping_add(j)) % self.ring.num;
                    let head = self.head();
                    let at = self.ring.avail.wrapping_add(4 + 2 * u64::from(slot));
                    self.mem.poke(at, &head.to_le_bytes());
                }
                let new = idx.wrapping_add(k.into());
                self.mem
                    .poke(self.ring.avail.wrapping_add(2), &new.to_le_bytes());
                self.trace(format_args!("guest: publish {k}, avail idx {new}"));
            }
            11 => {
                let sel = self.inp.u8();
                let v = if sel & 1 == 0 {
                    self.guest_avail_idx().wrapping_add((sel >> 1).into())
                } else {
                    self.inp.u16()
                };
                self.mem
                    .poke(self.ring.avail.wrapping_add(2), &v.to_le_bytes());
                self.trace(format_args!("guest: avail idx {v}"));
            }
            12 => {
                self.guest_desc();
                self.trace(format_args!("guest: descriptor"));
            }
            13 => {
                self.guest_poke();
                self.trace(format_args!("guest: poke"));
            }
            14 => {
                let which = self.inp.u8() % 3;
                let v = self.inp.u16();
                let at = match which {
                    0 => self.ring.avail,
                    1 => self
                        .ring
                        .avail
                        .wrapping_add(4 + 2 * u64::from(self.ring.num)),
                    _ => self.layout.tables[usize::from(self.inp.u8() % 4)],
                };
                if which == 2 {
                    self.mem.poke_gpa(at, &v.to_le_bytes());
                } else {
                    self.mem.poke(at, &v.to_le_bytes());
                }
                self.trace(format_args!("guest: u16 {v:#x} at {at:#x}"));
            }
            15 => {
                let n = 1 + u32::from(self.inp.u8() % 8);
                self.mem.fail_in.set(n);
                self.trace(format_args!("fault: access {n} from now"));
                return;
            }
            _ => self.translate(),
        }
        self.check_op(before, cfg, expect, read_only);
    }

    /// Compares with the reference, unless an injected fault made ring.rs differ.
    fn agree<T: PartialEq + std::fmt::Debug>(&self, got: T, want: T, what: &str) {
        if !self.mem.injected.get() {
            assert_eq!(got, want, "{what}: ring.rs and the reference differ");
        }
    }

    fn trace(&self, args: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("{args}");
        }
    }

    fn get_desc(&mut self) {
        let sel = self.inp.u8();
        let cap = match sel & 3 {
            0 => usize::from((sel >> 2) % 4),
            1 => 4 + usize::from((sel >> 2) % 16),
            _ => MAX_IOV,
        };
        let log_cap = self.log.then(|| match (sel >> 4) & 3 {
            1 => usize::from(sel >> 6),
            _ => MAX_IOV,
        });
        let mut iov = vec![SENTINEL; cap];
        let mut log = vec![LOG_SENTINEL; log_cap.unwrap_or(0)];
        let before = State::of(&self.ring);
        let r = {
            let mut buf = ChainBuf {
                iov: &mut iov,
                log: log_cap.map(|_| &mut log[..]),
            };
            self.ring.get_desc(&self.mem, &mut buf)
        };
        self.trace(format_args!("get_desc (iov {cap}, log {log_cap:?}): {r:?}"));
        let mut st = self.st;
        let want = self.reference().get_desc(&mut st, cap, log_cap);
        self.st = st;
        match r {
            Ok(Some(c)) => {
                assert!(u32::from(c.head) < self.ring.num, "head {} >= num", c.head);
                let n = c.out_num + c.in_num;
                assert!(n <= cap, "{n} segments in a buffer of {cap}");
                assert!(c.log_num <= log.len(), "{} log entries", c.log_num);
                assert!(log_cap.is_some() || c.log_num == 0);
                assert!(
                    iov[n..].iter().all(|s| *s == SENTINEL),
                    "iov past the chain"
                );
                assert!(log[c.log_num..].iter().all(|l| *l == LOG_SENTINEL));
                for s in &iov[..n] {
                    self.check_segment(s);
                }
                assert!(log[..c.log_num].iter().all(|l| l.len != 0));
                // A chain is taken only where one was available.
                assert_ne!(before.last_avail_idx, self.ring.avail_idx);
                assert_eq!(
                    self.ring.last_avail_idx,
                    before.last_avail_idx.wrapping_add(1)
                );
                self.pending.push((c.head, c.ndesc));
                if !self.mem.injected.get() {
                    let w = want
                        .unwrap_or_else(|e| panic!("reference: {e:?}, ring.rs: {c:?}"))
                        .unwrap_or_else(|| panic!("reference: no chain, ring.rs: {c:?}"));
                    assert_eq!(c.head, w.head);
                    assert_eq!(c.ndesc, w.ndesc);
                    assert_eq!((c.out_num, c.in_num), (w.out.len(), w.inn.len()));
                    assert_eq!(iov[..c.out_num], w.out[..]);
                    assert_eq!(iov[c.out_num..n], w.inn[..]);
                    assert_eq!(log[..c.log_num], w.log[..]);
                }
            }
            Ok(None) => {
                assert_eq!(self.ring.last_avail_idx, before.last_avail_idx);
                assert_eq!(self.ring.avail_idx, self.ring.last_avail_idx);
                self.agree(want.map(|c| c.is_none()), Ok(true), "get_desc: empty");
            }
            Err(e) => {
                assert_eq!(self.ring.last_avail_idx, before.last_avail_idx);
                self.agree(want.map(|_| ()), Err(e), "get_desc: error");
            }
        }
    }

    /// `translate()` on its own, as get_desc uses it.
    fn translate(&mut self) {
        let sel = self.inp.u8();
        let gpa = self.gpa(sel);
        let len = self.len(sel >> 2);
        let cap = if sel & 0x10 == 0 {
            usize::from(self.inp.u8() % 20)
        } else {
            MAX_IOV
        };
        let at = usize::from(self.inp.u8()) % (cap + 1);
        let mut iov = vec![SENTINEL; cap];
        let r = ring::translate(&self.mem, gpa, len, &mut iov, at, ring::ACCESS_RO);
        self.trace(format_args!(
            "translate {gpa:#x}+{len:#x} at {at}/{cap}: {r:?}"
        ));
        let want = self
            .reference()
            .translate(gpa, len, cap - at, ring::ACCESS_RO);
        if let Ok(n) = r {
            assert!(at + n <= cap);
            assert!(iov[..at].iter().all(|s| *s == SENTINEL));
            assert!(iov[at + n..].iter().all(|s| *s == SENTINEL));
            for s in &iov[at..at + n] {
                self.check_segment(s);
            }
            let total: u64 = iov[at..at + n].iter().map(|s| s.len).sum();
            assert_eq!(total, u64::from(len));
        }
        self.agree(r.map(|n| iov[at..at + n].to_vec()), want, "translate");
    }

    fn cfg(&self) -> (u32, u64, u64, u64) {
        (
            self.ring.num,
            self.ring.desc,
            self.ring.avail,
            self.ring.used,
        )
    }

    /// A segment is non-empty and lies inside one mapping's owner range.
    fn check_segment(&self, s: &Iov) {
        assert!(s.len != 0, "empty segment {s:x?}");
        let inside = self.mem.maps.iter().any(|m| {
            let off = s.addr.wrapping_sub(m.addr);
            off < m.size() && s.len <= m.size() - off
        });
        assert!(inside, "segment {s:x?} outside every region");
    }

    /// What holds after every operation.
    fn check_op(
        &mut self,
        before: State,
        cfg: (u32, u64, u64, u64),
        expect: Option<Vec<W>>,
        read_only: bool,
    ) {
        assert_eq!(cfg, self.cfg(), "ring layout changed");
        let events = self.mem.events.take();
        let injected = self.mem.injected.replace(false);
        self.mem.fail_in.set(0);
        let (num, used, avail) = (u64::from(self.ring.num), self.ring.used, self.ring.avail);
        let writes: Vec<W> = events
            .iter()
            .filter_map(|e| match e {
                Ev::Write(w) => Some(*w),
                _ => None,
            })
            .collect();
        assert!(!read_only || writes.is_empty(), "writes {writes:x?}");
        // Only the used ring: flags, idx, an element, or avail_event with EVENT_IDX.
        for w in &writes {
            let off = w.addr.wrapping_sub(used);
            let len = u64::from(w.len);
            let ok = (off == 0 || off == 2) && len == 2
                || off >= 4 && off < 4 + 8 * num && (off - 4) % 8 == 0 && len == 8
                || self.ring.event_idx && off == 4 + 8 * num && len == 2;
            assert!(ok, "write of {len} bytes at used + {off:#x}");
        }
        // Reads: a descriptor, the avail ring (used_event only with EVENT_IDX), or at most
        // one entry of an indirect table in guest memory.
        for e in &events {
            let &Ev::Read(a, len) = e else { continue };
            let d = a.wrapping_sub(self.ring.desc);
            let off = a.wrapping_sub(avail);
            let ok = d < 16 * num && d % 16 == 0 && len == 16
                || len == 2
                    && (off == 0 || off == 2 || off >= 4 && off < 4 + 2 * num && off % 2 == 0)
                || len == 2 && self.ring.event_idx && off == 4 + 2 * num
                || len <= 16
                    && self.mem.maps.iter().any(|m| {
                        let o = a.wrapping_sub(m.addr);
                        o < m.size() && len as u64 <= m.size() - o
                    });
            assert!(ok, "read of {len} bytes at {a:#x}");
        }
        // Each write that landed is logged for the dirty log, and nothing else is.
        let landed: Vec<Ev> = writes
            .iter()
            .filter(|w| w.ok)
            .map(|w| Ev::Log(w.addr.wrapping_sub(used), w.len.into()))
            .collect();
        let logged: Vec<Ev> = events
            .iter()
            .filter(|e| matches!(e, Ev::Log(..)))
            .cloned()
            .collect();
        assert_eq!(logged, landed, "log_used calls against the writes");
        self.check_barriers(&events, before);
        // The avail index, whenever it is read, is at most num ahead of what was taken.
        if self.ring.avail_idx != before.avail_idx {
            let ahead = self.ring.avail_idx.wrapping_sub(before.last_avail_idx);
            assert!(
                u32::from(ahead) <= self.ring.num,
                "avail idx {} accepted with last_avail_idx {} and num {}",
                self.ring.avail_idx,
                before.last_avail_idx,
                self.ring.num
            );
        }
        let now = State::of(&self.ring);
        if injected {
            self.trace(format_args!("(injected fault: state {now:?})"));
            self.st = now;
            return;
        }
        if let Some(w) = expect {
            assert_eq!(writes, w, "writes: ring.rs and the reference differ");
        }
        assert_eq!(now, self.st, "state: ring.rs and the reference differ");
    }

    /// The barriers vhost.c has where the guest could otherwise see things out of order.
    fn check_barriers(&self, events: &[Ev], before: State) {
        let (used, avail) = (self.ring.used, self.ring.avail);
        let is_idx_read = |e: &Ev| matches!(e, &Ev::Read(a, 2) if a == avail.wrapping_add(2));
        let barrier_in = |s: &[Ev], read: bool| {
            s.iter()
                .any(|e| *e == Ev::Mb || *e == if read { Ev::Rmb } else { Ev::Wmb })
        };
        for (i, e) in events.iter().enumerate() {
            match e {
                // The used index only after the elements it covers (smp_wmb()).
                Ev::Write(w) if w.addr == used.wrapping_add(2) && w.len == 2 => {
                    let elem = events[..i].iter().rposition(|e| {
                        matches!(e, Ev::Write(w) if w.len == 8 && w.addr.wrapping_sub(used) >= 4)
                    });
                    if let Some(k) = elem {
                        assert!(barrier_in(&events[k..i], false), "no wmb before used idx");
                    }
                }
                // A re-read of the avail index after our own write (vhost_enable_notify()):
                // a full barrier between, or the guest's kick and our check can both miss.
                e if is_idx_read(e) => {
                    let w = events[..i]
                        .iter()
                        .rposition(|e| matches!(e, Ev::Write(w) if w.ok));
                    if let Some(k) = w {
                        assert!(
                            events[k..i].contains(&Ev::Mb),
                            "no mb between write and read"
                        );
                    }
                }
                _ => {}
            }
        }
        // An avail index that moved is read before the entries it covers (smp_rmb()). The
        // index is read at most once per call, first; a later 2-byte read at its address is
        // a piece of a descriptor that the memory table maps there (split across regions).
        if self.ring.avail_idx != before.avail_idx {
            let k = events.iter().position(is_idx_read);
            let k = k.expect("avail idx changed without a read");
            assert!(
                barrier_in(&events[k..], true),
                "no rmb after a new avail idx: {:?}",
                &events[k..]
            );
        }
    }
}

/// The start of the memory table's `k`-th mapping (modulo their number), 0 without any.
fn map_start(mem: &Mem, k: u8) -> u64 {
    match mem.maps.len() {
        0 => 0,
        n => mem.maps[usize::from(k) % n].start,
    }
}
