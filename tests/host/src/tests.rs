use crate::{ring, uapi};

mod expected {
    include!(concat!(env!("OUT_DIR"), "/expected.rs"));
}

/// The value of a uapi.rs constant by name, as i64 (the list is build.rs's NAMES).
fn ours(name: &str) -> Option<i64> {
    macro_rules! table {
        ($($n:ident),* $(,)?) => {
            match name { $(stringify!($n) => Some(uapi::$n as i64),)* _ => None }
        };
    }
    table!(
        VHOST_VIRTIO,
        VHOST_FILE_UNBIND,
        VHOST_GET_FEATURES,
        VHOST_SET_FEATURES,
        VHOST_SET_OWNER,
        VHOST_RESET_OWNER,
        VHOST_SET_MEM_TABLE,
        VHOST_SET_LOG_BASE,
        VHOST_SET_LOG_FD,
        VHOST_NEW_WORKER,
        VHOST_FREE_WORKER,
        VHOST_SET_VRING_NUM,
        VHOST_SET_VRING_ADDR,
        VHOST_SET_VRING_BASE,
        VHOST_GET_VRING_BASE,
        VHOST_SET_VRING_ENDIAN,
        VHOST_GET_VRING_ENDIAN,
        VHOST_ATTACH_VRING_WORKER,
        VHOST_GET_VRING_WORKER,
        VHOST_SET_VRING_KICK,
        VHOST_SET_VRING_CALL,
        VHOST_SET_VRING_ERR,
        VHOST_SET_VRING_BUSYLOOP_TIMEOUT,
        VHOST_GET_VRING_BUSYLOOP_TIMEOUT,
        VHOST_SET_BACKEND_FEATURES,
        VHOST_GET_BACKEND_FEATURES,
        VHOST_NET_SET_BACKEND,
        VHOST_GET_FEATURES_ARRAY,
        VHOST_SET_FEATURES_ARRAY,
        VHOST_SET_FORK_FROM_OWNER,
        VHOST_GET_FORK_FROM_OWNER,
        VHOST_VRING_F_LOG,
        VHOST_VRING_LITTLE_ENDIAN,
        VHOST_VRING_BIG_ENDIAN,
        VHOST_FORK_OWNER_KTHREAD,
        VHOST_FORK_OWNER_TASK,
        VHOST_F_LOG_ALL,
        VHOST_NET_F_VIRTIO_NET_HDR,
        VHOST_BACKEND_F_IOTLB_MSG_V2,
        VIRTIO_F_NOTIFY_ON_EMPTY,
        VIRTIO_F_ANY_LAYOUT,
        VIRTIO_RING_F_INDIRECT_DESC,
        VIRTIO_RING_F_EVENT_IDX,
        VIRTIO_F_VERSION_1,
        VIRTIO_F_ACCESS_PLATFORM,
        VIRTIO_F_RING_PACKED,
        VIRTIO_F_IN_ORDER,
        VIRTIO_F_RING_RESET,
        VIRTIO_NET_F_MRG_RXBUF,
        VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO,
        VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO,
    )
}

#[test]
fn uapi_numbers_match_kernel_header() {
    let mut bad = Vec::new();
    for (name, want) in expected::EXPECTED {
        match ours(name) {
            Some(v) if v == *want => {}
            got => bad.push(format!("{name}: header {want:#x}, uapi.rs {got:x?}")),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(expected::EXPECTED.len() >= 49);
}

#[test]
fn uapi_struct_sizes_match_kernel_header() {
    for (name, want) in expected::SIZES {
        let ours = match *name {
            "VRING_STATE_SIZE" => uapi::VRING_STATE_SIZE,
            "VRING_FILE_SIZE" => uapi::VRING_FILE_SIZE,
            "VRING_ADDR_SIZE" => uapi::VRING_ADDR_SIZE,
            "MEMORY_HDR_SIZE" => uapi::MEMORY_HDR_SIZE,
            "MEMORY_REGION_SIZE" => uapi::MEMORY_REGION_SIZE,
            "WORKER_STATE_SIZE" => uapi::WORKER_STATE_SIZE,
            "VRING_WORKER_SIZE" => uapi::VRING_WORKER_SIZE,
            other => panic!("unknown size {other}"),
        };
        assert_eq!(ours, *want, "{name}");
    }
}

#[test]
fn uapi_struct_layouts_match_kernel_header() {
    let a = uapi::VringAddr::from_bytes(expected::VRING_ADDR.try_into().unwrap());
    assert_eq!(
        a,
        uapi::VringAddr {
            index: 1,
            flags: 2,
            desc_user_addr: 3,
            used_user_addr: 4,
            avail_user_addr: 5,
            log_guest_addr: 6
        }
    );
    let s = uapi::VringState::from_bytes(expected::VRING_STATE.try_into().unwrap());
    assert_eq!(s, uapi::VringState { index: 7, num: 8 });
    assert_eq!(&s.to_bytes()[..], expected::VRING_STATE);
    let f = uapi::VringFile::from_bytes(expected::VRING_FILE.try_into().unwrap());
    assert_eq!(f, uapi::VringFile { index: 9, fd: -1 });
    let m = uapi::MemoryHdr::from_bytes(expected::MEMORY_HDR.try_into().unwrap());
    assert_eq!(
        m,
        uapi::MemoryHdr {
            nregions: 10,
            padding: 11
        }
    );
    let r = uapi::MemoryRegion::from_bytes(expected::MEMORY_REGION);
    assert_eq!(
        r,
        uapi::MemoryRegion {
            guest_phys_addr: 12,
            memory_size: 13,
            userspace_addr: 14,
            flags_padding: 15
        }
    );
}

#[test]
fn features_are_tested_by_bit_and_word() {
    let f: uapi::Features = [1 << 15, 1]; // bits 15 and 64
    assert!(uapi::has_feature(&f, 15));
    assert!(!uapi::has_feature(&f, 16));
    assert!(uapi::has_feature(&f, 64));
    assert!(
        !uapi::has_feature(&f, 200),
        "bits past the array are never set"
    );
}

#[test]
fn ring_num_accepts_powers_of_two_up_to_0xffff() {
    assert!(!ring::valid_num(0));
    assert!(ring::valid_num(1));
    assert!(ring::valid_num(256));
    assert!(ring::valid_num(32768));
    assert!(!ring::valid_num(3));
    assert!(!ring::valid_num(65536), "0x10000 is past 0xffff");
    assert!(!ring::valid_num(u32::MAX));
    let accepted = (0..=0x20000u32).filter(|&n| ring::valid_num(n)).count();
    assert_eq!(accepted, 16, "1, 2, 4, ... 32768");
}

#[test]
fn ring_sizes_follow_the_spec_layout() {
    // virtio 1.x 2.7: desc 16*num; avail 6+2*num with used_event; used 6+8*num with avail_event.
    assert_eq!(ring::desc_size(256), 4096);
    assert_eq!(ring::avail_size(256, false), 4 + 512);
    assert_eq!(ring::avail_size(256, true), 6 + 512);
    assert_eq!(ring::used_size(256, false), 4 + 2048);
    assert_eq!(ring::used_size(256, true), 6 + 2048);
    assert_eq!(ring::used_size(0xffff, true), 6 + 8 * 0xffff);
}

#[test]
fn packed_ring_layout_matches_kernel_header() {
    use ring::packed::*;
    for (name, want) in expected::PACKED {
        let ours = match *name {
            "VRING_PACKED_DESC_F_AVAIL" => i64::from(VIRTQ_DESC_F_AVAIL.trailing_zeros()),
            "VRING_PACKED_DESC_F_USED" => i64::from(VIRTQ_DESC_F_USED.trailing_zeros()),
            "VRING_PACKED_EVENT_FLAG_ENABLE" => RING_EVENT_FLAGS_ENABLE.into(),
            "VRING_PACKED_EVENT_FLAG_DISABLE" => RING_EVENT_FLAGS_DISABLE.into(),
            "VRING_PACKED_EVENT_FLAG_DESC" => RING_EVENT_FLAGS_DESC.into(),
            "VRING_PACKED_EVENT_F_WRAP_CTR" => VRING_PACKED_EVENT_F_WRAP_CTR.into(),
            "DESC_SIZE" => ring::DESC_SIZE as i64,
            "DESC_LEN_OFFSET" => DESC_LEN_OFFSET as i64,
            "DESC_ID_OFFSET" => DESC_ID_OFFSET as i64,
            "DESC_FLAGS_OFFSET" => DESC_FLAGS_OFFSET as i64,
            "EVENT_SIZE" => EVENT_SIZE as i64,
            "EVENT_OFF_WRAP_OFFSET" => EVENT_OFF_WRAP_OFFSET as i64,
            "EVENT_FLAGS_OFFSET" => EVENT_FLAGS_OFFSET as i64,
            other => panic!("unknown name {other}"),
        };
        assert_eq!(ours, *want, "{name}");
    }
    assert_eq!(expected::PACKED.len(), 13);
}
