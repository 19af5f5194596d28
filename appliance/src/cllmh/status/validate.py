"""Camera validation on demand from the Cameras page: `cllmh.probe` (the one implementation behind
`cllmh validate-camera`) run against this box's own restream of the camera (local RTMP), never the
camera's URL: the status page's user holds no camera password (those are the ingest's).

One run at a time per camera (a second request while one runs is refused, not queued); the last
result per configured camera is kept in the process (bounded by the cameras)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

from cllmh import catalogue, probe


@dataclass(frozen=True, slots=True)
class Validation:
    camera: str
    at: float  # when it finished (unix time)
    ok: bool
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    keyframe_interval_s: float | None = None
    failure: str | None = None  # probe.Failure's value when not ok
    detail: str | None = None  # ffprobe's own words (English), for the technician

    def to_json(self) -> dict:
        data = asdict(self)
        data["message"] = None if self.ok else failure_message(self)
        return data


def failure_message(result: Validation) -> dict:
    """The catalogue's message for a failed validation: one id per probe.Failure kind."""
    return catalogue.message(f"probe.{result.failure}", camera=result.camera)


def keyframe_warnings(results: list[Validation], hls_fragment_s: float) -> list[dict]:
    """A warning per camera whose measured keyframe interval is longer than the HLS fragment (pure):
    nginx-rtmp cuts fragments on keyframes only, so every fragment becomes that long and live view
    lags by several of them."""
    return [
        catalogue.message(
            "warn.keyframe_over_fragment",
            camera=r.camera,
            keyframe=round(r.keyframe_interval_s, 1),
            fragment=round(hls_fragment_s, 1),
        )
        for r in results
        if r.keyframe_interval_s is not None and r.keyframe_interval_s > hls_fragment_s
    ]


class Validator:
    def __init__(
        self,
        cameras: list[str],
        restream_url: str,
        *,
        window_s: float,
        timeout_s: float,
        ffprobe: str = "ffprobe",
    ) -> None:
        self.cameras = set(cameras)
        self.restream_url = restream_url
        self.window_s = window_s
        self.timeout_s = timeout_s
        self.ffprobe = ffprobe
        self.locks = {camera: threading.Lock() for camera in cameras}
        self.results: dict[str, Validation] = {}

    def url(self, camera: str) -> str:
        return self.restream_url.format(camera=camera)

    def running(self, camera: str) -> bool:
        return self.locks[camera].locked()

    def last(self, camera: str) -> Validation | None:
        return self.results.get(camera)

    def run(self, camera: str) -> Validation | None:
        """Probe the camera's restream now (blocks up to timeout_s); None if a run for this camera
        is going on (KeyError for a camera that is not configured)."""
        lock = self.locks[camera]
        if not lock.acquire(blocking=False):
            return None
        try:
            try:
                report = probe.probe(
                    self.url(camera), window_s=self.window_s, timeout_s=self.timeout_s, ffprobe=self.ffprobe
                )
            except probe.ProbeError as exc:
                result = Validation(
                    camera, round(time.time(), 3), False, failure=exc.kind.value, detail=exc.message
                )
            else:
                result = Validation(
                    camera,
                    round(time.time(), 3),
                    True,
                    codec=report.codec,
                    width=report.width,
                    height=report.height,
                    fps=report.fps,
                    keyframe_interval_s=report.keyframe_interval_s,
                )
            self.results[camera] = result
            return result
        finally:
            lock.release()
