#!/usr/bin/env bash
# Checks that every command the scripts, the tests and virtme-ng run is found the way they
# look it up, from a bare PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,
# what make, CI and a new login have) plus what common.sh adds itself (LLVM 19, ~/.cargo/bin).
# Nothing an earlier session linked or exported by hand counts.
#
# virtme-ng finds its helpers (virtme-run, virtme-configkernel, virtme-prep-kdir-mods, ...)
# through PATH, and runs virtme-prep-kdir-mods only the first time a kernel build directory is
# booted: a missing link hides on every machine that booted that directory before (issue 13).
# So every program virtme-ng's package installs must resolve to the one in our venv.
#
# Prints one KTAP-style line, `ok 1 tools-on-path` or `not ok 1 tools-on-path` with the
# missing commands above it; exits 1 when anything is missing. make check runs it first.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
. "$here/common.sh"

missing=()
need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
}
# Host: setup, the kernel and module build, the host tests and fuzzer (scripts/*.sh, Makefile).
need make gcc g++ clang ld.lld llvm-ar rustc cargo rustfmt bindgen cargo-fuzz flex bison bc \
	cpio xz tar dpkg-deb dpkg-query apt-get apt-cache rsync sha256sum timeout stdbuf setsid \
	python3 depmod modprobe
# The VMs: virtme-ng's front end and QEMU, busybox for virtme's initramfs and our L2 guest.
need vng qemu-system-x86_64 busybox
# Inside the test VM (the host's root file system, read-only): tests/run_vm.sh, tests/qemu/,
# tests/bench/run_vm.sh, with the PATH vm.sh gives the guest.
need ip tc ethtool tcpdump dmesg insmod rmmod mount ps gzip ldd
# Debian's python3 with matplotlib, for the bench report (scripts/bench.sh).
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || missing+=("/usr/bin/python3: matplotlib")

# Every program virtme-ng installed into our venv's bin/, from its own RECORD.
venv=$VHOST_RS_CACHE/venv
record=$(ls "$venv"/lib/python3*/site-packages/virtme_ng-*.dist-info/RECORD 2>/dev/null | head -1)
if [ -z "$record" ]; then
	missing+=("virtme-ng in $venv (run make setup)")
else
	for t in $(sed -n 's|^\.\./\.\./\.\./bin/\([^,]*\),.*|\1|p' "$record"); do
		p=$(command -v "$t" 2>/dev/null) || { missing+=("$t"); continue; }
		[ "$(readlink -f "$p")" = "$(readlink -f "$venv/bin/$t")" ] ||
			missing+=("$t (found $p, not the one in $venv/bin)")
	done
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "ok 1 tools-on-path"
	exit 0
fi
for m in "${missing[@]}"; do
	echo "# not found from a bare PATH: $m"
done
echo "# run 'make setup' (it installs and links all of them)"
echo "not ok 1 tools-on-path"
exit 1
