#!/usr/bin/env bash
# Build the Raspberry Pi 4 (arm64) disk image: `make image`.
#  1. base: mmdebstrap of Debian 12 arm64 (main contrib non-free-firmware) with Debian's raspi-firmware
#     and linux-image-arm64, run under qemu-user-static (molecule/bootstrap/emulation.sh); cached as
#     base.tar until its recipe (the package list, the sources, image/initramfs/, base_version) changes.
#  2. roles: the site roles applied offline to the root directory through Ansible's chroot connection
#     (playbooks/image.yml); services are enabled, not started (SYSTEMD_OFFLINE=1).
#  3-4. image/assemble.sh: every per-box secret removed (the first-boot unit, role firstboot, makes them
#     on the box), then the disk image without loop devices and the package manifest.
# make image then checks it without a running kernel (make image-check, tests/test_image.py) and
# compresses it (image/compress.sh: xz and its SHA-256).
# Usage: image/build.sh [OUTDIR]   (default build/image; CLLMH_IMAGE_DIR also sets it)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:-${CLLMH_IMAGE_DIR:-$root/build/image}}
name=cllmh-rpi-arm64
packages=(
  systemd systemd-sysv systemd-timesyncd udev kmod dbus sudo ca-certificates iproute2 procps iputils-ping
  curl gnupg less python3 python3-apt openssh-server wpasupplicant cloud-guest-utils e2fsprogs dosfstools
  raspi-firmware linux-image-arm64 firmware-brcm80211
)
say() { printf '[image] %s: %s\n' "$(date -u +%T)" "$*" >&2; }
started=$(date +%s)
mkdir -p "$out"
log=$out/build.log

# (nft: make image-check validates the image's ruleset with this machine's nft; qemu-user cannot)
for tool in mmdebstrap:mmdebstrap mcopy:mtools mkfs.vfat:dosfstools sfdisk:fdisk mkfs.ext4:e2fsprogs xz:xz-utils \
  debugfs:e2fsprogs nft:nftables; do
  command -v "${tool%%:*}" >/dev/null || {
    say "installing ${tool#*:}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${tool#*:}" >/dev/null
  }
done
bash "$root/molecule/bootstrap/emulation.sh" arm64

# Another user's container that stops runs `systemd-binfmt --unregister`, which removes every handler
# of the host, qemu's too (measured: a build died on "Exec format error" mid-dpkg). Until this build
# ends, a watcher puts the handler back within a tenth of a second.
binfmt=/proc/sys/fs/binfmt_misc
( while sleep 0.1; do
    [ -e "$binfmt/qemu-aarch64" ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register" 2>/dev/null || true
  done ) &
watcher=$!
mounted=()
cleanup() {
  kill "$watcher" 2>/dev/null || true
  for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT

# The mirror this machine's apt uses (read at run time), with the components a Raspberry Pi needs.
sources=$out/debian.sources
python3 - "$sources" <<'PY'
import pathlib, re, sys
text = pathlib.Path("/etc/apt/sources.list.d/debian.sources").read_text()
text = re.sub(r"(?m)^Components:.*$", "Components: main contrib non-free-firmware", text)
text = re.sub(r"(?m)^#.*\n", "", text)
pathlib.Path(sys.argv[1]).write_text(text)
PY

# 1. base
# The base's recipe: the mmdebstrap call below, the sources, the packages and the initramfs settings
# (bump base_version when the call changes). The kernel's postinst makes the initrd (update_initramfs=no
# stops only later updates) with the modules image/initramfs/ chooses: the SD card's and USB disks', not
# MODULES=most's (which took 20-30 min more under emulation, most of it for network drivers).
base_version=2
recipe=$( (echo "$base_version"; cat "$sources"; printf '%s\n' "${packages[@]}"; cat "$here"/initramfs/*/*) \
  | sha256sum | cut -c1-16)
if [ "$(cat "$out/base.recipe" 2>/dev/null)" != "$recipe" ]; then
  say "base: mmdebstrap Debian 12 arm64 (emulated; log $log)"
  t=$(date +%s)
  rm -f "$out/base.tar" "$out/base.recipe"
  mmdebstrap --variant=minbase --architectures=arm64 --include="$(IFS=,; echo "${packages[*]}")" \
    --aptopt='Acquire::Check-Valid-Until "false"' --skip=cleanup/apt/lists \
    --essential-hook='mkdir -p "$1/boot/firmware" "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"' \
    --essential-hook='echo update_initramfs=no >"$1/etc/initramfs-tools/update-initramfs.conf"' \
    --essential-hook='cp "'"$here"'/initramfs/conf.d/cllmh-modules.conf" "$1/etc/initramfs-tools/conf.d/" &&
      install -m 0755 "'"$here"'/initramfs/hooks/cllmh-pi-boot" "$1/etc/initramfs-tools/hooks/"' \
    --dpkgopt=force-confdef --dpkgopt=force-confold \
    --customize-hook='cp "'"$sources"'" "$1/etc/apt/sources.list.d/debian.sources"; rm -f "$1/etc/apt/sources.list"' \
    bookworm "$out/base.tar" "$sources" >"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
  echo "$recipe" >"$out/base.recipe"
  say "base: built in $(( $(date +%s) - t )) s ($(du -m "$out/base.tar" | cut -f1) MiB)"
fi

# 2. roles: a fresh root directory from the base, the playbook through the chroot connection
rootdir=$out/root
say "roles: playbooks/image.yml into $rootdir (chroot, emulated)"
t=$(date +%s)
rm -rf "$rootdir" && mkdir -p "$rootdir"
tar -C "$rootdir" --xattrs --xattrs-include='*' -xf "$out/base.tar"
# The boot partition (LABEL=RASPIFIRM) and the root file system (LABEL=RASPIROOT): what fstab mounts and
# what raspi-firmware writes as root= into cmdline.txt.
cat >"$rootdir/etc/fstab" <<'FSTAB'
# <file system>   <mount point>   <type>  <options>                  <dump> <pass>
LABEL=RASPIROOT   /               ext4    rw,noatime                 0      1
LABEL=RASPIFIRM   /boot/firmware  vfat    rw,noatime,umask=0022      0      2
FSTAB
sed -i -e 's/^#\?ROOTPART=.*/ROOTPART=LABEL=RASPIROOT/' -e 's/^#\?CONSOLES=.*/CONSOLES="tty1"/' \
  "$rootdir/etc/default/raspi-firmware"
grep -q '^ROOTPART=LABEL=RASPIROOT' "$rootdir/etc/default/raspi-firmware" \
  || echo 'ROOTPART=LABEL=RASPIROOT' >>"$rootdir/etc/default/raspi-firmware"
echo cllmh >"$rootdir/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcllmh\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootdir/etc/hosts"
# /run is a tmpfs on the box; in the chroot it is empty: sshd -T (the role's validation) wants /run/sshd.
mkdir -p "$rootdir/run/sshd"
# DNS while the roles install packages (the image's own resolver is systemd-resolved, set up below).
cp --remove-destination /etc/resolv.conf "$rootdir/etc/resolv.conf"
# cmdline.txt, config.txt, the kernel, initrd and device trees into /boot/firmware (raspi-firmware's hook)
# (it wants /proc, mounted in a private mount namespace that ends with the command)
unshare --mount --fork chroot "$rootdir" /bin/sh -c 'mount -t proc proc /proc &&
  DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$1"' sh \
  "$(ls "$rootdir/lib/modules" | sort -V | tail -n 1)" >>"$log" 2>&1
extra_vars=()
[ -n "${CLLMH_IMAGE_VARS:-}" ] && extra_vars=(-e "@$CLLMH_IMAGE_VARS")
# SYSTEMD_OFFLINE=1 reaches every command the chroot connection runs: systemctl enables units and
# ignores start/restart/daemon-reload; Ansible's systemd module knows it. Pipelining: one emulated
# python per task instead of a copy, a chmod, a python and a cleanup (each an emulated process).
SYSTEMD_OFFLINE=1 ANSIBLE_PIPELINING=true ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks ANSIBLE_CONFIG=$root/ansible.cfg CLLMH_ROOT=$root \
  ansible-playbook -i "$here/inventory.yml" -e "ansible_host=$rootdir" "${extra_vars[@]}" \
  "$root/playbooks/image.yml" >>"$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }
say "roles: applied in $(( $(date +%s) - t )) s"

# The kernel's initrd is made once, by its own postinst (image/initramfs/: 437 modules, 14 MiB, about
# 5 min emulated; MODULES=most: 926 modules, 36 MiB, 12-33 min); later triggers skip it until here. On the box, updates
# make it again, the same way.
sed -i 's/^update_initramfs=no$/update_initramfs=yes/' "$rootdir/etc/initramfs-tools/update-initramfs.conf"

# 3-4. secrets out, disk image, xz, checksum, manifest
bash "$here/assemble.sh" "$rootdir" "$out"
say "built in $(( $(date +%s) - started )) s in all"
