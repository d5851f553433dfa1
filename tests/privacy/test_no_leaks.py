"""No raw value a role may not read clear appears anywhere in that role's responses.

Random traits, identifiers and event properties are ingested; each role then reads the
customer every way it can (profile, history, pages and cursors, merge conflicts) and tries
to use the values (lookups, filters, explainLink, bad input). The whole response text of
every request is searched for each value the role may only see masked, hashed or not at all.
"""

from __future__ import annotations

import json
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph_api.access.policy import Mode
from graph_api.app import create_app
from tests.api.conftest import Api
from tests.privacy.conftest import IDENTIFY, TRACK, make_settings, policy, token

ROLES = ("support", "sales", "marketing", "analyst", "ingest")
RESERVED = ("name", "firstName", "lastName", "username", "title", "company", "website", "avatar")
CUSTOM = ("plan", "loyalty_tier", "push_token", "ssn", "city", "favourite_colour", "nickname")
ADDRESS = ("street", "city", "state", "postalCode", "country")
PROPERTIES = ("revenue", "coupon", "ip", "email", "sku", "note", "path")
KINDS = ("user_id", "anonymous_id", "device_id", "crm_id", "loyalty_id")
NOT_HEX = "ghijklmnopqrstuvwxyz"


def distinctive(min_size: int = 8) -> st.SearchStrategy[str]:
    """Text that cannot turn up in a response by chance: letters beyond a-f keep it out of
    digests, ids and cursors; digits keep it out of the schema's and messages' words."""
    alphabet = string.ascii_lowercase + string.digits + "-_. "
    return st.text(alphabet, min_size=min_size, max_size=24).filter(
        lambda s: (
            s.strip() == s
            and sum(c in NOT_HEX for c in s) >= 2
            and sum(c in string.digits for c in s) >= 2
        )
    )


@dataclass
class Profile:
    traits: dict[str, Any]
    address: dict[str, str]
    identifiers: dict[str, str]
    email: str
    phone: str
    properties: dict[str, str]
    second_user_id: str


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    names = [
        *RESERVED,
        *CUSTOM,
        *(f"address.{k}" for k in ADDRESS),
        *(f"property.{k}" for k in PROPERTIES),
        *KINDS,
        "local",
        "domain",
        "user2",
    ]
    values = draw(st.lists(distinctive(), min_size=len(names), max_size=len(names), unique=True))
    values = [v for v in values if not any(v != w and v in w for w in values)]
    if len(values) < len(names):
        values += [f"{w}-zq{i}x" for i, w in enumerate(values[: len(names) - len(values)])]
    pool = dict(zip(names, values, strict=False))
    local = pool["local"].replace(" ", "_")
    domain = "".join(c for c in pool["domain"] if c.isalnum())
    email = f"{local}@{domain}.com"
    phone = f"+1415555{draw(st.integers(0, 9999)):04d}"
    picked = draw(st.sets(st.sampled_from(RESERVED + CUSTOM), min_size=3))
    props = draw(st.sets(st.sampled_from(PROPERTIES), min_size=2))
    return Profile(
        traits={name: pool[name] for name in picked} | {"email": email, "phone": phone},
        address={k: pool[f"address.{k}"] for k in ADDRESS},
        identifiers={kind: pool[kind] for kind in KINDS},
        email=email,
        phone=phone,
        properties={k: pool[f"property.{k}"] for k in props},
        second_user_id=pool["user2"],
    )


def hidden_values(profile: Profile, role: str) -> dict[str, str]:
    """Each value the role may not read clear, by where it came from."""
    rules = policy()
    roles = frozenset({role})

    def clear(category: Any) -> bool:
        return rules.best_mode(roles, category) is Mode.CLEAR

    hidden: dict[str, str] = {}
    for name, value in profile.traits.items():
        if not clear(rules.trait_category(name)):
            hidden[f"traits.{name}"] = value
    if not clear(rules.trait_category("address")):
        hidden |= {f"address.{k}": v for k, v in profile.address.items()}
    for kind, value in {**profile.identifiers, "user_id#2": profile.second_user_id}.items():
        if not clear(rules.kind_category(kind.split("#")[0])):
            hidden[f"identifier.{kind}"] = value
    for key, value in profile.properties.items():
        if not clear(rules.property_category(key)):
            hidden[f"properties.{key}"] = value
    for label, value in list(hidden.items()):
        if "@" in value:
            hidden[f"{label} (local part)"] = value.split("@")[0]
    return hidden


async def ingest(api: Api, profile: Profile) -> tuple[str, str]:
    """The customer, and a second one whose user id conflicts with the customer's email."""
    ids = profile.identifiers
    extra = [{"kind": k, "value": ids[k]} for k in ("device_id", "crm_id", "loyalty_id")]
    first = await api(
        IDENTIFY,
        {
            "input": {
                "userId": ids["user_id"],
                "anonymousId": ids["anonymous_id"],
                "identifiers": extra,
                "traits": {**profile.traits, "address": profile.address},
                "timestamp": "2024-02-01T10:00:00Z",
            }
        },
    )
    await api(
        TRACK,
        {
            "input": {
                "event": "Order Completed",
                "userId": ids["user_id"],
                "properties": profile.properties,
                "timestamp": "2024-02-02T10:00:00Z",
            }
        },
    )
    conflicting = await api(
        IDENTIFY,
        {
            "input": {
                "userId": profile.second_user_id,
                "traits": {"email": profile.email},
                "timestamp": "2024-02-03T10:00:00Z",
            }
        },
    )
    return first["identify"]["customerId"], conflicting["identify"]["customerId"]


def view_query(trait_names: list[str]) -> str:
    history = " ".join(
        f'h{i}: traitHistory(name: "{n}") {{ name value source }}'
        for i, n in enumerate(trait_names)
    )
    return f"""query($id: ID!, $other: ID!) {{ customer(id: $id) {{ ...view }}
      other: customer(id: $other) {{ ...view }}
      customers(first: 1) {{ edges {{ cursor node {{ id }} }} pageInfo {{ endCursor }} }} }}
    fragment view on Customer {{ id
      traits {{ name firstName lastName email phone username title gender birthday age company
        website description avatar createdAt custom
        address {{ street city state postalCode country }} }}
      identifiers {{ kind value sources }}
      events(first: 1) {{ edges {{ cursor node {{ id name properties }} }}
        pageInfo {{ endCursor hasNextPage }} }}
      mergeHistory {{ id links {{ from {{ kind value }} to {{ kind value }} messageId }}
        identifiers {{ kind value }} }}
      conflicts {{ id reason dropped {{ kind value }} }}
      consents {{ purpose status source }}
      {history} }}"""


def probes(profile: Profile) -> list[tuple[str, dict[str, Any]]]:
    """Ways a role might try to use a value it may not read."""
    email = {"kind": "email", "value": profile.email}
    user = {"kind": "user_id", "value": profile.identifiers["user_id"]}
    device = {"kind": "device_id", "value": profile.identifiers["device_id"]}
    lookup = "query($i: IdentifierInput!) { customer(identifier: $i) { id traits { email } } }"
    where = "query($w: CustomerFilter!) { customers(where: $w) { totalCount edges { cursor } } }"
    explain = """query($a: IdentifierInput!, $b: IdentifierInput!) { explainLink(a: $a, b: $b) {
      linked path { from { kind value } to { kind value } } } }"""
    name = next(iter(sorted(set(profile.traits) - {"email", "phone"})))
    return [
        (lookup, {"i": email}),
        (lookup, {"i": device}),
        (lookup, {"i": {"kind": "email", "value": f"{profile.email}@@"}}),
        (lookup, {"i": {"kind": "phone", "value": f"{profile.identifiers['crm_id']}"}}),
        (where, {"w": {"identifier": user}}),
        (where, {"w": {"trait": {"name": "email", "value": profile.email}}}),
        (where, {"w": {"trait": {"name": name, "value": profile.traits[name]}}}),
        (explain, {"a": email, "b": device}),
        (explain, {"a": user, "b": {"kind": "loyalty_id", "value": profile.identifiers["crm_id"]}}),
    ]


def leaks(body: str, hidden: dict[str, str]) -> list[str]:
    return [
        label for label, value in hidden.items() if value in body or json.dumps(value)[1:-1] in body
    ]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(profile=profiles())
async def test_no_role_sees_a_raw_value_it_may_not_read(profile: Profile) -> None:
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(make_settings(Path(directory)))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                api = Api(client)
                customer, other = await ingest(api, profile)
                assert customer != other
                view = view_query(sorted({*profile.traits, "address"}))
                requests = [
                    (view, {"id": customer, "other": other}),
                    *probes(profile),
                ]
                admin_body = (await api.post(*requests[0])).text
                assert profile.email in admin_body, "the admin view is missing the seed"
                assert profile.properties[min(profile.properties)] in admin_body
                assert f'"dropped":[{{"kind":"email","value":"{profile.email}"}}]' in admin_body
                for role in ROLES:
                    hidden = hidden_values(profile, role)
                    assert hidden or role in ("support",)
                    for query, variables in requests:
                        response = await api.post(query, variables, key=token(role))
                        found = leaks(response.text, hidden)
                        assert not found, f"{role} sees {found} in {response.text}"
