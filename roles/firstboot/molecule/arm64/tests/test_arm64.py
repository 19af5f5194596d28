"""The site appliance on arm64 (a Raspberry Pi 4/5's Debian 12), emulated: real clients inside the box."""

from __future__ import annotations

import json
import time
import uuid

from cllmh_verify import wait_for

testinfra_hosts = ["docker://mol-arm64-site"]

VENV_PYTHON = "/opt/cllmh/venv/bin/python"
CHECK = "/srv/detect-check"  # prepare.yml: appliance/tests/detect_samples.py, the models, the samples


def test_the_box_is_arm64(host):
    assert host.check_output("uname -m") == "aarch64"
    assert host.check_output("dpkg --print-architecture") == "arm64"


def test_the_recorder_extra_runs_from_aarch64_wheels_checked_against_the_lock(host):
    wheels = host.check_output("ls /opt/cllmh/wheels").split()
    for project in ("numpy", "opencv_python_headless", "ai_edge_litert"):
        (wheel,) = [w for w in wheels if w.startswith(project + "-")]
        assert wheel.endswith("_aarch64.whl"), wheel
    # what is installed is the lock, hash by hash (pip --require-hashes refuses any other file)
    check = host.run(
        "%s -m pip install --no-index --find-links /opt/cllmh/wheels --no-deps --require-hashes --dry-run"
        " -r /opt/cllmh/wheels/recorder.lock.txt",
        VENV_PYTHON,
    )
    assert check.rc == 0 and "Would install" not in check.stdout, check.stdout + check.stderr
    machine = host.check_output(
        "%s -c %s",
        VENV_PYTHON,
        "import platform, cv2, numpy, ai_edge_litert.interpreter; print(platform.machine(), cv2.__version__)",
    )
    assert machine.split()[0] == "aarch64"


def test_the_detector_finds_the_same_labels_as_on_amd64(host):
    """appliance/tests/detect_samples.py, the check test_detect.py passes on amd64, here on arm64.

    With the XNNPACK delegate, as the recorder runs it (qemu-user 10: Debian 12's 7.2 crashed it).
    """
    start = time.monotonic()
    run = host.run(f"{VENV_PYTHON} {CHECK}/detect_samples.py {CHECK}/models {CHECK}/samples")
    print(f"detector check on the emulated arm64 box: {time.monotonic() - start:.0f} s (emulated)")
    assert run.rc == 0, run.stdout + run.stderr  # exit 1 on any label or count unlike amd64's
    assert "XNNPACK delegate" in run.stdout + run.stderr, run.stderr
    found = json.loads(run.stdout.splitlines()[-1])
    assert found["ssdlite_mnv2_person_int8.tflite"]["messi5.jpg"]["person"]  # not an empty pass


def test_the_recorder_runs_unprivileged_and_sandboxed(host):
    """No camera stream here: the recorder got through its sandbox, imports and model, and retries."""
    assert host.service("cllmh-recorder@gate").is_enabled

    def retrying() -> bool:
        journal = host.run("journalctl -u cllmh-recorder@gate --no-pager -o cat").stdout
        return "gate: starting ffmpeg run 2 " in journal

    assert wait_for(retrying, timeout=180, interval=3), host.run(
        "journalctl -u cllmh-recorder@gate --no-pager | tail -20"
    ).stdout  # a wait, not a speed target
    assert host.service("cllmh-recorder@gate").is_running
    assert host.check_output("systemctl show -p User --value cllmh-recorder@gate") == "cllmh"
    assert host.check_output("systemctl show -p NRestarts --value cllmh-recorder@gate") == "0"


def test_a_syslog_line_lands_in_its_file(host):
    marker = f"arm64-{uuid.uuid4().hex[:10]}"
    host.check_output(
        "logger -n 127.0.0.1 -d -P 514 --rfc3164 -t hikvision-nvr -p local0.warning %s",
        f"HDD 2 error {marker}",
    )
    path = "/var/log/cctv/mol-arm64-site/messages.log"

    def lines() -> list[str]:
        return host.run("grep -h -F -- %s %s", marker, path).stdout.splitlines()

    found = wait_for(lines, timeout=60)
    assert found, host.run("ls -R /var/log/cctv").stdout
    assert "local0.warning hikvision-nvr" in found[0]
