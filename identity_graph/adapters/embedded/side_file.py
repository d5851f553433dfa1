"""A SQLite file of the data directory that the API process writes itself, never the copier
(`audit.sqlite3`, `audiences.sqlite3`): small writes that must not wait behind a copy
window's transaction.

One writer, used by one write at a time in a thread of its own (so the event loop never
waits on the disk), and readers in worker threads (`readers`). A write is either a
`transaction` of any number of statements, or one `statement` committed by itself: one call
into SQLite, where a transaction makes three or more, and its thread takes the interpreter
lock back from the event loop after each.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from identity_graph.adapters.embedded.journal import connect
from identity_graph.adapters.embedded.readers import Readers
from identity_graph.errors import StoreUnavailable

T = TypeVar("T")


async def uncancelled(work: Awaitable[T]) -> T:
    """`work`'s result. A thread cannot be stopped: if the caller is cancelled meanwhile,
    it still waits for the thread to end (then is cancelled), so that the lock it holds is
    not released, and the connection not closed, under a transaction still running."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break
        raise


class SideFile:
    """One such file: `open` it, `lookup` or `scan` in it, run a `transaction` on it,
    `close` it."""

    def __init__(self, what: str, *, round_trip: Callable[[], None]) -> None:
        """`what` names the file in errors; `round_trip` is called on each read and write
        (the store counts them)."""
        self.what = what
        self._round_trip = round_trip
        self._lock = asyncio.Lock()
        """held by each write, and by `close`"""
        self._writer: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        """the writer's thread"""
        self._reader: sqlite3.Connection | None = None
        self._readers: Readers | None = None

    def open(self, path: Path, create: Callable[[sqlite3.Connection], object]) -> None:
        """Open the file, `create` making its tables with the writer first."""
        self._writer = connect(path)
        create(self._writer)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"c360-{self.what}-writer")
        self._reader = connect(path)
        self._readers = Readers(path, what=self.what)

    async def close(self) -> None:
        """Close the file once no transaction is under way."""
        async with self._lock:
            if self._readers is not None:
                await self._readers.close()
                self._readers = None
            for conn in (self._writer, self._reader):
                if conn is not None:
                    conn.close()
            self._writer = self._reader = None
            if self._thread is not None:
                self._thread.shutdown(wait=False)  # idle: the lock is held
                self._thread = None

    def read(self) -> sqlite3.Connection:
        """The reader, for a short read on the event loop."""
        self._round_trip()
        if self._reader is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._reader

    async def lookup(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a reader thread: a short read (`Readers.lookup`)."""
        self._round_trip()
        return await self._open_readers().lookup(work)

    async def scan(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a reader thread of its own lane: a read that may take long."""
        self._round_trip()
        return await self._open_readers().scan(work)

    def _open_readers(self) -> Readers:
        if self._readers is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._readers

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one write transaction, in the writer's thread; a failure rolls it
        back and is a `StoreUnavailable`."""

        def run(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return result

        return await self._write(run)

    async def statement(self, sql: str, params: Sequence[Any]) -> int:
        """Run one statement as a transaction of its own (SQLite's autocommit: committed,
        and synced as every commit of this file, before it returns), in the writer's thread;
        return how many rows it changed. A failure is a `StoreUnavailable`."""
        return await self._write(lambda db: db.execute(sql, params).rowcount)

    async def _write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            db, thread = self._writer, self._thread
            if db is None or thread is None:
                raise StoreUnavailable("the embedded store is not open")
            self._round_trip()
            try:
                return await uncancelled(
                    asyncio.get_running_loop().run_in_executor(thread, run, db)
                )
            except sqlite3.Error as e:
                raise StoreUnavailable(f"embedded store {self.what} write failed: {e}") from e
