"""Reads that do not stall each other (issue 19, item 5): the p99 of single-customer lookups
over HTTP (the sales-context query by email), alone and while slow listings run beside them,
for one or more code trees in one run. Prints figures, asserts nothing.

    python bench/read_isolation.py --data-dir /tmp/ri-data [--customers 20000]
    python bench/read_isolation.py --data-dir /tmp/ri-data \\
        --tree before=/tmp/c360-before --tree after=.

The store is bench/sales_context.py's (loaded once into `--data-dir`, then reused). Each tree
(a checkout of c360: "before" a clone of an older commit) serves it in turn from one uvicorn
process (its own bench/_sales_server.py, mode `c360`: enforcement and audit on), with
PYTHONPATH at the tree. A client process sends the sales-context query for random customers
from `--clients` keep-alive connections; in the "with slow reads" phase `--slow` more
connections send, one after another, a listing that reads every profile (a trait filter no
customer meets, with `totalCount`). Trees and phases alternate round by round, so load from
other work on the machine falls on all of them alike.

Target: lookups' p99 with slow reads <= 1.2x their p99 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sales_context import (  # noqa: E402
    KEY,
    QUERY,
    client_options,
    email_of,
    free_port,
    load,
    read_response,
    wait_ready,
)

SLOW_QUERY = (
    '{ customers(first: 100, where: {trait: {name: "plan", value: "enterprise"}})'
    " { totalCount edges { node { id } } } }"
)
"""a listing that meets no customer, so it reads every profile (and counts them)"""


# --- client (its own process) --------------------------------------------------------------


async def _session(port: int) -> tuple[Any, Any]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _post(reader: Any, writer: Any, body: bytes) -> bytes:
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head, payload = await read_response(reader)
    if not head.startswith(b"HTTP/1.1 200") or b'"errors"' in payload:
        raise SystemExit(f"request failed: {(head[:12] + payload[:300]).decode('latin-1')}")
    return payload


async def client(port: int, emails: list[str], args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    bodies = [
        json.dumps({"query": QUERY, "variables": {"email": rng.choice(emails)}}).encode()
        for _ in range(args.warmup + args.requests)
    ]
    slow_body = json.dumps({"query": SLOW_QUERY}).encode()
    latencies: list[float] = []
    slow_latencies: list[float] = []
    next_index = 0
    lookups_done = asyncio.Event()

    deadline = float("inf")

    async def lookups(until: int, record: bool) -> None:
        nonlocal next_index
        reader, writer = await _session(port)
        try:
            while next_index < until and time.perf_counter() < deadline:
                body = bodies[next_index]
                next_index += 1
                started = time.perf_counter()
                await _post(reader, writer, body)
                if record:
                    latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    async def slow_reads() -> None:
        reader, writer = await _session(port)
        try:
            while not lookups_done.is_set():
                started = time.perf_counter()
                await _post(reader, writer, slow_body)
                slow_latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    await asyncio.gather(*(lookups(args.warmup, False) for _ in range(args.clients)))
    slow = [asyncio.ensure_future(slow_reads()) for _ in range(args.slow)]
    if slow:
        await asyncio.sleep(0.2)  # the slow reads under way before lookups are timed
    started = time.perf_counter()
    deadline = started + args.max_seconds
    await asyncio.gather(*(lookups(args.warmup + args.requests, True) for _ in range(args.clients)))
    elapsed = time.perf_counter() - started
    lookups_done.set()
    await asyncio.gather(*slow)
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "slow": slow_latencies,
        "load": os.getloadavg()[0],
    }


# --- driver --------------------------------------------------------------------------------


def serve(tree: Path, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(tree / "bench" / "_sales_server.py"), "c360",
               "--port", str(port), "--data-dir", str(data_dir), "--key", KEY]  # fmt: skip
    server = subprocess.Popen(command, cwd=tree, env=env)
    wait_ready(server, port, 120)
    return server, port


def measure(port: int, emails_file: Path, args: argparse.Namespace, slow: int, seed: int) -> Any:
    command = [sys.executable, __file__, "--client", str(port), "--emails", str(emails_file),
               "--warmup", str(args.warmup), "--requests", str(args.requests),
               "--clients", str(args.clients), "--slow", str(slow),
               "--max-seconds", str(args.max_seconds),
               "--seed", str(seed)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, help="loaded once, then reused")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH, repeatable")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000, help="lookups per phase and round")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8, help="connections sending lookups")
    parser.add_argument("--slow", type=int, default=2, help="connections sending slow listings")
    parser.add_argument("--sample", type=int, default=5000)
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap per phase")
    client_options(parser)
    args = parser.parse_args()
    if args.client:
        emails = json.loads(args.emails.read_text())
        print(json.dumps(asyncio.run(client(args.client, emails, args))))
        return

    if args.data_dir is None:
        parser.error("--data-dir is required")
    data_dir: Path = args.data_dir
    sample = random.Random(7).sample(range(args.customers), min(args.sample, args.customers))
    if not (data_dir / "baseline.json").exists():
        asyncio.run(load(data_dir, args.customers, 1000, sample))
    emails_file = data_dir / "read-isolation-emails.json"
    emails_file.write_text(json.dumps([email_of(i) for i in sample]))
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(HERE.parent)}
    results: dict[tuple[str, int], list[Any]] = {}
    for round_ in range(args.rounds):
        for name, tree in trees.items():
            server, port = serve(Path(tree).resolve(), data_dir)
            try:
                for slow in (0, args.slow) if round_ % 2 == 0 else (args.slow, 0):
                    found = measure(port, emails_file, args, slow, seed=round_ * 10 + slow)
                    results.setdefault((name, slow), []).append(found)
            finally:
                server.terminate()
                server.wait()
    if not results:
        return
    print()
    print(
        f"sales-context lookups by email, {args.customers:,} customers, {args.clients} clients,"
        f" {args.rounds} rounds x {args.requests} lookups per phase; slow reads: {args.slow}"
        " connections each sending, one after another, a listing that reads every profile"
    )
    print(
        f"{'tree':<10}{'slow reads':>11}{'lookups/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'slow reads done':>17}{'their p50 ms':>14}{'load':>7}"
    )
    for (name, slow), runs in results.items():
        latencies = [x for r in runs for x in r["latencies"]]
        slow_done = [x for r in runs for x in r["slow"]]
        rate = len(latencies) / sum(r["elapsed"] for r in runs)
        slow_p50 = f"{percentile(slow_done, 0.5):.0f}" if slow_done else "-"
        load_avg = max(r["load"] for r in runs)
        print(
            f"{name:<10}{slow:>11}{rate:>11.0f}{percentile(latencies, 0.5):>9.2f}"
            f"{percentile(latencies, 0.99):>9.2f}{len(slow_done):>17}{slow_p50:>14}"
            f"{load_avg:>7.2f}"
        )
    print()
    for name in trees:
        alone = [x for r in results[name, 0] for x in r["latencies"]]
        beside = [x for r in results[name, args.slow] for x in r["latencies"]]
        ratio = percentile(beside, 0.99) / percentile(alone, 0.99)
        print(f"{name}: lookups' p99 with slow reads / alone = {ratio:.2f}x (target <= 1.2x)")
    print(f"{os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
