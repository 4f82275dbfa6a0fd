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
# VHOST_RS_VM_TIMEOUT (the whole VM, default 5400), and vm.sh's own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
cd "$repo"
t0=$(date +%s)

prepare_nested
export VHOST_RS_VM_TIMEOUT=${VHOST_RS_VM_TIMEOUT:-5400}
step "booting the test VM (L1, TCG + nested SVM); one L2 guest per variant and device follows"
rc=0
"$here/vm.sh" tests/qemu/variants.sh || rc=$?
step "make check-qemu: done in $(($(date +%s) - t0)) s, status $rc"
exit $rc
