"""Elasticsearch indexing (optional): documents queued in SQLite (`search_outbox`, written in the
same transaction as the heartbeat or event) are sent by `flush` through the bulk API, from the
tick, never from a site's request: Elasticsearch being slow or down never slows the sites down,
and SQLite stays the source of truth for the API.

Data streams `<prefix>-events` and `<prefix>-heartbeats` (index template and ILM installed by the
`elasticsearch` role); `create` with a stable `_id` (site:event id, site:idempotency key), so a
document sent twice is a 409 and counts as done. 429 and 5xx are retried with backoff, then left
queued for the next tick; other 4xx are dropped (and logged)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from cllmh.central.config import Elasticsearch
from cllmh.central.store import Store

LOG = logging.getLogger("cllmh.central.search")
Row = tuple[int, str, str, str]


@dataclass(frozen=True)
class FlushResult:
    indexed: int
    dropped: int
    left: int  # still queued (Elasticsearch unreachable or busy)


def bulk_body(rows: list[Row], prefix: str) -> bytes:
    lines = []
    for _rowid, stream, doc_id, doc in rows:
        lines.append(json.dumps({"create": {"_index": f"{prefix}-{stream}", "_id": doc_id}}))
        lines.append(doc)
    return ("\n".join(lines) + "\n").encode()


def sort_items(rows: list[Row], answer: dict) -> tuple[list[int], list[int], list[int]]:
    """(done, retry, dropped) rowids from a bulk answer, item by item in request order."""
    done, retry, dropped = [], [], []
    for row, item in zip(rows, answer.get("items", []), strict=False):
        status = next(iter(item.values())).get("status", 500)
        if status < 300 or status == 409:
            done.append(row[0])
        elif status == 429 or status >= 500:
            retry.append(row[0])
        else:
            LOG.warning("elasticsearch refused %s: %s", row[2], next(iter(item.values())).get("error"))
            dropped.append(row[0])
    retry.extend(r[0] for r in rows[len(answer.get("items", [])) :])
    return done, retry, dropped


def _post(config: Elasticsearch, body: bytes) -> dict:
    request = urllib.request.Request(
        config.url.rstrip("/") + "/_bulk",
        data=body,
        headers={"Content-Type": "application/x-ndjson"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
        return json.loads(response.read())


def flush(
    store: Store, config: Elasticsearch, batch: int = 500, sleep: Callable[[float], None] = time.sleep
) -> FlushResult:
    indexed = dropped = 0
    attempt = 0
    while rows := store.search_batch(batch):
        try:
            done, retry, refused = sort_items(rows, _post(config, bulk_body(rows, config.index_prefix)))
        except (OSError, ValueError) as exc:  # URLError, HTTPError (429, 5xx), timeouts, bad JSON
            done, retry, refused = [], [r[0] for r in rows], []
            LOG.warning("elasticsearch bulk failed (attempt %d): %s", attempt + 1, exc)
        store.search_done(done + refused)
        indexed, dropped = indexed + len(done), dropped + len(refused)
        if retry:
            attempt += 1
            if attempt > config.retries:
                break
            sleep(min(0.5 * 2**attempt, 10))
    return FlushResult(indexed, dropped, store.search_backlog())
