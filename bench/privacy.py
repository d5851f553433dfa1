"""Privacy operations inside the embedded store, under ingest. Prints figures; asserts nothing.

    python bench/privacy.py [--observations 1000000] [--subject-events 10000]
                            [--tmp DIR]

A store of `--observations` synthetic observations holds one subject with
`--subject-events` track calls. The bench prints:

- the export rate of the subject's events (`IdentityGraph.export_events`), events/s;
- the erasure's time (`IdentityGraph.erase`, purge included), while a loop ingests batches
  of `LOOP_BATCH` observations beside it, and that loop's longest batch during the erasure
  against its median batch without one (the stall the erasure causes, as a ratio);
- retention over the store's events (about half of them older than the policy keeps): its
  time, what it deleted, and the process's peak RSS during it (VmHWM, reset before it
  through /proc/self/clear_refs) against its RSS before, and getrusage's peak for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import closing
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from synthetic import START, synthetic_stream  # noqa: E402

from identity_graph.adapters.embedded.journal import TABLES_FILE  # noqa: E402
from identity_graph.adapters.embedded.store import EmbeddedStore, tune_gc  # noqa: E402
from identity_graph.model import (  # noqa: E402
    Event,
    EventCategory,
    Identifier,
    MessageType,
    Observation,
)
from identity_graph.privacy import RetentionPolicy  # noqa: E402
from identity_graph.rules import Rules  # noqa: E402
from identity_graph.service import IdentityGraph  # noqa: E402

BATCH = 1000
LOOP_BATCH = 100
BASELINE_SECONDS = 3.0
SUBJECT = (
    Identifier("email", "subject@bench.example"),
    Identifier("user_id", "subject-user"),
    Identifier("anonymous_id", "subject-anon"),
)


def subject_stream(events: int) -> list[Observation]:
    """The subject's track calls, one identifier each (all three at first)."""
    out = []
    for n in range(events):
        seen = SUBJECT if n == 0 else (SUBJECT[n % len(SUBJECT)],)
        event = Event(
            MessageType.TRACK,
            "Order Completed",
            {"sku": f"subject-sku-{n}", "price": n % 300},
            EventCategory.BEHAVIOURAL,
        )
        out.append(
            Observation(
                f"subject-{n}",
                START + timedelta(seconds=n),
                "web",
                MessageType.TRACK,
                seen,
                event=event,
            )
        )
    return out


async def ingest_all(graph: IdentityGraph, stream: Iterable[Observation]) -> int:
    batch: list[Observation] = []
    count = 0
    for observation in stream:
        batch.append(observation)
        if len(batch) == BATCH:
            await graph.ingest(batch)
            count += len(batch)
            batch = []
    if batch:
        await graph.ingest(batch)
        count += len(batch)
    return count


class IngestLoop:
    """Ingests batches of `LOOP_BATCH` new observations one after another, noting when each
    began and how long it took."""

    def __init__(self, graph: IdentityGraph) -> None:
        self.graph = graph
        self.stream = synthetic_stream(10_000_000, seed=2)
        self.timings: list[tuple[float, float]] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            batch = [next(self.stream) for _ in range(LOOP_BATCH)]
            began = time.perf_counter()
            await self.graph.ingest(batch)
            self.timings.append((began, time.perf_counter() - began))

    def during(self, start: float, end: float) -> list[float]:
        """The durations of the batches that overlapped [start, end]."""
        return [took for began, took in self.timings if began <= end and began + took >= start]


async def count_events(store: EmbeddedStore) -> int:
    """The events the store holds (read from its tables file)."""
    with closing(sqlite3.connect(store.data_dir / TABLES_FILE)) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def main(observations: int, subject_events: int, tmp: str | None) -> None:
    tune_gc()
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        store = EmbeddedStore(Path(work) / "data")
        await store.open()
        graph = IdentityGraph(store, Rules.default())
        began = time.perf_counter()
        await ingest_all(graph, subject_stream(subject_events))
        await ingest_all(graph, synthetic_stream(observations, seed=1))
        await store.settle()
        print(
            f"store: {observations:,} observations + a subject of {subject_events:,} events,"
            f" built in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        [subject] = set((await store.profile_ids([i.key for i in SUBJECT])).values())

        began = time.perf_counter()
        exported = 0
        async for _ in graph.export_events(subject):
            exported += 1
        took = time.perf_counter() - began
        print(f"export: {exported:,} events in {took:.2f} s, {exported / took:,.0f} events/s")

        loop = IngestLoop(graph)
        running = asyncio.ensure_future(loop.run())
        await asyncio.sleep(BASELINE_SECONDS)
        baseline = [took for _, took in loop.timings]
        erase_began = time.perf_counter()
        receipt = await graph.erase(subject, reason="bench", actor="bench")
        erase_ended = time.perf_counter()
        await asyncio.sleep(0.5)
        loop.running = False
        await running
        during = loop.during(erase_began, erase_ended)
        median = statistics.median(baseline)
        longest = max(during, default=0.0)
        print(
            f"erase: {receipt.events:,} events, {receipt.identifiers} identifiers in"
            f" {erase_ended - erase_began:.2f} s (purge included)"
        )
        print(
            f"ingest beside it: batches of {LOOP_BATCH}, without an erasure median"
            f" {median * 1000:.1f} ms, longest {max(baseline) * 1000:.1f} ms ({len(baseline)}"
            f" batches); during it {len(during)} batches, the longest {longest * 1000:.1f} ms"
            f" ({longest / median:.1f}x the median)"
        )

        await store.settle()
        span = timedelta(milliseconds=100 * observations)
        now = START + timedelta(days=1) + span / 2
        retention = IdentityGraph(store, Rules.default(), clock=lambda: now)
        policy = RetentionPolicy(event_days=1, message_days=None, conflict_days=None)
        events = await count_events(store)
        before = rss_kb("VmRSS")
        peak_reset = reset_peak_rss()
        began = time.perf_counter()
        report = await retention.apply_retention(policy, batch=5000)
        took = time.perf_counter() - began
        peak = rss_kb("VmHWM")
        print(
            f"retention: {report.events:,} of {events:,} events deleted in {took:.1f} s"
            f" ({report.events / took:,.0f} events/s)"
        )
        if peak_reset:
            print(
                f"retention memory: RSS {before / 1024:,.0f} MB before, peak during it"
                f" {peak / 1024:,.0f} MB (+{(peak - before) / 1024:,.0f} MB)"
            )
        print(
            "peak RSS of the whole run (getrusage):"
            f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
        )
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--subject-events", type=int, default=10_000)
    parser.add_argument("--tmp", default=None, help="where the bench's data dir goes")
    args = parser.parse_args()
    asyncio.run(main(args.observations, args.subject_events, args.tmp))
