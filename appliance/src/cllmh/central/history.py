"""A site's recent history (pure): per time bucket, whether a heartbeat arrived (online) and the
disk's hours left it reported. The store keeps one row per (site, bucket) that saw a heartbeat;
a bucket without a row was silent."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Point:
    at: float  # the bucket's start (unix seconds)
    online: bool
    hours_left: float | None

    def json(self) -> dict[str, Any]:
        return asdict(self)


def bucket_of(at: float, bucket_s: int) -> int:
    return int(at // bucket_s) * bucket_s


def series(seen: dict[int, float | None], since: float, until: float, bucket_s: int) -> list[Point]:
    """Every bucket from the one holding `since` to the one holding `until`, oldest first.
    `seen`: bucket start -> hours left reported in it (None when the site did not know)."""
    first, last = bucket_of(since, bucket_s), bucket_of(until, bucket_s)
    count = min(math.floor((last - first) / bucket_s) + 1, 10_000)
    starts = (first + i * bucket_s for i in range(count))
    return [Point(float(b), b in seen, seen.get(b)) for b in starts]
