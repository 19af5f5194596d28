"""The reporter's on-disk outbox: every message to head office waits here until it is delivered.

SQLite in WAL mode, one row per message with the idempotency key made when the message enters
(a retry re-sends the same key, so head office never stores it twice), and per-message attempts
and next try. It survives restarts, reboots and a head office that is down for days:

- A heartbeat replaces the heartbeat still waiting (only the latest state matters): at most one
  heartbeat row is ever pending.
- An event is enqueued once: the `seen` table, written in the same transaction as the message,
  remembers every event id taken from the site's index, so a restart or a kill at any moment
  neither loses nor repeats one.
- The bound: an event message is never dropped before it has waited `max_age_days`; past that it
  is dropped and each drop is logged at ERROR with the event's id (see `expire`). The wait is
  counted on the monotonic clock while the reporter runs (`age`), so a wrong wall clock cannot
  expire anything early. A parked message
  (refused by head office with a 4xx that a retry cannot fix) is kept for the same time for an
  operator to look at (`cllmh report --outbox`), then dropped the same way. `seen` rows of events
  that started before the bound are pruned (the index is only read back that far).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cllmh import catalogue, dbread
from cllmh.report import messages
from cllmh.report.policy import DAY, expired

LOG = logging.getLogger("cllmh.report")

HEARTBEAT = "heartbeat"
EVENT = "event"

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    ref TEXT,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    waited REAL NOT NULL DEFAULT 0,  -- seconds waited while the reporter ran (monotonic clock)
    last_error TEXT,
    parked REAL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (parked, next_try);
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY,
    start REAL NOT NULL,
    enqueued REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_start ON seen (start);
CREATE TABLE IF NOT EXISTS contact (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    delivered REAL NOT NULL  -- when head office last took a message (its 2xx), site clock
);
"""


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    key: str
    kind: str
    ref: str | None
    body: bytes
    created: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Stats:
    pending: int  # waiting to be sent (parked ones not counted)
    pending_events: int
    parked: int
    oldest: float | None  # when the oldest pending message was made


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a message acknowledged as enqueued survives a power cut, not only a crash.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def enqueue_event(self, event_id: str, start: float, body: bytes, now: float) -> str | None:
        """Add the event's message unless this event was enqueued before; returns its new key or None."""
        key = uuid.uuid4().hex
        with self._transaction() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO seen (event_id, start, enqueued) VALUES (?, ?, ?)",
                (event_id, start, now),
            ).rowcount
            if not added:
                return None
            db.execute(
                "INSERT INTO messages (key, kind, ref, body, created, next_try) VALUES (?, ?, ?, ?, ?, ?)",
                (key, EVENT, event_id, body, now, now),
            )
        return key

    def seen(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids were already enqueued."""
        found: set[str] = set()
        for i in range(0, len(event_ids), 500):
            chunk = event_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0] for r in self.db.execute(f"SELECT event_id FROM seen WHERE event_id IN ({marks})", chunk)
            )
        return found

    def enqueue_heartbeat(self, body: bytes, now: float) -> str:
        """Replace the pending heartbeat (if any) with this one: heartbeats coalesce to the latest."""
        key = uuid.uuid4().hex
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE kind = ? AND parked IS NULL", (HEARTBEAT,))
            db.execute(
                "INSERT INTO messages (key, kind, ref, body, created, next_try) VALUES (?, ?, NULL, ?, ?, ?)",
                (key, HEARTBEAT, body, now, now),
            )
        return key

    def due(self, now: float, limit: int = 50, max_wait: float | None = None) -> list[Message]:
        """Pending messages whose next try has come: the heartbeat first (head office sees the site's
        state even behind a backlog of events), then oldest first. With `max_wait`, a next try more
        than that far ahead counts as due too: the clock was set back (a site without a battery-backed
        clock corrected by NTP) and no retry may wait longer than the backoff's maximum."""
        horizon = now + max_wait if max_wait is not None else float("inf")
        rows = self.db.execute(
            "SELECT id, key, kind, ref, body, created, attempts FROM messages"
            " WHERE parked IS NULL AND (next_try <= ? OR next_try > ?)"
            " ORDER BY kind = ? DESC, id LIMIT ?",
            (now, horizon, HEARTBEAT, limit),
        ).fetchall()
        return [Message(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6]) for r in rows]

    def delivered(self, message: Message, now: float) -> None:
        """Head office took the message: it leaves the outbox, and `now` is the last contact (read by
        the status page, `last_contact`)."""
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE id = ?", (message.id,))
            db.execute("INSERT OR REPLACE INTO contact (id, delivered) VALUES (1, ?)", (now,))

    def failed(self, message: Message, *, next_try: float, error: str) -> None:
        self.db.execute(
            "UPDATE messages SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE id = ?",
            (next_try, error[:500], message.id),
        )

    def park(self, message: Message, *, now: float, error: str) -> None:
        """Keep the message aside, not retried. Of parked heartbeats only the latest is kept: a head
        office refusing every heartbeat must not grow the outbox by one every interval."""
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET attempts = attempts + 1, parked = ?, last_error = ? WHERE id = ?",
                (now, error[:500], message.id),
            )
            if message.kind == HEARTBEAT:
                db.execute(
                    "DELETE FROM messages WHERE kind = ? AND parked IS NOT NULL AND id != ?",
                    (HEARTBEAT, message.id),
                )

    def age(self, seconds: float) -> None:
        """Every message (pending or parked) has waited `seconds` more."""
        self.db.execute("UPDATE messages SET waited = waited + ?", (max(0.0, seconds),))

    def expire(
        self, now: float, max_age_days: float, lang: str = catalogue.DEFAULT
    ) -> list[tuple[str, str | None, str]]:
        """Drop what passed the bound: messages (pending or parked) that waited more than
        `max_age_days` (see `age`). Returns (kind, ref, key) of each dropped message and logs each at
        ERROR. Prunes `seen` of events that started before the window the index is read in."""
        with self._transaction() as db:
            rows = db.execute("SELECT id, kind, ref, key, parked, waited FROM messages ORDER BY id")
            over = [row for row in rows.fetchall() if expired(row[5], max_age_days)]
            db.executemany("DELETE FROM messages WHERE id = ?", [(row[0],) for row in over])
            db.execute("DELETE FROM seen WHERE start < ?", (now - max_age_days * DAY,))
        dropped = [row[1:5] for row in over]
        for kind, ref, key, parked in dropped:
            catalogue.log(
                LOG,
                logging.ERROR,
                "report.dropped_parked" if parked is not None else "report.dropped_undelivered",
                lang,
                what=messages.what(kind, ref, lang),
                key=key,
                days=f"{max_age_days:g}",
            )
        return [(kind, ref, key) for kind, ref, key, _ in dropped]

    def last_contact(self) -> float | None:
        return last_contact(self.db)

    def stats(self) -> Stats:
        pending, events, oldest = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(kind = ?), 0), MIN(created) FROM messages WHERE parked IS NULL",
            (EVENT,),
        ).fetchone()
        (parked,) = self.db.execute("SELECT COUNT(*) FROM messages WHERE parked IS NOT NULL").fetchone()
        return Stats(int(pending), int(events), int(parked), oldest)

    def listing(self) -> list[dict]:
        """Every message without its body."""
        return listing(self.db)


def listing(db: sqlite3.Connection) -> list[dict]:
    """Every message of an outbox without its body (for `cllmh report --outbox`)."""
    rows = db.execute(
        "SELECT key, kind, ref, created, attempts, next_try, waited, last_error, parked, length(body)"
        " FROM messages ORDER BY id"
    ).fetchall()
    names = ("key", "kind", "ref", "created", "attempts", "next_try", "waited", "last_error", "parked")
    names += ("bytes",)
    return [dict(zip(names, r, strict=True)) for r in rows]


def last_contact(db: sqlite3.Connection) -> float | None:
    """When head office last took a message from this outbox; None if never (or an outbox made
    before the contact table, until its reporter restarts)."""
    row = dbread.fetch_one(db, "SELECT delivered FROM contact WHERE id = 1")
    return float(row[0]) if row else None


def read_listing(path: Path) -> list[dict]:
    """The outbox's messages, read without writing (an operator, maybe root, while the service runs):
    creates no file. Empty if there is no outbox yet."""
    with dbread.read_only(path) as db:
        if db is None:
            return []
        try:
            return listing(db)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the service is creating it right now
                return []
            raise
