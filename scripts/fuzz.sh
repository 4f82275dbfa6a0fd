#!/usr/bin/env bash
# What `make fuzz` runs: the long fuzzing run, both fuzzers, for FUZZ_SECONDS each.
#
# 1. tests/bin/vhost_fuzz in the test VM (scripts/vm.sh tests/run_vm.sh with only that
#    program): seeded episodes against /dev/vhost-net and /dev/vhost-rs-net, then the kernel
#    log and kmemleak checks of run_vm.sh. FUZZ_SEED picks the first seed (default: the time,
#    printed, so any failure can be replayed).
# 2. scripts/fuzz-host.sh: coverage-guided libFuzzer on ring.rs and ring/packed.rs, on the host.
# A bounded run of both is part of make check. Exit status: non-zero on any finding.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
cd "$repo" || exit 1

secs=${FUZZ_SECONDS:-1800}
seed=${FUZZ_SEED:-$(date +%s)}
rc=0

"$here/setup.sh" || exit 1
"$here/kernel.sh" || exit 1
step "building the module and the tests"
make -s || exit 1
make -s -C tests || exit 1

step "vhost_fuzz in the VM: $secs s from seed $seed"
"$here/vm.sh" env VHOST_FUZZ_SECONDS="$secs" VHOST_FUZZ_SEED="$seed" \
	VHOST_RS_PROGS=vhost_fuzz VHOST_RS_TEST_TIMEOUT=$((secs + 600)) tests/run_vm.sh || rc=1

if [ -x "$here/fuzz-host.sh" ]; then
	step "ring.rs and ring/packed.rs under libFuzzer on the host: $secs s"
	"$here/fuzz-host.sh" "$secs" || rc=1
fi
[ "$rc" = 0 ] && echo "fuzz: nothing found" || echo "fuzz: FOUND SOMETHING (see above)"
exit "$rc"
