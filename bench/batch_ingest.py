"""`/v1/batch` ingest throughput: a uvicorn server on the embedded store, fed by concurrent
httpx clients. Prints messages/s (target: >= 5,000/s) and batch latencies; asserts nothing.

    python bench/batch_ingest.py [--messages 60000] [--batch 100] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

KEY = "c360_bench-admin-key-Ph6Tq2Wz8Rk4Nv1Xm7Ld"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def batch(start: int, size: int) -> list[dict[str, Any]]:
    """Four messages per customer: page, identify, product added, order completed."""
    out: list[dict[str, Any]] = []
    for n in range(start, start + size):
        customer, step = divmod(n, 4)
        base = {
            "messageId": f"bench-{n}",
            "anonymousId": f"anon-{customer}",
            "timestamp": "2024-05-01T10:00:00Z",
            "context": {"device": {"id": f"dev-{customer}"}},
        }
        if step == 0:
            out.append({**base, "type": "page", "name": "Home", "properties": {"path": "/"}})
        elif step == 1:
            traits = {"email": f"c{customer}@example.com", "firstName": "Bench", "plan": "pro"}
            out.append({**base, "type": "identify", "userId": f"u{customer}", "traits": traits})
        elif step == 2:
            props = {"product_id": "P1", "price": 9.5}
            out.append({**base, "type": "track", "event": "Product Added", "properties": props})
        else:
            props = {"order_id": f"o{customer}", "revenue": 9.5}
            out.append(
                {**base, "type": "track", "userId": f"u{customer}", "event": "Order Completed",
                 "properties": props}
            )  # fmt: skip
    return out


async def client(url: str, batches: asyncio.Queue[list[dict[str, Any]]], lat: list[float]) -> None:
    async with httpx.AsyncClient(base_url=url, auth=(KEY, ""), timeout=60) as http:
        while not batches.empty():
            body = {"batch": batches.get_nowait()}
            started = time.perf_counter()
            response = await http.post("/v1/batch", json=body)
            lat.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")


async def run(url: str, messages: int, size: int, clients: int) -> None:
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for start in range(0, messages, size):
        queue.put_nowait(batch(start, min(size, messages - start)))
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(client(url, queue, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"{messages} messages in {len(latencies)} batches of {size}, {clients} clients")
    print(f"throughput: {messages / elapsed:,.0f} messages/s ({elapsed:.2f} s)")
    print(
        f"batch latency: p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "C360_DATA_DIR": data_dir, "C360_BOOTSTRAP_ADMIN_KEY": KEY}
        command = [sys.executable, "-m", "uvicorn", "graph_api.app:create_app", "--factory",
                   "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
        server = subprocess.Popen(command, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            asyncio.run(run(url, args.messages, args.batch, args.clients))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
