#!/usr/bin/env bash
# Let this machine run another architecture's binaries (arm64: a Raspberry Pi 4/5) through qemu-user
# and binfmt_misc: the one place for every build that runs foreign binaries (the arm64 Molecule base
# image, the emulated Molecule scenario and the Raspberry Pi disk image, image/build.sh).
#
# qemu comes from Debian's bookworm-backports (10.0), not bookworm (7.2): Debian 12's qemu-user 7.2
# crashes ai-edge-litert's aarch64 interpreter (SIGSEGV in invoke(), then the process hangs), so the
# detector could not run under it; 10.0 runs it, with and without the XNNPACK delegate.
# The handler is registered with the F flag (the kernel opens the interpreter once, so containers
# without it in their filesystem can use it). Because the kernel keeps the file it opened, a handler
# registered before an upgrade still runs the old qemu: it is registered again after one.
# Usage: emulation.sh ARCH   (nothing to do for this machine's own architecture)
set -euo pipefail

arch=${1:?usage: emulation.sh ARCH}
[ "$arch" != "$(dpkg --print-architecture)" ] || exit 0
min_major=10
backports=/etc/apt/sources.list.d/cllmh-bookworm-backports.sources
binfmt=/proc/sys/fs/binfmt_misc
declare -A qemu_name=([arm64]=aarch64 [armhf]=arm [amd64]=x86_64 [ppc64el]=ppc64le [s390x]=s390x [riscv64]=riscv64)
name=${qemu_name[$arch]:-}

say() { printf '[emulation] %s\n' "$*" >&2; }
[ -n "$name" ] || { say "no qemu handler known for $arch"; exit 1; }

qemu_major() {
  local version
  version=$(dpkg-query -W -f '${Version}' qemu-user 2>/dev/null || true)
  [ -n "$version" ] || version=$(dpkg-query -W -f '${Version}' qemu-user-static 2>/dev/null || true)
  version=${version#*:}
  echo "${version%%.*}"
}

installed=no
major=$(qemu_major)
if [ "${major:-0}" -lt "$min_major" ] || ! command -v arch-test >/dev/null; then
  say "installing qemu-user-static >= $min_major from bookworm-backports and arch-test (found: ${major:-none})"
  [ -s "$backports" ] || cat >"$backports" <<'EOF'
# CLLMH (molecule/bootstrap/emulation.sh): qemu-user-static >= 10 for the emulated arm64 box.
# Backports have priority 100: nothing else is taken from here unless asked for with -t.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends \
    -t bookworm-backports qemu-user-static qemu-user-binfmt arch-test >/dev/null
  installed=yes
  major=$(qemu_major)
  [ "${major:-0}" -ge "$min_major" ] || { say "qemu-user is still ${major:-missing} after the install"; exit 1; }
fi

conf=/usr/lib/binfmt.d/qemu-$name.conf
[ -e "$conf" ] || conf=/usr/share/qemu/binfmt.d/qemu-$name.conf
[ -e "$conf" ] || { say "no binfmt configuration for qemu-$name"; exit 1; }
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
if [ "$installed" = yes ] && [ -e "$binfmt/qemu-$name" ]; then
  # Without a gap (another build may be running arm64 binaries now): the newest handler matches first,
  # so the new qemu is registered under a temporary name before the old handler is removed.
  say "registering qemu-$name again (the kernel still holds the qemu it opened before the upgrade)"
  sed "s/^:qemu-$name:/:cllmh-qemu-$name:/" "$conf" >"$binfmt/register"
  echo -1 >"$binfmt/qemu-$name"
  cat "$conf" >"$binfmt/register"
  echo -1 >"$binfmt/cllmh-qemu-$name"
fi
[ -e "$binfmt/qemu-$name" ] || cat "$conf" >"$binfmt/register"
grep -q '^enabled' "$binfmt/qemu-$name" && grep -q '^flags:.*F' "$binfmt/qemu-$name" || {
  say "$binfmt/qemu-$name is disabled or lacks the F flag: containers could not run $arch binaries"
  say "(fix: echo -1 > $binfmt/qemu-$name, then run this again)"
  exit 1
}
say "qemu-$name $(dpkg-query -W -f '${Version}' qemu-user) handles $arch binaries"
