#!/usr/bin/env bash
# What `make check-qemu` runs: QEMU end-to-end variants (virtio-net options, multiqueue, guest
# reboot, QEMU killed mid-stream, ...), each a separate real QEMU guest (L2) under nested KVM in
# the test VM, over /dev/vhost-rs-net and over the C /dev/vhost-net. Prints KTAP.
#
# Steps as scripts/demo.sh: setup, test kernel and module (all cached, idempotent), the L2
# kernel and initramfs, then ONE test VM running tests/qemu/variants.sh.
# Exits non-zero if any case failed. Nothing leaves the VM.
#
# Environment: VHOST_RS_QEMU_MIB (payload per variant, default 2), VHOST_RS_QEMU_TIMEOUT
# (seconds per L2 guest, default 900), VHOST_RS_QEMU_BOOT_TIMEOUT (default 300),
# VHOST_RS_QEMU_ONLY (variant names to run), VHOST_RS_QEMU_DEVS, VHOST_RS_VM_MEM (default 3G),
# VHOST_RS_VM_TIMEOUT (the whole VM, default 5400), VHOST_RS_QEMU_DEADLINE (epoch seconds after
# which no case starts; default 3 minutes before that timeout), and vm.sh's own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
cd "$repo"
t0=$(date +%s)

prepare_nested
export VHOST_RS_VM_TIMEOUT=${VHOST_RS_VM_TIMEOUT:-5400}
# Cases stop starting in time for the VM to unload the module, check its log and print the
# totals (about 2 minutes under TCG) before vm.sh kills it.
export VHOST_RS_QEMU_DEADLINE=${VHOST_RS_QEMU_DEADLINE:-$(($(date +%s) + VHOST_RS_VM_TIMEOUT - 180))}
step "booting the test VM (L1, TCG + nested SVM); one L2 guest per variant and device follows"
rc=0
out=$(mktemp)
"$here/vm.sh" tests/qemu/variants.sh | tee "$out" || rc=$?
# The last line, as make check's: `N passed, M failed` (`, K skipped`), from the KTAP totals;
# a VM that printed none counts as one failure.
totals=$(grep -E '^# Totals: ' "$out" | tail -1)
rm -f "$out"
step "make check-qemu: done in $(($(date +%s) - t0)) s, status $rc"
if [ -z "$totals" ]; then
	echo "check-qemu: FAILED: the VM printed no KTAP totals (exit $rc)"
	echo "0 passed, 1 failed"
	exit 1
fi
n() { sed -n "s/.* $1:\([0-9]*\).*/\1/p" <<<"$totals"; }
pass=$(n pass) fail=$(n fail) skip=$(n skip)
[ "$rc" = 0 ] || [ "$fail" != 0 ] || fail=1
line="$pass passed, $fail failed"
[ "$skip" = 0 ] || line+=", $skip skipped"
echo "$line"
[ "$fail" = 0 ] && [ "$rc" = 0 ]
