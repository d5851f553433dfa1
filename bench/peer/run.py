"""The sales-context read at the peer's speed: c360 on Neo4j against the Neo4j GraphQL Library
(on Apollo Server) over the same database. Prints figures, asserts nothing (issue 19).

    (cd bench/peer && npm ci)          # once: the peer's pinned packages
    python bench/peer/run.py [--customers 5000] [--requests 2000] [--rounds 3] [--clients 8]

Steps: a private Neo4j (a copy of tests/neo4j/ in a temp dir, started with its own `server`
script, so nothing touches the test suite's server); c360 (C360_STORE=neo4j, under uvicorn,
bench/peer/c360_server.py) loads the customers through its GraphQL `ingest` mutation over HTTP,
about 25 events each (the data of bench/sales_context.py); the relationships the peer's
`relationship` model reads are derived once (RELATIONSHIPS); the peer servers start
(bench/peer/server.mjs, one per model); sample customers are checked to read the same from
every server; then the sales-context query runs from `--clients` keep-alive connections, the
servers taking turns round by round, so other load on the machine falls on all alike.

Per server: throughput, latency percentiles, CPU per request of the server process and of the
Neo4j process (utime + stime from /proc/<pid>/stat), Cypher statements per request (Neo4j's
own count, `db.stats` QUERIES section) and, for c360, its store round trips per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from answers import C360_QUERY, PEER_QUERIES, check_same, post
from loading import derive_relationships, load
from measure import CypherCounter, measure, report, statements, summary
from processes import HERE, ROOT, free_port, neo4j_pid, start, start_neo4j

sys.path.insert(0, str(ROOT / "bench"))

from sales_context import email_of  # noqa: E402

ADMIN_KEY = "c360_bench-peer-admin-key-Rm4Wq8Zt2Lk6Hx9Pd3Nv"
HASH_KEY = "bench-peer-hash-key-0123456789abcdef0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=2_000, help="per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch", type=int, default=250, help="messages per ingest call")
    parser.add_argument("--check", type=int, default=20, help="customers checked to agree")
    parser.add_argument("--neo4j-uri", help="use this Neo4j (loaded already: no load)")
    parser.add_argument(
        "--keep-neo4j", action="store_true", help="leave the private Neo4j running, loaded"
    )
    args = parser.parse_args()
    if not (HERE / "node_modules").is_dir():
        raise SystemExit("the peer's packages are missing: (cd bench/peer && npm ci)")

    with ExitStack() as stack:
        home: Path | None = None
        if args.neo4j_uri:
            uri = args.neo4j_uri
        else:
            uri, home = start_neo4j(stack, args.keep_neo4j)
        java = neo4j_pid(home, uri)

        c360_port = free_port()
        env = {
            "C360_STORE": "neo4j",
            "NEO4J_URI": uri,
            "NEO4J_PASSWORD": "",
            "C360_HASH_KEY": HASH_KEY,
            "C360_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        }
        c360 = start(
            stack,
            [sys.executable, str(HERE / "c360_server.py"), "--port", str(c360_port)],
            env,
            c360_port,
            "/readyz",
            "c360",
        )
        if not args.neo4j_uri:
            asyncio.run(load(c360_port, ADMIN_KEY, args.customers, size=args.batch, connections=4))
            derive_relationships(uri)
        sales_key = post(
            c360_port,
            'mutation { createApiKey(role: "sales", name: "bench") { key } }',
            {},
            ADMIN_KEY,
        )["createApiKey"]["key"]

        ports = {"c360": c360_port}
        peers = {}
        for model in PEER_QUERIES:
            port = free_port()
            node_env = {"NEO4J_URI": uri, "PORT": str(port), "MODEL": model}
            peers[model] = start(
                stack,
                ["node", str(HERE / "server.mjs")],
                node_env,
                port,
                "/graphql?query=%7B__typename%7D",
                f"peer {model}",
            )
            ports[f"peer-{model}"] = port

        rng = random.Random(19)
        sample = [email_of(rng.randrange(args.customers)) for _ in range(args.check)]
        check_same(ports, sample, ADMIN_KEY)

        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="c360-peer-")))
        emails = work / "emails.json"
        emails.write_text(json.dumps([email_of(i) for i in range(args.customers)]))
        keys = work / "keys.json"  # the relationship model is asked by identifier key
        keys.write_text(json.dumps([f"email:{email_of(i)}" for i in range(args.customers)]))
        for name, query in {"c360": C360_QUERY, **PEER_QUERIES}.items():
            (work / f"{name}.graphql").write_text(query)

        def trips() -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{c360_port}/bench/round-trips") as r:
                return int(r.read())

        c360_server = {
            "port": c360_port,
            "pid": c360.pid,
            "query_file": work / "c360.graphql",
            "variable": "email",
            "inputs": emails,
            "round_trips": trips,
        }
        servers: dict[str, dict[str, Any]] = {
            "c360 (admin key)": {**c360_server, "key": ADMIN_KEY},
            "c360 (sales key)": {**c360_server, "key": sales_key},
        }
        for model, process in peers.items():
            by_key = model == "relationship"
            servers[f"peer ({model})"] = {
                "port": ports[f"peer-{model}"],
                "pid": process.pid,
                "query_file": work / f"{model}.graphql",
                "variable": "key" if by_key else "email",
                "inputs": keys if by_key else emails,
            }

        counter = CypherCounter(uri)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        loads: list[float] = []
        names = list(servers)
        for n in range(args.rounds):
            order = names[n % len(names) :] + names[: n % len(names)]
            for name in order:
                seed = n * 100 + names.index(name)
                result = measure(servers[name], args, java, seed=seed)
                results[name].append(result)
                loads.append(result["load"])
                rate = len(result["latencies"]) / result["elapsed"]
                failed = result["failed"]
                print(f"round {n + 1} {name}: {rate:.0f} req/s, {failed} failed", flush=True)
        counted = {
            name: statements(server, counter, args.clients) for name, server in servers.items()
        }
        report({name: summary(r, counted[name]) for name, r in results.items()}, args, loads)


if __name__ == "__main__":
    main()
