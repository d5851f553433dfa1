"""Concurrent writers on overlapping identities through separate drivers and sessions."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import networkx as nx
import pytest
from neo4j import AsyncGraphDatabase
from streams import check_invariants, groups, observe, partition

from identity_graph.adapters.neo4j.store import Neo4jStore
from identity_graph.model import ConsentStatus, Observation
from identity_graph.resolver import Outcome
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph

pytestmark = pytest.mark.neo4j

WRITERS = 16
BATCHES = 4
BATCH_SIZE = 6
PEOPLE = 10


def neo4j_uri() -> str:
    uri = os.environ.get("NEO4J_TEST_URI")
    if not uri:
        pytest.fail("NEO4J_TEST_URI is not set: start tests/neo4j/server first")
    return uri


@pytest.fixture
async def stores() -> AsyncIterator[list[Neo4jStore]]:
    """Two stores with their own drivers, as two API processes would have."""
    made = [Neo4jStore(neo4j_uri(), auth=None, max_retry_time=30.0) for _ in range(2)]
    for store in made:
        await store.open()
    await made[0].wipe()
    try:
        yield made
    finally:
        for store in made:
            await store.close()


def identities(rng: random.Random) -> list[str]:
    """Identifiers of one or two people, so writers join profiles and hit limits."""
    keys: list[str] = []
    for person in rng.sample(range(PEOPLE), rng.choice((1, 1, 2))):
        pool = [
            f"user_id:u{person}",
            f"email:p{person}@example.com",
            f"anonymous_id:a{person}-{rng.randrange(3)}",
            f"device_id:d{person}-{rng.randrange(2)}",
            f"user_id:u{person}-alt",
        ]
        keys.extend(rng.sample(pool, rng.choice((1, 2, 3))))
    return keys


def stream(writer: int) -> list[list[Observation]]:
    rng = random.Random(writer)
    batches = []
    for b in range(BATCHES):
        batch = []
        for n in range(BATCH_SIZE):
            # a few message ids are sent by two writers: exactly one may apply them
            mid = f"shared-{b}-{n}" if n == 0 else f"w{writer}-{b}-{n}"
            obs = (
                observe(mid, *identities(rng), t=rng.randrange(1000), event="Clicked")
                if mid.startswith("w")
                else observe(mid, f"anonymous_id:shared-{b}", t=b)
            )
            if n == 2:
                # a consent choice ends a change set: several are applied in one transaction
                obs = replace(obs, consent={"analytics": ConsentStatus.GRANTED})
            batch.append(obs)
        batches.append(batch)
    return batches


async def test_concurrent_writers_keep_the_invariants(stores: list[Neo4jStore]) -> None:
    rules = Rules.default()
    graphs = [IdentityGraph(stores[w % 2], rules) for w in range(WRITERS)]

    async def writer(w: int) -> list[Outcome]:
        outcomes = []
        for batch in stream(w):
            outcomes.extend(await graphs[w].ingest(batch))
        return outcomes

    results = await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    outcomes = [o for found in results for o in found]

    store = stores[0]
    part = await partition(store)
    await check_invariants(store, rules, part)

    applied = Counter(o.message_id for o in outcomes if o.status == "applied")
    assert all(n == 1 for n in applied.values()), "a message applied twice"
    sent = {o.message_id for o in outcomes}
    assert set(applied) == sent, "every message is applied exactly once"

    async with AsyncGraphDatabase.driver(neo4j_uri(), auth=None) as driver:
        records, _, _ = await driver.execute_query(
            "MATCH (i:Identifier) OPTIONAL MATCH (i)-[:LINKED]->(j:Identifier)"
            " RETURN i.key AS key, i.profile_id AS pid, collect(j.key) AS linked"
        )
        messages, _, _ = await driver.execute_query(
            "MATCH (m:Message) RETURN m.id AS id, m.profile_id AS pid"
        )
        events, _, _ = await driver.execute_query("MATCH (e:Event) RETURN e.message_id AS id")

    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)), "duplicate identifier keys"
    assert all(r["pid"] is not None for r in records), "a placeholder identifier was committed"
    assert set(keys) == {k for members in part.values() for k in members}

    assert {m["id"] for m in messages} == sent
    assert all(m["pid"] is not None for m in messages), "a placeholder message was committed"
    current = await store.resolve_profiles([m["pid"] for m in messages])
    assert set(current.values()) <= set(part)
    assert sorted(e["id"] for e in events) == sorted(m for m in sent if m.startswith("w"))

    linked: nx.Graph[str] = nx.Graph()
    linked.add_nodes_from(keys)
    linked.add_edges_from((r["key"], j) for r in records for j in r["linked"])
    components = {frozenset(c) for c in nx.connected_components(linked)}
    assert components == groups(part), "profiles are not the connected components of links"
