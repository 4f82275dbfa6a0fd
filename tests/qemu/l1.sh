#!/usr/bin/env bash
# The demo's part inside the test VM (L1), as root from the repo root; scripts/demo.sh runs it
# with scripts/vm.sh and nested-KVM options. For each backend, ours (/dev/vhost-rs-net) and
# then the C reference (/dev/vhost-net), in this same VM: boot a real QEMU guest (L2) whose
# virtio-net is served by that backend, ping, move a payload both ways, check the checksums
# (tests/qemu/l2_run.py does one guest). Then unload our module, check the kernel log of each
# stage for BUG/WARNING/KASAN/lockdep reports, and print the summary.
# Exits 1 if anything failed over our device or our module's stages of the kernel log are
# not clean; a failure of the reference alone is reported, not fatal.
#
# Environment: VHOST_RS_L2_KERNEL, VHOST_RS_L2_INITRD (from scripts/l2.sh; required),
# VHOST_RS_DEMO_MIB (payload size, default 8), VHOST_RS_DEMO_TIMEOUT (seconds per guest,
# default 1200), VHOST_RS_DEMO_BOOT_TIMEOUT (seconds for L2 to reach its /init before the boot
# counts as a nested-KVM hang and is retried once, default 300).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"

kernel=${VHOST_RS_L2_KERNEL:?VHOST_RS_L2_KERNEL not set (see scripts/l2.sh)}
initrd=${VHOST_RS_L2_INITRD:?VHOST_RS_L2_INITRD not set (see scripts/l2.sh)}
mib=${VHOST_RS_DEMO_MIB:-8}
tmo=${VHOST_RS_DEMO_TIMEOUT:-1200}
boot_tmo=${VHOST_RS_DEMO_BOOT_TIMEOUT:-300}
logs=.vm-logs/demo
rm -rf "$logs"
mkdir -p "$logs"
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fatal() {
	say "demo: FAILED: $*"
	exit 1
}

# --- the kernel log, split into stages by markers --------------------------------------------
dmesg -w >"$logs/dmesg.all" 2>/dev/null &
dmesg_pid=$!
# kmemleak's own scans would land in the log at random times: stop them (not judged here).
[ -e /sys/kernel/debug/kmemleak ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
echo scan=off >/sys/kernel/debug/kmemleak 2>/dev/null || true
stage() { echo "vhost-rs-demo-stage $1 $$" >/dev/kmsg; }

stage load
say "L1: $(uname -r), $(nproc) CPUs; loading vhost-rs.ko and vhost_net"
[ -f vhost-rs.ko ] || fatal "no vhost-rs.ko (run make)"
insmod ./vhost-rs.ko || fatal "insmod vhost-rs.ko failed"
modprobe vhost_net || fatal "modprobe vhost_net failed"
for i in $(seq 50); do
	[ -c /dev/vhost-rs-net ] && [ -c /dev/vhost-net ] && break
	sleep 0.1
done
[ -c /dev/vhost-rs-net ] || fatal "no /dev/vhost-rs-net after insmod"
[ -c /dev/vhost-net ] || fatal "no /dev/vhost-net after modprobe vhost_net"
[ -c /dev/kvm ] || fatal "no /dev/kvm in L1 (nested KVM needs -cpu qemu64,+svm,+npt,+nrip-save)"
[ -f "$kernel" ] && [ -f "$initrd" ] || fatal "no L2 kernel $kernel or initramfs $initrd"
say "L1: /dev/kvm, /dev/vhost-rs-net and /dev/vhost-net are there"

head -c "${mib}M" /dev/urandom >"$logs/payload" || fatal "cannot write the payload"
say "payload: $mib MiB from /dev/urandom (the same for both backends)"
# The system's python: a pyenv or similar shim first in PATH costs half a minute under TCG.
py=/usr/bin/python3
[ -x $py ] || py=python3
# One KVM VM held for the whole run, so that L2 QEMUs coming and going never flip KVM's static
# keys (text patching with int3, which TCG sometimes gets wrong on the other vCPU: see
# cmd_hold_kvm in tests/qemu/l2_run.py).
if [ -c /dev/kvm ]; then
	"$py" tests/qemu/l2_run.py hold-kvm &
	hold_pid=$!
	trap 'kill $hold_pid 2>/dev/null' EXIT
fi

# Warm the page cache: the first QEMU otherwise reads its binary, libraries, firmware and the L2
# kernel through 9p under TCG, which cost the first backend's boot ~35 s more than the second's.
say "warming the cache (QEMU, its firmware, the L2 kernel and initramfs)"
qemu-system-x86_64 --version >/dev/null 2>&1
# Only what this guest loads: all of /usr/share/qemu took 100 s.
cat "$kernel" "$initrd" /usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin \
	/usr/share/qemu/linuxboot_dma.bin /usr/lib/ipxe/qemu/efi-virtio.rom >/dev/null 2>&1 || true
"$py" -c 'import argparse, hashlib, json, queue, socket, subprocess, threading' || true

declare -A rc
for spec in vhost-rs:/dev/vhost-rs-net vhost-net:/dev/vhost-net; do
	name=${spec%%:*} dev=${spec#*:}
	stage "run-$name"
	say "=== $name: L2 guest over $dev ==="
	"$py" tests/qemu/l2_run.py run --dev "$dev" --name "$name" --kernel "$kernel" \
		--initrd "$initrd" --payload "$logs/payload" --logdir "$logs" \
		--out "$logs/$name.json" --timeout "$tmo" --boot-timeout "$boot_tmo"
	rc[$name]=$?
done

stage unload
say "unloading vhost_rs"
unload_rc=0
rmmod vhost_rs || { unload_rc=1; say "rmmod vhost_rs failed"; }
grep -q '^vhost_rs ' /proc/modules && unload_rc=1
sleep 1
kill $dmesg_pid 2>/dev/null
wait $dmesg_pid 2>/dev/null
rm -f "$logs/payload"

# --- the kernel log, per stage ---------------------------------------------------------------
bad='BUG:|WARNING:|KASAN|lockdep|possible recursive|circular locking|Oops|general protection|refcount_t|UBSAN|list_add corruption|sleeping function called from invalid context|hung_task|blocked for more than|soft lockup'
# Lines from one stage marker up to the next.
segment() {
	awk -v s="vhost-rs-demo-stage $1 $$" '
		index($0, "vhost-rs-demo-stage ") { on = index($0, s) > 0; next }
		on' "$logs/dmesg.all"
}
dmesg_ours=ok
declare -A dmesg_state
for st in load run-vhost-rs run-vhost-net unload; do
	segment "$st" >"$logs/dmesg.$st.log"
	if ! grep -q "vhost-rs-demo-stage $st $$" "$logs/dmesg.all"; then
		dmesg_state[$st]="marker missing"
		[ "$st" = run-vhost-net ] || dmesg_ours=bad
	elif grep -qE "$bad" "$logs/dmesg.$st.log"; then
		dmesg_state[$st]="$(grep -cE "$bad" "$logs/dmesg.$st.log") bad lines"
		[ "$st" = run-vhost-net ] || dmesg_ours=bad
	else
		dmesg_state[$st]=clean
	fi
done

"$py" tests/qemu/l2_run.py summary "$logs/vhost-rs.json" "$logs/vhost-net.json"
echo "L1 kernel log: load ${dmesg_state[load]}, vhost-rs run ${dmesg_state[run-vhost-rs]}," \
	"vhost-net run ${dmesg_state[run-vhost-net]}, unload ${dmesg_state[unload]}" \
	"(BUG/WARNING/KASAN/lockdep...; $logs/dmesg.*.log)"
for st in load run-vhost-rs run-vhost-net unload; do
	if [ "${dmesg_state[$st]}" != clean ]; then
		echo "---- L1 kernel log, stage $st (first 60 lines of $logs/dmesg.$st.log) ----"
		head -60 "$logs/dmesg.$st.log"
	fi
done
echo "unload of vhost_rs after the runs: $([ "$unload_rc" = 0 ] && echo ok || echo FAILED)"
echo "logs: $logs/ (L2 consoles, QEMU stderr, results as JSON, L1 kernel log)"

status=0
[ "${rc[vhost-rs]}" = 0 ] || status=1
[ "$dmesg_ours" = ok ] || status=1
[ "$unload_rc" = 0 ] || status=1
[ "${rc[vhost-net]}" = 0 ] || echo "note: the reference run over /dev/vhost-net failed (see above); not counted against vhost-rs"
if [ $status = 0 ]; then
	echo "demo: PASSED: a real QEMU guest networked through /dev/vhost-rs-net"
else
	echo "demo: FAILED over /dev/vhost-rs-net (see above)"
fi
exit $status
