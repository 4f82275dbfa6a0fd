#!/usr/bin/env bash
# What `make demo` runs: a real QEMU guest networks through /dev/vhost-rs-net, and through
# the C /dev/vhost-net for comparison, in the same test VM.
#
#   host ── scripts/vm.sh ──> L1: the test kernel under TCG with emulated AMD SVM, so that
#                                 it has /dev/kvm; vhost-rs.ko and vhost_net.ko loaded
#                             └─> L2: Debian's 6.1 kernel + busybox (scripts/l2.sh) under
#                                 nested KVM, virtio-net-pci over tap0, served by the backend
#
# Steps: setup, test kernel and module (all cached, idempotent), the L2 kernel and
# initramfs, then tests/qemu/l1.sh in the VM, which prints progress and a summary.
# Nothing leaves the VM: the guest talks only to tap0 inside L1.
# Takes about 5-15 minutes once everything is cached (2 cores). Exits non-zero if anything
# failed over /dev/vhost-rs-net.
#
# Environment: VHOST_RS_VM_MEM (L1 memory, default 3G here), VHOST_RS_DEMO_MIB (payload,
# default 8), VHOST_RS_DEMO_TIMEOUT (seconds per L2 guest, default 1200),
# VHOST_RS_DEMO_BOOT_TIMEOUT (seconds for L2 to reach /init, else retried once; default 300),
# VHOST_RS_VM_TIMEOUT (the whole VM, default 3600 here), and vm.sh's own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
cd "$repo"
t0=$(date +%s)

prepare_nested
export VHOST_RS_VM_TIMEOUT=${VHOST_RS_VM_TIMEOUT:-3600}
step "booting the test VM (L1, TCG + nested SVM); the L2 guests follow"
rc=0
"$here/vm.sh" tests/qemu/l1.sh || rc=$?
step "make demo: done in $(($(date +%s) - t0)) s, status $rc"
exit $rc
