#!/usr/bin/env bash
# Let this machine run another architecture's binaries (arm64: a Raspberry Pi 4/5) through Debian's
# qemu-user-static, registered in binfmt_misc with the F flag (the kernel opens the interpreter once, so
# chroots and containers without qemu in their own filesystem can run it). Shared by every build that
# runs foreign binaries: the arm64 Molecule base image and the Raspberry Pi disk image (image/build.sh).
# Usage: emulation.sh ARCH   (nothing to do for this machine's own architecture)
set -euo pipefail

arch=${1:?usage: emulation.sh ARCH}
[ "$arch" != "$(dpkg --print-architecture)" ] || exit 0
declare -A qemu_name=([arm64]=aarch64 [armhf]=arm [amd64]=x86_64 [ppc64el]=ppc64le [s390x]=s390x [riscv64]=riscv64)
name=${qemu_name[$arch]:-}
binfmt=/proc/sys/fs/binfmt_misc
say() { printf '[emulation] %s\n' "$*" >&2; }

[ -n "$name" ] || { say "no qemu handler known for $arch"; exit 1; }
# arch-test: mmdebstrap's check that the foreign architecture runs
if [ ! -e "/usr/lib/binfmt.d/qemu-$name.conf" ] || ! command -v arch-test >/dev/null; then
  say "installing Debian's qemu-user-static and arch-test (run $arch binaries)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-user-static arch-test >/dev/null
fi
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
[ -e "$binfmt/qemu-$name" ] || cat "/usr/lib/binfmt.d/qemu-$name.conf" >"$binfmt/register"
if ! grep -q '^enabled' "$binfmt/qemu-$name" || ! grep -q '^flags:.*F' "$binfmt/qemu-$name"; then
  say "$binfmt/qemu-$name is disabled or lacks the F flag: $arch binaries cannot run"
  say "(fix: echo -1 > $binfmt/qemu-$name, then run this again)"
  exit 1
fi
