"""SQLite storage of the head office: the source of truth for the API.

One file, WAL mode (readers never block the writer), schema migrations by `PRAGMA user_version`.
Writes run in `BEGIN IMMEDIATE` transactions so that concurrent gunicorn workers serialise on
SQLite's lock (with a busy timeout) instead of failing. Times are UTC unix seconds (REAL)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cllmh.central import history

MIGRATIONS: tuple[str, ...] = (
    # 1: sites, idempotency keys, events, snapshots, alerts, users, tokens
    """
    CREATE TABLE sites (
        name TEXT PRIMARY KEY,
        enrolled_at REAL NOT NULL,
        revoked_at REAL,
        last_seen REAL,
        last_sent_at REAL,
        state TEXT,
        offsets TEXT
    );
    CREATE TABLE idempotency (
        site TEXT NOT NULL,
        key TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (site, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_age ON idempotency (received_at);
    CREATE TABLE events (
        rowid INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        id TEXT NOT NULL,
        camera TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL NOT NULL,
        label TEXT,
        score REAL,
        labels TEXT NOT NULL,
        truncated INTEGER NOT NULL,
        clip_path TEXT,
        has_snapshot INTEGER NOT NULL,
        received_at REAL NOT NULL,
        UNIQUE (site, id)
    );
    CREATE INDEX events_start ON events (start);
    CREATE INDEX events_site_start ON events (site, start);
    CREATE TABLE snapshots (event INTEGER PRIMARY KEY REFERENCES events (rowid) ON DELETE CASCADE,
                            jpeg BLOB NOT NULL);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        opened_at REAL NOT NULL,
        closed_at REAL,
        acked_at REAL,
        acked_by TEXT,
        ack_comment TEXT,
        resolved_at REAL,
        resolved_by TEXT,
        resolve_comment TEXT,
        last_notified_at REAL,
        notifications INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX alerts_one_active ON alerts (site, kind, subject) WHERE closed_at IS NULL;
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        sites TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE tokens (
        sha256 TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        label TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used REAL
    );
    """,
    # 2: documents waiting for Elasticsearch (when configured); SQLite stays the source of truth
    """
    CREATE TABLE search_outbox (
        rowid INTEGER PRIMARY KEY,
        stream TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        doc TEXT NOT NULL,
        queued_at REAL NOT NULL
    );
    """,
    # 3: a site's state history for the dashboard: one row per (site, time bucket) with a heartbeat
    """
    CREATE TABLE site_history (
        site TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        hours_left REAL,
        PRIMARY KEY (site, bucket)
    ) WITHOUT ROWID;
    CREATE INDEX site_history_age ON site_history (bucket);
    """,
    # 4: an alert's detail as the values of its catalogue message (alert.<kind>.detail), JSON
    """
    ALTER TABLE alerts ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
    """,
)


# Clock offset of a site = the largest (sent_at - received_at) of its last heartbeats: delivery delay
# only ever lowers that difference, so the least delayed heartbeat is the best estimate.
OFFSET_WINDOW = 10


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"  # idempotency key reused with another body


@dataclass(frozen=True)
class Site:
    name: str
    enrolled_at: float
    revoked_at: float | None
    last_seen: float | None
    last_sent_at: float | None
    state: dict[str, Any] | None
    clock_offset_s: float | None


@dataclass(frozen=True)
class Alert:
    id: int
    site: str
    kind: str
    subject: str
    detail: str
    opened_at: float
    closed_at: float | None
    acked_at: float | None
    acked_by: str | None
    ack_comment: str | None
    resolved_at: float | None
    resolved_by: str | None
    resolve_comment: str | None
    last_notified_at: float | None
    notifications: int
    params: str = "{}"  # JSON: the values of the catalogue's alert.<kind>.detail ({} before migration 4)


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: str
    sites: tuple[str, ...]  # empty: every site


def _site(row: sqlite3.Row) -> Site:
    return Site(
        row["name"],
        row["enrolled_at"],
        row["revoked_at"],
        row["last_seen"],
        row["last_sent_at"],
        json.loads(row["state"]) if row["state"] else None,
        max(json.loads(row["offsets"])) if row["offsets"] else None,
    )


def _alert(row: sqlite3.Row) -> Alert:
    return Alert(**{k: row[k] for k in row.keys()})  # noqa: SIM118 (sqlite3.Row has no iteration of keys)


def _user(row: sqlite3.Row) -> User:
    return User(row["name"], row["password_hash"], row["role"], tuple(json.loads(row["sites"])))


class Store:
    """One connection (per thread / request); `Store.open` migrates the file first."""

    def __init__(self, path: Path, *, search_outbox: bool = False) -> None:
        self.path = path
        self.search_outbox = search_outbox  # also queue documents for Elasticsearch
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")

    @classmethod
    def open(cls, path: Path, *, search_outbox: bool = False) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, search_outbox=search_outbox)
        store.migrate()
        return store

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def migrate(self) -> int:
        with self.write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
        return len(MIGRATIONS)

    # --- sites -----------------------------------------------------------------------------------

    def enroll(self, name: str, now: float) -> None:
        """Add a site (or un-revoke it)."""
        with self.write() as db:
            db.execute(
                "INSERT INTO sites (name, enrolled_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET revoked_at = NULL",
                (name, now),
            )

    def revoke(self, name: str, now: float) -> bool:
        with self.write() as db:
            return db.execute("UPDATE sites SET revoked_at = ? WHERE name = ?", (now, name)).rowcount == 1

    def site(self, name: str) -> Site | None:
        row = self.db.execute("SELECT * FROM sites WHERE name = ?", (name,)).fetchone()
        return _site(row) if row else None

    def sites(self, only: tuple[str, ...] = ()) -> list[Site]:
        rows = self.db.execute("SELECT * FROM sites ORDER BY name").fetchall()
        return [_site(r) for r in rows if not only or r["name"] in only]

    def _claim_key(self, db: sqlite3.Connection, site: str, key: str, digest: str, now: float) -> Outcome:
        row = db.execute(
            "SELECT body_sha256 FROM idempotency WHERE site = ? AND key = ?", (site, key)
        ).fetchone()
        if row is not None:
            return Outcome.DUPLICATE if row[0] == digest else Outcome.CONFLICT
        db.execute("INSERT INTO idempotency VALUES (?, ?, ?, ?)", (site, key, digest, now))
        return Outcome.STORED

    def heartbeat(
        self,
        site: str,
        key: str,
        digest: str,
        sent_at: float,
        state: dict[str, Any],
        *,
        now: float,
        history_bucket_s: int = 300,
    ) -> Outcome:
        with self.write() as db:
            outcome = self._claim_key(db, site, key, digest, now)
            if outcome is Outcome.STORED:
                row = db.execute("SELECT last_sent_at, offsets FROM sites WHERE name = ?", (site,)).fetchone()
                offsets = [*json.loads(row["offsets"] or "[]")[-(OFFSET_WINDOW - 1) :], sent_at - now]
                db.execute(
                    "UPDATE sites SET last_seen = MAX(COALESCE(last_seen, 0), ?), offsets = ? WHERE name = ?",
                    (now, json.dumps(offsets), site),
                )
                disk = state.get("disk") or {}
                db.execute(
                    "INSERT INTO site_history (site, bucket, hours_left) VALUES (?, ?, ?) "
                    "ON CONFLICT (site, bucket) DO UPDATE SET hours_left = excluded.hours_left",
                    (site, history.bucket_of(now, history_bucket_s), disk.get("hours_left")),
                )
                # An older heartbeat delivered late (from the site's outbox) never replaces a newer one.
                if row["last_sent_at"] is None or sent_at >= row["last_sent_at"]:
                    db.execute(
                        "UPDATE sites SET last_sent_at = ?, state = ? WHERE name = ?",
                        (sent_at, json.dumps(state, separators=(",", ":")), site),
                    )
                self._queue(db, "heartbeats", f"{site}:{key}", {
                    "@timestamp": sent_at, "site": site, "received_at": now, "state": state
                }, now)  # fmt: skip
            return outcome

    def _queue(
        self, db: sqlite3.Connection, stream: str, doc_id: str, doc: dict[str, Any], now: float
    ) -> None:
        if self.search_outbox:
            db.execute(
                "INSERT INTO search_outbox (stream, doc_id, doc, queued_at) VALUES (?, ?, ?, ?)",
                (stream, doc_id, json.dumps(doc, separators=(",", ":")), now),
            )

    def search_batch(self, limit: int) -> list[tuple[int, str, str, str]]:
        """The oldest queued documents: (rowid, stream, doc_id, doc JSON)."""
        rows = self.db.execute("SELECT * FROM search_outbox ORDER BY rowid LIMIT ?", (limit,))
        return [(r["rowid"], r["stream"], r["doc_id"], r["doc"]) for r in rows]

    def search_done(self, rowids: list[int]) -> None:
        with self.write() as db:
            db.executemany("DELETE FROM search_outbox WHERE rowid = ?", [(r,) for r in rowids])

    def search_backlog(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM search_outbox").fetchone()[0])

    def history(self, site: str, since: float) -> dict[int, float | None]:
        """Buckets (start -> hours left) in which `site` sent a heartbeat, from `since` on."""
        rows = self.db.execute(
            "SELECT bucket, hours_left FROM site_history WHERE site = ? AND bucket >= ?", (site, int(since))
        )
        return {int(r[0]): r[1] for r in rows}

    # --- events ----------------------------------------------------------------------------------

    def event(
        self, site: str, key: str, digest: str, event: dict[str, Any], jpeg: bytes | None, *, now: float
    ) -> Outcome:
        with self.write() as db:
            outcome = self._claim_key(db, site, key, digest, now)
            if outcome is not Outcome.STORED:
                return outcome
            labels: dict[str, float] = event["labels"]
            label, score = max(labels.items(), key=lambda kv: kv[1]) if labels else (None, None)
            cursor = db.execute(
                "INSERT INTO events (site, id, camera, start, end, label, score, labels, truncated, "
                "clip_path, has_snapshot, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (site, id) DO NOTHING",
                (
                    site,
                    event["id"],
                    event["camera"],
                    event["start"],
                    event["end"],
                    label,
                    score,
                    json.dumps(labels),
                    int(event.get("truncated", False)),
                    event.get("clip_path"),
                    int(jpeg is not None),
                    now,
                ),
            )
            if cursor.rowcount == 0:
                return Outcome.DUPLICATE
            if jpeg is not None:
                db.execute("INSERT INTO snapshots VALUES (?, ?)", (cursor.lastrowid, jpeg))
            doc = {k: v for k, v in event.items() if k != "snapshot_jpeg_b64"}
            doc.update(
                {"@timestamp": event["start"], "site": site, "label": label, "has_snapshot": jpeg is not None}
            )
            self._queue(db, "events", f"{site}:{event['id']}", doc, now)
            return Outcome.STORED

    def events(  # noqa: PLR0917
        self,
        sites: tuple[str, ...] | None,
        camera: str | None,
        label: str | None,
        since: float | None,
        until: float | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Newest first. `sites` None: every site; a tuple: only those."""
        where, args = [], []
        if sites is not None:
            where.append(f"site IN ({','.join('?' * len(sites))})")
            args.extend(sites)
        if camera:
            where.append("camera = ?")
            args.append(camera)
        if label:
            where.append("EXISTS (SELECT 1 FROM json_each(labels) WHERE key = ?)")
            args.append(label)
        if since is not None:
            where.append("start >= ?")
            args.append(since)
        if until is not None:
            where.append("start < ?")
            args.append(until)
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.execute(sql + " ORDER BY start DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            {
                "site": r["site"],
                "id": r["id"],
                "camera": r["camera"],
                "start": r["start"],
                "end": r["end"],
                "label": r["label"],
                "labels": json.loads(r["labels"]),
                "truncated": bool(r["truncated"]),
                "clip_path": r["clip_path"],
                "has_snapshot": bool(r["has_snapshot"]),
                "received_at": r["received_at"],
            }
            for r in rows
        ]

    def event_clip(self, site: str, event_id: str) -> dict[str, Any] | None:
        """An event's id, camera and clip path (None: no such event)."""
        row = self.db.execute(
            "SELECT id, camera, clip_path FROM events WHERE site = ? AND id = ?", (site, event_id)
        ).fetchone()
        return {"id": row["id"], "camera": row["camera"], "clip_path": row["clip_path"]} if row else None

    def snapshot(self, site: str, event_id: str) -> bytes | None:
        row = self.db.execute(
            "SELECT s.jpeg FROM snapshots s JOIN events e ON e.rowid = s.event WHERE e.site = ? AND e.id = ?",
            (site, event_id),
        ).fetchone()
        return bytes(row[0]) if row else None

    def prune(
        self,
        *,
        events_before: float,
        snapshots_before: float,
        keys_before: float,
        history_before: float | None = None,
    ) -> tuple[int, int]:
        """Drop events (with snapshots), snapshots alone, idempotency keys, history buckets older than
        the given times."""
        with self.write() as db:
            if history_before is not None:
                db.execute("DELETE FROM site_history WHERE bucket < ?", (history_before,))
            events = db.execute("DELETE FROM events WHERE start < ?", (events_before,)).rowcount
            old = "SELECT rowid FROM events WHERE start < ? AND has_snapshot = 1"
            db.execute(f"DELETE FROM snapshots WHERE event IN ({old})", (snapshots_before,))
            db.execute(
                "UPDATE events SET has_snapshot = 0 WHERE start < ? AND has_snapshot = 1", (snapshots_before,)
            )
            keys = db.execute("DELETE FROM idempotency WHERE received_at < ?", (keys_before,)).rowcount
            # Heartbeats Elasticsearch could not take for that long are dropped; events wait.
            db.execute(
                "DELETE FROM search_outbox WHERE stream = 'heartbeats' AND queued_at < ?", (keys_before,)
            )
        return events, keys

    # --- alerts ----------------------------------------------------------------------------------

    def active_alerts(self) -> list[Alert]:
        """Alerts whose condition has not cleared yet (open, acknowledged or resolved by hand)."""
        return [_alert(r) for r in self.db.execute("SELECT * FROM alerts WHERE closed_at IS NULL")]

    def alerts(self, sites: tuple[str, ...] | None, *, active: bool | None, limit: int = 500) -> list[Alert]:
        rows = self.db.execute("SELECT * FROM alerts ORDER BY opened_at DESC, id DESC LIMIT ?", (limit,))
        out = [_alert(r) for r in rows]
        if active is not None:
            out = [a for a in out if (a.closed_at is None) == active]
        return [a for a in out if sites is None or a.site in sites]

    def alert(self, alert_id: int) -> Alert | None:
        row = self.db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _alert(row) if row else None

    def open_alert(  # noqa: PLR0917
        self,
        site: str,
        kind: str,
        subject: str,
        detail: str,
        now: float,
        params: dict[str, Any] | None = None,
    ) -> int:
        with self.write() as db:
            cursor = db.execute(
                "INSERT INTO alerts (site, kind, subject, detail, opened_at, params) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (site, kind, subject, detail, now, json.dumps(params or {})),
            )
            return int(cursor.lastrowid or 0)

    def close_alert(self, alert_id: int, now: float) -> None:
        with self.write() as db:
            db.execute("UPDATE alerts SET closed_at = ? WHERE id = ? AND closed_at IS NULL", (now, alert_id))

    def acknowledge(self, alert_id: int, who: str, comment: str, now: float) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE alerts SET acked_at = ?, acked_by = ?, ack_comment = ? WHERE id = ?",
                (now, who, comment, alert_id),
            )

    def resolve(self, alert_id: int, who: str, comment: str, now: float) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE alerts SET resolved_at = ?, resolved_by = ?, resolve_comment = ? WHERE id = ?",
                (now, who, comment, alert_id),
            )

    def notified(self, alert_id: int, now: float) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE alerts SET last_notified_at = ?, notifications = notifications + 1 WHERE id = ?",
                (now, alert_id),
            )

    # --- users and tokens ------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, role: str, sites: tuple[str, ...], now: float) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "password_hash = excluded.password_hash, role = excluded.role, sites = excluded.sites",
                (name, password_hash, role, json.dumps(list(sites)), now),
            )

    def user(self, name: str) -> User | None:
        row = self.db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return _user(row) if row else None

    def delete_user(self, name: str) -> bool:
        with self.write() as db:
            return db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 1

    def add_token(self, sha256: str, user: str, label: str, now: float) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO tokens (sha256, user, label, created_at) VALUES (?, ?, ?, ?)",
                (sha256, user, label, now),
            )

    def token_user(self, sha256: str) -> User | None:
        row = self.db.execute(
            "SELECT u.* FROM tokens t JOIN users u ON u.name = t.user WHERE t.sha256 = ?", (sha256,)
        ).fetchone()
        return _user(row) if row else None
