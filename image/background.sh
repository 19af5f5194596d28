#!/usr/bin/env bash
# `make image` in the background, for `make test`: the image's build is emulation (computing) while
# lint, pytest and most Molecule scenarios mostly wait, so it starts first; the arm64 scenario
# (roles/firstboot/molecule/arm64/before.sh) waits for the checked image instead of building again, and
# boots it while the image is compressed.
#   background.sh start    start `make image` (output in OUTDIR/make-image.log), return at once
#   background.sh wait     wait until the image is built and checked (make image-check passed), or build
#                          and check it now if no background build was started; print the log so far
#   background.sh finish   wait for the background `make image` to end (the xz), print the rest of its
#                          log, exit with its status (0 when none was started)
# OUTDIR: CLLMH_IMAGE_DIR (default build/image).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${CLLMH_IMAGE_DIR:-$root/build/image}
log=$out/make-image.log
mkdir -p "$out"
pid=$(cat "$out/make-image.pid" 2>/dev/null || true)

running() { [ -n "$pid" ] && [ ! -e "$out/make-image.rc" ] && kill -0 "$pid" 2>/dev/null; }
status() { cat "$out/make-image.rc" 2>/dev/null || echo 1; }

case "${1:-}" in
start)
  rm -f "$out/make-image.rc" "$out/make-image.stage"
  echo "==> make image started in the background ($(date -u +%T)); log: $log"
  # its own session: make's job control and a failing sibling target do not stop it; niced, so that
  # the checks running meanwhile (pytest's servers, the scenarios' waits) get the CPU when they need it
  setsid nice -n 10 bash -c 'make -C "$1" --no-print-directory image >"$2" 2>&1; echo $? >"$3"' _ \
    "$root" "$log" "$out/make-image.rc" </dev/null >/dev/null 2>&1 &
  echo $! >"$out/make-image.pid"
  ;;
wait)
  if [ -z "$pid" ]; then
    make -C "$root" --no-print-directory image
    exit 0
  fi
  echo "==> waiting for the background make image to be built and checked ($(date -u +%T))"
  while running && [ "$(cat "$out/make-image.stage" 2>/dev/null)" != checked ]; do sleep 10; done
  cat "$log"
  if [ "$(cat "$out/make-image.stage" 2>/dev/null)" != checked ]; then
    echo "!! the background make image failed (status $(status)) before its image was checked"
    exit 1
  fi
  echo "==> the image is built and checked ($(date -u +%T)); its compression goes on"
  ;;
finish)
  [ -n "$pid" ] || exit 0
  while running; do sleep 10; done
  rm -f "$out/make-image.pid"
  echo "==> background make image (the end of $log):"
  tail -n 5 "$log"
  rc=$(status)
  [ "$rc" = 0 ] || echo "!! the background make image ended with status $rc: $log"
  exit "$rc"
  ;;
*)
  echo "usage: background.sh start|wait|finish" >&2
  exit 2
  ;;
esac
