// SPDX-License-Identifier: GPL-2.0

//! Writes the seed corpus of the ring fuzz target: one small scenario per file, each
//! reaching a part of ring.rs that random bytes take a while to find (valid chains,
//! indirect tables, index wrap, EVENT_IDX, discard, faults). The byte format is the one
//! `Input` reads in fuzz_targets/ring.rs; change both together.
//!
//!     cargo run --manifest-path tests/fuzz/Cargo.toml --example seeds [DIR]
//!
//! DIR defaults to tests/fuzz/corpus/ring. Files written by an earlier run are replaced;
//! other files there (such as regression inputs from fuzz findings) are left alone.

use std::{env, fs, path::PathBuf};

/// IOTLB permissions of a map (bits 6..7 of its selector byte).
const RO: u8 = 1;
const WO: u8 = 2;
const RW: u8 = 3;

/// Descriptor flags, as the selector byte of a descriptor carries them (bits 4..6).
const NEXT: u8 = 1;
const WRITE: u8 = 2;
const INDIRECT: u8 = 4;

/// Operation codes of `Fuzz::op()`.
const GET_DESC: u8 = 0;
const DISCARD: u8 = 1;
const ADD_USED: u8 = 2;
const ADD_USED_RAW: u8 = 3;
const ENABLE_NOTIFY: u8 = 4;
const DISABLE_NOTIFY: u8 = 5;
const NOTIFY: u8 = 6;
const HAS_AVAIL: u8 = 7;
const GET_AVAIL_IDX: u8 = 8;
const UPDATE_USED_FLAGS: u8 = 9;
const PUBLISH: u8 = 10;
const SET_AVAIL_IDX: u8 = 11;
const GUEST_DESC: u8 = 12;
const POKE: u8 = 13;
const SET_U16: u8 = 14;
const FAULT: u8 = 15;
const TRANSLATE: u8 = 16;

/// `get_desc` buffer selectors: MAX_IOV segments (and log entries), or 2 segments and
/// 1 log entry.
const BIG: u8 = 2;
const SMALL: u8 = 2 << 2 | 1 << 4 | 1 << 6;

/// The guest memory of every seed: gpa 0..16K at owner +0x8000, gpa 0x10000..0x12000 at
/// owner +0xc000, and gpa 16K..20K at owner +0xe000, next to the first in guest memory
/// only. Start in 16-byte units, pages, owner offset. Indirect tables at gpa 0x2000,
/// 0x3000, 0x10000 and 0x11ff0 (the last one runs off its region after one entry).
const MAPS: &[(u16, u8, u16)] = &[(0, 4, 0x8000), (0x1000, 2, 0xc000), (0x400, 1, 0xe000)];
const TABLES: [(u8, u16); 4] = [(0, 0x2000), (0, 0x3000), (1, 0), (1, 0x1ff0)];

/// A descriptor in the target's encoding: an address in map `m` at offset `off`, or the
/// indirect table `t`; a length; flags; next.
#[derive(Clone, Copy)]
enum Addr {
    Map(u8, u16),
    Table(u8),
    Raw(u64),
}

#[derive(Clone, Copy)]
struct D {
    addr: Addr,
    len: u16,
    flags: u8,
    next: u8,
}

fn d(m: u8, off: u16, len: u16, flags: u8, next: u8) -> D {
    D {
        addr: Addr::Map(m, off),
        len,
        flags,
        next,
    }
}

fn table(t: u8, entries: u8, next: u8) -> D {
    D {
        addr: Addr::Table(t),
        len: 16 * u16::from(entries),
        flags: INDIRECT,
        next,
    }
}

#[derive(Default)]
struct Seed {
    b: Vec<u8>,
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
    fn u32(&mut self, v: u32) -> &mut Self {
        self.b.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.b.extend(v.to_le_bytes());
        self
    }

    /// The header: ring of 2^`log2` entries at owner +0, features (1 EVENT_IDX,
    /// 2 NOTIFY_ON_EMPTY, 4 dirty log, 8 IN_ORDER, 16 device IOTLB), start indices, memory
    /// table, page protection (`no_write` pages, read-only to the host), indirect tables.
    fn new(log2: u8, feat: u8, last_avail: u16, last_used: u16, no_write: u16) -> Self {
        Self::with_perms(log2, feat, last_avail, last_used, no_write, [RW; 3])
    }

    /// As `new`, the maps with IOTLB permissions `perms` (which hold with feature 16).
    fn with_perms(
        log2: u8,
        feat: u8,
        last_avail: u16,
        last_used: u16,
        no_write: u16,
        perms: [u8; 3],
    ) -> Self {
        let mut s = Seed::default();
        s.u8(log2).u8(feat).u16(last_avail).u16(last_used);
        s.u8(0).u16(0); // contiguous layout at the start of the owner space
        s.u8(MAPS.len() as u8 - 1);
        for (&(start16, pages, addr), perm) in MAPS.iter().zip(perms) {
            s.u8(1 << 2 | perm << 6)
                .u16(start16)
                .u8(pages - 1)
                .u16(addr);
        }
        if no_write != 0 {
            s.u8(0xc0).u16(0).u16(no_write);
        } else {
            s.u8(0);
        }
        for (m, off) in TABLES {
            s.u8(m).u16(off);
        }
        s
    }

    /// The descriptor encoding shared by the image, GUEST_DESC and indirect entries.
    fn desc(&mut self, x: D) -> &mut Self {
        let (mode, len_mode) = (
            match x.addr {
                Addr::Map(..) => 0,
                Addr::Raw(_) => 1,
                Addr::Table(_) => 2,
            },
            2,
        );
        self.u8(mode | len_mode << 2 | (x.flags & 7) << 4);
        match x.addr {
            Addr::Map(m, off) => self.u8(m).u16(off),
            Addr::Raw(a) => self.u64(a),
            Addr::Table(t) => self.u8(t),
        };
        self.u16(x.len).u8(x.next)
    }

    /// The initial image: descriptors at table indices, avail entries, indirect entries.
    fn image(&mut self, descs: &[(u16, D)], avail: &[(u16, u8)], ind: &[(u8, u8, D)]) -> &mut Self {
        self.u8((descs.len() + avail.len() + ind.len()) as u8);
        for &(i, x) in descs {
            self.u8(0).u16(i).desc(x);
        }
        for &(slot, head) in avail {
            self.u8(1).u16(slot).u8(head);
        }
        for &(t, j, x) in ind {
            self.u8(2).u8(t).u8(j).desc(x);
        }
        self
    }

    fn op(&mut self, code: u8) -> &mut Self {
        self.u8(code)
    }
    fn get_desc(&mut self, sel: u8) -> &mut Self {
        self.op(GET_DESC).u8(sel)
    }
    /// The guest publishes `heads` (a head of 0xf8 or more takes 16 bits).
    fn publish(&mut self, heads: &[u16]) -> &mut Self {
        self.op(PUBLISH).u8(heads.len() as u8);
        for &h in heads {
            match u8::try_from(h) {
                Ok(b) if b < 0xf8 => self.u8(b),
                _ => self.u8(0xf8).u16(h),
            };
        }
        self
    }
    fn add_used(&mut self, lens: &[u16]) -> &mut Self {
        self.op(ADD_USED).u8(lens.len() as u8);
        for &l in lens {
            self.u16(l);
        }
        self
    }
    fn set_avail_idx(&mut self, v: u16) -> &mut Self {
        self.op(SET_AVAIL_IDX).u8(1).u16(v)
    }
    /// SET_U16: 0 avail flags, 1 used_event.
    fn set_u16(&mut self, which: u8, v: u16) -> &mut Self {
        self.op(SET_U16).u8(which).u16(v)
    }
    /// A raw guest write of avail ring entry `slot`, for rings of 4 (avail at +0x40).
    fn head4(&mut self, slot: u16, head: u16) -> &mut Self {
        self.op(POKE).u16(0x44 + 2 * slot).u8(2).u16(head)
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    let mut add = |name, s: &mut Seed| v.push((name, std::mem::take(&mut s.b)));

    // One readable buffer, taken, used, signalled.
    add(
        "single",
        Seed::new(3, 0, 0, 0, 0)
            .image(&[(0, d(0, 0x100, 64, 0, 0))], &[], &[])
            .publish(&[0])
            .op(DISABLE_NOTIFY)
            .get_desc(BIG)
            .get_desc(BIG)
            .add_used(&[0])
            .op(NOTIFY)
            .op(ENABLE_NOTIFY),
    );
    // Through the device IOTLB: readable in a read-only map, writable in a write-only one;
    // then the same chain with its writable part in the read-only map (Perm), and a
    // buffer in no map (Miss).
    let perms = [RO, WO, RW];
    add(
        "iotlb-ok",
        Seed::with_perms(3, 16, 0, 0, 0, perms)
            .image(
                &[
                    (3, d(0, 0x1000, 100, NEXT, 5)),
                    (5, d(1, 0x10, 50, WRITE, 0)),
                ],
                &[],
                &[],
            )
            .publish(&[3])
            .get_desc(BIG)
            .add_used(&[50]),
    );
    add(
        "iotlb-perm",
        Seed::with_perms(3, 16 | 8, 0, 0, 0, perms)
            .image(
                &[
                    (0, d(0, 0x1000, 100, NEXT, 1)),
                    (1, d(0, 0x1100, 50, WRITE, 0)),
                ],
                &[],
                &[],
            )
            .publish(&[0])
            .get_desc(BIG)
            .get_desc(BIG),
    );
    add(
        "iotlb-miss",
        Seed::with_perms(3, 16, 0, 0, 0, perms)
            .image(&[(0, d(0, 0x3000, 0x3000, 0, 0))], &[], &[])
            .publish(&[0])
            .get_desc(BIG),
    );
    // Readable then writable, three descriptors, with the dirty log.
    let chain3 = [
        (3, d(0, 0x1000, 100, NEXT, 5)),
        (5, d(0, 0x1100, 50, NEXT | WRITE, 1)),
        (1, d(1, 0x10, 10, WRITE, 0)),
    ];
    add(
        "chain-out-in-log",
        Seed::new(3, 4, 0, 0, 0)
            .image(&chain3, &[], &[])
            .publish(&[3])
            .get_desc(BIG)
            .add_used(&[60])
            .op(NOTIFY),
    );
    // The same chain into buffers too small for it: TooManySegments, then a retry.
    add(
        "chain-small-buffers",
        Seed::new(3, 4, 0, 0, 0)
            .image(&chain3, &[], &[])
            .publish(&[3])
            .get_desc(SMALL)
            .get_desc(1)
            .get_desc(BIG),
    );
    // An indirect table of two, after a direct descriptor.
    let ind = [
        (0, 0, d(0, 0x400, 8, NEXT, 1)),
        (0, 1, d(1, 0x800, 16, WRITE, 0)),
    ];
    add(
        "indirect",
        Seed::new(2, 4, 0, 0, 0)
            .image(
                &[(2, d(0, 0x200, 12, NEXT, 0)), (0, table(0, 2, 0))],
                &[],
                &ind,
            )
            .publish(&[2])
            .get_desc(BIG)
            .add_used(&[16]),
    );
    // Indirect errors: nested, bad length, a table crossing into a hole.
    add(
        "indirect-bad",
        Seed::new(2, 0, 0, 0, 0)
            .image(
                &[
                    (0, table(1, 1, 0)),
                    (1, table(3, 2, 0)),
                    (
                        2,
                        D {
                            addr: Addr::Table(0),
                            len: 24,
                            flags: INDIRECT,
                            next: 0,
                        },
                    ),
                ],
                &[],
                &[(1, 0, table(0, 1, 0)), (3, 0, d(0, 0, 4, 0, 0))],
            )
            .publish(&[0])
            .get_desc(BIG)
            .head4(0, 1)
            .get_desc(BIG)
            .head4(0, 2)
            .get_desc(BIG),
    );
    // A buffer across two adjacent regions, one running into a hole, one wrapping.
    add(
        "region-edges",
        Seed::new(2, 0, 0, 0, 0)
            .image(
                &[
                    (0, d(0, 0x3ff0, 0x20, 0, 1)),
                    (1, d(1, 0x1ff0, 0x20, 0, 0)),
                    (
                        2,
                        D {
                            addr: Addr::Raw(0xffff_ffff_ffff_fff0),
                            len: 0x20,
                            flags: 0,
                            next: 0,
                        },
                    ),
                ],
                &[],
                &[],
            )
            .publish(&[0])
            .get_desc(BIG)
            .publish(&[1])
            .get_desc(BIG)
            .head4(1, 2)
            .get_desc(BIG)
            .op(TRANSLATE)
            .u8(0x10)
            .u8(0)
            .u16(0x3ff8)
            .u8(0x10)
            .u8(0),
    );
    // Loops, out-after-in, a head and a next past the ring.
    add(
        "chain-errors",
        Seed::new(2, 0, 0, 0, 0)
            .image(
                &[
                    (0, d(0, 0, 4, NEXT, 1)),
                    (1, d(0, 0, 4, NEXT, 0)),
                    (2, d(0, 0, 4, NEXT | WRITE, 3)),
                    (3, d(0, 0, 4, NEXT, 7)),
                ],
                &[],
                &[],
            )
            .publish(&[0])
            .get_desc(BIG)
            .head4(0, 2)
            .get_desc(BIG)
            .head4(0, 3)
            .get_desc(BIG)
            .head4(0, 9)
            .get_desc(BIG),
    );
    // Indices about to wrap, a full ring taken, used and discarded in turn.
    add(
        "wrap",
        Seed::new(2, 0, 0xfffe, 0xfffe, 0)
            .image(
                &[
                    (0, d(0, 0x10, 1, 0, 0)),
                    (1, d(0, 0x20, 2, WRITE, 0)),
                    (2, d(0, 0x30, 3, 0, 0)),
                    (3, d(0, 0x40, 4, WRITE, 0)),
                ],
                &[],
                &[],
            )
            .publish(&[0, 1, 2, 3])
            .get_desc(BIG)
            .get_desc(BIG)
            .get_desc(BIG)
            .op(DISCARD)
            .u8(2)
            .get_desc(BIG)
            .get_desc(BIG)
            .get_desc(BIG)
            .add_used(&[1, 2, 3, 4])
            .op(NOTIFY),
    );
    // EVENT_IDX: avail_event on enable, used_event deciding notify.
    add(
        "event-idx",
        Seed::new(3, 1, 0, 0, 0)
            .image(
                &[(0, d(0, 0x100, 8, 0, 0)), (1, d(0, 0x200, 8, 0, 0))],
                &[],
                &[],
            )
            .op(DISABLE_NOTIFY)
            .publish(&[0, 1])
            .get_desc(BIG)
            .add_used(&[0])
            .op(NOTIFY)
            .set_u16(1, 5)
            .get_desc(BIG)
            .add_used(&[0])
            .op(NOTIFY)
            .op(ENABLE_NOTIFY)
            .op(HAS_AVAIL),
    );
    // EVENT_IDX, and the used index wrapping past signalled_used between two notify()
    // calls: 65535 elements at once, so the next notify() must signal whatever used_event.
    add(
        "used-wrap",
        Seed::new(2, 1, 0, 0, 0)
            .image(&[(0, d(0, 0x100, 8, 0, 0))], &[], &[])
            .publish(&[0])
            .get_desc(BIG)
            .add_used(&[1])
            .op(NOTIFY)
            .op(ADD_USED_RAW)
            .u8(1)
            .u32(0)
            .u32(0)
            .op(ADD_USED_RAW)
            .u8(0xff)
            .u16(0xffff)
            .u32(0)
            .u32(0)
            .op(NOTIFY),
    );
    // NOTIFY_ON_EMPTY and NO_INTERRUPT.
    add(
        "notify-flags",
        Seed::new(1, 2, 0, 0, 0)
            .image(&[(0, d(0, 0x100, 8, 0, 0))], &[], &[])
            .set_u16(0, 1)
            .publish(&[0])
            .op(NOTIFY)
            .get_desc(BIG)
            .add_used(&[0])
            .op(NOTIFY),
    );
    // The guest moves the avail index more than num ahead: first while we look, then
    // while notifications are off (the enable_notify() finding).
    add(
        "avail-idx-jump",
        Seed::new(2, 0, 0, 0, 0)
            .image(&[(0, d(0, 0x100, 8, 0, 0))], &[], &[])
            .set_avail_idx(5)
            .op(GET_AVAIL_IDX)
            .get_desc(BIG)
            .op(DISABLE_NOTIFY)
            .op(ENABLE_NOTIFY)
            .get_desc(BIG),
    );
    // The used ring on a page the host may not write.
    add(
        "used-readonly",
        Seed::new(2, 4, 0, 0, 1)
            .image(&[(0, d(0, 0x100, 8, 0, 0))], &[], &[])
            .publish(&[0])
            .get_desc(BIG)
            .add_used(&[0])
            .op(DISABLE_NOTIFY)
            .op(UPDATE_USED_FLAGS),
    );
    // Faults injected into each access of a chain walk and a used-ring update.
    let mut s = Seed::new(3, 5, 0, 0, 0);
    s.image(&chain3, &[], &[]).publish(&[3, 3]);
    for k in 1..=5 {
        s.op(FAULT).u8(k - 1).get_desc(BIG);
    }
    s.get_desc(BIG).op(FAULT).u8(0).add_used(&[1]);
    s.op(FAULT).u8(1).op(ADD_USED_RAW).u8(1).u32(7).u32(8);
    add("faults", &mut s);
    // A large ring, and a ring of one.
    add(
        "num-256",
        Seed::new(8, 1, 0x1234, 0x4321, 0)
            .image(&[(255, d(1, 0x40, 0x100, WRITE, 0))], &[], &[])
            .publish(&[255])
            .get_desc(BIG)
            .add_used(&[0x100])
            .op(NOTIFY),
    );
    add(
        "num-1",
        Seed::new(0, 0, 0, 0, 0)
            .image(&[(0, d(0, 0x100, 8, NEXT, 0))], &[], &[])
            .publish(&[0])
            .get_desc(BIG)
            .op(GUEST_DESC)
            .u16(0)
            .desc(d(0, 0x100, 8, 0, 0))
            .get_desc(BIG),
    );
    // Raw guest bytes over the avail ring and a descriptor.
    add(
        "poke",
        Seed::new(2, 0, 0, 0, 0)
            .image(&[], &[], &[])
            .op(POKE)
            .u16(0x40)
            .u8(6)
            .u16(0)
            .u16(1)
            .u16(0)
            .op(POKE)
            .u16(0)
            .u8(14)
            .u64(0x100)
            .u32(16)
            .u16(0)
            .get_desc(BIG),
    );
    v
}

fn main() {
    let dir = env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/ring"));
    fs::create_dir_all(&dir).unwrap();
    let all = seeds();
    for (name, bytes) in &all {
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
    println!("{} seeds in {}", all.len(), dir.display());
}
