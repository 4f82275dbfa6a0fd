#!/usr/bin/env bash
# Builds the test kernel (about 15 minutes on 2 cores), or reuses the cached build.
# Usage: kernel.sh [build|dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

out=$(kernel_build_dir)
if [ "${1:-build}" = dir ]; then
	echo "$out"
	exit 0
fi
if [ -f "$out/.vhost-rs-built" ]; then
	exit 0
fi
src=$(kernel_src)
[ -n "$src" ] && [ -f "$src/Makefile" ] || die "no kernel source; run 'make setup' first"
export RUST_LIB_SRC
RUST_LIB_SRC=$(rust_lib_src)
[ -d "$RUST_LIB_SRC/core" ] || die "no Rust library source at $RUST_LIB_SRC; run 'make setup'"

mkdir -p "$out"
step "configuring the test kernel in $out"
(cd "$src" && virtme-configkernel --defconfig --custom "$here/kernel.config" O="$out" LLVM=1 >"$out/.config.log" 2>&1) ||
	{ tail -20 "$out/.config.log"; die "kernel configuration failed"; }
# virtme-configkernel lays its own defaults over the fragment, DWARF debug info among them
# (see the "reassigning" lines in .config.log): take it off again. Without it the cold build
# is shorter, and KASAN and lockdep reports still name functions (kallsyms).
"$src/scripts/config" --file "$out/.config" -d DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT \
	-d DEBUG_INFO_DWARF4 -d DEBUG_INFO_DWARF5 -e DEBUG_INFO_NONE
make -s -C "$src" O="$out" LLVM=1 olddefconfig >>"$out/.config.log" 2>&1
grep -q '^CONFIG_DEBUG_INFO=y' "$out/.config" && die "CONFIG_DEBUG_INFO is still on (see $out/.config.log)"
# The fragment is only a wish: Kconfig drops what it cannot satisfy. Check what matters.
for opt in CONFIG_RUST CONFIG_TUN CONFIG_TAP CONFIG_MACVTAP CONFIG_VETH CONFIG_BRIDGE \
	CONFIG_KASAN CONFIG_PROVE_LOCKING CONFIG_DEBUG_ATOMIC_SLEEP CONFIG_DEBUG_KMEMLEAK \
	CONFIG_MODULE_UNLOAD CONFIG_KVM_AMD CONFIG_NET_NS CONFIG_VHOST_TASK; do
	grep -q "^$opt=y" "$out/.config" || die "$opt is not =y in the configured kernel (see $out/.config.log)"
done
grep -q '^CONFIG_VHOST_NET=m' "$out/.config" || die "CONFIG_VHOST_NET is not =m"

step "building the kernel (about 15 minutes on 2 cores; log in $out/build.log)"
start=$(date +%s)
jobs=$(($(nproc) + 1))
make -C "$src" O="$out" LLVM=1 -j"$jobs" bzImage modules headers >"$out/build.log" 2>&1 &
pid=$!
while kill -0 $pid 2>/dev/null; do
	sleep 30
	kill -0 $pid 2>/dev/null && step "  still building: $(($(date +%s) - start)) s elapsed"
done
if ! wait $pid; then
	grep -E 'error|Error' "$out/build.log" | head -20 >&2
	die "kernel build failed (log: $out/build.log)"
fi
touch "$out/.vhost-rs-built"
step "kernel built in $(($(date +%s) - start)) s"
