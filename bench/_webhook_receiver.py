"""The webhook receiver of bench/webhooks.py: a bare ASGI app, run by uvicorn in a process of
its own so that it shares no event loop with c360, answering as fast as it can and recording
every request with the moment it arrived (`time.monotonic()`: on Linux one clock for every
process of the machine, so the bench compares it with its own).

    python -m uvicorn _webhook_receiver:app --app-dir bench --workers 1 --lifespan off --port P

The first part of the path says how it answers:
- `/ok/...`     204;
- `/flaky/...`  500 until the moment `POST /_control` set (`{"fail_until": t}`), then 204;
- `/hang/...`   never: the request is held until the sender gives up and disconnects.

And for the bench: `GET /_wait?path=P&n=N&timeout=S` answers once N requests on path P were
answered 2xx (or S seconds passed) with `{"count", "first", "at"}` (the first's and the N-th's
arrival); `GET /_dump?path=P&start=K` answers the requests on P from the K-th, refused ones
too, as `[arrived, status (0: held), webhook-id, webhook-timestamp, webhook-signature, body]`.
Signatures are not checked here, so that checking costs the throughput nothing: the bench
checks every one afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Record = tuple[float, int, str, str, str, str]

records: dict[str, list[Record]] = defaultdict(list)
accepted: dict[str, list[float]] = defaultdict(list)
"""path -> arrival of each request answered 2xx"""
arrivals: dict[str, asyncio.Event] = {}
fail_until = 0.0


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    arrived = time.monotonic()
    path: str = scope["path"]
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if path.startswith("/_"):
        await control(path, scope, body, send)
        return
    if path.startswith("/hang/"):
        status = 0
    elif path.startswith("/flaky/") and arrived < fail_until:
        status = 500
    else:
        status = 204
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    records[path].append(
        (
            arrived,
            status,
            headers.get("webhook-id", ""),
            headers.get("webhook-timestamp", ""),
            headers.get("webhook-signature", ""),
            body.decode(),
        )
    )
    if not status:
        await receive()  # `http.disconnect`, once the sender gives up
        return
    if status < 300:
        accepted[path].append(arrived)
        event = arrivals.get(path)
        if event is not None:
            event.set()
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def control(path: str, scope: Scope, body: bytes, send: Send) -> None:
    global fail_until
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    answer: Any = {}
    if path == "/_control":
        fail_until = float(json.loads(body)["fail_until"])
    elif path == "/_wait":
        answer = await wait(query["path"], int(query["n"]), float(query.get("timeout", 600)))
    elif path == "/_dump":
        answer = records.get(query["path"], [])[int(query.get("start", 0)) :]
    data = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def wait(path: str, n: int, within: float) -> dict[str, Any]:
    got = accepted[path]
    deadline = time.monotonic() + within
    event = arrivals.setdefault(path, asyncio.Event())
    while len(got) < n and time.monotonic() < deadline:
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            pass
    return {
        "count": len(got),
        "first": got[0] if got else None,
        "at": got[n - 1] if 0 < n <= len(got) else None,
    }
