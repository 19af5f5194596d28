#!/usr/bin/env bash
# The image built and checked in the background, for `make test`: the build is emulation (computing)
# while lint, pytest and most Molecule scenarios mostly wait, so it starts first, niced; the arm64
# scenario (roles/firstboot/molecule/arm64/before.sh) waits for the checked image instead of building it
# again. No xz here: compression is for the flashable file (`make image`), not for the tests.
#   background.sh start   start `make image-checked` (output in OUTDIR/image-checked.log), return at once
#   background.sh wait    wait until that build has ended (or build and check now when none was
#                         started), print its log, exit 1 if it failed
#   background.sh stop    end a build still running (make test failed before the arm64 scenario)
# OUTDIR: CLLMH_IMAGE_DIR (default build/image).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${CLLMH_IMAGE_DIR:-$root/build/image}
log=$out/image-checked.log
mkdir -p "$out"
pid=$(cat "$out/image-checked.pid" 2>/dev/null || true)

running() { [ -n "$pid" ] && [ ! -e "$out/image-checked.rc" ] && kill -0 "$pid" 2>/dev/null; }

case "${1:-}" in
start)
  if running; then echo "!! a background image build is already running (pid $pid)" >&2; exit 1; fi
  rm -f "$out/image-checked.rc"
  echo "==> make image-checked started in the background ($(date -u +%T)); log: $log"
  # its own session (make's job control and a failing sibling target do not stop it), niced: the checks
  # running meanwhile (pytest's servers, the scenarios' waits) get the CPU when they need it
  setsid nice -n 10 bash -c 'make -C "$1" --no-print-directory image-checked >"$2" 2>&1; echo $? >"$3"' _ \
    "$root" "$log" "$out/image-checked.rc" </dev/null >/dev/null 2>&1 &
  echo $! >"$out/image-checked.pid"
  ;;
wait)
  if [ -z "$pid" ]; then
    exec make -C "$root" --no-print-directory image-checked
  fi
  echo "==> waiting for the background make image-checked ($(date -u +%T))"
  while running; do sleep 10; done
  cat "$log"
  rc=$(cat "$out/image-checked.rc" 2>/dev/null || echo 1)
  if [ "$rc" != 0 ]; then
    echo "!! the background make image-checked failed (status $rc): $log"
    exit 1
  fi
  echo "==> the image is built and checked ($(date -u +%T))"
  ;;
stop)
  if running; then
    echo "==> stopping the background make image-checked (pid $pid)"
    kill -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$out/image-checked.pid"
  ;;
*)
  echo "usage: background.sh start|wait|stop" >&2
  exit 2
  ;;
esac
