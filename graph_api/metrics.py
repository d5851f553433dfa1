"""Prometheus metrics: HTTP requests by route template, ingest outcomes, clamped times.

The metrics live in one module registry, created once at import, so building the app
many times (tests) never registers a time series twice.
"""

from __future__ import annotations

import hmac
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "c360_http_requests",
    "HTTP requests handled, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "c360_http_request_duration_seconds",
    "HTTP request latency, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
INGESTED = Counter(
    "c360_ingest_messages",
    "Messages offered for ingestion, by outcome: accepted, duplicate, dropped (every"
    " identifier blocked) or rejected (invalid, nothing written).",
    ["outcome", "source"],
    registry=REGISTRY,
)

CLAMPED = Counter(
    "c360_clamped_timestamps",
    "Messages whose claimed time was later than their receipt and was stored as the receipt"
    " time, by entry point (a client's clock is not trusted).",
    ["source"],
    registry=REGISTRY,
)

WEBHOOK_DELIVERIES = Counter(
    "c360_webhook_deliveries",
    "Webhook delivery attempts written back, by the delivery's status after it: DELIVERED,"
    " PENDING (to be retried), FAILED (retry window closed) or SKIPPED.",
    ["status"],
    registry=REGISTRY,
)

OUTCOMES = ("accepted", "duplicate", "dropped", "rejected")


def count_ingest(outcome: str, source: str, n: int = 1) -> None:
    """Add `n` messages with this outcome (`accepted`, `duplicate`, `dropped`, `rejected`)."""
    if n:
        INGESTED.labels(outcome=outcome, source=source).inc(n)


def count_clamped(source: str) -> None:
    """Count a message whose claimed future time was clamped to its receipt."""
    CLAMPED.labels(source=source).inc()


def route_template(scope: Scope) -> str:
    """The path template the router matched (`/v1/{kind}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware counting and timing every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            labels = (scope["method"], route_template(scope), str(status))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - start)


async def metrics_endpoint(request: Request) -> Response:
    """`GET /metrics` in the Prometheus text format, for the bearer of `C360_METRICS_TOKEN`
    (or anyone with `C360_PUBLIC_METRICS`); off when neither is set."""
    settings = request.app.state.services.settings
    token = settings.metrics_token.get()
    if not token and not settings.public_metrics:
        return Response("metrics are off: set C360_METRICS_TOKEN\n", status_code=404)
    if token and not settings.public_metrics:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            headers = {"WWW-Authenticate": "Bearer"}
            return Response("metrics need the metrics token\n", status_code=401, headers=headers)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
