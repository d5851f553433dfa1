"""One server process for bench/sales_context.py: uvicorn, one event loop, on 127.0.0.1.

    python bench/_sales_server.py MODE --port P --data-dir DIR --key KEY

Modes:
- `c360`      the product as built by `create_app(settings)`: PII enforcement and audit on;
- `c360-off`  the same app with `PiiGuard.enforce` returning values unchanged and the
              `AuditReads` extension removed (a bench-only toggle, not a product switch);
- `c360-noext` as `c360-off`, and `pii_field` builds plain fields with no `PiiGuard` at all;
- `baseline`  a bare Strawberry schema answering the same query with the same JSON shape from
              Python dicts (`DIR/baseline.json`, written by the loader), keyed by email;
- `baseline-cached` the bare schema plus Strawberry's parser and validation caches.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.scalars import JSON

MODES = ("baseline", "baseline-cached", "c360", "c360-off", "c360-noext")


# --- the bare baseline -----------------------------------------------------------------


@strawberry.enum
class EventType(Enum):
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"


@strawberry.input
class IdentifierInput:
    kind: str
    value: str


@strawberry.type
class Address:
    city: str | None
    country: str | None


@strawberry.type
class Traits:
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    address: Address | None


@strawberry.type
class Identifier:
    kind: str
    value: str | None
    first_seen: datetime
    last_seen: datetime


@strawberry.type
class Event:
    type: EventType
    name: str | None
    timestamp: datetime
    properties: JSON


@strawberry.type
class EventEdge:
    node: Event


@strawberry.type
class EventConnection:
    total_count: int
    edges: list[EventEdge]


@strawberry.type
class Customer:
    id: strawberry.ID
    traits: Traits
    identifiers: list[Identifier]
    events_data: strawberry.Private[dict[str, Any]]

    @strawberry.field
    def events(self, first: int = 20) -> EventConnection:
        data = self.events_data
        edges = [
            EventEdge(node=Event(type=EventType(e["type"]), name=e["name"],
                                 timestamp=e["timestamp"], properties=e["properties"]))
            for e in data["edges"][:first]
        ]  # fmt: skip
        return EventConnection(total_count=data["totalCount"], edges=edges)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Customer:
        t = d["traits"]
        address = t["address"]
        return cls(
            id=strawberry.ID(d["id"]),
            traits=Traits(
                name=t["name"],
                email=t["email"],
                phone=t["phone"],
                company=t["company"],
                address=Address(city=address["city"], country=address["country"])
                if address
                else None,
            ),
            identifiers=[
                Identifier(
                    kind=i["kind"],
                    value=i["value"],
                    first_seen=i["firstSeen"],
                    last_seen=i["lastSeen"],
                )
                for i in d["identifiers"]
            ],  # fmt: skip
            events_data=d["events"],
        )


CUSTOMERS: dict[str, dict[str, Any]] = {}


@strawberry.type
class Query:
    @strawberry.field
    async def customer(self, identifier: IdentifierInput) -> Customer | None:
        found = CUSTOMERS.get(identifier.value.strip().lower())
        return Customer.from_dict(found) if found else None


def load_baseline(path: Path) -> None:
    """The pre-generated answers, with timestamps as datetimes as a store would give them."""
    stamp = datetime.fromisoformat
    for email, d in json.loads(path.read_text()).items():
        for i in d["identifiers"]:
            i["firstSeen"], i["lastSeen"] = stamp(i["firstSeen"]), stamp(i["lastSeen"])
        for e in d["events"]["edges"]:
            e["timestamp"] = stamp(e["timestamp"])
        CUSTOMERS[email] = d


async def ready(request: Request) -> Response:
    return JSONResponse({"status": "ready"})


def baseline_app(data_dir: Path, *, cached: bool) -> Starlette:
    load_baseline(data_dir / "baseline.json")
    caches = [lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)]
    extensions: list[Any] = caches if cached else []
    schema = strawberry.Schema(query=Query, extensions=extensions)
    view = GraphQL[None, None](schema, graphql_ide=None)
    return Starlette(
        routes=[Route("/graphql", view, methods=["GET", "POST"]), Route("/readyz", ready)]
    )


# --- the product, on and off -----------------------------------------------------------


def c360_app(mode: str, data_dir: Path, key: str) -> Starlette:
    if mode == "c360-noext":
        import graph_api.access.pii as pii

        def plain_field(*, category: Any = None, classified_by: Any = None, **kwargs: Any) -> Any:
            return strawberry.field(**kwargs)

        pii.pii_field = plain_field  # before any graph_api.types module binds it
    import graph_api.app as app_module
    from graph_api.access.audit import AuditReads
    from graph_api.access.pii import PiiGuard
    from graph_api.settings import Secret, Settings

    if mode in ("c360-off", "c360-noext"):

        def enforce_nothing(self: PiiGuard, value: Any, source: Any, info: Any) -> Any:
            return value

        PiiGuard.enforce = enforce_nothing  # type: ignore[method-assign]
        build_schema = app_module.build_schema

        def build_without_audit(settings: Settings) -> strawberry.Schema:
            schema = build_schema(settings)
            schema.extensions = tuple(e for e in schema.extensions if e is not AuditReads)
            return schema

        app_module.build_schema = build_without_audit
    settings = Settings(data_dir=data_dir, bootstrap_admin_key=Secret(key), graphiql=False)
    return app_module.create_app(settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    if args.mode.startswith("baseline"):
        app = baseline_app(args.data_dir, cached=args.mode == "baseline-cached")
    else:
        app = c360_app(args.mode, args.data_dir, args.key)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
