"""The embedded store's data directory as a whole: its lock, the recovery of what a crash
left in the journal, compaction of a closed store, and the garbage collector's tuning for a
process that holds a store's memory."""

from __future__ import annotations

import fcntl
import gc
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from identity_graph.adapters.embedded.journal import (
    JOURNAL,
    JOURNAL_FILE,
    JOURNAL_PAGE_SIZE,
    TABLES_FILE,
    TABLES_PAGE_SIZE,
    connect_journal,
    connect_tables_for_copy,
    copy_all,
)
from identity_graph.adapters.embedded.sql import create_tables
from identity_graph.errors import StoreUnavailable

GC_THRESHOLDS = (200_000, 100, 10)
"""Ingesting 1M observations (planning and journal, no copier) spent 4.4 s in collections
with (50_000, 20, 10), 4.2 s with (100_000, 50, 10) and 1.9 s with these; the oldest
generation is still collected, so cyclic garbage does not outlive a long-running server."""


def tune_gc() -> None:
    """Collect garbage less often, for a process that holds a large graph in memory.

    Planning allocates many short-lived containers; with CPython's default thresholds
    (700, 10, 10) the collector then spends a quarter of ingest time walking the store's
    millions of long-lived sets and dicts. The server (its app, however it is started) and
    the importer call this at start (a process-wide setting, so the store itself does not).
    """
    gc.set_threshold(*GC_THRESHOLDS)


def lock_data_dir(data_dir: Path) -> int:
    """Take the data directory's lock (one process per data dir); return its descriptor."""
    fd = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise StoreUnavailable(
            f"data directory {data_dir} is in use by another c360 process"
        ) from e
    return fd


def recover(journal: sqlite3.Connection, tables: sqlite3.Connection) -> int:
    """Make the tables (and the columns an older c360 lacks), copy into them what a crash
    left in the journal, and drop it from the journal; return the tables' mark."""
    journal.execute(JOURNAL)
    create_tables(tables)
    copied = copy_all(journal, tables)
    journal.execute("DELETE FROM journal WHERE seq <= ?", (copied,))
    return copied


@dataclass(frozen=True)
class Compacted:
    """A file `compact` rewrote: its size and page size before and after."""

    name: str
    bytes_before: int
    bytes_after: int
    page_size_before: int
    page_size_after: int


def compact(data_dir: Path) -> list[Compacted]:
    """Rewrite the tables and journal files of a closed store (SQLite's `VACUUM`): gives
    back the space of deleted rows, and brings files made by an older c360 to the page sizes
    a new file gets (`TABLES_PAGE_SIZE`, `JOURNAL_PAGE_SIZE`). What a crash left in the
    journal is copied first. Takes the data directory's lock, so it refuses while a server
    has the store open; a crash midway leaves each file as it was or compacted (VACUUM
    runs in one transaction)."""
    if not (data_dir / TABLES_FILE).is_file():
        raise StoreUnavailable(f"no embedded store in {data_dir}")
    fd = lock_data_dir(data_dir)
    try:
        return _compact_files(data_dir)
    except (sqlite3.Error, ValueError) as e:  # ValueError: a journal body it cannot read
        raise StoreUnavailable(f"cannot compact the store in {data_dir}: {e}") from e
    finally:
        os.close(fd)


def _compact_files(data_dir: Path) -> list[Compacted]:
    with (
        closing(connect_journal(data_dir / JOURNAL_FILE)) as journal,
        closing(connect_tables_for_copy(data_dir / TABLES_FILE)) as tables,
    ):
        recover(journal, tables)
        return [
            _vacuum(tables, data_dir / TABLES_FILE, TABLES_PAGE_SIZE),
            _vacuum(journal, data_dir / JOURNAL_FILE, JOURNAL_PAGE_SIZE),
        ]


def _vacuum(db: sqlite3.Connection, path: Path, page_size: int) -> Compacted:
    """Rewrite one file with `page_size` (which a WAL file can change only out of WAL mode)."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.stat().st_size
    [(old_page_size,)] = db.execute("PRAGMA page_size")
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute(f"PRAGMA page_size={page_size}")
    db.execute("VACUUM")
    db.execute("PRAGMA journal_mode=WAL")
    [(new_page_size,)] = db.execute("PRAGMA page_size")
    return Compacted(path.name, before, path.stat().st_size, old_page_size, new_page_size)
