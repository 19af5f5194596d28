"""The status page's YAML configuration and its users file (unknown keys are errors)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from cllmh.config import load_yaml
from cllmh.names import CAMERA_NAME

CameraName = Annotated[str, StringConstraints(pattern=CAMERA_NAME)]
UserName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")]
Role = Literal["viewer", "technician"]
ROLES: tuple[Role, ...] = ("viewer", "technician")
SCRYPT_HASH = re.compile(r"^scrypt:\d+:\d+:\d+\$[^$]+\$[0-9a-f]+$")


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: UserName
    role: Role
    # werkzeug's scrypt hash (generate_password_hash(method="scrypt")): `cllmh status users` makes it.
    password_hash: str

    @field_validator("password_hash")
    @classmethod
    def _scrypt(cls, value: str) -> str:
        if not SCRYPT_HASH.match(value):
            raise ValueError("must be a werkzeug scrypt hash (scrypt:N:r:p$salt$hex), never a password")
        return value


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[User] = []

    @field_validator("users")
    @classmethod
    def _unique(cls, users: list[User]) -> list[User]:
        names = [u.name for u in users]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"user listed twice: {', '.join(duplicates)}")
        return users


class LoginLimit(BaseModel):
    """Failed logins allowed in `window_s` before further attempts are refused (HTTP 429) without
    checking any password."""

    model_config = ConfigDict(extra="forbid")

    per_address: Annotated[int, Field(ge=1, le=1000)] = 10
    per_user: Annotated[int, Field(ge=1, le=1000)] = 5
    window_s: Annotated[float, Field(ge=10, le=86400)] = 300.0


class StatusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    users_file: Path = Path("/etc/cllmh-status/users.yaml")
    # Signs the session cookie; made once by the role, readable by the status page's user only.
    session_secret_file: Path = Path("/etc/cllmh-status/session.secret")
    # The site's live secret (cllmh.livetoken): head office mints live-view tokens with it.
    live_secret_file: Path = Path("/etc/cllmh-status/live.secret")
    # SHA-256 (hex) of the token monitoring sends as `Authorization: Bearer` to /metrics; empty: off.
    metrics_token_sha256: Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{64})?$")] = ""
    cameras: list[CameraName] = []
    recordings_dir: Path = Path("/var/lib/cllmh/recordings")
    log_dir: Path = Path("/var/log/cctv")
    log_buffer_dir: Path = Path("/var/lib/syslog-ng/cllmh-buffer")
    report_outbox: Path = Path("/var/lib/cllmh/report/outbox.sqlite3")
    rtmp_stat_url: str = "http://127.0.0.1:8081/stat"
    rtmp_application: str = "live"
    # systemd units shown on the overview besides each camera's ingest and recorder.
    # This box's restream of a camera ({camera}: its name): what an on-demand validation probes. It
    # carries no password: the status page never reads the cameras' own URLs.
    restream_url: str = "rtmp://127.0.0.1:1935/live/{camera}"
    # nginx-rtmp's hls_fragment (seconds, or nginx's "2s"/"500ms"): a keyframe interval longer than
    # this is warned about.
    hls_fragment_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    # Seconds of video a validation reads, and its bound (ffprobe is killed after it).
    validate_window_s: Annotated[float, Field(ge=2, le=30)] = 8.0
    validate_timeout_s: Annotated[float, Field(ge=5, le=50)] = 25.0
    units: list[str] = ["nginx.service", "syslog-ng.service", "cllmh-guard.service", "cllmh-report.service"]
    session_cookie_secure: bool = True
    session_hours: Annotated[float, Field(gt=0, le=720)] = 12.0
    login_limit: LoginLimit = LoginLimit()
    # Behind nginx on a unix socket only nginx can open: the client's address is X-Real-IP.
    trust_proxy_headers: bool = False

    @field_validator("hls_fragment_s", mode="before")
    @classmethod
    def _nginx_time(cls, value: object) -> object:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", value)
            if not match:
                raise ValueError(f"must be seconds or an nginx time like 2s or 500ms, not {value!r}")
            return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
        return value

    @field_validator("restream_url")
    @classmethod
    def _restream(cls, value: str) -> str:
        parts = urlsplit(value.replace("{camera}", "camera"))
        if parts.scheme not in ("rtmp", "rtmps", "rtsp", "rtsps") or not parts.hostname:
            raise ValueError(f"must be an rtmp:// or rtsp:// URL of this box's restream, not {value!r}")
        if "{camera}" not in value:
            raise ValueError("must name the camera as {camera}")
        if parts.username or parts.password:
            raise ValueError("must carry no user or password: the status page holds no camera credentials")
        return value

    @field_validator("recordings_dir", "log_dir", "users_file", "session_secret_file", "live_secret_file")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, not {value}")
        return value


def load(path: Path) -> StatusConfig:
    """Read and validate; raises ValueError listing every problem by key."""
    return load_yaml(path, StatusConfig)


def load_users(path: Path) -> dict[str, User]:
    return {u.name: u for u in load_yaml(path, UsersFile).users}


def read_secret(path: Path, minimum: int = 16) -> bytes:
    """A secret file's content (surrounding whitespace removed); ValueError when it is too short."""
    secret = path.read_bytes().strip()
    if len(secret) < minimum:
        raise ValueError(f"{path}: secret too short ({len(secret)} bytes, at least {minimum})")
    return secret
