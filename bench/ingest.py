"""Ingest a synthetic stream into the embedded store and print what it cost.

    python bench/ingest.py                 # 1,000,000 observations
    python bench/ingest.py --n 100000 --events 1000000
    python bench/ingest.py --n 200000 --rate 8000   # paced: what the copier costs at 8k/s

Prints observations/s (acknowledged, i.e. durable in the journal, and copied into the query
tables by the copier process), the time of `scipy.sparse.csgraph.connected_components` on the
same links and our ratio to it, the CPU time of this process and of the copier process
during the ingest, lookup p50/p99 at ~10k profiles (a store of its own, its
people seen as often as the full stream's) and at full size, each store looked up in a
process of its own that holds only it (runs at the two sizes taken in turns at the end,
after the extra events if any, with no copier running), RSS of the store's process and of
its copier after load, and the restart time of the store. Runs with
the garbage-collector thresholds the server uses (`tune_gc`); `--default-gc` keeps
CPython's. No assertions: the targets are in issue 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

sys.path.insert(0, str(Path(__file__).parent))

from restart import rss_mb  # noqa: E402
from synthetic import synthetic_stream  # noqa: E402

from identity_graph.adapters.embedded.store import EmbeddedStore, tune_gc  # noqa: E402
from identity_graph.model import Observation  # noqa: E402
from identity_graph.rules import Rules  # noqa: E402
from identity_graph.service import IdentityGraph  # noqa: E402


def rss_and_peak_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    return rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_rss_mb(store: EmbeddedStore) -> float:
    """Resident set size of the store's copier process in MB (0 if it is not running)."""
    copier = store._copier.process
    if copier is None or copier.poll() is not None:
        return 0.0
    return rss_mb(copier.pid)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a running process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir()) / 2**20


def scipy_seconds(stream: Sequence[Observation], rules: Rules) -> tuple[float, float, int]:
    """(seconds to build the matrix and label components, seconds of labelling alone, count)."""
    start = time.perf_counter()
    index: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for obs in stream:
        keys = [i.key for i in obs.identifiers if not rules.is_blocked(i.value)]
        if not keys:
            continue
        first = index.setdefault(keys[0], len(index))
        for key in keys[1:]:
            rows.append(first)
            cols.append(index.setdefault(key, len(index)))
    n = len(index)
    matrix = coo_array(
        (np.ones(len(rows), dtype=np.int8), (np.array(rows), np.array(cols))), shape=(n, n)
    ).tocsr()
    labelled = time.perf_counter()
    count, _ = connected_components(matrix, directed=False)
    end = time.perf_counter()
    return end - start, end - labelled, count


SMALL_STREAM = 30_000
"""observations of the store the 10k-profile lookup figure is measured on: the generator's
stream of that length, ~10k people seen ~3 times each like the full stream's, so the two
figures compare profiles of one shape (a prefix of the full stream would hold people seen
once, with fewer identifiers, and cheaper to look up whatever the store's size)"""
LOOKUP_RUNS = 6
"""runs of lookups at each size, taken in turns"""


async def fill_small_store(args: argparse.Namespace, rules: Rules, small_dir: Path) -> None:
    """Fill a store of ~10k profiles (`SMALL_STREAM`) in `small_dir`."""
    store = EmbeddedStore(small_dir)
    await store.open()
    stream = list(synthetic_stream(SMALL_STREAM, seed=args.seed))
    await ingest(IdentityGraph(store, rules), stream, args.batch)
    await store.close()


@dataclass
class Latencies:
    """Lookup latencies at the two sizes, in ms: each run's (p50, p99)."""

    small: list[tuple[float, float]]
    full: list[tuple[float, float]]

    def median(self, runs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    def ratios(self) -> list[float]:
        """each pair of runs' p99 at full size over that at 10k"""
        return [f[1] / s[1] for s, f in zip(self.small, self.full, strict=True)]


class LookupProcess:
    """A store looked up in a process of its own (`lookup.py --on-request`), run by run."""

    def __init__(self, process: asyncio.subprocess.Process, opened: dict[str, float]) -> None:
        self.process = process
        self.profiles = int(opened["profiles"])
        self.open_seconds = opened["open"]

    @classmethod
    async def start(cls, data_dir: Path, samples: int, default_gc: bool) -> LookupProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).parent / "lookup.py"),
            "--data-dir",
            str(data_dir),
            "--samples",
            str(samples),
            "--on-request",
            *(["--default-gc"] if default_gc else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process, await cls._reply(process))

    @staticmethod
    async def _reply(process: asyncio.subprocess.Process) -> dict[str, float]:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"lookup process {process.pid} exited")
        reply: dict[str, float] = json.loads(line)
        return reply

    async def run(self, seed: int) -> tuple[float, float]:
        """(p50, p99) in ms of one run of lookups."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{seed}\n".encode())
        await self.process.stdin.drain()
        reply = await self._reply(self.process)
        return reply["p50"], reply["p99"]

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


async def paired_latencies(
    small_dir: Path, full_dir: Path, samples: int, default_gc: bool
) -> tuple[Latencies, LookupProcess, LookupProcess]:
    """Lookups in the small store and in the full one, run after run in turns (small, full,
    full, small, ...). A p99 of tenths of a millisecond moves with whatever else the machine
    does, and this machine's speed drifts by 10-30% over minutes: measured minutes apart,
    the two sizes' ratio measured the drift as much as the size.

    Each store is looked up in a process of its own that opened it, as a deployment of that
    size holds it: not in this one, which also holds the generated stream (gigabytes of
    objects no server holds). Both are open before the first run, and no copier runs."""
    small = await LookupProcess.start(small_dir, samples, default_gc)
    try:
        full = await LookupProcess.start(full_dir, samples, default_gc)
    except BaseException:
        await small.stop()
        raise
    found = Latencies([], [])
    try:
        for run in range(LOOKUP_RUNS):
            for process, runs in (
                ((small, found.small), (full, found.full))
                if run % 2 == 0
                else ((full, found.full), (small, found.small))
            ):
                runs.append(await process.run(run))
    finally:
        await small.stop()
        await full.stop()
    return found, small, full


async def ingest(
    graph: IdentityGraph, stream: Sequence[Observation], batch: int, rate: float = 0
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to ingest `stream` in batches, at most
    `rate` observations a second if it is given."""
    start, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, len(stream), batch):
        await graph.ingest(stream[offset : offset + batch])
        ahead = offset / rate - (time.perf_counter() - start) if rate else 0
        if ahead > 0:
            await asyncio.sleep(ahead)
    return time.perf_counter() - start, time.process_time() - cpu


def more_events(stream: Sequence[Observation], n: int, batch: int) -> Iterator[list[Observation]]:
    """`n` track calls replayed on the stream's identifiers under new message ids, in
    batches (made as they are needed, so they do not add to the memory measured)."""
    tracks = [o for o in stream if o.event is not None]
    for start in range(0, n, batch):
        yield [
            replace(
                tracks[i % len(tracks)],
                message_id=f"extra-{i}",
                identifiers=(tracks[i % len(tracks)].identifiers[0],),
            )
            for i in range(start, min(n, start + batch))
        ]


async def run(args: argparse.Namespace) -> Path:
    if not args.default_gc:
        tune_gc()
    rules = Rules.default()
    start = time.perf_counter()
    stream = list(synthetic_stream(args.n, seed=args.seed))
    print(f"generated {len(stream):,} observations in {time.perf_counter() - start:.1f} s")
    small_dir = Path(tempfile.mkdtemp(prefix="c360-bench-small-", dir=args.tmp))
    await fill_small_store(args, rules, small_dir)
    data_dir = Path(tempfile.mkdtemp(prefix="c360-bench-", dir=args.tmp))
    store = EmbeddedStore(data_dir)
    await store.open()
    graph = IdentityGraph(store, rules)
    acked, cpu = await ingest(graph, stream, args.batch, args.rate)
    start = time.perf_counter()
    copier = store._copier.process
    await store.settle()
    took = acked + time.perf_counter() - start
    copier_cpu = cpu_seconds(copier.pid) if copier is not None else 0.0
    copier_rss = child_rss_mb(store)  # before the lookups, during which it may exit idle
    rate = len(stream) / took
    paced = f" paced at {args.rate:,.0f} obs/s," if args.rate else ""
    print(
        f"ingest:{paced} {len(stream):,} observations in {took:.1f} s = {rate:,.0f} obs/s into"
        f" the tables ({len(stream) / acked:,.0f} obs/s acknowledged, i.e. journalled;"
        f" batches of {args.batch}); CPU {cpu:.1f} s in this process, {copier_cpu:.1f} s in the"
        f" copier; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    (links,) = store._read().execute("SELECT count(*) FROM links").fetchone()
    print(
        f"store: {len(store.partition.members):,} profiles,"
        f" {len(store.partition.profile_of):,} identifiers,"
        f" {links:,} links"
    )

    total, labelling, count = scipy_seconds(stream, rules)
    print(
        f"scipy connected_components: {labelling * 1000:.0f} ms labelling,"
        f" {total:.2f} s with building the matrix; {count:,} components"
    )
    print(
        f"ratio ours/scipy: {took / labelling:,.0f}x labelling alone,"
        f" {took / total:,.1f}x with matrix building"
    )

    current, peak = rss_and_peak_mb()
    print(
        f"RSS after load: {current:,.0f} MB (peak {peak:,.0f} MB, stream held in memory;"
        f" {rss_mb(field='RssFile'):,.0f} MB of it file pages the reader mapped);"
        f" copier process {copier_rss:,.0f} MB right after the ingest"
    )
    copier = store._copier.process
    try:
        if copier is not None:
            await asyncio.to_thread(copier.wait, store.copier_idle_seconds + 30)
        print(f"copier after {store.copier_idle_seconds:.0f} s without writes: exited")
    except subprocess.TimeoutExpired:
        print("copier: still running 30 s after its idle time")

    if args.events:
        start = time.perf_counter()
        for extra in more_events(stream, args.events, args.batch):
            await graph.ingest(extra)
        await store.settle()
        took = time.perf_counter() - start
        current, peak = rss_and_peak_mb()
        print(
            f"{args.events:,} more events in {took:.1f} s ({args.events / took:,.0f}/s);"
            f" RSS {current:,.0f} MB (peak {peak:,.0f} MB); copier {child_rss_mb(store):,.0f} MB"
        )

    del stream, graph
    await store.close()
    start = time.perf_counter()
    store = EmbeddedStore(data_dir)
    await store.open()
    print(
        f"restart (close + open): {time.perf_counter() - start:.1f} s,"
        f" {len(store.partition.members):,} profiles"
    )
    await store.close()  # a data dir is open in one process at a time
    print(f"data dir {data_dir}: {dir_mb(data_dir):,.0f} MB")

    found, small, full = await paired_latencies(small_dir, data_dir, args.samples, args.default_gc)
    shutil.rmtree(small_dir)
    (p50_small, p99_small), (p50, p99) = found.median(found.small), found.median(found.full)
    print(
        f"lookups, {LOOKUP_RUNS} runs of {args.samples:,} at each size taken in turns, each"
        f" size in a process of its own (medians): at {small.profiles:,} profiles (a"
        f" {SMALL_STREAM:,}-observation stream) p50 {p50_small:.3f} ms, p99 {p99_small:.3f} ms;"
        f" at {full.profiles:,} profiles p50 {p50:.3f} ms, p99 {p99:.3f} ms"
        f" (opened in {full.open_seconds:.1f} s); p99 full/small {p99 / p99_small:.2f}"
        f" (pair by pair: {', '.join(f'{r:.2f}' for r in found.ratios())})"
    )
    for name, runs in (("small", found.small), ("full", found.full)):
        print(f"  p99 at {name} size, run by run: {', '.join(f'{r[1]:.3f}' for r in runs)} ms")
    return data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=0, help="pace the ingest at this many observations/s"
    )
    parser.add_argument("--events", type=int, default=0, help="extra events after the load")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tmp", default=None, help="where to make the data dir")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep CPython's garbage-collector thresholds"
    )
    data_dir = asyncio.run(run(parser.parse_args()))
    fresh = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "restart.py"), str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    print(fresh.stdout.strip())


if __name__ == "__main__":
    main()
