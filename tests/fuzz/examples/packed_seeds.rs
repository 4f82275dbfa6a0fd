// SPDX-License-Identifier: GPL-2.0

//! Writes the seed corpus of the packed fuzz target: one small valid scenario per file,
//! each reaching a part of ring/packed.rs that random bytes take a while to find (chains
//! the model driver made available, indirect tables, several laps of both wrap counters,
//! IN_ORDER batches, EVENT_IDX, discard, held-back head flags, a restored base, faults).
//! The byte format is the one `Input` reads in fuzz_targets/packed.rs; change both
//! together.
//!
//!     cargo run --manifest-path tests/fuzz/Cargo.toml --example packed_seeds [DIR]
//!
//! DIR defaults to tests/fuzz/corpus/packed. Files written by an earlier run are replaced;
//! other files there (such as regression inputs from fuzz findings) are left alone.

use std::{env, fs, path::PathBuf};

/// Features (the target's second byte).
const EVENT_IDX: u8 = 1;
const NOTIFY_ON_EMPTY: u8 = 2;
const IN_ORDER: u8 = 4;
const LOG: u8 = 8;

/// Operation codes of `Fuzz::op()`.
const GET_DESC: u8 = 0;
const DISCARD: u8 = 1;
const ADD_USED: u8 = 2;
const ADD_USED_IN_ORDER: u8 = 3;
const ADD_USED_HOSTILE: u8 = 4;
const NOTIFY: u8 = 5;
const DISABLE_NOTIFY: u8 = 6;
const ENABLE_NOTIFY: u8 = 7;
const HAS_AVAIL: u8 = 8;
const DRIVER_ADD: u8 = 9;
const DRIVER_PUBLISH: u8 = 10;
const RAW_DESC: u8 = 11;
const FLIP: u8 = 12;
const DRIVER_EVENT: u8 = 13;
const FAULT: u8 = 16;
const BASE: u8 = 17;
const INIT_ACCESS: u8 = 18;
const FEATURES: u8 = 20;

/// `get_desc` buffer selectors: MAX_IOV segments (and log entries), or 2 segments and
/// 1 log entry.
const BIG: u8 = 2;
const SMALL: u8 = 2 << 2 | 1 << 4 | 1 << 6;

/// The guest memory of every seed (as the ring seeds): gpa 0..16K at owner +0x8000, gpa
/// 0x10000..0x12000 at owner +0xc000, gpa 16K..20K at owner +0xe000. Start in 16-byte
/// units, pages, owner offset. Indirect tables at gpa 0x2000, 0x3000, 0x10000, 0x11ff0.
const MAPS: &[(u16, u8, u16)] = &[(0, 4, 0x8000), (0x1000, 2, 0xc000), (0x400, 1, 0xe000)];
const TABLES: [(u8, u16); 4] = [(0, 0x2000), (0, 0x3000), (1, 0), (1, 0x1ff0)];

/// A buffer element of a model chain: `len` bytes at `off` into map `m`, device-writable
/// or not.
#[derive(Clone, Copy)]
struct B {
    m: u8,
    off: u16,
    len: u16,
    write: bool,
}

fn r(m: u8, off: u16, len: u16) -> B {
    B {
        m,
        off,
        len,
        write: false,
    }
}

fn w(m: u8, off: u16, len: u16) -> B {
    B {
        m,
        off,
        len,
        write: true,
    }
}

#[derive(Default)]
struct Seed {
    b: Vec<u8>,
    in_order: bool,
}

impl Seed {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.b.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.b.extend(v.to_le_bytes());
        self
    }

    /// The header: a ring of `num` entries at owner +0 (descriptors, then the driver and
    /// device areas), features, `VHOST_SET_VRING_BASE` of `base` (avail and used
    /// positions with their wrap counters) if any, the memory table, no faulting pages,
    /// the indirect tables; then an empty initial image.
    fn new(num: u8, feat: u8, base: Option<((u16, bool), (u16, bool))>) -> Self {
        let mut s = Seed {
            in_order: feat & IN_ORDER != 0,
            ..Default::default()
        };
        s.u8(num - 1).u8(feat);
        match base {
            None => s.u8(0),
            Some(((a, aw), (u, uw))) => s
                .u8(2 | u8::from(aw) << 2 | u8::from(uw) << 3)
                .u16(a)
                .u16(u),
        };
        s.u8(0).u16(0); // contiguous layout at the start of the owner space
        s.u8(MAPS.len() as u8 - 1);
        for &(start16, pages, addr) in MAPS {
            s.u8(1 << 2).u16(start16).u8(pages - 1).u16(addr);
        }
        s.u8(0);
        for (m, off) in TABLES {
            s.u8(m).u16(off);
        }
        s.u8(0);
        s
    }

    fn op(&mut self, code: u8) -> &mut Self {
        self.u8(code)
    }
    fn get_desc(&mut self, sel: u8) -> &mut Self {
        self.op(GET_DESC).u8(sel)
    }

    /// The model driver makes a chain of `bufs` available under `id` (an in-order ring
    /// names it by its head slot), its head's flags held back if `defer`.
    fn chain(&mut self, bufs: &[B], id: u16, defer: bool) -> &mut Self {
        self.add(bufs, id, defer, None)
    }

    /// The same as one indirect descriptor, its table the target's table `t`.
    fn indirect(&mut self, bufs: &[B], id: u16, t: u8) -> &mut Self {
        self.add(bufs, id, false, Some(t))
    }

    fn add(&mut self, bufs: &[B], id: u16, defer: bool, table: Option<u8>) -> &mut Self {
        assert!((1..=8).contains(&bufs.len()));
        let nout = bufs.iter().take_while(|b| !b.write).count();
        assert!(
            bufs[nout..].iter().all(|b| b.write),
            "readable after writable"
        );
        let sel = (bufs.len() as u8 - 1)
            | if defer { 0x40 } else { 0 }
            | if table.is_some() { 0x80 } else { 0 };
        self.op(DRIVER_ADD).u8(sel).u8(nout as u8);
        for b in bufs {
            self.u8(0).u8(b.m).u16(b.off).u16(b.len);
        }
        if !self.in_order {
            self.u16(id);
        }
        if let Some(t) = table {
            self.u8(t);
            // Reserved bits in the entries: none, NEXT, AVAIL, USED|NEXT in turn.
            for k in 0..bufs.len() {
                self.u8(k as u8 % 4);
            }
        }
        self
    }

    /// Uses `k` of the chains taken: the `picks`-th of those left each time (0: the
    /// oldest), with written length `len` (16 bits).
    fn used(&mut self, picks: &[u8], len: u16) -> &mut Self {
        self.op(ADD_USED).u8(picks.len() as u8);
        for &j in picks {
            self.u8(j).u8(2).u16(len);
        }
        self
    }

    /// Uses the oldest `k` chains taken in order, in batches of the sizes given.
    fn used_in_order(&mut self, batches: &[u8], len: u16) -> &mut Self {
        let k: u8 = batches.iter().sum();
        self.op(ADD_USED_IN_ORDER).u8(k);
        let mut left = k;
        for &n in batches {
            // The target takes 1 + sel % left.
            self.u8(n - 1).u8(2).u16(len);
            left -= n;
        }
        assert_eq!(left, 0);
        self
    }

    /// The driver area: flags and off_wrap (slot, wrap counter).
    fn driver_event(&mut self, flags: u8, off: u16, wrap: bool) -> &mut Self {
        // Bit 0 clear: flags; bit 1: off_wrap too, from a slot and bit 4's wrap.
        self.op(DRIVER_EVENT)
            .u8(2 | u8::from(wrap) << 4)
            .u8(flags)
            .u16(off)
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    let mut add = |name, s: &mut Seed| v.push((name, std::mem::take(&mut s.b)));

    // One readable buffer, taken, used, signalled.
    add(
        "single",
        Seed::new(8, 0, None)
            .chain(&[r(0, 0x100, 64)], 3, false)
            .op(DISABLE_NOTIFY)
            .get_desc(BIG)
            .get_desc(BIG)
            .used(&[0], 0)
            .op(NOTIFY)
            .op(ENABLE_NOTIFY),
    );
    // Chains of 3, 1 and 2 (readable then writable, across regions), a ring of 6, with
    // the dirty log; used out of order; then into buffers too small.
    add(
        "chains-log",
        Seed::new(6, LOG, None)
            .chain(
                &[r(0, 0x1000, 100), w(0, 0x1100, 50), w(1, 0x10, 10)],
                7,
                false,
            )
            .chain(&[w(2, 0x20, 300)], 8, false)
            .chain(&[r(0, 0x3ff0, 16), r(1, 0x1ff0, 16)], 9, false)
            .get_desc(BIG)
            .get_desc(BIG)
            .get_desc(BIG)
            .used(&[1, 1, 0], 40)
            .op(NOTIFY)
            .chain(&[r(0, 0x10, 8), w(0, 0x20, 8), w(0, 0x40, 8)], 10, false)
            .get_desc(SMALL)
            .get_desc(1)
            .get_desc(BIG),
    );
    // An indirect table of three (reserved bits set in its entries), then one spanning
    // the end of its region's table slot.
    add(
        "indirect",
        Seed::new(4, LOG, None)
            .indirect(&[r(0, 0x400, 8), w(1, 0x800, 16), w(1, 0x900, 4)], 1, 0)
            .get_desc(BIG)
            .used(&[0], 20)
            .indirect(&[r(2, 0, 8)], 2, 1)
            .get_desc(BIG)
            .used(&[0], 0),
    );
    // Many laps of a ring of 3: chains of 1 and 2 slots, so that chains cross the end of
    // the ring with the wrap counter flipping mid-chain.
    let mut s = Seed::new(3, 0, None);
    for lap in 0..12u16 {
        let bufs: &[B] = if lap % 3 == 1 {
            &[r(0, 0x200, 32), w(0, 0x300, 32)]
        } else {
            &[w(0, 0x200, 32)]
        };
        s.chain(bufs, lap, false).get_desc(BIG).used(&[0], lap);
        if lap % 4 == 3 {
            s.op(NOTIFY);
        }
    }
    add("wrap-laps", &mut s);
    // IN_ORDER on a ring of 7: ids are head slots; chains of 2, 1, 3 and 1 slots, used in
    // batches of 3 and 1, then a second lap.
    let mut s = Seed::new(7, IN_ORDER, None);
    for _ in 0..2 {
        s.chain(&[w(0, 0x100, 8), w(0, 0x200, 8)], 0, false)
            .chain(&[w(0, 0x300, 8)], 0, false)
            .chain(&[r(0, 0x400, 8), w(0, 0x500, 8), w(0, 0x600, 8)], 0, false)
            .chain(&[w(0, 0x700, 8)], 0, false)
            .get_desc(BIG)
            .get_desc(BIG)
            .get_desc(BIG)
            .get_desc(BIG)
            .used_in_order(&[3, 1], 64)
            .op(NOTIFY);
    }
    add("in-order", &mut s);
    // EVENT_IDX: off_wrap written on enable, the driver's event position deciding notify,
    // over a lap of a ring of 6.
    let mut s = Seed::new(6, EVENT_IDX, None);
    s.op(DISABLE_NOTIFY);
    for k in 0..8u16 {
        s.chain(&[w(0, 0x100, 8)], k, false)
            .get_desc(BIG)
            .used(&[0], 8)
            .driver_event(2, (k + 2) % 6, k < 4)
            .op(NOTIFY);
        if k % 3 == 0 {
            s.op(ENABLE_NOTIFY).op(DISABLE_NOTIFY);
        }
    }
    s.op(ENABLE_NOTIFY).op(HAS_AVAIL).op(INIT_ACCESS);
    add("event-idx", &mut s);
    // Chains given back (across the wrap), which are not new to enable_notify(), taken
    // again and used; NOTIFY_ON_EMPTY.
    add(
        "discard",
        Seed::new(4, NOTIFY_ON_EMPTY, Some(((2, true), (2, true))))
            .chain(&[w(0, 0x100, 8)], 1, false)
            .chain(&[w(0, 0x200, 8), w(0, 0x300, 8)], 2, false)
            .chain(&[w(0, 0x400, 8)], 3, false)
            .op(DISABLE_NOTIFY)
            .get_desc(BIG)
            .get_desc(BIG)
            .get_desc(BIG)
            .op(DISCARD)
            .u8(2)
            .op(ENABLE_NOTIFY)
            .op(HAS_AVAIL)
            .get_desc(BIG)
            .get_desc(BIG)
            .used(&[0, 0, 0], 8)
            .op(NOTIFY),
    );
    // A restored base in the second lap of both counters; the state read back and
    // restored again; DPDK's bare 1 << 15.
    add(
        "base",
        Seed::new(10, EVENT_IDX, Some(((8, false), (8, false))))
            .chain(&[r(0, 0x100, 8), w(0, 0x200, 8), w(0, 0x300, 8)], 5, false)
            .get_desc(BIG)
            .op(BASE)
            .u8(0)
            .chain(&[w(0, 0x100, 8)], 6, false)
            .get_desc(BIG)
            .used(&[0], 1)
            .op(NOTIFY)
            .op(BASE)
            .u8(3)
            .op(INIT_ACCESS),
    );
    // The head's flags held back: nothing until the driver publishes it.
    add(
        "defer",
        Seed::new(6, 0, None)
            .chain(&[r(0, 0x100, 8), w(0, 0x200, 8)], 4, true)
            .get_desc(BIG)
            .op(HAS_AVAIL)
            .op(DRIVER_PUBLISH)
            .get_desc(BIG)
            .used(&[0], 8),
    );
    // Hostile rings: a chain's second descriptor made unavailable, an indirect flag in a
    // chain, ids past 16 bits and slot counts of 0 or two laps.
    add(
        "hostile",
        Seed::new(4, 0, None)
            .chain(&[r(0, 0x100, 8), w(0, 0x200, 8)], 4, false)
            .op(FLIP)
            .u8(2)
            .u8(1)
            .u8(0)
            .get_desc(BIG)
            .op(FLIP)
            .u8(2)
            .u8(1)
            .u8(0)
            .op(FLIP)
            .u8(2)
            .u8(1)
            .u8(4)
            .get_desc(BIG)
            .op(RAW_DESC)
            .u8(0) // at the device's position
            .u8(0) // in map 0
            .u8(0)
            .u16(0x100)
            .u8(8) // 8 bytes
            .u16(9) // id 9
            .u8(0) // available in the device's lap, readable, alone
            .get_desc(BIG)
            // Two elements: id 0x10000 (published last, refused after the other one was
            // written), then the chain taken, 5 bytes.
            .op(ADD_USED_HOSTILE)
            .u8(2 << 1)
            .u8(2)
            .u8(0)
            .u8(0)
            .u8(1)
            .u8(0)
            .u8(0)
            .u8(1)
            .u8(5)
            .u8(0)
            // In order: one element of two laps' slots.
            .op(ADD_USED_HOSTILE)
            .u8(1 << 1 | 1)
            .u8(1)
            .u16(3)
            .u8(0)
            .u8(2)
            .op(NOTIFY),
    );
    // Features again: EVENT_IDX on mid-run (state kept), then RING_PACKED dropped and
    // acked again (a fresh ring, same size and addresses), and a lap from there.
    let mut s = Seed::new(5, 0, Some(((3, true), (3, true))));
    s.chain(&[w(0, 0x100, 8)], 1, false)
        .get_desc(BIG)
        .op(FEATURES)
        .u8(1)
        .used(&[0], 8)
        .op(DISABLE_NOTIFY)
        .op(ENABLE_NOTIFY)
        .op(NOTIFY)
        .op(FEATURES)
        .u8(8 | 2);
    for k in 0..6u16 {
        s.chain(&[r(0, 0x200, 8), w(0, 0x300, 8)], k, false)
            .get_desc(BIG)
            .used(&[0], 1);
    }
    s.op(NOTIFY);
    add("features", &mut s);
    // Faults injected into each access of a chain walk and of a used batch.
    let mut s = Seed::new(8, LOG, None);
    s.chain(&[r(0, 0x100, 8), w(0, 0x200, 8), w(0, 0x300, 8)], 1, false)
        .chain(&[w(0, 0x400, 8)], 2, false);
    for k in 1..=4 {
        s.op(FAULT).u8(k - 1).get_desc(BIG);
    }
    s.get_desc(BIG).get_desc(BIG);
    s.op(FAULT).u8(2).used(&[1, 0], 4);
    s.op(FAULT).u8(0).op(DISABLE_NOTIFY);
    add("faults", &mut s);
    v
}

fn main() {
    let dir = env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/packed"));
    fs::create_dir_all(&dir).unwrap();
    let all = seeds();
    for (name, bytes) in &all {
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
    println!("{} seeds in {}", all.len(), dir.display());
}
