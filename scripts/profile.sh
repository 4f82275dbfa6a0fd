#!/usr/bin/env bash
# Where the time goes in the tx64 and rx64 bench cases, per device: `perf record -a` (cpu-clock,
# 1 kHz, Debian's perf on the host's root file system) around one tests/bench/bin/vhost_bench run
# each, then the top kernel symbols. Run in the test VM: scripts/vm.sh scripts/profile.sh
# (after `make` and `make -C tests/bench`). Not part of any check.
set -u
cd "$(dirname "$0")/.." || exit 1
export PATH=$PATH:/usr/sbin:/sbin
modprobe vhost_net
grep -q '^vhost_rs ' /proc/modules || insmod ./vhost-rs.ko
echo 0 >/proc/sys/kernel/kptr_restrict
echo -1 >/proc/sys/kernel/perf_event_paranoid
for c in ${PROFILE_CASES:-tx64 rx64}; do
	for d in /dev/vhost-net /dev/vhost-rs-net; do
		n=${d##*/}-$c
		perf record -q -a -e cpu-clock -F 1000 -o "/tmp/perf-$n.data" -- \
			tests/bench/bin/vhost_bench "$d" "$c" 4 0.5 | grep 'metric=pps'
		echo "=== $n: top kernel symbols, all CPUs ==="
		perf report -q -i "/tmp/perf-$n.data" --no-children --sort sym --stdio 2>/dev/null |
			grep -v '^$' | head -"${PROFILE_TOP:-30}"
		echo "=== $n: by module ==="
		perf report -q -i "/tmp/perf-$n.data" --no-children --sort dso --stdio 2>/dev/null |
			grep -v '^$' | head -8
	done
done
