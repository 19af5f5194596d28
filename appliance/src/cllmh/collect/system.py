"""Host facts: uptime, temperature, hostname, CPU use."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil

THERMAL = Path("/sys/class/thermal")


def uptime_s(proc_uptime: Path = Path("/proc/uptime")) -> float | None:
    try:
        return round(float(proc_uptime.read_text(encoding="ascii").split()[0]), 1)
    except (OSError, ValueError, IndexError):
        return None


def temperature_c(thermal: Path = THERMAL) -> float | None:
    """The hottest thermal zone in degrees Celsius, or None where the host exposes none (VMs)."""
    readings = []
    for zone in sorted(thermal.glob("thermal_zone*/temp")):
        try:
            readings.append(int(zone.read_text(encoding="ascii").strip()) / 1000)
        except (OSError, ValueError):
            continue
    return round(max(readings), 1) if readings else None


def hostname() -> str:
    return socket.gethostname()


class CpuGauge:
    """System-wide CPU use (%) between two samples of psutil.cpu_times(), one sample shared by every
    thread of the process.

    psutil.cpu_percent(interval=None) keeps its previous sample per calling thread, so the first call
    in a thread (each of gunicorn's request threads, a fresh process) reads 0.0. Here the first call
    measures over `min_interval_s` (it waits that long once); later calls measure since the previous
    one, and a call less than `min_interval_s` after it repeats that figure instead of dividing a
    few clock ticks."""

    def __init__(self, min_interval_s: float = 0.25) -> None:
        self.min_interval_s = min_interval_s
        self.lock = threading.Lock()
        self.sample: tuple[float, Any] | None = None  # (monotonic time, psutil.cpu_times())
        self.value = 0.0

    def percent(self) -> float:
        with self.lock:
            if self.sample is None:
                self.sample = (time.monotonic(), psutil.cpu_times())
                time.sleep(self.min_interval_s)
            elif time.monotonic() - self.sample[0] < self.min_interval_s:
                return self.value
            now, times = time.monotonic(), psutil.cpu_times()
            self.value = busy_percent(self.sample[1], times)
            self.sample = (now, times)
            return self.value


def busy_percent(before: Any, after: Any) -> float:
    """CPU use between two psutil.cpu_times() samples (pure): the share of time neither idle nor
    waiting for I/O. Guest time is already counted in user time (as psutil does)."""

    def split(t: Any) -> tuple[float, float]:
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        return total, t.idle + getattr(t, "iowait", 0.0)

    (total0, idle0), (total1, idle1) = split(before), split(after)
    elapsed = total1 - total0
    if elapsed <= 0:
        return 0.0
    return round(min(100.0, max(0.0, 100.0 * (1 - (idle1 - idle0) / elapsed))), 1)
