#!/usr/bin/env bash
# Runs one command as root inside the test kernel (virtme-ng, TCG by default) and exits
# with the command's own exit status.
# Usage: vm.sh CMD [ARG...]        e.g. scripts/vm.sh tests/run_vm.sh
#
# The command runs with the repo root as its working directory, writable inside the guest.
# Its stdout and stderr are written to files in a run dir under .vm-logs/ and streamed from
# there, and its exit status comes back through a file too: vng's own exit status and
# console are not trusted (see shared/PLATFORM.md). The console goes to .vm-logs/console.log.
#
# Environment:
#   KDIR                    kernel build dir (default: scripts/kernel.sh dir)
#   VHOST_RS_KVM=1          use KVM instead of TCG
#   VHOST_RS_VM_MEM         guest memory (default 2G)
#   VHOST_RS_VM_CPUS        guest CPUs (default 2)
#   VHOST_RS_QEMU_OPTS      extra QEMU options, e.g. "-cpu qemu64,+svm,+npt,+nrip-save"
#   VHOST_RS_VM_TIMEOUT     seconds before a hung guest is killed (default 2400)
#   VHOST_RS_VM_VERBOSE=1   show the guest console (boot log) as well
#   VHOST_RS_VM_UDEV=1      boot with udev (slower; see below)
#   VHOST_RS_VM_KEEP=1      keep the run dir (.vm-logs/run.*) after a successful run
# Every VHOST_RS_* variable is passed on into the guest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)

[ $# -gt 0 ] || die "usage: vm.sh CMD [ARG...]"
kdir=${KDIR:-$("$here/kernel.sh" dir)}
[ -f "$kdir/arch/x86/boot/bzImage" ] ||
	die "no test kernel at $kdir (run scripts/kernel.sh, or set KDIR)"
command -v vng >/dev/null || die "vng not found; run scripts/setup.sh"
mem=${VHOST_RS_VM_MEM:-2G}
cpus=${VHOST_RS_VM_CPUS:-2}
tmo=${VHOST_RS_VM_TIMEOUT:-2400}
verbose=${VHOST_RS_VM_VERBOSE:-0}

logs=$repo/.vm-logs
mkdir -p "$logs"
run=$(mktemp -d "$logs/run.XXXXXX")
: >"$run/out"
: >"$run/err"

# The guest side: a script in the run dir. Arguments are quoted with %q so that spaces and
# shell characters survive; stdbuf makes stdio line-buffered so output streams as it comes.
{
	echo '#!/bin/bash'
	declare -px | grep -E '^declare -x VHOST_RS_[A-Za-z0-9_]*=' || true
	echo 'export PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'
	printf 'run=%q\n' "$run"
	printf 'cd %q || exit 1\n' "$repo"
	echo ': >"$run/started"'
	printf 'stdbuf -oL -eL'
	printf ' %q' "$@"
	printf ' </dev/null >>"$run/out" 2>>"$run/err"\n'
	echo 'echo $? >"$run/rc.tmp" && mv "$run/rc.tmp" "$run/rc"'
	echo 'sync'
} >"$run/guest.sh"
chmod +x "$run/guest.sh"

# --force-9p: the virtiofsd here (QEMU 7.2's) fails to start, and trying costs 3 s per boot.
vng_args=(--run "$kdir" --force-9p --user root --cwd "$repo" --rwdir "$repo"
	--memory "$mem" --cpus "$cpus" --exec "$run/guest.sh")
# No udev: virtme-ng-init skips it when it finds no udevd, so we hide udevd behind an empty
# directory (virtme mounts it before it looks for udevd). Under TCG, udev's coldplug and settle
# cost 30 s to 5 min per boot, and nothing here needs udev: devtmpfs makes the device nodes,
# and output comes back through files, not virtme's virtio ports (which udev would link).
# VHOST_RS_VM_UDEV=1 keeps it.
if [ "${VHOST_RS_VM_UDEV:-0}" != 1 ]; then
	mkdir -p "$logs/empty"
	vng_args+=(--rodir "/usr/lib/systemd=$logs/empty")
fi
[ "${VHOST_RS_KVM:-0}" = 1 ] || vng_args+=(--disable-kvm)
vng_args+=(--append no5lvl)
# The = form: argparse would take a value starting with "-" for an option.
[ -z "${VHOST_RS_QEMU_OPTS:-}" ] || vng_args+=("--qemu-opts=$VHOST_RS_QEMU_OPTS")
# The console (boot log) goes to a file; --verbose so that it holds the whole boot.
vng_args+=(--verbose)

# One boot of the guest; its console goes to $run/console.
boot() {
	start=$(date +%s)
	# timeout puts itself and vng (QEMU included) in a process group of their own and signals the
	# whole group when time is up; -k kills it if SIGTERM is not enough.
	(
		set +e
		timeout -k 20 "$tmo" vng "${vng_args[@]}" </dev/null >"$run/console" 2>&1 &
		echo $! >"$run/timeout.pid"
		wait $!
		echo $? >"$run/vng.rc"
	) &
	vng_pid=$!
	# tail follows the files until vng is gone, then reads what is left and stops.
	tails=()
	tail -q -n +1 -F --pid=$vng_pid "$run/out" 2>/dev/null &
	tails+=($!)
	tail -q -n +1 -F --pid=$vng_pid "$run/err" >&2 2>/dev/null &
	tails+=($!)
	if [ "$verbose" = 1 ]; then
		tail -q -n +1 -F --pid=$vng_pid "$run/console" >&2 2>/dev/null &
		tails+=($!)
	fi
	on_signal() {
		# The terminal's signal does not reach timeout's own process group: pass it on.
		[ -s "$run/timeout.pid" ] && kill "$(cat "$run/timeout.pid")" 2>/dev/null || true
		kill "${tails[@]}" 2>/dev/null || true
		die "interrupted; guest killed"
	}
	trap on_signal INT TERM
	wait $vng_pid || true
	wait "${tails[@]}" 2>/dev/null || true
	trap - INT TERM
	vng_rc=$(cat "$run/vng.rc" 2>/dev/null || echo unknown)
	elapsed=$(($(date +%s) - start))
	cp "$run/console" "$logs/console.log"
}

# A boot that dies before the command starts is tried again, twice at most, and said: under
# TCG a guest sometimes panics early on an invalid opcode in the middle of a 5-byte nop, a
# static key's jump being patched while the other vCPU runs it (seen 2026-12-03 and 12-06,
# some 10 s into the boot; QEMU 7.2's TCG and cross-modifying code, not our module: nothing
# of ours is loaded yet). Nothing ran, so nothing is hidden; a command that started is never
# run again.
attempt=1
while :; do
	boot
	[ ! -e "$run/started" ] && [ ! -s "$run/rc" ] && [ "$attempt" -lt 3 ] || break
	[ "$vng_rc" != 124 ] && [ "$vng_rc" != 137 ] || break
	why=$(grep -m1 -E 'Kernel panic|invalid opcode|BUG:|Oops' "$run/console" || echo "no panic line")
	echo "vm.sh: boot $attempt died before the command started (${elapsed} s: ${why##*] }); booting again" >&2
	cp "$run/console" "$logs/console.boot$attempt.log"
	attempt=$((attempt + 1))
done

if [ -s "$run/rc" ]; then
	rc=$(cat "$run/rc")
	[ "${VHOST_RS_VM_KEEP:-0}" = 1 ] || rm -rf "$run"
	exit "$rc"
fi
# No status: say why, with the end of the console, which holds any panic.
if [ "$vng_rc" = 124 ] || [ "$vng_rc" = 137 ]; then
	msg="guest killed after the ${tmo} s timeout (VHOST_RS_VM_TIMEOUT)"
elif [ -e "$run/started" ]; then
	msg="guest died while running the command (vng status $vng_rc, ${elapsed} s)"
else
	msg="guest never ran the command (vng status $vng_rc, ${elapsed} s)"
fi
if [ "$verbose" != 1 ]; then
	echo "---- last 40 lines of the guest console ($logs/console.log) ----" >&2
	tail -40 "$run/console" >&2
	echo "----" >&2
fi
rm -rf "$run"
die "vm.sh: $msg"
