"""The reporter's YAML configuration (unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core.core_schema import ValidationInfo

from cllmh.config import load_yaml
from cllmh.names import CAMERA_NAME

CameraName = Annotated[str, StringConstraints(pattern=CAMERA_NAME)]


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Head office's base URL: https only (its certificate is verified against the fleet CA).
    url: str
    ca_file: Path = Path("/etc/cllmh/pki/ca.crt")
    cert_file: Path = Path("/etc/cllmh/pki/host.crt")
    key_file: Path = Path("/etc/cllmh/pki/host.key")
    state_dir: Path = Path("/var/lib/cllmh/report")
    recordings_dir: Path = Path("/var/lib/cllmh/recordings")
    cameras: list[CameraName] = []
    heartbeat_s: Annotated[float, Field(ge=0.2, le=3600)] = 30.0
    # How often the event index is read and due messages are sent.
    poll_s: Annotated[float, Field(ge=0.05, le=600)] = 2.0
    # The outbox bound: an event waits this long for head office before it is dropped (logged).
    event_max_age_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    backoff_initial_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    backoff_max_s: Annotated[float, Field(gt=0, le=86400)] = 300.0
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    # nginx-rtmp's statistics page (rtmp_stat); empty: a stream is up when its ingest unit is active.
    rtmp_stat_url: str = ""
    rtmp_application: str = "live"
    log_buffer_dir: Path = Path("/var/lib/syslog-ng/cllmh-buffer")
    # Language of the reporter's log lines (texts from cllmh.catalogue, each with its stable id).
    language: Literal["id", "en"] = "id"

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"must be an https:// URL with a host (head office), not {url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must not hold credentials, a query or a fragment")
        return url.rstrip("/")

    @field_validator("backoff_max_s")
    @classmethod
    def _max_after_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("backoff_initial_s")
        if initial is not None and value < initial:
            raise ValueError(f"must be at least backoff_initial_s ({initial})")
        return value

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / "outbox.sqlite3"


def load_config(path: Path) -> ReportConfig:
    """Read and validate; raises ValueError listing every problem by key."""
    return load_yaml(path, ReportConfig)
