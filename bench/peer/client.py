"""The load generator of bench/peer/run.py, in a process of its own: a fixed number of GraphQL
POSTs from `--clients` keep-alive HTTP/1.1 connections, each request for a random customer's
email, after a warm-up. Prints one JSON object: latencies, elapsed time, failures.

    python bench/peer/client.py --port P --query-file Q --variable email --values V
        [--key K] [--warmup 200] [--requests 2000] [--clients 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any


async def run(args: argparse.Namespace, query: str, values: list[str]) -> dict[str, Any]:
    rng = random.Random(args.seed)
    total = args.warmup + args.requests
    bodies = [
        json.dumps({"query": query, "variables": {args.variable: rng.choice(values)}}).encode()
        for _ in range(total)
    ]
    auth = f"Authorization: Bearer {args.key}\r\n" if args.key else ""
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: "
    ).encode()
    latencies: list[float] = []
    failures: list[str] = []
    next_index = 0

    async def worker(until: int, record: bool) -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        try:
            while next_index < until:
                body = bodies[next_index]
                next_index += 1
                started = time.perf_counter()
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status_and_headers = await reader.readuntil(b"\r\n\r\n")
                payload = await read_body(reader, status_and_headers)
                elapsed = time.perf_counter() - started
                if not status_and_headers.startswith(b"HTTP/1.1 200") or failed(payload):
                    failures.append((status_and_headers[:12] + payload[:300]).decode("latin-1"))
                elif b":null" in payload[:60] or b":[]" in payload[:60]:
                    failures.append("customer not found: " + payload[:100].decode("latin-1"))
                if record:
                    latencies.append(elapsed)
        finally:
            writer.close()

    await asyncio.gather(*(worker(args.warmup, False) for _ in range(args.clients)))
    started = time.perf_counter()
    await asyncio.gather(*(worker(total, True) for _ in range(args.clients)))
    elapsed = time.perf_counter() - started
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "failed": len(failures),
        "failures": failures[:3],
    }


def failed(payload: bytes) -> bool:
    """Errors other than FORBIDDEN_FIELD: a role's denied fields (c360's sales key reads
    `null` and such an error for financial event properties) are an answer, not a failure."""
    if b'"errors"' not in payload:
        return False
    codes = payload.count(b'"code":')
    return codes == 0 or codes != payload.count(b'"code":"FORBIDDEN_FIELD"')


async def read_body(reader: asyncio.StreamReader, status_and_headers: bytes) -> bytes:
    """The body of one response: Content-Length or chunked (Node answers either way)."""
    length: int | None = None
    chunked = False
    for line in status_and_headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return await reader.readexactly(length or 0)
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--query-file", required=True)
    parser.add_argument("--variable", default="email")
    parser.add_argument("--values", required=True, help="a JSON list of the variable's values")
    parser.add_argument("--key", default="")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    query = Path(args.query_file).read_text()
    values = json.loads(Path(args.values).read_text())
    result = asyncio.run(run(args, query, values))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
