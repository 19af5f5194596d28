#!/usr/bin/env bash
# Build the local Debian 12 image with systemd as PID 1 that the lab and every Molecule
# scenario boot. No registry is needed: the root filesystem comes from the Debian mirror this
# machine's apt already uses (read from its sources at run time) via mmdebstrap.
#
# The build is skipped when an image built from this very recipe and architecture exists
# (label cllmh.recipe).
#
# Another architecture (arm64: a Raspberry Pi 4/5) is built the same way under emulation: qemu-user
# (Debian's, from bookworm-backports: emulation.sh) runs the foreign binaries through binfmt_misc,
# registered with the F flag (the kernel opens the interpreter once, so containers without it in
# their filesystem can use it).
# Docker 20.10 without experimental features ignores import's --platform (the image then claims
# amd64; `--platform` at create would refuse it): the label cllmh.arch says what is inside, and a
# container runs it without --platform, its binaries going through the handler.
# The images mask what a container has no use for (masked-units, shared with image/box.py), systemd-binfmt
# above all: binfmt_misc is the host's, and a container's systemd would register its own handlers at boot
# (python3.11) and, stopping, unregister every handler on the host (`systemd-binfmt --unregister`), the
# qemu one that arm64 containers run through included.
# Usage: image.sh [IMAGE] [ARCH]   (defaults: cllmh/debian12-systemd:latest, this machine's arch;
#                                  ARCH also from CLLMH_IMAGE_ARCH)
set -euo pipefail

image=${1:-${CLLMH_IMAGE:-cllmh/debian12-systemd:latest}}
native=$(dpkg --print-architecture)
arch=${2:-${CLLMH_IMAGE_ARCH:-$native}}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
recipe=$( (cat "$here/image.sh" "$here/masked-units" && echo "$arch") | sha256sum | cut -c1-16)
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,iputils-ping,curl,gnupg

say() { printf '[image] %s\n' "$*" >&2; }

# Foreign binaries run through qemu-user (bookworm-backports), registered with the F flag.
[ "$arch" = "$native" ] || bash "$here/emulation.sh" "$arch"

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

say "building $image ($arch) from the mirror in $sources with mmdebstrap (amd64: about a minute; arm64, emulated: a few minutes)"
start=$(date +%s)
# The apt lists are kept in the image on purpose: roles use cache_valid_time, and an image
# with empty lists makes apt answer "No package matching ..." until an update runs.
mmdebstrap --variant=minbase --architectures="$arch" --include="$packages" \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --skip=cleanup/apt/lists \
  --customize-hook=': > "$1/etc/machine-id"' \
  --customize-hook='for u in $(grep -v "^#" "'"$here/masked-units"'"); do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
  --customize-hook='printf "[Journal]\nStorage=persistent\n" > "$1/etc/systemd/journald.conf.d-cllmh" && mkdir -p "$1/etc/systemd/journald.conf.d" && mv "$1/etc/systemd/journald.conf.d-cllmh" "$1/etc/systemd/journald.conf.d/cllmh.conf"' \
  bookworm - "$sources" 2>"/tmp/cllmh-mmdebstrap-$arch.log" \
  | docker import --platform "linux/$arch" \
      -c "LABEL cllmh.arch=$arch" \
      -c 'CMD ["/lib/systemd/systemd"]' \
      -c 'ENV container=docker' \
      -c "LABEL cllmh.recipe=$recipe" \
      - "$image" >/dev/null || {
        # docker import may have taken a partial tree: no image may carry the label of a failed build
        docker image rm -f "$image" >/dev/null 2>&1 || true
        say "build failed; see /tmp/cllmh-mmdebstrap-$arch.log"; tail -n 20 "/tmp/cllmh-mmdebstrap-$arch.log" >&2; exit 1; }
say "built $image in $(( $(date +%s) - start )) s"
