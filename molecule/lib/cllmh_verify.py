"""Helpers shared by the Molecule (testinfra) tests; on the verifier's PYTHONPATH (molecule/base.yml)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, interval: float = 1.0) -> T:
    """Call `check` until it returns something truthy or `timeout` seconds pass; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)
