from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cllmh import ingest
from cllmh.cli import main
from conftest import need, probe_video

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # as in footage.py

# --- pure decisions -----------------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum() -> None:
    backoff = ingest.Backoff(initial=1, maximum=8)
    assert [backoff.delay(n) for n in range(7)] == [0, 1, 2, 4, 8, 8, 8]


def test_a_stable_run_resets_the_failure_count() -> None:
    backoff = ingest.Backoff(stable_after=30)
    assert backoff.failures_after(5, run_seconds=2) == 6
    assert backoff.failures_after(5, run_seconds=31) == 1


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": 10, "maximum": 5}, {"factor": 0.5}])
def test_backoff_rejects_impossible_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ingest.Backoff(**kwargs)


def test_rtsp_is_pulled_over_tcp_and_copied() -> None:
    command = ingest.ffmpeg_command("rtsp://u:p@cam/stream1", "rtmp://127.0.0.1/live/cam1")
    cmd = command.argv
    assert "option rtsp_transport tcp" in (command.stdin or "").splitlines()
    assert cmd[cmd.index("-c:v") + 1] == "copy"
    assert "-an" in cmd
    assert cmd[-2:] == ["flv", "rtmp://127.0.0.1/live/cam1"]
    assert "-vcodec" not in cmd and "libx264" not in cmd


def test_audio_can_be_kept_or_transcoded_to_aac() -> None:
    kept = ingest.ffmpeg_command("rtsp://cam/1", "rtmp://x/live/a", audio="copy").argv
    assert kept[kept.index("-c:a") + 1] == "copy"
    aac = ingest.ffmpeg_command("rtsp://cam/1", "rtmp://x/live/a", audio="aac").argv
    assert aac[aac.index("-c:a") + 1] == "aac"


def test_the_camera_url_is_in_no_argument_of_ffmpeg() -> None:
    command = ingest.ffmpeg_command("rtsp://u:Rahasia-77@cam/stream1", "rtmp://127.0.0.1/live/cam1")
    assert not any("Rahasia-77" in arg or "cam/stream1" in arg for arg in command.argv), command.argv
    assert "file 'rtsp://u:Rahasia-77@cam/stream1'" in (command.stdin or "")


def test_bad_scheme_and_audio_mode_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="scheme 'ftp'"):
        ingest.ffmpeg_command("ftp://cam/1", "rtmp://x/live/a")
    with pytest.raises(ValueError, match="audio must be one of"):
        ingest.ffmpeg_command("rtsp://cam/1", "rtmp://x/live/a", audio="mp3")


def test_ffmpeg_s_hevc_in_flv_refusal_is_diagnosed_with_the_fix() -> None:
    line = "[flv @ 0x55e5a69d68c0] Video codec hevc not compatible with flv\n"
    fix = ingest.diagnose(line)
    assert fix is not None and "main stream to H.264" in fix and "H.264 substream" in fix
    assert ingest.diagnose("rtmp://127.0.0.1:1/live/x: Connection refused") is None


def test_passwords_never_reach_the_logs() -> None:
    assert ingest.redact("rtsp://admin:s3cret@10.0.0.5:554/h264") == "rtsp://admin:***@10.0.0.5:554/h264"
    assert ingest.redact("rtsp://10.0.0.5/h264") == "rtsp://10.0.0.5/h264"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("rtsp://10.0.0.5/live?channel=1&password=s3cret", "rtsp://10.0.0.5/live?channel=1&password=***"),
        ("rtsp://10.0.0.5/h264?user=admin&pwd=s3cret&x=1", "rtsp://10.0.0.5/h264?user=admin&pwd=***&x=1"),
        # XMEye DVRs put them in the path.
        (
            "rtsp://10.0.0.5:554/user=admin&password=s3cret&channel=1",
            "rtsp://10.0.0.5:554/user=admin&password=***&channel=1",
        ),
        ("rtmp://h/live/van?key=s3cret", "rtmp://h/live/van?key=***"),
    ],
)
def test_credentials_in_url_arguments_are_redacted(url: str, redacted: str) -> None:
    assert ingest.redact(url) == redacted
    assert ingest.redact_text(f"[rtsp] {url} failed") == f"[rtsp] {redacted} failed"


def test_every_url_in_ffmpeg_messages_is_redacted() -> None:
    line = "[tcp] Connection to rtsp://admin:pa:ss@10.1.1.2:554/x failed; rtmp://pub:key@h/live ok"
    assert ingest.redact_text(line) == (
        "[tcp] Connection to rtsp://admin:***@10.1.1.2:554/x failed; rtmp://pub:***@h/live ok"
    )


class FakeClock:
    """A clock the supervisor reads and sleeps on: sleeping advances it at once and is recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_supervisor_backs_off_between_failed_runs() -> None:
    clock = FakeClock()
    sup = ingest.Supervisor(
        "cam",
        [sys.executable, "-c", "raise SystemExit(3)"],
        ingest.Backoff(initial=1, maximum=4),
        clock=clock.now,
        sleep=clock.sleep,
    )
    assert sup.run(max_runs=4) == 3
    assert sup.failures == 4
    # 1 + 2 + 4 + 4 seconds of waiting, taken in slices of at most 0.5 s
    assert sum(clock.slept) == pytest.approx(11)
    assert max(clock.slept) <= 0.5


# --- real processes -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_restream_copies_video_to_rtmp_without_reencoding(h264_clip: Path, tmp_path: Path) -> None:
    """ffmpeg as an RTMP server receives what the ingest command publishes."""
    port = _free_port()
    received = tmp_path / "received.flv"
    server = subprocess.Popen(
        [
            need("ffmpeg"),
            "-v",
            "error",
            "-listen",
            "1",
            "-f",
            "flv",
            "-i",
            f"rtmp://127.0.0.1:{port}/live/cam1",
            "-c",
            "copy",
            str(received),
        ],
    )
    try:
        time.sleep(1.0)
        cmd = ingest.ffmpeg_command(str(h264_clip), f"rtmp://127.0.0.1:{port}/live/cam1")
        subprocess.run(cmd.argv, input=cmd.stdin, text=True, check=True, timeout=60)
        server.wait(timeout=30)
    finally:
        server.kill()
    stream = probe_video(str(received))
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 240)


def test_cli_retries_an_unreachable_camera_until_stopped(tmp_path: Path) -> None:
    """A closed port: ffmpeg fails, the supervisor logs and retries, and SIGTERM ends it cleanly."""
    need("ffmpeg")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from cllmh.cli import main; sys.exit(main())",
            "ingest",
            "--name",
            "gate",
            "--source",
            f"rtsp://viewer:pw@127.0.0.1:{port}/x",
            "--target",
            "rtmp://127.0.0.1:1/live/gate",
            "--backoff-initial",
            "0.2",
            "--backoff-max",
            "0.4",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert err.count("retrying in") >= 3
    assert "viewer:***@127.0.0.1" in err
    assert ":pw@" not in err


def test_cli_refuses_a_bad_url_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "--name", "x", "--source", "ftp://cam", "--target", "rtmp://h/live/x"]) == 2
    assert "unsupported camera URL scheme 'ftp'" in capsys.readouterr().err


def _wait_listening(port: int, proc: subprocess.Popen) -> None:
    """Until something listens on the port (without connecting: the listener takes one client)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if any(c.laddr.port == port and c.status == "LISTEN" for c in psutil.net_connections("tcp")):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def hevc_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of vtest.avi as an H.265 camera sends it (libx265, no B-frames, GOP 2 s)."""
    path = tmp_path_factory.mktemp("media") / "vtest-hevc.mp4"
    x265 = "keyint=20:min-keyint=20:scenecut=0:bframes=0:log-level=error"
    encode = [need("ffmpeg"), "-v", "error", "-i", str(VTEST), "-an", "-c:v", "libx265", "-x265-params", x265]
    subprocess.run([*encode, "-preset", "ultrafast", "-frames:v", "40", str(path)], check=True, timeout=300)
    return path


def test_an_h265_camera_is_named_with_the_fix_and_retried_at_the_maximum_backoff(
    hevc_clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real ffmpeg publishing H.265 to a real RTMP listener fails on FLV; the supervisor says
    why and what to change in one line, and waits the longest backoff, not the shortest."""
    port = _free_port()
    listen = [need("ffmpeg"), "-v", "error", "-listen", "1", "-f", "flv"]
    server = subprocess.Popen(
        [*listen, "-i", f"rtmp://127.0.0.1:{port}/live/cam1", "-c", "copy", str(tmp_path / "received.flv")]
    )
    try:
        _wait_listening(port, server)
        clock = FakeClock()
        sup = ingest.Supervisor(
            "gerbang",
            ingest.ffmpeg_command(str(hevc_clip), f"rtmp://127.0.0.1:{port}/live/cam1"),
            ingest.Backoff(initial=1, maximum=8),
            clock=clock.now,
            sleep=clock.sleep,
        )
        with caplog.at_level(logging.INFO, logger="cllmh.ingest"):
            assert sup.run(max_runs=1) != 0
    finally:
        server.kill()
        server.wait(timeout=10)
    messages = [r.getMessage() for r in caplog.records]
    assert any("Video codec hevc not compatible with flv" in m for m in messages), messages
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith("gerbang: cannot restream: the camera sends H.265")
    assert "main stream to H.264" in errors[0] and "H.264 substream" in errors[0]
    assert sum(clock.slept) == pytest.approx(8)  # the maximum after the first failure, not 1 s


def test_the_camera_password_is_in_no_process_s_arguments(h264_clip: Path, tmp_path: Path) -> None:
    """`cllmh ingest` as systemd runs it (URL in its environment) restreams a live camera; meanwhile
    neither it nor its ffmpeg shows the URL or password in its command line (what `ps` prints), and
    ffmpeg's environment does not hold it either."""
    from livecamera import LiveCamera  # noqa: PLC0415 - the HTTP camera server is for these tests only

    camera = LiveCamera(h264_clip).start()
    secret = "Rahasia-Kamera-77"
    source = camera.url.replace("http://", f"http://viewer:{secret}@")
    port = _free_port()
    received = tmp_path / "received.flv"
    listen = [need("ffmpeg"), "-v", "error", "-listen", "1", "-f", "flv"]
    server = subprocess.Popen(
        [*listen, "-i", f"rtmp://127.0.0.1:{port}/live/cam1", "-t", "3", "-c", "copy", str(received)]
    )
    env = {"PATH": "/usr/bin:/bin", "CLLMH_CAMERA_URL": source}
    run = [sys.executable, "-c", "import sys; from cllmh.cli import main; sys.exit(main())", "ingest"]
    target = f"rtmp://127.0.0.1:{port}/live/cam1"
    proc = subprocess.Popen(
        [*run, "--name", "cam1", "--source-env", "CLLMH_CAMERA_URL", "--target", target],
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(port, server)
        deadline = time.monotonic() + 30
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and not children:
            children = psutil.Process(proc.pid).children()
            time.sleep(0.1)
        assert children, "no ffmpeg started"
        for process in [psutil.Process(proc.pid), *children]:
            assert not any(secret in arg or "cam.ts" in arg for arg in process.cmdline()), process.cmdline()
        assert not any(secret in value for value in children[0].environ().values())
        server.wait(timeout=60)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
        server.kill()
        camera.kill()
    stream = probe_video(str(received))
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 240)
