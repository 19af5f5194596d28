"""A real Grafana Loki for tests: upstream's binary from the artifact directory, on a loopback port.

The binary comes from `<repo>/../shared/artifacts/loki/<version>/loki-linux-amd64.zip` (or
$CLLMH_ARTIFACTS_DIR), checked against the SHA256SUMS beside it. Minimal single-process config:
filesystem storage, TSDB v13, in-memory ring, old samples accepted (tests push lines hours back).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOKI_VERSION = "v3.4.6"
ZIP_NAME = "loki-linux-amd64.zip"
REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {http_port}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {grpc_port}
  log_level: warn
common:
  path_prefix: {data}
  instance_addr: 127.0.0.1
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
  storage:
    filesystem:
      chunks_directory: {data}/chunks
      rules_directory: {data}/rules
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  reject_old_samples: false
  allow_structured_metadata: true
analytics:
  reporting_enabled: false
"""


def artifacts_dir() -> Path:
    return Path(os.environ.get("CLLMH_ARTIFACTS_DIR", REPO.parent / "shared" / "artifacts"))


def loki_zip() -> Path:
    """The Loki release zip, its checksum verified; skips (with the reason) when it is not there."""
    directory = artifacts_dir() / "loki" / LOKI_VERSION
    path = directory / ZIP_NAME
    if not path.is_file():
        pytest.skip(
            f"skipped: no real Loki to run, because {path} does not exist (artifact directory missing)"
        )
    sums = dict(
        reversed(line.split(maxsplit=1))
        for line in (directory / "SHA256SUMS").read_text().splitlines()
        if line
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sums.get(ZIP_NAME) != digest:
        pytest.fail(f"{path}: sha256 {digest} does not match {directory / 'SHA256SUMS'}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Loki:
    """A running Loki process; `url` answers the HTTP API."""

    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    log: Path = field(init=False)

    def start(self, *, ready_within: float = 120.0) -> Loki:
        with zipfile.ZipFile(loki_zip()) as archive:
            binary = Path(archive.extract("loki-linux-amd64", self.workdir))
        binary.chmod(0o755)
        http_port, grpc_port = free_port(), free_port()
        config = self.workdir / "loki.yaml"
        config.write_text(CONFIG.format(http_port=http_port, grpc_port=grpc_port, data=self.workdir / "data"))
        self.log = self.workdir / "loki.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), f"-config.file={config}"], stdout=log, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"loki exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"loki not ready within {ready_within} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def push(self, labels: dict[str, str], lines: list[tuple[float, str]]) -> None:
        """POST one stream (labels) with (unix time, line) entries to /loki/api/v1/push."""
        body = {"streams": [{"stream": labels, "values": [[str(int(t * 1e9)), line] for t, line in lines]}]}
        request = urllib.request.Request(
            f"{self.url}/loki/api/v1/push",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204, response.read()
