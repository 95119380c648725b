#!/usr/bin/env bash
# Build a Debian 13 (trixie) root holding libreswan 5.2, for
#   ikeda lab up --ike 1|2 --peer libreswan --peer-root DIR
# Debian's libreswan and strongSwan packages conflict (both ship `ipsec`), so
# the lab runs pluto chrooted into this root instead of from the host. Needs
# root and debootstrap; about 50 s and 280 MB. Idempotent: a root built by
# this script (its stamp file says what it holds) is left as it is.
#
#   scripts/peer-root.sh DIR
set -Eeuo pipefail
dir=${1:?usage: scripts/peer-root.sh DIR}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
# bind9-host: libreswan depends on the virtual package `host`, which
# debootstrap's resolver cannot pick a provider for.
pkgs=libreswan,bind9-host
stamp="$dir/.ikeda-peer-root"
want="$suite $pkgs"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dir/usr/libexec/ipsec/pluto" ]]; then
  echo "peer root $dir: ready ($want)"
  exit 0
fi
[[ $EUID -eq 0 ]] || { echo "peer-root.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "peer-root.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
echo "== building the libreswan peer root in $dir ($suite: $pkgs, from $mirror)"
tmp="$dir.building"
rm -rf "$tmp"
mkdir -p "$(dirname "$dir")"
if ! debootstrap --variant=minbase --include="$pkgs" "$suite" "$tmp" "$mirror" > "$tmp.log" 2>&1; then
  tail -20 "$tmp.log" >&2
  [[ -f "$tmp/debootstrap/debootstrap.log" ]] && tail -20 "$tmp/debootstrap/debootstrap.log" >&2
  echo "peer-root.sh: debootstrap failed (log: $tmp.log)" >&2
  exit 1
fi
rm -f "$tmp.log"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "$want" > "$stamp"
echo "peer root $dir: $(chroot "$dir" ipsec --version)"
