"""The Segment HTTP tracking API: `POST /v1/identify|track|page|screen|alias|group|batch`.

The write key is the HTTP Basic user name, as Segment's libraries send it (`writeKey` in a
body is accepted too, as Segment does for batches), and must belong to the `ingest` or
`admin` role. The whole request is validated before anything is written; a 200
`{"success": true}` means the messages are durable and visible to the next query.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from graph_api.access.auth import INGEST_ROLES, Principal, require
from graph_api.errors import (
    AuthError,
    PayloadTooLarge,
    SegmentError,
    code_of,
    public_message,
    status_of,
)
from graph_api.metrics import count_ingest
from graph_api.tracking.ingest import ingest_counted
from graph_api.tracking.segment import (
    CALLS,
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    SegmentMapper,
    encoded_size,
)
from identity_graph.errors import IdentityGraphError, StoreUnavailable
from identity_graph.model import Observation

SOURCE = "segment"


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    # `code` and `message` at the top level too: Segment's libraries read them from there.
    body = {"error": {"code": code, "message": message, **extra}, "code": code, "message": message}
    return JSONResponse(body, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("too large")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as e:
            raise ValueError("the body is not valid gzip") from e
        if len(body) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge("too large")
    return body


async def _authenticate(request: Request, write_key: object) -> Principal:
    """The Basic credentials if sent, else the body's `writeKey`."""
    auth = request.app.state.services.auth
    if "authorization" not in request.headers and isinstance(write_key, str) and write_key:
        principal: Principal = await auth.from_write_key(write_key)
    else:
        principal = await auth.from_basic(request)
    require(principal, INGEST_ROLES, "send events")
    return principal


def _messages(call: str, body: dict[str, Any]) -> list[tuple[object, str | None]]:
    if call != "batch":
        if encoded_size(body) > MAX_MESSAGE_BYTES:
            raise SegmentError("MESSAGE_TOO_LARGE", "a message may be at most 32 KB")
        return [(body, call)]
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise SegmentError("INVALID_FIELD", "batch must be an array of messages", field="batch")
    for i, item in enumerate(batch):
        if encoded_size(item) > MAX_MESSAGE_BYTES:
            raise SegmentError("MESSAGE_TOO_LARGE", "a message may be at most 32 KB", index=i)
    return [(item, None) for item in batch]


def _observations(request: Request, call: str, body: dict[str, Any]) -> list[Observation]:
    mapper = SegmentMapper(request.app.state.services.graph.rules, source=SOURCE)
    received_at = datetime.now(UTC)
    context = body.get("context") if call == "batch" else None
    observations = []
    for i, (raw, kind) in enumerate(_messages(call, body)):
        if isinstance(raw, dict) and isinstance(context, dict) and "context" not in raw:
            raw = {**raw, "context": context}
        index = i if call == "batch" else None
        observations.append(mapper.message(raw, index=index, call=kind, received_at=received_at))
    return observations


async def _ingest(request: Request, observations: list[Observation]) -> JSONResponse | None:
    try:
        await ingest_counted(request.app.state.services.graph, observations, source=SOURCE)
    except IdentityGraphError as e:
        if not isinstance(e, StoreUnavailable):
            count_ingest("rejected", SOURCE, len(observations))
        return _error(status_of(e), e.code, public_message(e))
    return None


def endpoint(call: str) -> Any:
    limit = MAX_BATCH_BYTES if call == "batch" else MAX_MESSAGE_BYTES

    async def handle(request: Request) -> JSONResponse:
        principal: Principal | None = None
        try:
            if "authorization" in request.headers:
                principal = await _authenticate(request, None)
            try:
                body = json.loads(await _read_body(request, limit))
            except PayloadTooLarge:
                kind = "a batch" if call == "batch" else "a message"
                return _error(413, "PAYLOAD_TOO_LARGE", f"{kind} may be at most {limit // 1024} KB")
            except ValueError:
                body = None
            if principal is None:
                write_key = body.get("writeKey") if isinstance(body, dict) else None
                principal = await _authenticate(request, write_key)
        except (AuthError, StoreUnavailable) as e:
            return _error(status_of(e), code_of(e) or "INTERNAL", public_message(e))
        if not isinstance(body, dict):
            count_ingest("rejected", SOURCE)
            return _error(400, "MALFORMED_JSON", "the body must be a JSON object")
        try:
            observations = _observations(request, call, body)
        except SegmentError as e:
            batch = body.get("batch") if call == "batch" else None
            count_ingest("rejected", SOURCE, len(batch) if isinstance(batch, list) else 1)
            return _error(e.status, **e.to_json())
        failure = await _ingest(request, observations)
        return failure or JSONResponse({"success": True})

    handle.__name__ = f"segment_{call}"
    return handle


routes: list[BaseRoute] = [
    Route(f"/v1/{call}", endpoint(call), methods=["POST"]) for call in (*CALLS, "batch")
]
