#!/usr/bin/env bash
# The flashable file: the checked disk image compressed with xz, and its SHA-256 (what an installer
# checks before flashing). Last step of `make image`, after make image-check.
# Usage: image/compress.sh OUTDIR
set -euo pipefail
out=${1:?usage: compress.sh OUTDIR}
name=cllmh-rpi-arm64
img=$out/$name.img
say() { printf '[image] %s: %s\n' "$(date -u +%T)" "$*" >&2; }
t=$(date +%s)
rm -f "$img.xz" "$img.xz.sha256"
xz -T2 -6 -k "$img"
(cd "$out" && sha256sum "$name.img.xz" >"$name.img.xz.sha256")
say "xz: $(( $(date +%s) - t )) s; $img.xz: $(du -m --apparent-size "$img" | cut -f1) MiB raw, \
$(du -m "$img.xz" | cut -f1) MiB compressed"
