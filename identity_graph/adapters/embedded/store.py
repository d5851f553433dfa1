"""The embedded store: who belongs together in process, made durable by SQLite.

A write is acknowledged once it is in the journal (`journal.sqlite3`, WAL,
synchronous=FULL): one row per write holding every row it adds to the tables, so a crash at
any moment leaves acknowledged writes and nothing half-made. Writes commit in groups (group
commit): a write is planned and applied in memory at once, under the write lock, and its row
joins the group the journal commits next, in one transaction and one fsync, while later
writes are planned against it. Concurrent small writes (a tracking call each) then share an
fsync instead of queueing for one each. A write that arrives while a group commits waits for
the next; if the journal fails, every write of the failed group and after it fails, and
memory is rebuilt from what the journal and tables hold. A copier process
(`embedded_journal`) copies journalled writes into the query tables (`c360.sqlite3`), many
per transaction; the store deletes the journal rows it copied, and at start copies what a
crash left. The audit log and API keys live in a file
of their own (`audit.sqlite3`), written by this process directly, so an audited read never
waits for a copy.

Memory holds the partition of identifiers into profiles (each identifier's profile, each
profile's identifiers), rebuilt from the tables at start. The links between identifiers
stay in the tables: networkx works on one profile's links when a question needs their graph
(a path to explain, the components left by an undo or a split). A link always joins two
identifiers of one profile, so no question needs the whole graph; holding all of it in
networkx took half the store's memory and half its start (385 of 828 MB and 2.4 of 4.7 s
at 345k profiles), and ~2 µs of each ingested observation.

Reads of the tables wait until every write applied before the read began is in them, so a
caller always reads its own writes. A read may see a write whose group is still being
committed (for a few milliseconds); only if that commit then fails does it see a write that
is undone (as with Redis's append-only file, which applies a command before its fsync). A
write that changes nothing (a message seen before) is acknowledged once what it found is in
the journal. Ingest waits while more than `MAX_BACKLOG` observations are not yet in the
tables.

Data is kept in rows per identifier (events, traits, consent) with `secure_delete` on, so
one person's data can be physically erased without rewriting anyone else's; the journal
holds a write only until it was copied.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import operator
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import identity_graph
from identity_graph.adapters.embedded.journal import (
    JOURNAL,
    JOURNAL_FILE,
    JOURNAL_PAGE_SIZE,
    TABLES_FILE,
    TABLES_PAGE_SIZE,
    WAITING,
    WROTE,
    connect,
    connect_journal,
    connect_tables_for_copy,
    copied_mark,
    copy_all,
    encode,
)
from identity_graph.adapters.embedded.reads import ProfileReads, links_from
from identity_graph.adapters.embedded.sql import (
    AUDIT_FILE,
    SQL_VARS,
    change_rows,
    chunks,
    create_audit_tables,
    create_tables,
    kind_of,
    merge_from_row,
    qmarks,
)
from identity_graph.codec import (
    dumps,
    from_micros,
    loads,
    to_micros,
)
from identity_graph.errors import InvalidOperation, StoreUnavailable
from identity_graph.model import MergeRecord, Page
from identity_graph.records import AccessRecords, ApiKey, AuditEntry
from identity_graph.store import (
    ChangeSet,
    IdentityStore,
    Member,
    ProfileGraph,
    ProfileState,
    Snapshot,
    WriteTx,
)

T = TypeVar("T")

_COUNTS_KEPT_FROM = 32
"""profiles with at least this many identifiers keep their kind counts in memory"""
MAX_BACKLOG = 250_000
"""observations applied but not yet in the tables before ingest waits"""
STALL_SECONDS = 60.0
"""how long a read or write waits for a copier that makes no progress before failing"""
COPIER_IDLE_SECONDS = 10.0
"""a copier with no write for this long is closed (it copies what is left, then exits)"""


READ_MMAP_BYTES = 2 << 30
"""how much of the tables file the reader maps (SQLite's own ceiling is just under 2 GB).
A lookup at 1.17M profiles reads a few pages no cache holds: through the memory map its
p99 was 0.11 ms, through `read()` calls 0.15-0.17 ms (0.09-0.10 ms at 10k profiles). The
pages it maps are the OS's file cache, clean and shared with it; they count in the
process's RSS as file pages (RssFile), up to the part of the file reads have touched."""

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


_PROFILE_ID = operator.attrgetter("profile_id")


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


def recover(journal: sqlite3.Connection, tables: sqlite3.Connection) -> int:
    """Make the tables (and the columns an older c360 lacks), copy into them what a crash
    left in the journal, and drop it from the journal; return the tables' mark."""
    journal.execute(JOURNAL)
    create_tables(tables)
    copied = copy_all(journal, tables)
    journal.execute("DELETE FROM journal WHERE seq <= ?", (copied,))
    return copied


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


def _count_kinds(keys: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in keys:
        kind = key[: key.find(":")]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


@dataclass(slots=True)
class _Journalled:
    """A write in the journal, not yet copied to the tables."""

    seq: int
    messages: list[tuple[str, str]]
    """(message id, profile id) of the observations it applied"""
    weight: int
    """observations it holds (at least 1), counted against `MAX_BACKLOG`"""


@dataclass(slots=True)
class _Group:
    """Writes applied in memory whose journal rows commit in one transaction."""

    rows: list[tuple[int, bytes]]
    """(sequence number, body) of each write"""
    committed: asyncio.Future[None]
    """done once the rows are in the journal; the writes are acknowledged then"""


class EmbeddedStore(ProfileReads, IdentityStore, AccessRecords):
    """The partition in process, durable through SQLite in `data_dir`. One process per data
    dir."""

    def __init__(
        self, data_dir: str | Path, *, copier_idle_seconds: float = COPIER_IDLE_SECONDS
    ) -> None:
        self.data_dir = Path(data_dir)
        self.copier_idle_seconds = copier_idle_seconds
        """with no write for this long, the copier is closed and gives its memory back"""
        self._last_write = 0.0
        self._idle_check: asyncio.TimerHandle | None = None
        self.round_trips = 0
        self._lock = asyncio.Lock()
        self._rows_lock = asyncio.Lock()
        self._journal: sqlite3.Connection | None = None
        self._audit: sqlite3.Connection | None = None
        """writes the audit file (audit log, API keys); `_audit_reader` reads it"""
        self._audit_reader: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._marks: sqlite3.Connection | None = None
        """reads the copier's mark, nothing else"""
        self._lock_file: int | None = None
        self.profile_of: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}
        self.created: dict[str, int] = {}
        self.redirect: dict[str, str] = {}
        self._kind_counts: dict[str, dict[str, int]] = {}
        """kind counts of the profiles with many members, kept up to date as they change"""
        self._seq = 0
        """sequence number of the last write applied in memory (in the journal, and
        acknowledged, once `_durable` reaches it)"""
        self._durable = 0
        """sequence number of the last write in the journal"""
        self._group: _Group | None = None
        """the writes applied in memory whose journal rows wait for the next commit"""
        self._committing: _Group | None = None
        """the group being committed"""
        self._flusher: asyncio.Task[None] | None = None
        """commits the groups, one after another, while there are any"""
        self._failed: Exception | None = None
        """why the journal last failed, until memory is rebuilt from what it holds"""
        self._rebuilding: asyncio.Task[None] | None = None
        self._careful = False
        """after a failed commit, until one succeeds: journal each write before applying it"""
        self.commits = 0
        """journal transactions so far (a group of writes each)"""
        self._copied = 0
        """sequence number of the last write known to be in the tables"""
        self._pending: list[_Journalled] = []
        self._pending_messages: dict[str, str] = {}
        """message id -> profile id of the writes not known to be in the tables"""
        self._backlog = 0
        self._dirty: dict[str, int] = {}
        """profile id -> the last uncopied write that touched it"""
        self._all_dirty = 0
        """the last uncopied write that moved identifiers between profiles one by one (an
        undo or a split) or stored consent: reads of any profile wait for it"""
        self._copier: subprocess.Popen[bytes] | None = None
        self._closing = False
        """the store is closing: no copier is started any more"""

    # --- life cycle ----------------------------------------------------------------

    @property
    def records(self) -> AccessRecords:
        """API keys and the audit log, in this store's database."""
        return self

    async def open(self) -> None:
        if self._audit is not None:
            return
        self._closing = False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = lock_data_dir(self.data_dir)
        try:
            self._open_files()
        except (sqlite3.Error, ValueError) as e:  # ValueError: a journal body it cannot read
            self._close_files()
            raise StoreUnavailable(f"cannot open the embedded store in {self.data_dir}: {e}") from e

    def _open_files(self) -> None:
        self._journal = connect_journal(self.data_dir / JOURNAL_FILE)
        # what a crash left in the journal goes into the tables before anything is read
        with closing(connect_tables_for_copy(self.data_dir / TABLES_FILE)) as tables:
            self._seq = self._durable = self._copied = recover(self._journal, tables)
        self._audit = connect(self.data_dir / AUDIT_FILE)
        create_audit_tables(self._audit, self.data_dir / TABLES_FILE)
        self._audit_reader = connect(self.data_dir / AUDIT_FILE)
        self._reader = connect(self.data_dir / TABLES_FILE)
        self._marks = connect(self.data_dir / TABLES_FILE)
        self._load()
        # after the load's scans, so that only the pages reads touch are mapped
        self._reader.execute(f"PRAGMA mmap_size={READ_MMAP_BYTES}")

    def _close_files(self) -> None:
        for conn in (self._journal, self._audit, self._audit_reader, self._reader, self._marks):
            if conn is not None:
                conn.close()
        self._journal = self._audit = self._audit_reader = self._reader = self._marks = None
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def _load(self) -> None:
        """Read the partition from the tables; memory is replaced once all of it is read."""
        db = self._read()
        created: dict[str, int] = {}
        members: dict[str, set[str]] = {}
        redirect: dict[str, str] = {}
        profile_of: dict[str, str] = {}
        for pid, made, merged_into in db.execute(
            "SELECT id, created_at, merged_into FROM profiles"
        ):
            created[pid] = made
            if merged_into is None:
                members[pid] = set()
            else:
                redirect[pid] = merged_into
        for key, pid in db.execute("SELECT key, profile_id FROM identifiers"):
            profile_of[key] = pid
            members[pid].add(key)
        self.created, self.members, self.redirect = created, members, redirect
        self.profile_of, self._kind_counts = profile_of, {}

    async def close(self) -> None:
        async with self._lock:
            while self._group is not None or (
                self._flusher is not None and not self._flusher.done()
            ):
                if self._flusher is None or self._flusher.done():
                    self._flusher = asyncio.ensure_future(self._flush())
                await asyncio.wait([self._flusher])
            wait = STALL_SECONDS
            if self._marks is not None and self._copier is not None:
                try:
                    await self._caught_up(self._durable)
                except StoreUnavailable:
                    wait = 0.0  # it made no progress for a whole stall: a restart copies the rest
            await self._stop_copier(wait)
            if self._journal is not None and self._marks is not None:
                # the journal keeps a write only until it is in the tables
                self._progress()
                self._journal.execute("DELETE FROM journal WHERE seq <= ?", (self._copied,))
            async with self._rows_lock:
                self._close_files()

    def _audit_db(self) -> sqlite3.Connection:
        """The connection that writes the audit file; raises if the store is not open."""
        if self._audit is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._audit

    def _read(self) -> sqlite3.Connection:
        self.round_trips += 1
        if self._reader is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._reader

    def _read_audit(self) -> sqlite3.Connection:
        self.round_trips += 1
        if self._audit_reader is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._audit_reader

    async def _fresh(self, ids: Sequence[str] | None = None) -> sqlite3.Connection:
        """The reader, once the tables hold every write applied before this call that
        touched the profiles `ids` (None: any profile). A bulk import keeps the copier
        busy; reads of the customers it does not touch need not wait for it."""
        await self._caught_up(self._seq if ids is None else self._last_write_to(ids))
        return self._read()

    def _last_write_to(self, ids: Sequence[str]) -> int:
        """The last uncopied write that touched the profiles `ids` (0 if none)."""
        dirty = self._dirty
        return max(max((dirty.get(pid, 0) for pid in ids), default=0), self._all_dirty)

    def _copied_all_of(self, ids: Sequence[str]) -> bool:
        return min(self._last_write_to(ids), self._seq) <= self._copied

    async def ping(self) -> None:
        try:
            self._read().execute("SELECT 1").fetchone()
            self._progress()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"embedded store failed: {e}") from e
        if self._pending:
            self._start_copier()  # restarts a copier that exited with work left

    # --- the copier: journal to tables ----------------------------------------------

    def _start_copier(self) -> None:
        """Start the copier process unless one runs with its input open (a copier whose
        input was closed copies what it finds, then exits: a later write needs another),
        and unless the store is closing (a read waiting meanwhile would leave one running)."""
        if self._closing:
            return
        old = self._copier
        if old is not None:
            if old.poll() is None and old.stdin is not None and not old.stdin.closed:
                return
            if old.stdin is not None:
                old.stdin.close()
        root = str(Path(identity_graph.__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        self._copier = subprocess.Popen(
            [sys.executable, "-m", "identity_graph.adapters.embedded.journal", str(self.data_dir)],
            stdin=subprocess.PIPE,
            env=env,
        )
        assert self._copier.stdin is not None
        os.set_blocking(self._copier.stdin.fileno(), False)

    def _wake_copier(self, said: bytes = WROTE) -> None:
        """Tell the copier of a write (`WROTE`) or of a read waiting for it (`WAITING`)."""
        copier = self._copier
        if copier is None or copier.stdin is None or copier.stdin.closed:
            return
        try:
            os.write(copier.stdin.fileno(), said)
        except (BlockingIOError, BrokenPipeError):
            pass  # it has wake-ups queued already, or it exited and is restarted on demand

    async def _stop_copier(self, wait: float = STALL_SECONDS) -> None:
        """Close the copier's input and give it `wait` seconds to finish, then kill it; no
        copier starts after this (the store is closing)."""
        self._closing = True
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None
        copier, self._copier = self._copier, None
        if copier is None:
            return
        if copier.stdin is not None:
            copier.stdin.close()
        try:
            await asyncio.to_thread(copier.wait, wait)
        except subprocess.TimeoutExpired:
            copier.kill()
            await asyncio.to_thread(copier.wait)

    def _progress(self) -> None:
        """Read how far the copier got, and forget the pending writes it copied."""
        if self._marks is None:
            raise StoreUnavailable("the embedded store is not open")
        copied = copied_mark(self._marks)
        if copied <= self._copied:
            return
        self._copied = copied
        done = 0
        for entry in self._pending:
            if entry.seq > copied:
                break
            done += 1
            self._backlog -= entry.weight
            for message_id, _ in entry.messages:
                self._pending_messages.pop(message_id, None)
        del self._pending[:done]
        self._dirty = {pid: seq for pid, seq in self._dirty.items() if seq > copied}

    async def _wait_for_copier(self, done: Callable[[], bool]) -> None:
        """Wait until `done()`, polling the copier's mark; fail if it stalls."""
        delay = 0.0005
        stalled_since = time.monotonic()
        last = self._copied
        while True:
            try:
                self._progress()
            except sqlite3.Error as e:
                raise StoreUnavailable(f"embedded store read failed: {e}") from e
            if done():
                return
            if self._copied != last:
                last, stalled_since, delay = self._copied, time.monotonic(), 0.0005
            elif time.monotonic() - stalled_since > STALL_SECONDS:
                raise StoreUnavailable("the embedded store's journal copier makes no progress")
            self._start_copier()
            self._wake_copier(WAITING)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def settle(self) -> None:
        """Wait until the tables hold every applied write (the reads do it anyway;
        benchmarks and tests use it to time or watch the tables alone)."""
        await self._caught_up(self._seq)

    async def _caught_up(self, seq: int) -> None:
        """Wait until the tables hold write `seq`, or, if the journal failed to hold it,
        every write it does hold."""
        if self._copied < seq:
            await self._wait_for_copier(lambda: self._copied >= min(seq, self._seq))

    async def _room(self) -> None:
        """Wait while the backlog of uncopied observations is full."""
        if self._backlog > MAX_BACKLOG:
            await self._wait_for_copier(lambda: self._backlog <= MAX_BACKLOG)

    # --- writes --------------------------------------------------------------------

    async def write(self, work: Callable[[WriteTx], Awaitable[T]]) -> T:
        async with self._lock:
            self._audit_db()  # raises if the store is not open
            if self._failed is not None:
                await self._rebuild_memory()
            await self._room()
            self.round_trips += 1
            tx = _EmbeddedTx(self)
            result = await work(tx)
            if self._failed is not None:  # the journal failed while this write was planned
                raise StoreUnavailable(f"embedded store write failed: {self._failed}")
            if tx.pending and self._careful:
                await self._journal_then_apply(tx.pending)
                return result
            if tx.pending:
                committed = self._apply_and_queue(tx.pending)
            else:
                # what it found (a message seen before, say) must be in the journal too
                latest = self._group or self._committing
                if latest is None:
                    return result
                committed = latest.committed
        try:
            # a cancelled caller's write still commits: it is in memory and in the group
            await asyncio.shield(committed)
        except Exception as e:  # noqa: BLE001 - whatever failed the commit fails the write
            raise StoreUnavailable(f"embedded store write failed: {e}") from e
        return result

    def _apply_and_queue(self, batches: list[ChangeSet]) -> asyncio.Future[None]:
        """Apply a write in memory and add its journal row to the next group; return the
        group's commit, which the write is acknowledged after."""
        seq, _ = row = self._journal_row(batches)
        self._applied(seq, batches)
        group = self._group
        if group is None:
            group = self._group = _Group([], asyncio.get_running_loop().create_future())
        group.rows.append(row)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return group.committed

    def _journal_row(self, batches: list[ChangeSet]) -> tuple[int, bytes]:
        """The next write's sequence number, and its journal body: every row it adds."""
        return self._seq + 1, encode([change_rows(c) for c in batches])

    async def _flush(self) -> None:
        """Commit the groups, each in one transaction, until none is left."""
        while self._group is not None:
            group = self._committing = self._group
            self._group = None
            try:
                await asyncio.to_thread(self._append, group.rows, self._copied)
            except Exception as e:  # noqa: BLE001 - memory holds what the journal does not
                self._journal_failed(group, e)
                return
            finally:
                self._committing = None
            group.committed.set_result(None)
            self._journalled(group.rows[-1][0])

    def _journalled(self, seq: int) -> None:
        """The journal holds the writes up to `seq`: hand them to the copier."""
        self._durable = seq
        self.commits += 1
        self._careful = False
        try:
            self._start_copier()
        except OSError:
            pass  # no process to spare now: a read that needs the copier starts it
        self._wake_copier()

    async def _journal_then_apply(self, batches: list[ChangeSet]) -> None:
        """Journal a write alone and only then apply it in memory (with the write lock), as
        writes are after a failed commit until one succeeds: a journal that keeps failing (a
        full disk) then fails each write and leaves memory alone, instead of making memory
        be rebuilt after each."""
        seq, _ = row = self._journal_row(batches)
        commit = asyncio.ensure_future(asyncio.to_thread(self._append, [row], self._copied))
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            await asyncio.wait([commit])
            if commit.exception() is None:
                self._applied(seq, batches)
                self._journalled(seq)
            raise
        except Exception as e:  # noqa: BLE001 - whatever failed the commit fails the write
            raise StoreUnavailable(f"embedded store write failed: {e}") from e
        self._applied(seq, batches)
        self._journalled(seq)

    def _journal_failed(self, group: _Group, error: Exception) -> None:
        """Fail the writes of `group` and of every group after it (they were planned against
        it), and have memory rebuilt from what the journal holds."""
        self._failed = error
        self._careful = True
        # reads and writes wait for the tables to hold what the journal holds, no more
        durable = self._seq = self._durable
        self._pending = [p for p in self._pending if p.seq <= durable]
        self._pending_messages = {m: pid for p in self._pending for m, pid in p.messages}
        self._backlog = sum(p.weight for p in self._pending)
        self._dirty = {pid: seq for pid, seq in self._dirty.items() if seq <= durable}
        self._all_dirty = min(self._all_dirty, durable)
        failed = [group] if self._group is None else [group, self._group]
        self._group = None
        for each in failed:
            each.committed.set_exception(error)
            each.committed.exception()  # a cancelled writer's is not retrieved otherwise
        self._rebuilding = asyncio.ensure_future(self._rebuild_after_failure())

    async def _rebuild_after_failure(self) -> None:
        async with self._lock:
            if self._failed is not None and self._audit is not None:
                try:
                    await self._rebuild_memory()
                except StoreUnavailable:
                    pass  # the next write tries again, and fails with the reason

    async def _rebuild_memory(self) -> None:
        """Drop from memory the writes the journal failed to hold (with the write lock):
        once the tables hold every journalled write, rebuild memory from them. Until that
        succeeds, memory stays as it was and writes fail."""
        await self._caught_up(self._durable)
        try:
            self._load()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot rebuild the embedded store's memory: {e}") from e
        self._failed = None

    def _append(self, rows: list[tuple[int, bytes]], copied: int) -> None:
        """Add a group of writes to the journal in one transaction, dropping the rows
        already copied (in a worker thread)."""
        db = self._journal
        if db is None:
            raise sqlite3.ProgrammingError("the embedded store is closed")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM journal WHERE seq <= ?", (copied,))
            db.executemany("INSERT INTO journal (seq, body) VALUES (?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _applied(self, seq: int, batches: list[ChangeSet]) -> None:
        """Apply a write in memory, and count it for the copier."""
        for changes in batches:
            self._apply_in_memory(changes)
        messages = [(m, pid) for changes in batches for m, pid, _ in changes.messages]
        self._pending_messages.update(messages)
        entry = _Journalled(seq, messages, max(1, len(messages)))
        self._pending.append(entry)
        self._backlog += entry.weight
        dirty = self._dirty
        for changes in batches:
            if changes.assign or changes.consents or changes.restored_profiles:
                self._all_dirty = seq
            dirty.update(dict.fromkeys(map(_PROFILE_ID, changes.sightings), seq))
            for absorbed, survivor in changes.reassign:
                dirty[absorbed] = dirty[survivor] = seq
            for pid, _ in changes.new_profiles:
                dirty[pid] = seq
            for merge in changes.merges:
                dirty[merge.survivor] = dirty[merge.absorbed] = seq
        self._seq = seq
        self._last_write = time.monotonic()
        if self._idle_check is None:
            self._idle_check = asyncio.get_running_loop().call_later(
                self.copier_idle_seconds, self._close_idle_copier
            )

    def _close_idle_copier(self) -> None:
        """Close the copier's input once no write came for `copier_idle_seconds`: it copies
        what is left and exits, giving its page cache back. This leaves no write uncopied:
        a group committed after it (the last write's, if its commit took that long) starts
        another copier, as the next write's does."""
        self._idle_check = None
        quiet = time.monotonic() - self._last_write
        if quiet < self.copier_idle_seconds:
            self._idle_check = asyncio.get_running_loop().call_later(
                self.copier_idle_seconds - quiet, self._close_idle_copier
            )
            return
        copier = self._copier
        if copier is not None and copier.stdin is not None:
            copier.stdin.close()

    def current(self, pid: str) -> str | None:
        hops = 0
        while pid in self.redirect:
            pid = self.redirect[pid]
            hops += 1
            if hops > 10_000:
                raise StoreUnavailable("redirect cycle in profiles")
        return pid if pid in self.members else None

    def kind_counts(self, pid: str) -> dict[str, int]:
        """How many identifiers of each kind the current profile `pid` holds."""
        cached = self._kind_counts.get(pid)
        if cached is not None:
            return dict(cached)
        keys = self.members[pid]
        counts = _count_kinds(keys)
        if len(keys) >= _COUNTS_KEPT_FROM:
            self._kind_counts[pid] = dict(counts)
        return counts

    def _apply_in_memory(self, c: ChangeSet) -> None:
        members = self.members
        profile_of = self.profile_of
        counted = self._kind_counts
        for pid, t in c.new_profiles:
            self.created[pid] = to_micros(t)
            members[pid] = set()
        for pid in c.restored_profiles:
            self.redirect.pop(pid, None)
            members.setdefault(pid, set())
            counted.pop(pid, None)
        for s in c.sightings:
            if s.new:
                profile_of[s.key] = s.profile_id
                members[s.profile_id].add(s.key)
                counts = counted.get(s.profile_id)
                if counts is not None:
                    kind = kind_of(s.key)
                    counts[kind] = counts.get(kind, 0) + 1
        for absorbed, survivor in c.reassign:
            gone = counted.pop(absorbed, None)
            kept = counted.get(survivor)
            if kept is not None:
                for kind, n in (gone or _count_kinds(members[absorbed])).items():
                    kept[kind] = kept.get(kind, 0) + n
            moved = members.pop(absorbed)
            for key in moved:
                profile_of[key] = survivor
            members[survivor] |= moved
            self.redirect[absorbed] = survivor
        for key, pid in c.assign.items():
            counted.pop(profile_of[key], None)
            counted.pop(pid, None)
            members[profile_of[key]].discard(key)
            profile_of[key] = pid
            members[pid].add(key)

    # --- reads ---------------------------------------------------------------------

    async def profile_ids(self, keys: Sequence[str]) -> dict[str, str]:
        self.round_trips += 1
        return {k: self.profile_of[k] for k in keys if k in self.profile_of}

    async def profile_ids_by_digest(self, digests: Sequence[str], *, kind: str) -> dict[str, str]:
        db = await self._fresh()
        found: dict[str, str] = {}
        for chunk in chunks(list(dict.fromkeys(digests))):
            for digest, key in db.execute(
                "SELECT digest, key FROM identifiers"
                f" WHERE digest IN ({qmarks(len(chunk))}) AND kind = ?",
                [*chunk, kind],
            ):
                if key in self.profile_of:
                    found[digest] = self.profile_of[key]
        return found

    async def identifier_keys(self, *, first: int, after: str | None) -> list[str]:
        db = await self._fresh()
        return [
            key
            for (key,) in db.execute(
                "SELECT key FROM identifiers WHERE key > ? ORDER BY key LIMIT ?",
                (after if after is not None else "", first),
            )
        ]

    async def resolve_profiles(self, ids: Sequence[str]) -> dict[str, str]:
        self.round_trips += 1
        resolved = {pid: self.current(pid) for pid in ids}
        return {pid: cur for pid, cur in resolved.items() if cur is not None}

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        rows = [
            (e.id, to_micros(e.at), e.principal, e.role, e.customer_id, dumps(list(e.fields)))
            for e in entries
        ]
        await self._write_rows(
            "INSERT INTO audit (id, at, principal, role, customer_id, fields)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    async def _write_rows(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Write rows of the tables the journal does not hold (audit, API keys)."""
        async with self._rows_lock:
            db = self._audit_db()
            self.round_trips += 1

            def run() -> int:
                db.execute("BEGIN IMMEDIATE")
                try:
                    changed = sum(db.execute(sql, row).rowcount for row in rows)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                return changed

            try:
                return await asyncio.to_thread(run)
            except sqlite3.Error as e:
                raise StoreUnavailable(f"embedded store write failed: {e}") from e

    async def audit_log(
        self, *, first: int, after: str | None, customer_id: str | None
    ) -> Page[AuditEntry]:
        db = self._read_audit()
        clauses: list[str] = []
        params: list[Any] = []
        if customer_id is not None:
            clauses.append("customer_id = ?")
            params.append(customer_id)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        total = int(db.execute(f"SELECT count(*) FROM audit{where}", params).fetchone()[0])
        if after is not None:
            found = db.execute("SELECT seq FROM audit WHERE id = ?", (after,)).fetchone()
            if found is None:
                raise InvalidOperation("malformed audit cursor")
            clauses.append("seq < ?")
            params.append(found[0])
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = db.execute(
            "SELECT seq, id, at, principal, role, customer_id, fields FROM audit"
            f"{where} ORDER BY seq DESC LIMIT ?",
            [*params, first + 1],
        ).fetchall()
        more = len(rows) > first
        rows = rows[:first]
        items = tuple(
            AuditEntry(eid, from_micros(at), principal, role, cid, tuple(loads(fields)))
            for _, eid, at, principal, role, cid, fields in rows
        )
        return Page(items, total, items[-1].id if more and items else None, more)

    async def put_api_key(self, key: ApiKey) -> None:
        await self._write_rows(
            "INSERT INTO api_keys (id, key_hash, role, name, created_at, revoked_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING",
            [
                (
                    key.id,
                    key.key_hash,
                    key.role,
                    key.name,
                    to_micros(key.created_at),
                    to_micros(key.revoked_at) if key.revoked_at else None,
                )
            ],
        )

    async def api_key(self, key_hash: str) -> ApiKey | None:
        row = (
            self._read_audit()
            .execute(
                "SELECT id, key_hash, role, name, created_at, revoked_at FROM api_keys"
                " WHERE key_hash = ?",
                (key_hash,),
            )
            .fetchone()
        )
        if row is None:
            return None
        kid, khash, role, name, created, revoked = row
        return ApiKey(
            kid, khash, role, name, from_micros(created), from_micros(revoked) if revoked else None
        )

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        changed = await self._write_rows(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            [(to_micros(at), key_id)],
        )
        return changed > 0


class _States(Mapping[str, ProfileState]):
    """The snapshot's profile states, made from memory on first use: most observations
    touch one profile and add nothing to it, and never need its state."""

    def __init__(self, store: EmbeddedStore, ids: set[str]) -> None:
        self._store = store
        self._ids = ids
        self._made: dict[str, ProfileState] = {}

    def __getitem__(self, pid: str) -> ProfileState:
        state = self._made.get(pid)
        if state is None:
            if pid not in self._ids:
                raise KeyError(pid)
            store = self._store
            state = ProfileState(pid, from_micros(store.created[pid]), store.kind_counts(pid))
            self._made[pid] = state
        return state

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class _EmbeddedTx(WriteTx):
    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self.pending: list[ChangeSet] = []

    async def snapshot(self, keys: Sequence[str], *, message_ids: Sequence[str]) -> Snapshot:
        store = self.store
        known = store.profile_of
        profile_of = {k: pid for k in keys if (pid := known.get(k)) is not None}
        profiles = _States(store, set(profile_of.values()))
        # pending writes first: once the copier dropped one, the tables hold it
        pending = store._pending_messages
        unique = list(dict.fromkeys(message_ids))
        seen = {m: pending[m] for m in unique if m in pending}
        rest = [m for m in unique if m not in seen]
        db = store._read()
        for chunk in chunks(rest, SQL_VARS // 2):
            marks = qmarks(len(chunk))
            # an event's message is known by its event row, any other by its own row
            seen.update(
                db.execute(
                    f"SELECT message_id, profile_id FROM messages WHERE message_id IN ({marks})"
                    " UNION ALL SELECT message_id, profile_id FROM events"
                    f" WHERE message_id IN ({marks}) AND profile_id IS NOT NULL",
                    [*chunk, *chunk],
                ).fetchall()
            )
        return Snapshot(profile_of, profiles, seen)

    async def profile_graph(self, profile_id: str) -> ProfileGraph | None:
        store = self.store
        if profile_id not in store.members:
            return None
        keys = sorted(store.members[profile_id])
        db = await store._fresh()
        members: list[Member] = []
        for chunk in chunks(keys, 400):
            members.extend(
                Member(key, from_micros(first))
                for key, first in db.execute(
                    f"SELECT key, first_seen FROM identifiers WHERE key IN ({qmarks(len(chunk))})",
                    chunk,
                )
            )
        links = links_from(db, keys)
        return ProfileGraph(
            profile_id, from_micros(store.created[profile_id]), tuple(members), tuple(links)
        )

    async def merge_record(self, merge_id: str) -> MergeRecord | None:
        db = await self.store._fresh()
        row = db.execute(
            "SELECT id, at, kind, survivor, absorbed, links, identifiers, message_id, undoes,"
            " undone_by FROM merges WHERE id = ?",
            (merge_id,),
        ).fetchone()
        return merge_from_row(row) if row else None

    async def resolve(self, profile_id: str) -> str | None:
        return self.store.current(profile_id)

    async def apply(self, changes: ChangeSet) -> None:
        self.pending.append(changes)
