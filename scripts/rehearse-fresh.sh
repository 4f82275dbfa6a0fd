#!/usr/bin/env bash
# Rehearses a newcomer's fresh machine, as far as one machine can: a clean clone of HEAD in a
# temporary folder, a new empty cache (VHOST_RS_CACHE), and none of the /usr/local/bin links
# that an earlier `make setup` made; then the README's two commands, `make setup` and
# `make check`. Debian packages and crates installed before stay (removing them would break
# this machine's other users); everything the project keeps in its cache is made anew,
# the test kernel included (about 20 minutes on 2 cores).
# Usage: scripts/rehearse-fresh.sh [MAKE-TARGET...]   (default: setup check)
# Keeps the clone and cache under ~/.cache/vhost-rs-fresh.* and prints where; remove it after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(setup check)

# Under $HOME, as the real cache: the test VM hides /var/cache (shared/PLATFORM.md).
mkdir -p "$HOME/.cache"
base=$(mktemp -d "$HOME/.cache/vhost-rs-fresh.XXXXXX")
cache=$base/cache
git clone -q "$repo" "$base/repo"
# Links an earlier setup left: anything in /usr/local/bin that points into a vhost-rs venv.
for l in /usr/local/bin/*; do
	[ -L "$l" ] || continue
	case $(readlink "$l") in
	*/vhost-rs*/venv/bin/*) rm -f "$l" ;;
	esac
done
echo "rehearse-fresh: clone in $base/repo, cache in $cache" >&2
cd "$base/repo"
rc=0
for t in "${targets[@]}"; do
	env -i HOME="$HOME" TERM="${TERM:-dumb}" VHOST_RS_CACHE="$cache" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		make "$t" </dev/null || { rc=$?; break; }
done
echo "rehearse-fresh: make ${targets[*]}: exit $rc (clone $base/repo, cache $cache)" >&2
echo "rehearse-fresh: run 'make setup' in your own clone afterwards to link your cache's tools again" >&2
exit $rc
