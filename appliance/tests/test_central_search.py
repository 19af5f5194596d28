"""Elasticsearch indexing, tested to the HTTP boundary: a real HTTP server that speaks the bulk
API's shape (NDJSON in, per-item statuses out), down at first, then refusing some items. No
Elasticsearch runs here; the `elasticsearch` role's Molecule scenario is where a real one answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from centralkit import event, heartbeat
from cllmh.central import search
from cllmh.central.config import Elasticsearch
from cllmh.central.store import Store


class Bulk:
    """What the server holds, and how it misbehaves."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_next = 0  # whole requests answered 503
        self.refuse: set[str] = set()  # _ids answered 400 (mapping error)
        self.requests = 0


@pytest.fixture
def bulk() -> Iterator[tuple[str, Bulk]]:
    state = Bulk()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.requests += 1
            lines = self.rfile.read(int(self.headers["Content-Length"])).decode().splitlines()
            assert self.path == "/_bulk"
            assert self.headers["Content-Type"] == "application/x-ndjson"
            if state.fail_next:
                state.fail_next -= 1
                self.send_response(503)
                self.end_headers()
                return
            items = []
            for action, doc in zip(lines[::2], lines[1::2], strict=True):
                meta = json.loads(action)["create"]
                where = (meta["_index"], meta["_id"])
                if meta["_id"] in state.refuse:
                    status = 400
                elif where in state.docs:
                    status = 409
                else:
                    state.docs[where] = json.loads(doc)
                    status = 201
                items.append({"create": {"_index": meta["_index"], "_id": meta["_id"], "status": status}})
            body = json.dumps(
                {"errors": any(i["create"]["status"] >= 300 for i in items), "items": items}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def queued_store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "c.sqlite3", search_outbox=True)
    now = time.time()
    store.enroll("site-a", now)
    for n in range(3):
        store.heartbeat("site-a", f"{n:032x}", "d", now + n, heartbeat(now + n)["state"], now=now + n)
    for n in range(4):
        store.event("site-a", f"{n + 10:032x}", "d", event(now - 100 * n)["event"], b"\xff\xd8", now=now)
    return store


def test_documents_reach_the_bulk_api_once_after_an_outage(tmp_path: Path, bulk: tuple[str, Bulk]) -> None:
    url, server = bulk
    store = queued_store(tmp_path)
    server.fail_next = 2
    waits: list[float] = []
    result = search.flush(store, Elasticsearch(url=url, retries=3), batch=5, sleep=waits.append)
    assert (result.indexed, result.dropped, result.left) == (7, 0, 0)
    assert len(waits) == 2  # two failed attempts, backed off, then through
    assert sorted({i for i, _ in server.docs}) == ["cllmh-events", "cllmh-heartbeats"]
    assert sum(i == "cllmh-events" for i, _ in server.docs) == 4
    doc = next(d for (i, _), d in server.docs.items() if i == "cllmh-events")
    assert doc["site"] == "site-a" and "snapshot_jpeg_b64" not in doc and doc["@timestamp"] == doc["start"]
    requests = server.requests
    assert search.flush(store, Elasticsearch(url=url), sleep=waits.append).indexed == 0
    assert server.requests == requests  # nothing left to send


def test_unreachable_elasticsearch_keeps_documents_queued(tmp_path: Path, bulk: tuple[str, Bulk]) -> None:
    url, server = bulk
    store = queued_store(tmp_path)
    server.fail_next = 100
    result = search.flush(store, Elasticsearch(url=url, retries=2), sleep=lambda _s: None)
    assert (result.indexed, result.left) == (0, 7)
    server.fail_next = 0
    assert search.flush(store, Elasticsearch(url=url), sleep=lambda _s: None).indexed == 7


def test_a_resent_document_counts_as_done_and_a_refused_one_is_dropped(
    tmp_path: Path, bulk: tuple[str, Bulk]
) -> None:
    url, server = bulk
    store = queued_store(tmp_path)
    first = store.search_batch(100)
    server.docs[("cllmh-heartbeats", first[0][2])] = {}  # already indexed by an earlier, unanswered flush
    server.refuse.add(first[1][2])
    result = search.flush(store, Elasticsearch(url=url), sleep=lambda _s: None)
    assert (result.indexed, result.dropped, result.left) == (6, 1, 0)


def test_without_elasticsearch_nothing_is_queued(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "c.sqlite3")
    store.enroll("site-a", time.time())
    store.heartbeat("site-a", "0" * 32, "d", time.time(), heartbeat(time.time())["state"], now=time.time())
    assert store.search_backlog() == 0
