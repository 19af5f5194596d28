"""Days as each language writes them (`cllmh.dates`): pure, no I/O; the page's use of them is in
test_status.py."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from cllmh import dates

APRIL_3 = dt.date(2026, 4, 3)  # 03/04: day first it is 3 April, month first it would be 4 March


def test_indonesian_is_day_first_english_is_iso() -> None:
    assert dates.parse_day("03/04/2026", "id") == APRIL_3
    assert dates.parse_day(" 3/4/2026 ", "id") == APRIL_3
    assert dates.parse_day("2026-04-03", "en") == APRIL_3
    assert dates.parse_day("2026-4-3", "en") == APRIL_3
    assert dates.date_format("id") == "dd/mm/yyyy"
    assert dates.date_format("en") == "yyyy-mm-dd"
    assert dates.date_format("fr") == "dd/mm/yyyy"  # the default language's


def test_iso_is_read_in_both_languages_and_is_the_only_form_without_one() -> None:
    assert dates.parse_day("2026-04-03", "id") == APRIL_3
    assert dates.parse_day("2026-04-03") == APRIL_3
    with pytest.raises(dates.DateError):
        dates.parse_day("03/04/2026")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("03/04/2026", "en"),  # month-first readers would take it for 4 March: refused, not guessed
        ("04/25/2026", "id"),  # the browser's mm/dd/yyyy
        ("31/02/2026", "id"),  # not a real day
        ("29/02/2026", "id"),
        ("2026-13-01", "en"),
        ("25/11/26", "id"),  # two-digit year
        ("25-11-2026", "id"),
        ("25/11/2026 10:00", "id"),  # a day, not a moment
        ("01/01/1969", "id"),  # before any event
        ("kemarin", "id"),
        ("yesterday", "en"),
        ("", "id"),
        ("\uff12\uff10\uff12\uff16-04-03", "en"),  # full-width digits
    ],
)
def test_what_is_not_a_day_in_the_language_is_refused(text: str, lang: str) -> None:
    with pytest.raises(dates.DateError):
        dates.parse_day(text, lang)


def test_a_day_is_written_back_in_the_language_s_format_and_reads_again() -> None:
    assert dates.format_day(APRIL_3, "id") == "03/04/2026"
    assert dates.format_day(APRIL_3, "en") == "2026-04-03"
    day = dt.date(2024, 1, 1)
    while day.year < 2027:
        for lang in ("id", "en"):
            assert dates.parse_day(dates.format_day(day, lang), lang) == day
        day += dt.timedelta(days=1)


def test_the_refusal_names_the_language_s_format_with_an_example() -> None:
    today = dt.date(2026, 11, 25)
    assert dates.bad_date_message("id", today) == (
        "Tanggal tidak dikenali. Tulis sebagai dd/mm/yyyy, misalnya 25/11/2026."
    )
    assert dates.bad_date_message("en", today) == (
        "Not a date. Write it as yyyy-mm-dd, for example 2026-11-25."
    )


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield
    monkeypatch.undo()
    time.tzset()


def _in_zone(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("TZ", name)
    time.tzset()


def test_a_day_is_local_midnight_to_local_midnight(monkeypatch: pytest.MonkeyPatch, zone: None) -> None:
    _in_zone(monkeypatch, "Asia/Jakarta")  # WIB, UTC+7
    start, end = dates.day_bounds(APRIL_3)
    assert start == dt.datetime(2026, 4, 2, 17, tzinfo=dt.UTC).timestamp()
    assert end - start == 86400
    # A day with a clock change is not 24 h long: the next midnight, not start + 86400.
    _in_zone(monkeypatch, "Europe/Berlin")
    start, end = dates.day_bounds(dt.date(2026, 3, 29))
    assert start == dt.datetime(2026, 3, 28, 23, tzinfo=dt.UTC).timestamp()
    assert end == dt.datetime(2026, 3, 29, 22, tzinfo=dt.UTC).timestamp()
