#!/usr/bin/env bash
# Installs everything vhost-rs needs on a fresh Debian 12 machine. Idempotent: a second run
# checks each step and prints nothing but the final line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

mkdir -p "$VHOST_RS_CACHE"
export DEBIAN_FRONTEND=noninteractive

# 1. Debian packages from the machine's own suites (bookworm). Not udev: virtme-ng-init
#    starts udevd when it exists, which slows every test boot by a minute or more.
pkgs=(clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev libssl-dev cpio kmod
	dwarves rsync qemu-system-x86 busybox-static iproute2 make gcc g++ libc6-dev xz-utils
	python3-venv python3-matplotlib ethtool tcpdump)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	step "installing Debian packages: ${missing[*]}"
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. bindgen from crates.io (the kernel needs >= 0.71.1).
if ! bindgen --version 2>/dev/null | grep -q " $BINDGEN_VERSION"; then
	step "building bindgen-cli $BINDGEN_VERSION from crates.io (about 3 minutes)"
	cargo install --quiet --locked "bindgen-cli@$BINDGEN_VERSION" 2>&1 | tail -5 >&2
fi

# 3. cargo-fuzz from crates.io, for scripts/fuzz-host.sh (libfuzzer-sys builds libFuzzer
#    with g++, above).
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
	step "building cargo-fuzz $CARGO_FUZZ_VERSION from crates.io (about 1 minute)"
	cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" 2>&1 | tail -5 >&2
fi

# 4. virtme-ng from PyPI, in a venv of its own under the cache: it then works whichever
#    python3 and pip the caller's PATH finds (bookworm's pip refuses system installs).
venv=$VHOST_RS_CACHE/venv
if ! "$venv/bin/vng" --version 2>/dev/null | grep -q "$VIRTME_NG_VERSION"; then
	step "installing virtme-ng $VIRTME_NG_VERSION from PyPI"
	rm -rf "$venv"
	python3 -m venv "$venv" >/dev/null
	"$venv/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION" >/dev/null
fi
# Every program virtme-ng installs must be reachable from make and CI whatever their PATH:
# vng runs virtme-run, virtme-configkernel and, the first time a kernel build directory is
# booted, virtme-prep-kdir-mods, all through PATH (issue 13). The list comes from the
# package's own RECORD, so a new helper in a new version is linked too; scripts/tools.sh
# (the first case of make check) checks the result from a bare PATH.
record=$(ls "$venv"/lib/python3*/site-packages/virtme_ng-*.dist-info/RECORD | head -1)
for t in $(sed -n 's|^\.\./\.\./\.\./bin/\([^,]*\),.*|\1|p' "$record"); do
	[ "$(readlink "/usr/local/bin/$t" 2>/dev/null)" = "$venv/bin/$t" ] || ln -sf "$venv/bin/$t" "/usr/local/bin/$t"
done

# 5. Kernel source and Rust library source from trixie(-backports), through a private apt
#    state so that the machine's apt configuration is never touched.
apt_private() {
	local state=$VHOST_RS_CACHE/apt
	mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
	if [ ! -s "$state/sources.list" ] || [ -z "$(ls "$state/lists" | grep -v partial)" ] ||
		[ -n "$(find "$state/lists" -maxdepth 1 -name '*Packages*' -mmin +720 | head -1)" ]; then
		# Same mirror the machine uses, read from its own configuration.
		local uri
		uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
		[ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
		[ -n "$uri" ] || die "cannot find the machine's Debian mirror"
		cat >"$state/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main
SRC
		apt-get "${opts[@]}" update -qq >/dev/null 2>&1 || apt-get "${opts[@]}" update -qq >/dev/null
	fi
}
state=$VHOST_RS_CACHE/apt
opts=(-o Dir::Etc::sourcelist="$state/sources.list" -o Dir::Etc::sourceparts=/dev/null
	-o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache"
	-o Dir::State::status=/dev/null -o APT::Architecture=amd64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)

rustv=$(rustc --version | awk '{print $2}')
if [ ! -d "$(rust_lib_src)/core" ]; then
	apt_private
	ver=$(apt-cache "${opts[@]}" madison rust-src | awk -F'|' '{gsub(/ /,"",$2); print $2}' |
		grep "^$rustv+" | head -1 || true)
	[ -n "$ver" ] || die "no rust-src $rustv in trixie-backports (rustc is $rustv; it must match exactly)"
	step "fetching rust-src $ver"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get "${opts[@]}" download -qq "rust-src=$ver" >/dev/null)
	dpkg-deb -x "$tmp"/rust-src_*.deb "$VHOST_RS_CACHE/rust-src-$rustv"
	rm -rf "$tmp"
fi

src=$(kernel_src)
if [ -z "$src" ] || [ ! -f "$src/Makefile" ]; then
	apt_private
	avail=$(apt-cache "${opts[@]}" madison linux-source-7.3 | awk -F'|' '{gsub(/ /,"",$2); print $2}')
	if echo "$avail" | grep -qxF "$KERNEL_PKG_VERSION_PIN"; then
		ver=$KERNEL_PKG_VERSION_PIN
	else
		ver=$(echo "$avail" | sort -V | tail -1)
		[ -n "$ver" ] || die "no linux-source-7.3 in trixie-backports"
		echo "################################################################" >&2
		echo "WARNING: pinned linux-source-7.3 $KERNEL_PKG_VERSION_PIN is gone;" >&2
		echo "WARNING: falling back to the newest one, $ver. Results may differ." >&2
		echo "################################################################" >&2
	fi
	step "fetching linux-source-7.3 $ver (167 MB)"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get "${opts[@]}" download -qq "linux-source-7.3=$ver" >/dev/null)
	dpkg-deb -x "$tmp"/linux-source-7.3_*.deb "$tmp/x"
	dest=$VHOST_RS_CACHE/linux-source-$ver
	rm -rf "$dest"
	mkdir -p "$dest"
	step "extracting the kernel source"
	tar -xJf "$tmp"/x/usr/src/linux-source-7.3.tar.xz -C "$dest" --strip-components=1
	rm -rf "$tmp"
	echo "$dest" >"$VHOST_RS_CACHE/kernel-src.path"
	echo "$ver" >"$VHOST_RS_CACHE/kernel-src.version"
fi

# 6. DPDK's dpdk-testpmd (bookworm's dpdk-dev), the independent virtio driver of
#    tests/vhost_dpdk.c: unpacked under the cache with the libraries it needs that the machine
#    lacks, not installed. Installing dpdk-dev would pull udev in (through rdma-core), see 1.
#    The wrapper loads only the three PMDs the test needs (vdev bus, ring mempool, virtio).
dpdk=$VHOST_RS_CACHE/dpdk
if [ ! -f "$dpdk/ok" ] || [ "$(cat "$dpdk/ok")" != "$(apt-cache policy dpdk-dev | awk '/Candidate:/ {print $2}')" ]; then
	step "unpacking dpdk-testpmd (Debian dpdk-dev) under the cache"
	closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances dpdk-dev | grep -E '^[a-z0-9]' | sort -u)
	want=()
	for p in $closure; do
		case $p in
		dpdk-dev | librte-* | ibverbs-providers) ;;
		*-dev | *-bin | *-common) continue ;;
		lib*) ;;
		*) continue ;;
		esac
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || want+=("$p")
	done
	tmp=$(mktemp -d)
	(cd "$tmp" && { apt-get download -qq "${want[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null && apt-get download -qq "${want[@]}" >/dev/null; }; })
	rm -rf "$dpdk"
	mkdir -p "$dpdk"
	for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$dpdk/root"; done
	rm -rf "$tmp"
	lib=$dpdk/root/usr/lib/x86_64-linux-gnu
	pmds=$(ls -d "$lib"/dpdk/pmds-* | head -1)
	so=so.$(basename "$pmds" | sed 's/^pmds-\([0-9]*\).*/\1/')	# so.23: unversioned names are in -dev
	cat >"$dpdk/testpmd" <<WRAP
#!/bin/sh
# dpdk-testpmd from the unpacked dpdk-dev (scripts/setup.sh), with only the PMDs it needs.
export LD_LIBRARY_PATH=$lib
exec $dpdk/root/usr/bin/dpdk-testpmd -d $pmds/librte_bus_vdev.$so -d $pmds/librte_mempool_ring.$so -d $pmds/librte_net_virtio.$so "\$@"
WRAP
	chmod +x "$dpdk/testpmd"
	miss=$(for f in "$dpdk/root/usr/bin/dpdk-testpmd" "$pmds"/librte_{bus_vdev,mempool_ring,net_virtio}.$so; do
		[ -e "$f" ] || echo "$f"; LD_LIBRARY_PATH=$lib ldd "$f" 2>&1 | grep 'not found' || true; done | sort -u)
	[ -z "$miss" ] || die "dpdk-testpmd lacks libraries: $miss"
	apt-cache policy dpdk-dev | awk '/Candidate:/ {print $2}' >"$dpdk/ok"
fi

echo "setup: ok (cache in $VHOST_RS_CACHE)"
