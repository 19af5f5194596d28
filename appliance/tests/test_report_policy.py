"""The reporter's pure decisions: what an answer means, how long to wait, the bound; the config."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cllmh.collect.cameras import StreamTracker, parse_rtmp_stat
from cllmh.report import messages
from cllmh.report.config import load_config
from cllmh.report.policy import DAY, Backoff, Outcome, expired, outcome


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Outcome.DELIVERED),
        (201, Outcome.DELIVERED),
        (None, Outcome.RETRY),  # connection refused, timeout, TLS failure
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.PARK),
        (401, Outcome.SITE_REFUSED),
        (403, Outcome.SITE_REFUSED),
        (409, Outcome.PARK),
        (413, Outcome.PARK),
        (415, Outcome.PARK),
        (302, Outcome.RETRY),
    ],
)
def test_what_an_answer_means(status: int | None, expected: Outcome) -> None:
    assert outcome(status) is expected


def test_a_4xx_page_that_is_not_the_apis_json_is_retried() -> None:
    assert outcome(400, from_api=False) is Outcome.RETRY  # nginx's "400 The SSL certificate error"
    assert outcome(413, from_api=False) is Outcome.RETRY
    assert outcome(403, from_api=False) is Outcome.SITE_REFUSED


def test_backoff_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(initial=2, maximum=300)
    assert [backoff.ceiling(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff.ceiling(10_000) == 300  # days of failures do not overflow


def test_backoff_jitter_spreads_within_half_to_full_ceiling() -> None:
    backoff = Backoff(initial=2, maximum=300)
    rng = random.Random(7)
    delays = [backoff.delay(5, rng) for _ in range(500)]
    assert all(16 <= d <= 32 for d in delays)
    assert max(delays) - min(delays) > 10, "not the same delay for every site"


def test_backoff_rejects_an_inverted_range() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=10, maximum=5)


def test_a_message_is_dropped_only_after_waiting_past_the_bound() -> None:
    assert not expired(0, 30)
    assert not expired(30 * DAY, 30)
    assert expired(30 * DAY + 1, 30)


def test_config_defaults_and_refusals(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("url: https://pusat.example:8443/\ncameras: [gate, yard-2]\n", encoding="utf-8")
    config = load_config(good)
    assert config.url == "https://pusat.example:8443"
    assert config.heartbeat_s == 30
    assert config.ca_file == Path("/etc/cllmh/pki/ca.crt")
    assert config.outbox_path == Path("/var/lib/cllmh/report/outbox.sqlite3")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "url: http://user:pw@pusat.example\ncameras: ['../etc']\nbackoff_initial_s: 10\nbackoff_max_s: 5\n"
        "hearbeat_s: 3\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as refused:
        load_config(bad)
    text = str(refused.value)
    for key in ("url:", "cameras.0:", "backoff_max_s:", "hearbeat_s: Extra inputs"):
        assert key in text


# Captured from Debian 12's nginx 1.22.1 + libnginx-mod-rtmp 1.2.2 (`rtmp_stat all;` at /stat) while
# ffmpeg published a 640x360 15 fps H.264 test source (testsrc2) to live/gate: the page as served.
REAL_STAT = (Path(__file__).parent / "data" / "nginx_rtmp_stat.xml").read_bytes()

# Shaped like it: a stream without a publisher, and another application with the same name.
STAT = b"""<?xml version="1.0" encoding="utf-8" ?>
<rtmp><server><application><name>live</name><live>
  <stream><name>yard</name><time>0</time><meta/><nclients>0</nclients></stream>
</live></application>
<application><name>sub</name><live><stream><name>gate</name><time>5</time><publishing/></stream></live></application>
</server></rtmp>"""


def test_rtmp_statistics_are_read_per_stream() -> None:
    gate = parse_rtmp_stat(REAL_STAT, "live")["gate"]
    assert (gate.publishing, gate.uptime_s, gate.fps) == (True, 3.672, 15.0)
    assert (gate.width, gate.height) == (640, 360)
    streams = parse_rtmp_stat(STAT, "live")
    assert set(streams) == {"yard"}
    yard = streams["yard"]
    assert (yard.publishing, yard.fps, yard.width) == (False, None, None)
    assert set(parse_rtmp_stat(STAT, "sub")) == {"gate"}


def test_stream_since_moves_only_when_the_state_changes() -> None:
    tracker = StreamTracker()
    assert tracker.update("gate", True, 1000.0, uptime_s=100.0) == ("up", 900.0)
    assert tracker.update("gate", True, 1030.0, uptime_s=130.0) == ("up", 900.0)
    assert tracker.update("gate", False, 1060.0) == ("down", 1060.0)
    assert tracker.update("gate", False, 1090.0) == ("down", 1060.0)
    assert tracker.update("gate", True, 1120.0) == ("up", 1120.0)
    tracker.forget_except({"yard"})
    assert tracker.state == {}


def test_heartbeat_body_carries_the_contract_fields() -> None:
    body = json.loads(messages.heartbeat_body({"uptime_s": 1.0, "cameras": []}, 1234.5))
    assert body["schema"] == 1 and body["sent_at"] == 1234.5
    assert body["state"]["version"] and body["state"]["cameras"] == []
