"""The recorder with real ffmpeg processes on real footage: files read as fast as they decode, and
a live HTTP stream from a real local server that is killed, paused and restarted."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cllmh import events as ev
from cllmh.detect import Detector
from cllmh.recorder import CameraRecorder, RecorderConfig, load_config
from conftest import probe_video, run_cllmh
from footage import H264, MODELS, VTEST, ffmpeg, need, still_scene
from livecamera import LiveCamera, RepublishingCamera, free_port


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
    # 8 s of the empty scene, then 12 s of pedestrians
    still_scene(out, "empty.mp4", 8, "null")
    ffmpeg("-i", str(out / "vtest.mp4"), "-t", "12", "-c", "copy", str(out / "people.mp4"))
    (out / "list.txt").write_text("file 'empty.mp4'\nfile 'people.mp4'\n")
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(out / "list.txt"), "-c", "copy", str(out / "later.mp4"))
    # as a camera streams it: parameter sets repeated before every keyframe, so a client can join
    ffmpeg("-i", str(need(VTEST)), *H264, "-x264-params", "repeat-headers=1", str(out / "live.ts"))
    # 20 s of it as FLV, for a publisher that keeps reconnecting (timestamps from zero each time)
    ffmpeg("-i", str(out / "live.ts"), "-t", "20", "-c", "copy", str(out / "short.flv"))
    # its substream: the same scene at half size
    ffmpeg(
        "-i", str(need(VTEST)), "-vf", "scale=384:288", *H264, "-x264-params", "repeat-headers=1",
        str(out / "live-sub.ts"),
    )  # fmt: skip
    # 12 s of pedestrians, then 16 s of the empty scene: an event that goes quiet after them
    still_scene(out, "empty-after.mp4", 16, "null")
    (out / "leaving.txt").write_text("file 'people.mp4'\nfile 'empty-after.mp4'\n")
    ffmpeg(
        "-f", "concat", "-safe", "0", "-i", str(out / "leaving.txt"), "-c", "copy", str(out / "leaving.mp4")
    )
    return {
        "leaving": out / "leaving.mp4",
        "live": out / "live.ts",
        "live-sub": out / "live-sub.ts",
        "short.flv": out / "short.flv",
        "vtest": out / "vtest.mp4",
        "static": out / "static.mp4",
        "lighting": out / "lighting.mp4",
        "later": out / "later.mp4",
    }


def config_data(tmp_path: Path, source: Path | str, **extra) -> dict:
    return {
        "cameras": [{"name": "cam", "source": str(source)}],
        "model": {
            "path": str(MODELS / "ssdlite_mnv2_person_int8.tflite"),
            "anchors": str(MODELS / "ssdlite_anchors.npy"),
        },
        "recordings_dir": str(tmp_path / "recordings"),
        "cache_dir": str(tmp_path / "cache"),
        **extra,
    }


def write_config(tmp_path: Path, source: Path | str, **extra) -> Path:
    path = tmp_path / "recorder.yaml"
    path.write_text(json.dumps(config_data(tmp_path, source, **extra)))
    return path


def plays_to_the_end(clip: Path) -> None:
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(clip), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert decoded.returncode == 0 and not decoded.stderr.strip(), f"{clip}: {decoded.stderr[-500:]}"


def assert_every_event_whole(root: Path) -> list[dict]:
    """Every event directory is a kept, whole event: sidecar, one playable clip, a completed index row."""
    rows = dict(sqlite3.connect(root / ev.INDEX_NAME).execute("SELECT id, end FROM events").fetchall())
    sidecars = []
    for event in ev.scan(root):
        sidecar = ev.read_sidecar(event.path)
        assert sidecar is not None, f"{event.path}: no event.json"
        assert sidecar["event_id"] == event.event_id and sidecar["end"] >= sidecar["start"]
        assert rows.get(event.event_id) is not None, f"{event.event_id}: no completed index row"
        assert [c["file"] for c in sidecar["clips"]] == ["clip.mp4"]
        plays_to_the_end(event.path / "clip.mp4")
        assert float(probe_video_duration(event.path / "clip.mp4")) > 0
        sidecars.append(sidecar)
    assert len(rows) == len(sidecars), "index rows without an event directory"
    return sidecars


def probe_video_duration(clip: Path) -> str:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(clip)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


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
    # the detector only ran on motion frames
    assert 0 < result["detector_runs"] <= result["motion_frames"] < result["frames"]
    event = Path(result["kept"][0])
    sidecar = ev.read_sidecar(event)
    assert sidecar is not None and sidecar["labels"]["person"] >= 0.5
    assert sidecar["camera"] == "cam" and sidecar["end"] > sidecar["start"]
    assert sidecar["boxes"]["person"] and sidecar["model"] == "ssdlite_mnv2_person_int8.tflite"
    assert sidecar["analysis_size"] == [640, 480] and sidecar["record_size"] == [768, 576]
    stream = probe_video(str(event / "clip.mp4"))
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 768, 576)  # copied
    assert (event / "snapshot.jpg").stat().st_size > 1000
    rows = (
        sqlite3.connect(tmp_path / "recordings" / ev.INDEX_NAME)
        .execute("SELECT id, retention FROM events")
        .fetchall()
    )
    assert rows == [(event.name, "person")]
    assert not list((tmp_path / "cache" / "cam").glob("*.mp4")), "segments left in the cache"
    # the clip covers the event (its pre-roll is cut by the start of the file)
    clip = sidecar["clips"][0]
    assert clip["start"] <= sidecar["start"] and clip["end"] >= sidecar["end"]
    assert_every_event_whole(tmp_path / "recordings")


def test_every_part_of_a_long_person_event_is_a_person_event(clips: dict[str, Path], tmp_path: Path) -> None:
    """Parts of 4 s: the parts after the pedestrians left (the quiet period, no detection of their
    own) are still labelled person, with a snapshot, and kept as person events (not "other", whose
    space is reclaimed first)."""
    result = record(write_config(tmp_path, clips["leaving"], max_event_s=4))
    sidecars = sorted(assert_every_event_whole(tmp_path / "recordings"), key=lambda s: s["start"])
    # 12 s of people and the 10 s quiet period after the last one seen, in parts of 4 s
    assert len(sidecars) >= 4, [(s["start"], s["labels"]) for s in sidecars]
    assert all(b["start"] == pytest.approx(a["end"], abs=0.01) for a, b in itertools.pairwise(sidecars))
    # the pedestrians are gone 12 s into the clip, and the first part starts at or after the clip's start
    quiet = [s for s in sidecars if s["start"] - sidecars[0]["start"] >= 12.5]
    assert quiet, "no part after the pedestrians left: the clip does not test the quiet period"
    for sidecar in sidecars:
        assert sidecar["labels"].get("person", 0) >= 0.5, sidecar
        event = tmp_path / "recordings" / "cam"
        (snap,) = event.glob(f"*/{sidecar['event_id']}/snapshot.jpg")
        assert snap.stat().st_size > 1000
    rows = sqlite3.connect(tmp_path / "recordings" / ev.INDEX_NAME).execute("SELECT retention FROM events")
    assert {row[0] for row in rows} == {"person"}
    assert len(result["kept"]) == len(sidecars)


@pytest.mark.parametrize("scene", ["static", "lighting"])
def test_scenes_without_people_keep_nothing(clips: dict[str, Path], tmp_path: Path, scene: str) -> None:
    result = record(write_config(tmp_path, clips[scene]))
    assert result["events"] == 0 and result["kept"] == []
    assert not list((tmp_path / "recordings").glob("cam/*/*"))
    assert not list((tmp_path / "cache" / "cam").glob("*.mp4"))


@pytest.mark.parametrize("limit", [1, 3])
def test_the_detector_runs_at_most_detect_max_per_second(
    clips: dict[str, Path], tmp_path: Path, limit: int
) -> None:
    # 10 analysed frames a second, people moving all the time: only the limit holds the detector back
    result = record(write_config(tmp_path, clips["vtest"], analysis_fps=10, detect_max_per_second=limit))
    seconds = result["stream_seconds"]
    assert seconds > 70 and result["motion_frames"] > 8 * seconds  # motion in nearly every frame
    assert result["max_detector_runs_in_a_second"] == limit
    assert result["detector_runs"] <= limit * seconds + 1
    # and it is the limit that bounds it: the runs follow it (at 10 fps, 3/s means every 4th frame)
    expected = seconds * (1 if limit == 1 else 2.5)
    assert 0.8 * expected <= result["detector_runs"] <= limit * seconds + 1


def start_recorder(config: Path, log: Path | None = None, **popen: Any) -> subprocess.Popen:
    """`cllmh record` for camera "cam" as its service runs it (live pace), its log in `log`."""
    command = [sys.executable, "-m", "cllmh.cli", "record", "--config", str(config), "--camera", "cam"]
    stderr = open(log, "w", encoding="utf-8") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([*command, "--realtime"], stderr=stderr, **popen)


def test_kill_9_leaves_only_whole_events_and_a_restart_cleans_up(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path, clips["vtest"])
    proc = start_recorder(config, stdout=subprocess.DEVNULL, start_new_session=True)
    wait_for_event_dir(tmp_path / "recordings", timeout=60)
    time.sleep(8)
    # kill -9 the whole process group: the recorder and its ffmpeg, mid-segment and mid-event
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    segments = sorted((tmp_path / "cache" / "cam").glob("*.mp4"))
    assert segments
    for seg in segments:  # fragmented MP4: even the one being written is readable once it has data
        if seg.stat().st_size > 4096:
            assert probe_video(str(seg))["codec_name"] == "h264"
    # the next start keeps the killed run's open event (truncated), clears the cache, records normally
    result = record(config)
    assert result["kept"]
    assert not list((tmp_path / "cache" / "cam").glob("*"))
    sidecars = assert_every_event_whole(tmp_path / "recordings")
    assert len(sidecars) == len(result["kept"]) + 1
    assert [s.get("truncated") for s in sidecars].count(True) == 1


def wait_for_event_dir(root: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob("cam/*/*")):
        assert time.monotonic() < deadline, "no event started"
        time.sleep(0.5)


def test_configuration_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        json.dumps(
            {
                "cameras": [{"name": "gate 1", "source": "ftp://x", "detect_url": "gopher://x"}],
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
    for part in ("cameras.0.name", "cameras.0.source", "cameras.0.detect_url", "model", "surprise"):
        assert part in message, message
    cli = run_cllmh("record", "--config", str(bad), "--check", timeout=60)
    assert cli.returncode == 2 and "surprise" in cli.stderr


def test_impossible_event_rule_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, Path("/tmp/x.mp4"), event_n=6, event_m=3)
    with pytest.raises(ValueError, match="event_n"):
        load_config(path)


def test_empty_thresholds_are_refused_by_check_and_partial_ones_default(tmp_path: Path) -> None:
    model = {
        "path": str(MODELS / "ssdlite_mnv2_person_int8.tflite"),
        "anchors": str(MODELS / "ssdlite_anchors.npy"),
    }
    empty = write_config(tmp_path, Path("/tmp/x.mp4"), model={**model, "thresholds": {}})
    cli = run_cllmh("record", "--config", str(empty), "--check", timeout=60)
    assert cli.returncode == 2 and "model.thresholds" in cli.stderr and "default" in cli.stderr, cli.stderr
    assert "Traceback" not in cli.stderr
    partial = load_config(
        write_config(tmp_path, Path("/tmp/x.mp4"), model={**model, "thresholds": {"person": 0.7}})
    )
    assert partial.model.detector_threshold == 0.5  # the other labels keep the default 0.5


def test_sigterm_finishes_the_open_event(clips: dict[str, Path], tmp_path: Path) -> None:
    proc = start_recorder(write_config(tmp_path, clips["vtest"]), stdout=subprocess.PIPE, text=True)
    time.sleep(15)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    result = json.loads(out)
    assert result["kept"], "an event open at shutdown must be kept"
    assert_every_event_whole(tmp_path / "recordings")


class SteppedClock:
    """The host's clocks, but the wall clock starts years behind until `step` is set (NTP)."""

    BEHIND = 3 * 365 * 86400.0

    def __init__(self) -> None:
        self.step = threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() - (0.0 if self.step.is_set() else self.BEHIND)


def test_an_event_after_a_clock_step_has_the_right_wall_time(clips: dict[str, Path], tmp_path: Path) -> None:
    config = RecorderConfig.model_validate(config_data(tmp_path, clips["later"]))
    detector = Detector(
        config.model.path, anchors_path=config.model.anchors, threshold=config.model.detector_threshold
    )
    clock = SteppedClock()
    recorder = CameraRecorder(config, config.cameras[0], detector, realtime_input=True, clock=clock)
    # the recorder starts with the stale clock; NTP steps it 4 s later, before anyone walks in at 8 s
    threading.Timer(4, clock.step.set).start()
    result = recorder.run()
    assert result["kept"]
    sidecar = ev.read_sidecar(Path(result["kept"][0]))
    assert sidecar is not None
    assert abs(sidecar["start"] - time.time()) < 60 and abs(sidecar["clips"][0]["start"] - time.time()) < 60
    # the day directory is the corrected start's day (read from the sidecar: a run across midnight
    # ends on the next day)
    assert Path(result["kept"][0]).parent.name == time.strftime("%Y-%m-%d", time.localtime(sidecar["start"]))


# -- a live stream from a real server that can be killed, paused and restarted ------------------------


@pytest.fixture
def cameras() -> Iterator[Callable[..., LiveCamera]]:
    started: list[LiveCamera] = []

    def make(clip: Path, port: int | None = None) -> LiveCamera:
        camera = LiveCamera(clip, port).start()
        started.append(camera)
        return camera

    yield make
    for camera in started:
        camera.kill()


def live_config(tmp_path: Path, url: str) -> Path:
    return write_config(
        tmp_path,
        url,
        analysis_fps=2,
        segment_seconds=2,
        stall_s=4,
        event_quiet_s=3,
        pre_roll=1,
        post_roll=2,
        backoff_initial=0.5,
        backoff_max=2,
    )


def wait_for_log(log: Path, pattern: str, count: int = 1, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, log.read_text(encoding="utf-8"))) < count:
        assert time.monotonic() < deadline, f"{pattern!r} x{count} not logged:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def stop_recorder(proc: subprocess.Popen) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return json.loads(out)


@pytest.mark.parametrize("outage", ["camera gone", "camera hangs"])
def test_the_recorder_rides_out_an_outage(
    clips: dict[str, Path], tmp_path: Path, cameras: Callable[..., LiveCamera], outage: str
) -> None:
    log = tmp_path / "recorder.log"
    camera = cameras(clips["live"])
    proc = start_recorder(live_config(tmp_path, camera.url), log, stdout=subprocess.PIPE, text=True)
    wait_for_log(log, r"event \w+ started")
    if outage == "camera gone":
        camera.kill()
        wait_for_log(log, r"restarting ffmpeg: end of input")
    else:  # the stream stops with the connection open: only the watchdog can tell
        camera.pause()
        wait_for_log(log, r"restarting ffmpeg: no frame for [45] s")
    wait_for_log(log, r"restarting ffmpeg", count=2)  # the camera is still away: retried with backoff
    returned = time.time()
    if outage == "camera gone":
        cameras(clips["live"], camera.port)
    else:
        camera.resume()
    wait_for_log(log, r"event \w+ started", count=2)
    time.sleep(4)
    result = stop_recorder(proc)
    assert result["restarts"] >= 2
    sidecars = assert_every_event_whole(tmp_path / "recordings")
    assert any(s["start"] < returned for s in sidecars), "the event open at the outage is lost"
    assert any(s["start"] >= returned - 1 for s in sidecars), "no event after the camera returned"
    assert all("person" in s["labels"] for s in sidecars)


def test_timestamps_restarting_within_the_connection_restart_the_run(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    camera = RepublishingCamera(clips["short.flv"])
    log = tmp_path / "recorder.log"
    try:
        proc = start_recorder(live_config(tmp_path, camera.url), log, stdout=subprocess.PIPE, text=True)
        wait_for_log(log, r"event \w+ started")
        wait_for_log(log, r"restarting ffmpeg: frame timestamps went back by 1\d\.\d s")
        wait_for_log(log, r"event \w+ started", count=2)  # the next run records again
        time.sleep(4)
        result = stop_recorder(proc)
    finally:
        camera.close()
    assert result["restarts"] >= 1 and len(result["kept"]) >= 2
    sidecars = assert_every_event_whole(tmp_path / "recordings")
    for sidecar in sidecars:  # no clip grew past the clip's own length (20 s)
        assert sidecar["clips"][0]["end"] - sidecar["clips"][0]["start"] < 25
        assert sidecar["end"] - sidecar["start"] < 20


def test_sigterm_while_the_camera_hangs_stops_and_keeps_the_open_event(
    clips: dict[str, Path], tmp_path: Path, cameras: Callable[..., LiveCamera]
) -> None:
    log = tmp_path / "recorder.log"
    camera = cameras(clips["live"])
    proc = start_recorder(
        write_config(tmp_path, camera.url, stall_s=60), log, stdout=subprocess.PIPE, text=True
    )
    wait_for_log(log, r"event \w+ started")
    camera.pause()  # ffmpeg now waits for data that does not come; the watchdog is far away
    time.sleep(3)
    result = stop_recorder(proc)
    assert result["kept"] and result["restarts"] == 0
    assert_every_event_whole(tmp_path / "recordings")


def test_a_stream_not_up_at_start_is_waited_for(
    clips: dict[str, Path], tmp_path: Path, cameras: Callable[..., LiveCamera]
) -> None:
    port, log = free_port(), tmp_path / "recorder.log"
    url = f"http://127.0.0.1:{port}/cam.ts"
    proc = start_recorder(live_config(tmp_path, url), log, stdout=subprocess.PIPE, text=True)
    wait_for_log(log, r"stream http://127.0.0.1:\d+/cam.ts not readable yet .*; retrying in", count=2)
    camera = cameras(clips["live"], port)
    wait_for_log(log, r"event \w+ started")
    time.sleep(2)
    result = stop_recorder(proc)
    assert result["kept"]
    assert "Traceback" not in log.read_text()
    # and a stop during that wait ends it at once; the camera's password is never logged
    camera.kill()
    (tmp_path / "other").mkdir()
    secret = f"http://admin:s3cret@127.0.0.1:{port}/cam.ts"
    other = start_recorder(
        live_config(tmp_path / "other", secret), tmp_path / "other.log", stdout=subprocess.PIPE
    )
    wait_for_log(tmp_path / "other.log", "not readable yet")
    stopped = stop_recorder(other)
    logged = (tmp_path / "other.log").read_text()
    assert stopped["kept"] == [] and "Traceback" not in logged
    assert "admin:***@127.0.0.1" in logged and "s3cret" not in logged


def ffmpeg_children(pid: int) -> list[list[str]]:
    """Command lines of the ffmpeg processes `pid` started."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(FileNotFoundError):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
            if argv[0] == "ffmpeg":
                found.append(argv)
    return found


def test_a_substream_is_analysed_while_the_main_stream_is_only_copied(
    clips: dict[str, Path], tmp_path: Path, cameras: Callable[..., LiveCamera]
) -> None:
    main, sub = cameras(clips["live"]), cameras(clips["live-sub"])
    config = config_data(tmp_path, main.url)
    config["cameras"][0]["detect_url"] = sub.url
    path = tmp_path / "recorder.yaml"
    path.write_text(json.dumps(config))
    log = tmp_path / "recorder.log"
    proc = start_recorder(path, log, stdout=subprocess.PIPE, text=True)
    wait_for_log(log, r"event \w+ started")
    children = ffmpeg_children(proc.pid)
    time.sleep(12)
    result = stop_recorder(proc)
    copier = next(argv for argv in children if main.url in argv)
    analyser = next(argv for argv in children if sub.url in argv)
    assert "pipe:1" not in copier and "-vf" not in copier  # copied, never decoded
    assert "pipe:1" in analyser and "segment" not in analyser  # decoded, never copied
    [sidecar] = assert_every_event_whole(tmp_path / "recordings")
    assert sidecar["analysis_size"] == [384, 288] and sidecar["record_size"] == [768, 576]
    x1, y1, x2, y2 = sidecar["boxes"]["person"]
    assert 0 <= x1 < x2 <= 384 and 0 <= y1 < y2 <= 288  # boxes in the analysis frame's pixels
    stream = probe_video(str(Path(result["kept"][0]) / "clip.mp4"))
    assert (stream["width"], stream["height"]) == (768, 576)  # the clip is the main stream, copied
