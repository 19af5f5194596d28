"""Reading an SQLite database that a service writes, without writing anything to it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A connection that cannot write (None if there is no database yet): opened read-only, and
    without locking when no writer has it open (no -wal file), so neither the database nor its
    -wal/-shm files are created or changed, and a root operator leaves no root-owned file behind
    for the service. Raises sqlite3.Error if it cannot be read."""
    if not path.is_file():
        yield None
        return
    active = Path(f"{path}-wal").exists()
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("" if active else "&immutable=1")
    db = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        yield db
    finally:
        db.close()


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


def fetch_one(db: sqlite3.Connection, sql: str, params: tuple = ()) -> tuple | None:
    """One row, or None: also when the table does not exist yet (a service that has not created
    its schema, or an older one without this table)."""
    try:
        return db.execute(sql, params).fetchone()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return None
        raise


def fetch_all(db: sqlite3.Connection, sql: str, params: tuple = ()) -> list[tuple]:
    """Every row; none when the table does not exist yet (see fetch_one)."""
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return []
        raise
