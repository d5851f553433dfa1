"""Reads that do not stall each other (issue 19, item 5): the embedded store reads SQLite in
worker threads, so a slow read holds up neither the event loop nor reads of customers; and
a read waits for the copier only for the writes that touched the customers it reads, consent,
undo and unmerge included."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gated import GatedStore
from streams import observe

from identity_graph.adapters.embedded import copier as embedded_copier
from identity_graph.adapters.embedded import listing
from identity_graph.adapters.embedded.readers import SCAN_THREADS
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.errors import StoreUnavailable
from identity_graph.model import ConsentStatus
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import ProfileFilter

PATIENCE = 30.0
"""seconds after which a test that would otherwise hang fails; nothing is timed"""


def _held_page_query(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Semaphore]:
    """Make every listing stop, in the thread that runs its SQL, until the event is set;
    the semaphore is released once per listing that reached that point."""
    release = threading.Event()
    reached = threading.Semaphore(0)
    real: Callable[..., Any] = listing.page_query

    def held(*args: Any) -> Any:
        reached.release()
        release.wait(PATIENCE)
        return real(*args)

    monkeypatch.setattr(listing, "page_query", held)
    return release, reached


async def _until(reached: threading.Semaphore, times: int) -> None:
    for _ in range(times):
        assert await asyncio.to_thread(reached.acquire, True, PATIENCE)


async def test_slow_listings_hold_up_neither_the_event_loop_nor_lookups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    release, reached = _held_page_query(monkeypatch)
    try:
        graph = IdentityGraph(store, Rules.default())
        [outcome] = await graph.ingest(
            [observe("m1", "email:a@x.io", "user_id:a", traits={"plan": "pro"}, event="Seen")]
        )
        pid = outcome.profile_id
        assert pid is not None
        # more slow listings than the scan lane has threads: lookups have threads of their own
        listings = [
            asyncio.ensure_future(
                store.list_profiles(first=10, after=None, where=ProfileFilter(), count_up_to=None)
            )
            for _ in range(SCAN_THREADS + 1)
        ]
        await _until(reached, SCAN_THREADS)
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0)
            ticks += 1
        context = await asyncio.wait_for(
            store.customer_context(key="email:a@x.io", traits=True, events=5), PATIENCE
        )
        traits = await asyncio.wait_for(store.traits([pid]), PATIENCE)
        assert ticks == 20
        assert context is not None and context.profile.id == pid
        assert context.events is not None and len(context.events.items) == 1
        assert [t.name for t in traits[pid]] == ["plan"]
        assert not any(task.done() for task in listings)
        release.set()
        pages = await asyncio.wait_for(asyncio.gather(*listings), PATIENCE)
        assert all(page.items == (pid,) and page.total == 1 for page in pages)
    finally:
        release.set()
        await store.close()


async def test_closing_waits_for_a_read_under_way_then_reads_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    release, reached = _held_page_query(monkeypatch)
    try:
        slow = asyncio.ensure_future(
            store.list_profiles(first=10, after=None, where=ProfileFilter())
        )
        await _until(reached, 1)
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        assert not closing.done()
        release.set()
        await asyncio.wait_for(closing, PATIENCE)
        assert (await slow).items == ()
        with pytest.raises(StoreUnavailable):
            await store.traits(["nobody"])
    finally:
        release.set()
        await store.close()


async def test_consent_undo_and_unmerge_stall_only_reads_of_the_customers_they_touch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a write storing consent, an undo or an unmerge made every read wait until the
    copier had copied it."""
    monkeypatch.setattr(embedded_copier, "STALL_SECONDS", 0.5)
    store = GatedStore(tmp_path / "data")
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        outcomes = await graph.ingest(
            [
                observe("a1", "user_id:a", traits={"plan": "pro"}),
                observe("b1", "user_id:b"),
                observe("c1", "user_id:c"),
                observe("d1", "email:d@x.io"),
                observe("cd", "user_id:c", "email:d@x.io"),
                observe("e1", "user_id:e", "email:e@x.io"),
            ]
        )
        a, b, c, d, cd, e = (o.profile_id for o in outcomes)
        assert a and b and cd and cd in (c, d) and e
        [merge] = (await store.merge_history([cd]))[cd]
        await store.settle()
        store.kill_copier()

        undo = await graph.undo_merge(merge.id, actor="test")
        await graph.set_consent(b, {"email_marketing": ConsentStatus.GRANTED}, source="test")
        split = await graph.unmerge(e, ["email:e@x.io"], actor="test")
        assert undo.absorbed != cd and split.absorbed != e

        traits = await asyncio.wait_for(store.traits([a]), PATIENCE)
        assert [t.value for t in traits[a]] == ["pro"]
        profiles = await asyncio.wait_for(store.profiles([a]), PATIENCE)
        assert [r.identifier.key for r in profiles[a].identifiers] == ["user_id:a"]
        for touched in (b, cd, undo.absorbed, e, split.absorbed):
            with pytest.raises(StoreUnavailable, match="no progress"):
                await asyncio.wait_for(store.consents([touched]), PATIENCE)

        store.copier_allowed = True
        monkeypatch.setattr(embedded_copier, "STALL_SECONDS", 5.0)
        consents = await asyncio.wait_for(store.consents([b]), PATIENCE)
        assert [r.status for r in consents[b]] == [ConsentStatus.GRANTED]
        split_off = await asyncio.wait_for(store.profiles([split.absorbed]), PATIENCE)
        assert [r.identifier.key for r in split_off[split.absorbed].identifiers] == ["email:e@x.io"]
    finally:
        await store.close()
