"""Camera validation from the Cameras page: ffprobe (cllmh.probe) against a real stream standing in
for the box's restream (the lab's sample camera on RTSP, no password), one run at a time per camera,
the keyframe-interval warning, the viewer who sees the figures but cannot start a run."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cllmh.status.app import create_app
from cllmh.status.config import StatusConfig
from test_probe import h264_gop_2s, serve
from test_status import csrf, login, make_config, site  # noqa: F401 - `site` is a fixture


@pytest.fixture(scope="module")
def restream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An RTSP stream of camera "gate" only (H.264, 10 fps, a keyframe every 2 s), as the URL
    template of the status page's restream_url."""
    clip = h264_gop_2s(tmp_path_factory.mktemp("restream") / "gate.mp4", 200)
    for address in serve(clip, "--path", "/gate"):
        yield f"rtsp://{address}/{{camera}}"


def config_for(site: Path, restream: str, **extra: object) -> StatusConfig:  # noqa: F811
    return make_config(site, restream_url=restream, validate_window_s=4, validate_timeout_s=20, **extra)


def validate(client: FlaskClient, camera: str):
    return client.post(f"/api/v1/cameras/{camera}/validate", headers={"X-CSRF-Token": csrf(client, "/")})


def test_a_technician_validates_the_restream_and_the_cameras_page_shows_its_figures(
    site: Path,  # noqa: F811
    restream: str,
) -> None:
    client = create_app(config_for(site, restream)).test_client()
    login(client, "teknisi")
    page = client.get("/cameras").get_data(as_text=True)
    assert "belum divalidasi" in page and 'action="/cameras/gate/validate"' in page
    answer = validate(client, "gate")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    result = answer.get_json()["validation"]
    assert (result["ok"], result["codec"], result["width"], result["height"]) == (True, "h264", 768, 576)
    assert result["fps"] == pytest.approx(10, abs=0.5)
    assert result["keyframe_interval_s"] == pytest.approx(2.0, abs=0.2)

    gate = next(c for c in client.get("/api/v1/cameras").get_json()["cameras"] if c["name"] == "gate")
    assert gate["validation"] == result and gate["validating"] is False
    page = client.get("/cameras").get_data(as_text=True)
    tile = page[page.index('id="camera-gate"') : page.index('id="camera-pintu"')]
    assert re.search(r'class="resolution">768\u00d7576<', tile), tile
    assert re.search(r'class="fps">10(\.0)?<', tile), tile
    assert re.search(r'class="keyframe">2\.0 s<', tile), tile
    # No stream of "pintu" on the box: a failure with the catalogue's words, not ffprobe's.
    failed = validate(client, "pintu").get_json()["validation"]
    assert (failed["ok"], failed["failure"]) == (False, "not_found")
    assert failed["message"]["text"]["id"] == "Kamera pintu tidak sedang dialirkan di perangkat ini."
    # The page's own form runs it too and comes back to the tile.
    form = client.post("/cameras/gate/validate", data={"csrf_token": csrf(client, "/cameras")})
    assert form.status_code == 302 and form.headers["Location"].endswith("/cameras#camera-gate")
    assert validate(client, "no-such-camera").status_code == 404


def test_one_validation_at_a_time_per_camera(site: Path, restream: str) -> None:  # noqa: F811
    app = create_app(config_for(site, restream))
    first, second = app.test_client(), app.test_client()
    login(first, "teknisi")
    login(second, "teknisi")
    answers: list = []
    running = threading.Thread(target=lambda: answers.append(validate(first, "gate")))
    running.start()
    validator = app.extensions["cllmh_status_state"].validator
    deadline = time.monotonic() + 20
    while not validator.running("gate") and running.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert validator.running("gate"), "the first validation never started"
    busy = validate(second, "gate")
    page = second.get("/cameras").get_data(as_text=True)
    running.join(60)
    assert busy.status_code == 409 and busy.get_json()["id"] == "camera.validation_busy"
    assert "validasi sedang berjalan" in page
    assert answers[0].status_code == 200
    assert validate(second, "gate").status_code == 200  # free again once the first one ended


def test_a_keyframe_interval_longer_than_the_hls_fragment_is_warned(
    site: Path,  # noqa: F811
    restream: str,
) -> None:
    client = create_app(config_for(site, restream, hls_fragment_s="1s")).test_client()
    login(client, "teknisi")
    assert not [w for w in client.get("/api/v1/overview").get_json()["warnings"] if "keyframe" in w["id"]]
    validate(client, "gate")
    (warning,) = [w for w in client.get("/api/v1/overview").get_json()["warnings"] if "keyframe" in w["id"]]
    assert warning["id"] == "warn.keyframe_over_fragment"
    assert warning["values"]["camera"] == "gate" and warning["values"]["fragment"] == 1.0
    assert 'data-id="warn.keyframe_over_fragment"' in client.get("/cameras").get_data(as_text=True)
    # As long as the fragment (the role's default 2 s): no warning.
    matching = create_app(config_for(site, restream, hls_fragment_s="2s")).test_client()
    login(matching, "teknisi")
    validate(matching, "gate")
    assert "warn.keyframe_over_fragment" not in matching.get("/cameras").get_data(as_text=True)


def test_a_viewer_sees_the_figures_but_cannot_validate(site: Path, restream: str) -> None:  # noqa: F811
    app = create_app(config_for(site, restream))
    technician, viewer = app.test_client(), app.test_client()
    login(technician, "teknisi")
    login(viewer, "satpam")
    assert validate(viewer, "gate").status_code == 403
    assert viewer.post("/cameras/gate/validate", data={"csrf_token": csrf(viewer, "/")}).status_code == 403
    assert app.extensions["cllmh_status_state"].validator.last("gate") is None  # nothing ran
    validate(technician, "gate")
    page = viewer.get("/cameras").get_data(as_text=True)
    assert re.search(r'class="keyframe">2\.0 s<', page) and "/validate" not in page


def test_the_restream_url_carries_no_password(site: Path) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="no user or password"):
        make_config(site, restream_url="rtsp://admin:rahasia@10.0.0.5/{camera}")
    with pytest.raises(ValueError, match="camera"):
        make_config(site, restream_url="rtmp://127.0.0.1/live/gate")
    assert make_config(site, hls_fragment_s="500ms").hls_fragment_s == 0.5
