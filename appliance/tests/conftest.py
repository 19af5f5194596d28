from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is required for this test; `make test` installs it")
    return path


def run_cllmh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`cllmh ARGS` in its own process, as a service or an operator runs it; output captured."""
    command = [sys.executable, "-m", "cllmh.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def probe_video(path_or_url: str) -> dict:
    """ffprobe's view of the first video stream."""
    out = subprocess.run(
        [
            need("ffprobe"),
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
            path_or_url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return json.loads(out)["streams"][0]


@pytest.fixture(scope="session")
def h264_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 4 s H.264 clip (320x240, GOP 1 s) made with ffmpeg's test source."""
    path = tmp_path_factory.mktemp("media") / "testsrc.mp4"
    subprocess.run(
        [
            need("ffmpeg"),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            "10",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path
