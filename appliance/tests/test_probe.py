from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cllmh import probe
from cllmh.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CAMERA = ROOT / "roles/sample_camera/files/sample_camera.py"


# --- pure decisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        (
            "[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized\nrtsp://a:b@h/x: Server returned 401",
            "auth",
        ),
        ("[rtsp @ 0x1] method DESCRIBE failed: 404 Not Found", "not_found"),
        ("Connection to tcp://10.0.0.9:554?timeout=0 failed: Connection refused", "refused"),
        ("Connection to tcp://10.0.0.9:554 failed: No route to host", "unreachable"),
        ("Failed to resolve hostname kamera.invalid: Name or service not known", "unreachable"),
        ("Connection to tcp://10.0.0.9:554 failed: Connection timed out", "timeout"),
        ("something nobody expected", "probe_failed"),
    ],
)
def test_ffprobe_errors_are_classified(stderr: str, kind: str) -> None:
    assert probe.classify_failure(stderr).kind.value == kind


def test_error_messages_never_show_the_password() -> None:
    err = probe.classify_failure("rtsp://admin:Rahasia99@10.0.0.9/x: Server returned 401 Unauthorized")
    assert "Rahasia99" not in err.message and "admin:***@" in err.message


def test_exit_codes_are_distinct() -> None:
    codes = [kind.exit_code for kind in probe.Failure]
    assert len(set(codes)) == len(codes) and min(codes) > 2


def _data(codec: str = "h264", keyframes: tuple[float, ...] = (0, 2, 4, 6)) -> dict:
    packets = [{"pts_time": f"{t:.3f}", "flags": "K__"} for t in keyframes]
    packets += [{"pts_time": f"{t + 0.5:.3f}", "flags": "___"} for t in keyframes]
    stream = {
        "codec_type": "video",
        "codec_name": codec,
        "width": 1920,
        "height": 1080,
        "avg_frame_rate": "25/1",
        "r_frame_rate": "25/1",
    }
    return {"streams": [stream], "packets": packets}


def test_a_good_camera_is_described() -> None:
    report = probe.judge("rtsp://u:p@cam/1", _data(), window_s=12, max_keyframe_interval_s=10)
    assert (report.codec, report.width, report.height, report.fps) == ("h264", 1920, 1080, 25.0)
    assert report.keyframe_interval_s == 2.0
    assert report.url == "rtsp://u:***@cam/1"


def test_mjpeg_is_an_unsupported_codec() -> None:
    with pytest.raises(probe.ProbeError) as exc:
        probe.judge("rtsp://cam/1", _data(codec="mjpeg"), window_s=12, max_keyframe_interval_s=10)
    assert exc.value.kind is probe.Failure.UNSUPPORTED_CODEC


def test_hevc_is_refused_with_its_own_kind_and_the_fix() -> None:
    with pytest.raises(probe.ProbeError) as exc:
        probe.judge("rtsp://cam/1", _data(codec="hevc"), window_s=12, max_keyframe_interval_s=10)
    assert exc.value.kind is probe.Failure.HEVC_NOT_RESTREAMABLE
    assert exc.value.kind.exit_code != probe.Failure.UNSUPPORTED_CODEC.exit_code
    assert "main stream to H.264" in exc.value.message and "H.264 substream" in exc.value.message


@pytest.mark.parametrize("keyframes", [(0.0,), (0.0, 12.0)])
def test_a_keyframe_interval_too_long_for_segments_is_refused(keyframes: tuple[float, ...]) -> None:
    with pytest.raises(probe.ProbeError) as exc:
        probe.judge("rtsp://cam/1", _data(keyframes=keyframes), window_s=12, max_keyframe_interval_s=10)
    assert exc.value.kind is probe.Failure.KEYFRAME_INTERVAL
    assert "I-frame interval" in exc.value.message


def test_keyframe_interval_is_the_median_spacing() -> None:
    assert probe.keyframe_interval([0, 2, 4, 6.5, 8]) == 2.0
    assert probe.keyframe_interval([3.0]) is None


def test_a_non_camera_url_is_a_bad_url() -> None:
    with pytest.raises(probe.ProbeError) as exc:
        probe.probe("http://cam/snapshot.jpg")
    assert exc.value.kind is probe.Failure.BAD_URL


# --- the real sample camera ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def serve(clip: Path, *extra: str) -> Iterator[str]:
    """Run the lab's sample camera on `clip`; yields host:port until the end of the fixture."""
    port = _free_port()
    proc = subprocess.Popen(
        ["/usr/bin/python3", str(SAMPLE_CAMERA), "--file", str(clip), "--port", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"sample camera died: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def h264_gop_2s(clip: Path, frames: int) -> Path:
    """vtest.avi as H.264 at 10 fps with no B-frames and a keyframe every 2 s (20 frames), the first
    `frames` frames, into `clip`."""
    if not VTEST.exists() or shutil.which("ffmpeg") is None:
        pytest.fail("needs ffmpeg and opencv-doc (make test installs them)")
    encode = ["ffmpeg", "-v", "error", "-i", str(VTEST), "-an", "-c:v", "libx264", "-preset", "veryfast"]
    gop = ["-bf", "0", "-g", "20", "-keyint_min", "20", "-sc_threshold", "0"]
    subprocess.run(
        [*encode, *gop, "-frames:v", str(frames), "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=300
    )
    return clip


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lab's sample camera (GStreamer RTSP server) serving vtest.avi as H.264, GOP 2 s."""
    # 780 frames, whole GOPs only: the loop seam keeps the 2 s keyframe interval
    clip = h264_gop_2s(tmp_path_factory.mktemp("camera") / "vtest.mp4", 780)
    yield from serve(clip, "--path", "/cam1", "--user", "kamera", "--password", "Benar-123")


@pytest.fixture(scope="module")
def hevc_camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample camera serving vtest.avi as H.265 (libx265, no B-frames, GOP 2 s)."""
    if not VTEST.exists() or shutil.which("ffmpeg") is None:
        pytest.fail("needs ffmpeg and opencv-doc (make test installs them)")
    clip = tmp_path_factory.mktemp("camera") / "vtest-hevc.mp4"
    x265 = "keyint=20:min-keyint=20:scenecut=0:bframes=0:log-level=error"
    encode = ["ffmpeg", "-v", "error", "-i", str(VTEST), "-an", "-c:v", "libx265", "-preset", "ultrafast"]
    subprocess.run(
        [*encode, "-x265-params", x265, "-frames:v", "200", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
        timeout=300,
    )
    yield from serve(clip, "--codec", "h265", "--path", "/cam1")


def test_the_sample_camera_is_described(camera: str) -> None:
    report = probe.probe(f"rtsp://kamera:Benar-123@{camera}/cam1", window_s=6)
    assert (report.codec, report.width, report.height) == ("h264", 768, 576)
    assert report.fps == pytest.approx(10, abs=0.5)
    assert report.keyframe_interval_s == pytest.approx(2.0, abs=0.2)


def test_a_wrong_password_is_an_auth_error(camera: str) -> None:
    with pytest.raises(probe.ProbeError) as exc:
        probe.probe(f"rtsp://kamera:Salah-999@{camera}/cam1", window_s=6)
    assert exc.value.kind is probe.Failure.AUTH
    assert "Salah-999" not in exc.value.message
    # The URL reached ffprobe on stdin; the message still names the camera (password masked).
    assert f"rtsp://kamera:***@{camera}/cam1" in exc.value.message, exc.value.message


def test_a_wrong_path_is_not_found(camera: str) -> None:
    with pytest.raises(probe.ProbeError) as exc:
        probe.probe(f"rtsp://kamera:Benar-123@{camera}/tidak-ada", window_s=6)
    assert exc.value.kind is probe.Failure.NOT_FOUND


def test_a_closed_port_is_refused() -> None:
    with pytest.raises(probe.ProbeError) as exc:
        probe.probe(f"rtsp://127.0.0.1:{_free_port()}/cam1", window_s=6)
    assert exc.value.kind is probe.Failure.REFUSED


def test_a_silent_server_times_out() -> None:
    """A port that accepts connections but never answers RTSP: the overall timeout ends it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(probe.ProbeError) as exc:
            probe.probe(f"rtsp://127.0.0.1:{port}/cam1", window_s=6, timeout_s=4)
    assert exc.value.kind is probe.Failure.TIMEOUT


def test_cli_prints_json_and_uses_the_failure_exit_code(camera: str) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "cllmh.cli",
            "validate-camera",
            "--json",
            "--window",
            "6",
            f"rtsp://kamera:Benar-123@{camera}/cam1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["width"] == 768
    assert main(["validate-camera", "--window", "6", f"rtsp://kamera:x@{camera}/cam1"]) == (
        probe.Failure.AUTH.exit_code
    )


def test_cli_reads_the_url_from_a_camera_env_file(camera: str, tmp_path: Path) -> None:
    env = tmp_path / "gate.env"
    env.write_text(
        f'# managed\nCLLMH_CAMERA_URL="rtsp://kamera:Benar-123@{camera}/cam1"\nCLLMH_AUDIO="drop"\n'
    )
    assert main(["validate-camera", "--window", "6", "--camera-env", str(env)]) == 0
    assert main(["validate-camera", "--camera-env", str(tmp_path / "missing.env")]) == 2


def test_an_h265_camera_is_refused_for_the_rtmp_restream_with_the_fix(hevc_camera: str) -> None:
    cli = [sys.executable, "-m", "cllmh.cli", "validate-camera", "--json", "--window", "6"]
    done = subprocess.run(
        [*cli, f"rtsp://{hevc_camera}/cam1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == probe.Failure.HEVC_NOT_RESTREAMABLE.exit_code, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["error"] == "hevc_not_restreamable"
    assert "main stream to H.264" in result["message"] and "H.264 substream" in result["message"]
