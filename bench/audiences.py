"""Computed traits and audiences on the embedded store: what live membership costs ingest, and
how long building an audience over an existing store takes against one plain SQL query that
computes the same membership. Prints figures; asserts nothing.

    python bench/audiences.py [--observations 200000] [--batch 1000]
    python bench/audiences.py --build-customers 100000 [--data-dir DIR]
    python bench/audiences.py --neo4j URI [--build-customers 10000]   # WIPES that database

1. Ingest, same run: two fresh stores take the same synthetic stream (bench/synthetic.py) in
   batches, alternating batch by batch (and which goes first) so that load from other work
   falls on both alike; one
   has 10 computed traits and 10 audiences defined and its engine running. Reported: the
   rate of the ingest calls, and the rate until every membership is settled (the engine's
   work included), each as a ratio to the store without definitions (target >= 0.8).
2. Build: on the store without definitions, one audience ("Order Completed" at least twice)
   is defined and built for every profile (BUILDING, then READY); the same membership is then
   computed by one SQL statement over the tables. Both sets are compared. With
   --build-customers, over bench/sales_context.py's data instead (20-30 events a customer);
   with --neo4j, over that data loaded into Neo4j, against one Cypher statement.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sales_context import load  # noqa: E402
from synthetic import synthetic_stream  # noqa: E402

from identity_graph.adapters.embedded.store import EmbeddedStore  # noqa: E402
from identity_graph.adapters.neo4j.store import Neo4jStore  # noqa: E402
from identity_graph.audiences.engine import AudienceEngine  # noqa: E402
from identity_graph.audiences.store import Status  # noqa: E402
from identity_graph.rules import Rules  # noqa: E402
from identity_graph.service import IdentityGraph  # noqa: E402

TRAITS = {
    "orders": {"kind": "event_count", "event": "Order Completed"},
    "orders_30d": {"kind": "event_count", "event": "Order Completed", "within_days": 30},
    "views": {"kind": "event_count", "event": "Product Viewed"},
    "adds": {"kind": "event_count", "event": "Product Added"},
    "pages": {"kind": "event_count", "type": "PAGE"},
    "first_order": {"kind": "first_seen", "event": "Order Completed"},
    "last_seen": {"kind": "last_seen"},
    "paths": {"kind": "unique_count", "type": "PAGE", "property": "path"},
    "top_path": {"kind": "most_frequent", "type": "PAGE", "property": "path"},
    "videos": {"kind": "event_count", "event": "Video Played"},
}
AUDIENCES = {
    "buyers": {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 1}}},
    "repeat": {"computed": {"name": "orders", "op": "gte", "value": 2}},
    "recent": {"computed": {"name": "orders_30d", "op": "gte", "value": 1}},
    "browsers": {
        "all": [
            {"computed": {"name": "views", "op": "gte", "value": 3}},
            {"computed": {"name": "orders", "op": "eq", "value": 0}},
        ]
    },
    "carts": {
        "all": [
            {"event": {"name": "Product Added", "count": {"op": "gte", "value": 1}}},
            {"not": {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 1}}}},
        ]
    },
    "readers": {"computed": {"name": "pages", "op": "gte", "value": 5}},
    "pricing": {"computed": {"name": "top_path", "op": "eq", "value": "/pricing"}},
    "pro": {"trait": {"name": "plan", "op": "in", "value": ["pro", "team"]}},
    "known": {"identifier": {"kind": "email", "exists": True}},
    "viewers": {"computed": {"name": "videos", "op": "gte", "value": 1}},
}
BUILT = {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 2}}}
PLAIN_SQL = """
SELECT i.profile_id FROM events e JOIN identifiers i ON i.key = e.identifier_key
WHERE e.type = 'track' AND e.name = 'Order Completed'
GROUP BY i.profile_id HAVING count(*) >= 2
"""

PLAIN_CYPHER = """
MATCH (p:Profile) WHERE p.merged_into IS NULL
MATCH (i:Identifier {profile_id: p.id})
MATCH (e:Event {identifier_key: i.key})
WHERE e.type = 'track' AND e.name = 'Order Completed'
WITH p, count(e) AS n WHERE n >= 2
RETURN p.id
"""
NEO4J_COUNTS = """
CALL () { MATCH (p:Profile) WHERE p.merged_into IS NULL RETURN count(p) AS profiles }
CALL () { MATCH (e:Event) RETURN count(e) AS events }
RETURN profiles, events
"""


async def run(args: argparse.Namespace) -> None:
    rules = Rules.default()
    if args.neo4j:
        await build_neo4j(args.neo4j, args.build_customers or 10_000, rules)
        return
    stream = list(synthetic_stream(args.observations, seed=11))
    batches = [stream[i : i + args.batch] for i in range(0, len(stream), args.batch)]
    with tempfile.TemporaryDirectory(prefix="c360-audiences-") as tmp:
        plain = EmbeddedStore(Path(tmp) / "plain")
        live = EmbeddedStore(Path(tmp) / "live")
        await plain.open()
        await live.open()
        plain_graph = IdentityGraph(plain, rules)
        live_graph = IdentityGraph(live, rules)
        engine = AudienceEngine(live, live.audiences, rules)
        live_graph.listeners.append(engine.touched)
        await engine.start()
        for name, definition in TRAITS.items():
            await engine.define_computed_trait(name, definition)
        for name, condition in AUDIENCES.items():
            await engine.define_audience(name, condition, None)
        await engine.settle()
        spent = {"plain": 0.0, "live": 0.0}
        settle_wait = 0.0
        pair = (("plain", plain_graph), ("live", live_graph))
        for n, batch in enumerate(batches):
            for name, graph in pair if n % 2 else reversed(pair):
                start = time.perf_counter()
                await graph.ingest(batch)
                spent[name] += time.perf_counter() - start
        start = time.perf_counter()
        await plain.settle()
        spent["plain"] += time.perf_counter() - start
        start = time.perf_counter()
        await engine.settle()
        await live.settle()
        settle_wait = time.perf_counter() - start
        n = len(stream)
        print(f"ingest of {n:,} observations in batches of {args.batch}, stores alternating:")
        print(f"  without definitions: {n / spent['plain']:,.0f} obs/s")
        print(
            f"  with 10 computed traits and 10 audiences: {n / spent['live']:,.0f} obs/s in the"
            f" ingest calls ({spent['plain'] / spent['live']:.2f}x);"
            f" {n / (spent['live'] + settle_wait):,.0f} obs/s until every membership settled"
            f" ({spent['plain'] / (spent['live'] + settle_wait):.2f}x; the engine's lag at the"
            f" end {settle_wait:.1f} s)"
        )
        sizes = {a.name: a.size for a in await live.audiences.audiences()}
        print("  audience sizes:", ", ".join(f"{k} {v:,}" for k, v in sorted(sizes.items())))
        await engine.stop()

        await plain.close()
        await live.close()
        if not args.build_customers:
            await build(Path(tmp) / "plain", rules)
    if args.build_customers:
        with tempfile.TemporaryDirectory(prefix="c360-audiences-build-") as tmp:
            data_dir = Path(args.data_dir or tmp)
            if not (data_dir / "c360.sqlite3").exists():
                print(f"loading {args.build_customers:,} customers into {data_dir}:", flush=True)
                await load(data_dir, args.build_customers, 1000, [])
            await build(data_dir, rules)


async def build_neo4j(uri: str, customers: int, rules: Rules) -> None:
    """Load `customers` into an emptied Neo4j database through c360, build one audience,
    and compute the same membership with one Cypher statement."""
    from sales_context import events_of, observations

    store = Neo4jStore(uri, auth=None, max_retry_time=60.0)
    await store.open()
    await store.wipe()
    graph = IdentityGraph(store, rules)
    total = sum(1 + events_of(i) for i in range(customers))
    print(f"loading {customers:,} customers ({total:,} observations) into Neo4j:", flush=True)
    started = time.perf_counter()
    pending: list[Any] = []
    writers: set[asyncio.Task[Any]] = set()
    for observation in observations(customers):
        pending.append(observation)
        if len(pending) == 500:
            writers.add(asyncio.create_task(graph.ingest(pending)))
            pending = []
            if len(writers) >= 4:
                done, writers = await asyncio.wait(writers, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
    writers.add(asyncio.create_task(graph.ingest(pending)))
    await asyncio.gather(*writers)
    took = time.perf_counter() - started
    print(f"  loaded in {took:.0f} s ({total / took:,.0f} obs/s)")
    [[profiles, events]] = await store._read(NEO4J_COUNTS)
    builder = AudienceEngine(store, store.audiences, rules)
    await builder.start()
    start = time.perf_counter()
    audience = await builder.define_audience("repeat buyers", BUILT, None)
    await builder.settle()
    built = time.perf_counter() - start
    members: set[str] = set()
    cursor = None
    while True:
        page = await store.audiences.members(audience.id, first=1000, after=cursor)
        members.update(m.customer_id for m in page.items)
        if not page.more:
            break
        cursor = page.cursor
    await builder.stop()
    start = time.perf_counter()
    expected = {pid for [pid] in await store._read(PLAIN_CYPHER)}
    cypher = time.perf_counter() - start
    await store.close()
    print(f"build of one audience over {profiles:,} profiles / {events:,} events (Neo4j):")
    print(
        f"  c360 build: {built:.2f} s ({profiles / built:,.0f} profiles/s), {len(members):,}"
        f" members; one Cypher statement: {cypher:.2f} s; ratio {built / cypher:.1f}x;"
        f" same members: {members == expected}"
    )


async def build(data_dir: Path, rules: Rules) -> None:
    """Build one audience over the store in `data_dir`, and compute it by one SQL query."""
    plain = EmbeddedStore(data_dir)
    await plain.open()
    profiles = len(plain.partition.members)
    events = plain._read().execute("SELECT count(*) FROM events").fetchone()[0]
    builder = AudienceEngine(plain, plain.audiences, rules)
    await builder.start()
    for old in await plain.audiences.audiences():  # a kept store: build afresh
        await builder.delete_audience(old.id)
    start = time.perf_counter()
    audience = await builder.define_audience("repeat buyers", BUILT, None)
    await builder.settle()
    built = time.perf_counter() - start
    [after] = [a for a in await plain.audiences.audiences() if a.id == audience.id]
    assert after.status is Status.READY
    members: set[str] = set()
    cursor = None
    while True:
        page = await plain.audiences.members(audience.id, first=1000, after=cursor)
        members.update(m.customer_id for m in page.items)
        if not page.more:
            break
        cursor = page.cursor
    await builder.stop()
    await plain.close()
    db = sqlite3.connect(data_dir / "c360.sqlite3")
    start = time.perf_counter()
    expected = {pid for (pid,) in db.execute(PLAIN_SQL)}
    sql = time.perf_counter() - start
    db.close()
    print(f"build of one audience over {profiles:,} profiles / {events:,} events:")
    print(
        f"  c360 build: {built:.2f} s ({profiles / built:,.0f} profiles/s), {after.size:,}"
        f" members; one SQL statement: {sql:.2f} s; ratio {built / sql:.1f}x;"
        f" same members: {members == expected}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--build-customers",
        type=int,
        default=0,
        help="build over a store of this many customers with 20-30 events each"
        " (bench/sales_context.py's data) instead of over the ingest's store",
    )
    parser.add_argument("--data-dir", help="keep that store here and reuse it")
    parser.add_argument(
        "--neo4j",
        metavar="URI",
        help="build over Neo4j at URI instead (its database is WIPED and loaded with"
        " --build-customers, default 10,000); the ingest comparison is skipped",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
