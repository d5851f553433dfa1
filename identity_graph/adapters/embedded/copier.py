"""The copier process's life, seen from the store: start it, wake it, watch its progress,
wait for it, close it when idle or when the store closes.

The copier itself is `journal.main`, run as `python -m identity_graph.adapters.embedded.journal
DATA_DIR`; it copies journalled writes into the tables and moves the tables' mark, which
this side reads to know which writes reads need no longer wait for.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import identity_graph
from identity_graph.adapters.embedded.backlog import Backlog
from identity_graph.adapters.embedded.journal import (
    PURGE,
    TABLES_FILE,
    WAITING,
    WROTE,
    connect,
    copied_mark,
    purged_mark,
)
from identity_graph.errors import StoreUnavailable

STALL_SECONDS = 60.0
"""how long a read or write waits for a copier that makes no progress before failing"""
COPIER_IDLE_SECONDS = 10.0
"""a copier with no write for this long is closed (it copies what is left, then exits)"""


class Copier:
    """The store's copier process (one at a time, started on demand) and its mark."""

    def __init__(self, data_dir: Path, backlog: Backlog, *, idle_seconds: float) -> None:
        self._data_dir = data_dir
        self._backlog = backlog
        self.idle_seconds = idle_seconds
        """with no write for this long, the copier is closed and gives its memory back"""
        self.process: subprocess.Popen[bytes] | None = None
        self._marks: sqlite3.Connection | None = None
        """reads the copier's mark, nothing else"""
        self._last_write = 0.0
        self._idle_check: asyncio.TimerHandle | None = None
        self._closing = False
        """the store is closing: no copier is started any more"""

    def open(self) -> None:
        """Open the connection that reads the mark; copiers may start from now on."""
        self._closing = False
        self._marks = connect(self._data_dir / TABLES_FILE)

    def close(self) -> None:
        """Close the connection that reads the mark (after `stop`)."""
        if self._marks is not None:
            self._marks.close()
            self._marks = None

    def start(self) -> None:
        """Start the copier process unless one runs with its input open (a copier whose
        input was closed copies what it finds, then exits: a later write needs another),
        and unless the store is closing (a read waiting meanwhile would leave one running)."""
        if self._closing:
            return
        old = self.process
        if old is not None:
            if old.poll() is None and old.stdin is not None and not old.stdin.closed:
                return
            if old.stdin is not None:
                old.stdin.close()
        root = str(Path(identity_graph.__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "identity_graph.adapters.embedded.journal", str(self._data_dir)],
            stdin=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None
        os.set_blocking(self.process.stdin.fileno(), False)

    def wake(self, said: bytes = WROTE) -> None:
        """Tell the copier of a write (`WROTE`) or of a read waiting for it (`WAITING`)."""
        copier = self.process
        if copier is None or copier.stdin is None or copier.stdin.closed:
            return
        try:
            os.write(copier.stdin.fileno(), said)
        except (BlockingIOError, BrokenPipeError):
            pass  # it has wake-ups queued already, or it exited and is restarted on demand

    def wrote(self) -> None:
        """Note a write, so that the copier is closed only once writes stop."""
        self._last_write = time.monotonic()
        if self._idle_check is None:
            self._idle_check = asyncio.get_running_loop().call_later(
                self.idle_seconds, self._close_if_idle
            )

    def _close_if_idle(self) -> None:
        """Close the copier's input once no write came for `idle_seconds`: it copies what
        is left and exits, giving its page cache back. This leaves no write uncopied: a
        group committed after it (the last write's, if its commit took that long) starts
        another copier, as the next write's does."""
        self._idle_check = None
        quiet = time.monotonic() - self._last_write
        if quiet < self.idle_seconds:
            self._idle_check = asyncio.get_running_loop().call_later(
                self.idle_seconds - quiet, self._close_if_idle
            )
            return
        copier = self.process
        if copier is not None and copier.stdin is not None:
            copier.stdin.close()

    async def finish(self, seq: int) -> None:
        """Give the copier a stall's time to copy up to write `seq`, then stop it."""
        wait = STALL_SECONDS
        if self._marks is not None and self.process is not None:
            try:
                await self.caught_up(seq)
            except StoreUnavailable:
                wait = 0.0  # it made no progress for a whole stall: a restart copies the rest
        await self.stop(wait)

    async def stop(self, wait: float = STALL_SECONDS) -> None:
        """Close the copier's input and give it `wait` seconds to finish, then kill it; no
        copier starts after this (the store is closing)."""
        self._closing = True
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None
        copier, self.process = self.process, None
        if copier is None:
            return
        if copier.stdin is not None:
            copier.stdin.close()
        try:
            await asyncio.to_thread(copier.wait, wait)
        except subprocess.TimeoutExpired:
            copier.kill()
            await asyncio.to_thread(copier.wait)

    def progress(self) -> None:
        """Read how far the copier got, and forget the pending writes it copied."""
        if self._marks is None:
            raise StoreUnavailable("the embedded store is not open")
        self._backlog.copied_to(copied_mark(self._marks))

    async def caught_up(self, seq: int) -> None:
        """Wait until the tables hold write `seq`, or, if the journal failed to hold it,
        every write it does hold."""
        backlog = self._backlog
        if backlog.copied < seq:
            await self._wait(lambda: backlog.copied >= min(seq, backlog.applied))

    async def purged(self, request: int) -> bool:
        """Have the copier run `journal.purge_copied` for purge request number `request`
        (higher than any before), and wait for it; False if no copier runs (the store is
        closing, or none could start): then nothing writes the journal or the tables but
        the store itself."""
        if self._marks is None:
            raise StoreUnavailable("the embedded store is not open")
        marks = self._marks
        delay = 0.0005
        since = time.monotonic()
        while True:
            try:
                if purged_mark(marks) >= request:
                    return True
            except sqlite3.Error as e:
                raise StoreUnavailable(f"embedded store read failed: {e}") from e
            self.start()
            copier = self.process
            if copier is None or copier.poll() is not None:
                return False
            self.wake(PURGE % request)
            if time.monotonic() - since > STALL_SECONDS:
                raise StoreUnavailable("the embedded store's journal copier does not purge")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def room(self) -> None:
        """Wait while the backlog of uncopied observations is full."""
        if self._backlog.full():
            await self._wait(lambda: not self._backlog.full())

    async def _wait(self, done: Callable[[], bool]) -> None:
        """Wait until `done()`, polling the copier's mark; fail if it stalls."""
        delay = 0.0005
        stalled_since = time.monotonic()
        last = self._backlog.copied
        while True:
            try:
                self.progress()
            except sqlite3.Error as e:
                raise StoreUnavailable(f"embedded store read failed: {e}") from e
            if done():
                return
            if self._backlog.copied != last:
                last, stalled_since, delay = self._backlog.copied, time.monotonic(), 0.0005
            elif time.monotonic() - stalled_since > STALL_SECONDS:
                raise StoreUnavailable("the embedded store's journal copier makes no progress")
            self.start()
            self.wake(WAITING)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
