"""Reads of a SQLite file in worker threads, so that the event loop never waits on SQLite and
a slow read holds up no other.

A read is a function of one connection, run whole in one thread (one hop per read, however
many statements it runs). Each thread opens its own connection the first time it reads, so a
connection is only ever used by the thread that opened it; WAL lets them all read at once,
beside the copier's writes. Reads go in one of two lanes with threads of their own: lookups
(what one request reads of a few customers) and scans (listings, counts, exports), so that
however many slow scans run, a lookup waits for none of them. Scans also leave the CPU to
the rest: they have at most half the cores' worth of threads, and those run at a lower
priority (a higher nice value), so that a scan takes what the event loop and the lookups
leave. (Measured with bench/read_isolation.py on 2 cores, two slow listings running
beside lookups raised the lookups' p99 3.8x with two scan threads at normal priority.)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from identity_graph.adapters.embedded.journal import connect
from identity_graph.errors import StoreUnavailable

T = TypeVar("T")

LOOKUP_THREADS = 4
"""threads (and connections) reading customers: a read of one customer holds one for a
fraction of a millisecond, so a few serve many concurrent requests"""
SCAN_THREADS = max(1, (os.cpu_count() or 2) // 2)
"""threads (and connections) for listings, counts and exports"""
SCAN_NICENESS = 10
"""how much lower than the process's the priority of scan threads is"""


def _lower_priority(niceness: int) -> None:
    """Make the calling thread yield the CPU to the process's other threads (Linux: a nice
    value is per thread). Not knowing how, it runs at the process's priority."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except (AttributeError, OSError):
        pass


class _Lane:
    """Threads that read one file, each through a connection of its own."""

    def __init__(
        self,
        path: Path,
        threads: int,
        name: str,
        setup: Callable[[sqlite3.Connection], object],
        *,
        niceness: int = 0,
    ) -> None:
        self._path = path
        self._setup = setup
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            threads,
            thread_name_prefix=name,
            initializer=partial(_lower_priority, niceness) if niceness else None,
        )

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = connect(self._path)
            db.execute("PRAGMA query_only=ON")
            self._setup(db)
            with self._opened_lock:
                self._opened.append(db)
            self._local.db = db
        return work(db)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, work)

    def close(self) -> None:
        """Wait for the reads under way, then close every connection."""
        self._executor.shutdown(wait=True)
        with self._opened_lock:
            for db in self._opened:
                db.close()
            self._opened.clear()


class Readers:
    """The two lanes of reads of one file: `lookup` and `scan`. Open until `close`."""

    def __init__(
        self,
        path: Path,
        *,
        what: str,
        setup: Callable[[sqlite3.Connection], object] = lambda db: None,
    ) -> None:
        """`what` names the file in errors and threads; `setup` runs on each new
        connection (in its thread)."""
        self.what = what
        self._lookups: _Lane | None = _Lane(path, LOOKUP_THREADS, f"c360-{what}-lookup", setup)
        self._scans: _Lane | None = _Lane(
            path, SCAN_THREADS, f"c360-{what}-scan", setup, niceness=SCAN_NICENESS
        )

    async def lookup(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a lookup thread: a read of a few customers."""
        return await self._in(self._lookups, work)

    async def scan(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a scan thread: a read that may take long (a listing, a count)."""
        return await self._in(self._scans, work)

    async def _in(self, lane: _Lane | None, work: Callable[[sqlite3.Connection], T]) -> T:
        if lane is None:
            raise StoreUnavailable("the embedded store is not open")
        try:
            return await lane.run(work)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"embedded store {self.what} read failed: {e}") from e
        except RuntimeError as e:  # its executor was shut down: the store closed meanwhile
            if self._lookups is None:
                raise StoreUnavailable("the embedded store is not open") from e
            raise

    async def close(self) -> None:
        """Wait for the reads under way (in a thread: the event loop goes on meanwhile),
        then close the connections; later reads fail with `StoreUnavailable`."""
        lanes = [lane for lane in (self._lookups, self._scans) if lane is not None]
        self._lookups = self._scans = None
        for lane in lanes:
            await asyncio.to_thread(lane.close)
