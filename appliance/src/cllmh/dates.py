"""Days as people write them, per language: dd/mm/yyyy in Bahasa Indonesia, yyyy-mm-dd in English
(never the month-first mm/dd/yyyy that a browser's own date input shows, whatever the page's
language). The same formats as head office's dashboard (files/dashboard/src/dates.ts).

yyyy-mm-dd (ISO) is the form of URLs and the JSON API and is read in either language: it cannot be
mistaken for a day-first or month-first date. All pure; a day's bounds are the box's local time
(the site's time zone), like every time the status page shows."""

from __future__ import annotations

import datetime as dt
import re

from cllmh import catalogue

FORMAT = {"id": "dd/mm/yyyy", "en": "yyyy-mm-dd"}

_ISO = re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})", re.ASCII)
_PATTERNS = {"id": re.compile(r"(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})", re.ASCII), "en": _ISO}
# Days an event can start on (events.START_RANGE: 1970 .. 2286).
_YEARS = range(1970, 2286)


class DateError(ValueError):
    """Text that is not a day in the language's format (or not a real day, like 31/02)."""


def date_format(lang: str | None) -> str:
    """How a day is written in `lang` (the input's placeholder)."""
    return FORMAT[catalogue.language(lang)]


def parse_day(text: str, lang: str | None = None) -> dt.date:
    """The day written in `lang`'s format, or as yyyy-mm-dd in any language (and with no `lang`:
    only yyyy-mm-dd, the API's form). Raises DateError."""
    text = text.strip()
    patterns = [_ISO] if lang is None else [_PATTERNS[catalogue.language(lang)], _ISO]
    for pattern in patterns:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        year, month, day = int(match["y"]), int(match["m"]), int(match["d"])
        if year not in _YEARS:
            raise DateError(text)
        try:
            return dt.date(year, month, day)
        except ValueError:
            raise DateError(text) from None
    raise DateError(text)


def format_day(day: dt.date, lang: str | None) -> str:
    """The day in `lang`'s format (the inverse of parse_day)."""
    if catalogue.language(lang) == "id":
        return day.strftime("%d/%m/%Y")
    return day.isoformat()


def day_bounds(day: dt.date) -> tuple[float, float]:
    """The day as unix times [its local midnight, the next day's local midnight)."""
    start = dt.datetime.combine(day, dt.time()).astimezone()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).astimezone()
    return start.timestamp(), end.timestamp()


def bad_date_message(lang: str, today: dt.date) -> str:
    """The catalogue's "write the date as …" in `lang` (its format), with today as the example."""
    return catalogue.text("filter.bad_date", lang, format=date_format(lang), example=format_day(today, lang))
