"""The "sales context" query over HTTP: c360 against a bare Strawberry baseline, and c360 with
PII enforcement and audit on against the same app with them off. Prints figures, asserts nothing.

    python bench/sales_context.py [--customers 100000] [--requests 3000] [--rounds 3]
    python bench/sales_context.py --data-dir /tmp/sales   # load once, keep, reuse later
    python bench/sales_context.py --data-dir /tmp/sales --profile 300   # cProfile, in process

The store (embedded, in a temp dir) is filled by calling `IdentityGraph.ingest` directly in
batches of 1000 observations: per customer an identify call with email, phone, user id,
anonymous ids and devices and the reserved traits, then 20-30 track/page calls. Then one
uvicorn process per mode (bench/_sales_server.py) serves it on 127.0.0.1, and a separate
client process sends the query for random customers' emails with 8 concurrent keep-alive
connections: warm-up, then a fixed number of requests per mode and round. Modes alternate
round by round, so load from other work on the machine falls on all of them alike.

Targets: c360 / baseline throughput >= 0.8 and c360 p99 <= 20 ms (issue 3); c360 on / off
cost <= 1.15x (issue 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEY = "c360_bench-sales-admin-key-Ua8Kx3Dr6Pw1Tn5Bv9Cj"
HERE = Path(__file__).resolve().parent
START = datetime(2024, 1, 1, tzinfo=UTC)
QUERY = """query Sales($email: String!) {
  customer(identifier: {kind: "email", value: $email}) {
    id
    traits { name email phone company address { city country } }
    identifiers { kind value firstSeen lastSeen }
    events(first: 20) { totalCount edges { node { type name timestamp properties } } }
  }
}"""
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
CITIES = (("Paris", "FR"), ("Berlin", "DE"), ("Austin", "US"), ("Leeds", "GB"), ("Lyon", "FR"))
PAGES = ("/", "/pricing", "/docs", "/blog", "/checkout")
TRACKS = ("Product Viewed", "Product Added", "Order Completed", "Video Played")


# --- data ----------------------------------------------------------------------------------


def email_of(i: int) -> str:
    return f"customer{i}@corp{i % 997}.example"


def events_of(i: int) -> int:
    return 20 + (i * 7) % 11


def _ids(i: int) -> dict[str, list[str]]:
    return {
        "email": [email_of(i)],
        "phone": [f"+1415{i:07d}"],
        "user_id": [f"user-{i}"],
        "anonymous_id": [f"anon-{i}-{k}" for k in range(2 + i % 2)],
        "device_id": [f"dev-{i}-{k}" for k in range(1 + i % 2)],
    }


def identify(i: int) -> Any:
    from identity_graph.model import Identifier, MessageType, Observation

    rng = random.Random(i)
    city, country = rng.choice(CITIES)
    traits = {
        "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "email": email_of(i),
        "phone": f"+1415{i:07d}",
        "company": f"Company {i % 5000}",
        "address": {"street": f"{i} Main St", "city": city, "postalCode": f"{i % 99999:05d}",
                    "country": country},
        "plan": rng.choice(("free", "pro", "team")),
    }  # fmt: skip
    identifiers = tuple(Identifier(k, v) for k, vs in _ids(i).items() for v in vs)
    at = START + timedelta(seconds=i)
    return Observation(f"id-{i}", at, "crm", MessageType.IDENTIFY, identifiers, traits=traits)


def event(i: int, n: int) -> Any:
    from identity_graph.model import Event, EventCategory, Identifier, MessageType, Observation

    rng = random.Random(i * 1000 + n)
    ids = _ids(i)
    seen = [Identifier("anonymous_id", rng.choice(ids["anonymous_id"]))]
    if rng.random() < 0.3:
        seen.append(Identifier("user_id", ids["user_id"][0]))
    at = START + timedelta(days=1 + n, seconds=i)
    if rng.random() < 0.4:
        path = rng.choice(PAGES)
        ev = Event(MessageType.PAGE, path, {"path": path, "referrer": "https://google.com"})
        kind = MessageType.PAGE
    else:
        name = rng.choice(TRACKS)
        props = {"product_id": f"sku-{rng.randrange(5000)}", "price": rng.randint(1, 300),
                 "currency": "USD"}  # fmt: skip
        ev = Event(MessageType.TRACK, name, props, EventCategory.BEHAVIOURAL)
        kind = MessageType.TRACK
    return Observation(f"ev-{i}-{n}", at, "web", kind, tuple(seen), event=ev)


def observations(customers: int) -> Iterator[Any]:
    """Identify calls for everyone, then event rounds: each batch spans many customers."""
    for i in range(customers):
        yield identify(i)
    for n in range(max(events_of(i) for i in range(min(customers, 11)))):
        for i in range(customers):
            if n < events_of(i):
                yield event(i, n)


async def load(data_dir: Path, customers: int, batch: int, sample: list[int]) -> None:
    from identity_graph.adapters.embedded.store import EmbeddedStore
    from identity_graph.rules import Rules
    from identity_graph.service import IdentityGraph

    rules = Rules.default()
    store = EmbeddedStore(data_dir)
    await store.open()
    graph = IdentityGraph(store, rules)
    total = sum(1 + events_of(i) for i in range(customers))
    started = last = time.perf_counter()
    done = 0
    pending: list[Any] = []
    for observation in observations(customers):
        pending.append(observation)
        if len(pending) == batch:
            await graph.ingest(pending)
            done += len(pending)
            pending = []
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                rate = done / (last - started)
                print(f"  loaded {done:,}/{total:,} observations, {rate:,.0f}/s", flush=True)
    if pending:
        await graph.ingest(pending)
        done += len(pending)
    took = time.perf_counter() - started
    print(
        f"loaded {customers:,} customers, {done:,} observations in {took:.0f} s"
        f" ({done / took:,.0f} obs/s); {len(store.partition.members):,} profiles,"
        f" {len(store.partition.profile_of):,} identifiers"
    )
    await write_baseline(store, rules, sample, data_dir / "baseline.json")
    await store.close()


async def write_baseline(store: Any, rules: Any, sample: list[int], path: Path) -> None:
    """The sampled customers' answers as plain dicts, read from the store, for the baseline."""
    from identity_graph.survivorship import current_traits

    out: dict[str, Any] = {}
    for i in sample:
        pid = store.partition.profile_of[f"email:{email_of(i)}"]
        profile = (await store.profiles([pid]))[pid]
        traits = {
            k: v.value for k, v in current_traits((await store.traits([pid]))[pid], rules).items()
        }
        page = (await store.events([pid], first=20, after=None, types=None, count_up_to=None))[pid]
        address = traits.get("address")
        out[email_of(i)] = {
            "id": pid,
            "traits": {
                "name": traits.get("name"), "email": traits.get("email"),
                "phone": traits.get("phone"), "company": traits.get("company"),
                "address": {"city": address.get("city"), "country": address.get("country")}
                if isinstance(address, dict) else None,
            },
            "identifiers": [
                {"kind": r.identifier.kind, "value": r.identifier.value,
                 "firstSeen": r.first_seen.isoformat(), "lastSeen": r.last_seen.isoformat()}
                for r in profile.identifiers
            ],
            "events": {
                "totalCount": page.total,
                "edges": [
                    {"type": e.type.value, "name": e.name, "timestamp": e.timestamp.isoformat(),
                     "properties": dict(e.properties)}
                    for e in page.items
                ],
            },
        }  # fmt: skip
    path.write_text(json.dumps(out))  # noqa: ASYNC240 (one write, before any server runs)


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(mode: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, str(HERE / "_sales_server.py"), mode, "--port", str(port),
               "--data-dir", str(data_dir), "--key", KEY]  # fmt: skip
    server = subprocess.Popen(command, cwd=HERE.parent)
    return server, port


def wait_ready(server: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"server on port {port} did not start")
        time.sleep(0.2)


# --- client (its own process) --------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response on a keep-alive connection: its status line with headers, and
    its body (c360 always sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


async def _client(port: int, emails: list[str], warmup: int, requests: int, clients: int,
                  max_seconds: float, seed: int) -> dict[str, Any]:  # fmt: skip
    rng = random.Random(seed)
    bodies = [
        json.dumps({"query": QUERY, "variables": {"email": rng.choice(emails)}}).encode()
        for _ in range(warmup + requests)
    ]
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Length: "
    ).encode()
    latencies: list[float] = []
    next_index = 0
    failures: list[str] = []
    deadline = 0.0

    async def worker(until: int, record: bool) -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < until and (not record or time.perf_counter() < deadline):
                body = bodies[next_index]
                next_index += 1
                started = time.perf_counter()
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status_and_headers, payload = await read_response(reader)
                elapsed = time.perf_counter() - started
                if not status_and_headers.startswith(b"HTTP/1.1 200") or b'"errors"' in payload:
                    failures.append((status_and_headers[:12] + payload[:300]).decode("latin-1"))
                elif b'"customer":null' in payload:
                    failures.append("customer not found")
                if record:
                    latencies.append(elapsed)
        finally:
            writer.close()

    await asyncio.gather(*(worker(warmup, False) for _ in range(clients)))
    load_before = os.getloadavg()
    deadline = time.perf_counter() + max_seconds
    started = time.perf_counter()
    await asyncio.gather(*(worker(warmup + requests, True) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "failures": failures[:3],
        "failed": len(failures),
        "load": [load_before[0], os.getloadavg()[0]],
    }


def run_client(port: int, emails_file: Path, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--client", str(port), "--emails", str(emails_file),
               "--warmup", str(args.warmup), "--requests", str(args.requests),
               "--clients", str(args.clients), "--max-seconds", str(args.max_seconds),
               "--seed", str(seed)]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- report --------------------------------------------------------------------------------


def summary(results: list[dict[str, Any]]) -> dict[str, float]:
    latencies = sorted(x for r in results for x in r["latencies"])
    n = len(latencies)
    elapsed = sum(r["elapsed"] for r in results)
    per_round = [len(r["latencies"]) / r["elapsed"] for r in results]
    return {
        "requests": n,
        "rps": n / elapsed,
        "rps_min": min(per_round),
        "rps_max": max(per_round),
        "p50": latencies[n // 2] * 1000,
        "p99": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "mean": statistics.fmean(latencies) * 1000,
        "failed": sum(r["failed"] for r in results),
    }


def report(
    stats: dict[str, dict[str, float]], args: argparse.Namespace, loads: list[float]
) -> None:
    print()
    print(
        f"sales context query, {args.customers:,} customers, {args.clients} concurrent clients,"
        f" {args.rounds} rounds x {args.requests} requests per mode"
        f" (after {args.warmup} warm-up)"
    )
    print(
        f"{'mode':<16}{'req/s':>9}{'(rounds min-max)':>20}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'mean ms':>9}{'failed':>8}"
    )
    for mode, s in stats.items():
        spread = f"{s['rps_min']:.0f}-{s['rps_max']:.0f}"
        print(f"{mode:<16}{s['rps']:>9.0f}{spread:>20}{s['p50']:>9.2f}{s['p99']:>9.2f}"
              f"{s['mean']:>9.2f}{s['failed']:>8.0f}")  # fmt: skip
    print()
    c360 = stats.get("c360")
    if c360 and "baseline" in stats:
        ratio = c360["rps"] / stats["baseline"]["rps"]
        print(f"issue 3: c360 / baseline throughput = {ratio:.2f} (target >= 0.80)")
    if c360 and "baseline-cached" in stats:
        ratio = c360["rps"] / stats["baseline-cached"]["rps"]
        print(f"         c360 / baseline with parser+validation caches = {ratio:.2f}")
    if c360:
        print(f"issue 3: c360 p99 = {c360['p99']:.1f} ms (target <= 20 ms)")
    if c360 and "c360-off" in stats:
        cost = stats["c360-off"]["rps"] / c360["rps"]
        print(
            f"issue 5: PII enforcement + audit on / off cost = {cost:.2f}x"
            f" (per-request time; target <= 1.15x); p50 {c360['p50']:.2f} vs"
            f" {stats['c360-off']['p50']:.2f} ms"
        )
    if c360 and "c360-noext" in stats:
        cost = stats["c360-noext"]["rps"] / c360["rps"]
        print(f"         on / no PiiGuard extension at all (and no audit) = {cost:.2f}x")
    now = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"load average (1 min) during the runs: {min(loads):.2f} - {max(loads):.2f};"
        f" now {now} on {os.cpu_count()} CPUs"
    )


# --- profile -------------------------------------------------------------------------------


async def profile(data_dir: Path, emails: list[str], n: int, mode: str) -> None:
    """cProfile of `n` requests through the ASGI app in process (no HTTP), top costs."""
    import cProfile
    import pstats

    import httpx

    sys.path.insert(0, str(HERE))
    from _sales_server import c360_app

    app = c360_app(mode, data_dir, KEY)
    rng = random.Random(3)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360.bench") as http:
            headers = {"Authorization": f"Bearer {KEY}"}

            async def one() -> None:
                body = {"query": QUERY, "variables": {"email": rng.choice(emails)}}
                response = await http.post("/graphql", json=body, headers=headers)
                assert response.status_code == 200 and "errors" not in response.json()

            for _ in range(50):
                await one()
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for _ in range(n):
                await one()
            profiler.disable()
            took = time.perf_counter() - started
    print(f"{mode}: {n} requests in process (under cProfile): {took / n * 1000:.2f} ms each")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(45)


# --- main ----------------------------------------------------------------------------------


def client_options(parser: argparse.ArgumentParser) -> None:
    """The hidden options a benchmark passes to the client processes it starts: the
    client's number, the file of e-mails it looks up, and the seed of its order."""
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--emails", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=5000, help="customers the client asks for")
    parser.add_argument("--requests", type=int, default=3000, help="per mode and round")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap per mode and round")
    parser.add_argument("--modes", default="baseline,baseline-cached,c360,c360-off,c360-noext")
    parser.add_argument("--data-dir", type=Path, help="load a store here once, keep, reuse it")
    parser.add_argument("--profile", type=int, default=0, help="cProfile N requests, in process")
    parser.add_argument(
        "--profile-mode", default="c360", choices=("c360", "c360-off", "c360-noext")
    )
    client_options(parser)
    args = parser.parse_args()

    if args.client:
        emails = json.loads(args.emails.read_text())
        result = asyncio.run(_client(args.client, emails, args.warmup, args.requests,
                                     args.clients, args.max_seconds, args.seed))  # fmt: skip
        print(json.dumps(result))
        return

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="c360-sales-"))
    base = data_dir / "c360"
    marker = data_dir / "loaded.json"
    try:
        if marker.exists():
            meta = json.loads(marker.read_text())
            args.customers = meta["customers"]
            sample = meta["sample"]
            print(f"reusing the store in {data_dir}: {args.customers:,} customers")
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            sample = random.Random(42).sample(
                range(args.customers), min(args.sample, args.customers)
            )
            print(f"loading {args.customers:,} customers into {base} ...", flush=True)
            asyncio.run(load(base, args.customers, args.batch, sample))
            shutil.copy(base / "baseline.json", data_dir / "baseline.json")
            marker.write_text(json.dumps({"customers": args.customers, "sample": sample}))
        emails = [email_of(i) for i in sample]
        emails_file = data_dir / "emails.json"
        emails_file.write_text(json.dumps(emails))

        if args.profile:
            asyncio.run(profile(base, emails, args.profile, args.profile_mode))
            return

        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for mode in modes:
                mode_dir = data_dir if mode.startswith("baseline") else data_dir / mode
                if mode != "c360" and not mode.startswith("baseline") and not mode_dir.exists():
                    shutil.copytree(base, mode_dir, ignore=shutil.ignore_patterns("LOCK"))
                servers[mode] = start_server(mode, mode_dir if mode != "c360" else base)
            started = time.perf_counter()
            for server, port in servers.values():
                wait_ready(server, port, timeout=600)
            print(f"{len(servers)} servers up in {time.perf_counter() - started:.0f} s", flush=True)
            results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
            loads: list[float] = []
            for r in range(args.rounds):
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for mode in order:
                    result = run_client(servers[mode][1], emails_file, args, seed=r * 100 + 7)
                    results[mode].append(result)
                    loads.extend(result["load"])
                    rps = len(result["latencies"]) / result["elapsed"]
                    failed = result["failed"]
                    note = f"  FAILED {failed}: {result['failures']}" if failed else ""
                    load_now = result["load"][1]
                    print(
                        f"  round {r + 1} {mode:<16} {rps:7.0f} req/s  load {load_now:.2f}{note}",
                        flush=True,
                    )
        finally:
            for server, _ in servers.values():
                server.terminate()
            for server, _ in servers.values():
                server.wait(timeout=60)
        report({m: summary(rs) for m, rs in results.items()}, args, loads)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"store kept in {data_dir}")


if __name__ == "__main__":
    main()
