"""Alert notifications reach a real SMTP server (aiosmtpd) and a real HTTP receiver once; the
per-alert rate limit holds repeats back, acknowledging stops them, and a failing channel is retried."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from cllmh.central import tick
from cllmh.central.config import CentralConfig, Notify, Smtp, Webhook
from cllmh.central.store import Store

NOW = 1_780_000_000.0


class Mailbox(Sink):
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def make(tmp_path: Path, mailbox: Mailbox, url: str) -> tuple[Store, CentralConfig]:
    config = CentralConfig(
        database=tmp_path / "central.sqlite3",
        secret_key="x",
        notify=Notify(
            repeat_minutes=30,
            smtp=Smtp(
                host="127.0.0.1", port=mailbox.port, sender="cllmh@ho.example", recipients=["ops@ho.example"]
            ),
            webhooks=[
                Webhook(url=f"{url}/botTOKEN/sendMessage", preset="telegram", chat_id="-100123"),
                Webhook(url=f"{url}/hook"),
            ],
        ),
    )
    store = Store.open(config.database)
    store.enroll("site-a", NOW - 3600)  # enrolled, never heard from: silent
    return store, config


def test_an_alert_is_sent_once_per_channel_repeats_after_the_limit_and_stops_when_acknowledged(
    tmp_path: Path, mailbox: Mailbox, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    store, config = make(tmp_path, mailbox, url)

    assert tick.run(store, config, NOW).notified == 1
    assert len(mailbox.messages) == 1
    assert "site-a" in mailbox.messages[0]["Subject"]
    assert "Lokasi tidak melapor" in mailbox.messages[0]["Subject"]
    telegram = [r for r in received if r["path"] == "/botTOKEN/sendMessage"]
    generic = [r for r in received if r["path"] == "/hook"]
    assert len(telegram) == 1
    assert telegram[0]["body"]["chat_id"] == "-100123"
    assert "site-a" in telegram[0]["body"]["text"]
    # The detail in both languages, from the catalogue.
    assert "No heartbeat since " in telegram[0]["body"]["text"]
    assert "Tidak ada laporan sejak " in telegram[0]["body"]["text"]
    assert len(generic) == 1
    assert (generic[0]["body"]["site"], generic[0]["body"]["kind"]) == ("site-a", "site_silent")

    tick.run(store, config, NOW + 60)  # within the 30 min rate limit: nothing
    assert (len(mailbox.messages), len(received)) == (1, 2)

    tick.run(store, config, NOW + 30 * 60)  # unacknowledged after 30 min: once more
    assert (len(mailbox.messages), len(received)) == (2, 4)

    (alert,) = store.active_alerts()
    store.acknowledge(alert.id, "budi", "technician on the way", NOW + 31 * 60)
    tick.run(store, config, NOW + 4 * 3600)
    assert (len(mailbox.messages), len(received)) == (2, 4)
    assert store.alert(alert.id).notifications == 2


def test_a_failed_delivery_is_retried_at_the_next_tick(tmp_path: Path, mailbox: Mailbox) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store, config = make(tmp_path, mailbox, dead)
    config = config.model_copy(update={"notify": config.notify.model_copy(update={"smtp": None})})
    assert tick.run(store, config, NOW).notified == 0
    (alert,) = store.active_alerts()
    assert alert.last_notified_at is None  # due again at the next tick
