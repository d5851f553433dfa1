"""Property tests of the resolver's invariants over random streams, on every adapter."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import networkx as nx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from stores import make_store
from streams import Partition, check_invariants, groups, observe, partition, restrict

from identity_graph.model import Identifier, Observation
from identity_graph.resolver import usable_identifiers
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore

T = TypeVar("T")

UNIVERSE = (
    [f"user_id:u{i}" for i in range(3)]
    + [f"email:e{i}@x.io" for i in range(4)]
    + [f"device_id:d{i}" for i in range(3)]
    + [f"anonymous_id:a{i}" for i in range(6)]
    + ["anonymous_id:null", "user_id:0", "device_id:---"]
)
TIGHT = Rules.parse(
    "[kinds.email]\nlimit = 2\n[kinds.device_id]\nlimit = 2\n[kinds.anonymous_id]\nlimit = 3\n"
)
LOOSE = Rules.parse(
    "".join(f"[kinds.{k}]\nlimit = 1000\n" for k in ("user_id", "email", "device_id"))
)
SETTINGS = settings(max_examples=40, deadline=None)

key_sets = st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=4)
streams = st.lists(st.tuples(key_sets, st.booleans()), min_size=1, max_size=14)
CENTER_NOT_OLDEST = [
    (["email:e0@x.io"], False),
    (["email:e1@x.io"], False),
    (["user_id:u0"], False),
    (["user_id:u0", "email:e0@x.io", "email:e1@x.io"], False),
]
"""three profiles that one message joins, its center (the user id) not the oldest's"""


def build(
    spec: Sequence[tuple[list[str], bool]], times: Sequence[int] | None = None
) -> list[Observation]:
    """Observations in arrival order, timed in that order unless `times` says otherwise
    (late messages carry old timestamps); the flag makes one a track call with an event."""
    return [
        observe(
            f"m{n}",
            *keys,
            t=times[n % len(times)] if times else n,
            event="Clicked" if tracked else None,
        )
        for n, (keys, tracked) in enumerate(spec)
    ]


def batches(stream: Sequence[Observation], rng: random.Random) -> list[list[Observation]]:
    if not stream:
        return []
    cuts = sorted(rng.sample(range(1, len(stream)), k=rng.randint(0, len(stream) - 1)))
    return [list(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


ADAPTERS = pytest.mark.parametrize(
    "adapter", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)]
)


def run(adapter: str, body: Callable[[IdentityStore], Awaitable[T]]) -> T:
    async def main() -> T:
        with tempfile.TemporaryDirectory() as tmp:
            store = await make_store(adapter, Path(tmp))
            try:
                return await body(store)
            finally:
                await store.close()

    return asyncio.run(main())


def expected_groups(stream: Sequence[Observation], rules: Rules) -> set[frozenset[str]]:
    """Connected components of co-observed usable identifiers: the answer with no limits."""
    g: nx.Graph[str] = nx.Graph()
    for obs in stream:
        keys = [i.key for i in usable_identifiers(obs, rules)]
        g.add_nodes_from(keys)
        g.add_edges_from((keys[0], k) for k in keys[1:])
    return {frozenset(c) for c in nx.connected_components(g)}


async def events_by_key(store: IdentityStore, part: Partition) -> dict[str, frozenset[str]]:
    """Each profile's event message ids, keyed by its smallest identifier."""
    pages = await store.events(list(part), first=1000, after=None, types=None)
    return {min(part[pid]): frozenset(e.message_id for e in pages[pid].items) for pid in part}


@ADAPTERS
@SETTINGS
@given(spec=streams, seed=st.integers(0, 2**16))
def test_invariants_hold_after_any_stream(
    adapter: str, spec: list[tuple[list[str], bool]], seed: int
) -> None:
    stream = build(spec)

    async def body(store: IdentityStore) -> None:
        graph = IdentityGraph(store, TIGHT)
        for batch in batches(stream, random.Random(seed)):
            await graph.ingest(batch)
            await check_invariants(store, TIGHT, await partition(store))
        part = await partition(store)
        stored = set().union(*part.values())
        usable = {i.key for obs in stream for i in usable_identifiers(obs, TIGHT)}
        assert stored <= usable
        assert not any(TIGHT.is_blocked(Identifier.from_key(k).value) for k in stored)
        everything = await store.profile_ids(UNIVERSE)
        assert set(everything) == stored

    run(adapter, body)


@ADAPTERS
@SETTINGS
@given(spec=streams, seed=st.integers(0, 2**16))
def test_a_conflict_free_stream_gives_one_partition_in_any_order(
    adapter: str, spec: list[tuple[list[str], bool]], seed: int
) -> None:
    stream = build(spec)
    rng = random.Random(seed)
    shuffled = rng.sample(stream, len(stream))
    expected = expected_groups(stream, LOOSE)

    async def body(store: IdentityStore) -> set[frozenset[str]]:
        graph = IdentityGraph(store, LOOSE)
        for batch in batches(shuffled, rng):
            outcomes = await graph.ingest(batch)
            assert all(o.conflict is None for o in outcomes)
        part = await partition(store)
        await check_invariants(store, LOOSE, part)
        return groups(part)

    assert run(adapter, body) == expected


@ADAPTERS
@SETTINGS
@given(
    spec=streams,
    seed=st.integers(0, 2**16),
    times=st.one_of(st.none(), st.lists(st.integers(0, 30), min_size=1, max_size=14)),
    order=st.one_of(st.none(), st.integers(0, 2**16)),
)
# three profiles joined by one message whose center (the user id) is not the oldest's: the
# merges of the others were recorded against the survivor and could not be undone
@example(spec=CENTER_NOT_OLDEST, seed=0, times=None, order=None)
# the same, undoing the center's merge first (order 0 keeps the order they were made in):
# the other merge's undo then has to find its links in the center's restored profile
@example(spec=CENTER_NOT_OLDEST, seed=0, times=None, order=0)
def test_undoing_the_last_merges_restores_the_prior_partition(
    adapter: str,
    spec: list[tuple[list[str], bool]],
    seed: int,
    times: list[int] | None,
    order: int | None,
) -> None:
    """Undoing every merge of the last message, last to first (`order` None) or in the
    order `order` shuffles them into, gives back the partition before it."""
    stream = build(spec, times)

    async def body(store: IdentityStore) -> None:
        graph = IdentityGraph(store, TIGHT)
        for batch in batches(stream[:-1], random.Random(seed)):
            await graph.ingest(batch)
        before = await partition(store)
        events_before = await events_by_key(store, before)
        [outcome] = await graph.ingest(stream[-1:])
        undos = list(reversed(outcome.merges))
        if order is not None:
            undos = list(outcome.merges)
            random.Random(order).shuffle(undos)
        for merge_id in undos:
            await graph.undo_merge(merge_id, actor="test")
        after = await partition(store)
        await check_invariants(store, TIGHT, after)
        old_keys = set().union(*before.values())
        assert restrict(after, old_keys) == groups(before)
        for pid, keys in before.items():
            assert after[pid] & old_keys == keys, "a profile did not get its id back"
        if outcome.merges:
            assert set(after) == set(before), "an undo left a new identifier on its own"
        events_after = await events_by_key(store, after)
        for key, ids in events_before.items():
            owner = next(k for k, g in after.items() if key in g)
            assert ids <= events_after[min(after[owner])]

    run(adapter, body)


@ADAPTERS
@SETTINGS
@given(spec=streams, seed=st.integers(0, 2**16), replays=st.lists(st.integers(0, 13)))
def test_replaying_messages_changes_nothing(
    adapter: str, spec: list[tuple[list[str], bool]], seed: int, replays: list[int]
) -> None:
    stream = build(spec)
    again = [stream[i % len(stream)] for i in replays] or stream

    async def body(store: IdentityStore) -> None:
        graph = IdentityGraph(store, TIGHT)
        first = []
        for batch in batches(stream, random.Random(seed)):
            first.extend(await graph.ingest(batch))
        before = await partition(store)
        events = await events_by_key(store, before)
        outcomes = await graph.ingest(again)
        by_id = {o.message_id: o for o in first}
        for outcome in outcomes:
            original = by_id[outcome.message_id]
            if original.status == "dropped":
                assert outcome.status == "dropped"
            else:
                assert outcome.status == "duplicate"
                assert outcome.profile_id == original.profile_id
        assert await partition(store) == before
        assert await events_by_key(store, before) == events

    run(adapter, body)
