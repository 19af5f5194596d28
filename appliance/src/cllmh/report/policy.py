"""The outbox's decisions, pure: what to do with an answer, how long to wait, what is past the bound.

Kept free of I/O so that each rule is tested on its own (tests/test_report_policy.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

DAY = 86400.0


class Outcome(Enum):
    """What a send attempt means for the message."""

    DELIVERED = "delivered"  # 2xx: head office has it (a duplicate answer counts too)
    RETRY = "retry"  # connection error, timeout, 408, 429, 5xx: try again later, same key
    SITE_REFUSED = "site-refused"  # 401, 403: head office refuses the site, not this message
    PARK = "park"  # any other 4xx: sending it again cannot help; kept for an operator, logged


def outcome(status: int | None, *, from_api: bool = True) -> Outcome:
    """The outcome of an HTTP status; None is a connection error (nothing or no answer came back).
    `from_api`: the answer is the API's JSON. A 4xx page that is not (nginx's own "400 The SSL
    certificate error", a captive portal, a proxy) says nothing about the message: retried."""
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (408, 429) or status >= 500:
        return Outcome.RETRY
    if status in (401, 403):
        # No verified certificate, or a site head office does not know (yet) or revoked: every
        # message would get the same answer, so none is parked; all wait, retried with the backoff,
        # until the site is registered or its certificate replaced (a site installed before head
        # office lists it loses nothing).
        return Outcome.SITE_REFUSED
    if 400 <= status < 500:
        return Outcome.PARK if from_api else Outcome.RETRY
    return Outcome.RETRY  # 1xx/3xx are not answers this API gives: treat as a failure of the path


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits a random time in [ceiling/2, ceiling],
    ceiling = min(maximum, initial * 2**(n-1)). The jitter spreads the sites of a fleet that all
    lost head office at the same moment, so they do not come back in one burst."""

    initial: float = 2.0
    maximum: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"backoff: need 0 < initial ({self.initial}) <= maximum ({self.maximum})")

    def ceiling(self, attempts: int) -> float:
        exponent = min(max(attempts, 1) - 1, 60)  # no float overflow after days of failures
        return min(self.maximum, self.initial * 2.0**exponent)

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt in a row."""
        ceiling = self.ceiling(attempts)
        return (rng or random).uniform(ceiling / 2, ceiling)


def expired(waited_s: float, max_age_days: float) -> bool:
    """A message is dropped only once it has waited longer than the bound, never before. `waited_s`
    is counted by the reporter on the monotonic clock while it runs, not taken from the wall clock:
    a site clock set years ahead (a dead clock battery, a wrong NTP answer) cannot make the whole
    outbox look expired, and time with the reporter stopped only keeps messages longer."""
    return waited_s > max_age_days * DAY
