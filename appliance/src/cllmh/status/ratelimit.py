"""Failed-login limiter (pure: the caller gives the time). Counts failures per key (an address, a
user name) in a sliding window; a key over its limit is refused before any password is hashed, so
a flood of wrong passwords costs a dictionary lookup each, not a KDF run. Bounded: keys whose
failures have all aged out are dropped, and at most `max_keys` keys are kept (the oldest go)."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque


class FailureLimiter:
    def __init__(self, limit: int, window_s: float, max_keys: int = 10000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: float) -> float:
        """0 when `key` may try now, else the seconds until its oldest counted failure ages out."""
        with self._lock:
            times = self._recent(key, now)
            if times is None or len(times) < self.limit:
                return 0.0
            return max(times[-self.limit] + self.window_s - now, 0.001)

    def failed(self, key: str, now: float) -> None:
        with self._lock:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=self.limit)
            times.append(now)
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)
