#!/usr/bin/env bash
# Before this scenario (molecule/run-scenarios.sh runs it, in the scenario's log and time limit): the
# image built, checked and compressed (make image), then imported as the box's container image with the
# site file an installer would edit (image/box.py).
set -euo pipefail
root=${CLLMH_ROOT:?}
make -C "$root" --no-print-directory image
"$root/.venv/bin/python" "$root/image/box.py" "${CLLMH_IMAGE_DIR:-$root/build/image}" cllmh/rpi-image:arm64 \
  site_name=jkt-gudang head_office=hq.example.id
