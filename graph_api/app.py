"""The ASGI application: GraphQL, the Segment tracking API, the browser pages, health and
metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult

from graph_api import metrics
from graph_api.access.auth import Principal
from graph_api.context import Context
from graph_api.documents import TrustedDocuments, lift_document_id
from graph_api.errors import C360Error, PayloadTooLarge, code_of, public_message, status_of
from graph_api.loaders import Loaders
from graph_api.privacy.retention import retention_schedule
from graph_api.schema import build_schema
from graph_api.services import Services, build_services, tune_runtime
from graph_api.settings import Settings
from graph_api.tracking import endpoints as tracking
from graph_api.web import pages
from identity_graph.errors import StoreUnavailable

log = logging.getLogger("c360.api")
NOBODY = Principal("anonymous", frozenset(), "none")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """An HTTP-level failure, shaped like a GraphQL error list."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=headers)


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with our authentication, JSON error responses, trusted
    documents and c360's own GraphiQL page."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        schema = build_schema(settings)
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(),
        )
        self.services = services
        self.documents = TrustedDocuments(
            settings.trusted_documents_file, settings.trusted_documents_roles
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """Strawberry's page loads GraphiQL from a CDN; c360's serves its own copy."""
        return pages.graphiql()

    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        roles = context.principal.roles
        if isinstance(request_data, list):
            request_data = [self.documents.resolve(item, roles) for item in request_data]
        else:
            request_data = self.documents.resolve(request_data, roles)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response: Response
        try:
            response = await self.run(request)
        except (C360Error, StoreUnavailable) as e:
            response = error_response(status_of(e), code_of(e) or "INTERNAL", public_message(e))
        except HTTPException as e:
            response = error_response(e.status_code, "BAD_REQUEST", e.reason)
        await response(scope, receive, send)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Errors raised before execution (a document that does not parse) skip the schema
        extensions; they are bad requests."""
        response = await super().process_result(request, result)
        for error in response.get("errors") or ():
            entry = cast(dict[str, Any], error)
            entry.setdefault("extensions", {}).setdefault("code", "BAD_REQUEST")
        return response

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the request body must be a JSON object")
        # Strawberry hands a POST body over as bytes, a GET request's `variables` as text:
        # only a whole request may carry a `documentId`
        return lift_document_id(parsed) if isinstance(data, bytes) else parsed

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:  # type: ignore[override]
        return cast(dict[str, Any], lift_document_id(super().parse_query_params(params)))

    async def get_context(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Context:
        if self.should_render_graphql_ide(self.request_adapter_class(request)):
            principal = NOBODY
        else:
            principal = await self.services.auth.from_bearer(request)
        return Context(
            request=request,
            response=response,
            principal=principal,
            services=self.services,
            loaders=Loaders(self.services.store, self.services.audiences),
        )


class BodyLimit:
    """Answer 413 to a request whose body passes `limit` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = HTTPConnection(scope).headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(f"request body larger than {self.limit} bytes")
            return message

        async def watch_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watch_send)
        except PayloadTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than {self.limit} bytes"
        await error_response(413, "PAYLOAD_TOO_LARGE", message)(scope, receive, send)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        await services.store.ping()
    except Exception as e:
        log.warning("store not ready: %s", e)
        reason = f"store unavailable ({services.settings.store})"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})


def cors(settings: Settings) -> list[Middleware]:
    """CORS for the listed origins only: their preflights are answered (and cached for ten
    minutes), other origins get no `Access-Control-Allow-Origin`, and credentials (cookies)
    are never allowed: callers send a bearer token or a write key."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "content-encoding"],
            allow_credentials=False,
            max_age=600,
        )
    ]


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Starlette:
    """Build the app; the store is opened by the lifespan and closed at shutdown."""
    if services is None:
        services = build_services(settings or Settings.from_env())
    shared = services

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # here, not in `c360 serve`, so that a server started by plain uvicorn gets it too
        tune_runtime()
        await shared.store.open()
        try:
            key = shared.settings.bootstrap_admin_key
            if key:
                await shared.auth.seed_key(key.get(), "admin", "bootstrap admin key")
            await shared.audiences.start()
            try:
                await shared.dispatcher.start()
                try:
                    async with retention_schedule(shared):
                        yield
                finally:
                    await shared.dispatcher.stop()
            finally:
                await shared.audiences.stop()
        finally:
            await shared.store.close()

    routes = [
        Route("/graphql", GraphQLView(shared), methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
        *tracking.routes,
        *pages.routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(metrics.MetricsMiddleware),
            *cors(shared.settings),
            Middleware(BodyLimit, limit=shared.settings.max_body_bytes),
        ],
        lifespan=lifespan,
    )
    app.state.services = shared
    return app
