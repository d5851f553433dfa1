"""The API on the Neo4j store, over real HTTP: `/v1/batch` ingest, the sales-context query, and
the Cypher round trips of a GraphQL request. Prints figures, asserts nothing. WIPES the database.

    NEO4J_URI=$(tests/neo4j/server start | tail -n1) python bench/neo4j_api.py
    python bench/neo4j_api.py --uri bolt://127.0.0.1:7687 --messages 20000 --clients 4

1. The naive baseline of bench/neo4j_ingest.py (one auto-commit query per identifier, link and
   event) on the first `--baseline-n` messages of the stream, mapped to observations the way
   the tracking API maps them.
2. A uvicorn process (`C360_STORE=neo4j`, as `c360 serve --store neo4j` runs it) fed
   Segment-format batches of `--batch` messages by `--clients` concurrent HTTP clients: the
   stream of bench/batch_ingest.py. Prints messages/s and the ratio to the baseline.
3. The sales-context query of bench/sales_context.py (a customer by email with traits,
   identifiers and the last 20 events) for random ingested customers, `--sales-clients`
   concurrent keep-alive connections: p50 and p99.
4. In process (httpx.ASGITransport), `store.round_trips` per GraphQL request for
   `customers(first: 1)` and `customers(first: 50)` selecting identifiers, traits and events:
   the count must not grow with the number of customers returned.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from batch_ingest import batch, free_port  # noqa: E402
from neo4j_ingest import naive_run  # noqa: E402
from sales_context import QUERY as SALES_QUERY  # noqa: E402

from graph_api.app import create_app  # noqa: E402
from graph_api.settings import Secret, Settings  # noqa: E402
from graph_api.tracking.segment import SegmentMapper  # noqa: E402
from identity_graph.adapters.neo4j.store import Neo4jStore  # noqa: E402
from identity_graph.model import Observation  # noqa: E402
from identity_graph.rules import Rules  # noqa: E402

KEY = "c360_bench-neo4j-admin-key-Gs3Yb9Mc5Hj7Qw2Ez4Fu"
HASH_KEY = "bench-neo4j-hash-key"
LIST_QUERY = """query List($first: Int!) {
  customers(first: $first) {
    totalCount
    edges { node {
      id
      traits { name email phone company }
      identifiers { kind value firstSeen lastSeen }
      events(first: 20) { totalCount edges { node { type name timestamp properties } } }
    } }
  }
}"""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def observations(messages: int) -> list[Observation]:
    """The ingest stream's first messages as the tracking API maps them."""
    mapper = SegmentMapper(Rules.default(), source="segment")
    now = datetime.now(UTC)
    return [mapper.message(raw, received_at=now) for raw in batch(0, messages)]


async def wipe(uri: str) -> None:
    store = Neo4jStore(uri, auth=None)
    await store.open()
    await store.wipe()
    await store.close()


def start_server(uri: str, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "C360_STORE": "neo4j",
        "NEO4J_URI": uri,
        "C360_DATA_DIR": data_dir,
        "C360_BOOTSTRAP_ADMIN_KEY": KEY,
        "C360_HASH_KEY": HASH_KEY,
        "C360_GRAPHIQL": "false",
    }
    command = [sys.executable, "-m", "uvicorn", "graph_api.app:create_app", "--factory",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.terminate()
            raise SystemExit("the server did not start")
        time.sleep(0.2)


async def ingest(url: str, messages: int, size: int, clients: int) -> tuple[float, list[float]]:
    """Seconds to send the stream over `/v1/batch`, and each batch's latency."""
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for start in range(0, messages, size):
        queue.put_nowait(batch(start, min(size, messages - start)))
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, auth=(KEY, ""), timeout=120) as http:
            while not queue.empty():
                body = {"batch": queue.get_nowait()}
                started = time.perf_counter()
                response = await http.post("/v1/batch", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, sorted(latencies)


async def sales(url: str, customers: int, requests: int, clients: int) -> list[float]:
    """Latencies of the sales-context query for random customers, `clients` at a time."""
    rng = random.Random(5)
    emails = [f"c{rng.randrange(customers)}@example.com" for _ in range(requests + 8 * clients)]
    warm, timed = emails[: 8 * clients], emails[8 * clients :]
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {KEY}"}

    async def client(share: list[str], record: bool) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            for email in share:
                body = {"query": SALES_QUERY, "variables": {"email": email}}
                started = time.perf_counter()
                response = await http.post("/graphql", json=body)
                elapsed = time.perf_counter() - started
                found = response.json()
                if response.status_code != 200 or found.get("errors"):
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                if found["data"]["customer"] is None:
                    raise RuntimeError(f"no customer {email}")
                if record:
                    latencies.append(elapsed)

    await asyncio.gather(*(client(warm[i::clients], False) for i in range(clients)))
    await asyncio.gather(*(client(timed[i::clients], True) for i in range(clients)))
    return sorted(latencies)


async def round_trips(uri: str, sizes: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Store round trips of one GraphQL request listing `n` customers: n -> (trips, returned)."""
    settings = Settings(
        store="neo4j",
        neo4j_uri=uri,
        data_dir=Path(tempfile.gettempdir()),
        bootstrap_admin_key=Secret(KEY),
        hash_key=Secret(HASH_KEY),
        graphiql=False,
    )
    app = create_app(settings)
    store = app.state.services.store
    result: dict[int, tuple[int, int]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://c360", headers=headers
        ) as http:
            for n in sizes:
                body = {"query": LIST_QUERY, "variables": {"first": n}}
                await http.post("/graphql", json=body)  # the key lookup is not what we count
                before = store.round_trips
                response = await http.post("/graphql", json=body)
                trips = store.round_trips - before
                found = response.json()
                if found.get("errors"):
                    raise RuntimeError(str(found["errors"])[:300])
                result[n] = (trips, len(found["data"]["customers"]["edges"]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--uri", default=os.environ.get("NEO4J_URI") or os.environ.get("NEO4J_TEST_URI")
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline-n", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=1_000, help="sales-context requests")
    parser.add_argument("--sales-clients", type=int, default=8)
    args = parser.parse_args()
    if not args.uri:
        sys.exit("give --uri or set NEO4J_URI (tests/neo4j/server start prints one)")

    rust = importlib.util.find_spec("neo4j._rust") is not None
    print(f"Neo4j at {args.uri}; neo4j-rust-ext {'active' if rust else 'not installed'}")

    baseline = observations(args.baseline_n)
    elapsed, queries = asyncio.run(naive_run(args.uri, baseline))
    naive_rate = len(baseline) / elapsed
    print(
        f"naive:        {len(baseline):>7,} messages in {elapsed:6.2f} s = {naive_rate:7,.0f} msg/s"
        f"  ({queries} auto-commit queries)"
    )

    asyncio.run(wipe(args.uri))
    with tempfile.TemporaryDirectory() as data_dir:
        server, url = start_server(args.uri, data_dir)
        try:
            elapsed, lat = asyncio.run(ingest(url, args.messages, args.batch, args.clients))
            rate = args.messages / elapsed
            print(
                f"/v1/batch:    {args.messages:>7,} messages in {elapsed:6.2f} s = {rate:7,.0f}"
                f" msg/s  (batches of {args.batch}, {args.clients} clients; batch p50"
                f" {statistics.median(lat) * 1000:.0f} ms, p99 {percentile(lat, 0.99) * 1000:.0f}"
                f" ms)"
            )
            print(f"ratio:        {rate / naive_rate:.1f}x the naive baseline")
            customers = args.messages // 4
            lat = asyncio.run(sales(url, customers, args.requests, args.sales_clients))
            print(
                f"sales query:  {len(lat)} requests, {args.sales_clients} clients, over"
                f" {customers:,} customers: p50 {statistics.median(lat) * 1000:.1f} ms,"
                f" p99 {percentile(lat, 0.99) * 1000:.1f} ms"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)

    for n, (trips, returned) in asyncio.run(round_trips(args.uri, (1, 50))).items():
        print(
            f"round trips:  customers(first: {n}) returned {returned} customers"
            f" with {trips} Cypher round trips"
        )


if __name__ == "__main__":
    main()
