"""The appliance's user-facing messages, once: stable ids with Indonesian and English texts.

The status page, its JSON API and the reporter take their words from here, so a message changes in
one place and keeps its id (a script or head office may key on the id, never on the text).
Indonesian is the default language."""

from __future__ import annotations

import json
import logging
from functools import cache
from importlib import resources

LANGUAGES = ("id", "en")
DEFAULT = "id"


@cache
def catalogue() -> dict[str, dict[str, str]]:
    data = json.loads(resources.files("cllmh").joinpath("catalogue.json").read_text(encoding="utf-8"))
    for key, texts in data.items():
        missing = set(LANGUAGES) - set(texts)
        if missing:
            raise ValueError(f"message {key} has no text in {', '.join(sorted(missing))}")
    return data


def language(value: str | None) -> str:
    """A supported language, else the default."""
    return value if value in LANGUAGES else DEFAULT


def text(message_id: str, lang: str = DEFAULT, **values: object) -> str:
    """The message in `lang`, with its {placeholders} filled. An unknown id raises KeyError."""
    return catalogue()[message_id][language(lang)].format(**values)


def message(message_id: str, **values: object) -> dict[str, object]:
    """The API's form of a message: its id, its values and its text in each language."""
    return {
        "id": message_id,
        "values": values,
        "text": {lang: text(message_id, lang, **values) for lang in LANGUAGES},
    }


def log(logger: logging.Logger, level: int, message_id: str, lang: str = DEFAULT, **values: object) -> None:
    """Log a catalogue message as `[id] text` in `lang`: the text reads well for the technician on
    the status page's Log and at head office, the id stays for searches and alerts."""
    logger.log(level, "[%s] %s", message_id, text(message_id, lang, **values))
