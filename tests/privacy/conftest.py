"""Fixtures for the privacy tests: an app with a policy and rules file, keys per role, a seed.

The seed gives one customer a value for every field that carries `@pii`: every reserved
trait, custom traits of several classifications, events whose properties span categories,
and identifiers of every kind (two custom kinds, one classified in the policy file, one not).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import httpx
import jwt
import pytest
from starlette.applications import Starlette

from graph_api.access.categories import PiiCategory, PiiClassifier
from graph_api.access.masking import HIDDEN, keyed_hash, mask
from graph_api.access.policy import LOW_CARDINALITY, Mode, Policy, normal_key
from graph_api.app import create_app
from graph_api.schema import export_schema
from graph_api.settings import Secret, Settings
from tests.api.conftest import ADMIN_KEY, JWT_AUDIENCE, JWT_CLAIMS, JWT_ISSUER, JWT_SECRET, Api

HASH_KEY = "privacy-test-hash-key"
READERS = ("admin", "support", "sales", "marketing", "analyst")

POLICY = """\
[classification.kinds]
crm_id = "IDENTITY"

[classification.traits]
plan = "UNCLASSIFIED"
loyalty_tier = "FINANCIAL"
push_token = "DEVICE"

[classification.event_properties]
coupon = "FINANCIAL"
"""

RULES = """\
[kinds.crm_id]
limit = 1
priority = 6

[kinds.loyalty_id]
limit = 1
priority = 7
"""

ADDRESS = {
    "street": "12 Quarry Lane",
    "city": "Harrogate",
    "state": "North Yorkshire",
    "postalCode": "HG1 2AB",
    "country": "United Kingdom",
}
TRAITS: dict[str, Any] = {
    "name": "Jane Quarry Doe",
    "firstName": "Janette",
    "lastName": "Doelittle",
    "email": "jane.doe@example.com",
    "phone": "+14155550134",
    "username": "jdoe_1984",
    "title": "Head of Widgets",
    "gender": "nonbinary-x",
    "birthday": "1984-03-07",
    "age": 40,
    "company": "Widgetworks Ltd",
    "website": "https://janedoe.example.org",
    "description": "Prefers afternoon calls",
    "avatar": "https://cdn.example.org/jd.png",
    "createdAt": "2020-05-01T00:00:00Z",
    "address": ADDRESS,
    "plan": "platinum-plus",
    "loyalty_tier": "gold-tier-7",
    "push_token": "ptok-77aa91",
    "ssn": "078-05-1120",
    "mobile": "+447700900123",
    "city": "Knaresborough",
    "favourite_colour": "teal-ish",
}
OLD_FIRST_NAME = "Jeanie"
IDENTIFIERS = {
    "user_id": "u-jane-0001",
    "email": "jane.doe@example.com",
    "phone": "+14155550134",
    "anonymous_id": "anon-jane-0001",
    "device_id": "dev-jane-iphone",
    "crm_id": "crm-0042-jd",
    "loyalty_id": "loy-9931-jd",
}
EVENTS: dict[str, dict[str, Any]] = {
    "m-order": {
        "revenue": 99.5,
        "coupon": "SAVE10-JD",
        "ip": "203.0.113.77",
        "email": "receipt.jane@example.net",
        "sku": "WID-00917",
        "gift_wrap_note": "happy birthday mum",
    },
    "m-page": {"path": "/pricing", "referrer_search": "cheap widgets leeds"},
}


@dataclass
class Seeded:
    customer_id: str
    traits: dict[str, Any]
    identifiers: dict[str, str]
    events: dict[str, dict[str, Any]]
    history: dict[str, list[Any]]
    """observed values per trait name, oldest first"""


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "rules_file": rules,
        "policy_file": policy,
        "bootstrap_admin_key": Secret(ADMIN_KEY),
        "jwt_secret": Secret(JWT_SECRET),
        "jwt_audience": JWT_AUDIENCE,
        "jwt_issuer": JWT_ISSUER,
        "hash_key": Secret(HASH_KEY),
        "max_aliases": 100,
        "max_tokens": 10_000,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as client:
        yield Api(client)


@pytest.fixture
async def keys(api: Api) -> dict[str, str]:
    """An API key per built-in role; admin's is the bootstrap key."""
    made = {role: await api.key(role) for role in (*READERS[1:], "ingest")}
    return {"admin": ADMIN_KEY, **made}


def token(*roles: str, sub: str = "privacy-tester") -> str:
    """An HS256 JWT carrying the roles (any list, even empty or unknown)."""
    claims = {"sub": sub, "roles": list(roles), "exp": int(time.time()) + 600, **JWT_CLAIMS}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


IDENTIFY = "mutation($input: IdentifyInput!) { identify(input: $input) { customerId merges } }"
TRACK = "mutation($input: TrackInput!) { track(input: $input) { customerId } }"


def ids(*kinds: str) -> list[dict[str, str]]:
    return [{"kind": kind, "value": IDENTIFIERS[kind]} for kind in kinds]


async def seed(api: Api) -> Seeded:
    """Two profiles merged into one, so merge history and links carry every kind."""
    await api(
        IDENTIFY,
        {
            "input": {
                "userId": IDENTIFIERS["user_id"],
                "traits": {"firstName": OLD_FIRST_NAME},
                "timestamp": "2024-01-01T09:00:00Z",
                "messageId": "m-first",
            }
        },
    )
    await api(
        IDENTIFY,
        {
            "input": {
                "userId": IDENTIFIERS["user_id"],
                "traits": TRAITS,
                "timestamp": "2024-01-02T09:00:00Z",
                "messageId": "m-traits",
            }
        },
    )
    await api(
        IDENTIFY,
        {
            "input": {
                "anonymousId": IDENTIFIERS["anonymous_id"],
                "identifiers": ids("device_id", "crm_id", "loyalty_id"),
                "timestamp": "2024-01-03T09:00:00Z",
                "messageId": "m-device",
            }
        },
    )
    merged = await api(
        TRACK,
        {
            "input": {
                "event": "Order Completed",
                "category": "BEHAVIOURAL",
                "userId": IDENTIFIERS["user_id"],
                "anonymousId": IDENTIFIERS["anonymous_id"],
                "properties": EVENTS["m-order"],
                "timestamp": "2024-01-04T09:00:00Z",
                "messageId": "m-order",
            }
        },
    )
    await api(
        TRACK,
        {
            "input": {
                "event": "Pricing",
                "type": "PAGE",
                "anonymousId": IDENTIFIERS["anonymous_id"],
                "properties": EVENTS["m-page"],
                "timestamp": "2024-01-05T09:00:00Z",
                "messageId": "m-page",
            }
        },
    )
    history: dict[str, list[Any]] = {name: [value] for name, value in TRAITS.items()}
    history["firstName"] = [OLD_FIRST_NAME, TRAITS["firstName"]]
    return Seeded(
        customer_id=merged["track"]["customerId"],
        traits=dict(TRAITS),
        identifiers=dict(IDENTIFIERS),
        events={k: dict(v) for k, v in EVENTS.items()},
        history=history,
    )


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    return await seed(api)


@dataclass(frozen=True)
class PiiField:
    """A field of the exported SDL that carries `@pii`."""

    type_name: str
    name: str
    category: PiiCategory | None
    classified_by: PiiClassifier | None
    numeric: bool


@functools.cache
def sdl_schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(export_schema())


@functools.cache
def pii_fields() -> tuple[PiiField, ...]:
    """Every `@pii` field, read from the directive in the exported SDL."""
    found: list[PiiField] = []
    for type_ in sdl_schema().type_map.values():
        if not isinstance(type_, graphql.GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            assert field.ast_node is not None
            for directive in field.ast_node.directives or ():
                if directive.name.value != "pii":
                    continue
                args = {a.name.value: getattr(a.value, "value", None) for a in directive.arguments}
                named = graphql.get_named_type(field.type)
                found.append(
                    PiiField(
                        type_name=type_.name,
                        name=name,
                        category=PiiCategory(args["category"]) if args.get("category") else None,
                        classified_by=(
                            PiiClassifier(args["classifiedBy"])
                            if args.get("classifiedBy")
                            else None
                        ),
                        numeric=getattr(named, "name", "") in ("Int", "Float"),
                    )
                )
    return tuple(found)


def expect(raw: Any, mode: Mode, *, numeric: bool = False, key: str | None = None) -> Any:
    """What a caller in `mode` must see of `raw` (denied: null, with an error elsewhere).

    `key` names the trait or property a value is of (None for an identifier's value): hashed
    is served only for texts that mask to more than nothing under keys with many values."""
    if mode is Mode.CLEAR:
        return raw
    if mode is Mode.DENIED or numeric:
        return None
    guessable = not isinstance(raw, str) or mask(raw) == HIDDEN
    if key is not None and (guessable or normal_key(key) in LOW_CARDINALITY):
        mode = Mode.MASKED
    if mode is Mode.MASKED:
        return mask(raw)
    return keyed_hash(HASH_KEY.encode(), raw)


def expect_map(raw: dict[str, Any], modes: dict[str, Mode]) -> dict[str, Any]:
    """A JSON map rendered key by key: denied values read null (and are reported)."""
    return {k: expect(v, modes[k], key=k) for k, v in raw.items()}


def policy() -> Policy:
    return Policy.parse(POLICY)
