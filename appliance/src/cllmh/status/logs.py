"""Recent lines of the site's syslog files (`<log_dir>/<host>/messages.log`), newest first, read
backwards from the end in blocks: a request costs at most `max_bytes` of reading, however large the
file. Lines look like `2026-11-25T10:00:00+07:00 HOST facility.severity program: message`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
LINE = re.compile(
    r"^(?P<time>\S+) (?P<host>\S+) (?:(?P<facility>[a-z0-9]+)\.)?(?P<severity>[a-z]+) (?P<rest>.*)$"
)
BLOCK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    lines: list[dict]
    # Byte offset to pass as `before` for older lines; None when the start of the file was reached.
    before: int | None


def hosts(log_dir: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(log_dir) if e.is_dir() and HOST.match(e.name))
    except OSError:
        return []


def parse(line: str) -> dict:
    match = LINE.match(line)
    if match is None or match["severity"] not in SEVERITIES:
        return {"time": None, "severity": None, "facility": None, "text": line}
    return {
        "time": match["time"],
        "severity": match["severity"],
        "facility": match["facility"],
        "text": match["rest"],
    }


def wanted(entry: dict, min_severity: str | None, needle: str) -> bool:
    """Pure filter: at least as severe as `min_severity` (lines without one pass only without a
    filter), and containing `needle` (case-insensitive)."""
    if min_severity is not None:
        if entry["severity"] is None:
            return False
        if SEVERITIES.index(entry["severity"]) > SEVERITIES.index(min_severity):
            return False
    return not needle or needle.lower() in entry["text"].lower()


def read_page(
    path: Path,
    *,
    limit: int = 100,
    before: int | None = None,
    min_severity: str | None = None,
    needle: str = "",
    max_bytes: int = 4 * 1024 * 1024,
) -> Page:
    """Up to `limit` matching lines ending before byte `before` (default: the end), newest first."""
    if min_severity is not None and min_severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
    try:
        handle = path.open("rb")
    except OSError:
        return Page([], None)
    with handle:
        end = handle.seek(0, os.SEEK_END)
        position = end if before is None else max(0, min(before, end))
        found: list[dict] = []
        carry = b""
        read = 0
        while position > 0 and len(found) < limit and read < max_bytes:
            size = min(BLOCK, position)
            position -= size
            handle.seek(position)
            chunk = handle.read(size) + carry
            read += size
            parts = chunk.split(b"\n")
            # The first part may be a line cut by the block's start: keep it for the next block.
            carry = parts[0] if position > 0 else b""
            complete = parts[1:] if position > 0 else parts
            # Offset where each complete line starts, to resume exactly after the last one taken.
            offset = position + len(parts[0]) + 1 if position > 0 else 0
            starts = []
            for part in complete:
                starts.append(offset)
                offset += len(part) + 1
            for part, start in zip(reversed(complete), reversed(starts), strict=True):
                if not part.strip():
                    continue
                entry = parse(part.decode("utf-8", "replace"))
                if wanted(entry, min_severity, needle):
                    found.append(entry)
                    if len(found) == limit:
                        return Page(found, start if start > 0 else None)
        resume = position + len(carry) if position > 0 else None
        return Page(found, resume)
