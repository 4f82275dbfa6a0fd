// SPDX-License-Identifier: GPL-2.0

//! Coverage-guided fuzzing of the packed virtqueue engine, ring/packed.rs, driven through
//! ring/vring.rs's `Vring` as dev.rs drives it (`scripts/fuzz-host.sh`, `make fuzz-host`).
//!
//! The input is a scenario: a ring size (1..=64 mostly, any value, not only powers of
//! two, and a few large ones up to 32768), features (EVENT_IDX, NOTIFY_ON_EMPTY, IN_ORDER,
//! dirty log, device IOTLB), a `VHOST_SET_VRING_BASE` value (which may be refused), ring
//! parts placed in a 64 KiB owner address space with pages that fault, a guest memory table
//! of a few regions with holes, indirect tables, an initial ring image, then up to 256
//! operations: device ones (`get_desc` with small or large iov and log buffers, `discard`
//! of the last chains taken, `add_used_n` and `add_used_n_in_order` of chains taken or of
//! hostile ids and slot counts, `notify`, `{en,dis}able_notify`, `has_avail`,
//! `{get,set}_base`, `init_access`; and as a VMM may: features set again, the layout
//! dropped and acked again, a resize after the base) interleaved with guest ones (a model
//! driver making a well-formed chain available at its position with its wrap counter,
//! perhaps with the head's flags held back; raw descriptor bytes and flipped flags
//! anywhere; driver event area writes; raw bytes) and injected faults. The byte format is read by [`Input`];
//! `examples/packed_seeds.rs` writes it.
//!
//! Every operation is checked against invariants that hold whatever the ring holds: no
//! panic or overflow (built with overflow checks); every segment non-empty and inside one
//! memory region; no more segments or log entries than the buffers given and nothing
//! written past them; writes only to the descriptor ring (a slot's len, id and flags,
//! bytes 8..16) and to the device area (4 bytes), never to the driver area or guest
//! buffers, each followed by its `log_desc`/`log_used`; reads only of descriptor slots,
//! the driver area and indirect table entries; a chain's descriptors read only after an
//! rmb that follows the head's flags read; a used batch's first flags written last, after a
//! wmb (2.8.9); DESC in the device area only after its off_wrap and a wmb; an mb before any
//! read that follows our writes; positions inside the ring, moved by exactly the slots taken,
//! given back or published; `get_base`/`set_base` round trips. And against a model written
//! from the spec (2.8) and the rules packed.rs documents, not from its code: the chain walk
//! over the same memory (same result, segments and log), what a chain the model driver made
//! available must come out as (its id, slot count, segments), the bytes of each used
//! descriptor (AVAIL = USED = the device's wrap counter, WRITE iff len != 0, the id and len
//! given), the event suppression writes, and `notify()` from "did the used position step on
//! the driver's event position since the last notification".
//!
//! A resize that would leave positions past the ring restarts them (`PackedRing::set_num`,
//! the fix of this target's first finding, kept in the corpus as
//! `finding-resize-has-avail`); the model judges everything after it too, unless
//! `VHOST_RS_FUZZ_LENIENT=1` (then only the invariants are checked after a resize).
//! `VHOST_RS_FUZZ_TRACE=1` prints every operation and its result.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::{Cell, RefCell};

#[path = "../../../ring.rs"]
mod ring;

use ring::packed::{
    self, PackedRing, RingPos, RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE,
    RING_EVENT_FLAGS_ENABLE, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED,
};
use ring::{
    ChainBuf, GuestMemory, Iov, LogEntry, Part, RingError, Vring, ACCESS_RO, ACCESS_RW, ACCESS_WO,
    MAX_IOV, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};

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
/// Model chains remembered (the newest): enough for several laps of a small ring.
const MAX_CHAINS: usize = 128;
/// Bytes of a descriptor, and of an event suppression area (2.8.10).
const DESC: u64 = 16;
const EVENT: u64 = 4;

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

// ---- positions, written from the spec (2.8.1), not with packed.rs's helpers ----------

/// A position as one number modulo two laps: slot `idx` of the lap with wrap counter 1 is
/// `idx`, of the lap with counter 0 `num + idx`.
fn lin(p: RingPos, num: u32) -> u64 {
    let num = u64::from(num);
    (u64::from(p.idx) + if p.wrap { 0 } else { num }) % (2 * num)
}

/// `n` slots on from `p`: each time the index passes `num - 1` the counter flips.
fn adv(p: RingPos, n: u64, num: u32) -> RingPos {
    let num = u64::from(num);
    let total = u64::from(p.idx) + n;
    RingPos {
        // < num <= 0x8000.
        idx: (total % num) as u16,
        wrap: p.wrap ^ ((total / num) % 2 == 1),
    }
}

/// `n` slots back from `p`.
fn back(p: RingPos, n: u64, num: u32) -> RingPos {
    let m = 2 * u64::from(num);
    adv(p, m - n % m, num)
}

/// Slots from `a` on to `b`, modulo two laps.
fn dist(a: RingPos, b: RingPos, num: u32) -> u64 {
    let m = 2 * u64::from(num);
    (lin(b, num) + m - lin(a, num)) % m
}

fn enc(p: RingPos) -> u16 {
    p.idx | u16::from(p.wrap) << 15
}

fn dec(v: u16) -> RingPos {
    RingPos {
        idx: v & 0x7fff,
        wrap: v & 0x8000 != 0,
    }
}

/// Available in the lap of driver wrap counter `wrap`: AVAIL == wrap, USED != wrap.
fn is_avail(flags: u16, wrap: bool) -> bool {
    (flags & VIRTQ_DESC_F_AVAIL != 0) == wrap && (flags & VIRTQ_DESC_F_USED != 0) != wrap
}

/// The AVAIL/USED bits a driver sets to make a descriptor available in lap `wrap`.
fn avail_bits(wrap: bool) -> u16 {
    if wrap {
        VIRTQ_DESC_F_AVAIL
    } else {
        VIRTQ_DESC_F_USED
    }
}

/// A used descriptor's flags in the device's lap `wrap` (2.8.4, 2.8.3: WRITE when the
/// device wrote into the buffer, as packed.rs documents).
fn used_bits(wrap: bool, len: u32) -> u16 {
    let a = if wrap {
        VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED
    } else {
        0
    };
    a | if len != 0 { VRING_DESC_F_WRITE } else { 0 }
}

/// `vring_need_event()` by its definition: did the used position, going from `old` to
/// `new`, step on the event position (each slot with its lap)?
fn stepped_on(off_wrap: u16, old: RingPos, new: RingPos, num: u32) -> bool {
    let m = 2 * u64::from(num);
    let e = lin(dec(off_wrap), num);
    let (o, n) = (lin(old, num), lin(new, num));
    (e + m - o) % m < (n + m - o) % m
}

// ---- guest memory -------------------------------------------------------------------

/// One mapping of the memory table: guest physical `[start, last]` at owner `addr`.
#[derive(Clone, Copy, Debug)]
struct Map {
    start: u64,
    last: u64,
    addr: u64,
    /// IOTLB permissions (`ACCESS_RO | ACCESS_WO`); always both without the IOTLB.
    perm: u8,
}

impl Map {
    fn size(&self) -> u64 {
        self.last.wrapping_sub(self.start).wrapping_add(1)
    }
}

/// Which part of the ring an access went through: `ring_*` with a `Part`, the used-ring
/// writers (the device area), the descriptor writers, or plain `read`/`write` (buffers
/// and indirect tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Desc,
    Avail,
    Used,
    Plain,
}

fn kind(p: Part) -> Kind {
    match p {
        Part::Desc => Kind::Desc,
        Part::Avail => Kind::Avail,
        Part::Used => Kind::Used,
    }
}

/// One write of the engine (at most 8 bytes): address, bytes, whether it landed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// What the engine did to guest memory, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Read(Kind, u64, usize),
    Write(Kind, W),
    LogDesc(u64, u64),
    LogUsed(u64, u64),
    Rmb,
    Wmb,
    Mb,
}

/// Guest memory as the module presents it (guest.rs, mem.rs), recording every access of
/// the engine, with an optional injected fault.
struct Mem {
    bytes: RefCell<Vec<u8>>,
    /// Pages (bit i: page i) that fault on read, and on write.
    no_read: u16,
    no_write: u16,
    maps: Vec<Map>,
    events: RefCell<Vec<Ev>>,
    /// The engine's n-th next access fails (0: none); `injected` once it has.
    fail_in: Cell<u32>,
    injected: Cell<bool>,
    /// Buffers go through a device IOTLB: a hole is a miss, permissions hold.
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

    /// A read of the model: never recorded, never counts towards an injected fault.
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

    /// A guest write at an owner address: whatever lies inside the owner space is written,
    /// page protection notwithstanding (it is the host's view that faults).
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

    /// Counts one access of the engine; true if it is the one to fail.
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

    fn do_read(&self, k: Kind, uaddr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        self.events.borrow_mut().push(Ev::Read(k, uaddr, buf.len()));
        if self.inject() {
            return Err(RingError::Fault);
        }
        self.peek(uaddr, buf)
    }

    fn do_write(&self, k: Kind, uaddr: u64, buf: &[u8]) -> Result<(), RingError> {
        let ok = !self.inject() && self.ok(uaddr, buf.len(), self.no_write);
        self.events
            .borrow_mut()
            .push(Ev::Write(k, W::new(uaddr, buf, ok)));
        if !ok {
            return Err(RingError::Fault);
        }
        let o = (uaddr - BASE) as usize;
        self.bytes.borrow_mut()[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}

impl GuestMemory for Mem {
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        self.do_read(Kind::Plain, uaddr, buf)
    }
    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.do_write(Kind::Plain, uaddr, buf)
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
    fn ring_read(&self, part: Part, addr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        self.do_read(kind(part), addr, buf)
    }
    fn ring_read_u16(&self, part: Part, addr: u64) -> Result<u16, RingError> {
        let mut b = [0; 2];
        self.do_read(kind(part), addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn ring_write(&self, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.do_write(Kind::Used, addr, buf)
    }
    fn ring_write_u16(&self, addr: u64, v: u16) -> Result<(), RingError> {
        self.do_write(Kind::Used, addr, &v.to_le_bytes())
    }
    fn ring_write_desc(&self, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.do_write(Kind::Desc, addr, buf)
    }
    fn ring_write_desc_u16(&self, addr: u64, v: u16) -> Result<(), RingError> {
        self.do_write(Kind::Desc, addr, &v.to_le_bytes())
    }
    fn log_used(&self, offset: u64, len: u64) {
        self.events.borrow_mut().push(Ev::LogUsed(offset, len));
    }
    fn log_desc(&self, offset: u64, len: u64) {
        self.events.borrow_mut().push(Ev::LogDesc(offset, len));
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

// ---- the model ----------------------------------------------------------------------

/// A descriptor in the packed layout (2.8.13).
#[derive(Clone, Copy, Debug)]
struct Desc {
    addr: u64,
    len: u32,
    id: u16,
    flags: u16,
}

impl Desc {
    fn bytes(&self) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&self.addr.to_le_bytes());
        d[8..12].copy_from_slice(&self.len.to_le_bytes());
        d[12..14].copy_from_slice(&self.id.to_le_bytes());
        d[14..16].copy_from_slice(&self.flags.to_le_bytes());
        d
    }
    fn from(b: &[u8; 16]) -> Self {
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

/// The engine's state, as the model tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    last_avail: RingPos,
    avail_idx: RingPos,
    last_used: RingPos,
    event_flags: u16,
    signalled: RingPos,
    valid: bool,
}

impl State {
    fn of(r: &PackedRing) -> Self {
        State {
            last_avail: r.last_avail_idx,
            avail_idx: r.avail_idx,
            last_used: r.last_used_idx,
            event_flags: r.event_flags,
            signalled: r.signalled_used,
            valid: r.signalled_used_valid,
        }
    }
}

/// What the model expects of the engine's state, kept its own way: slots given back and
/// not taken again rather than the furthest position taken, slots published since the
/// last notification rather than a guard flag.
#[derive(Clone, Copy, Debug)]
struct Model {
    last_avail: RingPos,
    /// Slots given back by `discard()` and not yet taken again (`None`: more than two
    /// laps, which positions modulo two laps cannot tell; the caller's bug, not ours).
    discarded: Option<u64>,
    last_used: RingPos,
    event_flags: u16,
    signalled: RingPos,
    /// Whether `signalled` holds a notification's position at all.
    valid: bool,
    /// Slots published since then.
    since: u64,
}

impl Model {
    fn avail_idx(&self, num: u32) -> Option<RingPos> {
        // Nothing given back: the same position, as it is (even past the ring).
        self.discarded.map(|d| match d {
            0 => self.last_avail,
            _ => adv(self.last_avail, d, num),
        })
    }

    /// Whether the last notification's position still tells what was passed: not after
    /// two laps or more, when the modular distance wraps.
    fn signalled_valid(&self, num: u32) -> bool {
        self.valid && self.since < 2 * u64::from(num)
    }

    fn check(&self, s: &State, num: u32) {
        assert_eq!(s.last_avail, self.last_avail, "last_avail_idx");
        assert_eq!(s.last_used, self.last_used, "last_used_idx");
        assert_eq!(s.event_flags, self.event_flags, "event_flags");
        assert_eq!(s.signalled, self.signalled, "signalled_used");
        assert_eq!(
            s.valid,
            self.signalled_valid(num),
            "signalled_used_valid with {} slots published since the last notification",
            self.since
        );
        if let Some(a) = self.avail_idx(num) {
            // Past the ring (after a resize) the engine keeps a position as it was and
            // the model's arithmetic brings it into the ring: the same place modulo two
            // laps.
            let outside = u32::from(s.avail_idx.idx) >= num || u32::from(a.idx) >= num;
            assert!(
                s.avail_idx == a || outside && lin(s.avail_idx, num) == lin(a, num),
                "avail_idx {:?}: not the furthest position taken, {a:?} ({:?} slots given \
                 back)",
                s.avail_idx,
                self.discarded
            );
        }
    }

    /// Takes the engine's state where the model cannot know it (an injected fault).
    fn resync(&mut self, s: &State, num: u32) {
        self.last_avail = s.last_avail;
        self.last_used = s.last_used;
        self.event_flags = s.event_flags;
        self.signalled = s.signalled;
        self.valid = s.valid;
        self.since = if s.valid {
            dist(s.signalled, s.last_used, num)
        } else {
            0
        };
        self.discarded = Some(dist(s.last_avail, s.avail_idx, num));
    }
}

/// A chain as the model walks it.
#[derive(Debug, Default, PartialEq, Eq)]
struct RefChain {
    head: u16,
    out: Vec<Iov>,
    inn: Vec<Iov>,
    log: Vec<LogEntry>,
    ndesc: u16,
    /// Bytes the descriptors describe, device-readable and device-writable.
    out_bytes: u64,
    in_bytes: u64,
}

/// A chain the model driver made available: where, what it wrote, what it meant.
#[derive(Clone, Debug)]
struct ModelChain {
    start: RingPos,
    id: u16,
    ndesc: u16,
    /// Each slot's owner address and the 16 bytes the driver left there.
    slots: Vec<(u64, [u8; 16])>,
    /// An indirect table: its guest address and entries.
    table: Option<(u64, Vec<[u8; 16]>)>,
    /// The buffer's elements: guest address, length, device-writable.
    bufs: Vec<(u64, u32, bool)>,
}

/// The model driver (2.8.21, Linux's virtqueue_add_packed()): chains written at `next`
/// with its wrap counter, the head's flags last.
struct Driver {
    next: RingPos,
    chains: Vec<ModelChain>,
    /// A head's flags held back: where, and the value.
    deferred: Option<(u64, u16)>,
}

struct Fuzz<'a> {
    inp: Input<'a>,
    mem: Mem,
    vring: Vring,
    num: u32,
    cfg: (u64, u64, u64),
    feat: (bool, bool, bool),
    model: Model,
    tables: [u64; 4],
    log: bool,
    /// Chains taken and neither used nor given back, oldest first: (id, slots).
    pending: Vec<(u16, u16)>,
    drv: Driver,
    /// The ring was resized after its base was set (a hostile VMM: dev.rs allows
    /// `VHOST_SET_VRING_NUM` on a stopped queue): positions may lie past the ring until the
    /// next `set_base()`.
    resized: bool,
    /// Judge the engine's results by the model after a resize too (the default;
    /// `VHOST_RS_FUZZ_LENIENT=1` turns it off, leaving memory safety, the accesses and the
    /// errors). corpus/packed/finding-resize-has-avail failed it before
    /// `PackedRing::set_num` restarted positions left past the ring.
    strict: bool,
    trace: bool,
}

/// What an operation promises, for the checks common to all.
struct Op {
    /// Whether the engine was called and reported success (then every landed write must
    /// be logged).
    ok: bool,
    /// The engine must not write at all.
    read_only: bool,
    /// The writes the model expects, in order, when it knows them.
    expect: Option<Vec<W>>,
}

const GUEST: Op = Op {
    ok: true,
    read_only: true,
    expect: None,
};

fn run(data: &[u8]) {
    let mut f = Fuzz::new(data);
    for _ in 0..MAX_OPS {
        if f.inp.is_empty() {
            break;
        }
        f.op();
    }
}

/// The start of the memory table's `k`-th mapping (modulo their number), 0 without any.
fn map_start(mem: &Mem, k: u8) -> u64 {
    match mem.maps.len() {
        0 => 0,
        n => mem.maps[usize::from(k) % n].start,
    }
}

impl<'a> Fuzz<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut inp = Input(data);
        let k = inp.u8();
        // Small rings of any size, now and then a large one (positions near 16 bits).
        let num = if k < 0xf0 {
            1 + u32::from(k % 64)
        } else {
            [128, 255, 256, 1000, 4096, 0x7fff, 0x8000, 3][usize::from(k & 7)]
        };
        assert!(packed::valid_num(num));
        let feat = inp.u8();
        let (event_idx, noe, in_order) = (feat & 1 != 0, feat & 2 != 0, feat & 4 != 0);
        let log = feat & 8 != 0;
        let bsel = inp.u8();
        let base = match bsel & 3 {
            0 => None,
            1 => Some(inp.u32()),
            2 => {
                let a = (inp.u16() % num as u16) | (u16::from(bsel & 4 != 0) << 15);
                let u = (inp.u16() % num as u16) | (u16::from(bsel & 8 != 0) << 15);
                Some(u32::from(a) | u32::from(u) << 16)
            }
            _ => Some(0x8000),
        };

        // Ring parts: contiguous and aligned (as VHOST_SET_VRING_ADDR wants, 2.8.10.1),
        // placed apart aligned or not, or one of them anywhere.
        let dsize = packed::desc_size(num);
        let contiguous = |inp: &mut Input<'_>| {
            let d = BASE + u64::from(inp.u16() & 0xfff0);
            (d, d + dsize, d + dsize + EVENT)
        };
        let (desc, avail, used) = match inp.u8() % 4 {
            0 => contiguous(&mut inp),
            m @ (1 | 2) => {
                let mask = if m == 1 { [!15, !3, !3] } else { [!0; 3] };
                (
                    BASE + u64::from(inp.u16() & mask[0]),
                    BASE + u64::from(inp.u16() & mask[1]),
                    BASE + u64::from(inp.u16() & mask[2]),
                )
            }
            _ => {
                let (mut d, mut a, mut u) = contiguous(&mut inp);
                let wild = inp.u64();
                match inp.u8() % 3 {
                    0 => d = wild,
                    1 => a = wild,
                    _ => u = wild,
                }
                (d, a, u)
            }
        };

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

        // As dev.rs sets a ring up: size, addresses and features in either order (a
        // layout change keeps the first two), then the base.
        let mut vring = Vring::new();
        if feat & 0x20 != 0 {
            vring.set_features(true, event_idx, noe, in_order);
            vring.set_num(num);
            vring.set_addrs(desc, avail, used);
        } else {
            vring.set_num(num);
            vring.set_addrs(desc, avail, used);
            vring.set_features(true, event_idx, noe, in_order);
        }
        assert!(
            vring.is_packed(),
            "RING_PACKED did not make the ring packed"
        );
        assert_eq!(
            vring.num(),
            num,
            "the size set did not survive the layout change"
        );
        assert_eq!(vring.addrs(), (desc, avail, used), "nor the addresses");
        assert_eq!((vring.event_idx(), vring.in_order()), (event_idx, in_order));
        // What vq_access_ok() checks and the IOTLB prefetch maps: the descriptor ring
        // read and written, the driver area read, the device area written.
        assert_eq!(
            vring.parts(num, desc, avail, used),
            [
                (Part::Desc, ACCESS_RW, desc, DESC * u64::from(num)),
                (Part::Avail, ACCESS_RO, avail, EVENT),
                (Part::Used, ACCESS_WO, used, EVENT),
            ]
        );
        assert_eq!(vring.used_log_size(), EVENT);
        assert_eq!(
            vring.addr_aligned(desc, avail, used, 0),
            desc % 16 == 0 && avail % 4 == 0 && used % 4 == 0
        );
        assert_eq!(
            vring.get_base(),
            0x8000_8000,
            "both wrap counters start at 1"
        );
        if let Some(b) = base {
            let r = vring.set_base(b);
            check_set_base(&vring, b, r, num, 0x8000_8000);
        }

        let st = match &vring {
            Vring::Packed(r) => State::of(r),
            Vring::Split(_) => unreachable!("checked above"),
        };
        let model = Model {
            last_avail: st.last_avail,
            discarded: Some(0),
            last_used: st.last_used,
            event_flags: RING_EVENT_FLAGS_ENABLE,
            signalled: RingPos { idx: 0, wrap: true },
            valid: false,
            since: 0,
        };
        model.check(&st, num);
        let mut f = Fuzz {
            inp,
            mem,
            vring,
            num,
            cfg: (desc, avail, used),
            feat: (event_idx, noe, in_order),
            model,
            tables,
            log,
            pending: Vec::new(),
            drv: Driver {
                // The driver starts where the device does, as after a VMM restored both.
                next: st.last_avail,
                chains: Vec::new(),
                deferred: None,
            },
            resized: false,
            strict: std::env::var_os("VHOST_RS_FUZZ_LENIENT").is_none(),
            trace: std::env::var_os("VHOST_RS_FUZZ_TRACE").is_some(),
        };
        if f.trace {
            eprintln!(
                "num {num} desc {desc:#x} avail {avail:#x} used {used:#x} event_idx {event_idx} \
                 notify_on_empty {noe} in_order {in_order} log {log} iotlb {} base {base:x?}",
                f.mem.iotlb
            );
            eprintln!("maps {:x?} tables {:x?}", f.mem.maps, f.tables);
            eprintln!(
                "no_read {:#x} no_write {:#x}",
                f.mem.no_read, f.mem.no_write
            );
            eprintln!("state {st:?}");
        }
        // The initial image: chains, raw descriptors, indirect entries, raw bytes.
        for _ in 0..f.inp.u8() % 64 {
            match f.inp.u8() % 4 {
                0 => f.driver_add(),
                1 => f.raw_desc(),
                2 => f.table_entry(),
                _ => f.poke(),
            }
        }
        f
    }

    fn pr(&self) -> &PackedRing {
        match &self.vring {
            Vring::Packed(r) => r,
            Vring::Split(_) => panic!("the ring turned split"),
        }
    }

    fn state(&self) -> State {
        State::of(self.pr())
    }

    fn trace(&self, args: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("{args}");
        }
    }

    fn slot(&self, idx: u16) -> u64 {
        self.cfg.0.wrapping_add(DESC * u64::from(idx))
    }

    fn flags_at(&self, p: RingPos) -> u64 {
        self.slot(p.idx).wrapping_add(14)
    }

    /// Whether the model judges this operation's results: not after an injected fault,
    /// nor (unless strict) while positions may lie past the ring.
    fn judged(&self) -> bool {
        !self.mem.injected.get() && (self.strict || !self.resized)
    }

    /// A position in the ring, or the error of one past it (after a resize).
    fn in_ring(&self, p: RingPos) -> Result<(), RingError> {
        if u32::from(p.idx) >= self.num {
            return Err(RingError::IndexOutOfRange {
                idx: p.idx.into(),
                num: self.num,
            });
        }
        Ok(())
    }

    /// Whether the descriptor at `p` is available, read as the model reads.
    fn avail_at(&self, p: RingPos) -> Result<bool, RingError> {
        self.in_ring(p)?;
        Ok(is_avail(self.mem.peek_u16(self.flags_at(p))?, p.wrap))
    }

    // ---- input helpers --------------------------------------------------------------

    /// A guest address: in a region, at an indirect table, at a region's end, or anything.
    fn gpa(&mut self, sel: u8) -> u64 {
        match sel & 3 {
            0 => {
                let s = map_start(&self.mem, self.inp.u8());
                s.wrapping_add(u64::from(self.inp.u16()))
            }
            1 => self.inp.u64(),
            2 => self.tables[usize::from(self.inp.u8() % 4)],
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

    /// Descriptor flags: NEXT/WRITE/INDIRECT and the AVAIL/USED bits of the lap `wrap`, of
    /// the other lap, of a used descriptor or none; or any 16 bits.
    fn flags(&mut self, wrap: bool) -> u16 {
        let f = self.inp.u8();
        if f & 0x80 != 0 {
            return self.inp.u16();
        }
        let lap = match (f >> 3) & 3 {
            0 => avail_bits(wrap),
            1 => avail_bits(!wrap),
            2 => VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED,
            _ => 0,
        };
        u16::from(f & 7) | lap
    }

    /// A slot: the device's next, the driver's next, one past the device's, or any.
    fn pick_slot(&mut self) -> (u16, bool) {
        let sel = self.inp.u8();
        let la = self.pr().last_avail_idx;
        let idx = match sel & 3 {
            0 => la.idx,
            1 => self.drv.next.idx,
            2 => ((u32::from(la.idx) + u32::from(self.inp.u8())) % self.num) as u16,
            _ => (u32::from(self.inp.u16()) % self.num) as u16,
        };
        // The lap the device expects there.
        let wrap = if idx >= la.idx { la.wrap } else { !la.wrap };
        (idx, wrap)
    }

    /// A buffer element for the model driver: inside one region, from a region's start
    /// on (perhaps across its end), or anywhere.
    fn buffer(&mut self) -> (u64, u32) {
        let sel = self.inp.u8();
        let k = self.inp.u8();
        let m = match self.mem.maps.len() {
            0 => None,
            n => Some(self.mem.maps[usize::from(k) % n]),
        };
        match (sel & 3, m) {
            (0 | 1, Some(m)) => {
                let off = u64::from(self.inp.u16()) % m.size().max(1);
                let len = u64::from(self.inp.u16()).min(m.size() - off);
                (m.start.wrapping_add(off), len as u32)
            }
            (2, Some(m)) => (
                m.start.wrapping_add(u64::from(self.inp.u16())),
                self.inp.u16().into(),
            ),
            _ => (self.inp.u64(), self.inp.u32()),
        }
    }

    fn raw(&mut self, wrap: bool) -> Desc {
        let sel = self.inp.u8();
        let addr = self.gpa(sel);
        let len = self.len(sel >> 2);
        let id = self.inp.u16();
        let flags = self.flags(wrap);
        Desc {
            addr,
            len,
            id,
            flags,
        }
    }

    // ---- guest operations -----------------------------------------------------------

    /// The model driver makes one chain available at its position: direct descriptors
    /// (readable first), or one indirect descriptor and its table; the id in the last
    /// descriptor, the head's flags written last (or held back for DRIVER_PUBLISH). It
    /// leaves room for what the device has not used yet, unless told to be rude.
    fn driver_add(&mut self) {
        let sel = self.inp.u8();
        let (indirect, defer, rude) = (sel & 0x80 != 0, sel & 0x40 != 0, sel & 0x20 != 0);
        let nbuf = 1 + usize::from(sel & 7);
        let nout = usize::from(self.inp.u8()) % (nbuf + 1);
        let bufs: Vec<(u64, u32, bool)> = (0..nbuf)
            .map(|k| {
                let (a, l) = self.buffer();
                (a, l, k >= nout)
            })
            .collect();
        let start = self.drv.next;
        let num = self.num;
        if self.in_ring(start).is_err() {
            return;
        }
        // In-order drivers name a buffer by its head slot (Linux).
        let id = if self.feat.2 {
            start.idx
        } else {
            self.inp.u16()
        };
        let nd = if indirect { 1 } else { nbuf as u16 };
        if u32::from(nd) > num {
            return;
        }
        let outstanding = dist(self.pr().last_used_idx, start, num);
        if !rude && outstanding + u64::from(nd) > u64::from(num) {
            self.trace(format_args!("driver: no room for {nd} ({outstanding} out)"));
            return;
        }
        let mut descs = Vec::new();
        let mut table = None;
        if indirect {
            let t = self.tables[usize::from(self.inp.u8() % 4)];
            let mut entries = Vec::new();
            for &(addr, len, write) in &bufs {
                // Reserved bits the device must ignore (2.8.7; DPDK's PMD sets NEXT).
                let junk = match self.inp.u8() % 4 {
                    0 => 0,
                    1 => VRING_DESC_F_NEXT,
                    2 => VIRTQ_DESC_F_AVAIL,
                    _ => VIRTQ_DESC_F_USED | VRING_DESC_F_NEXT,
                };
                let flags = junk | if write { VRING_DESC_F_WRITE } else { 0 };
                let e = Desc {
                    addr,
                    len,
                    id: 0xdead,
                    flags,
                };
                entries.push(e.bytes());
            }
            for (j, e) in entries.iter().enumerate() {
                self.mem.poke_gpa(t.wrapping_add(DESC * j as u64), e);
            }
            descs.push(Desc {
                addr: t,
                len: 16 * nbuf as u32,
                id,
                flags: VRING_DESC_F_INDIRECT | avail_bits(start.wrap),
            });
            table = Some((t, entries));
        } else {
            for (k, &(addr, len, write)) in bufs.iter().enumerate() {
                let pos = adv(start, k as u64, num);
                let mut flags = avail_bits(pos.wrap);
                if write {
                    flags |= VRING_DESC_F_WRITE;
                }
                let last = k + 1 == nbuf;
                if !last {
                    flags |= VRING_DESC_F_NEXT;
                }
                descs.push(Desc {
                    addr,
                    len,
                    id: if last { id } else { 0x5a5a },
                    flags,
                });
            }
        }
        let mut slots = Vec::new();
        for (k, d) in descs.iter().enumerate() {
            let at = self.slot(adv(start, k as u64, num).idx);
            let b = d.bytes();
            if k == 0 {
                self.mem.poke(at, &b[..14]);
            } else {
                self.mem.poke(at, &b);
            }
            slots.push((at, b));
        }
        let head_flags = descs[0].flags;
        if defer {
            self.drv.deferred = Some((slots[0].0.wrapping_add(14), head_flags));
        } else {
            self.mem
                .poke(slots[0].0.wrapping_add(14), &head_flags.to_le_bytes());
        }
        self.drv.next = adv(start, nd.into(), num);
        self.trace(format_args!(
            "driver: chain id {id} at {start:?}, {nd} slots, bufs {bufs:x?}{}{}",
            if indirect { ", indirect" } else { "" },
            if defer { ", head flags held back" } else { "" }
        ));
        if self.drv.chains.len() >= MAX_CHAINS {
            self.drv.chains.remove(0);
        }
        self.drv.chains.push(ModelChain {
            start,
            id,
            ndesc: nd,
            slots,
            table,
            bufs,
        });
    }

    fn raw_desc(&mut self) {
        let (idx, wrap) = self.pick_slot();
        let d = self.raw(wrap);
        self.mem.poke(self.slot(idx), &d.bytes());
        self.trace(format_args!("guest: slot {idx} <- {d:x?}"));
    }

    fn table_entry(&mut self) {
        let t = self.tables[usize::from(self.inp.u8() % 4)];
        let j = u64::from(self.inp.u8() % 16);
        let d = self.raw(true);
        self.mem.poke_gpa(t.wrapping_add(DESC * j), &d.bytes());
        self.trace(format_args!("guest: table {t:#x}[{j}] <- {d:x?}"));
    }

    fn poke(&mut self) {
        let off = self.inp.u16();
        let n = usize::from(self.inp.u8() % 16);
        let bytes: Vec<u8> = (0..n).map(|_| self.inp.u8()).collect();
        self.mem.poke(BASE + u64::from(off), &bytes);
        self.trace(format_args!("guest: poke +{off:#x} {bytes:x?}"));
    }

    /// Flips flag bits of a slot: AVAIL, USED, NEXT, WRITE, INDIRECT, or any.
    fn flip(&mut self) {
        let (idx, _) = self.pick_slot();
        let sel = self.inp.u8();
        let x = if sel == 0xff {
            self.inp.u16()
        } else {
            [
                VIRTQ_DESC_F_AVAIL,
                VIRTQ_DESC_F_USED,
                VRING_DESC_F_NEXT,
                VRING_DESC_F_WRITE,
                VRING_DESC_F_INDIRECT,
                VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED,
            ][usize::from(sel % 6)]
        };
        let at = self.slot(idx).wrapping_add(14);
        let Ok(f) = self.mem.peek_u16(at) else {
            return;
        };
        self.mem.poke(at, &(f ^ x).to_le_bytes());
        self.trace(format_args!("guest: slot {idx} flags ^= {x:#x}"));
    }

    /// The driver event suppression area: flags, off_wrap, or both.
    fn driver_event(&mut self) {
        let sel = self.inp.u8();
        let avail = self.cfg.1;
        if sel & 1 == 0 {
            let fl = if sel & 4 == 0 {
                u16::from(self.inp.u8() % 4)
            } else {
                self.inp.u16()
            };
            self.mem.poke(avail.wrapping_add(2), &fl.to_le_bytes());
            self.trace(format_args!("guest: driver flags {fl}"));
        }
        if sel & 3 != 0 {
            let ow = if sel & 8 == 0 {
                (self.inp.u16() % self.num as u16) | u16::from(sel & 16 != 0) << 15
            } else {
                self.inp.u16()
            };
            self.mem.poke(avail, &ow.to_le_bytes());
            self.trace(format_args!("guest: driver off_wrap {ow:#x}"));
        }
    }

    // ---- the model's chain walk -----------------------------------------------------

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

    /// An indirect table's segments: at most 16 (packed.rs's bound; more is a fault).
    fn table_segs(&self, gpa: u64, len: u32) -> Result<Vec<(u64, u64)>, RingError> {
        let segs = match self.translate(gpa, len, 16, ACCESS_RO) {
            Err(RingError::TooManySegments) => return Err(RingError::Fault),
            r => r?,
        };
        Ok(segs.iter().map(|s| (s.addr, s.len)).collect())
    }

    /// Bytes `[off, off + 16)` of a table given as segments, read byte by byte.
    fn table_entry_at(&self, segs: &[(u64, u64)], off: u64) -> Result<[u8; 16], RingError> {
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
        Ok(raw)
    }

    /// One buffer element into the chain: translated for its access; readable ones
    /// before writable ones (2.8.4); a log entry per writable one that has bytes.
    fn add(
        &self,
        (addr, len, write): (u64, u32, bool),
        c: &mut RefChain,
        cap: usize,
        log_cap: Option<usize>,
    ) -> Result<(), RingError> {
        let access = if write { ACCESS_WO } else { ACCESS_RO };
        let segs = self.translate(addr, len, cap - c.out.len() - c.inn.len(), access)?;
        if write {
            if !segs.is_empty() {
                if let Some(lc) = log_cap {
                    if c.log.len() >= lc {
                        return Err(RingError::TooManySegments);
                    }
                    c.log.push(LogEntry {
                        gpa: addr,
                        len: len.into(),
                    });
                }
            }
            c.in_bytes += u64::from(len);
            c.inn.extend(segs);
        } else {
            if !c.inn.is_empty() {
                return Err(RingError::OutAfterIn);
            }
            c.out_bytes += u64::from(len);
            c.out.extend(segs);
        }
        Ok(())
    }

    /// An indirect table (2.8.7): all its entries, WRITE the only flag that counts, no
    /// INDIRECT among them; a length of whole entries, not empty, at most 65536.
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
        let segs = self.table_segs(ind.addr, ind.len)?;
        let count = u64::from(ind.len) / 16;
        if count > 0x10000 {
            return Err(RingError::IndirectTooBig(ind.len));
        }
        if count == 0 {
            return Err(RingError::Loop);
        }
        for j in 0..count {
            let d = Desc::from(&self.table_entry_at(&segs, 16 * j)?);
            if d.flags & VRING_DESC_F_INDIRECT != 0 {
                return Err(RingError::NestedIndirect);
            }
            self.add(
                (d.addr, d.len, d.flags & VRING_DESC_F_WRITE != 0),
                c,
                cap,
                log_cap,
            )?;
        }
        Ok(())
    }

    /// The chain at the model's `last_avail`, walked over guest memory (2.8.6, 2.8.7,
    /// 2.8.17): `None` unless the head is available in its lap; every descriptor after it
    /// available in its own lap; at most `num` of them; an indirect descriptor alone.
    fn walk(
        &self,
        m: &mut Model,
        cap: usize,
        log_cap: Option<usize>,
    ) -> Result<Option<RefChain>, RingError> {
        let num = self.num;
        let head = m.last_avail;
        if !self.avail_at(head)? {
            return Ok(None);
        }
        let mut c = RefChain::default();
        let mut pos = head;
        let mut n = 0u32;
        loop {
            n += 1;
            if n > num {
                return Err(RingError::Loop);
            }
            let mut raw = [0u8; 16];
            self.mem.peek(self.slot(pos.idx), &mut raw)?;
            let d = Desc::from(&raw);
            if n > 1 && !is_avail(d.flags, pos.wrap) {
                return Err(RingError::Unavailable {
                    idx: pos.idx.into(),
                });
            }
            if d.flags & VRING_DESC_F_INDIRECT != 0 {
                if n > 1 || d.flags & VRING_DESC_F_NEXT != 0 {
                    return Err(RingError::IndirectInChain);
                }
                self.indirect(&d, &mut c, cap, log_cap)?;
            } else {
                self.add(
                    (d.addr, d.len, d.flags & VRING_DESC_F_WRITE != 0),
                    &mut c,
                    cap,
                    log_cap,
                )?;
            }
            pos = adv(pos, 1, num);
            if d.flags & VRING_DESC_F_NEXT == 0 {
                c.head = d.id;
                break;
            }
        }
        c.ndesc = n as u16;
        m.last_avail = pos;
        m.discarded = m.discarded.map(|d| d.saturating_sub(n.into()));
        Ok(Some(c))
    }

    /// A model chain still in place at `p`: every byte the driver wrote there (slots and
    /// table) readable and unchanged. Then the result is what the driver meant.
    fn intact_at(&self, p: RingPos) -> Option<&ModelChain> {
        self.drv.chains.iter().rev().find(|c| {
            c.start == p
                && c.slots.iter().all(|&(at, b)| {
                    let mut now = [0u8; 16];
                    self.mem.peek(at, &mut now).is_ok() && now == b
                })
                && c.table.as_ref().is_none_or(|(gpa, entries)| {
                    let Ok(segs) = self.table_segs(*gpa, 16 * entries.len() as u32) else {
                        return false;
                    };
                    entries.iter().enumerate().all(|(j, e)| {
                        self.table_entry_at(&segs, 16 * j as u64)
                            .is_ok_and(|now| now == *e)
                    })
                })
        })
    }

    /// What a model chain must come out as: its id and slots, its elements translated.
    fn expect_chain(
        &self,
        mc: &ModelChain,
        cap: usize,
        log_cap: Option<usize>,
    ) -> Result<RefChain, RingError> {
        let mut c = RefChain {
            head: mc.id,
            ndesc: mc.ndesc,
            ..Default::default()
        };
        for &b in &mc.bufs {
            self.add(b, &mut c, cap, log_cap)?;
        }
        Ok(c)
    }

    // ---- device operations ----------------------------------------------------------

    fn op(&mut self) {
        let before = self.state();
        let code = self.inp.u8() % 21;
        let op = match code {
            0 => self.get_desc(before),
            1 => self.discard(before),
            2 => self.add_used_taken(before),
            3 => self.add_used_in_order(before),
            4 => self.add_used_hostile(before),
            5 => self.notify(),
            6 => self.disable_notify(),
            7 => self.enable_notify(),
            8 => self.has_avail(),
            9 => {
                self.driver_add();
                GUEST
            }
            10 => {
                if let Some((at, fl)) = self.drv.deferred.take() {
                    self.mem.poke(at, &fl.to_le_bytes());
                    self.trace(format_args!("driver: head flags {fl:#x} at {at:#x}"));
                }
                GUEST
            }
            11 => {
                self.raw_desc();
                GUEST
            }
            12 => {
                self.flip();
                GUEST
            }
            13 => {
                self.driver_event();
                GUEST
            }
            14 => {
                self.poke();
                GUEST
            }
            15 => {
                self.table_entry();
                GUEST
            }
            16 => {
                let n = 1 + u32::from(self.inp.u8() % 8);
                self.mem.fail_in.set(n);
                self.trace(format_args!("fault: access {n} from now"));
                return;
            }
            17 => self.base(),
            18 => self.init_access(),
            19 => {
                self.resize();
                GUEST
            }
            _ => {
                self.features();
                GUEST
            }
        };
        self.check_op(before, op);
    }

    fn get_desc(&mut self, before: State) -> Op {
        let sel = self.inp.u8();
        let cap = match sel & 3 {
            0 => usize::from((sel >> 2) % 4),
            1 => 4 + usize::from((sel >> 2) % 16),
            _ => MAX_IOV,
        };
        // With dirty logging a log buffer of 0..3 entries or plenty, or none (as when the
        // caller does not log this chain).
        let log_cap = match (sel >> 4) & 3 {
            _ if !self.log => None,
            1 => Some(usize::from(sel >> 6)),
            3 => None,
            _ => Some(MAX_IOV),
        };
        let mut iov = vec![SENTINEL; cap];
        let mut log = vec![LOG_SENTINEL; log_cap.unwrap_or(0)];
        // What the driver meant, and what memory says, before the engine looks.
        let meant = self
            .intact_at(before.last_avail)
            .map(|mc| (mc.clone(), self.expect_chain(mc, cap, log_cap)));
        let mut m = self.model;
        let want = self.walk(&mut m, cap, log_cap);
        let r = {
            let mut buf = ChainBuf {
                iov: &mut iov,
                log: log_cap.map(|_| &mut log[..]),
            };
            self.vring.get_desc(&self.mem, &mut buf)
        };
        self.trace(format_args!(
            "get_desc (iov {cap}, log {log_cap:?}) at {:?}: {r:?}",
            before.last_avail
        ));
        let injected = self.mem.injected.get();
        let events = self.mem.events.borrow().clone();
        // The head's flags first, alone; anything more after a read barrier (the driver
        // writes them last, after its write barrier: 2.8.21.1).
        if self.in_ring(before.last_avail).is_ok() {
            let head_flags = Ev::Read(Kind::Desc, self.flags_at(before.last_avail), 2);
            assert_eq!(
                events.first(),
                Some(&head_flags),
                "get_desc starts elsewhere"
            );
        } else {
            assert!(events.is_empty(), "get_desc past the ring: {events:?}");
        }
        let reads: Vec<usize> = (0..events.len())
            .filter(|&i| matches!(events[i], Ev::Read(..)))
            .collect();
        if let [first, second, ..] = reads[..] {
            assert!(
                events[first..second].contains(&Ev::Rmb),
                "no rmb between the head's flags and the rest: {events:?}"
            );
        }
        let now = self.state();
        match r {
            Ok(Some(c)) => {
                let n = c.out_num + c.in_num;
                assert!(n <= cap, "{n} segments in a buffer of {cap}");
                assert!(
                    log_cap.is_some() || c.log_num == 0,
                    "log entries without a log"
                );
                assert!(c.log_num <= log.len(), "{} log entries", c.log_num);
                assert!(
                    iov[n..].iter().all(|s| *s == SENTINEL),
                    "iov written past the chain"
                );
                assert!(
                    log[c.log_num..].iter().all(|l| *l == LOG_SENTINEL),
                    "log written past the chain"
                );
                for s in &iov[..n] {
                    self.check_segment(s);
                }
                assert!(
                    log[..c.log_num].iter().all(|l| l.len != 0),
                    "empty log entry"
                );
                assert!(
                    c.ndesc >= 1 && u32::from(c.ndesc) <= self.num,
                    "ndesc {}",
                    c.ndesc
                );
                assert_eq!(
                    now.last_avail,
                    adv(before.last_avail, c.ndesc.into(), self.num),
                    "last_avail_idx did not move by the chain's {} slots",
                    c.ndesc
                );
                self.pending.push((c.head, c.ndesc));
                if !injected {
                    let w = want
                        .unwrap_or_else(|e| panic!("model: {e:?}, engine: {c:?}"))
                        .unwrap_or_else(|| panic!("model: no chain, engine: {c:?}"));
                    assert_eq!((c.head, c.ndesc), (w.head, w.ndesc), "id, slots");
                    assert_eq!((c.out_num, c.in_num), (w.out.len(), w.inn.len()));
                    assert_eq!(iov[..c.out_num], w.out[..], "readable segments");
                    assert_eq!(iov[c.out_num..n], w.inn[..], "writable segments");
                    assert_eq!(log[..c.log_num], w.log[..], "log entries");
                    let total = |s: &[Iov]| s.iter().map(|s| s.len).sum::<u64>();
                    assert_eq!(total(&iov[..c.out_num]), w.out_bytes, "readable bytes");
                    assert_eq!(total(&iov[c.out_num..n]), w.in_bytes, "writable bytes");
                    if let Some((mc, meant)) = &meant {
                        let meant = meant.as_ref().unwrap_or_else(|e| {
                            panic!("driver's chain {mc:x?} should fail with {e:?}, got {c:?}")
                        });
                        assert_eq!(
                            (c.head, c.ndesc),
                            (mc.id, mc.ndesc),
                            "not the driver's chain"
                        );
                        assert_eq!(iov[..c.out_num], meant.out[..], "not the driver's buffer");
                        assert_eq!(iov[c.out_num..n], meant.inn[..], "not the driver's buffer");
                        assert_eq!(log[..c.log_num], meant.log[..]);
                    }
                    self.model = m;
                }
            }
            Ok(None) => {
                assert_eq!(now, before, "get_desc found nothing and changed the ring");
                if !injected {
                    assert!(matches!(want, Ok(None)), "model: {want:?}, engine: nothing");
                    if let Some((mc, _)) = &meant {
                        panic!("the driver's chain {mc:x?} is available, the engine saw none");
                    }
                }
            }
            Err(e) => {
                assert_eq!(now, before, "get_desc failed ({e:?}) and changed the ring");
                if !injected {
                    assert_eq!(want.map(|_| ()), Err(e), "model and engine differ");
                    if let Some((mc, meant)) = &meant {
                        assert_eq!(
                            meant.as_ref().map(|_| ()),
                            Err(&e),
                            "the driver's chain {mc:x?}"
                        );
                    }
                }
            }
        }
        Op {
            ok: true,
            read_only: true,
            expect: Some(Vec::new()),
        }
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

    /// Gives back the last k chains taken, as a device that cannot finish them does.
    fn discard(&mut self, before: State) -> Op {
        let k = usize::from(self.inp.u8()) % (self.pending.len() + 1);
        let at = self.pending.len() - k;
        let nd: u64 = self.pending[at..].iter().map(|&(_, d)| u64::from(d)).sum();
        let Ok(nd16) = u16::try_from(nd) else {
            return GUEST;
        };
        self.vring.discard(k as u16, nd16);
        self.pending.truncate(at);
        self.trace(format_args!("discard {k} ({nd} slots)"));
        let now = self.state();
        let num = self.num;
        assert_eq!(
            now.last_avail,
            back(before.last_avail, nd, num),
            "discard did not rewind by {nd} slots"
        );
        assert_eq!(
            State {
                last_avail: before.last_avail,
                ..now
            },
            before,
            "discard changed more than last_avail_idx"
        );
        self.model.last_avail = now.last_avail;
        self.model.discarded = self
            .model
            .discarded
            .map(|d| d + nd)
            .filter(|&d| d < 2 * u64::from(num));
        GUEST
    }

    /// A written length: none, small, 16 bits or any.
    fn used_len(&mut self) -> u32 {
        match self.inp.u8() % 4 {
            0 => 0,
            1 => self.inp.u8().into(),
            2 => self.inp.u16().into(),
            _ => self.inp.u32(),
        }
    }

    /// Chains taken, used in any order, each with its slot count.
    fn add_used_taken(&mut self, before: State) -> Op {
        let k = usize::from(self.inp.u8()) % (self.pending.len() + 1);
        let mut heads = Vec::new();
        let mut nds = Vec::new();
        for _ in 0..k {
            let j = usize::from(self.inp.u8()) % self.pending.len();
            let (id, nd) = self.pending.remove(j);
            heads.push((u32::from(id), self.used_len()));
            nds.push(nd);
        }
        self.used(before, &heads, &nds, false)
    }

    /// Chains taken, used in the order taken, in batches each named by its last buffer
    /// and counting all its slots (2.8.8).
    fn add_used_in_order(&mut self, before: State) -> Op {
        let k = usize::from(self.inp.u8()) % (self.pending.len() + 1);
        let taken: Vec<(u16, u16)> = self.pending.drain(..k).collect();
        let mut heads = Vec::new();
        let mut nds = Vec::new();
        let mut rest = &taken[..];
        while !rest.is_empty() {
            let n = 1 + usize::from(self.inp.u8()) % rest.len();
            let (batch, r) = rest.split_at(n);
            rest = r;
            let sum: u64 = batch.iter().map(|&(_, d)| u64::from(d)).sum();
            let Ok(sum) = u16::try_from(sum) else {
                return GUEST;
            };
            heads.push((u32::from(batch[n - 1].0), self.used_len()));
            nds.push(sum);
        }
        self.used(before, &heads, &nds, true)
    }

    /// What no device should pass: ids past 16 bits, slot counts of 0 or past the ring,
    /// fewer counts than heads.
    fn add_used_hostile(&mut self, before: State) -> Op {
        let sel = self.inp.u8();
        let n = usize::from((sel >> 1) % 8);
        let mut heads = Vec::new();
        let mut nds = Vec::new();
        for _ in 0..n {
            let id = match self.inp.u8() % 4 {
                0 => self.pending.first().map_or(0, |p| p.0).into(),
                1 => self.inp.u16().into(),
                2 => 0x10000 + u32::from(self.inp.u8()),
                _ => self.inp.u32(),
            };
            heads.push((id, self.used_len()));
            let nd = match self.inp.u8() % 4 {
                0 => 1,
                1 => u16::from(self.inp.u8()),
                2 => (2 * self.num).min(0xffff) as u16,
                _ => self.inp.u16(),
            };
            nds.push(nd);
        }
        if sel & 0x10 != 0 {
            nds.pop();
        }
        self.used(before, &heads, &nds, sel & 1 != 0)
    }

    /// Publishes used buffers and checks what was written: each element at the slot after
    /// the previous element's slots, len and id, then flags with AVAIL = USED = the
    /// device's wrap counter and WRITE iff len != 0; the first element's flags last, after a
    /// write barrier (2.8.9: the driver reads on only past a used first descriptor).
    fn used(&mut self, before: State, heads: &[(u32, u32)], nds: &[u16], in_order: bool) -> Op {
        let num = self.num;
        let r = if in_order {
            let nbufs = vec![1u16; heads.len()];
            self.vring
                .add_used_n_in_order(&self.mem, heads, &nbufs, nds)
        } else {
            self.vring.add_used_n(&self.mem, heads, nds)
        };
        self.trace(format_args!(
            "add_used{} {heads:x?} slots {nds:?}: {r:?}",
            if in_order { "_in_order" } else { "" }
        ));
        let n = heads.len().min(nds.len());
        let total: u64 = nds[..n].iter().map(|&d| u64::from(d)).sum();
        // What a device can pass: slot counts of the chains it took, at most a ring's.
        let honest = nds[..n].iter().all(|&d| d >= 1) && total <= u64::from(num);
        let start = before.last_used;
        let mut pos = start;
        let mut places = Vec::new();
        for &nd in &nds[..n] {
            places.push(pos);
            pos = adv(pos, nd.into(), num);
        }
        let events = self.mem.events.borrow().clone();
        let writes: Vec<W> = events
            .iter()
            .filter_map(|e| match e {
                Ev::Write(Kind::Desc, w) => Some(*w),
                _ => None,
            })
            .collect();
        let now = self.state();
        let first_flags = self.flags_at(start);
        let injected = self.mem.injected.get();
        match r {
            Ok(()) => {
                assert!(
                    heads[..n].iter().all(|&(id, _)| id <= 0xffff),
                    "an id past 16 bits was published"
                );
                assert_eq!(
                    now.last_used, pos,
                    "last_used_idx did not move by {total} slots"
                );
                if n == 0 {
                    assert!(events.is_empty(), "nothing to publish, yet {events:?}");
                } else {
                    // Exactly the 2n writes the elements ask for (as a multiset: a hostile
                    // batch may write a slot twice).
                    let mut want: Vec<W> = Vec::new();
                    for (&(id, len), &p) in heads.iter().zip(&places) {
                        let mut lenid = len.to_le_bytes().to_vec();
                        lenid.extend((id as u16).to_le_bytes());
                        want.push(W::new(self.slot(p.idx).wrapping_add(8), &lenid, true));
                        let fl = used_bits(p.wrap, len);
                        want.push(W::new(self.flags_at(p), &fl.to_le_bytes(), true));
                    }
                    let mut got = writes.clone();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "used descriptors written");
                    // The first element's flags last, after a wmb.
                    let last = events
                        .iter()
                        .rposition(|e| matches!(e, Ev::Write(..)))
                        .unwrap_or(0);
                    let prev = events[..last]
                        .iter()
                        .rposition(|e| matches!(e, Ev::Write(..)))
                        .unwrap_or(0);
                    assert!(
                        matches!(&events[last], Ev::Write(Kind::Desc, w) if w.addr == first_flags
                            && w.data() == used_bits(start.wrap, heads[0].1).to_le_bytes()),
                        "the first used descriptor's flags are not the last write: {events:?}"
                    );
                    assert!(
                        events[prev..last].contains(&Ev::Wmb),
                        "no wmb before the first used descriptor's flags: {events:?}"
                    );
                    // One log_desc per element, of its len, id and flags.
                    let mut logs: Vec<(u64, u64)> = events
                        .iter()
                        .filter_map(|e| match *e {
                            Ev::LogDesc(o, l) => Some((o, l)),
                            _ => None,
                        })
                        .collect();
                    let mut want: Vec<(u64, u64)> = places
                        .iter()
                        .map(|p| (DESC * u64::from(p.idx) + 8, 8))
                        .collect();
                    logs.sort();
                    want.sort();
                    assert_eq!(logs, want, "log_desc of the used descriptors");
                    if honest {
                        // What the driver finds at each element's slot (none overlap).
                        for (&(id, len), &p) in heads.iter().zip(&places) {
                            let mut b = [0u8; 16];
                            if self.mem.peek(self.slot(p.idx), &mut b).is_ok() {
                                let d = Desc::from(&b);
                                assert_eq!(
                                    (d.len, u32::from(d.id), d.flags),
                                    (len, id, used_bits(p.wrap, len)),
                                    "used descriptor at {p:?}"
                                );
                            }
                        }
                    }
                }
                if !injected {
                    self.model.last_used = pos;
                    self.model.since = self.model.since.saturating_add(total);
                }
            }
            Err(e) => {
                assert_eq!(now, before, "add_used failed ({e:?}) and changed the ring");
                let bad_id = heads[..n].iter().any(|&(id, _)| id > 0xffff);
                let failed = writes.iter().any(|w| !w.ok);
                let outside = self.in_ring(start).is_err();
                match e {
                    RingError::IndexOutOfRange { .. } => assert!(bad_id || outside, "{e:?}"),
                    RingError::Fault => assert!(failed, "Fault without a failed write"),
                    _ => panic!("add_used: {e:?}"),
                }
                if honest {
                    // The driver must not see part of a batch.
                    assert!(
                        !writes.iter().any(|w| w.ok && w.addr == first_flags),
                        "a failed batch's first flags were written: {events:?}"
                    );
                }
            }
        }
        Op {
            ok: r.is_ok(),
            read_only: false,
            expect: None,
        }
    }

    /// The model's `notify()`: NOTIFY_ON_EMPTY when nothing is left; without EVENT_IDX
    /// anything but DISABLE; with it DESC asks whether the used position stepped on
    /// off_wrap since the last notification, which after two laps cannot be told (yes).
    /// A driver area that cannot be read is the queue's error (the caller signals anyway).
    fn notify_model(&mut self) -> Result<bool, RingError> {
        let num = self.num;
        let m = &mut self.model;
        let (event_idx, noe, _) = self.feat;
        let drained = m.discarded == Some(0);
        let head = m.last_avail;
        let mem = &self.mem;
        let avail = self.cfg.1;
        let flags_at = self.cfg.0.wrapping_add(DESC * u64::from(head.idx) + 14);
        let avail_head = u32::from(head.idx) < num
            && mem.peek_u16(flags_at).is_ok_and(|f| is_avail(f, head.wrap));
        if noe && drained && !avail_head {
            return Ok(true);
        }
        let flags = mem.peek_u16(avail.wrapping_add(2))?;
        if !event_idx {
            return Ok(flags != RING_EVENT_FLAGS_DISABLE);
        }
        let (old, valid, new) = (m.signalled, m.signalled_valid(num), m.last_used);
        m.signalled = new;
        m.valid = true;
        m.since = 0;
        Ok(match flags {
            RING_EVENT_FLAGS_DISABLE => false,
            RING_EVENT_FLAGS_DESC if valid => stepped_on(mem.peek_u16(avail)?, old, new, num),
            _ => true,
        })
    }

    fn notify(&mut self) -> Op {
        let r = self.vring.notify(&self.mem);
        self.trace(format_args!("notify: {r:?}"));
        let events = self.mem.events.borrow().clone();
        // Used descriptors flushed before the driver's suppression state is read.
        assert_eq!(events.first(), Some(&Ev::Mb), "notify without a first mb");
        // off_wrap after the flags that make it count, with a read barrier between.
        let ow = Ev::Read(Kind::Avail, self.cfg.1, 2);
        if let Some(i) = events.iter().position(|e| *e == ow) {
            let fl = events[..i]
                .iter()
                .rposition(|e| *e == Ev::Read(Kind::Avail, self.cfg.1.wrapping_add(2), 2));
            let fl = fl.unwrap_or_else(|| panic!("off_wrap read before the flags: {events:?}"));
            assert!(
                events[fl..i].contains(&Ev::Rmb),
                "no rmb between flags and off_wrap"
            );
        }
        let want = self.notify_model();
        if self.judged() {
            assert_eq!(r, want, "notify: engine and model differ");
        }
        Op {
            ok: true,
            read_only: true,
            expect: Some(Vec::new()),
        }
    }

    /// The device area's writes the model expects, stopping at the first that faults.
    fn area_writes(&self, w: &[(u64, u16)]) -> (Vec<W>, bool) {
        let mut out = Vec::new();
        for &(off, v) in w {
            let at = self.cfg.2.wrapping_add(off);
            let ok = self.mem.ok(at, 2, self.mem.no_write);
            out.push(W::new(at, &v.to_le_bytes(), ok));
            if !ok {
                return (out, false);
            }
        }
        (out, true)
    }

    fn disable_notify(&mut self) -> Op {
        let r = self.vring.disable_notify(&self.mem);
        self.trace(format_args!("disable_notify: {r:?}"));
        let (expect, ok) = if self.model.event_flags == RING_EVENT_FLAGS_DISABLE {
            (Vec::new(), true)
        } else {
            self.area_writes(&[(2, RING_EVENT_FLAGS_DISABLE)])
        };
        if !self.mem.injected.get() {
            assert_eq!(r.is_ok(), ok, "disable_notify: {r:?}");
            if ok {
                self.model.event_flags = RING_EVENT_FLAGS_DISABLE;
            }
        }
        Op {
            ok: r.is_ok(),
            read_only: false,
            expect: Some(expect),
        }
    }

    /// With EVENT_IDX: off_wrap at the position past the furthest chain taken, then DESC;
    /// else ENABLE. Then whether a descriptor was made available there meanwhile (chains
    /// given back do not count: 7.3's RX livelock fix).
    fn enable_notify(&mut self) -> Op {
        let r = self.vring.enable_notify(&self.mem);
        self.trace(format_args!("enable_notify: {r:?}"));
        let num = self.num;
        let mut expect = Vec::new();
        let mut want = Ok(false);
        if self.model.event_flags == RING_EVENT_FLAGS_DISABLE {
            match self.model.avail_idx(num) {
                Some(a) if self.feat.0 => {
                    let (w, ok) = self.area_writes(&[(0, enc(a)), (2, RING_EVENT_FLAGS_DESC)]);
                    expect = w;
                    want = if ok {
                        self.avail_at(a)
                    } else {
                        Err(RingError::Fault)
                    };
                    if ok {
                        self.model.event_flags = RING_EVENT_FLAGS_DESC;
                    }
                }
                Some(a) => {
                    let (w, ok) = self.area_writes(&[(2, RING_EVENT_FLAGS_ENABLE)]);
                    expect = w;
                    want = if ok {
                        self.avail_at(a)
                    } else {
                        Err(RingError::Fault)
                    };
                    if ok {
                        self.model.event_flags = RING_EVENT_FLAGS_ENABLE;
                    }
                }
                None => unreachable!("resynced after every operation"),
            }
        }
        let judged = self.judged();
        if judged {
            assert_eq!(r, want, "enable_notify: engine and model differ");
        }
        Op {
            ok: r.is_ok(),
            read_only: false,
            expect: judged.then_some(expect),
        }
    }

    fn has_avail(&mut self) -> Op {
        let r = self.vring.has_avail(&self.mem);
        self.trace(format_args!("has_avail: {r:?}"));
        let want = match self.model.discarded {
            Some(0) => self.avail_at(self.model.last_avail),
            _ => Ok(true),
        };
        if self.judged() {
            assert_eq!(r, want, "has_avail: engine and model differ");
        }
        Op {
            ok: true,
            read_only: true,
            expect: Some(Vec::new()),
        }
    }

    /// `VHOST_GET_VRING_BASE` then `VHOST_SET_VRING_BASE` of it (a VMM's stop and restart),
    /// or of any value.
    fn base(&mut self) -> Op {
        let sel = self.inp.u8();
        let got = self.vring.get_base();
        let b = match sel & 3 {
            0 => got,
            1 => self.inp.u32(),
            2 => {
                let a = (self.inp.u16() % self.num as u16) | (u16::from(sel & 4 != 0) << 15);
                let u = (self.inp.u16() % self.num as u16) | (u16::from(sel & 8 != 0) << 15);
                u32::from(a) | u32::from(u) << 16
            }
            _ => 0x8000,
        };
        let r = self.vring.set_base(b);
        self.trace(format_args!("get_base {got:#x}, set_base {b:#x}: {r:?}"));
        // (After a resize the positions read back may lie past the ring: refused.)
        if sel & 3 == 0 && !self.resized {
            assert_eq!(r, Ok(()), "set_base refused what get_base gave");
        }
        check_set_base(&self.vring, b, r, self.num, got);
        if r.is_ok() {
            let st = self.state();
            let m = &mut self.model;
            m.last_avail = st.last_avail;
            m.last_used = st.last_used;
            m.discarded = Some(0);
            m.valid = false;
            m.since = 0;
            // A restart drops what was in flight; the driver goes on where the device is.
            self.pending.clear();
            self.drv.next = st.last_avail;
            self.drv.deferred = None;
            self.resized = false;
        }
        GUEST
    }

    /// As a backend starts: the device area as the notification state has it (DESC with
    /// its off_wrap first), and no last notification to compare with.
    fn init_access(&mut self) -> Op {
        let r = self.vring.init_access(&self.mem);
        self.trace(format_args!("init_access: {r:?}"));
        let m = self.model;
        let (expect, ok) = match m.avail_idx(self.num) {
            Some(a) if m.event_flags == RING_EVENT_FLAGS_DESC => {
                self.area_writes(&[(0, enc(a)), (2, RING_EVENT_FLAGS_DESC)])
            }
            _ => self.area_writes(&[(2, m.event_flags)]),
        };
        let judged = self.judged();
        if judged {
            assert_eq!(r.is_ok(), ok, "init_access: {r:?}");
        }
        self.model.valid = false;
        self.model.since = 0;
        Op {
            ok: r.is_ok(),
            read_only: false,
            expect: judged.then_some(expect),
        }
    }

    /// A VMM's `VHOST_SET_VRING_NUM` on a stopped queue, after its base: what was in flight
    /// is dropped, the positions stay and may now lie past the ring, which the engine must
    /// refuse to use rather than reach outside it.
    fn resize(&mut self) {
        let num = 1 + u32::from(self.inp.u8() % 64);
        self.vring.set_num(num);
        self.num = num;
        self.pending.clear();
        self.drv.chains.clear();
        self.drv.deferred = None;
        self.resized = true;
        // Positions mean other slots in a ring of another size: the model starts over from
        // the engine's.
        let st = self.state();
        self.model.resync(&st, num);
        self.trace(format_args!("resize to {num}"));
    }

    /// `VHOST_SET_FEATURES` again: other notification features keep the ring's state;
    /// RING_PACKED dropped and acked again starts a fresh packed ring of the same size at
    /// the same addresses (vring.rs).
    fn features(&mut self) {
        let sel = self.inp.u8();
        let (ev, noe, io) = (sel & 1 != 0, sel & 2 != 0, sel & 4 != 0);
        let before = self.state();
        if sel & 8 != 0 {
            self.vring.set_features(false, ev, noe, io);
            assert!(!self.vring.is_packed(), "RING_PACKED dropped, still packed");
        }
        self.vring.set_features(true, ev, noe, io);
        self.trace(format_args!(
            "features: event_idx {ev} notify_on_empty {noe} in_order {io}{}",
            if sel & 8 != 0 {
                ", after a split ring"
            } else {
                ""
            }
        ));
        self.feat = (ev, noe, io);
        let pr = self.pr();
        assert_eq!(
            (pr.event_idx, pr.notify_on_empty, pr.in_order),
            (ev, noe, io)
        );
        let now = self.state();
        if sel & 8 == 0 {
            assert_eq!(now, before, "features changed the ring's state");
            return;
        }
        let start = RingPos { idx: 0, wrap: true };
        assert_eq!(
            now,
            State {
                last_avail: start,
                avail_idx: start,
                last_used: start,
                event_flags: RING_EVENT_FLAGS_ENABLE,
                signalled: start,
                valid: false,
            },
            "a new packed ring is not a fresh one"
        );
        self.model = Model {
            last_avail: start,
            discarded: Some(0),
            last_used: start,
            event_flags: RING_EVENT_FLAGS_ENABLE,
            signalled: start,
            valid: false,
            since: 0,
        };
        self.pending.clear();
        self.drv = Driver {
            next: start,
            chains: Vec::new(),
            deferred: None,
        };
        self.resized = false;
    }

    // ---- what holds after every operation -------------------------------------------

    fn check_op(&mut self, before: State, op: Op) {
        let num = self.num;
        assert_eq!(self.vring.num(), num, "ring size changed");
        assert_eq!(self.vring.addrs(), self.cfg, "ring addresses changed");
        let events = self.mem.events.take();
        let injected = self.mem.injected.replace(false);
        self.mem.fail_in.set(0);
        let (desc, avail, used) = self.cfg;
        let ring_bytes = DESC * u64::from(num);
        let writes: Vec<(usize, Kind, W)> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Ev::Write(k, w) => Some((i, *k, *w)),
                _ => None,
            })
            .collect();
        assert!(!op.read_only || writes.is_empty(), "writes {writes:x?}");
        for e in &events {
            match *e {
                // Descriptor slots (a whole one, or a head's flags), the driver area, or
                // one entry (or a piece of one) of an indirect table in guest memory.
                Ev::Read(k, a, len) => {
                    let ok = match k {
                        Kind::Desc => {
                            let off = a.wrapping_sub(desc);
                            off < ring_bytes
                                && (off % 16 == 0 && len == 16 || off % 16 == 14 && len == 2)
                        }
                        Kind::Avail => {
                            let off = a.wrapping_sub(avail);
                            (off == 0 || off == 2) && len == 2
                        }
                        Kind::Used => false,
                        Kind::Plain => {
                            (1..=16).contains(&len)
                                && self.mem.maps.iter().any(|m| {
                                    let o = a.wrapping_sub(m.addr);
                                    o < m.size() && len as u64 <= m.size() - o
                                })
                        }
                    };
                    assert!(ok, "read of {len} bytes at {a:#x} ({k:?})");
                }
                // A used descriptor's len, id and flags (bytes 8..16 of a slot); the
                // device area's two fields. Never the driver area, never a buffer.
                Ev::Write(k, w) => {
                    let len = u64::from(w.len);
                    let ok = match k {
                        Kind::Desc => {
                            let off = w.addr.wrapping_sub(desc);
                            off < ring_bytes && off % 16 >= 8 && off % 16 + len <= 16
                        }
                        Kind::Used => {
                            let off = w.addr.wrapping_sub(used);
                            (off == 0 || off == 2) && len == 2
                        }
                        Kind::Avail | Kind::Plain => false,
                    };
                    assert!(ok, "write {w:?} ({k:?})");
                }
                Ev::LogDesc(o, l) => assert!(
                    l != 0 && o.checked_add(l).is_some_and(|e| e <= ring_bytes),
                    "log_desc({o:#x}, {l}) outside the descriptor ring"
                ),
                Ev::LogUsed(o, l) => assert!(
                    l != 0 && o.checked_add(l).is_some_and(|e| e <= EVENT),
                    "log_used({o:#x}, {l}) outside the device area"
                ),
                _ => {}
            }
        }
        // Dirty log: every write that landed is logged after it (once the operation
        // succeeded: a failed one stops the queue, as vhost.c's), and nothing is logged
        // that was not written.
        let covers = |e: &Ev, k: Kind, w: &W| {
            let (base, o, l) = match (e, k) {
                (&Ev::LogDesc(o, l), Kind::Desc) => (desc, o, l),
                (&Ev::LogUsed(o, l), Kind::Used) => (used, o, l),
                _ => return false,
            };
            let off = w.addr.wrapping_sub(base);
            off >= o && off.saturating_add(u64::from(w.len)) <= o.saturating_add(l)
        };
        if op.ok {
            for &(i, k, w) in writes.iter().filter(|x| x.2.ok) {
                assert!(
                    events[i + 1..].iter().any(|e| covers(e, k, &w)),
                    "write {w:?} ({k:?}) not logged: {events:?}"
                );
            }
        }
        for (j, e) in events.iter().enumerate() {
            if matches!(e, Ev::LogDesc(..) | Ev::LogUsed(..)) {
                assert!(
                    writes
                        .iter()
                        .any(|&(i, k, w)| i < j && w.ok && covers(e, k, &w)),
                    "{e:?} logs nothing written"
                );
            }
        }
        // A read after our own write: a full barrier between, or the driver's update and
        // our re-check can both miss (vhost_enable_notify()).
        for (i, e) in events.iter().enumerate() {
            if !matches!(e, Ev::Read(..)) {
                continue;
            }
            if let Some(k) = events[..i]
                .iter()
                .rposition(|e| matches!(e, Ev::Write(_, w) if w.ok))
            {
                assert!(
                    events[k..i].contains(&Ev::Mb),
                    "no mb between write and read"
                );
            }
        }
        // DESC in the device area only after its off_wrap, with a wmb between: the driver
        // may read the two fields apart.
        for &(i, k, w) in &writes {
            if k == Kind::Used && w.addr == used.wrapping_add(2) && w.data() == [2, 0] {
                let ow = writes[..]
                    .iter()
                    .rposition(|&(j, k, x)| j < i && k == Kind::Used && x.ok && x.addr == used);
                let j = ow.map(|x| writes[x].0);
                let j = j.unwrap_or_else(|| panic!("DESC without off_wrap: {events:?}"));
                assert!(events[j..i].contains(&Ev::Wmb), "no wmb before DESC");
            }
        }
        if let Some(want) = op.expect {
            if !injected {
                let got: Vec<W> = writes.iter().map(|x| x.2).collect();
                assert_eq!(got, want, "writes: engine and model differ");
            }
        }
        // Positions inside the ring, and VHOST_GET_VRING_BASE encoding them.
        let now = self.state();
        if !self.resized {
            for p in [now.last_avail, now.avail_idx, now.last_used] {
                assert!(
                    u32::from(p.idx) < num,
                    "position {p:?} outside a ring of {num}"
                );
            }
        }
        assert_eq!(
            self.vring.get_base(),
            u32::from(enc(now.last_avail)) | u32::from(enc(now.last_used)) << 16,
            "get_base"
        );
        if injected || self.model.discarded.is_none() || self.resized && !self.strict {
            self.trace(format_args!("(model resynced: {now:?})"));
            self.model.resync(&now, num);
        }
        if now != before {
            self.trace(format_args!("state {now:?}"));
        }
        self.model.check(&now, num);
    }
}

/// `VHOST_SET_VRING_BASE` of `b` gave `r`: accepted iff both positions lie in the ring
/// (DPDK's bare `1 << 15` read as a fresh ring), then read back by `VHOST_GET_VRING_BASE`;
/// a refused one changes nothing (`old`, the base before).
fn check_set_base(v: &Vring, b: u32, r: Result<(), RingError>, num: u32, old: u32) {
    let eff = if b == 0x8000 { 0x8000_8000 } else { b };
    let fits = (eff & 0x7fff) < num && ((eff >> 16) & 0x7fff) < num;
    assert_eq!(
        r.is_ok(),
        fits,
        "set_base({b:#x}) on a ring of {num}: {r:?}"
    );
    if r.is_ok() {
        assert_eq!(v.get_base(), eff, "set_base({b:#x}) then get_base");
        if let Vring::Packed(p) = v {
            assert_eq!(p.avail_idx, p.last_avail_idx, "set_base: avail_idx");
            assert!(!p.signalled_used_valid, "set_base: signalled_used_valid");
        }
    } else {
        assert_eq!(
            v.get_base(),
            old,
            "a refused set_base({b:#x}) changed the base"
        );
    }
}
