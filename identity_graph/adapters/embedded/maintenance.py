"""The embedded store's physical clean-up, on connections of its own in worker threads:
purging every copy of deleted rows from the files (`purge_files`) and deleting what
retention no longer keeps (`expire_rows`).

Every connection has `secure_delete` on, so a deleted row's bytes are zeroed in the page
that held it, and a page that falls free is zeroed. What is left are older images of those
pages: in a write-ahead log until it is checkpointed and truncated, and in the journal's
rows until they are deleted. `purge_files` deletes the journal rows the tables hold and
truncates the three write-ahead logs (`PRAGMA wal_checkpoint(TRUNCATE)`).

Retention deletes rows directly, not through the journal: what it deletes is chosen by age,
not planned against memory (which holds no event, message or conflict), so it need not be
ordered with the writes. Each batch is one transaction of its own, and the rows of the next
are looked up outside it, so the copier (the tables' other writer) waits for one batch at
most, and memory holds one batch of ids.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from identity_graph.adapters.embedded.journal import JOURNAL_FILE, TABLES_FILE, connect
from identity_graph.adapters.embedded.sql import AUDIT_FILE
from identity_graph.codec import to_micros
from identity_graph.privacy import Cutoffs

CHECKPOINT_BUSY_MS = 100
"""How long a checkpoint of the journal or the audit file waits for the lock and the
readers at a time. A checkpoint that truncates the log blocks the file's writers while it
waits for readers (the copier reads the journal for a whole copy window): ingest then
waits for it, so it gives up after this and tries again."""
CHECKPOINT_RETRY_SECONDS = 0.05
TABLES_BUSY_MS = 60_000
"""how long the tables' checkpoint and retention's batches wait for the copier's window
(only the copier waits for them in turn)"""
GIVE_UP_SECONDS = 120.0


class PurgeFailed(sqlite3.OperationalError):
    """A write-ahead log could not be truncated: readers kept using it."""


def purge_files(data_dir: Path, copied: int) -> None:
    """Delete the journal rows up to `copied` (which the tables hold) and truncate the
    write-ahead logs of the journal, the tables and the audit file: once this returns, no
    file of `data_dir` holds an image of a page from before the deletions the tables hold
    by then."""
    with closing(connect(data_dir / JOURNAL_FILE)) as journal:
        journal.execute("DELETE FROM journal WHERE seq <= ?", (copied,))
        truncate_wal(journal, busy_ms=CHECKPOINT_BUSY_MS)
    with closing(connect(data_dir / TABLES_FILE)) as tables:
        truncate_wal(tables, busy_ms=TABLES_BUSY_MS)
    if (data_dir / AUDIT_FILE).exists():
        with closing(connect(data_dir / AUDIT_FILE)) as audit:
            truncate_wal(audit, busy_ms=CHECKPOINT_BUSY_MS)


def truncate_wal(db: sqlite3.Connection, *, busy_ms: int) -> None:
    """Checkpoint every frame of `db`'s write-ahead log into the database file and truncate
    the log to nothing, waiting `busy_ms` at a time for other connections."""
    db.execute(f"PRAGMA busy_timeout={busy_ms}")
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while True:
        try:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError as e:  # another connection checkpoints
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            busy = 1
        if not busy:
            return
        if time.monotonic() > deadline:
            raise PurgeFailed("a write-ahead log stayed in use: it could not be truncated")
        time.sleep(CHECKPOINT_RETRY_SECONDS)


def expire_rows(data_dir: Path, cutoffs: Cutoffs, batch: int) -> dict[str, int]:
    """Delete old events (per category), messages rows and conflict records, `batch` rows
    per transaction; return how many of each."""
    counts = {"events": 0, "messages": 0, "conflicts": 0}
    with closing(connect(data_dir / TABLES_FILE)) as db:
        db.execute(f"PRAGMA busy_timeout={TABLES_BUSY_MS}")
        by_category = [(c, to_micros(t)) for c, t in sorted(cutoffs.events.items()) if t]
        if by_category:
            old = " OR ".join("(category = ? AND ts < ?)" for _ in by_category)
            params = [x for pair in by_category for x in pair]
            counts["events"] = _expire(db, "events", "rowid", f"({old})", params, batch)
        if cutoffs.messages is not None:
            counts["messages"] = _expire(
                db, "messages", "message_id", "at < ?", [to_micros(cutoffs.messages)], batch
            )
        if cutoffs.conflicts is not None:
            counts["conflicts"] = _expire(
                db, "conflicts", "rowid", "at < ?", [to_micros(cutoffs.conflicts)], batch
            )
    return counts


def _expire(
    db: sqlite3.Connection,
    table: str,
    key: str,
    old: str,
    params: Sequence[Any],
    batch: int,
) -> int:
    """Delete the rows of `table` matching `old`, walking it in `key` order a batch at a
    time: each batch is found outside a transaction, then deleted in one (checking `old`
    again, for a row changed meanwhile)."""
    deleted = 0
    find = f"SELECT {key} FROM {table} WHERE {key} > ? AND {old} ORDER BY {key} LIMIT ?"
    for keys in _batches(db, find, params, batch):
        db.execute("BEGIN IMMEDIATE")
        try:
            for k in keys:
                deleted += db.execute(
                    f"DELETE FROM {table} WHERE {key} = ? AND {old}", [k, *params]
                ).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return deleted


def _batches(
    db: sqlite3.Connection, query: str, params: Sequence[Any], batch: int
) -> Iterator[list[Any]]:
    """The keys `query` finds, `batch` at a time: it takes the key to continue after (below
    every key to begin with), then `params`, then the batch size."""
    after: Any = -(1 << 63) if query.startswith("SELECT rowid") else ""
    while True:
        keys = [k for (k,) in db.execute(query, [after, *params, batch])]
        if not keys:
            return
        yield keys
        if len(keys) < batch:
            return
        after = keys[-1]
