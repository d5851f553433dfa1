"""Group commit in the embedded store: concurrent writes share a journal transaction, a
write is acknowledged only once its group is in the journal, and a failed group commit fails
its writes and every write planned against them, leaving memory as the journal holds it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from stores import reopened
from streams import check_invariants, observe, partition

from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.errors import StoreUnavailable
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import WriteTx

WRITERS = 40


def memory_partition(store: EmbeddedStore) -> dict[str, frozenset[str]]:
    return {pid: frozenset(keys) for pid, keys in store.partition.members.items()}


async def test_concurrent_small_writes_share_commits_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    # each person is seen twice, by two writers at once: the second write merges into the first
    observations = [
        observe(f"m{n}", f"anonymous_id:a{n}", f"email:p{n % (WRITERS // 2)}@x.io", event="Seen")
        for n in range(WRITERS)
    ]
    outcomes = await asyncio.gather(*(graph.ingest([o]) for o in observations))
    assert [o.status for [o] in outcomes] == ["applied"] * WRITERS
    # writes planned while a group commits share the next commit
    assert 1 <= store.commits <= WRITERS // 4
    before = memory_partition(store)
    assert len(before) == WRITERS // 2
    await store.close()

    async with reopened(tmp_path / "data") as restarted:
        part = await partition(restarted)
        assert part == before
        await check_invariants(restarted, Rules.default(), part)
        again = await IdentityGraph(restarted, Rules.default()).ingest(observations)
        assert {o.status for o in again} == {"duplicate"}


class ScriptedJournal(EmbeddedStore):
    """The embedded store whose journal commit number `hold_at` waits until the test lets it
    go on (`release`), and whose commits numbered in `failing` fail with a disk error;
    it counts how often memory is loaded from the tables."""

    def __init__(self, data_dir: Path, *, hold_at: int = 0, failing: set[int]) -> None:
        super().__init__(data_dir)
        self.hold_at = hold_at
        self.failing = failing
        self.calls = 0
        self.loads = 0
        self.in_commit = threading.Event()
        self.release = threading.Event()

        append = self._groups.append

        def scripted_append(rows: list[tuple[int, bytes]], copied: int) -> None:
            self.calls += 1
            if self.calls == self.hold_at:
                self.in_commit.set()
                self.release.wait(30)
            if self.calls in self.failing:
                raise sqlite3.OperationalError("disk I/O error")
            append(rows, copied)

        self._groups.append = scripted_append  # type: ignore[method-assign]

    def _load(self) -> None:
        self.loads += 1
        super()._load()


async def test_a_failed_group_commit_fails_its_writes_and_those_planned_on_them(
    tmp_path: Path,
) -> None:
    store = ScriptedJournal(tmp_path / "data", hold_at=2, failing={2})
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    try:
        first = observe("m0", "anonymous_id:a0", "email:x@x.io", traits={"plan": "pro"})
        await graph.ingest([first])
        kept = memory_partition(store)

        # a write whose group commit will fail, and, while it commits, writes planned on it
        failing = observe("m1", "anonymous_id:a1", "user_id:u1", event="Signed up")
        failing_write = asyncio.ensure_future(graph.ingest([failing]))
        await asyncio.to_thread(store.in_commit.wait, 30)
        # a retry of it finds its message id and changes nothing, but must not be
        # acknowledged as a duplicate before the first write is in the journal
        retry = asyncio.ensure_future(graph.ingest([failing]))
        planned_on_it = [
            observe("m2", "user_id:u1", "email:x@x.io"),  # merges into the failing write's profile
            observe("m3", "anonymous_id:a3", event="Clicked"),
        ]
        later_writes = [asyncio.ensure_future(graph.ingest([o])) for o in planned_on_it]
        for _ in range(30_000):  # until all are planned (the lock is first come, first served)
            if store._groups.group is not None and len(store._groups.group.rows) == len(
                planned_on_it
            ):
                break
            await asyncio.sleep(0.001)
        assert "user_id:u1" in store.partition.profile_of, "the failing write is applied in memory"
        # a read waiting for the failing write to reach the tables
        explain = asyncio.ensure_future(
            store.link_path("anonymous_id:a1", "user_id:u1", max_hops=5)
        )
        # a write holding the lock while the commit fails: what it planned on is gone
        failed = asyncio.Event()

        async def planned_across_the_failure(tx: WriteTx) -> None:
            await tx.snapshot(["user_id:u1"], message_ids=["m4"])
            await failed.wait()

        across = asyncio.ensure_future(store.write(planned_across_the_failure))
        store.release.set()

        for write in (failing_write, retry, *later_writes):
            with pytest.raises(StoreUnavailable, match="disk I/O error"):
                await asyncio.wait_for(write, 30)
        failed.set()
        with pytest.raises(StoreUnavailable, match="disk I/O error"):
            await asyncio.wait_for(across, 30)
        assert await asyncio.wait_for(explain, 30) is None
        # memory is rebuilt from the journal: none of the failed writes is in it
        assert store._groups.rebuilding is not None
        await asyncio.wait_for(store._groups.rebuilding, 30)
        assert memory_partition(store) == kept
        assert "user_id:u1" not in store.partition.profile_of
        assert "anonymous_id:a3" not in store.partition.profile_of
        part = await partition(store)
        assert part == kept
        await check_invariants(store, Rules.default(), part)

        # the store goes on: the failed writes can be sent again, and are applied
        again = await graph.ingest([failing, *planned_on_it])
        assert [o.status for o in again] == ["applied"] * 3
        merged = memory_partition(store)
        await store.close()
        async with reopened(tmp_path / "data") as restarted:
            assert await partition(restarted) == merged
            events = await restarted.events(list(merged), first=10, after=None, types=None)
            assert sorted(e.message_id for p in events.values() for e in p.items) == ["m1", "m3"]
    finally:
        store.release.set()
        await store.close()


async def test_a_writer_cancelled_while_its_group_commits_is_still_written(
    tmp_path: Path,
) -> None:
    store = ScriptedJournal(tmp_path / "data", hold_at=1, failing=set())
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    try:
        write = asyncio.ensure_future(graph.ingest([observe("m0", "email:x@x.io")]))
        await asyncio.to_thread(store.in_commit.wait, 30)
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write
        store.release.set()
        # the cancelled write was applied and its group commits: it is acknowledged state
        again = await graph.ingest([observe("m0", "email:x@x.io")])
        assert again[0].status == "duplicate"
        await store.close()
        async with reopened(tmp_path / "data") as restarted:
            assert (await restarted.profile_ids(["email:x@x.io"])).keys() == {"email:x@x.io"}
    finally:
        await store.close()


async def test_a_journal_that_keeps_failing_fails_each_write_and_leaves_memory_alone(
    tmp_path: Path,
) -> None:
    store = ScriptedJournal(tmp_path / "data", failing={2, 3, 4})
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    try:
        await graph.ingest([observe("m0", "email:x@x.io")])
        assert store.loads == 1  # at open
        with pytest.raises(StoreUnavailable, match="disk I/O error"):
            await graph.ingest([observe("m1", "email:x@x.io", "user_id:u1")])
        assert store._groups.rebuilding is not None
        await asyncio.wait_for(store._groups.rebuilding, 30)
        assert store.loads == 2  # memory had the failed write: rebuilt once
        kept = memory_partition(store)
        # until a commit succeeds, each write is journalled before memory takes it
        for _ in range(2):
            with pytest.raises(StoreUnavailable, match="disk I/O error"):
                await graph.ingest([observe("m1", "email:x@x.io", "user_id:u1")])
            assert memory_partition(store) == kept
        assert store.loads == 2
        [outcome] = await graph.ingest([observe("m1", "email:x@x.io", "user_id:u1")])
        assert outcome.status == "applied" and "user_id:u1" in store.partition.profile_of
        # and then writes commit in groups again
        commits = store.commits
        await asyncio.gather(
            *(graph.ingest([observe(f"n{n}", f"anonymous_id:a{n}")]) for n in range(10))
        )
        assert store.commits - commits < 10
        part = memory_partition(store)
        await store.close()
        async with reopened(tmp_path / "data") as restarted:
            assert await partition(restarted) == part
    finally:
        await store.close()
