"""Two engines over one store, as two API processes over one Neo4j database are: a definition
made, changed or deleted through one is followed by the other within its refresh bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from streams import observe

from identity_graph.audiences.engine import AudienceEngine
from identity_graph.audiences.store import AudienceStore
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore

BUYERS = {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 1}}}


@pytest.fixture
async def engines(store: IdentityStore) -> AsyncIterator[tuple[AudienceEngine, AudienceEngine]]:
    audiences: AudienceStore = store.audiences  # type: ignore[attr-defined]
    rules = Rules.default()
    pair = (
        AudienceEngine(store, audiences, rules, tick=0.02, refresh=0.05),
        AudienceEngine(store, audiences, rules, tick=0.02, refresh=0.05),
    )
    for engine in pair:
        await engine.start()
    yield pair
    for engine in pair:
        await engine.stop()


async def followed(engine: AudienceEngine, condition: object) -> None:
    """Wait (bounded) until `engine` has read the definitions again at least once more."""
    for _ in range(200):
        await asyncio.sleep(0.02)
        if condition():  # type: ignore[operator]
            return
    raise AssertionError("the other engine did not follow the definitions")


async def test_a_definition_made_through_one_engine_is_followed_by_the_other(
    store: IdentityStore, engines: tuple[AudienceEngine, AudienceEngine]
) -> None:
    one, other = engines
    graph = IdentityGraph(store, Rules.default())
    graph.listeners.append(other.touched)  # the writes go through the other process
    await one.define_computed_trait("orders", {"kind": "event_count", "event": "Order Completed"})
    audience = await one.define_audience("buyers", BUYERS, None)
    repeat = await one.define_audience(
        "repeat", {"computed": {"name": "orders", "op": "gte", "value": 2}}, None
    )
    await one.settle()
    await followed(other, lambda: {audience.id, repeat.id} <= set(other._defs))
    [bought] = await graph.ingest([observe("o1", "user_id:w1", event="Order Completed")])
    await graph.ingest([observe("o2", "user_id:w1", event="Order Completed")])
    await other.settle()
    assert bought.profile_id
    held = await store.audiences.memberships([bought.profile_id])  # type: ignore[attr-defined]
    assert {m.audience_id for m in held[bought.profile_id]} == {audience.id, repeat.id}

    assert await one.delete_audience(repeat.id)
    await followed(other, lambda: repeat.id not in other._defs)
    await graph.ingest([observe("o3", "user_id:w1", event="Order Completed")])
    await other.settle()
    held = await store.audiences.memberships([bought.profile_id])  # type: ignore[attr-defined]
    assert {m.audience_id for m in held[bought.profile_id]} == {audience.id}
    sizes = {a.name: a.size for a in await store.audiences.audiences()}  # type: ignore[attr-defined]
    assert sizes == {"buyers": 1}


async def test_a_definition_made_while_the_definitions_are_read_again_is_kept(
    store: IdentityStore,
) -> None:
    audiences: AudienceStore = store.audiences  # type: ignore[attr-defined]
    engine = AudienceEngine(store, audiences, Rules.default(), tick=0.02, refresh=3600)
    await engine.start()
    try:
        reading, resume = asyncio.Event(), asyncio.Event()
        listed = audiences.audiences

        async def stale_listing():  # type: ignore[no-untyped-def]
            found = await listed()  # read before the definition below is made
            reading.set()
            await resume.wait()
            return found

        audiences.audiences = stale_listing  # type: ignore[method-assign]
        refresh = asyncio.create_task(engine._refresh())
        await reading.wait()
        define = asyncio.create_task(engine.define_audience("buyers", BUYERS, None))
        await asyncio.sleep(0.05)
        resume.set()
        await refresh
        made = await define
        audiences.audiences = listed  # type: ignore[method-assign]
        assert made.id in engine._defs  # still followed live, not dropped as deleted
        await engine.settle()
        [ready] = [a for a in await audiences.audiences() if a.id == made.id]
        assert ready.status.value == "READY"
    finally:
        await engine.stop()
