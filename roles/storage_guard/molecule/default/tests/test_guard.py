"""The storage guard service frees space on a size-limited filesystem inside the site."""

from __future__ import annotations

import json
from pathlib import Path

from cllmh_verify import exposure, wait_for

testinfra_hosts = ["docker://mol-guard-site"]

ROOT = "/var/lib/cllmh/recordings"
PY = "/opt/cllmh/venv/bin/python"

# Writes events with the package's own event writer (cllmh.events.EventWriter), as the recorder's user;
# the first (oldest, "other": the first the guard would take) is marked "keep" with the one
# implementation the status page uses (cllmh.events.set_keep).
WRITER = r"""
import sys, time
from pathlib import Path
from cllmh import events as ev
root = Path(sys.argv[1]); index = ev.Index(root)
segment = Path("/tmp/segment.bin"); segment.write_bytes(b"\0" * 1_500_000)
kinds = {"o": {"cat": 0.7}, "v": {"car": 0.9}, "p": {"person": 0.9}}
start = time.time() - 3600
for n, kind in enumerate("ooovoopoovooooo" * 2):
    writer = ev.EventWriter.open(root, camera="gerbang", event_id=f"ev{n:02d}{kind}", start=start + n,
                                 info={}, index=index)
    writer.update(labels=kinds[kind])
    writer.add_segment(segment, start + n, start + n + 9)
    writer.finish(end=start + n + 9)
    if n == 0:
        ev.set_keep(root, writer.event_id, True, by="molecule")
    time.sleep(0.3)  # a few cameras' worth of events arriving, faster than the floor allows
print("written")
"""


# A LAN host flooding syslog: lines appended to its per-host file (as syslog-ng writes them) until the
# filesystem is down to the given fraction free.
FLOOD = r"""
import shutil, sys
from pathlib import Path
path, stop = Path(sys.argv[1]), float(sys.argv[2])
line = b"Nov 26 12:00:00 10.0.0.66 flood: " + b"A" * 990 + b"\n"
with open(path, "ab") as log:
    while shutil.disk_usage(path.parent).free > stop * shutil.disk_usage(path.parent).total:
        log.write(line * 256)
        log.flush()
print(path.stat().st_size)
"""
LOGS = "/var/lib/cllmh/cctv-logs"  # the site's per-host logs, on the recordings' filesystem here


def free_percent(host) -> float:
    out = host.check_output("df --output=pcent %s | tail -1", ROOT).strip().rstrip("%")
    return 100 - float(out)


def test_the_guard_runs_unprivileged(host):
    svc = host.service("cllmh-guard")
    assert svc.is_running and svc.is_enabled
    assert host.check_output("systemctl show -p User --value cllmh-guard") == "cllmh"


def test_a_broken_configuration_is_refused_with_a_clear_message(host):
    host.check_output("printf 'floor_percent: 0\\nunknown: 1\\n' > /tmp/bad-guard.yaml")
    result = host.run("/opt/cllmh/venv/bin/cllmh guard --check --config /tmp/bad-guard.yaml")
    assert result.rc == 2
    assert "floor_percent" in result.stderr and "unknown" in result.stderr


KEPT = "ev00o"


def test_the_guard_frees_space_oldest_other_events_first_but_never_a_kept_one(host):
    host.check_output(f"cat > /tmp/writer.py << 'EOF'\n{WRITER}\nEOF")
    # 30 events x 1.5 MB = 45 MB in 9 s into a 40 MiB filesystem with a 25 % floor:
    # no write may fail, and the guard brings the floor back
    out = host.run("runuser -u cllmh -- %s /tmp/writer.py %s", PY, ROOT)
    assert out.rc == 0 and "written" in out.stdout, out.stderr

    assert wait_for(lambda: free_percent(host) >= 25, timeout=30), free_percent(host)

    kept = set(host.check_output("ls %s/gerbang/*/", ROOT).split())
    written = [f"ev{n:02d}{k}" for n, k in enumerate("ooovoopoovooooo" * 2)]
    deleted = [e for e in written if e not in kept]
    assert deleted and all(e.endswith("o") for e in deleted), deleted
    assert KEPT in kept and host.file(f"{ROOT}/.keep/{KEPT}").exists  # the oldest, marked keep, stays
    kept_other = [e for e in written if e in kept and e.endswith("o") and e != KEPT]
    assert max(written.index(e) for e in deleted) < min(written.index(e) for e in kept_other)

    log = host.check_output("journalctl -u cllmh-guard --no-pager")
    assert "deleted other event" in log and "free space below the floor" in log

    status = json.loads(
        host.check_output(
            "%s -c \"import sqlite3; print(sqlite3.connect('%s/index.sqlite3').execute("
            "'select status from guard_status').fetchone()[0])\"",
            PY,
            ROOT,
        )
    )
    assert status["deletions_24h"] == len(deleted)
    assert status["free_percent"] >= 25
    assert status["kept_events"] == 1 and status["kept_fill"] is False


def test_operators_read_the_service_s_status_without_touching_it(host):
    files = f"stat -c '%U %n' {ROOT}/index.sqlite3*"
    before = host.check_output(files)
    result = host.run("/opt/cllmh/venv/bin/cllmh guard --status")
    assert result.rc == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["age_s"] < 10 and status["free_percent"] >= 25 and "write_rate_bytes_per_s" in status
    # run as root against the service's database: no file created, none taken over by root
    assert host.check_output(files).split("\n") == before.split("\n")
    assert "root" not in host.check_output(f"stat -c %U {ROOT}/index.sqlite3*")


def test_a_system_directory_as_recordings_dir_is_refused(host):
    host.check_output("printf 'recordings_dir: /\\n' > /tmp/root-guard.yaml")
    result = host.run("/opt/cllmh/venv/bin/cllmh guard --check --config /tmp/root-guard.yaml")
    assert result.rc == 2
    assert "recordings_dir" in result.stderr and "system directory" in result.stderr


def test_the_guard_unit_is_sandboxed(host):
    assert exposure(host, "cllmh-guard.service") <= 2.5
    # Sandboxed and still working: the service wrote its status (test above) and has no network.
    assert host.check_output("systemctl show -p PrivateNetwork --value cllmh-guard") == "yes"


LOCK = Path(__file__).resolve().parents[5] / "appliance/locks/guard.txt"


def test_the_extra_s_wheels_are_exactly_the_locked_versions(host):
    locked = dict(
        line.split()[0].split("==")
        for line in LOCK.read_text().splitlines()
        if line and not line.startswith("#")
    )
    installed = dict(
        line.split("==")
        for line in host.check_output("/opt/cllmh/venv/bin/pip freeze --exclude cllmh").splitlines()
        if "==" in line
    )
    normalise = lambda name: name.lower().replace("_", "-").replace(".", "-")  # noqa: E731
    assert {normalise(k): v for k, v in installed.items()} == {normalise(k): v for k, v in locked.items()}


def test_a_wheel_that_does_not_match_the_lock_s_hash_is_refused(host):
    """The role installs the extras with pip --require-hashes from the lock it copied: a wheel changed after
    the lock was reviewed is refused, not installed."""
    lock = "/opt/cllmh/wheels/guard.lock.txt"
    pip = "/opt/cllmh/venv/bin/pip install --dry-run --no-index --no-deps --force-reinstall"
    install = f"{pip} --require-hashes -r {lock}"
    assert host.run(f"{install} --find-links /opt/cllmh/wheels").rc == 0
    host.check_output(
        "rm -rf /tmp/wh && cp -r /opt/cllmh/wheels /tmp/wh && "
        + "for w in /tmp/wh/psutil-*.whl; do echo x >> $w; done"
    )
    tampered = host.run(f"{install} --find-links /tmp/wh")
    assert tampered.rc != 0 and "DO NOT MATCH THE HASHES" in tampered.stderr, tampered.stderr


def guard_status(host) -> dict:
    return json.loads(host.check_output("/opt/cllmh/venv/bin/cllmh guard --status"))


def test_a_log_flood_near_the_floor_deletes_no_recording_and_logrotate_cuts_it(host):
    events = host.check_output("ls %s/gerbang/*/", ROOT)
    deletions = guard_status(host)["deletions_24h"]
    host.check_output(f"install -d -m 0750 -o root -g adm {LOGS}/10.0.0.66")  # as syslog-ng creates it
    host.check_output(f"cat > /tmp/flood.py << 'EOF'\n{FLOOD}\nEOF")
    # from just above the floor (25 %) down to 10 % free
    flood = int(host.check_output(f"{PY} /tmp/flood.py {LOGS}/10.0.0.66/messages.log 0.10"))
    # the service has counted the flood (it reads the 0750 root:adm directory with the adm group) ...
    assert wait_for(lambda: guard_status(host)["log_bytes"] >= flood, timeout=30), guard_status(host)
    status = guard_status(host)
    # ... and deleted nothing for it
    assert status["free_percent"] < 25 and status["deletions_24h"] == deletions, status
    assert host.check_output("ls %s/gerbang/*/", ROOT) == events
    assert "over their cap" in host.check_output("journalctl -u cllmh-guard --no-pager")
    print(f"flood {flood / 1e6:.1f} MB: free {status['free_percent']} % (floor 25 %), no recording deleted")

    # logrotate (the service its 5-minute timer starts) cuts the flooded file at its size cap (1M here)
    assert "OnCalendar=*:0/5" in host.check_output("systemctl cat logrotate.timer")
    host.check_output("systemctl start logrotate.service")
    files = host.check_output(f"ls {LOGS}/10.0.0.66/").split()
    assert len(files) == 2 and "messages.log" in files, files
    assert host.file(f"{LOGS}/10.0.0.66/messages.log").size == 0
