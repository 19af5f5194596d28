#!/usr/bin/env bash
# Runs Molecule scenarios (`molecule test`) in MOLECULE_LANES parallel lanes (default 2), taking the
# scenarios in the order given (longest first: the Makefile's SCENARIOS). Each scenario's whole output
# goes to build/molecule-logs/<role>-<scenario>.log; this prints one line when a scenario starts and
# one when it ends, and at the end, as its last lines, what failed (pytest's FAILED/E lines, Ansible's
# fatal lines) so that the tail of a CI log names the failing test.
#
# Why lanes: most of a scenario's time is spent waiting (containers booting, outages held for minutes,
# retries), not computing; two scenarios share a 2-core machine well. Scenarios of different roles do
# not share containers, networks or Molecule's ephemeral directories (keyed by role and scenario).
#
# A scenario may have a before.sh (run first, in its log and time limit).
# MOLECULE_EXTRA: scenarios that each get a lane of their own from the start, beside the MOLECULE_LANES
# lanes, with their own time limit MOLECULE_EXTRA_TIMEOUT (`make test`: the arm64 scenario, whose
# before.sh first waits for the image built in the background, image/background.sh).
# A scenario that prints "CLLMH SKIPPED:" (its real service cannot run here) is reported SKIPPED, never
# passed. Exit status: 1 when any scenario failed.
set -uo pipefail

root=${CLLMH_ROOT:?CLLMH_ROOT must name the repository}
lanes=${MOLECULE_LANES:-2}
limit=${MOLECULE_TIMEOUT:-1200}
read -r -a extras <<<"${MOLECULE_EXTRA:-}"
extra_limit=${MOLECULE_EXTRA_TIMEOUT:-$limit}
logs=$root/build/molecule-logs
mkdir -p "$logs"

log_of() { # role_dir scenario
  echo "$logs/$(basename "$1")-$2.log"
}

run_one() { # scenario path (roles/ROLE/molecule/SCENARIO/), time limit (s)
  local path=${1%/} limit=$2 role_dir scenario log start rc
  role_dir=$(dirname "$(dirname "$path")")
  scenario=$(basename "$path")
  log=$(log_of "$role_dir" "$scenario")
  start=$(date +%s)
  # A scenario's before.sh (the arm64 one: make image and the box's container image) runs first, in the
  # same log and within the same time limit.
  (cd "$root/$role_dir" && timeout --kill-after=30 "$limit" bash -c '
    if [ -x "molecule/$1/before.sh" ]; then
      echo "==> molecule/$1/before.sh"; "molecule/$1/before.sh" || exit $?
    fi
    exec molecule -c "$2/molecule/base.yml" test -s "$1"' _ "$scenario" "$root") >"$log" 2>&1
  rc=$?
  echo "$rc $(($(date +%s) - start)) $limit" >"$log.result"
  return "$rc"
}

summary_of() { # log: the lines that say what failed
  grep -a -E '(FAILED|ERROR)[ :]|E   |fatal: \[|_{5,} test' "$1" | grep -a -v 'RETRYING' | tail -n 60 || true
}

declare -A running=() # pid -> scenario path
declare -A extra=()   # pid -> 1 for the MOLECULE_EXTRA scenarios (not counted in the lanes)
queue=("$@")
next=0
failed=()

launch() { # scenario path, time limit (s), how it is announced
  run_one "$1" "$2" &
  running[$!]=$1
  echo "==> molecule test started$3: ${1%/} ($(date -u +%H:%M:%S)${4:-})"
}

start_next() {
  local path=${queue[$next]}
  next=$((next + 1))
  launch "$path" "$limit" ""
}

in_lanes() { echo $((${#running[@]} - ${#extra[@]})); }

report() { # scenario path
  local path=${1%/} role_dir scenario log rc secs
  role_dir=$(dirname "$(dirname "$path")")
  scenario=$(basename "$path")
  log=$(log_of "$role_dir" "$scenario")
  read -r rc secs bound <"$log.result" 2>/dev/null || { rc=1 secs=? bound=?; }
  if [ "$rc" != 0 ]; then
    [ "$rc" = 124 ] && echo "!! $role_dir ($scenario) timed out after ${bound} s"
    echo "!! molecule scenario $role_dir/$scenario failed (rc=$rc, ${secs} s); full log: $log"
    summary_of "$log"
    failed+=("$path")
  elif grep -a -q 'CLLMH SKIPPED:' "$log"; then
    echo "==> $role_dir ($scenario) SKIPPED, not passed: $(sed 's/\x1b\[[0-9;]*m//g' "$log" |
      grep -a -o -m1 "CLLMH SKIPPED:[^\"']*") ... (why: $log)"
  else
    echo "==> $role_dir ($scenario) passed in $secs s"
  fi
}

(while sleep 300; do echo "... molecule still running ($(date -u +%H:%M:%S))"; done) &
ticker=$!
trap 'kill $ticker 2>/dev/null' EXIT

for path in "${extras[@]}"; do
  launch "$path" "$extra_limit" " in a lane of its own" ", limit ${extra_limit} s"
  extra[$!]=1
done
while [ "$next" -lt "${#queue[@]}" ] && [ "$(in_lanes)" -lt "$lanes" ]; do start_next; done
while [ "${#running[@]}" -gt 0 ]; do
  finished=""
  wait -n -p finished
  [ -n "$finished" ] && [ -n "${running[$finished]:-}" ] || continue
  path=${running[$finished]}
  unset "running[$finished]" "extra[$finished]"
  report "$path"
  while [ "$next" -lt "${#queue[@]}" ] && [ "$(in_lanes)" -lt "$lanes" ]; do start_next; done
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "!! ${#failed[@]} Molecule scenario(s) failed: ${failed[*]}"
  for path in "${failed[@]}"; do
    role_dir=$(dirname "$(dirname "${path%/}")")
    echo "-- what failed in $role_dir ($(basename "${path%/}")):"
    summary_of "$(log_of "$role_dir" "$(basename "${path%/}")")"
  done
  exit 1
fi
echo "==> every Molecule scenario passed or was reported SKIPPED"
