#!/usr/bin/env bash
# What `make fuzz-host` runs: coverage-guided fuzzing of ring.rs on the host, no VM.
#
#   scripts/fuzz-host.sh [SECONDS]      (default 60)
#
# Builds the cargo-fuzz target tests/fuzz/fuzz_targets/ring.rs with the machine's stable
# rustc (RUSTC_BOOTSTRAP=1: cargo-fuzz passes nightly-only flags when a sanitizer is on),
# then runs it on one core for SECONDS over the seed corpus tests/fuzz/corpus/ring and a
# scratch corpus under $VHOST_RS_CACHE/fuzz/ring, kept between runs; new inputs go there,
# never into the repo. Prints one KTAP-style line on stdout:
#   ok 1 ring fuzz: N runs in S s, coverage C (features F, corpus K)
#   not ok 1 ring fuzz: <the panic>       then `#` lines: the input, how to reproduce
# and exits non-zero on a finding (a panic, an overflow, a hang of 10 s or more).
#
# Environment: FUZZ_SANITIZER (none; `address` works too, at half the speed, and finds
# nothing more while ring.rs has no unsafe code), FUZZ_FLAGS (more libFuzzer flags).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
fuzz=$repo/tests/fuzz

secs=${1:-60}
case $secs in
'' | *[!0-9]*) die "usage: $0 [SECONDS]" ;;
esac
san=${FUZZ_SANITIZER:-none}
work=$VHOST_RS_CACHE/fuzz
scratch=$work/ring
artifacts=$work/artifacts
log=$work/last.log
mkdir -p "$scratch" "$artifacts"

# cargo-fuzz comes from setup, which does nothing else once the rest is in place.
command -v cargo-fuzz >/dev/null || "$here/setup.sh"

step "building the fuzz target (cargo fuzz build, sanitizer $san)"
t0=$(date +%s)
build=(env RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=1 cargo fuzz build --fuzz-dir "$fuzz" -s "$san" ring)
if ! "${build[@]}" >"$log" 2>&1; then
	tail -30 "$log" >&2
	echo "not ok 1 ring fuzz: the target did not build (${build[*]})"
	exit 1
fi
triple=$(rustc -vV | sed -n 's/^host: //p')
bin=$fuzz/target/$triple/release/ring
[ -x "$bin" ] || die "cargo fuzz build left no $bin"
step "built in $(($(date +%s) - t0)) s; fuzzing for $secs s on one core"

# The first corpus directory receives what libFuzzer finds; the seeds are only read.
# Slow inputs (an add_used_n of 65535 elements, to wrap the used index) get less energy
# in proportion to their time; without that they crowd the rest out (a quarter of the
# runs/s, at lower coverage, in 120 s).
set +e
# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
"$bin" -max_total_time="$secs" -timeout=10 -entropic_scale_per_exec_time=1 -print_final_stats=1 \
	-artifact_prefix="$artifacts/" ${FUZZ_FLAGS:-} "$scratch" "$fuzz/corpus/ring" >"$log" 2>&1
rc=$?
set -e

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
[ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1 || true)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)

if [ "$rc" = 0 ] && [ -z "$crash" ]; then
	echo "ok 1 ring fuzz: ${runs:-?} runs in ${took:-$secs} s, coverage ${cov:-?} (features ${ft:-?}, corpus ${corp:-?})"
	exit 0
fi

# What went wrong: the panic message (with its assertion lines), else libFuzzer's summary.
what=$(grep -A3 -m1 "panicked at" "$log" | sed -n '2,4p' | paste -sd' ' - | tr -s ' ' || true)
[ -n "$what" ] || what=$(grep -m1 -E '^(==[0-9]+== )?ERROR: libFuzzer' "$log" | sed 's/^==[0-9]*== //' || true)
echo "not ok 1 ring fuzz: ${what:-libFuzzer exited $rc} (after ${runs:-?} runs)"
echo "# log: $log"
if [ -n "$crash" ]; then
	rel=${fuzz#"$repo"/}
	echo "# input: $crash"
	echo "# reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $rel -s $san ring $crash"
	echo "# trace it:  VHOST_RS_FUZZ_TRACE=1 $rel/target/$triple/release/ring $crash"
	echo "# minimize:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin --fuzz-dir $rel -s $san ring $crash"
	echo "# then: the input into $rel/corpus/ring/, a test into tests/host/src/ring_tests.rs"
fi
exit 1
