from __future__ import annotations

import pytest

from cllmh.decide import EventState, Span, can_discard, interesting, segments_to_keep


def test_an_event_starts_at_n_of_m_and_ends_after_the_quiet_period() -> None:
    state = EventState(n=2, m=4, quiet_s=10)
    assert state.update(0.0, {"person": 0.8}) is None
    assert state.update(0.2, {}) is None
    assert state.update(0.4, {"person": 0.9}) == "start"
    assert state.start == 0.4
    assert state.update(5.0, {"car": 0.7}) is None
    assert state.update(14.9, {}) is None
    assert state.update(15.0, {}) == "end"
    assert state.labels == {"person": 0.9, "car": 0.7}


def test_a_single_false_positive_starts_nothing() -> None:
    state = EventState(n=2, m=3, quiet_s=10)
    results = [state.update(t, {"person": 0.6} if t == 1 else {}) for t in range(10)]
    assert results == [None] * 10


def test_impossible_n_of_m_is_refused() -> None:
    with pytest.raises(ValueError, match="n <= m"):
        EventState(n=4, m=3)


def test_segments_overlapping_an_event_with_pre_and_post_roll_are_kept() -> None:
    segments = [Span(t, t + 4) for t in range(0, 60, 4)]
    keep = segments_to_keep(segments, [Span(20, 30)], pre_roll=5, post_roll=10)
    kept = [s.start for s, k in zip(segments, keep, strict=True) if k]
    assert kept == [12, 16, 20, 24, 28, 32, 36]


def test_segments_are_discarded_only_when_no_event_could_still_want_them() -> None:
    assert can_discard(Span(0, 4), now=20, open_event_start=None, pre_roll=5)
    assert not can_discard(Span(12, 16), now=20, open_event_start=None, pre_roll=5)
    assert not can_discard(Span(0, 4), now=100, open_event_start=6, pre_roll=5)


def test_per_label_thresholds_and_labels_of_interest() -> None:
    seen = interesting(
        [("person", 0.45), ("car", 0.6), ("cat", 0.99), ("person", 0.7)], {"person": 0.5, "default": 0.55}
    )
    assert seen == {"person": 0.7, "car": 0.6}
