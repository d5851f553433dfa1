"""Open an embedded data directory in a fresh process and print what the store costs there.

    python bench/restart.py DATA_DIR

Prints the time to open (recover and load the graph into memory) and the resident set size
of the process afterwards: the memory the store itself needs, with nothing else held.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from identity_graph.adapters.embedded import EmbeddedStore


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process (this one by default) in MB; 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(data_dir: Path) -> None:
    before = rss_mb()
    start = time.perf_counter()
    store = EmbeddedStore(data_dir)
    await store.open()
    took = time.perf_counter() - start
    print(
        f"restart in a fresh process: open {took:.1f} s; {len(store.members):,} profiles,"
        f" {len(store.profile_of):,} identifiers; RSS {rss_mb():,.0f} MB"
        f" ({before:,.0f} MB before opening)"
    )
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
