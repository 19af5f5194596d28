"""A site's HLS origin for the dashboard's browser test: ffmpeg publishes a live HLS stream made from
the project's footage (OpenCV's vtest.avi, encoded as a camera sends it), a real nginx serves it over
HTTPS at /hls/<camera>/index.m3u8 the way the site's nginx_rtmp does, and logs every request with
its query string and time so a test can check what the browser sent.

It does NOT check tokens: at the site that is the status page's job (nginx `auth_request` to the
status page, verifying `cllmh.livetoken`). `location_extra` is where that check plugs in (e.g.
`auth_request /_token;` plus the location it names, in `server_extra`), so the same origin can then
be asked for 401/403 without or with a bad token.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
        {server_extra}
        location /hls/ {{
            alias {d}/hls/;
            types {{
                application/vnd.apple.mpegurl m3u8;
                video/mp2t ts;
            }}
            add_header Cache-Control no-cache always;
            # The dashboard (another origin) fetches with XHR: allowed for head office only.
            add_header Access-Control-Allow-Origin {allow_origin} always;
            {location_extra}
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
    """Start with `start()`, stop with `close()`; `url` is the site's public base URL."""

    def __init__(
        self, directory: Path, server: Issued, allow_origin: str, cameras: tuple[str, ...] = ("gate",)
    ) -> None:
        self.directory = directory
        self.server = server
        self.allow_origin = allow_origin
        self.cameras = cameras
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.processes: list[subprocess.Popen] = []

    def start(self, location_extra: str = "", server_extra: str = "") -> None:
        d = self.directory
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "hls"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        clip = d / "camera.mp4"
        if not clip.exists():  # 30 s of pedestrians, as a camera encodes them (GOP 2 s)
            ffmpeg("-i", str(need_file(VTEST)), "-t", "30", *H264, str(clip))
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
                allow_origin=self.allow_origin, location_extra=location_extra, server_extra=server_extra,
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
