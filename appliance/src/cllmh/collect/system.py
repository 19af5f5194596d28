"""Host facts: uptime, temperature, hostname."""

from __future__ import annotations

import socket
from pathlib import Path

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
