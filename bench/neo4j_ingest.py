"""Ingest into Neo4j: the Neo4j store against a naive one-query-per-identifier baseline.

    NEO4J_URI=$(tests/neo4j/server start | tail -n1) python bench/neo4j_ingest.py
    python bench/neo4j_ingest.py --uri bolt://127.0.0.1:7687 --n 30000 --batch 500 --writers 4

Both runs use the same synthetic stream (bench/synthetic.py) on an emptied database. The store
ingests through `IdentityGraph.ingest` in batches, several batches at once; the baseline sends
one auto-commit query per identifier, per link and per event, as code written without
batching would. Prints messages/s of each, their ratio, and whether `neo4j-rust-ext` is active
(compare by running once without and once with it installed). WIPES the database.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from neo4j import AsyncGraphDatabase

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_stream  # noqa: E402

from identity_graph.adapters.neo4j.store import Neo4jStore  # noqa: E402
from identity_graph.codec import to_micros  # noqa: E402
from identity_graph.model import Observation  # noqa: E402
from identity_graph.rules import Rules  # noqa: E402
from identity_graph.service import IdentityGraph  # noqa: E402

NAIVE_IDENTIFIER = """
MERGE (i:Identifier {key: $key})
ON CREATE SET i.kind = $kind, i.first_seen = $t, i.sources = [$source]
SET i.last_seen = $t
"""
NAIVE_LINK = """
MATCH (a:Identifier {key: $a}), (b:Identifier {key: $b})
MERGE (a)-[l:LINKED]->(b)
ON CREATE SET l.source = $source, l.message_id = $message_id, l.observed_at = $t
"""
NAIVE_EVENT = """
MERGE (e:Event {message_id: $message_id})
ON CREATE SET e.identifier_key = $key, e.ts = $t, e.name = $name
"""


async def store_run(
    uri: str, stream: Sequence[Observation], *, batch: int, writers: int
) -> tuple[float, int]:
    """Seconds to ingest `stream` through the store, and the store round trips it took."""
    store = Neo4jStore(uri, auth=None, max_retry_time=60.0)
    await store.open()
    await store.wipe()
    graph = IdentityGraph(store, Rules.default())
    batches = [stream[i : i + batch] for i in range(0, len(stream), batch)]
    queue: asyncio.Queue[Sequence[Observation]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def writer() -> None:
        while not queue.empty():
            await graph.ingest(queue.get_nowait())

    trips = store.round_trips
    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - start
    trips = store.round_trips - trips
    await store.close()
    return elapsed, trips


async def naive_run(uri: str, stream: Sequence[Observation]) -> tuple[float, int]:
    """Seconds for the one-query-per-identifier baseline, and the queries it sent."""
    store = Neo4jStore(uri, auth=None)
    await store.open()
    await store.wipe()
    await store.close()
    queries = 0
    async with AsyncGraphDatabase.driver(uri, auth=None) as driver:
        async with driver.session(database="neo4j") as session:
            start = time.perf_counter()
            for obs in stream:
                t = to_micros(obs.timestamp)
                keys = [i.key for i in obs.identifiers]
                for identifier in obs.identifiers:
                    await session.run(
                        NAIVE_IDENTIFIER,
                        key=identifier.key,
                        kind=identifier.kind,
                        t=t,
                        source=obs.source,
                    )
                    queries += 1
                for other in keys[1:]:
                    a, b = sorted((keys[0], other))
                    await session.run(
                        NAIVE_LINK, a=a, b=b, source=obs.source, message_id=obs.message_id, t=t
                    )
                    queries += 1
                if obs.event is not None:
                    await session.run(
                        NAIVE_EVENT,
                        message_id=obs.message_id,
                        key=keys[0],
                        t=t,
                        name=obs.event.name,
                    )
                    queries += 1
            elapsed = time.perf_counter() - start
    return elapsed, queries


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--uri", default=os.environ.get("NEO4J_URI") or os.environ.get("NEO4J_TEST_URI")
    )
    parser.add_argument("--n", type=int, default=30_000, help="observations for the store")
    parser.add_argument(
        "--baseline-n",
        type=int,
        default=3_000,
        help="observations for the naive baseline (it is slow)",
    )
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--writers", type=int, default=4, help="batches ingested at once")
    args = parser.parse_args()
    if not args.uri:
        sys.exit("give --uri or set NEO4J_URI (tests/neo4j/server start prints one)")

    rust = importlib.util.find_spec("neo4j._rust") is not None
    print(f"Neo4j at {args.uri}; neo4j-rust-ext {'active' if rust else 'not installed'}")
    stream = list(synthetic_stream(args.n, seed=11))

    elapsed, trips = await store_run(args.uri, stream, batch=args.batch, writers=args.writers)
    store_rate = len(stream) / elapsed
    print(
        f"store:    {len(stream):>7,} observations in {elapsed:6.2f} s = {store_rate:8,.0f} msg/s"
        f"  (batch {args.batch}, {args.writers} writers, {trips} store calls)"
    )
    baseline = stream[: args.baseline_n]
    elapsed, queries = await naive_run(args.uri, baseline)
    naive_rate = len(baseline) / elapsed
    print(
        f"naive:    {len(baseline):>7,} observations in {elapsed:6.2f} s = {naive_rate:8,.0f} msg/s"
        f"  ({queries} auto-commit queries)"
    )
    print(f"ratio:    {store_rate / naive_rate:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
