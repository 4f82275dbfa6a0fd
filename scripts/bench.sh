#!/usr/bin/env bash
# What `make bench` runs: vhost-rs.ko against vhost_net.ko, in the same VM, interleaved.
#
# Does whatever setup, kernel and module build is still needed, builds the driver
# (tests/bench/, not tests/: `make check` runs every tests/bin/* and a benchmark must never
# be a timed test there), then ONE scripts/vm.sh run of tests/bench/run_vm.sh, which loads
# both modules and runs BENCH_ROUNDS rounds of every case against both devices (ABBA).
# On the host, tests/bench/report.py computes per case the median and min–max per device and
# the ratio ours ÷ C of the medians (and packed ÷ split, split ÷ single for vhost-rs), writes
# bench/results/latest.{md,csv,png} (and the raw log latest.log) and prints the table.
#
# Environment: BENCH_ROUNDS (5), BENCH_SECS (3), BENCH_WARMUP (0.5), BENCH_CASES
# (tx64 rx64 tx1500 rx1500 tx64k tx64kraw tx64kzc rr64 rr64bp bidi64; bidi64 is TX and RX at
# once), BENCH_DEVS (/dev/vhost-net /dev/vhost-rs-net /dev/vhost-rs-net:split
# /dev/vhost-rs-net:packed: vhost-rs with one worker per device, as vhost_net.ko; with
# split_workers=1, its default, RX and TX on workers of their own; and the same over packed
# virtqueues, which vhost_net.ko lacks (its runs stay split); :single,packed is packed with
# one worker; see tests/bench/run_vm.sh), e.g.
#   BENCH_CASES="bidi64 tx64 rx64" make bench
#   BENCH_DEVS="/dev/vhost-rs-net:split /dev/vhost-rs-net:packed" make bench
# The figures are TCG + debug-kernel figures: only the ratios mean something.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
out=$repo/bench/results
t_start=$(date +%s)
cd "$repo"

rounds=${BENCH_ROUNDS:-5}
secs=${BENCH_SECS:-3}
warm=${BENCH_WARMUP:-0.5}
cases=${BENCH_CASES:-tx64 rx64 tx1500 rx1500 tx64k tx64kraw tx64kzc rr64 rr64bp bidi64}
# Unset: run_vm.sh's default (vm.sh passes only VHOST_RS_* on, so it goes on the command line).
devs=${BENCH_DEVS:-}
ndevs=4
[ -z "$devs" ] || ndevs=$(wc -w <<<"$devs")

"$here/setup.sh"
"$here/kernel.sh"
step "building the module (make -s)"
make -s -C "$repo"
[ -f vhost-rs.ko ] || die "make left no vhost-rs.ko"
step "building the benchmark driver (make -C tests/bench)"
make -s -C tests/bench
# The report wants matplotlib for its plot: Debian's python3-matplotlib lives in /usr/bin's
# python3, which may not be the first python3 on the PATH (pyenv).
py=python3
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import matplotlib' 2>/dev/null; then
		py=$p
		break
	fi
done
"$py" -c 'import matplotlib' 2>/dev/null ||
	echo "bench: warning: python3-matplotlib is not installed; no latest.png" >&2

mkdir -p "$out"
log=$out/latest.log
step "benchmark in the VM: $rounds rounds x {$cases} x $ndevs devices, ${secs} s each"
set +e
"$here/vm.sh" env BENCH_ROUNDS="$rounds" BENCH_SECS="$secs" BENCH_WARMUP="$warm" \
	BENCH_CASES="$cases" ${devs:+BENCH_DEVS="$devs"} tests/bench/run_vm.sh 2>&1 | tee "$log"
vm_rc=${PIPESTATUS[0]}
set -e
wall=$(($(date +%s) - t_start))
step "VM run done (exit $vm_rc); $wall s in all"

cmd="make bench"
[ -z "$devs" ] || cmd="BENCH_DEVS=\"$devs\" $cmd"
[ -z "${BENCH_CASES:-}" ] || cmd="BENCH_CASES=\"$cases\" $cmd"
[ "$rounds" = 5 ] || cmd="BENCH_ROUNDS=$rounds $cmd"
echo
"$py" tests/bench/report.py "$log" "$out" --command "$cmd" --wall "$wall"
echo
echo "bench: results in bench/results/latest.{md,csv,png,log}"
grep -q '^bench-done failures=0 ' "$log" || {
	echo "bench: some runs failed or the VM did not finish: see bench/results/latest.md" >&2
	exit 1
}
