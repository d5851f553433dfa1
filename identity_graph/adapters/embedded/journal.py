"""The embedded store's journal, and the copier that moves it into the query tables.

A write is acknowledged once its rows are one row of the journal (`journal.sqlite3`).
The copier runs as a child process of the store,

    python -m identity_graph.adapters.embedded.journal DATA_DIR

so that SQLite's work on the tables runs on another core than the resolver, and never
waits for the parent's interpreter lock. It copies every journal row past the tables' mark
(`meta.copied`) in order, many per transaction, and moves the mark in the same transaction.
The mark is read inside that write transaction, so two copiers (an old one still finishing
while a restarted store recovers) never copy a row twice.

The parent writes a byte to the copier's standard input after each journalled write (`WROTE`),
`WAITING` while a read waits for the tables, and `PURGE` when deleted rows must leave every
file (`purge_copied`). The copier lets writes gather until
`MIN_COPY_BYTES` of them are uncopied, the oldest has waited `MAX_COPY_DELAY`, or a read
waits: a transaction rewrites every page it dirties, and most of those pages are the same
whether it holds a thousand observations or a hundred thousand. After each window it looks
again, so what came meanwhile gathers too. It also looks by itself every
`POLL_SECONDS`, and exits once its standard input closes and nothing is left to copy.
The store closes it when it closes, and when no write came for a while
(`EmbeddedStore.copier_idle_seconds`): a copier holds a large page cache (~700 MB of RSS at
1M profiles), which an idle store gives back. The next write starts another.
"""

from __future__ import annotations

import gc
import os
import re
import select
import sqlite3
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]

from identity_graph.adapters.embedded.sql import (
    JsonText,
    Rows,
    WindowWriter,
    json_text,
    map_json,
)

TABLES_FILE = "c360.sqlite3"
JOURNAL_FILE = "journal.sqlite3"
JOURNAL = "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)"
MAX_COPY_BYTES = 64 << 20
"""journal bytes copied in one transaction, at most (about 160,000 observations): the
bigger, the fewer times each hot page of the random-keyed indexes is written. Copying 1M
observations took 42.9 s in windows of 16 MB with a 256 MB cache, 31.0 s in windows of 64 MB
with 512 MB (and 30.6 s with 1 GB)."""
COPY_CACHE_BYTES = 512 << 20
"""the copier's page cache: every page a window dirties stays in it until the commit"""
MAX_ROWS = 1024
"""journal rows copied in one transaction, at most"""
MIN_COPY_BYTES = 32 << 20
"""uncopied journal bytes that start a copy without a read waiting for it (~90 writes of
1,000 observations). Copying 1M observations in windows of 6 such writes took the copier
57 CPU-s, in windows of 90 writes 28-32 CPU-s. Copying whatever had come since the last
copy, a copier kept up with ingest paced at 8,000 obs/s with 9.5-10.2 CPU-s per 200k
observations; gathering, with 5.0-5.2. What comes while a window is copied gathers again
too: a copier that chased it at once (faster than ingest, it made ever smaller windows) wrote
10.7-12.2 GB and used 28.7-32.2 CPU-s for 1M observations, against 4.4-4.5 GB and
25.4-26.4 CPU-s, and ingest was 5-10% slower beside it."""
MAX_COPY_DELAY = 5.0
"""seconds uncopied writes wait for others before they are copied anyway (when no read
waits for them, only a restart after a crash would have to copy them), counted from when
the copier first saw them or, for writes left after a window, from the window's end"""
POLL_SECONDS = 0.05
RETRY_SECONDS = 1.0
WROTE = b"\n"
"""what the store writes to the copier's input after a journalled write"""
WAITING = b"!"
"""what the store writes to the copier's input while a read waits for the tables"""
PURGE = b"#%d;"
"""what the store writes to the copier's input, with a request number, to have deleted rows
leave every file: the copier runs `purge_copied` between two windows, and notes the number
of the last request it saw before it began as `meta.purged`"""
_PURGE_REQUEST = re.compile(rb"#(\d+);")


TABLES_PAGE_SIZE = 16384
"""the page size of a new tables file. A copy window dirties nearly every leaf page of the
random-keyed indexes whatever their size, so bigger pages mean fewer pages to find, balance
and write for the same bytes. Copying the journal of 1M observations offline, in turns with
SQLite's 4 KB pages, took the copier 28.1, 28.7 and 29.6 CPU-s against 32.1, 32.6 and 35.0
in windows of 32 MB, and 24.6 (twice) against 27.5-27.7 in windows of 64 MB (32 and 64 KB
pages: 25.5-28.4 and 26.0-27.8). A tables file from an older c360 keeps its page size
(changing it means rewriting the whole file)."""
JOURNAL_PAGE_SIZE = 65536
"""the page size of a new journal file. A write's body (~370 KB for 1,000 observations)
spans fewer overflow pages, so fewer WAL frames to checksum and write: journalling 400 such
bodies took 0.36 CPU-s and 0.54 s with 64 KB pages against 0.72 CPU-s and 0.95 s with 4 KB
(16 KB: 0.48 and 0.69 s), and the copier reads them back faster."""


def connect(path: Path, *, page_size: int | None = None) -> sqlite3.Connection:
    """A connection as every part of the embedded store uses it; `page_size` is the page size
    the file gets if this connection creates it (an existing file keeps its own)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if page_size is not None:
        conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


def connect_journal(path: Path) -> sqlite3.Connection:
    return connect(path, page_size=JOURNAL_PAGE_SIZE)


def connect_tables_for_copy(path: Path) -> sqlite3.Connection:
    conn = connect(path, page_size=TABLES_PAGE_SIZE)
    # A copy dirties pages all over the random-keyed indexes: a bigger cache saves
    # re-reading them, and fewer checkpoints copy each hot page back once, not per commit.
    conn.execute(f"PRAGMA cache_size=-{COPY_CACHE_BYTES >> 10}")
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    return conn


_JSON_TEXT = 1
"""msgpack extension type of a JSON value already encoded as text"""
FORMAT = 2
"""the journal body's format: 2 is a map {"v": 2, "sets": [Rows, ...]} whose JSON columns
hold JSON values; 1 (c360 before it) is the bare list, its JSON columns already text"""


def encode(change_sets: Sequence[Rows]) -> bytes:
    """The journal body of a write. JSON values travel as msgpack; one msgpack cannot hold
    (an integer wider than 64 bits, say) makes the write travel with its JSON values as text."""
    try:
        return msgpack.packb({"v": FORMAT, "sets": change_sets})  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError):
        as_text = [
            [(index, map_json(index, params, _as_text)) for index, params in rows]
            for rows in change_sets
        ]
        return msgpack.packb({"v": FORMAT, "sets": as_text})  # type: ignore[no-any-return]


def _as_text(value: Any) -> msgpack.ExtType:
    return msgpack.ExtType(_JSON_TEXT, json_text(value).encode())


def _ext(code: int, data: bytes) -> Any:
    if code != _JSON_TEXT:
        raise ValueError(f"unknown msgpack extension type {code} in the journal")
    return JsonText(data.decode())


def decode(body: bytes) -> list[Rows]:
    found = msgpack.unpackb(body, ext_hook=_ext)
    if isinstance(found, dict):
        if found.get("v") != FORMAT:
            raise ValueError(f"journal body of unknown format {found.get('v')!r}")
        return found["sets"]  # type: ignore[no-any-return]
    # format 1, left by an older c360 that stopped before copying it
    for rows in found:
        for index, params in rows:
            map_json(index, params, JsonText)
    return found  # type: ignore[no-any-return]


def copied_mark(tables: sqlite3.Connection) -> int:
    """The sequence number of the last journal row the tables hold."""
    row = tables.execute("SELECT value FROM meta WHERE key = 'copied'").fetchone()
    return int(row[0]) if row else 0


def copy_some(journal: sqlite3.Connection, tables: sqlite3.Connection) -> int | None:
    """Copy the next journal rows past the mark in one transaction; return the new mark, or
    None if there was nothing to copy."""
    tables.execute("BEGIN IMMEDIATE")
    try:
        mark = copied_mark(tables)
        size = 0
        last = None
        writer = WindowWriter(tables)
        # rows are read one at a time: a window may end long before MAX_ROWS
        with closing(
            journal.execute(
                "SELECT seq, body FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (mark, MAX_ROWS),
            )
        ) as found:
            for seq, body in found:
                for rows in decode(body):
                    writer.write(rows)
                last = seq
                size += len(body)
                if size >= MAX_COPY_BYTES:
                    break
        if last is None:
            tables.execute("ROLLBACK")
            return None
        writer.finish()
        tables.execute(
            "INSERT INTO meta (key, value) VALUES ('copied', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (last,),
        )
        tables.execute("COMMIT")
        return int(last)
    except BaseException:
        if tables.in_transaction:
            tables.execute("ROLLBACK")
        raise


def copy_all(journal: sqlite3.Connection, tables: sqlite3.Connection) -> int:
    """Copy every journal row past the mark; return the mark."""
    while copy_some(journal, tables) is not None:
        pass
    return copied_mark(tables)


def uncopied_bytes(journal: sqlite3.Connection, mark: int) -> int:
    """The size of the journal bodies past `mark` (read from the rows' headers)."""
    row = journal.execute(
        "SELECT coalesce(sum(length(body)), 0) FROM journal WHERE seq > ?", (mark,)
    ).fetchone()
    return int(row[0])


def purge_copied(journal: sqlite3.Connection, tables: sqlite3.Connection, request: int) -> bool:
    """Delete the journal rows the tables hold, truncate the journal's and the tables'
    write-ahead logs, and note `request` as `meta.purged`; False if a log was still in use
    (by a reader, for the connections' busy timeout), to be tried again.

    Connections have `secure_delete` on, so deleted rows are zeroed in their pages; the
    older images of those pages are in the logs until they are checkpointed and truncated.
    Run by the copier between windows (it is the tables' writer and the journal's reader, so
    nothing else holds the logs for long), and at the store's start."""
    mark = copied_mark(tables)
    journal.execute("DELETE FROM journal WHERE seq <= ?", (mark,))
    for db in (journal, tables):
        # most frames first, without blocking the writers: the truncating checkpoint then
        # holds them up for what came since (group commits wait for it on the journal)
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            return False
    tables.execute(
        "INSERT INTO meta (key, value) VALUES ('purged', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (request,),
    )
    return True


def purged_mark(tables: sqlite3.Connection) -> int:
    """The number of the last purge request served (`PURGE`)."""
    row = tables.execute("SELECT value FROM meta WHERE key = 'purged'").fetchone()
    return int(row[0]) if row else 0


class _Input:
    """What the store says on standard input: `WROTE`, `WAITING`, `PURGE`, and at last end
    of file."""

    def __init__(self) -> None:
        self.open = True
        self.waiting = False
        """a read waits for the tables: copy now"""
        self.purge = 0
        """the number of the last purge request the store made (`PURGE`)"""

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` for the store to say something, and note what it said."""
        ready, _, _ = select.select([0], [], [], timeout)
        if ready:
            said = os.read(0, 1 << 16)
            self.open = bool(said)
            self._note(said)

    def poll(self) -> None:
        """Note what the store said meanwhile, without waiting (the end of the input is
        noted by the next `wait`)."""
        ready, _, _ = select.select([0], [], [], 0)
        if ready:
            self._note(os.read(0, 1 << 16))

    def _note(self, said: bytes) -> None:
        self.waiting = self.waiting or WAITING in said
        for request in _PURGE_REQUEST.findall(said):
            self.purge = max(self.purge, int(request))


def _due(size: int, said: _Input, since: float | None) -> bool:
    """Whether `size` uncopied bytes, first seen at `since`, are to be copied now."""
    if not size:
        return False
    if not said.open or said.waiting or size >= MIN_COPY_BYTES:
        return True
    return since is not None and time.monotonic() - since >= MAX_COPY_DELAY


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m identity_graph.adapters.embedded.journal DATA_DIR", file=sys.stderr)
        return 2
    # what the copier holds is acyclic: without the collector, holding a window's rows
    # costs nothing (with it, decoding took three times as long)
    gc.disable()
    data_dir = Path(argv[0])
    journal = connect_journal(data_dir / JOURNAL_FILE)
    tables = connect_tables_for_copy(data_dir / TABLES_FILE)
    return copy_until_closed(journal, tables, _Input())


def copy_until_closed(journal: sqlite3.Connection, tables: sqlite3.Connection, said: _Input) -> int:
    """The copier's loop: copy a window whenever one is due (`_due`), until the store
    closes the input and nothing is left to copy; return the exit status."""
    since: float | None = None
    """when the copier first saw the uncopied writes it has not copied yet"""
    served = 0
    """the last purge request done"""
    while True:
        try:
            if said.purge > served and purge_copied(journal, tables, said.purge):
                served = said.purge
            size = uncopied_bytes(journal, copied_mark(tables))
            if _due(size, said, since):
                # one window, then look again: copying at once whatever came meanwhile
                # would chase the ingest with ever smaller windows, each rewriting most of
                # the pages a full one does
                copy_some(journal, tables)
                since = None
                said.poll()  # a purge asked for meanwhile runs before the next window
                continue
        except (sqlite3.Error, ValueError) as e:  # ValueError: a body it cannot read
            print(f"c360 journal copier: {e}; retrying", file=sys.stderr, flush=True)
            time.sleep(RETRY_SECONDS)
            continue
        if not size:
            if not said.open:
                return 0
            # whatever a read waited for was journalled before it asked, so it is copied
            said.waiting = False
            since = None
        elif since is None:
            since = time.monotonic()
        said.wait(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
