"""Computed traits and audiences on the embedded store: what live membership costs ingest, and
how long building an audience over an existing store takes against one plain SQL query that
computes the same membership. Prints figures; asserts nothing.

    python bench/audiences.py [--observations 200000] [--batch 1000]
    python bench/audiences.py --build-customers 100000 [--data-dir DIR]
    python bench/audiences.py --neo4j URI [--build-customers 10000]   # WIPES that database

1. Ingest, same run: the same synthetic stream (bench/synthetic.py) goes into a fresh store
   in batches, in one process per store, timed until everything is settled; the two kinds of
   process alternate, round by round, so that load from other work falls on both alike. One
   kind has 10 computed traits and 10 audiences defined and its engine running: its time
   includes every membership settled. Reported: each rate, the ratio per round (target
   >= 0.8) and the engine's lag after the last ingest call.
2. Build: on the store without definitions, one audience ("Order Completed" at least twice)
   is defined and built for every profile (BUILDING, then READY); the same membership is then
   computed by one SQL statement over the tables. Both sets are compared. With
   --build-customers, over bench/sales_context.py's data instead (20-30 events a customer);
   with --neo4j, over that data loaded into Neo4j, against one Cypher statement.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sales_context import load  # noqa: E402
from synthetic import synthetic_stream  # noqa: E402

from identity_graph.adapters.embedded.store import EmbeddedStore, tune_gc  # noqa: E402
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
    if args.one:
        await one_ingest(args, rules)
        return
    if not args.build_customers:
        compare_ingest(args)
        with tempfile.TemporaryDirectory(prefix="c360-audiences-") as tmp:
            stream = synthetic_stream(args.observations, seed=11)
            store = EmbeddedStore(Path(tmp) / "plain")
            await store.open()
            await IdentityGraph(store, rules).ingest(list(stream))
            await store.close()
            await build(Path(tmp) / "plain", rules)
        return
    with tempfile.TemporaryDirectory(prefix="c360-audiences-build-") as tmp:
        data_dir = Path(args.data_dir or tmp)
        if not (data_dir / "c360.sqlite3").exists():
            print(f"loading {args.build_customers:,} customers into {data_dir}:", flush=True)
            await load(data_dir, args.build_customers, 1000, [])
        await build(data_dir, rules)


def compare_ingest(args: argparse.Namespace) -> None:
    """Rounds of one process per mode, in alternating order: the engine's work runs in the
    live process only (in one process it would run during the plain store's calls too)."""
    times: dict[str, list[float]] = {"plain": [], "live": []}
    cpus: dict[str, list[float]] = {"plain": [], "live": []}
    lags: list[float] = []
    sizes = ""
    for n in range(args.rounds):
        for mode in ("plain", "live") if n % 2 == 0 else ("live", "plain"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    mode,
                    "--observations",
                    str(args.observations),
                    "--batch",
                    str(args.batch),
                    "--stream",
                    args.stream,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(out.splitlines()[-1])
            times[mode].append(result["seconds"])
            cpus[mode].append(result["cpu"])
            if mode == "live":
                lags.append(result["lag"])
                sizes = result["sizes"]
    n = len(observations_of(args))
    ratios = sorted(p / live for p, live in zip(times["plain"], times["live"], strict=True))
    print(
        f"ingest of {n:,} observations ({args.stream} stream) in batches of {args.batch} until"
        f" settled, one process"
        f" per store, {args.rounds} rounds in alternating order:"
    )
    for mode, label in (("plain", "without definitions"), ("live", "with 10 computed traits"
                        " and 10 audiences, every membership settled")):  # fmt: skip
        rates = ", ".join(f"{n / t:,.0f}" for t in times[mode])
        print(f"  {label}: {rates} obs/s")
    print(
        f"  ratio per round: {', '.join(f'{r:.2f}' for r in ratios)} (median"
        f" {statistics.median(ratios):.2f}x; target >= 0.8); the engine's lag after the last"
        f" ingest call: {', '.join(f'{lag:.1f}' for lag in lags)} s"
    )
    cpu_ratios = sorted(p / live for p, live in zip(cpus["plain"], cpus["live"], strict=True))
    print(
        f"  CPU seconds (every thread): without {', '.join(f'{c:.1f}' for c in cpus['plain'])};"
        f" with {', '.join(f'{c:.1f}' for c in cpus['live'])}; ratio median"
        f" {statistics.median(cpu_ratios):.2f}x"
    )
    print(f"  audience sizes: {sizes}")


def observations_of(args: argparse.Namespace) -> list[Any]:
    """The stream to ingest: bench/synthetic.py's (mostly new people, a few events each), or
    `sales`: bench/sales_context.py's customers, each identified once then sending 20-30
    events (mostly events of known customers), cut at `--observations`."""
    if args.stream == "synthetic":
        return list(synthetic_stream(args.observations, seed=11))
    from sales_context import observations

    customers = max(1, args.observations // 26)
    return list(itertools.islice(observations(customers), args.observations))


async def one_ingest(args: argparse.Namespace, rules: Rules) -> None:
    """One mode's ingest into a fresh store, timed until everything settled; prints JSON."""
    tune_gc()  # as the server does before it opens the store
    stream = observations_of(args)
    batches = [stream[i : i + args.batch] for i in range(0, len(stream), args.batch)]
    with tempfile.TemporaryDirectory(prefix="c360-audiences-") as tmp:
        store = EmbeddedStore(Path(tmp) / args.one)
        await store.open()
        graph = IdentityGraph(store, rules)
        engine = AudienceEngine(store, store.audiences, rules)
        if args.one == "live":
            graph.listeners.append(engine.touched)
            await engine.start()
            for name, definition in TRAITS.items():
                await engine.define_computed_trait(name, definition)
            for name, condition in AUDIENCES.items():
                await engine.define_audience(name, condition, None)
            await engine.settle()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        for batch in batches:
            await graph.ingest(batch)
        called = time.perf_counter()
        if args.one == "live":
            await engine.settle()
        await store.settle()
        done = time.perf_counter()
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu_seconds = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
        sizes = {a.name: a.size for a in await store.audiences.audiences()}
        await engine.stop()
        await store.close()
    print(
        json.dumps(
            {
                "seconds": done - start,
                "lag": done - called,
                "cpu": cpu_seconds,
                "sizes": ", ".join(f"{k} {v:,}" for k, v in sorted(sizes.items())),
            }
        )
    )


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
    built, members = await build_one(store, rules)
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


async def build_one(store: Any, rules: Rules) -> tuple[float, set[str]]:
    """Define the audience BUILT afresh and wait until it is READY: the seconds that took,
    and its members."""
    builder = AudienceEngine(store, store.audiences, rules)
    await builder.start()
    for old in await store.audiences.audiences():  # a kept store: build afresh
        await builder.delete_audience(old.id)
    start = time.perf_counter()
    audience = await builder.define_audience("repeat buyers", BUILT, None)
    await builder.settle()
    built = time.perf_counter() - start
    [after] = [a for a in await store.audiences.audiences() if a.id == audience.id]
    assert after.status is Status.READY
    members: set[str] = set()
    cursor = None
    while True:
        page = await store.audiences.members(audience.id, first=1000, after=cursor)
        members.update(m.customer_id for m in page.items)
        if not page.more:
            break
        cursor = page.cursor
    await builder.stop()
    return built, members


async def build(data_dir: Path, rules: Rules) -> None:
    """Build one audience over the store in `data_dir`, and compute it by one SQL query."""
    plain = EmbeddedStore(data_dir)
    await plain.open()
    profiles = len(plain.partition.members)
    events = plain._read().execute("SELECT count(*) FROM events").fetchone()[0]
    built, members = await build_one(plain, rules)
    await plain.close()
    db = sqlite3.connect(data_dir / "c360.sqlite3")
    start = time.perf_counter()
    expected = {pid for (pid,) in db.execute(PLAIN_SQL)}
    sql = time.perf_counter() - start
    db.close()
    print(f"build of one audience over {profiles:,} profiles / {events:,} events:")
    print(
        f"  c360 build: {built:.2f} s ({profiles / built:,.0f} profiles/s), {len(members):,}"
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream", choices=("synthetic", "sales"), default="synthetic")
    parser.add_argument("--one", choices=("plain", "live"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--neo4j",
        metavar="URI",
        help="build over Neo4j at URI instead (its database is WIPED and loaded with"
        " --build-customers, default 10,000); the ingest comparison is skipped",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
