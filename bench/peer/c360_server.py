"""c360 as `c360 serve` builds it (settings from the environment, `create_app`), under plain
uvicorn, plus one bench-only route: `GET /bench/round-trips`, the identity store's round-trip
counter (`IdentityStore.round_trips`), which the product does not expose.

    C360_STORE=neo4j NEO4J_URI=... python bench/peer/c360_server.py --port P
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from graph_api.app import create_app  # noqa: E402
from graph_api.services import build_services  # noqa: E402
from graph_api.settings import Settings  # noqa: E402


def bench_app() -> ASGIApp:
    services = build_services(Settings.from_env())
    app = create_app(services=services)

    async def with_counter(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/round-trips":
            body = str(services.store.round_trips).encode()
            headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return with_counter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        bench_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
