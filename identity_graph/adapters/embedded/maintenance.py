"""The embedded store's physical clean-up, on connections of its own in worker threads:
purging every copy of deleted rows from the files when no copier runs (`purge_files`; the
copier does it otherwise, `journal.purge_copied`), truncating the audit file's log, and
deleting what retention no longer keeps (`expire_rows`).

Every connection has `secure_delete` on, so a deleted row's bytes are zeroed in the page
that held it, and a page that falls free is zeroed: b-tree balancing leaves no stale copy
in free space either (tried: 3,000 customers with 20 trait updates each, some values in
overflow pages, one customer erased, every file searched for their values, as UTF-8 and as
JSON escapes them: none found once the logs were truncated, none in the journal file). What
is left are older images of those pages: in a write-ahead log until it is checkpointed and
truncated, and in the journal's rows until they are deleted.

Retention deletes rows directly, not through the journal: what it deletes is chosen by age,
not planned against memory (which holds no event, message or conflict), so it need not be
ordered with the writes. Each batch is one transaction of its own, and the rows of the next
are looked up outside it, so the copier (the tables' other writer) waits for one batch at
most, and memory holds one batch of ids.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from identity_graph.adapters.embedded.journal import (
    JOURNAL_FILE,
    TABLES_FILE,
    connect,
    purge_copied,
    purged_mark,
)
from identity_graph.adapters.embedded.sql import AUDIT_FILE
from identity_graph.codec import to_micros
from identity_graph.privacy import Cutoffs

AUDIT_BUSY_MS = 100
"""How long a checkpoint of the audit file waits for the lock and the readers at a time: it
blocks the file's writers (audited reads) while it waits, so it gives up after this and
tries again."""
RETRY_SECONDS = 0.05
GIVE_UP_SECONDS = 120.0
TABLES_BUSY_MS = 60_000
"""how long retention's batches wait for the copier's window (only the copier waits for
them in turn)"""


class PurgeFailed(sqlite3.OperationalError):
    """A write-ahead log could not be truncated: readers kept using it."""


def purge_files(data_dir: Path) -> None:
    """`journal.purge_copied`, done by the store itself while no copier runs (at start, or
    when none could start), then `truncate_audit`."""
    with (
        closing(connect(data_dir / JOURNAL_FILE)) as journal,
        closing(connect(data_dir / TABLES_FILE)) as tables,
    ):
        _until_done(lambda: purge_copied(journal, tables, purged_mark(tables)))
    truncate_audit(data_dir)


def truncate_audit(data_dir: Path) -> None:
    """Checkpoint the audit file's write-ahead log and truncate it to nothing."""
    if not (data_dir / AUDIT_FILE).exists():
        return
    with closing(connect(data_dir / AUDIT_FILE)) as audit:
        audit.execute(f"PRAGMA busy_timeout={AUDIT_BUSY_MS}")
        _until_done(lambda: not audit.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])


def _until_done(attempt: Callable[[], bool]) -> None:
    """Call `attempt` until it returns True (a log it truncates is in use until then)."""
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while True:
        try:
            if attempt():
                return
        except sqlite3.OperationalError as e:  # another connection checkpoints
            if "locked" not in str(e) and "busy" not in str(e):
                raise
        if time.monotonic() > deadline:
            raise PurgeFailed("a write-ahead log stayed in use: it could not be truncated")
        time.sleep(RETRY_SECONDS)


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
