//! ring.rs against a fake guest memory: every rule of the chain walk, the used ring and
//! notification suppression, plus randomized rings checked against a simple model.

use crate::ring::*;
use std::cell::RefCell;

/// Owner address space: one flat buffer at `BASE`; guest physical memory is mapped into it
/// by `regions` (gpa start, size, owner address).
const BASE: u64 = 0x10_0000;
const SIZE: usize = 1 << 20;

struct Mem {
    bytes: RefCell<Vec<u8>>,
    regions: Vec<(u64, u64, u64)>,
    logged: RefCell<Vec<(u64, u64)>>,
}

impl Mem {
    fn new() -> Self {
        // Guest RAM: gpa 0..256K at owner BASE+512K, and gpa 1M..1M+128K at BASE+768K.
        Mem {
            bytes: RefCell::new(vec![0; SIZE]),
            regions: vec![
                (0, 0x40000, BASE + 0x80000),
                (0x10_0000, 0x20000, BASE + 0xC0000),
            ],
            logged: RefCell::new(Vec::new()),
        }
    }
    fn put(&self, uaddr: u64, data: &[u8]) {
        let o = (uaddr - BASE) as usize;
        self.bytes.borrow_mut()[o..o + data.len()].copy_from_slice(data);
    }
    fn get16(&self, uaddr: u64) -> u16 {
        let o = (uaddr - BASE) as usize;
        let b = self.bytes.borrow();
        u16::from_le_bytes([b[o], b[o + 1]])
    }
    fn get32(&self, uaddr: u64) -> u32 {
        let o = (uaddr - BASE) as usize;
        let b = self.bytes.borrow();
        u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
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
            .filter(|(s, n, _)| *s <= last && s + n - 1 >= gpa)
            .min_by_key(|(s, _, _)| *s)
            .copied()
            .ok_or(RingError::Fault)
    }
    fn log_used(&self, offset: u64, len: u64) {
        self.logged.borrow_mut().push((offset, len));
    }
    fn rmb(&self) {}
    fn wmb(&self) {}
    fn mb(&self) {}
}

/// A ring of `num` entries laid out in the owner buffer.
fn ring(num: u32) -> Ring {
    let mut r = Ring::new();
    r.num = num;
    r.desc = BASE;
    r.avail = BASE + 0x10000;
    r.used = BASE + 0x20000;
    r.used_flags = VRING_USED_F_NO_NOTIFY;
    r
}

fn set_desc(m: &Mem, r: &Ring, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&len.to_le_bytes());
    d[12..14].copy_from_slice(&flags.to_le_bytes());
    d[14..16].copy_from_slice(&next.to_le_bytes());
    m.put(r.desc + 16 * u64::from(i), &d);
}

fn publish(m: &Mem, r: &Ring, slot: u16, head: u16, idx: u16) {
    m.put(
        r.avail + 4 + 2 * u64::from(slot % r.num as u16),
        &head.to_le_bytes(),
    );
    m.put(r.avail + 2, &idx.to_le_bytes());
}

fn take(m: &Mem, r: &mut Ring) -> Result<Option<(Chain, Vec<Iov>)>, RingError> {
    let mut iov = vec![Iov::default(); MAX_IOV];
    let mut buf = ChainBuf {
        iov: &mut iov,
        log: None,
    };
    let c = r.get_desc(m, &mut buf)?;
    Ok(c.map(|c| (c, iov[..c.out_num + c.in_num].to_vec())))
}

#[test]
fn empty_ring_has_nothing() {
    let (m, mut r) = (Mem::new(), ring(8));
    assert_eq!(take(&m, &mut r), Ok(None));
}

#[test]
fn chain_of_readable_then_writable() {
    let (m, mut r) = (Mem::new(), ring(8));
    set_desc(&m, &r, 3, 0x1000, 100, VRING_DESC_F_NEXT, 5);
    set_desc(
        &m,
        &r,
        5,
        0x2000,
        50,
        VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
        1,
    );
    set_desc(&m, &r, 1, 0x3000, 10, VRING_DESC_F_WRITE, 0);
    publish(&m, &r, 0, 3, 1);
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.out_num, c.in_num), (3, 1, 2));
    let off = BASE + 0x80000;
    assert_eq!(
        iov,
        vec![
            Iov {
                addr: off + 0x1000,
                len: 100
            },
            Iov {
                addr: off + 0x2000,
                len: 50
            },
            Iov {
                addr: off + 0x3000,
                len: 10
            },
        ]
    );
    assert_eq!(r.last_avail_idx, 1);
    assert_eq!(take(&m, &mut r), Ok(None));
}

#[test]
fn readable_after_writable_is_refused() {
    let (m, mut r) = (Mem::new(), ring(8));
    set_desc(
        &m,
        &r,
        0,
        0x1000,
        10,
        VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
        1,
    );
    set_desc(&m, &r, 1, 0x2000, 10, 0, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::OutAfterIn));
}

#[test]
fn descriptor_loop_is_detected() {
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x1000, 10, VRING_DESC_F_NEXT, 1);
    set_desc(&m, &r, 1, 0x1000, 10, VRING_DESC_F_NEXT, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::Loop));
}

#[test]
fn next_and_head_out_of_range() {
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x1000, 10, VRING_DESC_F_NEXT, 4);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(
        take(&m, &mut r),
        Err(RingError::IndexOutOfRange { idx: 4, num: 4 })
    );
    let (m, mut r) = (Mem::new(), ring(4));
    publish(&m, &r, 0, 9, 1);
    assert_eq!(
        take(&m, &mut r),
        Err(RingError::IndexOutOfRange { idx: 9, num: 4 })
    );
}

#[test]
fn avail_index_jumping_past_num_is_refused() {
    let (m, mut r) = (Mem::new(), ring(4));
    publish(&m, &r, 0, 0, 5);
    assert_eq!(
        take(&m, &mut r),
        Err(RingError::AvailIdx { from: 0, to: 5 })
    );
    // Exactly num ahead is fine, and so is wrapping around 0xffff.
    let (m, mut r) = (Mem::new(), ring(4));
    r.last_avail_idx = 0xfffe;
    r.avail_idx = 0xfffe;
    set_desc(&m, &r, 0, 0x1000, 1, 0, 0);
    publish(&m, &r, 0xfffe, 0, 2);
    assert!(take(&m, &mut r).unwrap().is_some());
}

#[test]
fn buffers_outside_memory_fault_and_crossing_regions_split() {
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x50000, 10, 0, 0); // between the two regions
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::Fault));
    // addr + len wrapping the address space.
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, u64::MAX - 3, 10, 0, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::Fault));
    // A buffer running from the end of region 0 into a hole faults too.
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x3fff0, 0x20, 0, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::Fault));
    // Two adjacent regions: one buffer becomes two segments.
    let (mut m, mut r) = (Mem::new(), ring(4));
    m.regions = vec![
        (0, 0x1000, BASE + 0x80000),
        (0x1000, 0x1000, BASE + 0xA0000),
    ];
    set_desc(&m, &r, 0, 0xff0, 0x20, 0, 0);
    publish(&m, &r, 0, 0, 1);
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!(c.out_num, 2);
    assert_eq!(
        iov,
        vec![
            Iov {
                addr: BASE + 0x80ff0,
                len: 0x10
            },
            Iov {
                addr: BASE + 0xA0000,
                len: 0x10
            }
        ]
    );
}

#[test]
fn zero_length_descriptors_give_no_segment() {
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x1000, 0, VRING_DESC_F_NEXT, 1);
    set_desc(&m, &r, 1, 0x2000, 4, 0, 0);
    publish(&m, &r, 0, 0, 1);
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.out_num, c.in_num), (1, 0));
}

fn indirect_table(m: &Mem, gpa: u64, entries: &[(u64, u32, u16, u16)]) {
    for (k, (addr, len, flags, next)) in entries.iter().enumerate() {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        m.put(BASE + 0x80000 + gpa + 16 * k as u64, &d);
    }
}

#[test]
fn indirect_tables() {
    let (m, mut r) = (Mem::new(), ring(4));
    indirect_table(
        &m,
        0x8000,
        &[
            (0x1000, 8, VRING_DESC_F_NEXT, 1),
            (0x2000, 16, VRING_DESC_F_WRITE, 0),
        ],
    );
    set_desc(&m, &r, 2, 0x8000, 32, VRING_DESC_F_INDIRECT, 0);
    publish(&m, &r, 0, 2, 1);
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.out_num, c.in_num), (2, 1, 1));
    assert_eq!(
        iov[1],
        Iov {
            addr: BASE + 0x82000,
            len: 16
        }
    );

    // Length not a multiple of 16.
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x8000, 24, VRING_DESC_F_INDIRECT, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::IndirectLen(24)));

    // Nested.
    let (m, mut r) = (Mem::new(), ring(4));
    indirect_table(&m, 0x8000, &[(0x9000, 16, VRING_DESC_F_INDIRECT, 0)]);
    set_desc(&m, &r, 0, 0x8000, 16, VRING_DESC_F_INDIRECT, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::NestedIndirect));

    // A chain that runs off the end of its table (every entry says NEXT).
    let (m, mut r) = (Mem::new(), ring(4));
    indirect_table(
        &m,
        0x8000,
        &[
            (0x1000, 1, VRING_DESC_F_NEXT, 1),
            (0x1000, 1, VRING_DESC_F_NEXT, 0),
        ],
    );
    set_desc(&m, &r, 0, 0x8000, 32, VRING_DESC_F_INDIRECT, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::Loop));

    // The table outside guest memory.
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x60000, 16, VRING_DESC_F_INDIRECT, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::Fault));
}

#[test]
fn too_many_segments() {
    // 1025 one-byte regions side by side, one buffer across all of them.
    let (mut m, mut r) = (Mem::new(), ring(4));
    m.regions = (0..1025u64).map(|k| (k, 1, BASE + 0x80000 + k)).collect();
    set_desc(&m, &r, 0, 0, 1025, 0, 0);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(take(&m, &mut r), Err(RingError::TooManySegments));
    assert_eq!(RingError::TooManySegments.errno(), 105);
}

#[test]
fn used_ring_and_index_wrap() {
    let (m, mut r) = (Mem::new(), ring(4));
    r.last_used_idx = 0xfffe;
    r.add_used_n(&m, &[(1, 100), (2, 200), (3, 300)]).unwrap();
    assert_eq!(r.last_used_idx, 1);
    assert_eq!(m.get16(r.used + 2), 1);
    // 0xfffe % 4 = 2: elements at slots 2, 3, 0.
    assert_eq!(
        (m.get32(r.used + 4 + 16), m.get32(r.used + 4 + 20)),
        (1, 100)
    );
    assert_eq!(
        (m.get32(r.used + 4 + 24), m.get32(r.used + 4 + 28)),
        (2, 200)
    );
    assert_eq!((m.get32(r.used + 4), m.get32(r.used + 8)), (3, 300));
    assert!(
        m.logged.borrow().contains(&(2, 2)),
        "used idx write is logged"
    );
}

/// VIRTIO_F_IN_ORDER: chains start where the last one ended in the descriptor table, the
/// avail ring's entries are not read; a discard gives back the descriptors as well.
#[test]
fn in_order_takes_chains_in_table_order() {
    let (m, mut r) = (Mem::new(), ring(8));
    r.in_order = true;
    // Chain 0: descriptors 0 -> 1; chain 1: descriptor 2; chain 2: descriptor 3 (indirect,
    // one table descriptor however many entries).
    set_desc(&m, &r, 0, 0x1000, 10, VRING_DESC_F_NEXT, 1);
    set_desc(&m, &r, 1, 0x2000, 20, 0, 0);
    set_desc(&m, &r, 2, 0x3000, 30, 0, 0);
    indirect_table(
        &m,
        0x5000,
        &[(0x6000, 40, VRING_DESC_F_NEXT, 1), (0x7000, 50, 0, 0)],
    );
    set_desc(&m, &r, 3, 0x5000, 32, VRING_DESC_F_INDIRECT, 0);
    // The avail ring says head 7 everywhere: with IN_ORDER it is not read.
    for slot in 0..3 {
        publish(&m, &r, slot, 7, slot + 1);
    }
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.ndesc, iov.len()), (0, 2, 2));
    assert_eq!(r.next_avail_head, 2);
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.ndesc), (2, 1));
    let (c, iov) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.ndesc, iov.len()), (3, 1, 2));
    assert_eq!((r.last_avail_idx, r.next_avail_head), (3, 4));
    // Giving back the last two chains rewinds both cursors; they come again.
    r.discard(2, 2);
    assert_eq!((r.last_avail_idx, r.next_avail_head), (1, 2));
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!(c.head, 2);
    // Without IN_ORDER the same ring gives the avail ring's head 7 (nothing there: empty
    // descriptor, so no segment, and it is its own chain).
    let (m2, mut r2) = (Mem::new(), ring(8));
    set_desc(&m2, &r2, 7, 0x3000, 30, 0, 0);
    publish(&m2, &r2, 0, 7, 1);
    assert_eq!(take(&m2, &mut r2).unwrap().unwrap().0.head, 7);
}

/// The next chain in table order wraps at `num`, and a head there past `num` cannot be.
#[test]
fn in_order_wraps_at_num() {
    let (m, mut r) = (Mem::new(), ring(4));
    r.in_order = true;
    r.last_avail_idx = 0xffff;
    r.avail_idx = 0xffff;
    r.next_avail_head = 0xffff; // & 3 = 3
    set_desc(&m, &r, 3, 0x1000, 10, VRING_DESC_F_NEXT, 0);
    set_desc(&m, &r, 0, 0x2000, 20, 0, 0);
    m.put(r.avail + 2, &0u16.to_le_bytes());
    let (c, _) = take(&m, &mut r).unwrap().unwrap();
    assert_eq!((c.head, c.ndesc), (3, 2));
    assert_eq!((r.last_avail_idx, r.next_avail_head), (0, 1));
}

/// `vhost_add_used_n_in_order()`: an element per batch, written where the batch's first
/// buffer would go, the used index past all of them, the skipped slots untouched.
#[test]
fn in_order_used_elements_skip_slots() {
    let (m, mut r) = (Mem::new(), ring(4));
    r.last_used_idx = 0xfffe; // slot 2
    for slot in 0..4u64 {
        m.put(r.used + 4 + 8 * slot, &[0xee; 8]);
    }
    // Three buffers ending with head 1, then one buffer, head 2.
    r.add_used_n_in_order(&m, &[(1, 100), (2, 200)], &[3, 1])
        .unwrap();
    assert_eq!(r.last_used_idx, 2);
    assert_eq!(m.get16(r.used + 2), 2);
    assert_eq!(
        (m.get32(r.used + 4 + 16), m.get32(r.used + 4 + 20)),
        (1, 100)
    );
    // 2 + 3 = 5 -> slot 1.
    assert_eq!(
        (m.get32(r.used + 4 + 8), m.get32(r.used + 4 + 12)),
        (2, 200)
    );
    assert_eq!(m.get32(r.used + 4 + 24), 0xeeee_eeee, "slot 3 skipped");
    assert_eq!(m.get32(r.used + 4), 0xeeee_eeee, "slot 0 skipped");
    let logged = m.logged.borrow();
    assert!(logged.contains(&(4 + 16, 8)) && logged.contains(&(4 + 8, 8)));
    assert!(logged.contains(&(2, 2)), "used idx write is logged");
}

#[test]
fn notification_without_event_idx_follows_avail_flags() {
    let (m, mut r) = (Mem::new(), ring(4));
    assert!(r.notify(&m));
    m.put(r.avail, &VRING_AVAIL_F_NO_INTERRUPT.to_le_bytes());
    assert!(!r.notify(&m));
    r.notify_on_empty = true;
    assert!(
        r.notify(&m),
        "NOTIFY_ON_EMPTY overrides when the ring is empty"
    );
}

#[test]
fn notification_with_event_idx() {
    let (m, mut r) = (Mem::new(), ring(8));
    r.event_idx = true;
    let used_event = r.avail + 4 + 2 * 8;
    r.add_used_n(&m, &[(0, 1)]).unwrap();
    assert!(r.notify(&m), "first signal is always sent");
    m.put(used_event, &5u16.to_le_bytes());
    r.add_used_n(&m, &[(0, 1), (1, 1)]).unwrap(); // used idx 3
    assert!(!r.notify(&m), "guest asked for index 5");
    r.add_used_n(&m, &[(0, 1), (1, 1), (2, 1)]).unwrap(); // used idx 6: passed 5
    assert!(r.notify(&m));
    assert!(need_event(5, 6, 3) && !need_event(5, 5, 3) && need_event(0xffff, 1, 0xfff0));
}

#[test]
fn enable_notify_reports_buffers_that_slipped_in() {
    let (m, mut r) = (Mem::new(), ring(4));
    assert_eq!(r.enable_notify(&m), Ok(false));
    assert_eq!(m.get16(r.used), 0, "flags cleared");
    r.disable_notify(&m).unwrap();
    assert_eq!(m.get16(r.used), VRING_USED_F_NO_NOTIFY);
    publish(&m, &r, 0, 0, 1);
    assert_eq!(r.enable_notify(&m), Ok(true));
    // With event idx, enabling writes avail_event instead of flags.
    let (m, mut r) = (Mem::new(), ring(4));
    r.event_idx = true;
    r.avail_idx = 7;
    r.last_avail_idx = 7;
    m.put(r.avail + 2, &7u16.to_le_bytes());
    assert_eq!(r.enable_notify(&m), Ok(false));
    assert_eq!(m.get16(r.used + 4 + 8 * 4), 7);
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

/// Random valid rings: the engine must hand back each chain exactly as the model built it.
#[test]
fn random_valid_chains_match_the_model() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let num = 1u32 << rng.below(7); // 1..64
        let (m, mut r) = (Mem::new(), ring(num));
        let start = rng.next() as u16;
        r.last_avail_idx = start;
        r.avail_idx = start;
        // Partition the descriptor table into chains of random length.
        let mut free: Vec<u16> = (0..num as u16).collect();
        for k in (1..free.len()).rev() {
            free.swap(k, rng.below(k as u64 + 1) as usize);
        }
        let mut expect = Vec::new();
        let mut slot = start;
        while !free.is_empty() {
            let len = 1 + rng.below(free.len().min(5) as u64) as usize;
            let ids: Vec<u16> = free.drain(..len).collect();
            let nout = rng.below(len as u64 + 1) as usize;
            let mut segs = Vec::new();
            for (k, &id) in ids.iter().enumerate() {
                let gpa = rng.below(0x3f000);
                let blen = 1 + rng.below(0x800) as u32;
                let mut flags = if k < nout { 0 } else { VRING_DESC_F_WRITE };
                let next = ids.get(k + 1).copied().unwrap_or(0);
                if k + 1 < ids.len() {
                    flags |= VRING_DESC_F_NEXT;
                }
                set_desc(&m, &r, id, gpa, blen, flags, next);
                segs.push(Iov {
                    addr: BASE + 0x80000 + gpa,
                    len: blen.into(),
                });
            }
            m.put(
                r.avail + 4 + 2 * u64::from(slot % num as u16),
                &ids[0].to_le_bytes(),
            );
            slot = slot.wrapping_add(1);
            expect.push((ids[0], nout, len - nout, segs));
        }
        m.put(r.avail + 2, &slot.to_le_bytes());
        for (head, nout, nin, segs) in expect {
            let (c, iov) = take(&m, &mut r)
                .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"))
                .unwrap();
            assert_eq!(
                (c.head, c.out_num, c.in_num),
                (head, nout, nin),
                "seed {seed}"
            );
            assert_eq!(iov, segs, "seed {seed}");
        }
        assert_eq!(take(&m, &mut r), Ok(None), "seed {seed}");
    }
}

/// Random garbage rings: the engine may refuse them, but never panics, never loops
/// unboundedly, and never returns a segment outside guest memory.
#[test]
fn random_garbage_never_panics_or_escapes_memory() {
    for seed in 1..=2000u64 {
        let mut rng = Rng(seed.wrapping_mul(0xd134_2543_de82_ef95) | 1);
        let num = 1u32 << rng.below(5);
        let (m, mut r) = (Mem::new(), ring(num));
        for i in 0..num as u16 {
            let addr = match rng.below(4) {
                0 => rng.next(),
                1 => 0x8000 + 16 * rng.below(4),
                _ => rng.below(0x40000),
            };
            let len = match rng.below(3) {
                0 => rng.next() as u32,
                1 => 16 * rng.below(4) as u32,
                _ => rng.below(0x100) as u32,
            };
            set_desc(
                &m,
                &r,
                i,
                addr,
                len,
                rng.below(8) as u16,
                rng.below(u64::from(num) + 2) as u16,
            );
        }
        for k in 0..16u64 {
            indirect_table(
                &m,
                0x8000 + 16 * k,
                &[(
                    rng.below(0x40000),
                    rng.below(64) as u32,
                    rng.below(8) as u16,
                    rng.below(4) as u16,
                )],
            );
        }
        for s in 0..num as u16 {
            m.put(
                r.avail + 4 + 2 * u64::from(s),
                &(rng.below(u64::from(num) + 1) as u16).to_le_bytes(),
            );
        }
        m.put(
            r.avail + 2,
            &(rng.below(u64::from(num) * 2) as u16).to_le_bytes(),
        );
        for _ in 0..num * 2 {
            match take(&m, &mut r) {
                Ok(Some((_, iov))) => {
                    for seg in iov {
                        let inside = m
                            .regions
                            .iter()
                            .any(|(_, n, u)| seg.addr >= *u && seg.addr + seg.len <= u + n);
                        assert!(inside, "seed {seed}: segment {seg:?} outside guest memory");
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// Found by tests/fuzz: `enable_notify()` took the guest's avail index without the range
/// check of `vhost_get_avail_idx()`, which vhost_enable_notify() goes through. A guest
/// could move the index any distance past `num` while notifications were off, and the
/// next `get_desc()` then took chains from stale slots instead of failing the queue.
/// 7.3's fix of the RX livelock: buffers given back by a discard (a packet that did not
/// fit) are not "new": enabling notification reports only an avail index that moved.
#[test]
fn enable_notify_after_discard_waits_for_new_buffers() {
    let (m, mut r) = (Mem::new(), ring(4));
    set_desc(&m, &r, 0, 0x1000, 8, VRING_DESC_F_WRITE, 0);
    publish(&m, &r, 0, 0, 1);
    assert!(take(&m, &mut r).unwrap().is_some());
    r.discard(1, 1);
    assert_ne!(r.avail_idx, r.last_avail_idx, "a buffer is left untaken");
    assert_eq!(r.enable_notify(&m), Ok(false));
    r.disable_notify(&m).unwrap();
    publish(&m, &r, 1, 0, 2);
    assert_eq!(r.enable_notify(&m), Ok(true));
}

#[test]
fn enable_notify_checks_the_avail_index() {
    for event_idx in [false, true] {
        let (m, mut r) = (Mem::new(), ring(4));
        r.event_idx = event_idx;
        set_desc(&m, &r, 0, 0x1000, 8, 0, 0);
        publish(&m, &r, 0, 0, 5);
        let bad = RingError::AvailIdx { from: 0, to: 5 };
        assert_eq!(r.enable_notify(&m), Err(bad));
        assert_eq!(r.avail_idx, 0, "a bad index is not cached");
        assert_eq!(take(&m, &mut r), Err(bad));
        // Exactly num ahead is fine.
        let (m, mut r) = (Mem::new(), ring(4));
        r.event_idx = event_idx;
        set_desc(&m, &r, 0, 0x1000, 8, 0, 0);
        publish(&m, &r, 0, 0, 4);
        assert_eq!(r.enable_notify(&m), Ok(true));
        assert!(take(&m, &mut r).unwrap().is_some());
    }
}
