"""The benchmarks run end to end at tiny sizes and print every figure their issue asks for
(ingest: issue 2; webhooks: issue 21). No figure is checked against a target here: timings
belong in the bench's output, not in assertions (this only catches a bench that no longer runs
or no longer reports, or reports a delivery lost, out of order or badly signed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench" / "ingest.py"
WEBHOOKS = Path(__file__).parent.parent / "bench" / "webhooks.py"


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


@pytest.mark.slow
def test_webhooks_bench_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(WEBHOOKS), "--deliveries", "300", "--rounds", "1", "--rate", "50"]
        + ["--seconds", "2", "--outage", "1", "--customers", "20", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    rates = r"[\d,]+/s, [\d,]+ us CPU each"
    assert re.search(rf"bare aiohttp client, signed POSTs of a c360 body: {rates}", out)
    assert re.search(rf"draining its outbox: {rates}; median [\d,]+/s = [\d.]+x the bare", out)
    assert re.search(r"end to end: 300 customers written .* [\d,]+ deliveries/s = [\d.]+x", out)
    assert re.search(r"ratio with/alone round by round [\d.]+ \(median [\d.]+\); of the", out)
    assert re.search(r"the hanging receiver was sent [\d,]+ requests during the drains", out)
    spread = r"p50 [\d,]+, p90 [\d,]+, p99 [\d,]+, max [\d,]+ ms"
    assert re.search(rf"write returned -> delivery arrived: {spread}", out)
    assert re.search(rf"audience change made -> delivery arrived: {spread}", out)
    # the outage: every change arrived, in order per customer, under one webhook id each
    assert re.search(r"40 of 40 changes arrived; first after recovery at [+-][\d.]+ s", out)
    assert "customers whose entry arrived before their exit: 20 of 20;" in out
    assert "changes sent under more than one webhook id: 0" in out
    signed = re.search(r"signatures verified with standardwebhooks: ([\d,]+) of ([\d,]+)", out)
    assert signed is not None and signed.group(1) == signed.group(2)
