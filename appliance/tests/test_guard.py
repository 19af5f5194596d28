from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cllmh.cli import main
from cllmh.events import EventInfo, RetentionClass
from cllmh.guard import (
    GuardConfig,
    RateMeter,
    Segment,
    floor_bytes,
    kept_fill,
    load_config,
    plan,
    plan_cache,
    stale_marks,
)

DAY = 86400.0
NOW = 1_800_000_000.0
MB = 1_000_000
GB = 1000 * MB


def event(name: str, cls: RetentionClass, age_days: float, size: int = 100 * MB, **kw) -> EventInfo:
    start = NOW - age_days * DAY
    return EventInfo(
        event_id=name,
        camera="cam1",
        path=Path("/r") / name,
        start=start,
        size_bytes=size,
        retention=cls,
        complete=kw.get("complete", True),
        in_progress=kw.get("in_progress", False),
        mtime=kw.get("mtime", start),
        malformed=kw.get("malformed"),
    )


P, V, OTHER = RetentionClass.PERSON, RetentionClass.VEHICLE, RetentionClass.OTHER
CFG = GuardConfig(floor_percent=10, floor_hours=0, headroom_percent=0)


def names(deletions) -> list[str]:
    return [d.event.event_id for d in deletions]


def test_classes_come_from_labels() -> None:
    assert RetentionClass.of({"person", "car"}) is P
    assert RetentionClass.of({"truck"}) is V
    assert RetentionClass.of({"cat"}) is OTHER
    assert RetentionClass.of(set()) is OTHER


def test_nothing_is_deleted_above_the_floor() -> None:
    evs = [event("o1", OTHER, 1), event("v1", V, 1), event("p1", P, 1)]
    assert plan(evs, now=NOW, total=10 * GB, free=2 * GB, rate_bytes_per_s=0, config=CFG) == []


def test_events_past_their_maximum_age_always_go() -> None:
    evs = [event("o-old", OTHER, 15), event("o-new", OTHER, 13), event("p-old", P, 91), event("p-ok", P, 89)]
    chosen = plan(evs, now=NOW, total=10 * GB, free=5 * GB, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["o-old", "p-old"]
    assert all(d.level == logging.INFO for d in chosen)


def test_space_comes_from_the_lowest_class_first_oldest_first() -> None:
    evs = [
        event("p1", P, 5),
        event("v1", V, 5),
        event("o2", OTHER, 1),
        event("o1", OTHER, 2),
        event("v2", V, 1),
    ]
    # 10 GB disk, floor 1 GB, 0.75 GB free: 250 MB needed -> three 100 MB events, all "other" first
    chosen = plan(evs, now=NOW, total=10 * GB, free=750 * MB, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["o1", "o2", "v1"]
    assert [d.level for d in chosen] == [logging.WARNING] * 3


def test_events_past_their_retention_days_go_before_younger_ones_of_lower_class() -> None:
    # vehicle kept 14 days: a 20-day-old vehicle event goes before a 1-day-old "other"
    evs = [event("o-young", OTHER, 1), event("v-expired", V, 20)]
    chosen = plan(evs, now=NOW, total=10 * GB, free=950 * MB, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["v-expired"]


def test_touching_person_events_for_space_is_an_error() -> None:
    evs = [event("p1", P, 2), event("p2", P, 1)]
    chosen = plan(evs, now=NOW, total=10 * GB, free=900 * MB, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["p1"]
    assert chosen[0].level == logging.ERROR


def test_events_being_written_are_never_touched() -> None:
    evs = [event("o-writing", OTHER, 20, in_progress=True), event("o1", OTHER, 1)]
    chosen = plan(evs, now=NOW, total=10 * GB, free=0, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["o1"]


def test_orphans_go_after_the_grace_period_only() -> None:
    evs = [
        event("orphan-old", OTHER, 0, complete=False, mtime=NOW - 7200),
        event("orphan-new", OTHER, 0, complete=False, mtime=NOW - 60),
    ]
    chosen = plan(evs, now=NOW, total=10 * GB, free=5 * GB, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["orphan-old"]


def test_the_floor_follows_the_write_rate_when_that_is_larger() -> None:
    cfg = GuardConfig(floor_percent=5, floor_hours=2)
    assert floor_bytes(100 * GB, 0, cfg) == 5 * GB
    # 4 cameras at 4 Mbit/s = 2 MB/s -> 2 h = 14.4 GB
    assert floor_bytes(100 * GB, 2 * MB, cfg) == int(14.4 * GB)


def test_headroom_reclaims_a_little_more_than_the_floor() -> None:
    cfg = GuardConfig(floor_percent=10, floor_hours=0, headroom_percent=2)
    evs = [event(f"o{i}", OTHER, 10 - i) for i in range(5)]
    chosen = plan(evs, now=NOW, total=10 * GB, free=950 * MB, rate_bytes_per_s=0, config=cfg)
    assert names(chosen) == ["o0", "o1", "o2"]  # up to 1.2 GB free


def test_logs_over_their_cap_never_cost_recordings() -> None:
    """A log flood on the recordings' disk (issue 14, finding 6): what the logs hold beyond their cap
    is not reclaimed from recordings; paired with the logs within their cap, which count as usual."""
    cfg = GuardConfig(floor_percent=10, floor_hours=0, headroom_percent=0, log_cap_bytes=1 * GB)
    evs = [event(f"o{i}", OTHER, 2) for i in range(5)]
    # 3 GB of logs, 2 GB over the cap, left 0.5 GB free: 1.5 GB below the floor without the cap
    flood = plan(evs, now=NOW, total=10 * GB, free=500 * MB, rate_bytes_per_s=0, config=cfg, log_bytes=3 * GB)
    assert flood == []
    # within their cap the logs are ordinary use: the recordings make room for the floor as always
    usual = plan(evs, now=NOW, total=10 * GB, free=800 * MB, rate_bytes_per_s=0, config=cfg, log_bytes=1 * GB)
    assert names(usual) == ["o0", "o1"]
    # over the cap, only the excess is spared: the deficit it does not explain is still reclaimed
    both = plan(
        evs, now=NOW, total=10 * GB, free=700 * MB, rate_bytes_per_s=0, config=cfg, log_bytes=1_100 * MB
    )
    assert names(both) == ["o0", "o1"]


def test_cache_keeps_each_camera_s_newest_segment() -> None:
    segs = [Segment(Path(f"/c/cam1/{i}.mp4"), 10, i) for i in range(5)] + [
        Segment(Path("/c/cam2/0.mp4"), 100, 0)
    ]
    chosen = plan_cache(segs, max_bytes=30)
    assert [str(s.path) for s in chosen] == [
        "/c/cam1/0.mp4",
        "/c/cam1/1.mp4",
        "/c/cam1/2.mp4",
        "/c/cam1/3.mp4",
    ]


def test_rate_is_measured_from_segment_growth() -> None:
    meter = RateMeter(window_s=60)
    assert meter.update({"a": 100}, now=0) == 0
    meter.update({"a": 600}, now=10)  # +500
    rate = meter.update({"b": 1000}, now=20)  # a gone (deleted), b new: +1000
    assert rate == pytest.approx(1500 / 20)


def test_config_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "guard.yaml"
    bad.write_text("floor_percent: 0\nretention:\n  person: {days: 10, max_age_days: 5}\nunknown_key: 1\n")
    with pytest.raises(ValueError) as exc:
        load_config(bad)
    message = str(exc.value)
    assert "floor_percent" in message and "unknown_key" in message and "max_age_days" in message
    ok = tmp_path / "ok.yaml"
    ok.write_text("recordings_dir: /srv/rec\nretention:\n  other: {days: 1, max_age_days: 2}\n")
    assert load_config(ok).retention.other.max_age_days == 2


def malformed(name: str, age_days: float, size: int = 100 * MB) -> EventInfo:
    """An event whose sidecar cannot be used: dated by its directory's mtime, class unknown."""
    return event(
        name, OTHER, age_days, size, complete=False, malformed="labels is not an object of scores but list"
    )


def test_a_malformed_event_is_never_deleted_by_age() -> None:
    evs = [malformed("bad-ancient", 400), event("o-old", OTHER, 15)]
    chosen = plan(evs, now=NOW, total=10 * GB, free=5 * GB, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["o-old"]


def test_under_space_pressure_malformed_events_go_first_oldest_directory_first() -> None:
    evs = [
        event("o-expired", OTHER, 10),
        malformed("bad-new", 0.1),
        event("p1", P, 1),
        malformed("bad-old", 2),
    ]
    chosen = plan(evs, now=NOW, total=10 * GB, free=750 * MB, rate_bytes_per_s=0, config=CFG)
    assert names(chosen) == ["bad-old", "bad-new", "o-expired"]
    assert "malformed" in chosen[0].reason and chosen[0].level == logging.WARNING


@pytest.mark.parametrize(
    "directory", ["/", "//", "/var", "/var/lib", "/var/lib/cllmh", "/etc/cllmh", "/usr/../", "/home", "/tmp"]
)
def test_check_refuses_a_system_directory_as_recordings_dir(
    tmp_path: Path, directory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "guard.yaml"
    config.write_text(f"recordings_dir: {directory}\ncache_dir: {tmp_path / 'cache'}\n")
    assert main(["guard", "--check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "recordings_dir" in err and "system directory" in err, err


def test_check_refuses_a_symlink_to_a_system_directory_and_overlapping_directories(tmp_path: Path) -> None:
    (tmp_path / "rec").symlink_to("/")
    with pytest.raises(ValueError, match=r"rec \(which is /\) is a system directory"):
        GuardConfig(recordings_dir=tmp_path / "rec", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="must be an absolute path"):
        GuardConfig(recordings_dir=Path("recordings"))
    with pytest.raises(ValueError, match="neither inside the other"):
        GuardConfig(recordings_dir=tmp_path / "data", cache_dir=tmp_path / "data" / "cache")
    ok = GuardConfig(recordings_dir=tmp_path / "rec2", cache_dir=tmp_path / "cache")
    assert ok.recordings_dir == tmp_path / "rec2"


def test_an_event_marked_keep_is_never_deleted_by_age_or_for_space() -> None:
    evs = [event("o-old", OTHER, 400), event("o1", OTHER, 2), event("o2", OTHER, 1), event("p1", P, 1)]
    kept = frozenset({"o-old", "o1"})
    # Past its maximum age: only the unmarked ones go; then space comes from the next unmarked events.
    chosen = plan(evs, now=NOW, total=10 * GB, free=850 * MB, rate_bytes_per_s=0, config=CFG, kept=kept)
    assert names(chosen) == ["o2", "p1"]
    assert names(plan(evs, now=NOW, total=10 * GB, free=850 * MB, rate_bytes_per_s=0, config=CFG)) == [
        "o-old",
        "o1",
    ]


def test_kept_events_that_hold_the_floor_s_space_are_reported_not_deleted() -> None:
    evs = [event("k1", OTHER, 3, size=3 * GB), event("k2", P, 2, size=3 * GB), event("o1", OTHER, 1)]
    kept = frozenset({"k1", "k2"})
    chosen = plan(evs, now=NOW, total=10 * GB, free=500 * MB, rate_bytes_per_s=0, config=CFG, kept=kept)
    assert names(chosen) == ["o1"]  # all it may take; still below the 1 GB floor
    assert kept_fill(free_after=600 * MB, floor=1 * GB, kept_bytes=6 * GB)
    assert not kept_fill(free_after=2 * GB, floor=1 * GB, kept_bytes=6 * GB)
    assert not kept_fill(free_after=600 * MB, floor=1 * GB, kept_bytes=0)


def test_marks_of_events_that_are_gone_are_removed_after_a_grace() -> None:
    marks = {"gone-old": NOW - 7200, "gone-new": NOW - 60, "here": NOW - 7200}
    assert stale_marks(marks, {"here"}, NOW) == ["gone-old"]
