//! Generates the expected uapi values from the test kernel's own `linux/vhost.h`: a small C
//! program is written, compiled against `$KDIR/usr/include` and run, and its output becomes
//! `$OUT_DIR/expected.rs`, which the tests compare with `uapi.rs`.

use std::{env, fs, path::PathBuf, process::Command};

/// Every constant of uapi.rs that has a C counterpart of the same name.
const NAMES: &[&str] = &[
    "VHOST_VIRTIO",
    "VHOST_FILE_UNBIND",
    "VHOST_GET_FEATURES",
    "VHOST_SET_FEATURES",
    "VHOST_SET_OWNER",
    "VHOST_RESET_OWNER",
    "VHOST_SET_MEM_TABLE",
    "VHOST_SET_LOG_BASE",
    "VHOST_SET_LOG_FD",
    "VHOST_NEW_WORKER",
    "VHOST_FREE_WORKER",
    "VHOST_SET_VRING_NUM",
    "VHOST_SET_VRING_ADDR",
    "VHOST_SET_VRING_BASE",
    "VHOST_GET_VRING_BASE",
    "VHOST_SET_VRING_ENDIAN",
    "VHOST_GET_VRING_ENDIAN",
    "VHOST_ATTACH_VRING_WORKER",
    "VHOST_GET_VRING_WORKER",
    "VHOST_SET_VRING_KICK",
    "VHOST_SET_VRING_CALL",
    "VHOST_SET_VRING_ERR",
    "VHOST_SET_VRING_BUSYLOOP_TIMEOUT",
    "VHOST_GET_VRING_BUSYLOOP_TIMEOUT",
    "VHOST_SET_BACKEND_FEATURES",
    "VHOST_GET_BACKEND_FEATURES",
    "VHOST_NET_SET_BACKEND",
    "VHOST_GET_FEATURES_ARRAY",
    "VHOST_SET_FEATURES_ARRAY",
    "VHOST_SET_FORK_FROM_OWNER",
    "VHOST_GET_FORK_FROM_OWNER",
    "VHOST_VRING_F_LOG",
    "VHOST_VRING_LITTLE_ENDIAN",
    "VHOST_VRING_BIG_ENDIAN",
    "VHOST_FORK_OWNER_KTHREAD",
    "VHOST_FORK_OWNER_TASK",
    "VHOST_F_LOG_ALL",
    "VHOST_NET_F_VIRTIO_NET_HDR",
    "VHOST_BACKEND_F_IOTLB_MSG_V2",
    "VIRTIO_F_NOTIFY_ON_EMPTY",
    "VIRTIO_F_ANY_LAYOUT",
    "VIRTIO_RING_F_INDIRECT_DESC",
    "VIRTIO_RING_F_EVENT_IDX",
    "VIRTIO_F_VERSION_1",
    "VIRTIO_F_ACCESS_PLATFORM",
    "VIRTIO_F_RING_PACKED",
    "VIRTIO_F_IN_ORDER",
    "VIRTIO_F_RING_RESET",
    "VIRTIO_NET_F_MRG_RXBUF",
    "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO",
    "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO",
];

/// Struct sizes: (Rust constant, C type).
const SIZES: &[(&str, &str)] = &[
    ("VRING_STATE_SIZE", "struct vhost_vring_state"),
    ("VRING_FILE_SIZE", "struct vhost_vring_file"),
    ("VRING_ADDR_SIZE", "struct vhost_vring_addr"),
    ("MEMORY_HDR_SIZE", "struct vhost_memory"),
    ("MEMORY_REGION_SIZE", "struct vhost_memory_region"),
    ("WORKER_STATE_SIZE", "struct vhost_worker_state"),
    ("VRING_WORKER_SIZE", "struct vhost_vring_worker"),
];

/// Packed-ring constants and layout of `linux/virtio_ring.h`, for ring/packed.rs (not in
/// uapi.rs: they are the ring's, not the ioctls'), as `(name, C expression)`.
const PACKED: &[(&str, &str)] = &[
    ("VRING_PACKED_DESC_F_AVAIL", "VRING_PACKED_DESC_F_AVAIL"),
    ("VRING_PACKED_DESC_F_USED", "VRING_PACKED_DESC_F_USED"),
    (
        "VRING_PACKED_EVENT_FLAG_ENABLE",
        "VRING_PACKED_EVENT_FLAG_ENABLE",
    ),
    (
        "VRING_PACKED_EVENT_FLAG_DISABLE",
        "VRING_PACKED_EVENT_FLAG_DISABLE",
    ),
    (
        "VRING_PACKED_EVENT_FLAG_DESC",
        "VRING_PACKED_EVENT_FLAG_DESC",
    ),
    (
        "VRING_PACKED_EVENT_F_WRAP_CTR",
        "VRING_PACKED_EVENT_F_WRAP_CTR",
    ),
    ("DESC_SIZE", "sizeof(struct vring_packed_desc)"),
    (
        "DESC_LEN_OFFSET",
        "__builtin_offsetof(struct vring_packed_desc, len)",
    ),
    (
        "DESC_ID_OFFSET",
        "__builtin_offsetof(struct vring_packed_desc, id)",
    ),
    (
        "DESC_FLAGS_OFFSET",
        "__builtin_offsetof(struct vring_packed_desc, flags)",
    ),
    ("EVENT_SIZE", "sizeof(struct vring_packed_desc_event)"),
    (
        "EVENT_OFF_WRAP_OFFSET",
        "__builtin_offsetof(struct vring_packed_desc_event, off_wrap)",
    ),
    (
        "EVENT_FLAGS_OFFSET",
        "__builtin_offsetof(struct vring_packed_desc_event, flags)",
    ),
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest.join("../..").canonicalize().unwrap();
    let kdir = env::var("KDIR").unwrap_or_else(|_| {
        let out = Command::new(repo.join("scripts/kernel.sh"))
            .arg("dir")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    });
    let include = PathBuf::from(&kdir).join("usr/include");
    assert!(
        include.join("linux/vhost.h").exists(),
        "no {}/linux/vhost.h: build the test kernel (make kernel) or set KDIR",
        include.display()
    );
    println!("cargo:rerun-if-env-changed=KDIR");
    println!(
        "cargo:rerun-if-changed={}",
        include.join("linux/vhost.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        include.join("linux/vhost_types.h").display()
    );
    println!("cargo:rerun-if-changed=build.rs");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let mut c = String::from(
        "#include <stdio.h>\n#include <string.h>\n#include <linux/vhost.h>\n#include <linux/virtio_config.h>\n\
         #include <linux/virtio_ring.h>\n#include <linux/virtio_net.h>\n\
         static void bytes(const char *name, const void *p, size_t n) {\n\
           const unsigned char *b = p; printf(\"pub const %s: &[u8] = &[\", name);\n\
           for (size_t i = 0; i < n; i++) { printf(\"%u,\", b[i]); }\n printf(\"];\\n\"); }\n\
         int main(void) {\n",
    );
    c += "printf(\"pub const EXPECTED: &[(&str, i64)] = &[\\n\");\n";
    for n in NAMES {
        c += &format!("printf(\"(\\\"{n}\\\", %lld),\\n\", (long long)({n}));\n");
    }
    c += "printf(\"];\\npub const SIZES: &[(&str, usize)] = &[\\n\");\n";
    for (n, t) in SIZES {
        c += &format!("printf(\"(\\\"{n}\\\", %zu),\\n\", sizeof({t}));\n");
    }
    c += "printf(\"];\\n\");\n";
    c += "printf(\"pub const PACKED: &[(&str, i64)] = &[\\n\");\n";
    for (n, e) in PACKED {
        c += &format!("printf(\"(\\\"{n}\\\", %lld),\\n\", (long long)({e}));\n");
    }
    c += "printf(\"];\\n\");\n";
    // Byte images of structs with distinct field values, to pin field order and offsets.
    c += "{ struct vhost_vring_addr a = { .index = 1, .flags = 2, .desc_user_addr = 3, \
          .used_user_addr = 4, .avail_user_addr = 5, .log_guest_addr = 6 }; bytes(\"VRING_ADDR\", &a, sizeof a); }\n";
    c += "{ struct vhost_vring_state s = { .index = 7, .num = 8 }; bytes(\"VRING_STATE\", &s, sizeof s); }\n";
    c += "{ struct vhost_vring_file f = { .index = 9, .fd = -1 }; bytes(\"VRING_FILE\", &f, sizeof f); }\n";
    c += "{ struct vhost_memory m = { .nregions = 10, .padding = 11 }; bytes(\"MEMORY_HDR\", &m, sizeof m); }\n";
    c += "{ struct vhost_memory_region r = { .guest_phys_addr = 12, .memory_size = 13, \
          .userspace_addr = 14, .flags_padding = 15 }; bytes(\"MEMORY_REGION\", &r, sizeof r); }\n";
    c += "return 0; }\n";
    let src = out.join("uapi_expected.c");
    let bin = out.join("uapi_expected");
    fs::write(&src, c).unwrap();
    let st = Command::new("cc")
        .args(["-Wall", "-Werror", "-nostdinc", "-isystem"])
        .arg(&include)
        .args([
            "-isystem",
            "/usr/include",
            "-isystem",
            "/usr/include/x86_64-linux-gnu",
        ])
        .arg("-isystem")
        .arg(gcc_include())
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "compiling {} failed", src.display());
    let res = Command::new(&bin).output().unwrap();
    assert!(res.status.success());
    fs::write(out.join("expected.rs"), res.stdout).unwrap();
}

/// gcc's own header dir (stddef.h), which -nostdinc drops.
fn gcc_include() -> String {
    let out = Command::new("cc")
        .arg("-print-file-name=include")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
