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
profile's identifiers) and each profile's consent state (`ConsentStates`, which a merge
joins), rebuilt from the tables at start. The links between identifiers
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
tables. A read waits only for the writes that touched the customers it reads (an erasure
touches everyone), so a bulk import stalls no read of a customer it does not touch. Its SQL
then runs in a worker thread (`readers`): lookups of customers and scans (listings, counts)
each have threads of their own, so the event loop never waits on SQLite and a slow listing
holds up no lookup.

Data is kept in rows per identifier (events, traits, consent) with `secure_delete` on, so
one person's data can be physically erased without rewriting anyone else's; the journal
holds a write only until it was copied. An erasure is a write like any (`erasure`): planned
under the write lock, journalled, copied, so a crash leaves it whole or not at all and a
restart finishes it. Its scope is read from the tables once they hold every write that
touched the person; the copier is waited for without the write lock, so ingest goes on. A
purge then has the copier delete the journal rows it copied and truncate the write-ahead
logs between two windows (`journal.purge_copied`), so no older image of a page is left in
any file; the store purges at start too. Retention deletes old rows directly, in batches
(`maintenance`).

The parts: `partition` (memory), `commit` (group commit and the rebuild after a failed
one), `backlog` (the writes not yet copied), `copier` (the copier process), `readers` (the
threads that read the tables), `records` (audit log and API keys), `erasure` and
`privacy_reads` (erasure's statements and reads), `maintenance` (purge and retention) and
`files` (the data directory: lock, recovery, compaction).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from identity_graph.adapters.embedded.audiences import EmbeddedAudiences
from identity_graph.adapters.embedded.backlog import Backlog
from identity_graph.adapters.embedded.commit import GroupCommit
from identity_graph.adapters.embedded.consent import ConsentStates
from identity_graph.adapters.embedded.copier import COPIER_IDLE_SECONDS, Copier
from identity_graph.adapters.embedded.fact_reads import FactReads
from identity_graph.adapters.embedded.files import (
    GC_THRESHOLDS,
    Compacted,
    compact,
    lock_data_dir,
    recover,
    tune_gc,
)
from identity_graph.adapters.embedded.journal import (
    JOURNAL_FILE,
    TABLES_FILE,
    connect,
    connect_journal,
    connect_tables_for_copy,
    purged_mark,
)
from identity_graph.adapters.embedded.maintenance import expire_rows, purge_files, truncate_audit
from identity_graph.adapters.embedded.partition import Partition
from identity_graph.adapters.embedded.privacy_reads import (
    inactive_profiles,
    read_receipt,
    read_scope,
    read_suppressions,
    suppression_hashes,
)
from identity_graph.adapters.embedded.readers import Readers
from identity_graph.adapters.embedded.reads import consents_of, links_from
from identity_graph.adapters.embedded.records import EmbeddedRecords
from identity_graph.adapters.embedded.sql import SQL_VARS, chunks, merge_from_row, qmarks
from identity_graph.codec import from_micros
from identity_graph.errors import InvalidOperation, StoreUnavailable
from identity_graph.model import MergeRecord, Page
from identity_graph.privacy import Cutoffs, ErasureReceipt, ErasureScope, Suppression
from identity_graph.records import AccessRecords
from identity_graph.store import (
    ChangeSet,
    IdentityStore,
    Member,
    ProfileGraph,
    Snapshot,
    WriteTx,
)

__all__ = ["GC_THRESHOLDS", "Compacted", "EmbeddedStore", "compact", "tune_gc"]

T = TypeVar("T")

READ_MMAP_BYTES = 2 << 30
"""how much of the tables file the reader maps (SQLite's own ceiling is just under 2 GB).
A lookup at 1.17M profiles reads a few pages no cache holds: through the memory map its
p99 was 0.11 ms, through `read()` calls 0.15-0.17 ms (0.09-0.10 ms at 10k profiles). The
pages it maps are the OS's file cache, clean and shared with it; they count in the
process's RSS as file pages (RssFile), up to the part of the file reads have touched."""


class EmbeddedStore(FactReads, IdentityStore):
    """The partition in process, durable through SQLite in `data_dir`. One process per data
    dir."""

    def __init__(
        self, data_dir: str | Path, *, copier_idle_seconds: float = COPIER_IDLE_SECONDS
    ) -> None:
        self.data_dir = Path(data_dir)
        self.partition = Partition()
        self.consent = ConsentStates()
        self._backlog = Backlog(owner=lambda key: self.partition.profile_of.get(key))
        self._copier = Copier(self.data_dir, self._backlog, idle_seconds=copier_idle_seconds)
        self._groups = GroupCommit(
            self._backlog, self._copier, apply=self._apply, reload=self._load
        )
        self.round_trips = 0
        self._records = EmbeddedRecords(round_trip=self._round_trip)
        self._audiences = EmbeddedAudiences(round_trip=self._round_trip)
        self._reader: sqlite3.Connection | None = None
        """for loading memory and for the reads of writes, on the event loop"""
        self._readers: Readers | None = None
        """for reads, in worker threads"""
        self._lock_file: int | None = None
        self._purges = 0
        """the number of the last purge request (`journal.PURGE`)"""
        self._suppressed: set[str] = set()
        """every suppression hash (message ids' too), as the tables will hold them"""
        self.may_suppress = False
        self.sole_writer = True  # the data directory is locked to this process

    # --- life cycle ----------------------------------------------------------------

    @property
    def records(self) -> AccessRecords:
        """API keys and the audit log, in this store's data directory."""
        return self._records

    @property
    def audiences(self) -> EmbeddedAudiences:
        """Computed traits, audiences and memberships, in this store's data directory."""
        return self._audiences

    @property
    def copier_idle_seconds(self) -> float:
        """With no write for this long, the copier is closed and gives its memory back."""
        return self._copier.idle_seconds

    @property
    def commits(self) -> int:
        """Journal transactions so far (a group of writes each)."""
        return self._groups.commits

    async def open(self) -> None:
        if self._reader is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = lock_data_dir(self.data_dir)
        try:
            self._open_files()
        except (sqlite3.Error, ValueError) as e:  # ValueError: a journal body it cannot read
            await self._close_files()
            raise StoreUnavailable(f"cannot open the embedded store in {self.data_dir}: {e}") from e

    def _open_files(self) -> None:
        journal = connect_journal(self.data_dir / JOURNAL_FILE)
        # what a crash left in the journal goes into the tables before anything is read
        try:
            with closing(connect_tables_for_copy(self.data_dir / TABLES_FILE)) as tables:
                copied = recover(journal, tables)
        except BaseException:
            journal.close()
            raise
        self._groups.open(journal, copied)
        self._backlog.start_at(copied)
        self._records.open(self.data_dir)
        self._audiences.open(self.data_dir)
        # an erasure a crash left unpurged (copied just now, or before the crash) is purged
        purge_files(self.data_dir)
        with closing(connect(self.data_dir / TABLES_FILE)) as tables:
            self._purges = purged_mark(tables)
        self._reader = connect(self.data_dir / TABLES_FILE)
        self._copier.open()
        self._load()
        # after the load's scans, so that only the pages reads touch are mapped
        self._reader.execute(f"PRAGMA mmap_size={READ_MMAP_BYTES}")
        self._readers = Readers(
            self.data_dir / TABLES_FILE,
            what="tables",
            setup=lambda db: db.execute(f"PRAGMA mmap_size={READ_MMAP_BYTES}"),
        )

    async def _close_files(self) -> None:
        await self._records.close()
        await self._audiences.close()
        self._groups.close()
        self._copier.close()
        if self._readers is not None:
            await self._readers.close()
            self._readers = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def _load(self) -> None:
        """Read the partition and the consent states from the tables."""
        db = self._read()
        self.partition.load(db)
        self.consent.load(db, self.partition.members)
        self._suppressed = suppression_hashes(db)
        self.may_suppress = bool(self._suppressed)

    def _apply(self, changes: ChangeSet) -> None:
        """Change memory as the change set changes the tables."""
        self.partition.apply(changes)
        self.consent.apply(changes, self.partition.members)
        if changes.unsuppress or changes.erasures:
            self._suppressed.difference_update(changes.unsuppress)
            for erasure in changes.erasures:
                self._suppressed.update(s.hash for s in erasure.suppressions)
            self.may_suppress = bool(self._suppressed)

    async def close(self) -> None:
        async with self._groups.lock:
            await self._groups.drain()
            await self._copier.finish(self._groups.durable)
            if self._reader is not None:
                self._copier.progress()
                self._groups.drop_copied(self._backlog.copied)
            await self._close_files()

    def _round_trip(self) -> None:
        self.round_trips += 1

    def _read(self) -> sqlite3.Connection:
        self._round_trip()
        if self._reader is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._reader

    async def _fresh(self, ids: Sequence[str] | None = None) -> sqlite3.Connection:
        """The reader, once the tables hold every write applied before this call that
        touched the profiles `ids` (None: any profile). A bulk import keeps the copier
        busy; reads of the customers it does not touch need not wait for it."""
        backlog = self._backlog
        await self._copier.caught_up(backlog.applied if ids is None else backlog.last_write_to(ids))
        return self._read()

    async def _lookup(
        self, ids: Sequence[str] | None, work: Callable[[sqlite3.Connection], T]
    ) -> T:
        """`work(db)` in a lookup thread, once the tables hold every write applied before
        this call that touched the profiles `ids` (None: any profile)."""
        await self._fresh(ids)
        return await self._open_readers().lookup(work)

    async def _scan(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a scan thread, once the tables hold every write applied before
        this call: a read that may take long holds up neither the event loop nor lookups."""
        await self._fresh()
        return await self._open_readers().scan(work)

    def _open_readers(self) -> Readers:
        if self._readers is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._readers

    def _copied_all_of(self, ids: Sequence[str]) -> bool:
        return self._backlog.copied_all_of(ids)

    async def ping(self) -> None:
        try:
            self._read().execute("SELECT 1").fetchone()
            self._copier.progress()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"embedded store failed: {e}") from e
        if self._backlog.pending:
            self._copier.start()  # restarts a copier that exited with work left

    async def settle(self) -> None:
        """Wait until the tables hold every applied write (the reads do it anyway;
        benchmarks and tests use it to time or watch the tables alone)."""
        await self._copier.caught_up(self._backlog.applied)

    # --- writes --------------------------------------------------------------------

    async def write(self, work: Callable[[WriteTx], Awaitable[T]]) -> T:
        groups = self._groups
        async with groups.lock:
            if self._reader is None:
                raise StoreUnavailable("the embedded store is not open")
            await groups.rebuild_if_failed()
            await self._copier.room()
            self._round_trip()
            tx = _EmbeddedTx(self)
            result = await work(tx)
            committed = await groups.add(tx.pending)
        if committed is not None:
            await groups.acknowledged(committed)
        return result

    # --- reads ---------------------------------------------------------------------

    async def profile_ids(self, keys: Sequence[str]) -> dict[str, str]:
        self._round_trip()
        profile_of = self.partition.profile_of
        return {k: profile_of[k] for k in keys if k in profile_of}

    async def profile_ids_by_digest(self, digests: Sequence[str], *, kind: str) -> dict[str, str]:
        def read(db: sqlite3.Connection) -> list[tuple[str, str]]:
            rows: list[tuple[str, str]] = []
            for chunk in chunks(list(dict.fromkeys(digests))):
                rows.extend(
                    db.execute(
                        "SELECT digest, key FROM identifiers"
                        f" WHERE digest IN ({qmarks(len(chunk))}) AND kind = ?",
                        [*chunk, kind],
                    )
                )
            return rows

        rows = await self._lookup(None, read)
        profile_of = self.partition.profile_of
        return {digest: profile_of[key] for digest, key in rows if key in profile_of}

    async def identifier_keys(self, *, first: int, after: str | None) -> list[str]:
        def read(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT key FROM identifiers WHERE key > ? ORDER BY key LIMIT ?",
                (after if after is not None else "", first),
            )
            return [key for (key,) in rows]

        return await self._scan(read)

    async def resolve_profiles(self, ids: Sequence[str]) -> dict[str, str]:
        self._round_trip()
        resolved = {pid: self.partition.current(pid) for pid in ids}
        return {pid: cur for pid, cur in resolved.items() if cur is not None}

    # --- privacy -------------------------------------------------------------------

    async def purge(self) -> None:
        """Once the tables hold every erasure applied, delete the journal rows they hold
        and truncate the write-ahead logs of the journal and the tables (the copier does
        it, between two windows: `journal.purge_copied`) and of the audit file."""
        await self._copier.caught_up(self._backlog.last_erasure)
        self._purges += 1
        try:
            if await self._copier.purged(self._purges):
                await asyncio.to_thread(truncate_audit, self.data_dir)
            else:
                await asyncio.to_thread(purge_files, self.data_dir)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"embedded store purge failed: {e}") from e

    async def erasure(self, id: str) -> ErasureReceipt | None:
        pending = self._backlog.receipts.get(id)
        if pending is not None:
            return pending[1]
        return read_receipt(self._read(), id)

    async def suppressions(self, *, first: int, after: str | None) -> Page[Suppression]:
        found = await self._scan(lambda db: read_suppressions(db, first=first, after=after))
        if found is None:
            raise InvalidOperation("malformed suppression cursor")
        items, total, more = found
        return Page(tuple(items), total, items[-1].hash if more and items else None, more)

    async def inactive_profiles(
        self, *, before: datetime, first: int, after: str | None
    ) -> list[str]:
        backlog = self._backlog
        while True:
            found = await self._scan(
                partial(inactive_profiles, before=before, first=first, after=after)
            )
            # a profile written since is not inactive
            kept = [
                pid
                for pid in found
                if pid in self.partition.members and backlog.last_touch([pid]) <= backlog.copied
            ]
            if kept or len(found) < first:
                return kept
            after = found[-1]

    async def expire(self, cutoffs: Cutoffs, *, batch: int) -> dict[str, int]:
        await self._copier.caught_up(self._backlog.applied)  # what was written before, too
        try:
            return await asyncio.to_thread(expire_rows, self.data_dir, cutoffs, batch)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"embedded store retention failed: {e}") from e

    async def _settled(self, profile_id: str, *, may_release: bool) -> str | None:
        """The current profile `profile_id` names, once the tables hold every write that
        touched it (called with the write lock, by an erasure that read nothing yet). The
        copier is waited for without the lock, so that ingest goes on meanwhile, unless
        `may_release` is False or writes touched the person again `SETTLE_TRIES` times."""
        lock = self._groups.lock
        for tries in range(SETTLE_TRIES, -1, -1):
            current = self.partition.current(profile_id)
            if current is None:
                return None
            last = self._backlog.last_touch([current])
            if last <= self._backlog.copied:
                return current
            if not may_release or not tries:
                await self._copier.caught_up(last)
                return current
            lock.release()
            try:
                await self._copier.caught_up(last)
            finally:
                await _reacquire(lock)
            self._read()  # the store may have closed meanwhile
        raise AssertionError("unreachable")


SETTLE_TRIES = 3
"""times an erasure waits for the copier without the write lock before it waits with it"""


async def _reacquire(lock: asyncio.Lock) -> None:
    """Take `lock` again, even if cancelled meanwhile (the cancellation is raised once it
    is held): the caller's `async with` releases it."""
    cancelled = False
    while True:
        try:
            await lock.acquire()
        except asyncio.CancelledError:
            cancelled = True
            continue
        break
    if cancelled:
        raise asyncio.CancelledError


class _EmbeddedTx(WriteTx):
    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self.pending: list[ChangeSet] = []

    async def snapshot(self, keys: Sequence[str], *, message_ids: Sequence[str]) -> Snapshot:
        store = self.store
        partition = store.partition
        known = partition.profile_of
        profile_of = {k: pid for k in keys if (pid := known.get(k)) is not None}
        profiles = store.consent.states(partition.states(set(profile_of.values())))
        # pending writes first: once the copier dropped one, the tables hold it
        pending = store._backlog.messages
        unique = list(dict.fromkeys(message_ids))
        found = {m: pending[m] for m in unique if m in pending}
        rest = [m for m in unique if m not in found]
        db = store._read()
        for chunk in chunks(rest, SQL_VARS // 2):
            marks = qmarks(len(chunk))
            # an event's message is known by its event row, any other by its own row
            found.update(
                db.execute(
                    f"SELECT message_id, profile_id FROM messages WHERE message_id IN ({marks})"
                    " UNION ALL SELECT message_id, profile_id FROM events"
                    f" WHERE message_id IN ({marks}) AND profile_id IS NOT NULL",
                    [*chunk, *chunk],
                ).fetchall()
            )
        # the messages of an erased person (their rows stay until the copier deletes them)
        # are not seen any more
        seen = {m: pid for m, pid in found.items() if partition.current(pid) is not None}
        return Snapshot(profile_of, profiles, seen)

    async def profile_graph(self, profile_id: str) -> ProfileGraph | None:
        store = self.store
        partition = store.partition
        if profile_id not in partition.members:
            return None
        keys = sorted(partition.members[profile_id])
        created = from_micros(partition.created[profile_id])

        def read(db: sqlite3.Connection) -> ProfileGraph:
            members: list[Member] = []
            for chunk in chunks(keys, 400):
                members.extend(
                    Member(key, from_micros(first))
                    for key, first in db.execute(
                        "SELECT key, first_seen FROM identifiers"
                        f" WHERE key IN ({qmarks(len(chunk))})",
                        chunk,
                    )
                )
            return ProfileGraph(
                profile_id,
                created,
                tuple(members),
                tuple(links_from(db, keys)),
                tuple(consents_of(db, keys)),
            )

        # what it reads (identifiers, links, consent) only writes touching the profile change
        return await store._lookup([profile_id], read)

    async def merge_record(self, merge_id: str) -> MergeRecord | None:
        row = await self.store._lookup(
            None,
            lambda db: db.execute(
                "SELECT id, at, kind, survivor, absorbed, links, identifiers, message_id,"
                " undoes, undone_by FROM merges WHERE id = ?",
                (merge_id,),
            ).fetchone(),
        )
        return merge_from_row(row) if row else None

    async def resolve(self, profile_id: str) -> str | None:
        return self.store.partition.current(profile_id)

    async def erasure_scope(self, profile_id: str) -> ErasureScope | None:
        store = self.store
        if profile_id not in store.partition.members:
            return None
        # a merge while the copier was waited for makes the person the profile it joined
        current = await store._settled(profile_id, may_release=not self.pending)
        if current is None:
            return None
        return read_scope(store._read(), store.partition, current)

    async def suppressed(self, hashes: Sequence[str]) -> set[str]:
        held = self.store._suppressed
        return {h for h in hashes if h in held}

    async def apply(self, changes: ChangeSet) -> None:
        self.pending.append(changes)
