"""Open an embedded data directory in a fresh process and print what the store costs there.

    python bench/restart.py DATA_DIR

Prints the time to open (recover and load the graph into memory) and the resident set size
of the process afterwards: the memory the store itself needs, with nothing else held. Then
looks customers up (as `bench/lookup.py`) and prints the RSS again, split into the process's
own memory (RssAnon) and the pages of the tables file its reader has mapped (RssFile: the
OS's file cache, clean and shared, which grows with what reads touch).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from lookup import lookup_latencies

from identity_graph.adapters.embedded.store import EmbeddedStore, tune_gc


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """Resident set size of a process (this one by default) in MB, or another of its
    /proc status fields such as RssAnon or RssFile; 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_split() -> str:
    return (
        f"RSS {rss_mb():,.0f} MB = {rss_mb(field='RssAnon'):,.0f} MB own"
        f" + {rss_mb(field='RssFile'):,.0f} MB file pages"
    )


async def main(data_dir: Path) -> None:
    tune_gc()  # as the server does before it opens the store
    before = rss_mb()
    start = time.perf_counter()
    store = EmbeddedStore(data_dir)
    await store.open()
    took = time.perf_counter() - start
    print(
        f"restart in a fresh process: open {took:.1f} s; {len(store.partition.members):,} profiles,"
        f" {len(store.partition.profile_of):,} identifiers; RSS {rss_mb():,.0f} MB"
        f" ({before:,.0f} MB before opening)"
    )
    keys = sorted(store.partition.profile_of)
    for run in range(3):
        p50, p99 = await lookup_latencies(store, keys, samples=20_000, seed=run)
        print(f"  lookups in that process, run {run + 1}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    print(f"  after 60,000 lookups: {rss_split()}")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
