"""A person event from the live camera: one clip (copied), snapshot and sidecar."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cllmh_verify import exposure, wait_for

testinfra_hosts = ["docker://mol-rec-site"]

ROOT = "/var/lib/cllmh/recordings"
# The scenario's model (molecule.yml: the postprocess SSD downloaded from a URL; the role's default is
# the shipped raw-output SSD).
MODEL = os.environ.get("CLLMH_EXPECT_MODEL", "ssdlite_mnv2_person_int8.tflite")
# What the recorder analyses: the camera's 384x288 substream (without one: the main stream scaled to
# the analysis width, 640).
ANALYSIS_SIZE = [int(v) for v in os.environ.get("CLLMH_EXPECT_ANALYSIS_SIZE", "384x288").split("x")]


def test_the_recorder_runs_unprivileged(host):
    svc = host.service("cllmh-recorder@gate")
    assert svc.is_running and svc.is_enabled
    assert host.check_output("systemctl show -p User --value cllmh-recorder@gate") == "cllmh"


def test_the_camera_passwords_are_out_of_the_recorder_user_s_reach(host):
    # They are the ingest's (its own user, root-only environment files).
    assert host.run("runuser -u cllmh -- cat /etc/cllmh/cameras/gate.env").rc != 0


def test_the_recorder_unit_is_sandboxed(host):
    assert exposure(host, "cllmh-recorder@gate.service") <= 2.5
    # Sandboxed and still recording: test_a_person_event_is_kept_whole runs against this same unit.
    assert host.check_output("systemctl show -p ProtectSystem --value cllmh-recorder@gate") == "strict"


def test_the_recorder_of_a_camera_no_longer_listed_is_stopped_and_disabled(host):
    assert not host.file("/etc/systemd/system/multi-user.target.wants/cllmh-recorder@oldcam.service").exists
    assert not host.service("cllmh-recorder@oldcam").is_running


def test_a_person_event_is_kept_whole(host):
    def kept() -> list[str]:
        return host.run("ls %s/gate/*/*/event.json 2>/dev/null", ROOT).stdout.split()

    sidecars = wait_for(kept, timeout=150, interval=2)  # a wait, not a speed target
    assert sidecars, host.check_output("journalctl -u cllmh-recorder@gate --no-pager | tail -20")
    event_dir = sidecars[0].rsplit("/", 1)[0]
    sidecar = json.loads(host.file(sidecars[0]).content_string)
    assert sidecar["labels"]["person"] >= 0.5
    assert sidecar["camera"] == "gate" and sidecar["end"] > sidecar["start"]
    assert sidecar["model"] == MODEL
    assert sidecar["analysis_size"] == ANALYSIS_SIZE and sidecar["record_size"] == [768, 576]
    assert [clip["file"] for clip in sidecar["clips"]] == ["clip.mp4"]  # one playable file per event
    assert host.file(f"{event_dir}/snapshot.jpg").size > 1000
    probe = host.check_output(
        "ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 %s/%s",
        event_dir,
        sidecar["clips"][0]["file"],
    )
    assert probe.strip() == "h264,768,576"  # the camera's own stream, copied
    rows = host.check_output(
        "/opt/cllmh/venv/bin/python -c \"import sqlite3; print(sqlite3.connect('%s/index.sqlite3')"
        '.execute(\'select count(*) from events where retention=\\"person\\"\').fetchone()[0])"',
        ROOT,
    )
    assert int(rows) >= 1


def test_only_the_analysis_stream_is_decoded(host):
    """The main stream is only copied into segments; frames for analysis come from one stream."""

    def running_readers() -> dict[str, str]:
        commands = host.check_output("ps -C ffmpeg -o args=").splitlines()
        inputs = {line.split(" -i ", 1)[1].split()[0]: line for line in commands if " -i " in line}
        # the recorder's readers: ffmpegs that read the local RTMP server (the ingests write to it)
        found = {url: line for url, line in inputs.items() if url.startswith("rtmp://127.0.0.1")}
        # every reader up (after the outage tests one may be between two runs): the main stream,
        # and the substream when it is the one analysed
        return found if len(found) == (1 if ANALYSIS_SIZE[0] == 640 else 2) else {}

    readers = wait_for(running_readers, timeout=60, interval=2)
    commands = list(readers.values())
    main = readers["rtmp://127.0.0.1:1935/live/gate"]
    assert "-f segment" in main
    analysed = [url for url, line in readers.items() if "rawvideo" in line]
    expected = (
        "rtmp://127.0.0.1:1935/live/gate" if ANALYSIS_SIZE[0] == 640 else "rtmp://127.0.0.1:1935/sub/gate"
    )
    assert analysed == [expected], commands


def test_the_model_on_the_box_is_the_shipped_file(host):
    sums = (Path(os.environ["CLLMH_ROOT"]) / "files/models/SHA256SUMS").read_text()
    expected = next(line.split()[0] for line in sums.splitlines() if line.endswith(f"  {MODEL}"))
    assert host.file(f"/var/lib/cllmh/models/{MODEL}").sha256sum == expected


def test_the_cache_stays_small(host):
    count = int(host.check_output("ls /var/lib/cllmh/cache/gate/*.mp4 2>/dev/null | wc -l"))
    assert count < 30
