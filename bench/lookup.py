"""Profile lookup by identifier: `profile_ids` then `profiles`, one customer at a time.

python bench/lookup.py --data-dir DIR     # an embedded store filled by bench/ingest.py
python bench/lookup.py --data-dir DIR --on-request
    # open the store and print {"open": s, "profiles": n} as a JSON line, then for each
    # seed read from standard input print one run's {"p50": ms, "p99": ms}: bench/ingest.py
    # takes runs in a store of each size in turns, so that both are measured in the same
    # moments
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from identity_graph.adapters.embedded.store import EmbeddedStore, tune_gc
from identity_graph.store import IdentityStore


async def lookup_latencies(
    store: IdentityStore, keys: Sequence[str], *, samples: int, seed: int = 1
) -> tuple[float, float]:
    """(p50, p99) in milliseconds of looking one customer up by one of `keys`."""
    rng = random.Random(seed)
    chosen = [rng.choice(keys) for _ in range(samples)]
    for key in chosen[:200]:
        await _lookup(store, key)
    times = []
    for key in chosen:
        start = time.perf_counter_ns()
        await _lookup(store, key)
        times.append((time.perf_counter_ns() - start) / 1e6)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[98]


async def _lookup(store: IdentityStore, key: str) -> None:
    owner = await store.profile_ids([key])
    found = await store.profiles([owner[key]])
    if owner[key] not in found:
        raise RuntimeError(f"profile of {key} is missing")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--on-request", action="store_true", help="runs on request (see above)")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep CPython's garbage-collector thresholds"
    )
    args = parser.parse_args()
    if not args.default_gc:
        tune_gc()  # as the server does before it opens the store
    start = time.perf_counter()
    store = EmbeddedStore(args.data_dir)
    await store.open()
    keys = sorted(store.partition.profile_of)
    if args.on_request:
        opened = {"open": time.perf_counter() - start, "profiles": len(store.partition.members)}
        print(json.dumps(opened), flush=True)
        for line in sys.stdin:
            p50, p99 = await lookup_latencies(store, keys, samples=args.samples, seed=int(line))
            print(json.dumps({"p50": p50, "p99": p99}), flush=True)
        await store.close()
        return
    print(f"open (restart): {time.perf_counter() - start:.1f} s")
    p50, p99 = await lookup_latencies(store, keys, samples=args.samples)
    print(
        f"lookup over {len(store.partition.members):,} profiles: p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
