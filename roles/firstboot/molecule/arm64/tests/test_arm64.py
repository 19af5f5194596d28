"""The Raspberry Pi image booted as a container, arm64 under emulation (image/box.py), after its first
boot and the controller's site playbook: real clients inside the box and from the camera host."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import testinfra
from cllmh_verify import ffprobe_hls, login_cookie, wait_for

testinfra_hosts = ["docker://mol-arm64-site"]

VENV_PYTHON = "/opt/cllmh/venv/bin/python"
CHECK = "/srv/detect-check"  # prepare.yml: appliance/tests/detect_samples.py, the models, the samples
SITE = "jkt-gudang"  # the site file's site_name (before.sh) and the inventory's cllmh_site_name
BASE = "https://mol-arm64-site"
HLS = f"{BASE}/hls/gate/index.m3u8"
VIEWER = ("satpam", "Lihat-Kamera-1")
RECORDINGS = "/var/lib/cllmh/recordings"


@pytest.fixture(scope="module")
def camera():
    return testinfra.get_host("docker://mol-arm64-camera")


def test_the_box_is_arm64(host):
    assert host.check_output("uname -m") == "aarch64"
    assert host.check_output("dpkg --print-architecture") == "arm64"


def test_the_first_boot_made_this_box_s_own_secrets_from_the_site_file(host):
    done = host.file("/var/lib/cllmh/firstboot.done").content_string.splitlines()
    assert "ssh host keys" in done and "status page session secret" in done, done
    assert f"host name {SITE}" in done and "self-signed TLS certificate" in done, done
    assert any(line.startswith("root on ") and line.endswith("not grown") for line in done), done
    assert host.check_output("hostname") == SITE
    assert json.loads(host.file("/etc/cllmh/site.json").content_string)["head_office"] == "hq.example.id"
    # the image has no host key (make image-check): these are this box's, made at its first boot
    assert host.file("/etc/ssh/ssh_host_ed25519_key").mode == 0o600
    assert host.run("ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub").rc == 0


@pytest.mark.parametrize(
    "unit",
    ["nginx.service", "syslog-ng.service", "cllmh-guard.service", "cllmh-status.socket", "ssh.service",
     "cllmh-ingest@gate.service", "cllmh-recorder@gate.service", "fail2ban.service"],
)  # fmt: skip
def test_the_image_s_services_run(host, unit):
    """Enabled by the image's build (the whole site playbook, emulated) and the camera's run."""
    assert host.service(unit).is_running, host.run("systemctl status --no-pager -n 20 %s", unit).stdout


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
    recorder = host.service("cllmh-recorder@gate")
    assert recorder.is_enabled and recorder.is_running
    assert host.check_output("systemctl show -p User --value cllmh-recorder@gate") == "cllmh"
    assert host.check_output("systemctl show -p NoNewPrivileges --value cllmh-recorder@gate") == "yes"


def test_hls_over_https_needs_a_login_and_is_the_camera_stream(camera, host):
    """From the camera host (another device on the network), as a viewer's browser; the stream's
    codec read with the box's own ffprobe (the camera host has GStreamer, not ffmpeg) and the same
    session."""

    def code(cookie: str = "") -> str:
        return camera.check_output(
            "curl -sk -o /dev/null -w '%%{http_code}' -H %s %s", f"Cookie: {cookie}", HLS
        )

    session = login_cookie(camera, BASE, *VIEWER)
    assert wait_for(lambda: code(session) == "200", timeout=180, interval=3), code(session)  # a wait
    assert code() == "401"
    stream = ffprobe_hls(host, HLS, session, timeout=180)
    assert stream == {"codec_name": "h264", "width": 768, "height": 576}, stream  # copied, not re-encoded


def test_a_person_event_from_the_sample_camera_is_kept(host):
    def kept() -> list[str]:
        return host.run("ls %s/gate/*/*/event.json 2>/dev/null", RECORDINGS).stdout.split()

    # emulated decoding and detection: minutes, not seconds (a wait, not a speed target)
    sidecars = wait_for(kept, timeout=900, interval=5)
    assert sidecars, host.check_output("journalctl -u cllmh-recorder@gate --no-pager | tail -20")
    sidecar = json.loads(host.file(sidecars[0]).content_string)
    assert sidecar["camera"] == "gate" and sidecar["labels"]["person"] >= 0.5, sidecar
    clip = sidecars[0].rsplit("/", 1)[0] + "/" + sidecar["clips"][0]["file"]
    probe = host.check_output(
        "ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 %s",
        clip,
    )
    assert probe.strip() == "h264,768,576"  # the camera's own stream, copied


def test_a_syslog_line_lands_in_its_file(host):
    marker = f"arm64-{uuid.uuid4().hex[:10]}"
    host.check_output(
        "logger -n 127.0.0.1 -d -P 514 --rfc3164 -t hikvision-nvr -p local0.warning %s",
        f"HDD 2 error {marker}",
    )
    path = f"/var/log/cctv/{SITE}/messages.log"

    def lines() -> list[str]:
        return host.run("grep -h -F -- %s %s", marker, path).stdout.splitlines()

    found = wait_for(lines, timeout=60)
    assert found, host.run("ls -R /var/log/cctv").stdout
    assert "local0.warning hikvision-nvr" in found[0]
