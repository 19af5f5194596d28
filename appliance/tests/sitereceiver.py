"""A real HTTPS receiver for the reporter's tests: the transport peer of `cllmh report`, not the
central API (the end-to-end tests against that are separate; this module can be swapped for it).

It keeps to the site -> head office contract v1 where the reporter depends on it: the client must
present a certificate of the fleet CA (the TLS handshake fails otherwise), every POST needs an
Idempotency-Key and a JSON body, a repeated key answers 200 "duplicate": true without storing
anything again, and so does a repeated event id under another key. It records every request it
received (including repeats) so a test can count at the receiver.

`hold_events`: after the next event is stored, its answer waits until `release()`: a test can kill
the reporter while the receiver has the event and the reporter has no answer yet. `Store.fail_next`,
`Store.refuse` and `Store.refuse_site` make it answer 503 (nothing stored), 400 (a field refused)
or 403 (an unknown site), as head office may.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATHS = {"/api/v1/site/heartbeat": "heartbeat", "/api/v1/site/events": "event"}


@dataclass(frozen=True)
class Request:
    kind: str
    key: str
    cn: str
    body: dict
    duplicate: bool


@dataclass
class Store:
    """What the receiver saw and stored, shared by the handler threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Request] = field(default_factory=list)
    keys: dict[str, bytes] = field(default_factory=dict)  # key -> body first sent with it
    events: dict[str, dict] = field(default_factory=dict)  # event id -> event, stored once
    heartbeats: list[dict] = field(default_factory=list)
    tls_failures: int = 0
    # Knobs of a test: answer 503 to the next N requests (storing nothing), and 400 to these event ids.
    fail_next: int = 0
    refuse: set[str] = field(default_factory=set)
    refuse_site: bool = False  # 403 to everything: a site head office does not know (yet)

    def event_requests(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.kind == "event"]


class _Handler(BaseHTTPRequestHandler):
    server: SiteReceiverServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> tuple[str, str, str, bytes, dict] | None:
        """(kind, key, client CN, raw body, body) of a well-formed request; else answers it, None."""
        kind = PATHS.get(self.path)
        cert = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
        cn = next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), "")
        key = self.headers.get("Idempotency-Key", "")
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body: dict = {}
        if kind is None:
            problem = (404, f"no such path {self.path}")
        elif not key:
            problem = (400, "no Idempotency-Key")
        elif self.headers.get("Content-Type") != "application/json":
            problem = (415, "not JSON")
        else:
            try:
                body, problem = json.loads(raw), None
            except ValueError:
                problem = (400, "malformed JSON")
        if problem is not None or kind is None:
            status, error = problem or (404, "")
            self._answer(status, {"error": error})
            return None
        return kind, key, cn, raw, body

    def _refusal(self, store: Store, kind: str, key: str, cn: str, body: dict) -> bool:
        """Answer as a failing or refusing head office when a test asks for it (holds store.lock)."""
        if store.refuse_site:
            store.requests.append(Request("forbidden", key, cn, body, False))
            self._answer(403, {"error": f"unknown site {cn}"})
            return True
        if store.fail_next > 0:
            store.fail_next -= 1
            store.requests.append(Request("unavailable", key, cn, body, False))
            self._answer(503, {"error": "unavailable"})
            return True
        if kind == "event" and body["event"]["id"] in store.refuse:
            store.requests.append(Request("refused", key, cn, body, False))
            self._answer(400, {"error": "labels must be scores", "field": "event.labels"})
            return True
        return False

    def do_POST(self) -> None:
        receiver = self.server
        request = self._read()
        if request is None:
            return
        kind, key, cn, raw, body = request
        store = receiver.store
        with store.lock:
            if self._refusal(store, kind, key, cn, body):
                return
            if key in store.keys and store.keys[key] != raw:
                self._answer(409, {"error": "idempotency key reused with a different body"})
                return
            duplicate = key in store.keys
            if kind == "event":
                event = body["event"]
                duplicate = duplicate or event["id"] in store.events
                store.events.setdefault(event["id"], event)
            elif not duplicate:
                store.heartbeats.append(body)
            store.keys.setdefault(key, raw)
            store.requests.append(Request(kind, key, cn, body, duplicate))
            hold = kind == "event" and receiver.hold_events
            if hold:
                receiver.hold_events = False
                receiver.holding.set()
        if hold:
            receiver.released.wait(60)
        status = 200 if duplicate or kind == "heartbeat" else 201
        self._answer(status, {"status": "ok", "duplicate": duplicate})


class SiteReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, context: ssl.SSLContext, store: Store) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.context = context
        self.store = store
        self.hold_events = False
        self.holding = threading.Event()
        self.released = threading.Event()

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with self.store.lock:
                self.store.tls_failures += 1
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


class SiteReceiver:
    """Start/stop on a fixed port (a stopped receiver is head office being down); the store stays."""

    def __init__(self, port: int, ca: Path, cert: Path, key: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_cert_chain(str(cert), str(key))
        self.store = Store()
        self.server: SiteReceiverServer | None = None
        self.thread: threading.Thread | None = None

    def start(self, *, hold_events: bool = False) -> SiteReceiverServer:
        self.server = SiteReceiverServer(self.port, self.context, self.store)
        self.server.hold_events = hold_events
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.released.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None
