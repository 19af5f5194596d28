"""A live camera for the recorder's tests: a real clip looped at its own pace by ffmpeg, served as
MPEG-TS over HTTP to any number of clients (as the local restream serves the recorder and probes).
With paced=False (the soak benchmark) it is read as fast as the clients take it, nothing dropped.

`kill()` takes it away (connections reset, port closed), `pause()` / `resume()` freeze the stream
while connections stay open (a hung camera), `start()` brings it back on the same port.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK = 188 * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveCamera:
    def __init__(self, clip: Path, port: int | None = None, *, paced: bool = True) -> None:
        self.clip = clip
        self.paced = paced
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/cam.ts"
        self.clients: list[queue.Queue] = []
        self.lock = threading.Lock()
        self.producer: subprocess.Popen | None = None
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> LiveCamera:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                chunks: queue.Queue = queue.Queue(maxsize=256)
                with camera.lock:
                    camera.clients.append(chunks)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp2t")
                    self.end_headers()
                    while (chunk := chunks.get()) is not None:
                        self.wfile.write(chunk)
                except OSError:
                    pass
                finally:
                    with camera.lock:
                        camera.clients.remove(chunks)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.producer = subprocess.Popen(
            [
                "ffmpeg",
                "-v",
                "error",
                *(["-re"] if self.paced else []),
                "-stream_loop",
                "-1",
                "-i",
                str(self.clip),
                "-c",
                "copy",
                "-f",
                "mpegts",
                "pipe:1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=self._pump, args=(self.producer,), daemon=True).start()
        return self

    def _pump(self, producer: subprocess.Popen) -> None:
        assert producer.stdout is not None
        while chunk := producer.stdout.read1(CHUNK):  # type: ignore[attr-defined]
            with self.lock:
                clients = list(self.clients)
            for client in clients:
                # paced: a client that does not read loses data; unpaced: the readers set the pace
                with contextlib.suppress(queue.Full):
                    client.put(chunk, timeout=60) if not self.paced else client.put_nowait(chunk)

    def pause(self) -> None:
        assert self.producer is not None
        self.producer.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.producer is not None
        self.producer.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.producer is not None and self.producer.poll() is None:
            self.producer.send_signal(signal.SIGCONT)
            self.producer.kill()
            self.producer.wait(timeout=10)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            for client in self.clients:
                with contextlib.suppress(queue.Full):
                    client.put_nowait(None)


def flv_tags(path: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    """An FLV file as (header, [(timestamp ms, tag with its trailing size)])."""
    data = path.read_bytes()
    header_size = int.from_bytes(data[5:9], "big")
    header, pos, tags = data[: header_size + 4], header_size + 4, []
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | data[pos + 7] << 24
        tags.append((ts, data[pos : pos + 11 + size + 4]))
        pos += 11 + size + 4
    return header, tags


class RepublishingCamera:
    """FLV over HTTP as nginx-rtmp plays it when the camera's publisher reconnects: within the same
    connection the clip starts again, with its timestamps restarting from zero, again and again."""

    def __init__(self, flv: Path) -> None:
        self.header, self.tags = flv_tags(flv)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/cam.flv"
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "video/x-flv")
                    self.end_headers()
                    self.wfile.write(camera.header)
                    while True:  # a new publisher each time: timestamps from zero
                        started = time.monotonic()
                        for ts, tag in camera.tags:
                            time.sleep(max(0.0, started + ts / 1000 - time.monotonic()))
                            self.wfile.write(tag)
                except OSError:
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
