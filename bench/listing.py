"""`customers(first: 20, where: ...)` on a small and a large embedded store: the latency of a
page should not grow with the store (issue 19: at most 2x from 10k to 1M profiles).

python bench/listing.py                      # 10k against 300k profiles, stores in a temp dir
python bench/listing.py --large 1000000 --data-dir DIR   # keeps the stores for later runs

Each customer is one identify call: a user id, an email for every other one, consent for
analytics granted by every tenth, a `plan` trait (`pro` for every third). The query goes
through the whole app (GraphQL over ASGI, admin key), one request at a time; each case is
measured in both stores in alternating rounds, so both see the same moments of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from graph_api.app import create_app  # noqa: E402
from graph_api.settings import Secret, Settings  # noqa: E402
from identity_graph.adapters.embedded.store import EmbeddedStore  # noqa: E402
from identity_graph.model import ConsentStatus, Identifier, MessageType, Observation  # noqa: E402
from identity_graph.rules import Rules  # noqa: E402
from identity_graph.service import IdentityGraph  # noqa: E402

KEY = "c360_bench-admin-key-Lq4Zp8Tx2Rv7Nk3Wb"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
CASES = {
    "no filter": "",
    "has kind": 'where: {hasKind: "email"}',
    "consent": 'where: {consentGranted: "analytics"}',
    "kind + consent": 'where: {hasKind: "email", consentGranted: "analytics"}',
    "trait": 'where: {trait: {name: "plan", value: "pro"}}',
}


def observations(customers: int) -> Iterator[Observation]:
    for i in range(customers):
        ids = [Identifier("user_id", f"u{i:08d}")]
        if i % 2 == 0:
            ids.append(Identifier("email", f"c{i}@example.com"))
        yield Observation(
            message_id=f"m{i}",
            timestamp=T0 + timedelta(seconds=i),
            source="bench",
            type=MessageType.IDENTIFY,
            identifiers=tuple(ids),
            traits={"plan": "pro" if i % 3 == 0 else "free"},
            consent={"analytics": ConsentStatus.GRANTED} if i % 10 == 0 else {},
        )


async def load(data_dir: Path, customers: int) -> None:
    """Fill `data_dir` with `customers` customers, unless it holds them already."""
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        held = len(store.partition.members)
        if held == customers:
            print(f"  {data_dir}: {held:,} profiles already", flush=True)
            return
        if held:
            raise SystemExit(f"{data_dir} holds {held:,} profiles, not {customers:,}")
        graph = IdentityGraph(store, Rules.default())
        started = time.perf_counter()
        batch: list[Observation] = []
        for observation in observations(customers):
            batch.append(observation)
            if len(batch) == 2000:
                await graph.ingest(batch)
                batch = []
        if batch:
            await graph.ingest(batch)
        print(
            f"  loaded {customers:,} customers in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    finally:
        await store.close()


def query(where: str, total: bool) -> str:
    args = f"first: 20{', ' + where if where else ''}"
    return (
        f"{{ customers({args}) {{ {'totalCount ' if total else ''}edges {{ node {{ id }} }} }} }}"
    )


class Client:
    """An app over one data directory, and the time of one request to it."""

    def __init__(self, data_dir: Path) -> None:
        settings = Settings(data_dir=data_dir, bootstrap_admin_key=Secret(KEY)).development()
        self.app = create_app(settings)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://bench"
        )

    async def ms(self, text: str) -> float:
        start = time.perf_counter_ns()
        response = await self.http.post(
            "/graphql", json={"query": text}, headers={"Authorization": f"Bearer {KEY}"}
        )
        took = (time.perf_counter_ns() - start) / 1e6
        body: dict[str, Any] = response.json()
        assert response.status_code == 200 and "errors" not in body, response.text
        assert len(body["data"]["customers"]["edges"]) == 20
        return took


async def measure(dirs: dict[int, Path], requests: int, rounds: int) -> None:
    clients = {size: Client(path) for size, path in dirs.items()}
    async with contextlib.AsyncExitStack() as started:
        for client in clients.values():
            await started.enter_async_context(client.app.router.lifespan_context(client.app))
            started.push_async_callback(client.http.aclose)
        texts = {
            (case, total): query(where, total)
            for case, where in CASES.items()
            for total in (False, True)
        }
        times: dict[tuple[int, str, bool], list[float]] = {}
        for text in texts.values():  # warm up: plans, caches, the copier's last window
            for client in clients.values():
                for _ in range(20):
                    await client.ms(text)
        for _ in range(rounds):
            for (case, total), text in texts.items():
                for size, client in clients.items():
                    found = times.setdefault((size, case, total), [])
                    found.extend([await client.ms(text) for _ in range(requests)])
        small, large = sorted(dirs)
        print(
            f"\ncustomers(first: 20, ...) through the app, p50 ms of {rounds * requests} requests"
        )
        print(f"{'case':<16}{'totalCount':<12}{small:>12,}{large:>12,}{'ratio':>8}")
        for case, total in texts:
            a = statistics.median(times[(small, case, total)])
            b = statistics.median(times[(large, case, total)])
            print(f"{case:<16}{'yes' if total else 'no':<12}{a:>12.2f}{b:>12.2f}{b / a:>8.2f}")


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="c360-listing-") as tmp:
        root = Path(args.data_dir or tmp)
        dirs = {size: root / f"p{size}" for size in (args.small, args.large)}
        for size, path in dirs.items():
            print(f"store of {size:,} customers:", flush=True)
            await load(path, size)
        await measure(dirs, args.requests, args.rounds)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=50, help="per case, store and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", help="keep the stores here (reused when present)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
