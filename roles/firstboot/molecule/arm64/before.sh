#!/usr/bin/env bash
# Before this scenario (molecule/run-scenarios.sh runs it, in the scenario's log and time limit): the
# image built and checked (make image-checked; `make test` starts it in the background at its beginning
# and this waits for it: image/background.sh), then imported as the box's container image with the site
# file an installer would edit (image/box.py).
set -euo pipefail
root=${CLLMH_ROOT:?}
bash "$root/image/background.sh" wait
"$root/.venv/bin/python" "$root/image/box.py" "${CLLMH_IMAGE_DIR:-$root/build/image}" cllmh/rpi-image:arm64 \
  site_name=jkt-gudang head_office=hq.example.id
