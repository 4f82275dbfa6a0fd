// SPDX-License-Identifier: GPL-2.0

//! The vhost / vhost-net userspace ABI of Linux 7.3 (`include/uapi/linux/vhost.h`,
//! `vhost_types.h`): ioctl numbers, feature bits and the structs' byte layouts.
//!
//! Pure Rust without kernel dependencies, so the host test crate under `tests/host` compiles
//! this same file and pins every number and size against the kernel's own header. Structs are
//! decoded from and encoded to byte arrays (native endianness, as the C structs are), which
//! keeps user copies to one `copy_{from,to}_user` each, exactly as vhost.c does, and needs no
//! `unsafe` (no `FromBytes`/`AsBytes` impls on our own types).

#![allow(dead_code)]

/// `_IOC_*` encoding from `include/uapi/asm-generic/ioctl.h` (x86 uses the generic one).
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;
const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << IOC_DIRSHIFT)
        | (VHOST_VIRTIO << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
}
const fn io(nr: u32) -> u32 {
    ioc(IOC_NONE, nr, 0)
}
const fn ior(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ, nr, size)
}
const fn iow(nr: u32, size: usize) -> u32 {
    ioc(IOC_WRITE, nr, size)
}
const fn iowr(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, nr, size)
}

pub(crate) const VHOST_VIRTIO: u32 = 0xAF;
pub(crate) const VHOST_FILE_UNBIND: i32 = -1;

/// Sizes of the uapi structs, in bytes.
pub(crate) const VRING_STATE_SIZE: usize = 8;
pub(crate) const VRING_FILE_SIZE: usize = 8;
pub(crate) const VRING_ADDR_SIZE: usize = 40;
pub(crate) const MEMORY_HDR_SIZE: usize = 8;
pub(crate) const MEMORY_REGION_SIZE: usize = 32;
pub(crate) const WORKER_STATE_SIZE: usize = 4;
pub(crate) const VRING_WORKER_SIZE: usize = 8;

pub(crate) const VHOST_GET_FEATURES: u32 = ior(0x00, 8);
pub(crate) const VHOST_SET_FEATURES: u32 = iow(0x00, 8);
pub(crate) const VHOST_SET_OWNER: u32 = io(0x01);
pub(crate) const VHOST_RESET_OWNER: u32 = io(0x02);
pub(crate) const VHOST_SET_MEM_TABLE: u32 = iow(0x03, MEMORY_HDR_SIZE);
pub(crate) const VHOST_SET_LOG_BASE: u32 = iow(0x04, 8);
pub(crate) const VHOST_SET_LOG_FD: u32 = iow(0x07, 4);
pub(crate) const VHOST_NEW_WORKER: u32 = ior(0x08, WORKER_STATE_SIZE);
pub(crate) const VHOST_FREE_WORKER: u32 = iow(0x09, WORKER_STATE_SIZE);
pub(crate) const VHOST_SET_VRING_NUM: u32 = iow(0x10, VRING_STATE_SIZE);
pub(crate) const VHOST_SET_VRING_ADDR: u32 = iow(0x11, VRING_ADDR_SIZE);
pub(crate) const VHOST_SET_VRING_BASE: u32 = iow(0x12, VRING_STATE_SIZE);
pub(crate) const VHOST_GET_VRING_BASE: u32 = iowr(0x12, VRING_STATE_SIZE);
pub(crate) const VHOST_SET_VRING_ENDIAN: u32 = iow(0x13, VRING_STATE_SIZE);
pub(crate) const VHOST_GET_VRING_ENDIAN: u32 = iow(0x14, VRING_STATE_SIZE);
pub(crate) const VHOST_ATTACH_VRING_WORKER: u32 = iow(0x15, VRING_WORKER_SIZE);
pub(crate) const VHOST_GET_VRING_WORKER: u32 = iowr(0x16, VRING_WORKER_SIZE);
pub(crate) const VHOST_SET_VRING_KICK: u32 = iow(0x20, VRING_FILE_SIZE);
pub(crate) const VHOST_SET_VRING_CALL: u32 = iow(0x21, VRING_FILE_SIZE);
pub(crate) const VHOST_SET_VRING_ERR: u32 = iow(0x22, VRING_FILE_SIZE);
pub(crate) const VHOST_SET_VRING_BUSYLOOP_TIMEOUT: u32 = iow(0x23, VRING_STATE_SIZE);
pub(crate) const VHOST_GET_VRING_BUSYLOOP_TIMEOUT: u32 = iow(0x24, VRING_STATE_SIZE);
pub(crate) const VHOST_SET_BACKEND_FEATURES: u32 = iow(0x25, 8);
pub(crate) const VHOST_GET_BACKEND_FEATURES: u32 = ior(0x26, 8);
pub(crate) const VHOST_NET_SET_BACKEND: u32 = iow(0x30, VRING_FILE_SIZE);
pub(crate) const VHOST_GET_FEATURES_ARRAY: u32 = ior(0x83, 8);
pub(crate) const VHOST_SET_FEATURES_ARRAY: u32 = iow(0x83, 8);
pub(crate) const VHOST_SET_FORK_FROM_OWNER: u32 = iow(0x84, 1);
pub(crate) const VHOST_GET_FORK_FROM_OWNER: u32 = ior(0x85, 1);

pub(crate) const VHOST_VRING_F_LOG: u32 = 0;
pub(crate) const VHOST_VRING_LITTLE_ENDIAN: u32 = 0;
pub(crate) const VHOST_VRING_BIG_ENDIAN: u32 = 1;
pub(crate) const VHOST_FORK_OWNER_KTHREAD: u8 = 0;
pub(crate) const VHOST_FORK_OWNER_TASK: u8 = 1;

/// Feature bits (virtio spec 6, "Reserved Feature Bits", and vhost_types.h).
pub(crate) const VIRTIO_F_NOTIFY_ON_EMPTY: u32 = 24;
pub(crate) const VIRTIO_F_ANY_LAYOUT: u32 = 27;
pub(crate) const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
pub(crate) const VIRTIO_RING_F_EVENT_IDX: u32 = 29;
pub(crate) const VIRTIO_F_VERSION_1: u32 = 32;
pub(crate) const VIRTIO_F_ACCESS_PLATFORM: u32 = 33;
pub(crate) const VIRTIO_F_RING_PACKED: u32 = 34;
pub(crate) const VIRTIO_F_IN_ORDER: u32 = 35;
pub(crate) const VIRTIO_F_RING_RESET: u32 = 40;
pub(crate) const VIRTIO_NET_F_MRG_RXBUF: u32 = 15;
pub(crate) const VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO: u32 = 65;
pub(crate) const VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO: u32 = 67;
pub(crate) const VHOST_F_LOG_ALL: u32 = 26;
pub(crate) const VHOST_NET_F_VIRTIO_NET_HDR: u32 = 27;
pub(crate) const VHOST_BACKEND_F_IOTLB_MSG_V2: u32 = 1;

/// Device IOTLB messages, read from and written to the device file (vhost_types.h):
/// `struct vhost_msg { int type; union { struct vhost_iotlb_msg iotlb; u8 padding[64]; }; }`
/// and `struct vhost_msg_v2 { u32 type; u32 asid; union {...}; }`, both 72 bytes with the
/// `struct vhost_iotlb_msg` at byte 8.
pub(crate) const VHOST_IOTLB_MSG: u32 = 1;
pub(crate) const VHOST_IOTLB_MSG_V2: u32 = 2;
pub(crate) const VHOST_MSG_SIZE: usize = 72;
pub(crate) const IOTLB_MSG_OFFSET: usize = 8;
pub(crate) const IOTLB_MSG_SIZE: usize = 32;
pub(crate) const VHOST_IOTLB_MISS: u8 = 1;
pub(crate) const VHOST_IOTLB_UPDATE: u8 = 2;
pub(crate) const VHOST_IOTLB_INVALIDATE: u8 = 3;

/// `struct vhost_iotlb_msg { u64 iova, size, uaddr; u8 perm, type; }` (32 bytes).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IotlbMsg {
    pub(crate) iova: u64,
    pub(crate) size: u64,
    pub(crate) uaddr: u64,
    pub(crate) perm: u8,
    pub(crate) kind: u8,
}

impl IotlbMsg {
    pub(crate) fn from_bytes(b: &[u8; IOTLB_MSG_SIZE]) -> Self {
        Self {
            iova: u64_at(b, 0),
            size: u64_at(b, 8),
            uaddr: u64_at(b, 16),
            perm: b[24],
            kind: b[25],
        }
    }

    /// The whole `struct vhost_msg` (`VHOST_IOTLB_MSG`) or `vhost_msg_v2` carrying it,
    /// zero-padded.
    pub(crate) fn to_msg(self, msg_type: u32) -> [u8; VHOST_MSG_SIZE] {
        let mut b = [0u8; VHOST_MSG_SIZE];
        b[0..4].copy_from_slice(&msg_type.to_ne_bytes());
        let m = &mut b[IOTLB_MSG_OFFSET..];
        m[0..8].copy_from_slice(&self.iova.to_ne_bytes());
        m[8..16].copy_from_slice(&self.size.to_ne_bytes());
        m[16..24].copy_from_slice(&self.uaddr.to_ne_bytes());
        m[24] = self.perm;
        m[25] = self.kind;
        b
    }
}

/// `VIRTIO_FEATURES_U64S`: the feature array the `*_FEATURES_ARRAY` ioctls exchange.
pub(crate) const FEATURES_U64S: usize = 2;

/// A 128-bit feature set, as `u64 features[VIRTIO_FEATURES_U64S]` in the kernel.
pub(crate) type Features = [u64; FEATURES_U64S];

/// Whether `bit` is set in `f`.
pub(crate) const fn has_feature(f: &Features, bit: u32) -> bool {
    let word = (bit / 64) as usize;
    word < FEATURES_U64S && f[word] & (1u64 << (bit % 64)) != 0
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(w)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(w)
}

/// `struct vhost_vring_state { unsigned int index, num; }`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VringState {
    pub(crate) index: u32,
    pub(crate) num: u32,
}

impl VringState {
    pub(crate) fn from_bytes(b: &[u8; VRING_STATE_SIZE]) -> Self {
        Self {
            index: u32_at(b, 0),
            num: u32_at(b, 4),
        }
    }
    pub(crate) fn to_bytes(self) -> [u8; VRING_STATE_SIZE] {
        let mut b = [0u8; VRING_STATE_SIZE];
        b[0..4].copy_from_slice(&self.index.to_ne_bytes());
        b[4..8].copy_from_slice(&self.num.to_ne_bytes());
        b
    }
}

/// `struct vhost_vring_file { unsigned int index; int fd; }`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VringFile {
    pub(crate) index: u32,
    pub(crate) fd: i32,
}

impl VringFile {
    pub(crate) fn from_bytes(b: &[u8; VRING_FILE_SIZE]) -> Self {
        Self {
            index: u32_at(b, 0),
            fd: u32_at(b, 4) as i32,
        }
    }
}

/// `struct vhost_vring_addr`: ring addresses are the VMM's virtual addresses; the log
/// address is a guest physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VringAddr {
    pub(crate) index: u32,
    pub(crate) flags: u32,
    pub(crate) desc_user_addr: u64,
    pub(crate) used_user_addr: u64,
    pub(crate) avail_user_addr: u64,
    pub(crate) log_guest_addr: u64,
}

impl VringAddr {
    pub(crate) fn from_bytes(b: &[u8; VRING_ADDR_SIZE]) -> Self {
        Self {
            index: u32_at(b, 0),
            flags: u32_at(b, 4),
            desc_user_addr: u64_at(b, 8),
            used_user_addr: u64_at(b, 16),
            avail_user_addr: u64_at(b, 24),
            log_guest_addr: u64_at(b, 32),
        }
    }
}

/// `struct vhost_memory { __u32 nregions; __u32 padding; struct vhost_memory_region regions[]; }`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemoryHdr {
    pub(crate) nregions: u32,
    pub(crate) padding: u32,
}

impl MemoryHdr {
    pub(crate) fn from_bytes(b: &[u8; MEMORY_HDR_SIZE]) -> Self {
        Self {
            nregions: u32_at(b, 0),
            padding: u32_at(b, 4),
        }
    }
}

/// `struct vhost_memory_region`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemoryRegion {
    pub(crate) guest_phys_addr: u64,
    pub(crate) memory_size: u64,
    pub(crate) userspace_addr: u64,
    pub(crate) flags_padding: u64,
}

impl MemoryRegion {
    pub(crate) fn from_bytes(b: &[u8]) -> Self {
        Self {
            guest_phys_addr: u64_at(b, 0),
            memory_size: u64_at(b, 8),
            userspace_addr: u64_at(b, 16),
            flags_padding: u64_at(b, 24),
        }
    }
}
