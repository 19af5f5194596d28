"""Names shared by the site and head office, defined once.

A camera's name is a directory name (recordings, cache), part of a URL (RTMP/HLS stream, the
event's id at head office) and of a systemd instance name, so it is kept to letters, digits, `_`
and `-`, not beginning with `-` (it would read as an option to ffmpeg and systemctl)."""

from __future__ import annotations

CAMERA_NAME_CHARS = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
CAMERA_NAME = rf"^{CAMERA_NAME_CHARS}$"
