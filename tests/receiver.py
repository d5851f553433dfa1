"""A webhook receiver for tests: a real Starlette app on a local port (uvicorn in a thread)
that verifies every request's Standard Webhooks signature with the `standardwebhooks` package
(an implementation independent of c360's) and records what arrived. It can be told to answer
with another status (500, 410, a redirect), to hang, or to ask for a `Retry-After`."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.api.servers import Server


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records requests; `secrets` verify them (any one may); `answers` are popped first,
    then `status` is answered."""

    secrets: list[str] = field(default_factory=list)
    status: int = 204
    answers: list[int] = field(default_factory=list)
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """the webhook ids of requests answered with a non-2xx status"""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = False
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
            except Exception:
                pass
        with self.lock:
            status = self.answers.pop(0) if self.answers else self.status
            if 200 <= status < 300:
                # only what was accepted counts as received; refusals are attempts
                self.received.append(
                    Received(request.method, request.url.path, headers, body, verified)
                )
            else:
                self.refused.append(headers.get("webhook-id", ""))
        if self.hang:
            await asyncio.sleep(self.hang)
        return Response(self.body, status_code=status, headers=self.headers)

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]


class ReceiverServer:
    def __init__(self, receiver: Receiver) -> None:
        app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST", "PATCH"])])
        self.server = Server(app)
        self.receiver = receiver

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> ReceiverServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
