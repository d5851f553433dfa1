"""The embedded store's journal: recovery from the journal alone, copiers that copy each
journal row once, backpressure, a copier that makes no progress, the copier's life, and
audit writes that never wait for a copy.

Run as a script, this file is a writer: `python tests/test_embedded_journal.py MODE DATA_DIR`
ingests `stream()` into DATA_DIR in batches of `BATCH`, prints each message id once `ingest`
returned, then prints one JSON line and waits on its standard input to be killed. MODE is
`uncopied` (the copier never starts: the JSON holds the partition in memory and the last
sequence number) or `copied` (the copier runs: the JSON holds the copier's process id).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gated import GatedStore
from streams import Partition, check_invariants, observe, partition

from identity_graph.adapters.embedded import backlog as embedded_backlog
from identity_graph.adapters.embedded import copier as embedded_copier
from identity_graph.adapters.embedded import journal as embedded_journal
from identity_graph.adapters.embedded.journal import JOURNAL_FILE, MAX_COPY_DELAY, TABLES_FILE
from identity_graph.adapters.embedded.sql import STATEMENTS, Rows
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.errors import StoreUnavailable
from identity_graph.model import Observation
from identity_graph.records import ApiKey, AuditEntry
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = 15
BATCH = 3


def stream(count: int = 90) -> list[Observation]:
    """`count` messages about `PEOPLE` people, never breaking a limit. Each person is seen
    as an anonymous id alone, then with their email, then with email and user id, then the
    first anonymous id with the user id (a merge of two profiles). Every message sets a
    trait; every other one is a track call."""
    out = []
    for n in range(count):
        p = n % PEOPLE
        shape = (n // PEOPLE) % 4
        keys = [
            [f"anonymous_id:a{p}-0"],
            [f"anonymous_id:a{p}-1", f"email:p{p}@x.io"],
            [f"anonymous_id:a{p}-2", f"email:p{p}@x.io", f"user_id:u{p}"],
            [f"anonymous_id:a{p}-0", f"user_id:u{p}"],
        ][shape]
        event = f"E{n}" if n % 2 == 0 else None
        out.append(observe(f"m{n}", *keys, t=n, event=event, traits={"n": n}))
    return out


def batches(observations: list[Observation], size: int = BATCH) -> list[list[Observation]]:
    return [observations[i : i + size] for i in range(0, len(observations), size)]


# --- reading the files directly, beside the store ----------------------------------


def sql(path: Path, query: str) -> list[Any]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


def journal_seqs(data_dir: Path) -> list[int]:
    return [seq for (seq,) in sql(data_dir / JOURNAL_FILE, "SELECT seq FROM journal ORDER BY seq")]


def mark(data_dir: Path) -> int:
    rows = sql(data_dir / TABLES_FILE, "SELECT value FROM meta WHERE key = 'copied'")
    return int(rows[0][0]) if rows else 0


def table_rows(data_dir: Path, table: str) -> int:
    return int(sql(data_dir / TABLES_FILE, f"SELECT count(*) FROM {table}")[0][0])


COUNTED = ("traits", "events", "messages")
TABLE_OF = {
    i: m.group(1)
    for i, s in enumerate(STATEMENTS)
    if (m := re.match(r"INSERT (?:OR IGNORE )?INTO (\w+) ", s)) and m.group(1) in COUNTED
}


def journalled_rows(data_dir: Path) -> Counter[str]:
    """How many rows the journal holds for each of the `COUNTED` tables."""
    counts: Counter[str] = Counter()
    for (body,) in sql(data_dir / JOURNAL_FILE, "SELECT body FROM journal"):
        change_sets: list[Rows] = embedded_journal.decode(body)
        for rows in change_sets:
            for index, params in rows:
                if index in TABLE_OF:
                    counts[TABLE_OF[index]] += len(params)
    return counts


# --- processes -----------------------------------------------------------------------


def parent_of(pid: int) -> int | None:
    """The parent of a process that has not exited, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return None if state in ("Z", "X") else int(ppid)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` and that have not exited."""
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and parent_of(int(p.name)) == pid
    ]


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while parent_of(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture(autouse=True)
def no_copier_left() -> Iterator[None]:
    """Every test ends every process it (or a store it opened) started."""
    before = set(children(os.getpid()))
    yield
    left = set(children(os.getpid())) - before
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running: {sorted(left)}"


class Writer:
    """This file run as a writer in a subprocess, its output read up to the JSON line."""

    def __init__(self, mode: str, data_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, mode, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.acked: list[str] = []
        self.state: dict[str, Any] = {}
        try:
            for line in self.proc.stdout:
                if line.startswith("{"):
                    self.state = json.loads(line)
                    break
                self.acked.append(line.strip())
            assert self.state, "the writer exited before it wrote everything"
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            assert pipe is not None
            pipe.close()
        assert self.proc.returncode == -signal.SIGKILL


async def write(mode: str, data_dir: Path) -> None:
    store = GatedStore(data_dir)
    store.copier_allowed = mode == "copied"
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    for batch in batches(stream()):
        await graph.ingest(batch)
        for obs in batch:
            print(obs.message_id, flush=True)
    if mode == "uncopied":
        assert store._copier.process is None
        members = {pid: sorted(keys) for pid, keys in store.partition.members.items()}
        print(json.dumps({"partition": members, "seq": store._backlog.applied}), flush=True)
    else:
        assert store._copier.process is not None
        print(json.dumps({"copier": store._copier.process.pid}), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until killed


# --- 1. recovery from the journal alone ---------------------------------------------


async def check_everything_readable(
    store: EmbeddedStore, observations: list[Observation], part: Partition
) -> None:
    """The store holds exactly `observations`: their traits and events, each once, and
    every message id known (ingesting them again changes nothing)."""
    await check_invariants(store, Rules.default(), part)
    traits = await store.traits(list(part))
    rows = [t for values in traits.values() for t in values]
    by_message = {t.message_id: t.value for t in rows if t.name == "n"}
    assert by_message == {o.message_id: o.traits["n"] for o in observations}
    assert len(rows) == len({(t.message_id, t.identifier_key, t.name) for t in rows})
    pages = await store.events(list(part), first=10_000, after=None, types=None)
    events = [e.message_id for page in pages.values() for e in page.items]
    assert sorted(events) == sorted(o.message_id for o in observations if o.event is not None)
    outcomes = await IdentityGraph(store, Rules.default()).ingest(observations)
    assert {o.status for o in outcomes} == {"duplicate"}


async def test_journalled_writes_survive_a_crash_that_also_kills_the_copier(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    writer = Writer("uncopied", data_dir)
    writer.kill()
    observations = stream()
    assert writer.acked == [o.message_id for o in observations]
    before: Partition = {pid: frozenset(keys) for pid, keys in writer.state["partition"].items()}
    last = writer.state["seq"]
    assert last == len(batches(observations))
    # the premise: every write is in the journal and none in the tables
    assert journal_seqs(data_dir) == list(range(1, last + 1))
    assert mark(data_dir) == 0 and table_rows(data_dir, "messages") == 0
    # an event's message is recorded by its event row, any other by a row of `messages`
    journalled = journalled_rows(data_dir)
    assert journalled["messages"] + journalled["events"] == len(observations)

    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        assert journal_seqs(data_dir) == []
        assert mark(data_dir) == last
        part = await partition(store)
        assert part == before
        assert len(part) == PEOPLE, "each person's two profiles were merged"
        await check_everything_readable(store, observations, part)
    finally:
        await store.close()


# --- 2. two copiers copy each journal row once ---------------------------------------


async def fill_journal(data_dir: Path, observations: list[Observation]) -> Partition:
    """Ingest one observation per write with no copier, and close: the journal holds them
    all, the tables none. Return the partition in memory."""
    store = GatedStore(data_dir)
    store.copier_allowed = False
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    for obs in observations:
        await graph.ingest([obs])
    part = {pid: frozenset(keys) for pid, keys in store.partition.members.items()}
    await store.close()
    assert journal_seqs(data_dir) == list(range(1, len(observations) + 1))
    assert mark(data_dir) == 0
    return part


async def check_copied_once(data_dir: Path, observations: list[Observation]) -> None:
    assert mark(data_dir) == len(observations)
    journalled = journalled_rows(data_dir)
    for table in COUNTED:
        assert table_rows(data_dir, table) == journalled[table], table
    events = sum(o.event is not None for o in observations)
    assert table_rows(data_dir, "events") == events
    assert table_rows(data_dir, "messages") == len(observations) - events
    duplicates = sql(
        data_dir / TABLES_FILE,
        "SELECT message_id, identifier_key, name FROM traits"
        " GROUP BY message_id, identifier_key, name HAVING count(*) > 1",
    )
    assert duplicates == []


async def test_two_copier_threads_copy_each_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    observations = stream(60)
    part = await fill_journal(data_dir, observations)

    # Small transactions, and the first one held open a while, so that the other copier
    # waits for it and both take turns.
    monkeypatch.setattr(embedded_journal, "MAX_ROWS", 3)
    decode = embedded_journal.decode
    decoded: Counter[int] = Counter()
    first = threading.Lock()

    def slow_first_decode(body: bytes) -> list[Rows]:
        decoded[threading.get_ident()] += 1
        if first.acquire(blocking=False):
            time.sleep(0.2)
        return decode(body)

    monkeypatch.setattr(embedded_journal, "decode", slow_first_decode)
    start = threading.Barrier(2)

    def copier() -> int:
        journal = embedded_journal.connect(data_dir / JOURNAL_FILE)
        tables = embedded_journal.connect_tables_for_copy(data_dir / TABLES_FILE)
        try:
            start.wait(timeout=5)
            return embedded_journal.copy_all(journal, tables)
        finally:
            journal.close()
            tables.close()

    with ThreadPoolExecutor(2) as pool:
        marks = [f.result(timeout=20) for f in [pool.submit(copier), pool.submit(copier)]]
    monkeypatch.undo()
    assert marks == [len(observations)] * 2
    assert sum(decoded.values()) == len(observations), "a journal row was copied twice"
    await check_copied_once(data_dir, observations)

    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        assert journal_seqs(data_dir) == []
        assert await partition(store) == part
        await check_everything_readable(store, observations, part)
    finally:
        await store.close()


async def test_two_copier_processes_copy_each_row_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    observations = stream(60)
    await fill_journal(data_dir, observations)
    assert await asyncio.to_thread(run_copiers, data_dir, 2) == [0, 0]
    await check_copied_once(data_dir, observations)


def run_copiers(data_dir: Path, count: int) -> list[int]:
    """Run `count` copier processes at once, their standard input closed (each copies what
    it finds, then exits); return their exit codes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "identity_graph.adapters.embedded.journal", str(data_dir)]
    procs = [
        subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env, cwd=ROOT) for _ in range(count)
    ]
    try:
        return [p.wait(timeout=20) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# --- 3. backpressure -----------------------------------------------------------------


async def test_ingest_waits_while_the_backlog_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_backlog, "MAX_BACKLOG", 5)
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        full = 0
        after_wait: list[int] = []
        room = store._copier.room

        async def watched_room() -> None:
            nonlocal full
            full += store._backlog.weight > embedded_backlog.MAX_BACKLOG
            await room()
            after_wait.append(store._backlog.weight)

        monkeypatch.setattr(store._copier, "room", watched_room)
        observations = stream(120)
        graph = IdentityGraph(store, Rules.default())
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(graph.ingest(b) for b in batches(observations, 2))), timeout=20
        )
        assert [o.status for out in outcomes for o in out] == ["applied"] * len(observations)
        assert full > 0, "the backlog never filled: nothing was tested"
        assert max(after_wait) <= 5
        part = await partition(store)
        assert store._backlog.weight == 0 and store._backlog.pending == []
        await check_everything_readable(store, observations, part)
    finally:
        await store.close()


# --- 4. a copier that makes no progress ----------------------------------------------


async def test_reads_fail_while_the_copier_makes_no_progress_then_recover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_copier, "STALL_SECONDS", 0.5)
    store = GatedStore(tmp_path / "data")
    store.copier_allowed = False
    await store.open()
    try:
        observations = stream(6)
        graph = IdentityGraph(store, Rules.default())
        outcomes = await graph.ingest(observations)
        pids = sorted({o.profile_id for o in outcomes if o.profile_id is not None})
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no progress"):
            await asyncio.wait_for(store.traits(pids), timeout=5)
        with pytest.raises(StoreUnavailable, match="no progress"):
            await asyncio.wait_for(store.events(pids, first=10, after=None, types=None), timeout=5)
        assert time.monotonic() - started < 2.5
        assert store._copier.process is None

        store.copier_allowed = True
        monkeypatch.setattr(embedded_copier, "STALL_SECONDS", 5.0)  # the copier's start-up is slow
        traits = await asyncio.wait_for(store.traits(pids), timeout=10)
        assert {t.message_id for values in traits.values() for t in values} == {
            o.message_id for o in observations
        }
        await check_everything_readable(store, observations, await partition(store))
    finally:
        await store.close()


async def test_closing_with_a_stalled_copier_kills_it_without_a_second_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Close waits one stall for the copier to catch up, not a second for it to exit."""
    monkeypatch.setattr(embedded_copier, "STALL_SECONDS", 0.5)
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    await IdentityGraph(store, Rules.default()).ingest(stream(6))
    copier = store._copier.process
    assert copier is not None
    waits: list[float | None] = []
    wait = copier.wait

    def watched(timeout: float | None = None) -> int:
        waits.append(timeout)
        return wait(timeout)

    monkeypatch.setattr(copier, "wait", watched)
    os.kill(copier.pid, signal.SIGSTOP)
    await store.close()
    assert copier.returncode == -signal.SIGKILL
    assert waits[0] == 0.0
    assert mark(store.data_dir) < store._backlog.applied
    reopened = EmbeddedStore(tmp_path / "data")
    await reopened.open()  # copies what the killed copier left
    try:
        await check_everything_readable(reopened, stream(6), await partition(reopened))
    finally:
        await reopened.close()


async def test_reads_of_customers_no_pending_write_touched_do_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-your-writes per customer: a read waits for the uncopied writes that touched the
    customers it reads, not for a bulk import of others."""
    monkeypatch.setattr(embedded_copier, "STALL_SECONDS", 0.5)
    store = GatedStore(tmp_path / "data")
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        [settled] = await graph.ingest([observe("a1", "user_id:a", traits={"plan": "pro"})])
        await store.settle()
        store.kill_copier()
        [pending] = await graph.ingest([observe("b1", "user_id:b", traits={"plan": "free"})])
        [touched] = await graph.ingest([observe("a2", "user_id:a", traits={"plan": "team"})])
        assert settled.profile_id is not None and pending.profile_id is not None
        assert touched.profile_id == settled.profile_id

        untouched = await graph.ingest([observe("c1", "user_id:c")])
        assert untouched[0].profile_id is not None
        with pytest.raises(StoreUnavailable, match="no progress"):
            await asyncio.wait_for(store.traits([pending.profile_id]), timeout=5)
        with pytest.raises(StoreUnavailable, match="no progress"):
            await asyncio.wait_for(store.traits([settled.profile_id]), timeout=5)

        store.copier_allowed = True
        await store.settle()
        store.copier_allowed = False
        copier = store._copier.process
        assert copier is not None
        copier.kill()
        copier.wait()
        [late] = await graph.ingest([observe("b2", "user_id:b", traits={"plan": "pro"})])
        assert late.profile_id == pending.profile_id
        traits = await asyncio.wait_for(store.traits([settled.profile_id]), timeout=5)
        assert sorted(t.value for t in traits[settled.profile_id]) == ["pro", "team"]
        with pytest.raises(StoreUnavailable, match="no progress"):
            await asyncio.wait_for(store.traits([pending.profile_id]), timeout=5)
        store.copier_allowed = True
        monkeypatch.setattr(embedded_copier, "STALL_SECONDS", 5.0)
        traits = await asyncio.wait_for(store.traits([pending.profile_id]), timeout=10)
        assert sorted(t.value for t in traits[pending.profile_id]) == ["free", "pro"]
    finally:
        await store.close()


# --- 5. the copier's life ------------------------------------------------------------


async def test_the_copier_exits_when_the_store_closes(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        await IdentityGraph(store, Rules.default()).ingest(stream(6))
        copier = store._copier.process
        assert copier is not None and copier.poll() is None
        assert parent_of(copier.pid) == os.getpid()
    finally:
        await store.close()
    assert store._copier.process is None
    assert copier.returncode == 0


def copied_by(store: EmbeddedStore, deadline: float) -> bool:
    """Whether the tables hold every acknowledged write by `deadline` (polled)."""
    while mark(store.data_dir) < store._backlog.applied:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_the_copier_lets_writes_gather_until_a_read_waits(tmp_path: Path) -> None:
    """A small write is not copied at once (each copy rewrites the pages it dirties), but a
    read that needs it has it copied straight away, and unread it is copied within
    `MAX_COPY_DELAY`."""
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        await graph.ingest(stream(6)[:1])
        await store.settle()  # the copier runs, idle
        # settle's last "a read waits" may reach the copier after its copy: it is stale once
        # the copier reads it with nothing left to copy, but not if a write lands first
        await asyncio.sleep(0.2)
        outcomes = await graph.ingest(stream(6)[1:])
        await asyncio.sleep(MAX_COPY_DELAY / 8)  # long enough to copy six observations
        assert mark(store.data_dir) < store._backlog.applied  # but they gather
        pids = sorted({o.profile_id for o in outcomes if o.profile_id is not None})
        traits = await asyncio.wait_for(store.traits(pids), timeout=MAX_COPY_DELAY / 2)
        assert {t.message_id for values in traits.values() for t in values} >= {
            o.message_id for o in stream(6)[1:]
        }
        assert mark(store.data_dir) == store._backlog.applied
        await graph.ingest(stream(12)[6:])
        # no read waits: the copier copies them once the delay is up
        assert await asyncio.to_thread(copied_by, store, time.monotonic() + MAX_COPY_DELAY + 10)
        await check_everything_readable(store, stream(12), await partition(store))
    finally:
        await store.close()


class QuietThenClosed(embedded_journal._Input):
    """The store's side of the copier's input: nothing is said for `quiet` waits, then the
    input closes. Records the copier's mark at each wait."""

    def __init__(self, tables: sqlite3.Connection, quiet: int) -> None:
        super().__init__()
        self.tables = tables
        self.quiet = quiet
        self.marks: list[int] = []

    def wait(self, timeout: float) -> None:
        self.marks.append(embedded_journal.copied_mark(self.tables))
        self.quiet -= 1
        self.open = self.quiet > 0


async def test_the_copier_copies_a_window_then_lets_the_rest_gather_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes that came while a window was copied are not chased with a smaller window at
    once (each window rewrites most of the pages a full one does): they gather like any."""
    monkeypatch.setattr(embedded_copier.Copier, "start", lambda self: None)
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        for part in (stream(30)[:10], stream(30)[10:20], stream(30)[20:]):
            await graph.ingest(part)  # three journal rows, none copied
        journal = embedded_journal.connect_journal(tmp_path / "data" / JOURNAL_FILE)
        tables = embedded_journal.connect_tables_for_copy(tmp_path / "data" / TABLES_FILE)
        with closing(journal), closing(tables):
            sizes = [n for (n,) in journal.execute("SELECT length(body) FROM journal ORDER BY seq")]
            assert len(sizes) == 3
            # the first two rows are a window, and due; the third alone is not
            monkeypatch.setattr(embedded_journal, "MIN_COPY_BYTES", sizes[0] + sizes[1])
            monkeypatch.setattr(embedded_journal, "MAX_COPY_BYTES", sizes[0] + sizes[1])
            monkeypatch.setattr(embedded_journal, "MAX_COPY_DELAY", 3600.0)
            said = QuietThenClosed(tables, quiet=3)
            assert embedded_journal.copy_until_closed(journal, tables, said) == 0
            assert said.marks == [2, 2, 2]  # the third waited until the input closed
            assert embedded_journal.copied_mark(tables) == 3
        await check_everything_readable(store, stream(30), await partition(store))
    finally:
        await store.close()


async def half_written_then_copier_gone(
    store: EmbeddedStore, *, close_input: bool
) -> tuple[IdentityGraph, subprocess.Popen[bytes]]:
    """Ingest the first half of `stream(12)`, then wait for the copier to exit: its input
    closed here (`close_input`), or by the store once no write came for its idle time.
    Either way it copied everything first."""
    graph = IdentityGraph(store, Rules.default())
    await graph.ingest(stream(12)[:6])
    copier = store._copier.process
    assert copier is not None and copier.stdin is not None
    if close_input:
        copier.stdin.close()
    assert await asyncio.to_thread(copier.wait, 10) == 0
    assert mark(store.data_dir) == store._backlog.applied
    return graph, copier


async def check_another_copier_copied(store: EmbeddedStore, old: subprocess.Popen[bytes]) -> None:
    """The tables hold all of `stream(12)` (reading them starts a copier if none runs), and
    a copier other than `old` copied it."""
    await check_everything_readable(store, stream(12), await partition(store))
    assert store._copier.process is not None and store._copier.process is not old


@pytest.mark.parametrize("close_input", [True, False], ids=["input closed", "idle"])
async def test_an_exited_copier_is_restarted_by_the_next_write(
    tmp_path: Path, close_input: bool
) -> None:
    store = EmbeddedStore(tmp_path / "data", copier_idle_seconds=0.3)
    await store.open()
    try:
        graph, copier = await half_written_then_copier_gone(store, close_input=close_input)
        await store.ping()  # everything was copied: a health check starts no copier
        assert store._copier.process is copier
        await graph.ingest(stream(12)[6:])
        await check_another_copier_copied(store, copier)
    finally:
        await store.close()


async def test_a_write_while_a_closed_copier_finishes_starts_another(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    await graph.ingest(stream(12)[:6])
    old = store._copier.process
    assert old is not None and old.stdin is not None
    os.kill(old.pid, signal.SIGSTOP)  # closed, but still alive when the next write lands
    try:
        old.stdin.close()
        await graph.ingest(stream(12)[6:])
        assert store._copier.process is not None and store._copier.process.poll() is None
        await check_another_copier_copied(store, old)
    finally:
        os.kill(old.pid, signal.SIGCONT)
        await store.close()
    assert await asyncio.to_thread(old.wait, 10) == 0


async def test_a_read_restarts_a_copier_for_a_write_left_uncopied(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "data", copier_idle_seconds=0.3)
    await store.open()
    try:
        graph, copier = await half_written_then_copier_gone(store, close_input=False)
        # a write that lands while no copier runs (one was killed, or failed to start) ...
        store.copier_allowed = False
        await graph.ingest(stream(12)[6:])
        assert mark(store.data_dir) < store._backlog.applied
        # ... is copied for the first read that waits for it
        store.copier_allowed = True
        await check_another_copier_copied(store, copier)
    finally:
        await store.close()


async def test_the_copier_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    writer = Writer("copied", data_dir)
    copier = writer.state["copier"]
    try:
        assert parent_of(copier) == writer.proc.pid
        writer.kill()
        assert wait_gone(copier, timeout=5), "the copier outlived its parent"
    finally:
        if parent_of(copier) is not None:
            os.kill(copier, signal.SIGKILL)
    observations = stream()
    assert writer.acked == [o.message_id for o in observations]
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        assert journal_seqs(data_dir) == []
        await check_everything_readable(store, observations, await partition(store))
    finally:
        await store.close()


async def kill_the_copier_and_write_again(store: EmbeddedStore) -> subprocess.Popen[bytes]:
    """Ingest, SIGKILL the store's copier, ingest again; return the killed copier."""
    observations = stream(12)
    graph = IdentityGraph(store, Rules.default())
    await graph.ingest(observations[:6])
    copier = store._copier.process
    assert copier is not None
    copier.kill()
    assert await asyncio.to_thread(copier.wait, 5) == -signal.SIGKILL
    await graph.ingest(observations[6:])
    return copier


async def test_a_killed_copier_is_restarted(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        copier = await kill_the_copier_and_write_again(store)
        assert copier.stdin is not None
        copier.stdin.close()  # the store leaves it open: see the next test
        assert store._copier.process is not None and store._copier.process.poll() is None
        await check_another_copier_copied(store, copier)
    finally:
        await store.close()


async def test_restarting_the_copier_closes_the_old_ones_pipe(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    copier = None
    try:
        copier = await kill_the_copier_and_write_again(store)
        assert copier.stdin is not None and copier.stdin.closed
    finally:
        if copier is not None and copier.stdin is not None:
            copier.stdin.close()  # so that the leak fails this test only, as an assertion
        await store.close()


async def test_no_copier_starts_once_the_store_stops_its_copier(tmp_path: Path) -> None:
    """A read waiting for the tables while the store closes must not start a copier that
    outlives the store (reads start one when they find none running)."""
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    await IdentityGraph(store, Rules.default()).ingest([observe("m1", "email:a@x.io")])
    assert store._copier.process is not None
    await store._copier.stop()  # as close() does, before it closes the files
    store._copier.start()  # what a waiting read does meanwhile
    assert store._copier.process is None
    await store.close()
    await store.open()  # and a store opened again starts copiers again
    try:
        await IdentityGraph(store, Rules.default()).ingest([observe("m2", "email:b@x.io")])
        assert store._copier.process is not None
    finally:
        await store.close()


async def test_audit_entries_and_keys_are_written_while_a_copy_holds_the_tables(
    tmp_path: Path,
) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        with closing(sqlite3.connect(tmp_path / "data" / TABLES_FILE, timeout=0)) as copy:
            copy.execute("BEGIN IMMEDIATE")  # as a copy window holds the tables' write lock
            at = datetime(2024, 5, 1, tzinfo=UTC)
            await store.records.append_audit(
                [AuditEntry("e1", at, "ops", "support", "c1", ("email",))]
            )
            await store.records.put_api_key(ApiKey("k1", "h1", "support", None, at))
            page = await store.records.audit_log(first=5, after=None, customer_id="c1")
            assert [e.id for e in page.items] == ["e1"]
            assert await store.records.revoke_api_key("k1", at=at)
            copy.execute("ROLLBACK")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(write(sys.argv[1], Path(sys.argv[2])))
