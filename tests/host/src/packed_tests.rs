//! ring/packed.rs against a fake guest memory that records every access, driven by a fake
//! driver that lays out packed rings as the spec's driver does (2.8.21): chains and
//! indirect tables, both wrap counters over many laps, every hostile layout we could think
//! of, the order of used writes, notification suppression, and a randomized model run.

use crate::ring::packed::*;
use crate::ring::{
    Chain, ChainBuf, GuestMemory, Iov, Part, RingError, MAX_IOV, VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

/// Owner address space: one flat buffer at `BASE`; guest physical memory is mapped into it
/// by `regions` (gpa start, size, owner address), as in ring_tests.rs.
const BASE: u64 = 0x10_0000;
const SIZE: usize = 1 << 20;
/// Where guest physical 0 is in the owner buffer.
const RAM: u64 = BASE + 0x80000;
/// Ring parts: descriptor ring (up to 4096 entries), driver and device areas.
const DESC: u64 = BASE;
const DRIVER: u64 = BASE + 0x10000;
const DEVICE: u64 = BASE + 0x10010;

/// One access of the engine, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Read(Part, u64, usize),
    Write(Part, u64, Vec<u8>),
    LogDesc(u64, u64),
    LogUsed(u64, u64),
    Rmb,
    Wmb,
    Mb,
}

struct Mem {
    bytes: RefCell<Vec<u8>>,
    regions: Vec<(u64, u64, u64)>,
    evs: RefCell<Vec<Ev>>,
}

impl Mem {
    fn new() -> Self {
        Mem {
            bytes: RefCell::new(vec![0; SIZE]),
            regions: vec![(0, 0x40000, RAM), (0x10_0000, 0x20000, BASE + 0xC0000)],
            evs: RefCell::new(Vec::new()),
        }
    }
    fn put(&self, uaddr: u64, data: &[u8]) {
        let o = (uaddr - BASE) as usize;
        self.bytes.borrow_mut()[o..o + data.len()].copy_from_slice(data);
    }
    fn get(&self, uaddr: u64, n: usize) -> Vec<u8> {
        let o = (uaddr - BASE) as usize;
        self.bytes.borrow()[o..o + n].to_vec()
    }
    fn get16(&self, uaddr: u64) -> u16 {
        let b = self.get(uaddr, 2);
        u16::from_le_bytes([b[0], b[1]])
    }
    fn take_evs(&self) -> Vec<Ev> {
        std::mem::take(&mut *self.evs.borrow_mut())
    }
    fn ev(&self, e: Ev) {
        self.evs.borrow_mut().push(e);
    }
}

impl GuestMemory for Mem {
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        let o = uaddr.checked_sub(BASE).ok_or(RingError::Fault)? as usize;
        let b = self.bytes.borrow();
        let src = b.get(o..o + buf.len()).ok_or(RingError::Fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), RingError> {
        let o = uaddr.checked_sub(BASE).ok_or(RingError::Fault)? as usize;
        let mut b = self.bytes.borrow_mut();
        let dst = b.get_mut(o..o + buf.len()).ok_or(RingError::Fault)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn lookup(&self, gpa: u64, last: u64, _access: u8) -> Result<(u64, u64, u64), RingError> {
        self.regions
            .iter()
            .filter(|(s, n, _)| *s <= last && s + n > gpa)
            .min_by_key(|(s, _, _)| *s)
            .copied()
            .ok_or(RingError::Fault)
    }
    fn ring_read(&self, part: Part, addr: u64, buf: &mut [u8]) -> Result<(), RingError> {
        self.ev(Ev::Read(part, addr, buf.len()));
        self.read(addr, buf)
    }
    fn ring_read_u16(&self, part: Part, addr: u64) -> Result<u16, RingError> {
        self.ev(Ev::Read(part, addr, 2));
        self.read_u16(addr)
    }
    fn ring_write(&self, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.ev(Ev::Write(Part::Used, addr, buf.to_vec()));
        self.write(addr, buf)
    }
    fn ring_write_u16(&self, addr: u64, v: u16) -> Result<(), RingError> {
        self.ring_write(addr, &v.to_le_bytes())
    }
    fn ring_write_desc(&self, addr: u64, buf: &[u8]) -> Result<(), RingError> {
        self.ev(Ev::Write(Part::Desc, addr, buf.to_vec()));
        self.write(addr, buf)
    }
    fn ring_write_desc_u16(&self, addr: u64, v: u16) -> Result<(), RingError> {
        self.ring_write_desc(addr, &v.to_le_bytes())
    }
    fn log_used(&self, offset: u64, len: u64) {
        self.ev(Ev::LogUsed(offset, len));
    }
    fn log_desc(&self, offset: u64, len: u64) {
        self.ev(Ev::LogDesc(offset, len));
    }
    fn rmb(&self) {
        self.ev(Ev::Rmb);
    }
    fn wmb(&self) {
        self.ev(Ev::Wmb);
    }
    fn mb(&self) {
        self.ev(Ev::Mb);
    }
}

fn ring(num: u32) -> PackedRing {
    let mut r = PackedRing::new();
    r.num = num;
    r.desc = DESC;
    r.avail = DRIVER;
    r.used = DEVICE;
    r
}

/// The AVAIL/USED bits a driver sets to make a descriptor available in lap `wrap`.
fn avail_bits(wrap: bool) -> u16 {
    if wrap {
        VIRTQ_DESC_F_AVAIL
    } else {
        VIRTQ_DESC_F_USED
    }
}

fn desc_bytes(addr: u64, len: u32, id: u16, flags: u16) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&len.to_le_bytes());
    d[12..14].copy_from_slice(&id.to_le_bytes());
    d[14..16].copy_from_slice(&flags.to_le_bytes());
    d
}

fn put_desc(m: &Mem, idx: u16, addr: u64, len: u32, id: u16, flags: u16) {
    m.put(
        DESC + 16 * u64::from(idx),
        &desc_bytes(addr, len, id, flags),
    );
}

fn slot_bytes(m: &Mem, idx: u16) -> Vec<u8> {
    m.get(DESC + 16 * u64::from(idx), 16)
}

/// Indirect table entries `(addr, len, flags)` at guest address `gpa`.
fn put_table(m: &Mem, gpa: u64, entries: &[(u64, u32, u16)]) {
    for (k, &(addr, len, flags)) in entries.iter().enumerate() {
        m.put(
            RAM + gpa + 16 * k as u64,
            &desc_bytes(addr, len, 0xdead, flags),
        );
    }
}

fn take(m: &Mem, r: &mut PackedRing) -> Result<Option<(Chain, Vec<Iov>)>, RingError> {
    let mut iov = vec![Iov::default(); MAX_IOV];
    let mut buf = ChainBuf {
        iov: &mut iov,
        log: None,
    };
    let c = r.get_desc(m, &mut buf)?;
    Ok(c.map(|c| (c, iov[..c.out_num + c.in_num].to_vec())))
}

/// One element of a buffer: guest address, length, device-writable.
type Seg = (u64, u32, bool);

/// The driver side, as the spec's example (2.8.21.1) and Linux's virtqueue_add_packed():
/// chains written at `next` with the head's flags last, ids from a free list, the slots
/// each id took remembered to skip used descriptors (2.8.6).
struct Driver {
    num: u32,
    next: RingPos,
    used: RingPos,
    sgs: BTreeMap<u16, u16>,
    free: u32,
    /// Descriptors made available since the last kick check (Linux's num_added).
    added: u32,
}

impl Driver {
    fn new(num: u32) -> Self {
        Driver {
            num,
            next: RingPos::START,
            used: RingPos::START,
            sgs: BTreeMap::new(),
            free: num,
            added: 0,
        }
    }

    /// Makes a chain of `segs` available under `id`; `None` if the ring lacks room.
    fn add(&mut self, m: &Mem, segs: &[Seg], id: u16) -> Option<RingPos> {
        let n = segs.len() as u32;
        if n == 0 || n > self.free {
            return None;
        }
        let first = self.next;
        let mut head_flags = 0;
        let mut pos = first;
        for (k, &(addr, len, write)) in segs.iter().enumerate() {
            let mut f = avail_bits(pos.wrap);
            if write {
                f |= VRING_DESC_F_WRITE;
            }
            if k + 1 < segs.len() {
                f |= VRING_DESC_F_NEXT;
            }
            // The id goes in the last descriptor; the others get junk.
            let did = if k + 1 == segs.len() { id } else { 0x5a5a };
            if k == 0 {
                put_desc(m, pos.idx, addr, len, did, 0);
                head_flags = f;
            } else {
                put_desc(m, pos.idx, addr, len, did, f);
            }
            pos = pos.advance(1, self.num);
        }
        m.put(
            DESC + 16 * u64::from(first.idx) + 14,
            &head_flags.to_le_bytes(),
        );
        self.next = pos;
        self.free -= n;
        self.added += n;
        self.sgs.insert(id, n as u16);
        Some(first)
    }

    /// Makes one indirect descriptor available, its table of `segs` at guest `gpa`.
    fn add_indirect(&mut self, m: &Mem, gpa: u64, segs: &[Seg], id: u16) -> Option<RingPos> {
        if self.free == 0 {
            return None;
        }
        let entries: Vec<(u64, u32, u16)> = segs
            .iter()
            .map(|&(a, l, w)| (a, l, if w { VRING_DESC_F_WRITE } else { 0 }))
            .collect();
        put_table(m, gpa, &entries);
        let pos = self.next;
        put_desc(
            m,
            pos.idx,
            gpa,
            16 * segs.len() as u32,
            id,
            VRING_DESC_F_INDIRECT | avail_bits(pos.wrap),
        );
        self.next = pos.advance(1, self.num);
        self.free -= 1;
        self.added += 1;
        self.sgs.insert(id, 1);
        Some(pos)
    }

    /// The next used descriptor (Linux's virtqueue_get_buf_ctx_packed()): `(id, len,
    /// flags)`, skipping the slots of its chain.
    fn get_used(&mut self, m: &Mem) -> Option<(u16, u32, u16)> {
        let b = slot_bytes(m, self.used.idx);
        let flags = u16::from_le_bytes([b[14], b[15]]);
        let a = flags & VIRTQ_DESC_F_AVAIL != 0;
        let u = flags & VIRTQ_DESC_F_USED != 0;
        if a != u || u != self.used.wrap {
            return None;
        }
        let id = u16::from_le_bytes([b[12], b[13]]);
        let len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        let n = self.sgs.remove(&id).expect("used id the driver gave");
        self.free += u32::from(n);
        self.used = self.used.advance(n.into(), self.num);
        Some((id, len, flags))
    }

    /// Linux's virtqueue_kick_prepare_packed(), on what the device wrote in its area.
    fn kick_prepare(&mut self, m: &Mem) -> bool {
        let off_wrap = m.get16(DEVICE);
        let flags = m.get16(DEVICE + 2);
        let new = self.next.idx;
        let old = new.wrapping_sub(self.added as u16);
        self.added = 0;
        if flags != RING_EVENT_FLAGS_DESC {
            return flags != RING_EVENT_FLAGS_DISABLE;
        }
        let wrap = off_wrap >> 15 != 0;
        let mut event = off_wrap & 0x7fff;
        if wrap != self.next.wrap {
            event = event.wrapping_sub(self.num as u16);
        }
        // vring_need_event()
        new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
    }
}

fn ram(gpa: u64, len: u64) -> Iov {
    Iov {
        addr: RAM + gpa,
        len,
    }
}

#[test]
fn sizes_alignment_and_queue_sizes() {
    assert!(valid_num(1) && valid_num(3) && valid_num(1000) && valid_num(32768));
    assert!(!valid_num(0) && !valid_num(32769) && !valid_num(65535));
    assert_eq!(desc_size(3), 48);
    assert_eq!(EVENT_SIZE, 4);
    assert!(addr_aligned(0x1000, 0x2004, 0x3008));
    assert!(!addr_aligned(0x1008, 0x2000, 0x3000));
    assert!(!addr_aligned(0x1000, 0x2002, 0x3000));
    assert!(!addr_aligned(0x1000, 0x2000, 0x3001));
}

#[test]
fn empty_and_zeroed_ring_has_nothing() {
    let (m, mut r) = (Mem::new(), ring(5));
    // A zeroed descriptor has AVAIL 0, and the first lap wants 1.
    assert_eq!(take(&m, &mut r), Ok(None));
    assert_eq!(r.has_avail(&m), Ok(false));
    assert_eq!(r.last_avail_idx, RingPos::START);
}

/// The head's flags are read alone, then a read barrier, then the descriptor.
#[test]
fn single_descriptor_flags_first_then_rmb() {
    let (m, mut r) = (Mem::new(), ring(5));
    let mut d = Driver::new(5);
    d.add(&m, &[(0x1000, 100, false)], 7).unwrap();
    m.take_evs();
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!(
        (c.head, c.out_num, c.in_num, c.ndesc),
        (7, 1, 0, 1),
        "the head is the buffer id"
    );
    assert_eq!(iov, vec![ram(0x1000, 100)]);
    assert_eq!(
        m.take_evs(),
        vec![
            Ev::Read(Part::Desc, DESC + 14, 2),
            Ev::Rmb,
            Ev::Read(Part::Desc, DESC, 16),
        ]
    );
    assert_eq!(r.last_avail_idx, RingPos { idx: 1, wrap: true });
    assert_eq!(take(&m, &mut r), Ok(None));
}

/// The id is the last descriptor's; readable before writable; NEXT across the end of the
/// ring continues at slot 0 with the flipped counter.
#[test]
fn chains_and_next_across_the_wrap() {
    let (m, mut r) = (Mem::new(), ring(5));
    let mut d = Driver::new(5);
    for id in 0..3 {
        d.add(&m, &[(0x100, 1, false)], id).unwrap();
        take(&m, &mut r).unwrap().unwrap();
        d.get_used(&m); // nothing used yet: keeps its room
    }
    r.add_used_n(&m, &[(0, 0), (1, 0), (2, 0)], &[1, 1, 1])
        .unwrap();
    for _ in 0..3 {
        d.get_used(&m).unwrap();
    }
    // Slots 3, 4, 0, 1: across the wrap.
    let segs = [
        (0x1000, 10, false),
        (0x2000, 20, false),
        (0x3000, 30, true),
        (0x4000, 40, true),
    ];
    d.add(&m, &segs, 9).unwrap();
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.out_num, c.in_num, c.ndesc), (9, 2, 2, 4));
    assert_eq!(
        iov,
        vec![
            ram(0x1000, 10),
            ram(0x2000, 20),
            ram(0x3000, 30),
            ram(0x4000, 40)
        ]
    );
    assert_eq!(
        r.last_avail_idx,
        RingPos {
            idx: 2,
            wrap: false
        }
    );
}

/// A chain whose descriptor past the wrap still carries the old lap's flags was not made
/// available there: the chain is refused, not read on into stale descriptors.
#[test]
fn next_across_the_wrap_with_stale_flags() {
    let (m, mut r) = (Mem::new(), ring(4));
    r.last_avail_idx = RingPos { idx: 3, wrap: true };
    r.avail_idx = r.last_avail_idx;
    put_desc(&m, 0, 0x2000, 8, 1, avail_bits(true)); // lap 1's flags, lap 2 expected
    put_desc(&m, 3, 0x1000, 8, 0, VRING_DESC_F_NEXT | avail_bits(true));
    assert_eq!(take(&m, &mut r), Err(RingError::Unavailable { idx: 0 }));
    assert_eq!(r.last_avail_idx.idx, 3, "nothing taken");
    // With lap 2's flags it is one chain.
    put_desc(&m, 0, 0x2000, 8, 1, avail_bits(false));
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.ndesc), (1, 2));
}

/// AVAIL and USED equal (a used descriptor), or both set for the other lap: not available.
#[test]
fn inconsistent_avail_used_flags() {
    for flags in [0, VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED, VIRTQ_DESC_F_USED] {
        let (m, mut r) = (Mem::new(), ring(4));
        put_desc(&m, 0, 0x1000, 8, 0, flags);
        assert_eq!(take(&m, &mut r), Ok(None), "flags {flags:#x}");
    }
    // Inside a chain they are an error.
    for flags in [0, VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED, VIRTQ_DESC_F_USED] {
        let (m, mut r) = (Mem::new(), ring(4));
        put_desc(&m, 0, 0x1000, 8, 0, VRING_DESC_F_NEXT | VIRTQ_DESC_F_AVAIL);
        put_desc(&m, 1, 0x1000, 8, 0, flags);
        assert_eq!(
            take(&m, &mut r),
            Err(RingError::Unavailable { idx: 1 }),
            "flags {flags:#x}"
        );
    }
}

/// A descriptor the driver marks available again with the same lap's flags is not taken
/// twice: a lap later the device wants the other counter.
#[test]
fn descriptor_made_available_twice_is_taken_once() {
    let (m, mut r) = (Mem::new(), ring(2));
    put_desc(&m, 0, 0x1000, 8, 0, avail_bits(true));
    put_desc(&m, 1, 0x1000, 8, 1, avail_bits(true));
    assert!(take(&m, &mut r).unwrap().is_some());
    // The driver writes slot 0 again, same flags, before the device used it.
    put_desc(&m, 0, 0x1000, 8, 0, avail_bits(true));
    assert!(take(&m, &mut r).unwrap().is_some());
    assert_eq!(
        r.last_avail_idx,
        RingPos {
            idx: 0,
            wrap: false
        }
    );
    assert_eq!(take(&m, &mut r), Ok(None));
}

/// A chain of `num` descriptors is the longest there can be; one more is a loop.
#[test]
fn chain_longer_than_num_is_a_loop() {
    let (m, mut r) = (Mem::new(), ring(3));
    r.last_avail_idx = RingPos { idx: 1, wrap: true };
    r.avail_idx = r.last_avail_idx;
    // Slots 1, 2 (lap 1) and 0 (lap 2), all NEXT: the fourth would be slot 1 again.
    put_desc(&m, 1, 0x1000, 8, 0, VRING_DESC_F_NEXT | avail_bits(true));
    put_desc(&m, 2, 0x1000, 8, 0, VRING_DESC_F_NEXT | avail_bits(true));
    put_desc(&m, 0, 0x1000, 8, 0, VRING_DESC_F_NEXT | avail_bits(false));
    assert_eq!(take(&m, &mut r), Err(RingError::Loop));
    // Exactly num is fine.
    put_desc(&m, 0, 0x1000, 8, 4, avail_bits(false));
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.ndesc), (4, 3));
    assert_eq!(
        r.last_avail_idx,
        RingPos {
            idx: 1,
            wrap: false
        }
    );
}

#[test]
fn readable_after_writable_is_refused() {
    let (m, mut r) = (Mem::new(), ring(4));
    let mut d = Driver::new(4);
    d.add(&m, &[(0x1000, 8, true), (0x2000, 8, false)], 0)
        .unwrap();
    assert_eq!(take(&m, &mut r), Err(RingError::OutAfterIn));
    // And inside an indirect table.
    let (m, mut r) = (Mem::new(), ring(4));
    let mut d = Driver::new(4);
    d.add_indirect(&m, 0x8000, &[(0x1000, 8, true), (0x2000, 8, false)], 0)
        .unwrap();
    assert_eq!(take(&m, &mut r), Err(RingError::OutAfterIn));
}

#[test]
fn indirect_tables() {
    let (m, mut r) = (Mem::new(), ring(3));
    let mut d = Driver::new(3);
    // WRITE is the only flag that counts in a table: NEXT, AVAIL and USED are ignored
    // (DPDK's virtio PMD writes them), the table's length ends the buffer.
    put_table(
        &m,
        0x8000,
        &[
            (0x1000, 8, VRING_DESC_F_NEXT | VIRTQ_DESC_F_AVAIL),
            (0x2000, 16, VRING_DESC_F_WRITE | VIRTQ_DESC_F_USED),
            (0x3000, 32, VRING_DESC_F_WRITE),
        ],
    );
    put_desc(
        &m,
        0,
        0x8000,
        48,
        11,
        VRING_DESC_F_INDIRECT | avail_bits(true),
    );
    d.next = RingPos { idx: 1, wrap: true };
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.out_num, c.in_num, c.ndesc), (11, 1, 2, 1));
    assert_eq!(iov, vec![ram(0x1000, 8), ram(0x2000, 16), ram(0x3000, 32)]);
    // Through the driver helper, on the next slot.
    d.add_indirect(&m, 0x9000, &[(0x4000, 4, false)], 12)
        .unwrap();
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.ndesc, iov), (12, 1, vec![ram(0x4000, 4)]));
}

#[test]
fn hostile_indirect_tables() {
    let ind = |len: u32, extra: u16| (len, VRING_DESC_F_INDIRECT | extra);
    // (what, indirect descriptor's len and flags, table, error)
    type Case = (&'static str, (u32, u16), Vec<(u64, u32, u16)>, RingError);
    let cases: Vec<Case> = vec![
        (
            "len not a multiple of 16",
            ind(24, 0),
            vec![],
            RingError::IndirectLen(24),
        ),
        ("empty table", ind(0, 0), vec![], RingError::Loop),
        (
            "nested",
            ind(32, 0),
            vec![(0x1000, 8, 0), (0x9000, 16, VRING_DESC_F_INDIRECT)],
            RingError::NestedIndirect,
        ),
        (
            "indirect with NEXT",
            ind(16, VRING_DESC_F_NEXT),
            vec![(0x1000, 8, 0)],
            RingError::IndirectInChain,
        ),
        (
            "buffer outside memory",
            ind(16, 0),
            vec![(0x50000, 8, 0)],
            RingError::Fault,
        ),
    ];
    for (what, (len, flags), table, err) in cases {
        let (m, mut r) = (Mem::new(), ring(4));
        put_table(&m, 0x8000, &table);
        put_desc(&m, 0, 0x8000, len, 0, flags | avail_bits(true));
        assert_eq!(take(&m, &mut r), Err(err), "{what}");
    }
    // The table itself outside memory.
    let (m, mut r) = (Mem::new(), ring(4));
    put_desc(
        &m,
        0,
        0x60000,
        16,
        0,
        VRING_DESC_F_INDIRECT | avail_bits(true),
    );
    assert_eq!(take(&m, &mut r), Err(RingError::Fault));
    // An indirect descriptor after a direct one of the same chain.
    let (m, mut r) = (Mem::new(), ring(4));
    put_table(&m, 0x8000, &[(0x1000, 8, 0)]);
    put_desc(&m, 0, 0x2000, 8, 0, VRING_DESC_F_NEXT | avail_bits(true));
    put_desc(
        &m,
        1,
        0x8000,
        16,
        0,
        VRING_DESC_F_INDIRECT | avail_bits(true),
    );
    assert_eq!(take(&m, &mut r), Err(RingError::IndirectInChain));
    // More than 65536 entries (in one big region, so that the size is what fails).
    let (mut m, mut r) = (Mem::new(), ring(4));
    m.regions = vec![(0, 0x100_0000, RAM)];
    put_desc(
        &m,
        0,
        0,
        16 * 0x10001,
        0,
        VRING_DESC_F_INDIRECT | avail_bits(true),
    );
    assert_eq!(
        take(&m, &mut r),
        Err(RingError::IndirectTooBig(16 * 0x10001))
    );
}

#[test]
fn faults_outside_memory() {
    // A buffer between the two regions.
    let (m, mut r) = (Mem::new(), ring(4));
    put_desc(&m, 0, 0x50000, 8, 0, avail_bits(true));
    assert_eq!(take(&m, &mut r), Err(RingError::Fault));
    // The descriptor ring outside the owner's memory.
    let (m, mut r) = (Mem::new(), ring(4));
    r.desc = BASE + SIZE as u64;
    assert_eq!(take(&m, &mut r), Err(RingError::Fault));
    assert_eq!(r.has_avail(&m), Err(RingError::Fault));
    // The event areas outside it: writes fail, an unreadable driver area means notify.
    let (m, mut r) = (Mem::new(), ring(4));
    r.avail = BASE + SIZE as u64;
    r.used = BASE + SIZE as u64 + 4;
    assert_eq!(r.disable_notify(&m), Err(RingError::Fault));
    r.event_flags = RING_EVENT_FLAGS_DISABLE;
    assert_eq!(r.enable_notify(&m), Err(RingError::Fault));
    assert!(r.notify(&m));
    r.event_idx = true;
    assert!(r.notify(&m));
    // A memory that cannot write the descriptor ring (the trait's default) fails used
    // writes rather than write elsewhere.
    struct ReadOnly(Mem);
    impl GuestMemory for ReadOnly {
        fn read(&self, a: u64, b: &mut [u8]) -> Result<(), RingError> {
            self.0.read(a, b)
        }
        fn write(&self, a: u64, b: &[u8]) -> Result<(), RingError> {
            self.0.write(a, b)
        }
        fn lookup(&self, g: u64, l: u64, a: u8) -> Result<(u64, u64, u64), RingError> {
            self.0.lookup(g, l, a)
        }
        fn log_used(&self, _: u64, _: u64) {}
        fn rmb(&self) {}
        fn wmb(&self) {}
        fn mb(&self) {}
    }
    let mut r = ring(4);
    assert_eq!(
        r.add_used_n(&ReadOnly(Mem::new()), &[(0, 1)], &[1]),
        Err(RingError::Fault)
    );
}

/// Used descriptors: every one but the first written whole, then a write barrier, then
/// the first one's flags; each at the slot after the previous chain's slots; logged.
#[test]
fn used_batch_write_order_and_bytes() {
    let (m, mut r) = (Mem::new(), ring(5));
    let mut d = Driver::new(5);
    d.add(&m, &[(0x1000, 8, false), (0x1000, 8, false)], 20)
        .unwrap();
    d.add(&m, &[(0x2000, 8, true)], 21).unwrap();
    d.add(&m, &[(0x3000, 8, true), (0x3000, 8, true)], 22)
        .unwrap();
    let mut taken = Vec::new();
    while let Some((c, _)) = take(&m, &mut r).unwrap() {
        taken.push(c);
    }
    assert_eq!(
        taken.iter().map(|c| (c.head, c.ndesc)).collect::<Vec<_>>(),
        vec![(20, 2), (21, 1), (22, 2)]
    );
    m.take_evs();
    // Completed out of order: 21, then 22, then 20.
    r.add_used_n(&m, &[(21, 0x111), (22, 0x222), (20, 0)], &[1, 2, 2])
        .unwrap();
    let fl = |wrap: bool, write: bool| {
        (if wrap {
            VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED
        } else {
            0
        }) | if write { VRING_DESC_F_WRITE } else { 0 }
    };
    let lenid = |len: u32, id: u16| {
        let mut v = len.to_le_bytes().to_vec();
        v.extend_from_slice(&id.to_le_bytes());
        v
    };
    let w = |slot: u64, off: u64, b: Vec<u8>| Ev::Write(Part::Desc, DESC + 16 * slot + off, b);
    assert_eq!(
        m.take_evs(),
        vec![
            // 22 at slot 1 (after 21's one slot), 20 at slot 3: the whole ring, no wrap.
            w(1, 8, lenid(0x222, 22)),
            w(1, 14, fl(true, true).to_le_bytes().to_vec()),
            w(3, 8, lenid(0, 20)),
            w(3, 14, fl(true, false).to_le_bytes().to_vec()),
            w(0, 8, lenid(0x111, 21)),
            Ev::Wmb,
            w(0, 14, fl(true, true).to_le_bytes().to_vec()),
            Ev::LogDesc(8, 8),
            Ev::LogDesc(16 + 8, 8),
            Ev::LogDesc(48 + 8, 8),
        ]
    );
    assert_eq!(
        r.last_used_idx,
        RingPos {
            idx: 0,
            wrap: false
        }
    );
    // Byte for byte: addr untouched, len, id, flags.
    let mut want = desc_bytes(0x1000, 0x111, 21, fl(true, true)).to_vec();
    assert_eq!(slot_bytes(&m, 0), want);
    want = desc_bytes(0x3000, 0, 20, fl(true, false)).to_vec();
    assert_eq!(slot_bytes(&m, 3), want);
    // The driver sees them in that order, skipping each chain's slots.
    assert_eq!(d.get_used(&m).map(|u| (u.0, u.1)), Some((21, 0x111)));
    assert_eq!(d.get_used(&m).map(|u| (u.0, u.1)), Some((22, 0x222)));
    assert_eq!(d.get_used(&m).map(|u| (u.0, u.1)), Some((20, 0)));
    assert_eq!(d.get_used(&m), None);
    // The next lap's used descriptors carry AVAIL = USED = 0.
    d.add(&m, &[(0x1000, 8, true)], 5).unwrap();
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    r.add_used_n(&m, &[(c.head.into(), 3)], &[c.ndesc]).unwrap();
    assert_eq!(m.get16(DESC + 14), fl(false, true));
    assert_eq!(d.get_used(&m).map(|u| (u.0, u.1)), Some((5, 3)));
    // Nothing to publish, nothing written.
    m.take_evs();
    r.add_used_n(&m, &[], &[]).unwrap();
    assert_eq!(m.take_evs(), vec![]);
    // An id past 16 bits cannot be one get_desc() gave.
    assert!(matches!(
        r.add_used_n(&m, &[(0x10000, 0)], &[1]),
        Err(RingError::IndexOutOfRange { .. })
    ));
}

/// VIRTIO_F_IN_ORDER: one used descriptor per batch, where the batch began, naming its
/// last buffer; the device skips the batch's slots, and so does the driver (Linux's
/// virtqueue_get_buf_ctx_packed_in_order(): ids are head slots).
#[test]
fn in_order_batches() {
    let (m, mut r) = (Mem::new(), ring(7));
    r.in_order = true;
    let mut d = Driver::new(7);
    // In-order drivers use the head slot as the id.
    for (slot, n) in [(0u16, 2usize), (2, 1), (3, 3), (6, 1)] {
        let segs = vec![(0x1000, 8, true); n];
        d.add(&m, &segs, slot).unwrap();
    }
    let mut chains = Vec::new();
    while let Some((c, _)) = take(&m, &mut r).unwrap() {
        chains.push((c.head, c.ndesc));
    }
    assert_eq!(chains, vec![(0, 2), (2, 1), (3, 3), (6, 1)]);
    for slot in 0..7 {
        m.put(DESC + 16 * slot + 8, &[0xee; 8]);
    }
    // Batch 1: buffers 0, 2, 3 (6 slots) named by 3; batch 2: buffer 6.
    r.add_used_n_in_order(&m, &[(3, 300), (6, 600)], &[6, 1])
        .unwrap();
    assert_eq!(
        r.last_used_idx,
        RingPos {
            idx: 0,
            wrap: false
        }
    );
    assert_eq!(&slot_bytes(&m, 0)[8..14], &[44, 1, 0, 0, 3, 0]);
    assert_eq!(&slot_bytes(&m, 6)[8..14], &[88, 2, 0, 0, 6, 0]);
    for slot in 1..6 {
        assert_eq!(
            &slot_bytes(&m, slot)[8..16],
            &[0xee; 8],
            "slot {slot} skipped"
        );
    }
    // The driver's in-order walk: the used descriptor at its position names the batch's
    // last buffer; the buffers before it are skipped over by their slot counts.
    let b = slot_bytes(&m, 0);
    let last = u16::from_le_bytes([b[12], b[13]]);
    let mut pos = d.used;
    let mut got = Vec::new();
    loop {
        let id = pos.idx;
        got.push(id);
        pos = pos.advance(d.sgs[&id].into(), 7);
        if id == last {
            break;
        }
    }
    assert_eq!(got, vec![0, 2, 3]);
    assert_eq!(pos, RingPos { idx: 6, wrap: true });
    assert_eq!(
        u16::from_le_bytes([slot_bytes(&m, 6)[12], slot_bytes(&m, 6)[13]]),
        6
    );
}

/// Giving back chains rewinds the position and its wrap counter; they come again as they
/// were, and they are not new to enable_notify() (7.3's RX livelock fix, as split).
#[test]
fn discard_rewinds_across_the_wrap() {
    let (m, mut r) = (Mem::new(), ring(3));
    let mut d = Driver::new(3);
    d.add(&m, &[(0x1000, 8, true)], 1).unwrap();
    take(&m, &mut r).unwrap().unwrap();
    r.add_used_n(&m, &[(1, 8)], &[1]).unwrap();
    d.get_used(&m).unwrap();
    // Slots 1, 2 | 0 (lap 2), then slot 1 (lap 2).
    d.add(
        &m,
        &[(0x2000, 8, true), (0x3000, 8, true), (0x4000, 8, true)],
        2,
    )
    .unwrap();
    let (a, ia) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!(
        r.last_avail_idx,
        RingPos {
            idx: 1,
            wrap: false
        }
    );
    r.discard(1, a.ndesc);
    assert_eq!(r.last_avail_idx, RingPos { idx: 1, wrap: true });
    assert_eq!(r.has_avail(&m), Ok(true));
    r.disable_notify(&m).unwrap();
    assert_eq!(r.enable_notify(&m), Ok(false), "given back is not new");
    let (b, ib) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((a, ia), (b, ib));

    assert_eq!(r.avail_idx, r.last_avail_idx);
    r.disable_notify(&m).unwrap();
    r.add_used_n(&m, &[(2, 24)], &[3]).unwrap();
    d.get_used(&m).unwrap();
    d.add(&m, &[(0x5000, 8, true)], 3).unwrap();
    assert_eq!(r.enable_notify(&m), Ok(true), "a new one is");
}

/// Two chains given back, one taken again: the other is still not new.
#[test]
fn partly_retaken_discard_is_not_new() {
    for event_idx in [false, true] {
        let (m, mut r) = (Mem::new(), ring(4));
        r.event_idx = event_idx;
        let mut d = Driver::new(4);
        d.add(&m, &[(0x1000, 8, true)], 1).unwrap();
        d.add(&m, &[(0x2000, 8, true), (0x3000, 8, true)], 2)
            .unwrap();
        let (a, _) = take(&m, &mut r).unwrap().unwrap();
        let (b, _) = take(&m, &mut r).unwrap().unwrap();
        r.discard(2, a.ndesc + b.ndesc);
        assert_eq!(take(&m, &mut r).unwrap().unwrap().0, a);
        r.disable_notify(&m).unwrap();
        assert_eq!(r.enable_notify(&m), Ok(false));
        assert_eq!(r.has_avail(&m), Ok(true));
        assert_eq!(take(&m, &mut r).unwrap().unwrap().0, b);
        r.disable_notify(&m).unwrap();
        assert_eq!(r.enable_notify(&m), Ok(false));
        d.add(&m, &[(0x4000, 8, true)], 3).unwrap();
        r.disable_notify(&m).unwrap();
        assert_eq!(r.enable_notify(&m), Ok(true));
    }
}

#[test]
fn enable_disable_without_event_idx() {
    let (m, mut r) = (Mem::new(), ring(4));
    // Already enabled: nothing written.
    assert_eq!(r.enable_notify(&m), Ok(false));
    assert_eq!(m.take_evs(), vec![]);
    r.disable_notify(&m).unwrap();
    assert_eq!(
        m.take_evs(),
        vec![
            Ev::Write(Part::Used, DEVICE + 2, vec![1, 0]),
            Ev::LogUsed(2, 2)
        ]
    );
    r.disable_notify(&m).unwrap();
    assert_eq!(m.take_evs(), vec![], "already disabled");
    assert_eq!(r.enable_notify(&m), Ok(false));
    assert_eq!(
        m.take_evs(),
        vec![
            Ev::Write(Part::Used, DEVICE + 2, vec![0, 0]),
            Ev::LogUsed(2, 2),
            Ev::Mb,
            Ev::Read(Part::Desc, DESC + 14, 2),
        ]
    );
    r.disable_notify(&m).unwrap();
    let mut d = Driver::new(4);
    d.add(&m, &[(0x1000, 8, false)], 0).unwrap();
    assert_eq!(r.enable_notify(&m), Ok(true), "slipped in");
}

/// With EVENT_IDX, enabling asks for a kick at the position past the furthest chain taken
/// (off_wrap, then a write barrier, then DESC); the Linux driver's kick logic agrees.
#[test]
fn enable_with_event_idx_and_the_drivers_kick() {
    let (m, mut r) = (Mem::new(), ring(3));
    r.event_idx = true;
    let mut d = Driver::new(3);
    for id in 0..5u16 {
        r.disable_notify(&m).unwrap();
        d.add(&m, &[(0x1000, 8, true)], id).unwrap();
        d.added = 0;
        take(&m, &mut r).unwrap().unwrap();
        r.add_used_n(&m, &[(id.into(), 8)], &[1]).unwrap();
        d.get_used(&m).unwrap();
        m.take_evs();
        assert_eq!(r.enable_notify(&m), Ok(false));
        let off_wrap = r.avail_idx.encode();
        assert_eq!(
            m.take_evs(),
            vec![
                Ev::Write(Part::Used, DEVICE, off_wrap.to_le_bytes().to_vec()),
                Ev::LogUsed(0, 2),
                Ev::Wmb,
                Ev::Write(Part::Used, DEVICE + 2, vec![2, 0]),
                Ev::LogUsed(2, 2),
                Ev::Mb,
                Ev::Read(Part::Desc, DESC + 14 + 16 * u64::from(r.avail_idx.idx), 2),
            ]
        );
        // Three chains a round: slot 1 of lap `id`, its counter in bit 15.
        assert_eq!(off_wrap, 1 | u16::from(id % 2 == 0) << 15);
        // The driver adds one more: the kick is due.
        d.add(&m, &[(0x1000, 8, true)], 9).unwrap();
        assert!(d.kick_prepare(&m), "id {id}");
        take(&m, &mut r).unwrap().unwrap();
        r.add_used_n(&m, &[(9, 8)], &[1]).unwrap();
        d.get_used(&m).unwrap();
        // Disabled: no kick.
        r.disable_notify(&m).unwrap();
        d.add(&m, &[(0x1000, 8, true)], 10).unwrap();
        assert!(!d.kick_prepare(&m));
        take(&m, &mut r).unwrap().unwrap();
        r.add_used_n(&m, &[(10, 8)], &[1]).unwrap();
        d.get_used(&m).unwrap();
    }
}

fn set_driver_event(m: &Mem, off_wrap: u16, flags: u16) {
    m.put(DRIVER, &off_wrap.to_le_bytes());
    m.put(DRIVER + 2, &flags.to_le_bytes());
}

#[test]
fn notify_without_event_idx() {
    let (m, mut r) = (Mem::new(), ring(4));
    for (flags, want) in [
        (RING_EVENT_FLAGS_ENABLE, true),
        (RING_EVENT_FLAGS_DISABLE, false),
        (RING_EVENT_FLAGS_DESC, true),
        (3, true),
    ] {
        set_driver_event(&m, 0, flags);
        m.take_evs();
        assert_eq!(r.notify(&m), want, "flags {flags}");
        assert_eq!(m.take_evs()[0], Ev::Mb, "a full barrier first");
    }
    // NOTIFY_ON_EMPTY: disabled, but nothing left to take.
    set_driver_event(&m, 0, RING_EVENT_FLAGS_DISABLE);
    r.notify_on_empty = true;
    assert!(r.notify(&m));
    put_desc(&m, 0, 0x1000, 8, 0, avail_bits(true));
    assert!(!r.notify(&m), "not empty");
}

#[test]
fn notify_with_event_idx() {
    let (m, mut r) = (Mem::new(), ring(4));
    r.event_idx = true;
    let used = |r: &mut PackedRing, n: u16| r.add_used_n(&m, &[(0, 8)], &[n]).unwrap();
    set_driver_event(&m, 0, RING_EVENT_FLAGS_DESC);
    used(&mut r, 1);
    assert!(r.notify(&m), "the first is always sent");
    // Event at slot 3 of lap 1 (wrap bit 1); the device moved 1 -> 3: not yet.
    set_driver_event(&m, 0x8000 | 3, RING_EVENT_FLAGS_DESC);
    used(&mut r, 2);
    assert!(!r.notify(&m));
    // 3 -> 1 of lap 2: passed it, across the wrap.
    used(&mut r, 2);
    assert!(r.notify(&m));
    // Event at slot 2 of lap 2 (wrap bit 0): 1 -> 2 not yet, 2 -> 3 yes.
    set_driver_event(&m, 2, RING_EVENT_FLAGS_DESC);
    used(&mut r, 1);
    assert!(!r.notify(&m));
    used(&mut r, 1);
    assert!(r.notify(&m));
    // Slot 3 with wrap bit 1 is lap 1's (or lap 3's): going from slot 3 of lap 2 to slot
    // 0 of lap 3 does not step on it.
    set_driver_event(&m, 0x8000 | 3, RING_EVENT_FLAGS_DESC);
    used(&mut r, 1);
    assert_eq!(r.last_used_idx, RingPos { idx: 0, wrap: true });
    assert!(!r.notify(&m));
    // ENABLE and DISABLE override the offset.
    set_driver_event(&m, 0, RING_EVENT_FLAGS_DISABLE);
    used(&mut r, 1);
    assert!(!r.notify(&m));
    set_driver_event(&m, 0x7fff, RING_EVENT_FLAGS_ENABLE);
    used(&mut r, 1);
    assert!(r.notify(&m));
    // The driver area unreadable: notify.
    r.avail = BASE + SIZE as u64;
    assert!(r.notify(&m));
}

/// Two laps without a notify: the event position was passed over, and the wrap counter
/// cannot tell; the guard forces the next notify, as split's `signalled_used` one.
#[test]
fn notify_after_two_laps_is_forced() {
    let (m, mut r) = (Mem::new(), ring(4));
    r.event_idx = true;
    set_driver_event(&m, 0, RING_EVENT_FLAGS_DESC);
    r.add_used_n(&m, &[(0, 8)], &[1]).unwrap();
    assert!(r.notify(&m));
    // Event at slot 0 of lap 1, behind us; then two laps used without a notify step
    // on it again (lap 3 has the same wrap bit).
    set_driver_event(&m, 0x8000, RING_EVENT_FLAGS_DESC);
    for _ in 0..8 {
        r.add_used_n(&m, &[(0, 8)], &[1]).unwrap();
    }
    assert!(!r.signalled_used_valid);
    assert!(r.notify(&m));
}

/// need_event() against the definition: did the used position, going from `old` to `new`,
/// step on the event's position (each slot with its lap's wrap counter)?
#[test]
fn need_event_matches_brute_force() {
    for num in [1u32, 2, 3, 5, 8] {
        for start in 0..2 * num {
            let old = RingPos::START.advance(start, num);
            for d in 0..2 * num {
                let new = old.advance(d, num);
                for e in 0..2 * num {
                    let ev = RingPos::START.advance(e, num);
                    let want = (0..d).any(|k| old.advance(k, num) == ev);
                    assert_eq!(
                        need_event(ev.encode(), new, old, num),
                        want,
                        "num {num} old {old:?} new {new:?} event {ev:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn vring_base_round_trip() {
    let mut r = ring(6);
    assert_eq!(r.get_base(), 0x8000_8000, "both counters start at 1");
    for base in [0u32, 0x8005_0003, 0x0002_8005, 0x8000_0000] {
        r.set_base(base).unwrap();
        assert_eq!(r.get_base(), base);
        assert_eq!(r.avail_idx, r.last_avail_idx);
    }
    r.set_base(0x0003_8002).unwrap();
    assert_eq!(
        (r.last_avail_idx, r.last_used_idx),
        (
            RingPos { idx: 2, wrap: true },
            RingPos {
                idx: 3,
                wrap: false
            }
        )
    );
    for bad in [0x0000_0006u32, 0x8006_0000, 0x0000_ffff] {
        assert_eq!(
            r.set_base(bad),
            Err(RingError::IndexOutOfRange {
                idx: if bad & 0x7fff >= 6 {
                    bad & 0x7fff
                } else {
                    (bad >> 16) & 0x7fff
                },
                num: 6
            })
        );
    }
    assert_eq!(r.get_base(), 0x0003_8002, "a refused base changes nothing");
    // Restored state is where the ring takes and uses from.
    let m = Mem::new();
    put_desc(&m, 2, 0x1000, 8, 4, avail_bits(true));
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    r.add_used_n(&m, &[(c.head.into(), 5)], &[1]).unwrap();
    assert_eq!(
        m.get16(DESC + 16 * 3 + 14),
        VRING_DESC_F_WRITE,
        "lap 2's used flags at slot 3"
    );
    assert_eq!(r.get_base(), 0x0004_8003);
}

/// xorshift64*: deterministic, seeded, no dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Thousands of steps of a driver adding chains (direct and indirect, ids from a free
/// list), the device taking, giving back, using out of order or in order batches, and
/// notifying, on rings of every size (most not powers of two), over many laps. Checks:
/// each chain comes out as it went in, each used buffer reaches the driver once with its
/// length, positions agree, a driver waiting at its next used position is always
/// notified, and a driver adding after `enable_notify()` said "nothing" always kicks.
#[test]
fn random_model_run() {
    let mut laps = 0u64;
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let num = match seed % 4 {
            0 => 1 + rng.below(8) as u32,
            1 => 1 + rng.below(300) as u32,
            2 => [3, 5, 7, 12, 100, 255][rng.below(6) as usize],
            _ => 1 << rng.below(9),
        };
        let in_order = seed % 3 == 0;
        let event_idx = seed % 2 == 0;
        let (m, mut r) = (Mem::new(), ring(num));
        r.event_idx = event_idx;
        r.in_order = in_order;
        let mut d = Driver::new(num);
        let mut free_ids: Vec<u16> = (0..num as u16 * 2).collect();
        // What the driver made available, in ring order: (id, segments).
        let mut posted: VecDeque<(u16, Vec<Iov>)> = VecDeque::new();
        // Taken by the device, not yet used: (id, ndesc, writable bytes).
        let mut inflight: Vec<(u16, u16, u64)> = Vec::new();
        // Used, not yet seen by the driver: id -> len.
        let mut expect_used: VecDeque<(u16, u32)> = VecDeque::new();
        let mut in_order_ids: VecDeque<u16> = VecDeque::new();
        // The device area asks for a kick at the next chain (enabled, nothing taken since).
        let mut armed = true;
        // Chains given back and not yet taken again, at the front of `posted`.
        let mut given_back = 0usize;
        let mut used_slots = 0u64;
        for step in 0..2000 {
            match rng.below(8) {
                0..=2 => {
                    // Driver adds a chain.
                    let n = 1 + rng.below(4) as usize;
                    let segs: Vec<Seg> = {
                        let nout = rng.below(n as u64 + 1) as usize;
                        (0..n)
                            .map(|k| (rng.below(0x3f000), 1 + rng.below(0x800) as u32, k >= nout))
                            .collect()
                    };
                    let id = if in_order {
                        d.next.idx
                    } else {
                        let k = rng.below(free_ids.len() as u64) as usize;
                        free_ids[k]
                    };
                    let indirect = rng.below(4) == 0;
                    let ok = if indirect {
                        let gpa = 0x20000 + 0x100 * u64::from(d.next.idx);
                        d.add_indirect(&m, gpa, &segs, id)
                    } else {
                        d.add(&m, &segs, id)
                    };
                    if ok.is_some() {
                        if !in_order {
                            free_ids.retain(|&x| x != id);
                        }
                        let iov = segs.iter().map(|&(a, l, _)| ram(a, l.into())).collect();
                        posted.push_back((id, iov));
                        // The kick check: a device that enabled notifications, found
                        // nothing and took nothing since, must be kicked for this one.
                        let kick = d.kick_prepare(&m);
                        if armed && posted.len() == 1 {
                            assert!(kick, "seed {seed} step {step}: lost kick");
                        }
                    }
                }
                3..=4 => {
                    // Device takes up to 3 chains, maybe gives the last ones back.
                    let k = 1 + rng.below(3);
                    let mut got = Vec::new();
                    for _ in 0..k {
                        match take(&m, &mut r) {
                            Ok(Some((c, iov))) => {
                                armed = false;
                                given_back = given_back.saturating_sub(1);
                                let (id, want) = posted.pop_front().expect("a chain posted");
                                assert_eq!((c.head, &iov), (id, &want), "seed {seed} step {step}");
                                let wlen: u64 = iov[c.out_num..].iter().map(|s| s.len).sum();
                                got.push((c.head, c.ndesc, wlen, iov));
                            }
                            Ok(None) => {
                                assert!(posted.is_empty(), "seed {seed} step {step}: missed");
                                break;
                            }
                            Err(e) => panic!("seed {seed} step {step}: {e:?}"),
                        }
                    }
                    let back = rng.below(got.len() as u64 + 1) as usize;
                    if back > 0 && rng.below(3) == 0 {
                        let give: Vec<_> = got.split_off(got.len() - back);
                        let nd: u16 = give.iter().map(|g| g.1).sum();
                        r.discard(give.len() as u16, nd);
                        given_back += give.len();
                        for g in give.into_iter().rev() {
                            posted.push_front((g.0, g.3));
                        }
                    }
                    inflight.extend(got.into_iter().map(|g| (g.0, g.1, g.2)));
                }
                5..=6 => {
                    // Device uses some: out of order, or in order in batches.
                    if inflight.is_empty() {
                        continue;
                    }
                    let k = 1 + rng.below(inflight.len() as u64) as usize;
                    let caught_up = d.used == r.last_used_idx;
                    if event_idx {
                        set_driver_event(&m, d.used.encode(), RING_EVENT_FLAGS_DESC);
                    } else {
                        set_driver_event(&m, 0, RING_EVENT_FLAGS_ENABLE);
                    }
                    if in_order {
                        // Buffers in the order taken, in batches named by their last.
                        let batch: Vec<_> = inflight.drain(..k).collect();
                        let mut heads = Vec::new();
                        let mut nds = Vec::new();
                        let mut split = 0;
                        while split < batch.len() {
                            let end = (split + 1 + rng.below(3) as usize).min(batch.len());
                            let part = &batch[split..end];
                            let last = part[part.len() - 1];
                            heads.push((u32::from(last.0), last.2 as u32));
                            nds.push(part.iter().map(|b| b.1).sum::<u16>());
                            for b in part {
                                in_order_ids.push_back(b.0);
                            }
                            split = end;
                        }
                        r.add_used_n_in_order(&m, &heads, &nds).unwrap();
                    } else {
                        let mut heads = Vec::new();
                        let mut nds = Vec::new();
                        for _ in 0..k {
                            let j = rng.below(inflight.len() as u64) as usize;
                            let (id, nd, wlen) = inflight.swap_remove(j);
                            let len = rng.below(wlen + 1) as u32;
                            heads.push((u32::from(id), len));
                            nds.push(nd);
                            expect_used.push_back((id, len));
                        }
                        r.add_used_n(&m, &heads, &nds).unwrap();
                    }
                    used_slots += u64::from(r.last_used_idx.distance(d.used, num));
                    let n = r.notify(&m);
                    if caught_up {
                        assert!(n, "seed {seed} step {step}: lost interrupt");
                    }
                }
                _ => {
                    // Driver reaps used buffers; the device toggles notifications.
                    if in_order {
                        while let Some((id, _, _)) = d.get_used(&m) {
                            // The used descriptor names the batch's last buffer; the
                            // buffers before it were skipped (their slots counted).
                            loop {
                                let x = in_order_ids.pop_front().expect("used in order");
                                if x == id {
                                    break;
                                }
                                let n = d.sgs.remove(&x).expect("skipped id");
                                d.free += u32::from(n);
                                d.used = d.used.advance(n.into(), num);
                            }
                        }
                    } else {
                        while let Some((id, len, _)) = d.get_used(&m) {
                            assert_eq!(expect_used.pop_front(), Some((id, len)), "seed {seed}");
                            free_ids.push(id);
                        }
                    }
                    if rng.below(2) == 0 {
                        r.disable_notify(&m).unwrap();
                        armed = false;
                    } else {
                        let was_disabled = r.event_flags == RING_EVENT_FLAGS_DISABLE;
                        let more = r.enable_notify(&m).unwrap();
                        if was_disabled {
                            // Only chains never taken are news (7.3's RX livelock fix).
                            assert_eq!(more, posted.len() > given_back, "seed {seed} step {step}");
                            armed = given_back == 0;
                        }
                    }
                }
            }
            m.take_evs();
            let base = r.get_base();
            assert!(u32::from(base as u16 & 0x7fff) < num && (base >> 16 & 0x7fff) < num);
        }
        // Many laps of both counters.
        assert!(
            used_slots >= 4 * u64::from(num),
            "seed {seed}: {used_slots} slots, num {num}"
        );
        laps += used_slots / u64::from(num);
    }
    assert!(laps > 1000, "{laps} laps");
}

// ---- ring/vring.rs: one ring of either layout, as dev.rs drives it ----------------------

use crate::ring::{Vring, ACCESS_RO, ACCESS_RW, ACCESS_WO};

fn take_vring(m: &Mem, r: &mut Vring) -> Option<Chain> {
    let mut iov = vec![Iov::default(); MAX_IOV];
    let mut buf = ChainBuf {
        iov: &mut iov,
        log: None,
    };
    r.get_desc(m, &mut buf).unwrap()
}

/// Negotiating RING_PACKED turns the ring packed (and dropping it split), keeping the size
/// and addresses set before; the same features again change nothing of its state.
#[test]
fn vring_layout_follows_the_packed_feature() {
    let mut r = Vring::new();
    assert!(!r.is_packed());
    r.set_num(256);
    r.set_addrs(DESC, DRIVER, DEVICE);
    r.set_features(true, true, false, true);
    assert!(r.is_packed() && r.event_idx() && r.in_order());
    assert_eq!((r.num(), r.addrs()), (256, (DESC, DRIVER, DEVICE)));
    assert_eq!(
        r.get_base(),
        0x8000_8000,
        "both positions at 0, wrap counters 1"
    );
    r.set_base(0x0003_8005).unwrap();
    r.set_features(true, false, true, false);
    assert_eq!(r.get_base(), 0x0003_8005, "same layout: state kept");
    assert!(!r.event_idx() && !r.in_order());
    r.set_features(false, false, false, false);
    assert!(!r.is_packed());
    assert_eq!(
        (r.num(), r.addrs(), r.get_base()),
        (256, (DESC, DRIVER, DEVICE), 0)
    );
}

/// VHOST_{GET,SET}_VRING_BASE: split takes a 16-bit index; packed both positions with
/// their wrap counters (vhost.c's encoding), inside the ring, and DPDK's bare `1 << 15`
/// as a fresh ring.
#[test]
fn vring_base_encodings() {
    let mut s = Vring::new();
    s.set_num(8);
    s.set_base(0xfffe).unwrap();
    assert_eq!(s.get_base(), 0xfffe);
    assert_eq!(s.set_base(0x1_0000).map_err(|e| e.errno()), Err(22));
    let mut p = Vring::new();
    p.set_num(8);
    p.set_features(true, false, false, false);
    p.set_base(0x8000).unwrap();
    assert_eq!(p.get_base(), 0x8000_8000);
    p.set_base(0x0007_0002).unwrap();
    assert_eq!(p.get_base(), 0x0007_0002, "avail 2 wrap 0, used 7 wrap 0");
    for bad in [0x8000_0008u32, 0x0008_0000, 0x8000_ffff] {
        assert_eq!(p.set_base(bad).map_err(|e| e.errno()), Err(22), "{bad:#x}");
    }
    assert_eq!(p.get_base(), 0x0007_0002, "a refused base changes nothing");
}

/// The parts vq_access_ok() checks and the IOTLB prefetch maps, and the alignment
/// VHOST_SET_VRING_ADDR asks, per layout.
#[test]
fn vring_parts_and_alignment() {
    let mut r = Vring::new();
    r.set_num(256);
    r.set_features(false, true, false, false);
    assert_eq!(
        r.parts(256, 0x1000, 0x2000, 0x3000),
        [
            (Part::Desc, ACCESS_RO, 0x1000, 4096),
            (Part::Avail, ACCESS_RO, 0x2000, 4 + 512 + 2),
            (Part::Used, ACCESS_WO, 0x3000, 4 + 2048 + 2),
        ]
    );
    assert_eq!(r.used_log_size(), 4 + 2048 + 2);
    assert!(r.addr_aligned(0x1008, 0x2002, 0x3004, 0x4004));
    assert!(!r.addr_aligned(0x1000, 0x2001, 0x3000, 0x4000));
    assert!(!r.addr_aligned(0x1000, 0x2000, 0x3002, 0x4000));
    assert!(!r.addr_aligned(0x1000, 0x2000, 0x3000, 0x4002));
    r.set_features(true, true, false, false);
    assert_eq!(
        r.parts(256, 0x1000, 0x2000, 0x3000),
        [
            (Part::Desc, ACCESS_RW, 0x1000, 4096),
            (Part::Avail, ACCESS_RO, 0x2000, 4),
            (Part::Used, ACCESS_WO, 0x3000, 4),
        ]
    );
    assert_eq!(r.used_log_size(), 4);
    assert!(r.addr_aligned(0x1010, 0x2004, 0x3004, 0x4004));
    assert!(!r.addr_aligned(0x1008, 0x2004, 0x3004, 0x4004));
    assert!(!r.addr_aligned(0x1000, 0x2002, 0x3004, 0x4004));
    assert!(!r.addr_aligned(0x1000, 0x2004, 0x3006, 0x4004));
}

/// Through the Vring: chains of 2, 1 and 3 descriptors taken, used out of order with
/// their descriptor counts, each seen by the driver where it belongs; then an in-order
/// batch publishes one used descriptor for three buffers and moves the used position
/// past all their slots.
#[test]
fn vring_drives_a_packed_ring() {
    let m = Mem::new();
    let mut r = Vring::new();
    r.set_num(8);
    r.set_addrs(DESC, DRIVER, DEVICE);
    r.set_features(true, false, false, false);
    r.init_access(&m).unwrap();
    assert_eq!(m.get16(DEVICE + 2), RING_EVENT_FLAGS_ENABLE);
    let mut d = Driver::new(8);
    for (id, n) in [(10u16, 2usize), (11, 1), (12, 3)] {
        d.add(&m, &vec![(0x1000, 64, true); n], id).unwrap();
    }
    let chains: Vec<(u16, u16)> = std::iter::from_fn(|| take_vring(&m, &mut r))
        .map(|c| (c.head, c.ndesc))
        .collect();
    assert_eq!(chains, vec![(10, 2), (11, 1), (12, 3)]);
    r.add_used_n(&m, &[(12, 30), (10, 10), (11, 11)], &[3, 2, 1])
        .unwrap();
    let mut used = Vec::new();
    while let Some((id, len, _)) = d.get_used(&m) {
        used.push((id, len));
    }
    assert_eq!(used, vec![(12, 30), (10, 10), (11, 11)]);
    assert_eq!(r.get_base(), 0x8006_8006);
    // In order: ids are head slots (6, then 7 and 0 across the wrap).
    r.set_features(true, false, false, true);
    for (slot, n) in [(6u16, 1usize), (7, 2), (1, 1)] {
        d.add(&m, &vec![(0x1000, 64, false); n], slot).unwrap();
    }
    let n = std::iter::from_fn(|| take_vring(&m, &mut r)).count();
    assert_eq!(n, 3);
    r.add_used_n_in_order(&m, &[(1, 0)], &[3], &[4]).unwrap();
    assert_eq!(
        r.get_base(),
        0x0002_0002,
        "both positions 2 on in the next lap"
    );
    let b = slot_bytes(&m, 6);
    assert_eq!(
        u16::from_le_bytes([b[12], b[13]]),
        1,
        "the batch's last buffer"
    );
}

/// A resize after the base (a hostile VMM: SET_VRING_NUM on a stopped queue) that leaves
/// positions past the ring restarts them; one that keeps them inside keeps them. Before,
/// a failed get_desc() and its discard() left has_avail() true for ever (the packed fuzz
/// target's finding, corpus/packed/finding-resize-has-avail).
#[test]
fn vring_resize_past_the_positions_restarts_them() {
    let m = Mem::new();
    let mut r = Vring::new();
    r.set_num(8);
    r.set_addrs(DESC, DRIVER, DEVICE);
    r.set_features(true, false, true, false);
    r.set_base(0x8006_8006).unwrap();
    r.set_num(16);
    assert_eq!(r.get_base(), 0x8006_8006, "still inside: kept");
    r.set_num(4);
    assert_eq!(r.get_base(), 0x8000_8000, "past the ring: a fresh one");
    assert_eq!(take_vring(&m, &mut r), None);
    r.discard(0, 0);
    assert_eq!(r.has_avail(&m), Ok(false));
    assert_eq!(
        r.notify(&m),
        Ok(true),
        "NOTIFY_ON_EMPTY with nothing pending"
    );
}
