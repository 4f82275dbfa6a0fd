# Shared settings for the scripts: where the cache lives and which versions we pin.
# Sourced, never run.

# The cache lives under $HOME: virtme-ng hides /var/cache inside the guest, so a kernel
# built there boots but its modules are invisible (see shared/PLATFORM.md).
VHOST_RS_CACHE=${VHOST_RS_CACHE:-$HOME/.cache/vhost-rs}
# Pinned versions; setup falls back loudly when the backports suite dropped the pin.
KERNEL_PKG_VERSION_PIN=${KERNEL_PKG_VERSION_PIN:-7.3.4-1~bpo13+1}
BINDGEN_VERSION=0.72.1
VIRTME_NG_VERSION=1.42
LLVM_BIN=/usr/lib/llvm-19/bin
# dpdk-testpmd as setup unpacks it (tests/vhost_dpdk.c); scripts/vm.sh passes VHOST_RS_* on.
export VHOST_RS_TESTPMD=${VHOST_RS_TESTPMD:-$VHOST_RS_CACHE/dpdk/testpmd}
export PATH="$LLVM_BIN:$HOME/.cargo/bin:$PATH"
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

step() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The Rust library source matching the installed rustc, as extracted by setup.
rust_lib_src() {
	local v
	v=$(rustc --version | awk '{print $2}')
	echo "$VHOST_RS_CACHE/rust-src-$v/usr/src/rustc-$v/library"
}

# The extracted kernel source tree (setup writes its path here).
kernel_src() {
	cat "$VHOST_RS_CACHE/kernel-src.path" 2>/dev/null || true
}

# The test kernel's build directory: keyed by the kernel source version, the config fragment
# and the toolchain, so a change to any of them builds afresh and nothing stale is reused.
kernel_build_dir() {
	local here ver key
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	ver=$(cat "$VHOST_RS_CACHE/kernel-src.version" 2>/dev/null || echo unknown)
	key=$({
		cat "$here/kernel.config"
		rustc --version
		"$LLVM_BIN/clang" --version 2>/dev/null | head -1
	} | sha256sum | cut -c1-12)
	echo "$VHOST_RS_CACHE/kbuild-$ver-$key"
}

# What every nested-guest run needs first (demo.sh, check-qemu.sh): setup, the test kernel,
# the module, the L2 kernel and initramfs (exported for the L1 scripts), and the L1 options
# for nested KVM. L1 runs under TCG, which emulates AMD SVM; the test kernel has kvm_amd
# built in, so L1 has /dev/kvm. `-cpu max` was tried and fails (shared/PLATFORM.md).
# Callers set their own VHOST_RS_VM_TIMEOUT.
prepare_nested() {
	local here repo l2
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	repo=$(cd "$here/.." && pwd)
	"$here/setup.sh"
	"$here/kernel.sh"
	step "building the module (make -s)"
	make -s -C "$repo"
	[ -f "$repo/vhost-rs.ko" ] || die "make left no vhost-rs.ko"
	step "L2 kernel and initramfs (scripts/l2.sh)"
	l2=$("$here/l2.sh")
	export VHOST_RS_L2_KERNEL VHOST_RS_L2_INITRD
	VHOST_RS_L2_KERNEL=$(printf '%s\n' "$l2" | sed -n 's/^kernel=//p')
	VHOST_RS_L2_INITRD=$(printf '%s\n' "$l2" | sed -n 's/^initrd=//p')
	[ -f "$VHOST_RS_L2_KERNEL" ] && [ -f "$VHOST_RS_L2_INITRD" ] ||
		die "scripts/l2.sh gave no kernel/initrd"
	export VHOST_RS_QEMU_OPTS="${VHOST_RS_QEMU_OPTS:--cpu qemu64,+svm,+npt,+nrip-save}"
	export VHOST_RS_VM_MEM=${VHOST_RS_VM_MEM:-3G}
}
