#!/usr/bin/env bash
# `make check-qemu`'s part inside the test VM (L1), as root from the repo root; run by
# scripts/check-qemu.sh through scripts/vm.sh with nested-KVM options. For each backend, ours
# (/dev/vhost-rs-net) and the C reference (/dev/vhost-net), boots a real QEMU guest (L2) once
# per virtio-net variant (tests/qemu/l2_run.py does one variant: boot, ping, a small payload
# both ways, sha256-checked) and prints the results as KTAP on stdout; progress lines are KTAP
# diagnostics (`# ...`). Then it unloads vhost_rs and checks the L1 kernel log written since
# its start marker for BUG/WARNING/KASAN/lockdep reports: each case's own part of the log
# fails that case, and the whole log is a case of its own.
# Exits 1 if any case failed (either device: a failure over /dev/vhost-net is reported too,
# as the reference, and counted).
#
# Environment: VHOST_RS_L2_KERNEL, VHOST_RS_L2_INITRD (from scripts/l2.sh; required),
# VHOST_RS_QEMU_MIB (payload per variant, default 2), VHOST_RS_QEMU_TIMEOUT (seconds per L2
# guest, default 900), VHOST_RS_QEMU_BOOT_TIMEOUT (seconds to reach /init before a boot counts
# as a nested-KVM hang and is retried, up to 4 boots in all; default 300),
# VHOST_RS_QEMU_ONLY (space-separated variant names to run; the others are reported as
# skipped), VHOST_RS_QEMU_SKIP (variant names, or NAME.vhost-net / NAME.vhost-rs-net for one
# device, not to run, reported as skipped with
# VHOST_RS_QEMU_SKIP_WHY), VHOST_RS_QEMU_DEVS (default
# "/dev/vhost-rs-net /dev/vhost-net"), VHOST_RS_QEMU_DEADLINE (epoch seconds by which the run
# must be over, set by scripts/check-qemu.sh from the VM's timeout: a case that would not fit
# before it is not started and fails as "out of time", so that the totals still come out).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"

kernel=${VHOST_RS_L2_KERNEL:?VHOST_RS_L2_KERNEL not set (see scripts/l2.sh)}
initrd=${VHOST_RS_L2_INITRD:?VHOST_RS_L2_INITRD not set (see scripts/l2.sh)}
mib=${VHOST_RS_QEMU_MIB:-2}
tmo=${VHOST_RS_QEMU_TIMEOUT:-900}
boot_tmo=${VHOST_RS_QEMU_BOOT_TIMEOUT:-300}
only=${VHOST_RS_QEMU_ONLY:-}
devs=${VHOST_RS_QEMU_DEVS:-/dev/vhost-rs-net /dev/vhost-net}
logs=.vm-logs/check-qemu
rm -rf "$logs"
mkdir -p "$logs"
# Shell builtins for the time ($EPOCHSECONDS, printf's %()T): in this VM every program
# started costs about 2 s (binaries come over uncached 9p).
diag() { printf '# [%(%H:%M:%S)T] %s\n' -1 "$*"; }
t_all=$EPOCHSECONDS
deadline=${VHOST_RS_QEMU_DEADLINE:-0}
# What a case may take at most, for the deadline: the slowest so far, at least 300 s.
longest=300

# A guest behind a vIOMMU (VIRTIO_F_ACCESS_PLATFORM, bit 33: the device IOTLB), as the
# issue and QEMU's docs set it up: intel-iommu with device-iotlb (interrupt remapping needs
# the split irqchip), the NIC modern-only with iommu_platform and ATS, intel_iommu=on in L2.
viommu="--machine=q35,accel=kvm,kernel-irqchip=split"
viommu+=" --pre-device=intel-iommu,intremap=on,device-iotlb=on"
# The NIC behind a PCIe root port: QEMU gives virtio-pci the ATS capability only there (on
# pcie.0 `ats=on` is silently ignored, so the guest never sends device-IOTLB invalidations).
viommu+=" --pre-device=pcie-root-port,id=vrp0,bus=pcie.0,chassis=1"
viommu+=" --device-extra=,bus=vrp0,disable-legacy=on,iommu_platform=on,ats=on --append-extra=intel_iommu=on"
# Without the root port (2026-12-02), TCP never connected over either device; most likely
# (from QEMU's source, not measured) the guest reused IOVAs it had unmapped and the device
# kept stale translations: QEMU 7.2's intel-iommu sends no UNMAP for the domain-wide flushes
# of Linux 6.1's lazy mode, and without ATS nothing else reaches vhost. The streams are
# 32 MiB each way (the issue's figure): 16 times the payload (--migrate repeats it 16 times
# of its own). VHOST_RS_QEMU_VIOMMU_REPEAT changes that: CI (.ci/run) moves 2 MiB, as through
# vhost_net.ko's IOTLB 32 MiB take 5 minutes of its 90 (0.2 MB/s nested under TCG).
viommu+=" --payload-repeat=${VHOST_RS_QEMU_VIOMMU_REPEAT:-16}"
# Live migration behind it, the same way: the destination QEMU (7.2.22) aborts on
# `memory_region_notify_iommu_one: Assertion entry->iova >= notifier->start && entry_end <=
# notifier->end` as the guest runs on, over both devices alike (2026-12-03; ATS's device-IOTLB
# invalidations). So the migration variant leaves the NIC on pcie.0 (no ATS) and has the
# guest invalidate page by page (iommu.strict=1), so that QEMU 7.2's intel-iommu sends vhost
# an INVALIDATE for each unmap. Its streams are 4 MiB (the payload twice, not --migrate's 16
# times): the 32 MiB each way are the viommu variant's, and at 0.2 MB/s through vhost_net.ko's
# IOTLB they would cost CI 5 more minutes.
viommu_mig="--machine=q35,accel=kvm,kernel-irqchip=split --migrate-repeat=2"
viommu_mig+=" --pre-device=intel-iommu,intremap=on,device-iotlb=on"
viommu_mig+=" --device-extra=,disable-legacy=on,iommu_platform=on,ats=on"
viommu_mig+=" --append-extra=intel_iommu=on --append-extra=iommu.strict=1"

# Guests are few, for CI's 90 minutes: an L2 boot costs one to two minutes nested under TCG,
# and on a slow machine make check takes 33 of them (2026-12-06). So mrg_rxbuf, event_idx,
# indirect descriptors and the offloads go off in one guest, and poll-us rides on multiqueue
# (until 2026-12-06, 5 variants of their own). make check's data tests and guest fuzzer
# (random feature sets) run with each of them off, alone and together, on both devices.
# name|l2_run.py options|skip reason (empty: run it). Feature bits (virtio-net, bit 0 first
# in sysfs): 0 CSUM, 1 GUEST_CSUM, 7 GUEST_TSO4, 11 HOST_TSO4, 15 MRG_RXBUF, 22 MQ,
# 28 INDIRECT_DESC, 29 EVENT_IDX, 34 RING_PACKED.
# The packed variants ask QEMU for a packed ring (packed=on). Over /dev/vhost-rs-net the guest
# must get one (@packed@ becomes --expect-on=34); vhost_net.ko 7.3 has no packed engine, so
# QEMU masks the bit and the guest falls back to split (--expect-off=34): a difference on
# purpose, said in the log. packed reboots the guest (the ring set up again from a reset
# device), packed-migration moves 32 MiB each way across a live migration, whose
# VHOST_{GET,SET}_VRING_BASE carry both positions and wrap counters.
variants=(
	"default||"
	"features-off|--device-extra=,mrg_rxbuf=off,event_idx=off,indirect_desc=off,csum=off,guest_csum=off,host_tso4=off,guest_tso4=off --expect-off=0,1,7,11,15,28,29|"
	"multiqueue-poll-us|--queues=2 --smp=2 --device-extra=,mq=on,vectors=6 --netdev-extra=,poll-us=50 --expect-on=22 --expect-rxq=2 @split@|"
	"reboot|--reboot|"
	"sigkill|--kill-mid|"
	"migration|--migrate|"
	"ring-reset|--ringreset --expect-on=40|"
	"viommu|$viommu --expect-on=33|"
	"viommu-migration|$viommu_mig --migrate|"
	"packed|--device-extra=,packed=on @packed@ --reboot|"
	"packed-migration|--device-extra=,packed=on @packed@ --migrate|"
)
# @split@: over /dev/vhost-rs-net the case runs with split_workers=1 (read at SET_OWNER: every
# open QEMU makes gets RX and TX workers of their own, with no ioctl from QEMU), and l2_run.py
# checks it in fdinfo and /proc (--expect-split); with poll-us the busy polls cross workers.
split_param=/sys/module/vhost_rs/parameters/split_workers

# --- setup: the modules, the kernel log ------------------------------------------------------
dmesg -w >"$logs/dmesg.all" 2>/dev/null &
dmesg_pid=$!
[ -e /sys/kernel/debug/kmemleak ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
echo scan=off >/sys/kernel/debug/kmemleak 2>/dev/null || true
mark() { echo "vhost-rs-check-qemu $1 $$" >/dev/kmsg; }
mark start
setup_err=
[ -f vhost-rs.ko ] || setup_err="no vhost-rs.ko (run make)"
[ -n "$setup_err" ] || insmod ./vhost-rs.ko || setup_err="insmod vhost-rs.ko failed"
[ -n "$setup_err" ] || modprobe vhost_net || setup_err="modprobe vhost_net failed"
for i in $(seq 50); do
	[ -c /dev/vhost-rs-net ] && [ -c /dev/vhost-net ] && break
	sleep 0.1
done
[ -n "$setup_err" ] || [ -c /dev/kvm ] || setup_err="no /dev/kvm in L1 (nested KVM needs -cpu qemu64,+svm,+npt,+nrip-save)"
[ -n "$setup_err" ] || { [ -f "$kernel" ] && [ -f "$initrd" ]; } || setup_err="no L2 kernel $kernel or initramfs $initrd"
head -c "${mib}M" /dev/urandom >"$logs/payload"
# -S: no site module; l2_run.py needs only the standard library, and the site scan costs 2 s.
py=(/usr/bin/python3 -S)
[ -x "${py[0]}" ] || py=(python3 -S)
# Warm the page cache (see tests/qemu/l1.sh): the first boot otherwise pays for 9p under TCG.
qemu-system-x86_64 --version >/dev/null 2>&1
cat "$kernel" "$initrd" /usr/share/qemu/qboot.rom /usr/share/qemu/kvmvapic.bin \
	/usr/lib/ipxe/qemu/efi-virtio.rom >/dev/null 2>&1 || true
# The L2 guests boot in about half the time (2026-12-07: ~54 s to /init instead of ~91 s) with
# qboot instead of SeaBIOS (fewer port I/O exits, each a trip through L1's QEMU under TCG) and
# their RAM on hugetlbfs (l2_run.py's guest_ram): 520 pages are two 512 MiB guests (migration)
# and some to spare. l2_run.py falls back to 4 KiB pages, and says so, when they are not there.
l2_fast=(--bios=/usr/share/qemu/qboot.rom --hugepages=/dev/hugepages)
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs none /dev/hugepages
echo 520 >/proc/sys/vm/nr_hugepages
"${py[@]}" -c 'import argparse, hashlib, json, queue, signal, socket, subprocess, threading' || true
# One KVM VM held for the whole run, so that L2 QEMUs coming and going never flip KVM's static
# keys (text patching with int3, which TCG sometimes gets wrong on the other vCPU: see
# cmd_hold_kvm in tests/qemu/l2_run.py).
if [ -c /dev/kvm ]; then
	"${py[@]}" tests/qemu/l2_run.py hold-kvm &
	hold_pid=$!
	trap 'kill $hold_pid 2>/dev/null' EXIT
fi

# One l2_run.py for all the cases, fed a case per line (`l2_run.py serve`): each start of it
# cost a case 20-30 s here (python and its modules over 9p under TCG). l2_case runs one case
# with l2_run.py run's options, prints its lines as KTAP diagnostics and sets l2_rc; a server
# that died is started again for the next case.
l2_case() {
	l2_rc=2
	if [ -z "${L2RUN_PID:-}" ] || ! kill -0 "$L2RUN_PID" 2>/dev/null; then
		coproc L2RUN { "${py[@]}" tests/qemu/l2_run.py serve 2>&1; }
	fi
	# Its fds, copied: bash unsets L2RUN when it reaps a server that died, and under set -u
	# the next ${L2RUN[0]} would end this script instead of failing the case.
	local to=${L2RUN[1]:-} from=${L2RUN[0]:-} line
	[ -n "$to" ] && printf '%q ' "$@" >&"$to" && echo >&"$to" || {
		diag "l2_run.py serve is gone"
		return
	}
	while IFS= read -r line <&"$from"; do
		case $line in
		"l2-run-done "*) l2_rc=${line#l2-run-done }; return ;;
		esac
		printf '# %s\n' "$line"
	done
	diag "l2_run.py serve ended in the middle of a case"
}

ndev=$(wc -w <<<"$devs")
total=$((${#variants[@]} * ndev + 2))
echo "KTAP version 1"
echo "1..$total"
diag "L1: $(uname -r), $(nproc) CPUs; payload $mib MiB per variant; logs in $logs/;" \
	"$(awk '/HugePages_Free/ {print $2}' /proc/meminfo) free hugepages for the L2 RAM"

n=0 pass=0 fail=0 skip=0
declare -a times
result() { # status name detail
	n=$((n + 1))
	case $1 in
	ok) pass=$((pass + 1)); echo "ok $n $2" ;;
	fail) fail=$((fail + 1)); echo "not ok $n $2" ;;
	skip) skip=$((skip + 1)); echo "ok $n $2 # SKIP $3" ;;
	esac
}
bad='BUG:|WARNING:|KASAN|lockdep|possible recursive|circular locking|Oops|general protection|refcount_t|UBSAN|list_add corruption|sleeping function called from invalid context|hung_task|blocked for more than|soft lockup'
# The kernel log between two markers.
segment() {
	awk -v s="vhost-rs-check-qemu $1 $$" '
		index($0, "vhost-rs-check-qemu ") { on = index($0, s) > 0; next }
		on' "$logs/dmesg.all"
}

for v in "${variants[@]}"; do
	IFS='|' read -r name opts why <<<"$v"
	for dev in $devs; do
		tag=$name.$(basename "$dev")
		if [ -n "$setup_err" ]; then
			diag "setup failed: $setup_err"
			result fail "$name $dev"
			continue
		fi
		if [ -n "$why" ] && [[ " $only " != *" $name "* ]]; then
			result skip "$name $dev" "$why"
			continue
		fi
		if [[ " ${VHOST_RS_QEMU_SKIP:-} " == *" $name "* || " ${VHOST_RS_QEMU_SKIP:-} " == *" $tag "* ]]; then
			result skip "$name $dev" "VHOST_RS_QEMU_SKIP: ${VHOST_RS_QEMU_SKIP_WHY:-skipped on request}"
			continue
		fi
		if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then
			result skip "$name $dev" "not selected (VHOST_RS_QEMU_ONLY)"
			continue
		fi
		if [ "$deadline" -gt 0 ] && [ $((EPOCHSECONDS + longest)) -gt "$deadline" ]; then
			diag "$name over $dev: not started, out of time: $((deadline - EPOCHSECONDS)) s" \
				"left before VHOST_RS_QEMU_DEADLINE, and a case may take $longest s"
			times+=("$(printf '%-18s %-18s %5s    %s' "$name" "$dev" - "out of time")")
			result fail "$name $dev"
			continue
		fi
		mark "case-$tag"
		diag "=== $name over $dev ==="
		if [[ $opts == *@packed@* ]]; then
			if [ "$dev" = /dev/vhost-rs-net ]; then
				copts=${opts//@packed@/--expect-on=34}
			else
				copts=${opts//@packed@/--expect-off=34}
				diag "$dev offers no packed ring (vhost_net.ko 7.3): the guest must fall" \
					"back to a split ring, a difference on purpose"
			fi
		else
			copts=$opts
		fi
		split_was=
		if [[ $copts == *@split@* ]]; then
			if [ "$dev" = /dev/vhost-rs-net ]; then
				split_was=$(cat "$split_param")
				echo 1 >"$split_param"
				copts=${copts//@split@/--expect-split}
			else
				copts=${copts//@split@/}
				diag "$dev runs both queues of a device on one worker thread (vhost_net.ko 7.3" \
					"does not wire vhost.c's worker ioctls): a difference on purpose"
			fi
		fi
		t0=$EPOCHSECONDS
		# shellcheck disable=SC2086 # opts is a list of options
		l2_case --dev "$dev" --name "$tag" --kernel "$kernel" --initrd "$initrd" \
			--payload "$logs/payload" --logdir "$logs" --out "$logs/$tag.json" \
			--timeout "$tmo" --boot-timeout "$boot_tmo" --ping 3 --xfer-timeout 300 \
			"${l2_fast[@]}" $copts
		rc=$l2_rc
		[ -z "$split_was" ] || echo "$split_was" >"$split_param"
		secs=$((EPOCHSECONDS - t0))
		[ "$secs" -le "$longest" ] || longest=$secs
		mark "after-$tag"
		sleep 1
		seg=$(segment "case-$tag")
		if grep -qE "$bad" <<<"$seg"; then
			diag "L1 kernel log during $name over $dev:"
			grep -E "$bad" <<<"$seg" | head -20 | sed 's/^/#   /'
			rc=1
		fi
		times+=("$(printf '%-18s %-18s %5s s  %s' "$name" "$dev" "$secs" "$([ $rc = 0 ] && echo ok || echo FAIL)")")
		diag "$name over $dev: $([ $rc = 0 ] && echo passed || echo FAILED) in $secs s"
		if [ $rc = 0 ]; then result ok "$name $dev"; else result fail "$name $dev"; fi
	done
done

# --- unload, then the whole kernel log since the start marker -------------------------------
# l2_run.py serve ends at the end of its input (it holds no device fd between cases).
if [ -n "${L2RUN_PID:-}" ]; then
	l2_pid=$L2RUN_PID l2_in=${L2RUN[1]:-}
	[ -z "$l2_in" ] || exec {l2_in}>&-
	wait "$l2_pid" 2>/dev/null
fi
mark unload
if [ -z "$setup_err" ] || grep -q '^vhost_rs ' /proc/modules; then
	if rmmod vhost_rs && ! grep -q '^vhost_rs ' /proc/modules; then
		result ok "unload-vhost_rs"
	else
		diag "rmmod vhost_rs failed"
		result fail "unload-vhost_rs"
	fi
else
	result fail "unload-vhost_rs"
fi
sleep 1
mark end
sleep 1
kill $dmesg_pid 2>/dev/null
wait $dmesg_pid 2>/dev/null
rm -f "$logs/payload"
all=$(awk -v s="vhost-rs-check-qemu start $$" 'index($0, s) { on = 1; next } on' "$logs/dmesg.all")
if ! grep -q "vhost-rs-check-qemu start $$" "$logs/dmesg.all"; then
	diag "the start marker is missing from the kernel log ($logs/dmesg.all)"
	result fail "l1-dmesg-clean"
elif grep -qE "$bad" <<<"$all"; then
	diag "L1 kernel log since the start ($(grep -cE "$bad" <<<"$all") bad lines; $logs/dmesg.all):"
	grep -E "$bad|vhost-rs-check-qemu" <<<"$all" | head -60 | sed 's/^/#   /'
	result fail "l1-dmesg-clean"
else
	result ok "l1-dmesg-clean"
fi

diag "wall time per case (L2 boots included):"
for t in "${times[@]}"; do echo "#   $t"; done
diag "all cases: $((EPOCHSECONDS - t_all)) s in L1"
# One python for all the results: each start costs seconds here.
compgen -G "$logs/*.json" >/dev/null && "${py[@]}" - "$logs"/*.json <<'EOF' | sed 's/^/#   /'
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    b = r.get("boot_s")
    tx, rx = r.get("l2_to_l1") or {}, r.get("l1_to_l2") or {}
    mb = lambda x: f"{x['bytes'] / x['secs'] / 1e6:.1f}" if x.get("ok") and x.get("secs") else "-"
    print(f"{r['name']:<36} {'ok' if r['ok'] else 'FAIL':<4} boot {b or 0:5.1f} s  "
          f"L2->L1 {mb(tx)} MB/s  L1->L2 {mb(rx)} MB/s  boots {r['attempts']}"
          f" (kvm err {r.get('kvm_errors', 0)}, hang {r.get('boot_hangs', 0)},"
          f" reset {r.get('guest_resets', 0)})"
          + ("" if r["ok"] else "  FAILED: " + "; ".join(r["failures"])))
EOF
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail = 0 ]
