"""Group commit: the journal rows of writes applied in memory commit together, in one
transaction and one fsync; a failed commit fails its writes and every write planned on
them, and memory is rebuilt from what the journal and tables hold.

A write is planned and applied in memory at once, under the write lock, and its row joins
the group the journal commits next, while later writes are planned against it. After a
failed commit, until one succeeds, each write is journalled alone before memory takes it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from identity_graph.adapters.embedded.backlog import Backlog
from identity_graph.adapters.embedded.copier import Copier
from identity_graph.adapters.embedded.journal import encode
from identity_graph.adapters.embedded.sql import change_rows
from identity_graph.errors import StoreUnavailable
from identity_graph.store import ChangeSet


@dataclass(slots=True)
class _Group:
    """Writes applied in memory whose journal rows commit in one transaction."""

    rows: list[tuple[int, bytes]]
    """(sequence number, body) of each write"""
    committed: asyncio.Future[None]
    """done once the rows are in the journal; the writes are acknowledged then"""


class GroupCommit:
    """The write lock, and the journal's groups of writes."""

    def __init__(
        self,
        backlog: Backlog,
        copier: Copier,
        *,
        apply: Callable[[ChangeSet], None],
        reload: Callable[[], None],
    ) -> None:
        """`apply` changes memory by a change set; `reload` rebuilds memory from the
        tables."""
        self._backlog = backlog
        self._copier = copier
        self._apply = apply
        self._reload = reload
        self.lock = asyncio.Lock()
        """the write lock: held while a write is planned and applied in memory"""
        self.journal: sqlite3.Connection | None = None
        self.durable = 0
        """sequence number of the last write in the journal"""
        self.commits = 0
        """journal transactions so far (a group of writes each)"""
        self.group: _Group | None = None
        """the writes applied in memory whose journal rows wait for the next commit"""
        self._committing: _Group | None = None
        """the group being committed"""
        self._flusher: asyncio.Task[None] | None = None
        """commits the groups, one after another, while there are any"""
        self._failed: Exception | None = None
        """why the journal last failed, until memory is rebuilt from what it holds"""
        self.rebuilding: asyncio.Task[None] | None = None
        self._careful = False
        """after a failed commit, until one succeeds: journal each write before applying it"""

    def open(self, journal: sqlite3.Connection, seq: int) -> None:
        """Use `journal`, which holds no write after `seq`."""
        self.journal = journal
        self.durable = seq

    def drop_copied(self, copied: int) -> None:
        """Drop the journal rows up to `copied`: the journal keeps a write only until it is
        in the tables."""
        if self.journal is not None:
            self.journal.execute("DELETE FROM journal WHERE seq <= ?", (copied,))

    def close(self) -> None:
        """Close the journal (after `drop_copied`)."""
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    async def drain(self) -> None:
        """Wait until every group is committed (with the write lock)."""
        while self.group is not None or (self._flusher is not None and not self._flusher.done()):
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.ensure_future(self._flush())
            await asyncio.wait([self._flusher])

    async def rebuild_if_failed(self) -> None:
        """After a failed commit, rebuild memory before the next write (with the write lock)."""
        if self._failed is not None:
            await self._rebuild_memory()

    async def add(self, batches: list[ChangeSet]) -> asyncio.Future[None] | None:
        """Take a write just planned (with the write lock): the commit to acknowledge it
        after, or None if it needs none."""
        if self._failed is not None:  # the journal failed while this write was planned
            raise StoreUnavailable(f"embedded store write failed: {self._failed}")
        if batches and self._careful:
            await self._journal_then_apply(batches)
            return None
        if batches:
            return self._apply_and_queue(batches)
        # what it found (a message seen before, say) must be in the journal too
        latest = self.group or self._committing
        return None if latest is None else latest.committed

    @staticmethod
    async def acknowledged(committed: asyncio.Future[None]) -> None:
        """Wait for a write's group commit (without the write lock)."""
        try:
            # a cancelled caller's write still commits: it is in memory and in the group
            await asyncio.shield(committed)
        except Exception as e:  # noqa: BLE001 - whatever failed the commit fails the write
            raise StoreUnavailable(f"embedded store write failed: {e}") from e

    def append(self, rows: list[tuple[int, bytes]], copied: int) -> None:
        """Add a group of writes to the journal in one transaction, dropping the rows
        already copied (in a worker thread)."""
        db = self.journal
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

    def _apply_and_queue(self, batches: list[ChangeSet]) -> asyncio.Future[None]:
        """Apply a write in memory and add its journal row to the next group; return the
        group's commit, which the write is acknowledged after."""
        seq, _ = row = self._journal_row(batches)
        self._applied(seq, batches)
        group = self.group
        if group is None:
            group = self.group = _Group([], asyncio.get_running_loop().create_future())
        group.rows.append(row)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return group.committed

    def _journal_row(self, batches: list[ChangeSet]) -> tuple[int, bytes]:
        """The next write's sequence number, and its journal body: every row it adds."""
        return self._backlog.applied + 1, encode([change_rows(c) for c in batches])

    def _applied(self, seq: int, batches: list[ChangeSet]) -> None:
        """Apply a write in memory, and count it for the copier."""
        self._backlog.add(seq, batches)  # first: it reads who held an identifier before
        for changes in batches:
            self._apply(changes)
        self._copier.wrote()

    async def _flush(self) -> None:
        """Commit the groups, each in one transaction, until none is left."""
        while self.group is not None:
            group = self._committing = self.group
            self.group = None
            try:
                await asyncio.to_thread(self.append, group.rows, self._backlog.copied)
            except Exception as e:  # noqa: BLE001 - memory holds what the journal does not
                self._journal_failed(group, e)
                return
            finally:
                self._committing = None
            group.committed.set_result(None)
            self._journalled(group.rows[-1][0])

    def _journalled(self, seq: int) -> None:
        """The journal holds the writes up to `seq`: hand them to the copier."""
        self.durable = seq
        self.commits += 1
        self._careful = False
        try:
            self._copier.start()
        except OSError:
            pass  # no process to spare now: a read that needs the copier starts it
        self._copier.wake()

    async def _journal_then_apply(self, batches: list[ChangeSet]) -> None:
        """Journal a write alone and only then apply it in memory (with the write lock), as
        writes are after a failed commit until one succeeds: a journal that keeps failing (a
        full disk) then fails each write and leaves memory alone, instead of making memory
        be rebuilt after each."""
        seq, _ = row = self._journal_row(batches)
        commit = asyncio.ensure_future(asyncio.to_thread(self.append, [row], self._backlog.copied))
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
        self._backlog.undo_after(self.durable)
        failed = [group] if self.group is None else [group, self.group]
        self.group = None
        for each in failed:
            each.committed.set_exception(error)
            each.committed.exception()  # a cancelled writer's is not retrieved otherwise
        self.rebuilding = asyncio.ensure_future(self._rebuild_after_failure())

    async def _rebuild_after_failure(self) -> None:
        async with self.lock:
            if self._failed is not None and self.journal is not None:
                try:
                    await self._rebuild_memory()
                except StoreUnavailable:
                    pass  # the next write tries again, and fails with the reason

    async def _rebuild_memory(self) -> None:
        """Drop from memory the writes the journal failed to hold (with the write lock):
        once the tables hold every journalled write, rebuild memory from them. Until that
        succeeds, memory stays as it was and writes fail."""
        await self._copier.caught_up(self.durable)
        try:
            self._reload()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot rebuild the embedded store's memory: {e}") from e
        self._failed = None
