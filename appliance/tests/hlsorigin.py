"""A site's HLS origin for the dashboard's browser test, checking tokens as a site does: ffmpeg
publishes a live HLS stream made from the project's footage (OpenCV's vtest.avi, encoded as a
camera sends it), a real nginx serves it over HTTPS at /hls/<camera>/index.m3u8 the way the site's
nginx_rtmp does, and asks the REAL status page (`cllmh status serve`: gunicorn on a unix socket,
`cllmh.status.app`) by `auth_request` whether each playlist and fragment request may pass, as the
site's nginx.conf.j2 does. The status page also serves the person event's clip (written by the
recorder's own event writer from the same footage) at /api/v1/events/<id>/clip.mp4 with its token
check, CORS for head office added by nginx as on a site.

nginx logs every request with its query string and time so a test can check what the browser sent.
The nginx config here is a copy of the site template's HLS, auth and clip locations (without RTMP,
which this nginx has no module for); keep them alike.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cllmh import events as ev
from conftest import need
from footage import H264, VTEST, ffmpeg
from footage import need as need_file
from headoffice import free_port, wait_for
from pki import Issued

NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
events {{ worker_connections 128; }}
http {{
    log_format hls '$msec $status $request_method $request_uri';
    access_log {d}/access.log hls;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # As on a site (roles/nginx_rtmp/templates/etc/nginx/nginx.conf.j2): the status page decides.
        location = /_cllmh/auth {{
            internal;
            proxy_pass http://unix:{socket}:/auth/hls;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Real-IP $remote_addr;
        }}
        location ~ ^/api/v1/events/[^/]+/clip\\.mp4$ {{
            proxy_pass http://unix:{socket};
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            add_header Access-Control-Allow-Origin {allow_origin} always;
            add_header Vary Origin always;
        }}
        location /hls/ {{
            auth_request /_cllmh/auth;
            alias {d}/hls/;
            types {{
                application/vnd.apple.mpegurl m3u8;
                video/mp2t ts;
            }}
            add_header Cache-Control no-cache always;
            # The dashboard (another origin) fetches with XHR: allowed for head office only.
            add_header Access-Control-Allow-Origin {allow_origin} always;
            add_header Vary Origin always;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Request:
    at: float
    status: int
    path: str
    token: str | None


class HlsOrigin:
    """Start with `start()`, stop with `close()`; `url` is the site's public base URL. `site` and
    `live_secret` are the status page's (the secret head office mints the tokens with)."""

    def __init__(  # noqa: PLR0917 (the site's facts)
        self,
        directory: Path,
        server: Issued,
        allow_origin: str,
        site: str,
        live_secret: bytes,
        cameras: tuple[str, ...] = ("gate",),
    ) -> None:
        self.directory = directory
        self.server = server
        self.allow_origin = allow_origin
        self.site = site
        self.live_secret = live_secret
        self.cameras = cameras
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.socket = directory / "status.sock"
        self.recordings = directory / "recordings"
        self.processes: list[subprocess.Popen] = []

    def _status_page(self) -> None:
        """The site's status page under gunicorn on a unix socket, as the status_page role runs it."""
        d = self.directory
        (d / "users.yaml").write_text("users: []\n", encoding="utf-8")
        (d / "session.secret").write_text(secrets.token_urlsafe(48), encoding="utf-8")
        (d / "live.secret").write_bytes(self.live_secret)
        config = {
            "site": self.site,
            "users_file": str(d / "users.yaml"),
            "session_secret_file": str(d / "session.secret"),
            "live_secret_file": str(d / "live.secret"),
            "cameras": list(self.cameras),
            "recordings_dir": str(self.recordings),
            "log_dir": str(d / "log"),
            "log_buffer_dir": str(d / "no-buffer"),
            "report_outbox": str(d / "no-outbox.sqlite3"),
            "rtmp_stat_url": "",
            "units": [],
            "trust_proxy_headers": True,
        }
        (d / "status.yaml").write_text(json.dumps(config), encoding="utf-8")  # YAML is a superset
        command = [sys.executable, "-m", "cllmh.cli", "status", "--config", str(d / "status.yaml"),
                   "serve", "--bind", f"unix:{self.socket}", "--threads", "4"]  # fmt: skip
        log = open(d / "status.log", "wb")  # noqa: SIM115 (open while the process runs)
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        wait_for("the status page's socket", self.socket.exists)

    def record_event(self, camera: str, event_id: str, start: float) -> Path:
        """A person event of `camera` with a 6 s clip of the footage, through the recorder's writer."""
        segment = self.directory / "segment.mp4"
        if not segment.exists():
            ffmpeg("-i", str(self.directory / "camera.mp4"), "-t", "6", "-c", "copy", str(segment))
        index = ev.Index(self.recordings)
        writer = ev.EventWriter.open(
            self.recordings, camera=camera, event_id=event_id, start=start, info={}, index=index
        )
        try:
            writer.update(labels={"person": 0.9})
            writer.add_segment(segment, start, start + 6)
            path = writer.finish(end=start + 6)
        finally:
            writer.close()
            index.close()
        assert path is not None
        return path

    def start(self) -> None:
        d = self.directory
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "hls", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        clip = d / "camera.mp4"
        if not clip.exists():  # 30 s of pedestrians, as a camera encodes them (GOP 2 s)
            ffmpeg("-i", str(need_file(VTEST)), "-t", "30", *H264, str(clip))
        self._status_page()
        for camera in self.cameras:
            out = d / "hls" / camera
            out.mkdir(exist_ok=True)
            # Live: real time (-re), looped, remuxed (no encoding), a sliding window of 2 s fragments.
            self.processes.append(
                subprocess.Popen(
                    [need("ffmpeg"), "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                     "-c", "copy",
                     "-f", "hls", "-hls_time", "2", "-hls_list_size", "6",
                     "-hls_flags", "delete_segments+omit_endlist",
                     "-hls_segment_filename", str(out / "%d.ts"), str(out / "index.m3u8")],
                    stdout=subprocess.DEVNULL, stderr=open(d / f"ffmpeg-{camera}.log", "wb"),  # noqa: SIM115
                )
            )  # fmt: skip
        conf = d / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                user="user root;" if os.geteuid() == 0 else "",
                d=d, port=self.port, cert=self.server.cert, key=self.server.key,
                allow_origin=self.allow_origin, socket=self.socket,
            ),
            encoding="utf-8",
        )  # fmt: skip
        nginx = [need("nginx"), "-p", str(d), "-e", str(d / "nginx-error.log"), "-c", str(conf)]
        checked = subprocess.run([*nginx, "-t"], capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused the HLS origin's config:\n{checked.stderr}")
        self.processes.append(subprocess.Popen(nginx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for camera in self.cameras:
            playlist = d / "hls" / camera / "index.m3u8"
            wait_for(
                f"{camera}'s first fragments",
                lambda p=playlist: p.exists() and p.read_text().count(".ts") >= 2,
            )

    def requests(self) -> list[Request]:
        """Every request nginx served, in order, with the `token` argument it carried."""
        log = self.directory / "access.log"
        out = []
        for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else []:
            at, status, _method, uri = line.split(" ", 3)
            parts = urlsplit(uri)
            token = parse_qs(parts.query).get("token", [None])[0]
            out.append(Request(float(at), int(status), parts.path, token))
        return out

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
