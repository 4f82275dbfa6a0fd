#!/usr/bin/env bash
# The benchmark run inside the test VM (scripts/bench.sh starts it through scripts/vm.sh), as
# root from the repo root. Loads vhost_net and ./vhost-rs.ko, then runs BENCH_ROUNDS rounds of
# every case against both devices, interleaved (ABBA: the device that goes first alternates per
# round and per case), so that load drifts on the host hit both alike.
# Prints every BENCH/INFO line of the driver, prefixed with `round=R`; ends with
# `bench-done failures=N dmesg_reports=N`.
#
# Environment: BENCH_ROUNDS (5), BENCH_SECS (3), BENCH_WARMUP (0.5), BENCH_CASES (all),
# BENCH_DEVS (default "/dev/vhost-net /dev/vhost-rs-net /dev/vhost-rs-net:split
# /dev/vhost-rs-net:packed").
# A BENCH_DEVS entry PATH:VARIANT is PATH run in a configuration of its own; its lines say
# dev=NAME:VARIANT (NAME the basename of PATH, as the driver prints it). VARIANT is one word
# or two joined by a comma, a worker one and/or the ring one:
#   /dev/vhost-rs-net:split   vhost-rs with split_workers=1 (RX and TX on workers of their
#                             own; the parameter is read at VHOST_SET_OWNER, so it is set
#                             before each such run and put back after it);
#   /dev/vhost-rs-net:single  vhost-rs with split_workers=0 (one worker, as vhost_net.ko);
#                             plain /dev/vhost-rs-net means this too, so that the vhost-rs
#                             column compares like with like;
#   /dev/vhost-rs-net:packed  packed virtqueues (vhost_bench --packed, VIRTIO_F_RING_PACKED)
#                             with split_workers=1, the module's default: the same as :split
#                             but for the ring, so that the report can pair the two;
#   /dev/vhost-rs-net:single,packed   packed, with split_workers=0 (:split,packed = :packed).
# vhost_net.ko has no packed ring: /dev/vhost-net:packed fails ("packed rings not offered").
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export PATH="$PATH:/usr/sbin:/sbin"

rounds=${BENCH_ROUNDS:-5}
secs=${BENCH_SECS:-3}
warm=${BENCH_WARMUP:-0.5}
cases=(${BENCH_CASES:-tx64 rx64 tx1500 rx1500 tx64k tx64kraw tx64kzc rr64 rr64bp bidi64})
devs=(${BENCH_DEVS:-/dev/vhost-net /dev/vhost-rs-net /dev/vhost-rs-net:split /dev/vhost-rs-net:packed})
drv=tests/bench/bin/vhost_bench
failures=0

echo "bench-env kernel=$(uname -r) cpus=$(nproc) rounds=$rounds secs=$secs warmup=$warm"
marker="vhost-rs-bench-start-$(date +%s)-$$"
echo "$marker" >/dev/kmsg

modprobe vhost_net || echo "bench-warning: modprobe vhost_net failed"
if ! grep -q '^vhost_rs ' /proc/modules; then
	insmod ./vhost-rs.ko || echo "bench-warning: insmod vhost-rs.ko failed"
fi
for d in "${devs[@]}"; do
	[ -e "${d%%:*}" ] || echo "bench-warning: ${d%%:*} missing"
done

# Both modules again with experimental_zcopytx=$1 (the *zc cases run with 1).
zcopytx() {
	modprobe -r vhost_net && modprobe vhost_net experimental_zcopytx="$1" &&
		rmmod vhost_rs && insmod ./vhost-rs.ko experimental_zcopytx="$1" ||
		echo "bench-warning: reloading the modules with experimental_zcopytx=$1 failed"
	for m in vhost_net vhost_rs; do
		v=$(cat /sys/module/$m/parameters/experimental_zcopytx 2>/dev/null)
		[ "$v" = "$1" ] || echo "bench-warning: $m: experimental_zcopytx is '$v', not $1"
	done
}

# vhost-rs's split_workers=$1 (a bool parameter: reads back Y or N). Warns and fails if the
# write did not take, so that a run is never labelled :split without being one.
split_default=$(cat /sys/module/vhost_rs/parameters/split_workers 2>/dev/null)
split_default=${split_default/Y/1}
split_default=${split_default/N/0}
split_workers() {
	local f=/sys/module/vhost_rs/parameters/split_workers v
	{ echo "$1" >"$f"; } 2>/dev/null
	v=$(cat "$f" 2>/dev/null)
	case $1:$v in
	1:Y | 1:1 | 0:N | 0:0) return 0 ;;
	esac
	echo "bench-warning: vhost_rs: split_workers is '$v', not $1"
	return 1
}

for ((r = 1; r <= rounds; r++)); do
	ci=0
	for c in "${cases[@]}"; do
		ci=$((ci + 1))
		# ABBA over rounds, shifted per case: each device goes first equally often.
		if (((r + ci) % 2)); then
			order=("${devs[@]}")
		else
			order=()
			for ((i = ${#devs[@]} - 1; i >= 0; i--)); do order+=("${devs[$i]}"); done
		fi
		[[ $c == *zc ]] && zcopytx 1
		for d in "${order[@]}"; do
			path=${d%%:*}
			variant=
			[[ $d == *:* ]] && variant=${d#*:}
			# The variant's words: workers (split, single) and ring (packed).
			workers=
			ring=()
			bad=
			IFS=, read -ra words <<<"$variant"
			for v in "${words[@]}"; do
				case $v in
				split | single) workers=$v ;;
				packed) ring=(--packed) ;;
				*) bad=$v ;;
				esac
			done
			if [ -n "$bad" ]; then
				failures=$((failures + 1))
				echo "FAIL round=$r dev=${d##*/} case=$c rc=- unknown device variant" \
					"'$bad'; not run"
				continue
			fi
			# Plain /dev/vhost-rs-net is vhost-rs with one worker per device, as vhost_net.ko
			# (the report's "vhost-rs" column); :split is the module's default since
			# 2026-12-07 (RX and TX on workers of their own), and :packed runs with it.
			if [ -z "$workers" ] && [ "$path" = /dev/vhost-rs-net ]; then
				workers=single
				[ ${#ring[@]} -gt 0 ] && workers=split
			fi
			if [ -n "$workers" ]; then
				want=1
				[ "$workers" = single ] && want=0
				if ! split_workers $want; then
					failures=$((failures + 1))
					echo "FAIL round=$r dev=${d##*/} case=$c rc=- split_workers=$want did not take; not run"
					split_workers "$split_default"
					continue
				fi
			fi
			out=$(timeout 60 "$drv" "${ring[@]}" "$path" "$c" "$secs" "$warm" 2>/tmp/bench.err)
			rc=$?
			[ -n "$workers" ] && split_workers "$split_default"
			# The driver names the device by its path's basename; a variant adds its suffix.
			sed -e "s/^\(BENCH\|INFO\) /\1 round=$r /" \
				-e "s/^\(BENCH\|INFO\) round=$r dev=${path##*/} /\1 round=$r dev=${d##*/} /" <<<"$out"
			if [ "$rc" != 0 ]; then
				failures=$((failures + 1))
				echo "FAIL round=$r dev=${d##*/} case=$c rc=$rc $(tr '\n' ' ' </tmp/bench.err)"
			elif [ -s /tmp/bench.err ]; then
				echo "WARN round=$r dev=${d##*/} case=$c $(tr '\n' ' ' </tmp/bench.err)"
			fi
		done
		[[ $c == *zc ]] && zcopytx 0
	done
done

# Kernel reports raised while we ran (the boot may carry a spurious KASAN report, see
# shared/PLATFORM.md: only what follows our marker counts).
reports=$(dmesg | sed -n "/$marker/,\$p" |
	grep -E 'BUG|WARNING|KASAN|lockdep|possible .*deadlock|Oops|RCU stall|hung task' || true)
nrep=0
if [ -n "$reports" ]; then
	nrep=$(wc -l <<<"$reports")
	sed 's/^/DMESG /' <<<"$reports" | head -40
fi
echo "bench-done failures=$failures dmesg_reports=$nrep"
