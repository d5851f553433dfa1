"""Privacy operations as the API and the CLI run them, on the embedded store: how long a
data-subject export and an erasure take, for a typical person and for one with very many
events, among other people. Prints the figures; asserts nothing.

    python bench/privacy_api.py [--people 10000] [--events 100000 1000000] [--tmp DIR]

Each subject gets `--events` track calls (on three identifiers, with a few properties); the
other people a handful of messages each. The export is the one `c360 privacy export` writes
(`graph_api.privacy.export.chunks`, to a file), and, up to its limit, the one
`dataSubjectExport` answers with (`document`). The erasure is `eraseCustomer`'s, purge
included: when it returns, no file of the data directory holds the person's values.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from graph_api.access.auth import Principal  # noqa: E402
from graph_api.privacy import erasure, export  # noqa: E402
from graph_api.services import Services, build_services, tune_runtime  # noqa: E402
from graph_api.settings import Settings  # noqa: E402
from identity_graph.model import (  # noqa: E402
    Event,
    EventCategory,
    Identifier,
    MessageType,
    Observation,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 500
OPERATOR = Principal("bench", frozenset({"admin"}), "api_key")


def person(n: int, events: int) -> list[Observation]:
    """An identify call, then `events` track calls, of person `n`."""
    ids = (
        Identifier("user_id", f"user-{n}"),
        Identifier("email", f"person{n}@example.com"),
        Identifier("anonymous_id", f"anon-{n}"),
    )
    made = [
        Observation(
            f"id-{n}", T0, "bench", MessageType.IDENTIFY, ids, traits={"name": f"Person {n}"}
        )
    ]
    for i in range(events):
        event = Event(
            MessageType.TRACK,
            "Product Viewed",
            {"sku": f"sku-{i % 997}", "price": i % 100, "path": f"/p/{n}/{i}"},
            EventCategory.BEHAVIOURAL,
        )
        at = T0 + timedelta(seconds=i)
        made.append(
            Observation(f"ev-{n}-{i}", at, "bench", MessageType.TRACK, ids[i % 3 : i % 3 + 1],
                        event=event)
        )  # fmt: skip
    return made


async def ingest(services: Services, observations: list[Observation]) -> None:
    for start in range(0, len(observations), BATCH):
        await services.graph.ingest(observations[start : start + BATCH])


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def one_subject(services: Services, n: int, events: int, out: Path) -> None:
    started = time.perf_counter()
    await ingest(services, person(n, events))
    loaded = time.perf_counter() - started
    customer = (await services.store.profile_ids([f"user_id:user-{n}"]))[f"user_id:user-{n}"]
    print(f"subject with {events:,} events (ingested in {loaded:.1f} s):")

    for when in ("just after ingest (waits for their copy)", "again"):
        started = time.perf_counter()
        with out.open("w", encoding="utf-8") as handle:
            chunks = export.chunks(await export.start_export(services, customer, OPERATOR))
            async for chunk in chunks:
                handle.write(chunk)
            size = handle.tell() / 2**20
        took = time.perf_counter() - started
        print(
            f"  c360 privacy export, {when}: {took:.2f} s ({events / took:,.0f} events/s),"
            f" {size:,.1f} MB, peak RSS so far {rss_mb():,.0f} MB"
        )
    if events <= export.GRAPHQL_MAX_EVENTS:
        started = time.perf_counter()
        await export.document(await export.start_export(services, customer, OPERATOR))
        print(f"  dataSubjectExport document: {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    receipt = await erasure.erase(services, customer, OPERATOR, reason="bench")
    took = time.perf_counter() - started
    print(f"  eraseCustomer: {took:.2f} s for {receipt.events:,} events, purge included")


async def run(people: int, sizes: list[int], data_dir: Path) -> None:
    services = build_services(Settings(data_dir=data_dir))
    await services.store.open()
    try:
        started = time.perf_counter()
        crowd = [o for n in range(people) for o in person(n, 5)]
        await ingest(services, crowd)
        print(f"{people:,} other people, {len(crowd):,} messages, in"
              f" {time.perf_counter() - started:.1f} s")  # fmt: skip
        await one_subject(services, people, 20, data_dir.parent / "typical.json")
        for i, events in enumerate(sizes):
            await one_subject(services, people + 1 + i, events, data_dir.parent / f"{i}.json")
    finally:
        await services.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--events", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--tmp", type=Path, default=None, help="where the data dir goes")
    args = parser.parse_args()
    tune_runtime()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        asyncio.run(run(args.people, args.events, Path(tmp) / "data"))


if __name__ == "__main__":
    main()
