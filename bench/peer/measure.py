"""Running the load generator (client.py) against one server and what it cost: CPU of the
server and of Neo4j, Cypher statements, c360's store round trips; the summary table."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from processes import HERE, cpu_seconds


class CypherCounter:
    """Cypher statements Neo4j ran, by its own count (`db.stats` QUERIES), between resets.

    The collector keeps a bounded number of invocations (about 8,000), so a count is taken
    over a short run of its own (`COUNTED`), not over a measured one."""

    LIMIT = 8_000

    def __init__(self, uri: str) -> None:
        from neo4j import GraphDatabase

        self.driver = GraphDatabase.driver(uri, auth=None)

    def reset(self) -> None:
        with self.driver.session() as session:
            session.run("CALL db.stats.stop('QUERIES')").consume()
            session.run("CALL db.stats.clear('QUERIES')").consume()
            session.run("CALL db.stats.collect('QUERIES', {durationSeconds: 3600})").consume()

    def count(self) -> dict[str, int]:
        """Invocations since the reset, by statement (the `db.stats` calls left out)."""
        with self.driver.session() as session:
            rows = session.run("CALL db.stats.retrieve('QUERIES')").data()
        counts: dict[str, int] = {}
        for row in rows:
            query = " ".join(row["data"]["query"].split())
            if not query.upper().startswith("CALL DB.STATS"):
                n = row["data"]["invocationSummary"]["invocationCount"]
                counts[query] = counts.get(query, 0) + n
        if sum(counts.values()) >= self.LIMIT:
            raise SystemExit("db.stats kept too many invocations to be a full count")
        return counts


COUNTED = 1_000
"""requests of the run over which Cypher statements are counted (after a warm-up)"""


def client(server: dict[str, Any], *, warmup: int, requests: int, clients: int, seed: int) -> Any:
    """client.py against `server`, in a process of its own: its JSON result."""
    command = [
        sys.executable,
        str(HERE / "client.py"),
        "--port",
        str(server["port"]),
        "--query-file",
        str(server["query_file"]),
        "--variable",
        server["variable"],
        "--values",
        str(server["inputs"]),
        "--key",
        server.get("key") or "",
        "--warmup",
        str(warmup),
        "--requests",
        str(requests),
        "--clients",
        str(clients),
        "--seed",
        str(seed),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def measure(
    server: dict[str, Any], args: argparse.Namespace, java: int | None, seed: int
) -> dict[str, Any]:
    """One measured run against `server`: its latencies, and the CPU time the server and
    Neo4j spent, and c360's store round trips, over it (warm-up included: `sent`)."""
    round_trips = server.get("round_trips")
    before = (
        cpu_seconds(server["pid"]),
        cpu_seconds(java) if java else 0.0,
        round_trips() if round_trips else 0,
    )
    result: dict[str, Any] = client(
        server, warmup=args.warmup, requests=args.requests, clients=args.clients, seed=seed
    )
    after = (
        cpu_seconds(server["pid"]),
        cpu_seconds(java) if java else 0.0,
        round_trips() if round_trips else 0,
    )
    result["server_cpu"] = after[0] - before[0]
    result["neo4j_cpu"] = after[1] - before[1] if java else None
    result["round_trips"] = after[2] - before[2] if round_trips else None
    result["sent"] = args.warmup + args.requests
    result["load"] = os.getloadavg()[0]
    return result


def statements(server: dict[str, Any], counter: CypherCounter, clients: int) -> dict[str, float]:
    """Cypher statements per request against `server`, by statement, over `COUNTED`
    requests after a warm-up of 100."""
    client(server, warmup=100, requests=0, clients=clients, seed=7)
    counter.reset()
    client(server, warmup=0, requests=COUNTED, clients=clients, seed=8)
    return {query: n / COUNTED for query, n in counter.count().items()}


def summary(results: list[dict[str, Any]], by_statement: dict[str, float]) -> dict[str, Any]:
    latencies = sorted(x for r in results for x in r["latencies"])
    n = len(latencies)
    sent = sum(r["sent"] for r in results)  # CPU and counts include the warm-up requests
    neo4j = [r["neo4j_cpu"] for r in results]
    trips = [r["round_trips"] for r in results]
    return {
        "rps": n / sum(r["elapsed"] for r in results),
        "p50": latencies[n // 2] * 1000,
        "p99": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "server_cpu": sum(r["server_cpu"] for r in results) / sent * 1000,
        "neo4j_cpu": None if None in neo4j else sum(neo4j) / sent * 1000,
        "statements": sum(by_statement.values()),
        "round_trips": None if None in trips else sum(trips) / sent,
        "by_statement": by_statement,
        "failed": sum(r["failed"] for r in results),
        "failures": [f for r in results for f in r["failures"]][:2],
    }


def report(stats: dict[str, dict[str, Any]], args: argparse.Namespace, loads: list[float]) -> None:
    def cell(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    print()
    print(
        f"sales-context query, {args.customers:,} customers (~25 events each), {args.clients}"
        f" keep-alive clients, {args.rounds} rounds x {args.requests:,} requests per server"
        f" (after {args.warmup} warm-up each), servers taking turns"
    )
    print(
        f"{'server':<20}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'server CPU':>12}"
        f"{'Neo4j CPU':>11}{'Cypher':>8}{'c360 store':>12}{'failed':>8}"
    )
    print(
        f"{'':<20}{'':>8}{'':>8}{'':>8}{'ms/req':>12}{'ms/req':>11}{'st/req':>8}"
        f"{'trips/req':>12}{'':>8}"
    )
    for name, s in stats.items():
        print(
            f"{name:<20}{s['rps']:>8.0f}{s['p50']:>8.2f}{s['p99']:>8.2f}"
            f"{s['server_cpu']:>12.2f}{cell(s['neo4j_cpu'], 2):>11}{s['statements']:>8.2f}"
            f"{cell(s['round_trips'], 2):>12}{s['failed']:>8}"
        )
        for failure in s["failures"]:
            print(f"    e.g. {failure[:200]}")
    print()
    for c360 in (n for n in stats if n.startswith("c360")):
        for peer in (n for n in stats if n.startswith("peer")):
            a, b = stats[c360], stats[peer]
            print(
                f"{c360} / {peer}: throughput {a['rps'] / b['rps']:.2f}x,"
                f" p99 {a['p99'] / b['p99']:.2f}x"
            )
    print()
    print("Cypher statements per request, by statement (its first 90 characters):")
    for name, s in stats.items():
        print(f"  {name}")
        for query, n in sorted(s["by_statement"].items(), key=lambda x: -x[1]):
            if n >= 0.005:
                print(f"    {n:6.2f}  {query[:90]}")
    now = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"load average (1 min) after each run: {min(loads):.2f} - {max(loads):.2f};"
        f" now {now} on {os.cpu_count()} CPUs"
    )
