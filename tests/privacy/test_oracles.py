"""What a role may not read clear it may not use: lookups, filters and explainLink refuse,
and no error message echoes the value."""

from __future__ import annotations

from typing import Any

import pytest

from graph_api.access.masking import keyed_hash
from tests.api.conftest import Api, codes
from tests.privacy.conftest import HASH_KEY, IDENTIFIERS, TRAITS, Seeded, token

LOOKUP = "query($i: IdentifierInput!) { customer(identifier: $i) { id } }"
WHERE = "query($w: CustomerFilter!) { customers(where: $w) { totalCount edges { cursor } } }"
EXPLAIN = """query($a: IdentifierInput!, $b: IdentifierInput!) { explainLink(a: $a, b: $b) {
  linked customerId path { from { kind value } to { kind value } } } }"""

EMAIL = {"kind": "email", "value": IDENTIFIERS["email"]}
USER = {"kind": "user_id", "value": IDENTIFIERS["user_id"]}
DEVICE = {"kind": "device_id", "value": IDENTIFIERS["device_id"]}
UNKNOWN_EMAIL = {"kind": "email", "value": "nobody.here@example.com"}


async def refused(api: Api, query: str, variables: dict[str, Any], role: str) -> dict[str, Any]:
    """The body of a request that must be refused with FORBIDDEN, echoing no value."""
    response = await api.post(query, variables, key=token(role))
    body: dict[str, Any] = response.json()
    assert codes(body["errors"]) == ["FORBIDDEN"], body
    assert body["data"] is None or not any(body["data"].values()), body
    for value in raw_values(variables):
        assert value.lower() not in response.text.lower(), response.text
    return body


def raw_values(variables: Any) -> list[str]:
    if isinstance(variables, dict):
        if "value" in variables and isinstance(variables["value"], str):
            return [variables["value"]]
        return [v for item in variables.values() for v in raw_values(item)]
    return []


@pytest.mark.parametrize(("role", "identifier"), [
    ("marketing", EMAIL),  # masked CONTACT
    ("sales", DEVICE),  # denied DEVICE
    ("sales", {"kind": "loyalty_id", "value": IDENTIFIERS["loyalty_id"]}),  # masked custom kind
])  # fmt: skip
async def test_lookup_by_an_identifier_the_role_cannot_read_is_refused(
    api: Api, seeded: Seeded, role: str, identifier: dict[str, str]
) -> None:
    found = await refused(api, LOOKUP, {"i": identifier}, role)
    absent = "zz.absent77@example.com" if identifier["kind"] == "email" else "zz-absent-77"
    missing = await refused(api, LOOKUP, {"i": {**identifier, "value": absent}}, role)
    assert found["errors"][0]["message"] == missing["errors"][0]["message"]


async def test_a_role_that_reads_a_kind_hashed_looks_up_by_the_hash(
    api: Api, seeded: Seeded
) -> None:
    digest = keyed_hash(HASH_KEY.encode(), EMAIL["value"])
    data = await api(LOOKUP, {"i": {"kind": "email", "value": digest}}, key=token("analyst"))
    assert data["customer"]["id"] == seeded.customer_id
    absent = keyed_hash(HASH_KEY.encode(), "zz.absent77@example.com")
    data = await api(LOOKUP, {"i": {"kind": "email", "value": absent}}, key=token("analyst"))
    assert data["customer"] is None
    messages = []
    for value in (EMAIL["value"], "zz.absent77@example.com"):
        response = await api.post(
            LOOKUP, {"i": {"kind": "email", "value": value}}, key=token("analyst")
        )
        body = response.json()
        assert codes(body["errors"]) == ["BAD_INPUT"], body
        assert value.lower() not in response.text.lower()
        messages.append(body["errors"][0]["message"])
    assert messages[0] == messages[1]


async def test_lookup_by_a_clear_identifier_is_allowed(api: Api, seeded: Seeded) -> None:
    for role, identifier in (("support", EMAIL), ("sales", EMAIL), ("support", DEVICE)):
        data = await api(LOOKUP, {"i": identifier}, key=token(role))
        assert data["customer"]["id"] == seeded.customer_id


@pytest.mark.parametrize("role", ["marketing", "analyst"])
async def test_filter_by_identifier_the_role_cannot_read_is_refused(
    api: Api, seeded: Seeded, role: str
) -> None:
    await refused(api, WHERE, {"w": {"identifier": EMAIL}}, role)
    await refused(api, WHERE, {"w": {"identifier": UNKNOWN_EMAIL}}, role)


@pytest.mark.parametrize(("role", "name"), [
    ("marketing", "email"),  # masked CONTACT
    ("analyst", "email"),  # hashed CONTACT
    ("support", "plan"),  # masked UNCLASSIFIED
    ("sales", "loyalty_tier"),  # denied FINANCIAL
    ("analyst", "address"),  # denied LOCATION
])  # fmt: skip
async def test_filter_by_a_trait_the_role_cannot_read_is_refused(
    api: Api, seeded: Seeded, role: str, name: str
) -> None:
    value = TRAITS[name]
    body = await refused(api, WHERE, {"w": {"trait": {"name": name, "value": value}}}, role)
    text = str(body)
    for part in value.values() if isinstance(value, dict) else [value]:
        assert str(part) not in text


async def test_filters_the_role_may_use_work(api: Api, seeded: Seeded) -> None:
    email = {"trait": {"name": "email", "value": TRAITS["email"]}}
    assert (await api(WHERE, {"w": email}, key=token("support")))["customers"]["totalCount"] == 1
    by_id = {"identifier": EMAIL}
    assert (await api(WHERE, {"w": by_id}, key=token("sales")))["customers"]["totalCount"] == 1
    plan = {"trait": {"name": "plan", "value": TRAITS["plan"]}}
    assert (await api(WHERE, {"w": plan}, key=token("admin")))["customers"]["totalCount"] == 1


@pytest.mark.parametrize(("role", "a", "b"), [
    ("sales", EMAIL, USER),  # user_id is DEVICE: denied to sales
    ("marketing", EMAIL, USER),
    ("analyst", USER, DEVICE),
    ("support", USER, {"kind": "loyalty_id", "value": IDENTIFIERS["loyalty_id"]}),
])  # fmt: skip
async def test_explain_link_with_a_kind_the_role_cannot_read_is_refused(
    api: Api, seeded: Seeded, role: str, a: dict[str, str], b: dict[str, str]
) -> None:
    await refused(api, EXPLAIN, {"a": a, "b": b}, role)


async def test_explain_link_shows_the_path_in_the_roles_modes(api: Api, seeded: Seeded) -> None:
    anonymous = {"kind": "anonymous_id", "value": IDENTIFIERS["anonymous_id"]}
    data = await api(EXPLAIN, {"a": USER, "b": anonymous}, key=token("support"))
    explained = data["explainLink"]
    assert explained["linked"] and explained["customerId"] == seeded.customer_id
    ends = {
        (e["kind"], e["value"]) for link in explained["path"] for e in (link["from"], link["to"])
    }
    assert ends == {("user_id", IDENTIFIERS["user_id"]), ("anonymous_id", anonymous["value"])}


BAD_INPUT = [
    ("email", "jane.doe.at.example.com"),
    ("email", "jane doe@@example..com"),
    ("phone", "+1 555 call jane-doe"),
    ("phone", "++4477009001234567890123"),
    ("email", "jane\x01doe@example.com"),
]


@pytest.mark.parametrize("role", ["admin", "support", "marketing", "analyst"])
async def test_invalid_identifier_errors_do_not_echo_the_value(
    api: Api, seeded: Seeded, role: str
) -> None:
    for kind, value in BAD_INPUT:
        for query, variables in (
            (LOOKUP, {"i": {"kind": kind, "value": value}}),
            (WHERE, {"w": {"identifier": {"kind": kind, "value": value}}}),
            (EXPLAIN, {"a": {"kind": kind, "value": value}, "b": USER}),
        ):
            response = await api.post(query, variables, key=token(role))
            body = response.json()
            by_hash = role == "analyst" and query == LOOKUP  # analysts look up by hashed value
            expected = "BAD_INPUT" if by_hash else "INVALID_IDENTIFIER"
            assert codes(body["errors"]) == [expected], body
            message = body["errors"][0]["message"]
            assert value not in response.text
            assert not any(part in message for part in value.split() if len(part) > 3)


async def test_not_found_errors_do_not_echo_the_value(api: Api, seeded: Seeded) -> None:
    response = await api.post(EXPLAIN, {"a": UNKNOWN_EMAIL, "b": EMAIL}, key=token("admin"))
    body = response.json()
    assert codes(body["errors"]) == ["NOT_FOUND"]
    assert "nobody" not in response.text
