"""The head office API's configuration: one YAML file (default /etc/cllmh/central.yaml, or the
file named by CLLMH_CENTRAL_CONFIG), validated at the edge."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cllmh import livetoken
from cllmh.config import load_yaml

DEFAULT_PATH = Path("/etc/cllmh/central.yaml")
ENV_PATH = "CLLMH_CENTRAL_CONFIG"
MIB = 1024 * 1024


class Thresholds(BaseModel):
    """When a condition becomes an alert."""

    model_config = ConfigDict(extra="forbid")

    site_silent_minutes: Annotated[float, Field(gt=0)] = 5
    camera_down_minutes: Annotated[float, Field(gt=0)] = 10
    hours_left_floor: Annotated[float, Field(ge=0)] = 24
    clock_skew_s: Annotated[float, Field(gt=0)] = 60
    guard_person_deletions: Annotated[int, Field(ge=1, description="alert at this many in 24 h")] = 1


class Smtp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    username: str | None = None
    password_file: Path | None = None
    sender: str
    recipients: Annotated[list[str], Field(min_length=1)]
    timeout_s: Annotated[float, Field(gt=0)] = 10


class Webhook(BaseModel):
    """A POST of JSON per alert. Preset `telegram`: url = https://api.telegram.org/bot<TOKEN>/sendMessage
    and the body is Telegram's sendMessage ({"chat_id", "text"}); `generic`: the alert as JSON."""

    model_config = ConfigDict(extra="forbid")

    url: str
    preset: Literal["generic", "telegram"] = "generic"
    chat_id: str | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 10

    @model_validator(mode="after")
    def _telegram_needs_chat(self) -> Webhook:
        if self.preset == "telegram" and not self.chat_id:
            raise ValueError("preset telegram needs chat_id")
        return self


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repeat_minutes: Annotated[
        float, Field(gt=0, description="an unacknowledged alert repeats this often")
    ] = 60
    smtp: Smtp | None = None
    webhooks: list[Webhook] = []


class Elasticsearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    index_prefix: str = "cllmh"
    timeout_s: Annotated[float, Field(gt=0)] = 10
    retries: Annotated[int, Field(ge=0)] = 3


class LiveSite(BaseModel):
    """Where the dashboard plays a site's cameras from, and the secret its tokens are signed with."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[
        str,
        Field(
            pattern=r"^https?://[^/?#\s]+$", description="the site's public base URL (its MikroTik DDNS name)"
        ),
    ]
    secret_file: Path  # the site's live secret (`cllmh_live_secret`), at least 16 bytes

    def secret(self) -> bytes:
        try:
            return self.secret_file.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"{self.secret_file}: cannot read: {exc.strerror}") from exc


class Live(BaseModel):
    """Live view: per site its public URL and live secret; tokens last `token_ttl_s`."""

    model_config = ConfigDict(extra="forbid")

    token_ttl_s: Annotated[int, Field(ge=30, le=livetoken.MAX_TTL_S)] = livetoken.DEFAULT_TTL_S
    sites: dict[str, LiveSite] = {}


class CentralConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database: Path = Path("/var/lib/cllmh-central/central.sqlite3")
    secret_key_file: Path | None = Path("/etc/cllmh/central.secret")
    secret_key: str | None = Field(default=None, description="tests only; production reads secret_key_file")
    # Site identity comes from headers set by the head office's nginx after mTLS. Only true when
    # the app listens on the unix socket that nginx alone can reach.
    trust_proxy_headers: bool = False
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 30
    missed_heartbeats: Annotated[int, Field(ge=1)] = 3
    max_body_bytes: Annotated[int, Field(ge=1024)] = 2 * MIB
    event_retention_days: Annotated[float, Field(gt=0)] = 90
    # Snapshots are most of the database (benchmark: ~7.7 MiB per site-day at 40 KB each), kept shorter.
    snapshot_retention_days: Annotated[float, Field(gt=0)] = 30
    idempotency_retention_hours: Annotated[float, Field(gt=0)] = 48
    session_cookie_secure: bool = True
    session_hours: Annotated[float, Field(gt=0)] = 12
    thresholds: Thresholds = Thresholds()
    notify: Notify = Notify()
    elasticsearch: Elasticsearch | None = None
    live: Live = Live()
    # A site's state history (online, hours left) kept in buckets of this size, for this long.
    history_bucket_s: Annotated[int, Field(ge=10, le=3600)] = 300
    history_retention_hours: Annotated[float, Field(ge=24)] = 48

    def secret(self) -> str:
        if self.secret_key:
            return self.secret_key
        if self.secret_key_file is None:
            raise ValueError("neither secret_key_file nor secret_key is set")
        try:
            return self.secret_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{self.secret_key_file}: cannot read: {exc.strerror}") from exc


def load(path: Path | None = None) -> CentralConfig:
    """The configuration from `path`, else $CLLMH_CENTRAL_CONFIG, else the default path."""
    return load_yaml(path or Path(os.environ.get(ENV_PATH, DEFAULT_PATH)), CentralConfig)
