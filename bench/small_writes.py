"""Small writes into the embedded store: one observation per write (a tracking call each),
sent by 1 writer and then by many at once, through the domain API. Prints writes/s at each
concurrency, its ratio to one writer's (the baseline of the same run), and how many writes
each journal commit held. Asserts nothing.

    python bench/small_writes.py [--writes 6000] [--concurrency 1 8 64]

Each write must be in the journal (an fsync) before it is acknowledged; writes that arrive
while a commit runs share the next one (group commit), so many writers share fsyncs that one
writer pays alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_stream  # noqa: E402

from identity_graph.adapters.embedded.store import EmbeddedStore, tune_gc  # noqa: E402
from identity_graph.model import Observation  # noqa: E402
from identity_graph.rules import Rules  # noqa: E402
from identity_graph.service import IdentityGraph  # noqa: E402


async def measure(stream: list[Observation], writers: int, data_dir: Path) -> tuple[float, int]:
    """(writes/s, journal commits) for `stream` written one observation per write by
    `writers` concurrent writers, into a new store."""
    store = EmbeddedStore(data_dir)
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    todo = iter(stream)

    async def writer() -> None:
        for observation in todo:
            await graph.ingest([observation])

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    commits = store.commits
    await store.close()
    return len(stream) / elapsed, commits


async def main(writes: int, concurrency: list[int]) -> None:
    tune_gc()
    stream = list(synthetic_stream(writes, seed=7))
    figures: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for writers in concurrency:
            rate, commits = await measure(stream, writers, Path(tmp) / f"w{writers}")
            figures[writers] = rate
            print(
                f"{writers:>3} writers: {rate:>8,.0f} writes/s,"
                f" {writes / commits:5.1f} writes per journal commit"
                + (
                    f", {rate / figures[concurrency[0]]:.1f}x {concurrency[0]} writer's"
                    if writers != concurrency[0]
                    else ""
                ),
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    args = parser.parse_args()
    asyncio.run(main(args.writes, args.concurrency))
