#!/usr/bin/env bash
# Turn a prepared root directory (image/build.sh, stages 1-2) into the flashable disk image, without
# loop devices: per-box secrets removed, a FAT32 boot partition (label RASPIFIRM, /boot/firmware's files,
# written with mtools), an ext4 root (label RASPIROOT, mkfs.ext4 -d) in a file partitioned with sfdisk
# (MBR, 4 MiB aligned), and the manifest of installed packages. image/compress.sh makes the .xz.
# Usage: image/assemble.sh ROOTDIR OUTDIR   (ROOTDIR is changed: it is the build's own copy)
set -euo pipefail
trap 'echo "[image] assemble.sh failed at line $LINENO" >&2' ERR

rootdir=${1:?usage: assemble.sh ROOTDIR OUTDIR}
out=${2:?usage: assemble.sh ROOTDIR OUTDIR}
name=cllmh-rpi-arm64
boot_mib=512
# The root file system gets this much room beyond its content; the first boot grows it to the card.
root_slack_mib=768
say() { printf '[image] %s: %s\n' "$(date -u +%T)" "$*" >&2; }

# no secret of the build in the image: each box makes its own at its first boot (cllmh firstboot)
rm -f "$rootdir"/etc/ssh/ssh_host_*_key "$rootdir"/etc/ssh/ssh_host_*_key.pub \
  "$rootdir"/etc/cllmh-status/session.secret "$rootdir"/etc/cllmh-status/live.secret \
  "$rootdir"/etc/cllmh-status/users.yaml "$rootdir"/etc/cllmh/tls/site.key "$rootdir"/etc/cllmh/tls/site.crt \
  "$rootdir"/var/lib/systemd/random-seed "$rootdir"/var/lib/dbus/machine-id
: >"$rootdir/etc/machine-id"
[ -L "$rootdir/etc/resolv.conf" ] || ln -sf ../run/systemd/resolve/stub-resolv.conf "$rootdir/etc/resolv.conf"
rm -rf "$rootdir"/run/* "$rootdir"/root/.ansible "$rootdir"/tmp/* "$rootdir"/var/tmp/* "$rootdir"/var/cache/apt/archives/*.deb
find "$rootdir/var/log" -type f -exec truncate -s 0 {} +

# the disk image: MBR, FAT32 boot partition (4 MiB aligned), ext4 root; no loop device needed
say "disk: assembling $name.img"
t=$(date +%s)
work=$out/parts
rm -rf "$work" && mkdir -p "$work"
# the packages' manifest, read with this machine's dpkg-query from the image's database
dpkg-query --admindir="$rootdir/var/lib/dpkg" -W -f '${Package}\t${Version}\t${Architecture}\n' \
  | sort >"$out/$name.packages.tsv"
if [ -d "$rootdir/opt/cllmh/venv/lib" ]; then
  find "$rootdir/opt/cllmh/venv/lib" -maxdepth 3 -name '*.dist-info' -printf '%f\n' \
    | sed -E 's/^(.*)-([^-]*)\.dist-info$/\1\t\2\tpython/' | sort >>"$out/$name.packages.tsv"
fi
mv "$rootdir/boot/firmware" "$work/firmware" && mkdir -m 0755 "$rootdir/boot/firmware"
mkfs.vfat -F 32 -n RASPIFIRM -C "$work/boot.img" $(( boot_mib * 1024 )) >/dev/null
[ -z "$(ls -A "$work/firmware")" ] || mcopy -s -p -i "$work/boot.img" "$work/firmware"/* ::
root_mib=$(( $(du -sm "$rootdir" | cut -f1) * 110 / 100 + root_slack_mib ))
mkfs.ext4 -q -L RASPIROOT -d "$rootdir" "$work/root.img" "${root_mib}M"
img=$out/$name.img
rm -f "$img" "$img.xz"
truncate -s $(( (4 + boot_mib + root_mib) * 1024 * 1024 )) "$img"
sfdisk --quiet "$img" <<SFDISK
label: dos
start=4MiB, size=${boot_mib}MiB, type=c, bootable
start=$(( 4 + boot_mib ))MiB, type=83
SFDISK
dd if="$work/boot.img" of="$img" bs=1M seek=4 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$img" bs=1M seek=$(( 4 + boot_mib )) conv=notrunc,sparse status=none
rm -rf "$work"
say "disk: assembled in $(( $(date +%s) - t )) s"
say "$img: $(du -m --apparent-size "$img" | cut -f1) MiB raw, $(wc -l <"$out/$name.packages.tsv") packages"
