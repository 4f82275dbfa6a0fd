#!/usr/bin/env bash
# The test run inside the test VM, as root from the repo root: scripts/vm.sh tests/run_vm.sh
#
# 1. module load/unload cases for vhost_rs (./vhost-rs.ko) and, for symmetry, vhost_net;
# 2. every program in tests/bin/ (each prints KTAP), both modules loaded;
# 3. both modules unloaded again;
# 4. the kernel log since our marker must be free of BUG/WARNING/KASAN/lockdep/... lines;
# 5. kmemleak must report nothing.
# Prints nested KTAP, and as its last line `vm-totals: pass=N fail=N skip=N`, counted over
# every case line of every program and of this script (a program's summary line counts only
# when it shows a failure its cases do not). Exits 1 if anything failed.
#
# Environment: VHOST_RS_TEST_TIMEOUT (seconds per program, default 1200);
# VHOST_RS_NO_MODULE=REASON skips the vhost-rs cases (check.sh sets it when the build failed);
# VHOST_RS_PROGS="NAME..." runs only those programs of tests/bin; VHOST_RS_MODPARAMS="k=v ..."
# loads vhost-rs.ko with those parameters (e.g. split_workers=1).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PATH:/usr/sbin:/sbin"

ko=./vhost-rs.ko
logs=.vm-logs
mkdir -p "$logs"
prog_timeout=${VHOST_RS_TEST_TIMEOUT:-1200}
pass=0 fail=0 skip=0 xfail=0 n=0

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n $*"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n $*"; }
skipped() { n=$((n + 1)); skip=$((skip + 1)); echo "ok $n $1 # SKIP $2"; }
# A program's own line in the nested KTAP: it sums up its cases, which are counted already, so
# it is not counted again; only a failure its cases do not show (a crash, a timeout, missing
# results, an exit status that contradicts them) counts, as one failure.
summary_ok() { n=$((n + 1)); echo "ok $n $*"; }
summary_notok() { n=$((n + 1)); echo "not ok $n $*"; }
diag() { echo "# $*"; }
# One case: NAME, then a command that succeeds or says why not on stdout.
case_() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
	else
		[ -z "$out" ] || printf '%s\n' "$out" | head -20 | sed 's/^/# /'
		notok "$name"
	fi
}

# --- the kernel log and kmemleak from here on ------------------------------------------------
# Follow the kernel log from now on in a file: reading the ring buffer at the end could miss
# the start if it wrapped. The marker splits off the boot (which may have a spurious KASAN
# report under TCG, see shared/PLATFORM.md).
marker="vhost-rs-test-start-$(date +%s)-$$-$RANDOM"
kmsg=$logs/dmesg.log
dmesg -w >"$kmsg.all" 2>/dev/null &
dmesg_pid=$!

# kmemleak: stop its own scanning thread (its reports would land in the log at random times),
# then scan now and clear, so that what boot left behind is not blamed on us. Done before the
# marker: the scan logs a line when it finds something. `scan=off` fails when kmemleak is off.
[ -e /sys/kernel/debug/kmemleak ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
kmemleak=/sys/kernel/debug/kmemleak
kmemleak_ok=0
t0=$(date +%s)
if [ -e $kmemleak ] && echo scan=off >$kmemleak 2>/dev/null; then
	echo scan >$kmemleak && echo clear >$kmemleak && kmemleak_ok=1
fi
kmemleak_setup_secs=$(($(date +%s) - t0))

echo "$marker" >/dev/kmsg
# Lockdep turns itself off for good at the first report of any kind, a boot-time one too (the
# spurious KASAN report of shared/PLATFORM.md did so on every boot until scripts/vm.sh passed
# no5lvl). Without it, a clean log proves nothing about locking: checked at the end.
lockdep_at_start=$(awk '/debug_locks:/ {print $2}' /proc/lockdep_stats 2>/dev/null)

# --- plan ------------------------------------------------------------------------------------
progs=()
for p in tests/bin/*; do
	[ -f "$p" ] && [ -x "$p" ] || continue
	# VHOST_RS_PROGS="a b": only those programs (make fuzz runs just the fuzzer).
	[ -z "${VHOST_RS_PROGS:-}" ] || [[ " $VHOST_RS_PROGS " == *" ${p##*/} "* ]] || continue
	progs+=("$p")
done
# 5 load/unload cases per module, one final rmmod per module, one per program, dmesg, lockdep,
# kmemleak.
echo "KTAP version 1"
echo "1..$((2 * 5 + 2 + ${#progs[@]} + 3))"
diag "kmemleak: initial scan and clear took ${kmemleak_setup_secs} s"

# --- module load/unload ----------------------------------------------------------------------
loaded() { grep -q "^$1 " /proc/modules; }
# Waits up to 5 s for PATH to be (want=1) or not be (want=0) a character device.
wait_node() {
	local path=$1 want=$2 i
	for i in $(seq 50); do
		if [ -c "$path" ]; then [ "$want" = 1 ] && return 0; else [ "$want" = 0 ] && return 0; fi
		sleep 0.1
	done
	if [ "$want" = 1 ]; then echo "$path is not a character device"; ls -l "$path" 2>&1; else echo "$path still exists"; fi
	return 1
}
rmmod_busy_refused() {
	local mod=$1 node=$2 r=0
	exec 9<>"$node" || { echo "cannot open $node"; return 1; }
	if rmmod "$mod" 2>/dev/null; then
		echo "rmmod $mod succeeded while $node was open"
		r=1
	elif ! loaded "$mod"; then
		echo "$mod is gone although rmmod failed"
		r=1
	fi
	exec 9<&-
	return $r
}
rmmod_and_gone() { rmmod "$1" && wait_node "$2" 0; }
load_and_node() { "${@:3}" && wait_node "$2" 1; }

# load_unload SHORT MODULE NODE LOADCMD... : the five cases for one module.
load_unload() {
	local short=$1 mod=$2 node=$3
	shift 3
	if loaded "$mod"; then
		diag "$mod was already loaded; unloading it first"
		rmmod "$mod" || diag "rmmod $mod failed"
	fi
	case_ "load $short" load_and_node "$mod" "$node" "$@"
	case_ "node_is_chardev $short" wait_node "$node" 1
	case_ "rmmod_refused_while_open $short" rmmod_busy_refused "$mod" "$node"
	case_ "rmmod_after_close $short" rmmod_and_gone "$mod" "$node"
	case_ "load_again $short" load_and_node "$mod" "$node" "$@"
}

diag "module load/unload"
if [ -n "${VHOST_RS_NO_MODULE:-}" ] || [ ! -f "$ko" ]; then
	reason=${VHOST_RS_NO_MODULE:-vhost-rs.ko not built}
	for c in load node_is_chardev rmmod_refused_while_open rmmod_after_close load_again; do
		skipped "$c vhost-rs" "$reason"
	done
	have_rs=0
else
	# VHOST_RS_MODPARAMS="split_workers=1": the whole suite with other module parameters.
	# shellcheck disable=SC2086
	load_unload vhost-rs vhost_rs /dev/vhost-rs-net insmod "$ko" ${VHOST_RS_MODPARAMS:-}
	have_rs=1
fi
load_unload vhost-net vhost_net /dev/vhost-net modprobe vhost_net

# --- the test programs -----------------------------------------------------------------------
# Each program's KTAP is nested (indented 4) under a line of our own per program.
for p in "${progs[@]}"; do
	name=${p##*/}
	out=$logs/prog-$name.log
	diag "running $p"
	t0=$(date +%s)
	timeout -k 10 "$prog_timeout" "$p" 2>&1 | tee "$out" | sed -u 's/^/    /'
	rc=${PIPESTATUS[0]}
	secs=$(($(date +%s) - t0))
	# Top-level case lines of the program (nested subtests of its own are not counted).
	p_pass=$(grep -cE '^ok [0-9]+' "$out")
	p_skip=$(grep -cE '^ok [0-9]+.*# *SKIP' "$out")
	p_fail=$(grep -cE '^not ok [0-9]+' "$out")
	# kselftest_harness.h: a known difference that held (XFAIL) passes; one that has gone
	# away (XPASS) fails here, so that the test and its reason get looked at again.
	p_xfail=$(grep -cE '^ok [0-9]+.*# *XFAIL' "$out")
	p_xpass=$(grep -cE '^ok [0-9]+.*# *XPASS' "$out")
	[ "$p_xpass" = 0 ] || diag "$name: $p_xpass known differences (XFAIL) passed: they are gone, say so in the test"
	p_pass=$((p_pass - p_skip - p_xpass)) p_fail=$((p_fail + p_xpass)) xfail=$((xfail + p_xfail))
	planned=$(grep -m1 -oE '^1\.\.[0-9]+' "$out" | cut -d. -f3)
	pass=$((pass + p_pass)) fail=$((fail + p_fail)) skip=$((skip + p_skip))
	got=$((p_pass + p_fail + p_skip))
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		diag "$name: killed after ${prog_timeout} s"
		notok "$name"
	elif [ -z "$planned" ] || [ "$got" != "$planned" ]; then
		diag "$name: planned ${planned:-nothing}, reported $got results (exit $rc)"
		notok "$name"
	elif [ "$rc" != 0 ] && [ "$p_fail" = 0 ]; then
		diag "$name: exit $rc without a failed case"
		notok "$name"
	elif [ "$rc" = 0 ] && [ "$p_fail" != 0 ]; then
		diag "$name: exit 0 despite $p_fail failed cases"
		notok "$name"
	elif [ "$rc" != 0 ]; then
		diag "$name: $p_fail failed, ${secs} s"
		summary_notok "$name"
	else
		diag "$name: passed, ${secs} s"
		summary_ok "$name"
	fi
done

# --- unload ----------------------------------------------------------------------------------
# Fails if a program left a reference (an open file, a worker) behind.
if [ "$have_rs" = 1 ]; then
	case_ "final_rmmod vhost-rs" rmmod_and_gone vhost_rs /dev/vhost-rs-net
else
	skipped "final_rmmod vhost-rs" "${reason:-vhost-rs.ko not built}"
fi
case_ "final_rmmod vhost-net" rmmod_and_gone vhost_net /dev/vhost-net

# --- kmemleak --------------------------------------------------------------------------------
# Scanned before the log check, so that anything kmemleak itself prints is judged too. Objects
# must be older than 5 s to be reported: scan, wait, scan again.
if [ $kmemleak_ok = 1 ]; then
	t0=$(date +%s)
	echo scan >$kmemleak
	sleep 6
	echo scan >$kmemleak
	report=$(cat $kmemleak)
	diag "kmemleak scans took $(($(date +%s) - t0)) s"
	if [ -z "$report" ]; then
		leak_result=ok
	else
		printf '%s\n' "$report" >"$logs/kmemleak.log"
		diag "kmemleak reports $(grep -c '^unreferenced object' <<<"$report") leaks (all in $logs/kmemleak.log):"
		printf '%s\n' "$report" | head -40 | sed 's/^/# /'
		leak_result=fail
	fi
else
	leak_result=skip
fi

# --- the kernel log since the marker ---------------------------------------------------------
sleep 1
kill $dmesg_pid 2>/dev/null
wait $dmesg_pid 2>/dev/null
if grep -qF "$marker" "$kmsg.all"; then
	sed -n "/$marker/,\$p" "$kmsg.all" >"$kmsg"
else
	# The follower missed it (it should not): fall back to the ring buffer.
	dmesg | sed -n "/$marker/,\$p" >"$kmsg"
fi
rm -f "$kmsg.all"
bad='BUG:|WARNING:|KASAN|lockdep|possible recursive|circular locking|Oops|general protection|kmemleak|refcount_t|UBSAN|list_add corruption|sleeping function called from invalid context'
if ! grep -qF "$marker" "$kmsg"; then
	diag "the marker is not in the kernel log"
	notok "dmesg_clean"
elif hits=$(grep -E "$bad" "$kmsg"); then
	diag "kernel log since the marker has $(wc -l <<<"$hits") bad lines (all in $kmsg); the first 50:"
	head -50 <<<"$hits" | sed 's/^/# /'
	notok "dmesg_clean"
else
	ok "dmesg_clean"
fi

lockdep_at_end=$(awk '/debug_locks:/ {print $2}' /proc/lockdep_stats 2>/dev/null)
if [ "$lockdep_at_start" = 1 ] && [ "$lockdep_at_end" = 1 ]; then
	ok "lockdep_active"
elif [ -z "$lockdep_at_start" ]; then
	skipped "lockdep_active" "no /proc/lockdep_stats (CONFIG_LOCKDEP off in this kernel)"
else
	diag "lockdep's debug_locks was ${lockdep_at_start} at the start and ${lockdep_at_end} at the end: it was off$([ "$lockdep_at_start" = 1 ] || echo ' from boot (see the console log)'), so locking went unchecked"
	notok "lockdep_active"
fi

case $leak_result in
ok) ok "kmemleak_clean" ;;
fail) notok "kmemleak_clean" ;;
skip) skipped "kmemleak_clean" "no usable $kmemleak (CONFIG_DEBUG_KMEMLEAK off, or kmemleak disabled itself)" ;;
esac

echo "# Totals: pass:$pass fail:$fail xfail:$xfail xpass:0 skip:$skip error:0"
echo "vm-totals: pass=$pass fail=$fail skip=$skip"
[ "$fail" = 0 ]
