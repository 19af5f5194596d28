#!/usr/bin/env bash
# Make a Docker engine available for the lab and the Molecule scenarios.
#
# - An engine that already answers `docker info` is used as it is.
# - Otherwise Debian's docker.io is installed (if missing) and dockerd is started in the
#   background with its own data root and pidfile, registering the runc wrapper that drops
#   capabilities the host cannot grant (needed on VMs without CAP_SYS_RESOURCE; harmless elsewhere).
#
# Usage: engine.sh start | stop | status
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${CLLMH_ENGINE_STATE:-/var/lib/cllmh-lab}
pidfile=/run/cllmh-dockerd.pid
log=$state/dockerd.log

say() { printf '[engine] %s\n' "$*" >&2; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ -x /usr/bin/python3 ] || missing+=(python3)
  command -v iptables >/dev/null || missing+=(iptables)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start() {
  if docker info >/dev/null 2>&1; then
    say "a Docker engine is already running: using it"
    return 0
  fi
  install_packages
  mkdir -p "$state/docker"
  install -m 0755 "$here/runc-wrapper" "$state/runc-wrapper"
  say "starting dockerd (data root $state/docker, log $log)"
  # Its own session (setsid): dockerd must not belong to the process group or session of whatever
  # shell started it. Without it, stopping that job (`kill -- -PGID`, a timeout, a closed session)
  # also stops the engine, and every container of every other user goes with it. The log is appended
  # to, one header per start, so the end of the previous engine stays readable.
  printf '==== %s engine.sh: starting dockerd\n' "$(date -u +%FT%TZ)" >>"$log"
  setsid nohup dockerd \
    --data-root "$state/docker" \
    --pidfile "$pidfile" \
    --add-runtime "cllmh-runc=$state/runc-wrapper" \
    --default-runtime cllmh-runc \
    >>"$log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      say "dockerd is up"
      return 0
    fi
    sleep 1
  done
  say "dockerd did not answer within 60 s; last lines of $log:"
  tail -n 20 "$log" >&2
  return 1
}

stop() {
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "stopping dockerd ($(cat "$pidfile"))"
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 30); do
      kill -0 "$(cat "$pidfile" 2>/dev/null || echo 0)" 2>/dev/null || return 0
      sleep 1
    done
  else
    say "no dockerd started by CLLMH is running"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) docker info --format '{{.ServerVersion}} {{.DefaultRuntime}}' ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
