#!/usr/bin/env bash
# Fetches the guest-in-the-guest (L2) kernel and builds its initramfs, for `make demo`.
# Idempotent: both are cached under ~/.cache/vhost-rs/l2/ and reused. Prints two lines on
# stdout, `kernel=PATH` and `initrd=PATH`; progress goes to stderr.
#
# The kernel is Debian's own bookworm kernel (linux-image-6.1.0-NN-amd64, the one the
# linux-image-amd64 metapackage points at): nothing to build, and its virtio drivers are
# uncompressed modules. The initramfs holds busybox (Debian's busybox-static, installed by
# `make setup`), the virtio-net modules and tests/qemu/init.sh as /init, which brings eth0
# up and then does what the kernel command line says.
#
# The cache is under $HOME, not /var/cache: the test VM (virtme-ng) hides /var/cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

cache=$VHOST_RS_CACHE/l2
mkdir -p "$cache"
busybox=${VHOST_RS_BUSYBOX:-/bin/busybox}
init=$repo/tests/qemu/init.sh
# virtio_net's dependencies first, in load order.
mods=(drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
	drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover
	drivers/net/net_failover drivers/net/virtio_net)

# --- the kernel ------------------------------------------------------------------------------
# The package the metapackage depends on now; without apt (or offline), the newest we cached.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ {print $2; exit}' || true)
if [ -z "$pkg" ]; then
	pkg=$(find "$cache" -maxdepth 1 -name 'linux-image-*' -type d -printf '%f\n' | sort -V | tail -1)
	[ -n "$pkg" ] || die "cannot tell which linux-image to fetch (apt-cache depends linux-image-amd64 failed)"
	step "apt-cache gave no kernel package; using the cached $pkg"
fi
kver=${pkg#linux-image-}
kdir=$cache/$pkg
if [ ! -f "$kdir/.complete" ]; then
	step "fetching the L2 kernel $pkg (about 70 MB)"
	tmp=$(mktemp -d "$cache/fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	# A plain download into our own dir: the machine's apt configuration stays as it is.
	# The _apt sandbox user could not write under $HOME: download as ourselves.
	(cd "$tmp" && apt-get download -o APT::Sandbox::User="$(id -un)" "$pkg" >&2) ||
		die "apt-get download $pkg failed"
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
	rm -rf "$kdir"
	mkdir -p "$kdir/modules"
	cp "$tmp/x/boot/vmlinuz-$kver" "$kdir/vmlinuz"
	for m in "${mods[@]}"; do
		f=$tmp/x/lib/modules/$kver/kernel/$m.ko
		[ -f "$f" ] || die "$pkg has no uncompressed $m.ko"
		cp "$f" "$kdir/modules/"
	done
	# Kept for the record (what is built in, e.g. the 8250 console and devtmpfs).
	cp "$tmp/x/boot/config-$kver" "$kdir/config"
	dpkg-deb -f "$tmp"/"$pkg"_*.deb Version >"$kdir/version"
	rm -rf "$tmp"
	trap - EXIT
	touch "$kdir/.complete"
	# Debian moved on: the kernels fetched before go.
	find "$cache" -maxdepth 1 -name 'linux-image-*' -type d ! -name "$pkg" -exec rm -rf {} +
fi

# --- the initramfs ---------------------------------------------------------------------------
[ -x "$busybox" ] || die "no $busybox; run 'make setup' (Debian package busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	die "$busybox is not statically linked (install busybox-static)"
[ -f "$init" ] || die "no $init"
command -v cpio >/dev/null || die "cpio not found; run 'make setup'"
# ethtool (Debian's, dynamically linked: it goes in with its libraries), for the ring-reset
# variant's `ethtool -G` (busybox has no ethtool).
ethtool=$(command -v ethtool || echo /usr/sbin/ethtool)
[ -x "$ethtool" ] || die "no ethtool; run 'make setup'"
ethtool_libs=$(ldd "$ethtool" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
# Keyed by everything that goes in, so a changed init.sh builds a new one.
key=$({
	# Contents only: with the paths in the key, two checkouts would evict each other's.
	cat "$init" "$busybox" "$ethtool" $ethtool_libs | sha256sum
	echo "${mods[*]}"
	cat "$kdir/version"
} | sha256sum | cut -c1-12)
initrd=$cache/initramfs-$kver-$key.cpio.gz
if [ ! -f "$initrd" ]; then
	step "building the L2 initramfs ($initrd)"
	tmp=$(mktemp -d "$cache/initrd.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	root=$tmp/root
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,lib/modules}
	cp "$busybox" "$root/bin/busybox"
	cp "$ethtool" "$root/usr/sbin/ethtool"
	for l in $ethtool_libs; do
		mkdir -p "$root$(dirname "$l")"
		cp -L "$l" "$root$l"
	done
	cp "$kdir"/modules/*.ko "$root/lib/modules/"
	printf '%s\n' "${mods[@]##*/}" >"$root/lib/modules/order"
	install -m 0755 "$init" "$root/init"
	# The kernel opens /dev/console before /init runs; without the node init.sh reopens it
	# after mounting devtmpfs.
	mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 >"$tmp/initrd"
	mv "$tmp/initrd" "$initrd"
	rm -rf "$tmp"
	trap - EXIT
	# Older builds of the same kernel go.
	find "$cache" -maxdepth 1 -name "initramfs-$kver-*.cpio.gz" ! -name "${initrd##*/}" -delete
fi

echo "kernel=$kdir/vmlinuz"
echo "initrd=$initrd"
