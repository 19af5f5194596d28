"""The log-forwarding backlog: bytes in syslog-ng's disk buffer for head office."""

from __future__ import annotations

import os
from pathlib import Path


def backlog_bytes(buffer_dir: Path) -> int | None:
    """Total size of the disk-buffer files (*.rqf/*.qf) in syslog-ng's buffer directory: an upper
    bound of what waits to be forwarded (a reliable buffer file also holds its header and space
    not yet reclaimed). None when the directory cannot be read (absent, or not readable by the
    reporter's user)."""
    total = 0
    try:
        with os.scandir(buffer_dir) as entries:
            for entry in entries:
                if entry.name.endswith((".rqf", ".qf")) and entry.is_file(follow_symlinks=False):
                    total += entry.stat().st_size
    except OSError:
        return None
    return total
