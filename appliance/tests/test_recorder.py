"""The recorder with real ffmpeg processes on real footage (read as fast as it decodes)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cllmh import events as ev
from cllmh.recorder import load_config
from conftest import probe_video
from footage import H264, MODELS, VTEST, ffmpeg, need, still_scene


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """vtest as a camera would send it (H.264, GOP 2 s), a static scene, and a lighting-only scene."""
    out = tmp_path_factory.mktemp("clips")
    ffmpeg("-i", str(need(VTEST)), *H264, str(out / "vtest.mp4"))
    # 40 s of the empty-ish first frame with sensor noise
    still_scene(out, "static.mp4", 40, "noise=alls=4:allf=t")
    # the same scene: lights on at 10 s, then a slow dusk, and an IR switch (grey) at 30 s
    still_scene(
        out,
        "lighting.mp4",
        40,
        "noise=alls=4:allf=t,eq=brightness='if(lt(t,10),0,0.2-0.01*(t-10))':eval=frame,"
        "hue=s='if(lt(t,30),1,0)'",
    )
    return {"vtest": out / "vtest.mp4", "static": out / "static.mp4", "lighting": out / "lighting.mp4"}


def write_config(tmp_path: Path, source: Path, **extra) -> Path:
    config = {
        "cameras": [{"name": "cam", "source": str(source)}],
        "model": {
            "path": str(MODELS / "ssdlite_mnv2_person_int8.tflite"),
            "anchors": str(MODELS / "ssdlite_anchors.npy"),
        },
        "recordings_dir": str(tmp_path / "recordings"),
        "cache_dir": str(tmp_path / "cache"),
        **extra,
    }
    path = tmp_path / "recorder.yaml"
    path.write_text(json.dumps(config))
    return path


def record(config: Path, *extra: str, timeout: float = 300) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "cllmh.cli", "record", "--config", str(config), "--camera", "cam", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(done.stdout)


def test_pedestrians_make_a_person_event_with_copied_clips(clips: dict[str, Path], tmp_path: Path) -> None:
    result = record(write_config(tmp_path, clips["vtest"]))
    assert result["events"] >= 1 and result["kept"]
    # the detector only ran on motion, and not on every motion frame (rate limit)
    assert 0 < result["detector_calls"] <= result["motion_frames"] * 4
    event = Path(result["kept"][0])
    sidecar = ev.read_sidecar(event)
    assert sidecar is not None and sidecar["labels"]["person"] >= 0.5
    assert sidecar["camera"] == "cam" and sidecar["end"] > sidecar["start"]
    assert sidecar["boxes"]["person"] and sidecar["model"] == "ssdlite_mnv2_person_int8.tflite"
    for clip in sidecar["clips"]:
        stream = probe_video(str(event / clip["file"]))
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 768, 576)  # copied
    assert (event / "snapshot.jpg").stat().st_size > 1000
    rows = (
        sqlite3.connect(tmp_path / "recordings" / ev.INDEX_NAME)
        .execute("SELECT id, retention FROM events")
        .fetchall()
    )
    assert rows == [(event.name, "person")]
    assert not list((tmp_path / "cache" / "cam").glob("*.mp4")), "segments left in the cache"
    # the clips cover the event plus its pre- and post-roll
    assert sidecar["clips"][0]["start"] <= max(0.0, sidecar["stream_start"] - sidecar["pre_roll"]) + 0.01


@pytest.mark.parametrize("scene", ["static", "lighting"])
def test_scenes_without_people_keep_nothing(clips: dict[str, Path], tmp_path: Path, scene: str) -> None:
    result = record(write_config(tmp_path, clips[scene]))
    assert result["events"] == 0 and result["kept"] == []
    assert not list((tmp_path / "recordings").glob("cam/*/*"))
    assert not list((tmp_path / "cache" / "cam").glob("*.mp4"))


def start_recorder(config: Path, **popen: Any) -> subprocess.Popen:
    """`cllmh record` for camera "cam" as its service runs it (live pace), stderr discarded."""
    command = [sys.executable, "-m", "cllmh.cli", "record", "--config", str(config), "--camera", "cam"]
    return subprocess.Popen([*command, "--realtime"], stderr=subprocess.DEVNULL, **popen)


def test_kill_9_leaves_only_playable_files_and_a_restart_cleans_up(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path, clips["vtest"])
    proc = start_recorder(config, stdout=subprocess.DEVNULL, start_new_session=True)
    time.sleep(15)
    # kill -9 the whole process group: the recorder and its ffmpeg, mid-segment and mid-event
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    segments = sorted((tmp_path / "cache" / "cam").glob("*.mp4"))
    assert segments
    for seg in segments:  # fragmented MP4: even the one being written is readable once it has data
        if seg.stat().st_size > 4096:
            assert probe_video(str(seg))["codec_name"] == "h264"
    for event in ev.scan(tmp_path / "recordings"):
        assert not event.complete or ev.read_sidecar(event.path) is not None
    # the next start clears what the killed run left in the cache, and records normally
    result = record(config)
    assert result["kept"]
    assert not list((tmp_path / "cache" / "cam").glob("*.mp4"))


def test_configuration_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        json.dumps(
            {
                "cameras": [{"name": "gate 1", "source": "ftp://x"}],
                "model": {"path": "/nope.tflite"},
                "event_n": 6,
                "event_m": 3,
                "surprise": 1,
            }
        )
    )
    with pytest.raises(ValueError) as exc:
        load_config(bad)
    message = str(exc.value)
    for part in ("cameras.0.name", "cameras.0.source", "model", "surprise"):
        assert part in message, message
    cli = subprocess.run(
        [sys.executable, "-m", "cllmh.cli", "record", "--config", str(bad), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 2 and "surprise" in cli.stderr


def test_impossible_event_rule_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, Path("/tmp/x.mp4"), event_n=6, event_m=3)
    with pytest.raises(ValueError, match="event_n"):
        load_config(path)


def test_sigterm_finishes_the_open_event(clips: dict[str, Path], tmp_path: Path) -> None:
    proc = start_recorder(write_config(tmp_path, clips["vtest"]), stdout=subprocess.PIPE, text=True)
    time.sleep(15)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    result = json.loads(out)
    assert result["kept"], "an event open at shutdown must be kept"
    assert ev.read_sidecar(Path(result["kept"][0])) is not None
