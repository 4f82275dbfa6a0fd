#!/usr/bin/env bash
# What `make fuzz-host` runs: coverage-guided fuzzing of the ring engines on the host, no VM.
#
#   scripts/fuzz-host.sh [SECONDS [TARGET]]      (default 60, both targets)
#
# Two cargo-fuzz targets in tests/fuzz: `ring` (fuzz_targets/ring.rs, the split ring of
# ring.rs against a reference written from vhost.c) and `packed` (fuzz_targets/packed.rs,
# ring/packed.rs through ring/vring.rs against a model of the spec). TARGET is `ring`,
# `packed` or `all` (the default): all runs each target for half of SECONDS (at least 1 s
# each), one target runs for all of it. Each target is built with the machine's stable
# rustc (RUSTC_BOOTSTRAP=1: cargo-fuzz passes nightly-only flags when a sanitizer is on),
# then run on one core over its seed corpus tests/fuzz/corpus/TARGET and a scratch corpus
# $VHOST_RS_CACHE/fuzz/TARGET, kept between runs; new inputs go there, never into the repo.
# Prints one KTAP-style line per target on stdout, numbered in the order run:
#   ok 1 ring fuzz: N runs in S s, coverage C (features F, corpus K)
#   ok 2 packed fuzz: ...
#   not ok 2 packed fuzz: <the panic>     then `#` lines: the input, how to reproduce
# and exits non-zero on any finding (a panic, an overflow, a hang of 10 s or more) or a
# target that does not build. The libFuzzer output is in $VHOST_RS_CACHE/fuzz/TARGET.log,
# crash inputs in $VHOST_RS_CACHE/fuzz/artifacts/TARGET-crash-*.
#
# Environment: FUZZ_SANITIZER (none; `address` works too, at half the speed, and finds
# nothing more while ring.rs and ring/ have no unsafe code), FUZZ_FLAGS (more libFuzzer
# flags).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
fuzz=$repo/tests/fuzz

usage="usage: $0 [SECONDS [ring|packed|all]]"
secs=${1:-60}
case $secs in
'' | *[!0-9]*) die "$usage" ;;
esac
case ${2:-all} in
all) targets=(ring packed) ;;
ring | packed) targets=("$2") ;;
*) die "$usage" ;;
esac
# Each target's share of the time, at least a second.
per=$((secs / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1
san=${FUZZ_SANITIZER:-none}
work=$VHOST_RS_CACHE/fuzz
artifacts=$work/artifacts
mkdir -p "$artifacts"

# cargo-fuzz comes from setup, which does nothing else once the rest is in place.
command -v cargo-fuzz >/dev/null || "$here/setup.sh"
triple=$(rustc -vV | sed -n 's/^host: //p')
rel=${fuzz#"$repo"/}

# Builds and runs target $2 for $3 seconds; prints KTAP line number $1. Non-zero on a
# finding or a failed build.
fuzz_one() {
	local n=$1 t=$2 s=$3
	local scratch=$work/$t log=$work/$t.log
	mkdir -p "$scratch"

	step "building the fuzz target $t (cargo fuzz build, sanitizer $san)"
	local t0 build bin
	t0=$(date +%s)
	build=(env RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=1 cargo fuzz build --fuzz-dir "$fuzz" -s "$san" "$t")
	if ! "${build[@]}" >"$log" 2>&1; then
		tail -30 "$log" >&2
		echo "not ok $n $t fuzz: the target did not build (${build[*]})"
		return 1
	fi
	bin=$fuzz/target/$triple/release/$t
	if [ ! -x "$bin" ]; then
		echo "not ok $n $t fuzz: cargo fuzz build left no $bin"
		return 1
	fi
	step "built in $(($(date +%s) - t0)) s; fuzzing $t for $s s on one core"

	# The first corpus directory receives what libFuzzer finds; the seeds are only read.
	# Slow inputs (ring: an add_used_n of 65535 elements, to wrap the used index) get less
	# energy in proportion to their time; without that they crowd the rest out (a quarter
	# of the runs/s, at lower coverage, in 120 s).
	local rc
	set +e
	# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
	"$bin" -max_total_time="$s" -timeout=10 -entropic_scale_per_exec_time=1 -print_final_stats=1 \
		-artifact_prefix="$artifacts/$t-" ${FUZZ_FLAGS:-} "$scratch" "$fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	set -e

	local runs took last cov ft corp crash
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	[ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1 || true)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
	crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)

	if [ "$rc" = 0 ] && [ -z "$crash" ]; then
		echo "ok $n $t fuzz: ${runs:-?} runs in ${took:-$s} s, coverage ${cov:-?} (features ${ft:-?}, corpus ${corp:-?})"
		return 0
	fi

	# What went wrong: the panic message (with its assertion lines, not the backtrace that
	# follows), else libFuzzer's summary.
	local what
	what=$(grep -A3 -m1 "panicked at" "$log" | sed -n '2,4{/^\(stack backtrace:\|note: \)/q;p}' |
		paste -sd' ' - | tr -s ' ' || true)
	[ -n "$what" ] || what=$(grep -m1 -E '^(==[0-9]+== )?ERROR: libFuzzer' "$log" | sed 's/^==[0-9]*== //' || true)
	echo "not ok $n $t fuzz: ${what:-libFuzzer exited $rc} (after ${runs:-?} runs)"
	echo "# log: $log"
	if [ -n "$crash" ]; then
		local tests=ring_tests.rs
		[ "$t" = ring ] || tests=packed_tests.rs
		echo "# input: $crash"
		echo "# reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $rel -s $san $t $crash"
		echo "# trace it:  VHOST_RS_FUZZ_TRACE=1 $rel/target/$triple/release/$t $crash"
		echo "# minimize:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin --fuzz-dir $rel -s $san $t $crash"
		echo "# then: the input into $rel/corpus/$t/, a test into tests/host/src/$tests"
	fi
	return 1
}

status=0
n=0
for t in "${targets[@]}"; do
	n=$((n + 1))
	fuzz_one "$n" "$t" "$per" || status=1
done
exit "$status"
