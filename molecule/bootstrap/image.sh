#!/usr/bin/env bash
# Build the local Debian 12 image with systemd as PID 1 that the lab and every Molecule
# scenario boot. No registry is needed: the root filesystem comes from the Debian mirror this
# machine's apt already uses (read from its sources at run time) via mmdebstrap.
#
# The build is skipped when an image built from this very recipe exists (label cllmh.recipe).
# Usage: image.sh [IMAGE]   (default cllmh/debian12-systemd:latest)
set -euo pipefail

image=${1:-${CLLMH_IMAGE:-cllmh/debian12-systemd:latest}}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
recipe=$(sha256sum "$here/image.sh" | cut -c1-16)
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,iputils-ping,curl,gnupg

say() { printf '[image] %s\n' "$*" >&2; }

if [ "$(docker image inspect -f '{{index .Config.Labels "cllmh.recipe"}}' "$image" 2>/dev/null)" = "$recipe" ]; then
  say "$image is up to date (recipe $recipe)"
  exit 0
fi

sources=""
for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  if [ -s "$candidate" ] && grep -qE '^(URIs:|deb )' "$candidate"; then
    sources=$candidate
    break
  fi
done
[ -n "$sources" ] || { say "no Debian apt sources found on this machine"; exit 1; }

command -v mmdebstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null
}

say "building $image from the mirror in $sources with mmdebstrap (about a minute)"
start=$(date +%s)
# The apt lists are kept in the image on purpose: roles use cache_valid_time, and an image
# with empty lists makes apt answer "No package matching ..." until an update runs.
mmdebstrap --variant=minbase --include="$packages" \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --skip=cleanup/apt/lists \
  --customize-hook=': > "$1/etc/machine-id"' \
  --customize-hook='for u in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service systemd-firstboot.service systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
  --customize-hook='printf "[Journal]\nStorage=persistent\n" > "$1/etc/systemd/journald.conf.d-cllmh" && mkdir -p "$1/etc/systemd/journald.conf.d" && mv "$1/etc/systemd/journald.conf.d-cllmh" "$1/etc/systemd/journald.conf.d/cllmh.conf"' \
  bookworm - "$sources" 2>"/tmp/cllmh-mmdebstrap.log" \
  | docker import \
      -c 'CMD ["/lib/systemd/systemd"]' \
      -c 'ENV container=docker' \
      -c "LABEL cllmh.recipe=$recipe" \
      - "$image" >/dev/null || { say "build failed; see /tmp/cllmh-mmdebstrap.log"; tail -n 20 /tmp/cllmh-mmdebstrap.log >&2; exit 1; }
say "built $image in $(( $(date +%s) - start )) s"
