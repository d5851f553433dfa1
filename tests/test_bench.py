"""The ingest benchmark runs end to end on a tiny stream and prints every figure issue 2 asks
for. No figure is checked against a target here: timings belong in the bench's output, not in
assertions (this only catches a bench that no longer runs or no longer reports)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench" / "ingest.py"


@pytest.mark.slow
def test_ingest_bench_prints_its_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--n", "3000", "--samples", "300", "--events", "500"]
        + ["--tmp", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"3,000 observations in [\d.]+ s = [\d,]+ obs/s into the tables", out)
    assert re.search(r"ratio ours/scipy: [\d,]+x labelling alone, [\d.,]+x with matrix", out)
    # both sizes looked up, six runs each, and their ratio
    lookups = re.search(r"at ([\d,]+) profiles p50 [\d.]+ ms, p99 [\d.]+ ms .*full/small", out)
    assert lookups is not None and int(lookups.group(1).replace(",", "")) > 500
    for size in ("small", "full"):
        runs = re.search(rf"p99 at {size} size, run by run: (.*) ms", out)
        assert runs is not None and len(runs.group(1).split(", ")) == 6
    assert "500 more events" in out
    assert re.search(r"restart in a fresh process: open [\d.]+ s", out)
    # the small store was removed; the full one is the data dir the bench names
    data_dir = re.search(r"data dir .*/(\S+):", out)
    assert data_dir is not None
    assert [p.name for p in tmp_path.iterdir()] == [data_dir.group(1)]
