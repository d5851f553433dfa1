"""Fail closed: each finding of the trust-boundary review, reproduced as a client would.

Before the fix: a sales key read `Revenue` as "9***" and `card_number` as "4***" (keys were
classified case-sensitively and at the top level only), a denied key vanished silently, a
mask showed a number's first digit, `traitHistory` showed name, source and time of a trait
the role may not read, a hashed gender was reversible by comparing with known customers, and
a profile with ~1,000 identifiers read 30 times over resolved 148,650 fields unrefused.
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, codes

IDENTIFY = "mutation($input: IdentifyInput!) { identify(input: $input) { customerId } }"
TRACK = "mutation($input: TrackInput!) { track(input: $input) { customerId } }"
CUSTOM = "query($id: ID!) { customer(id: $id) { traits { custom } } }"


async def customer_with(api: Api, traits: dict[str, Any]) -> str:
    data = await api(IDENTIFY, {"input": {"userId": "u-fail-closed", "traits": traits}})
    customer: str = data["identify"]["customerId"]
    return customer


async def test_keys_are_classified_whatever_their_case_and_separators(
    api: Api, keys: dict[str, str]
) -> None:
    customer = await customer_with(
        api, {"Revenue": 9000, "card_number": "4111111111111111", "CardNumber": "4000"}
    )
    body = (await api.post(CUSTOM, {"id": customer}, key=keys["sales"])).json()
    custom = body["data"]["customer"]["traits"]["custom"]
    assert custom == {"Revenue": None, "card_number": None, "CardNumber": None}
    reported = {e["extensions"]["key"] for e in body["errors"]}
    assert reported == {"Revenue", "card_number", "CardNumber"}
    assert set(codes(body["errors"])) == {"FORBIDDEN_FIELD"}
    assert all(e["path"] == ["customer", "traits", "custom"] for e in body["errors"])


async def test_keys_are_classified_at_every_depth(api: Api, keys: dict[str, str]) -> None:
    products = [{"sku": "WID-1", "price": 12.5}, {"sku": "WID-2", "price": 99}]
    data = await api(
        TRACK,
        {
            "input": {
                "event": "Order Completed",
                "userId": "u-nested",
                "properties": {"products": products, "shipping": {"cost": 4.5}},
            }
        },
    )
    query = "query($id: ID!) { customer(id: $id) { events { edges { node { properties } } } } }"
    variables = {"id": data["track"]["customerId"]}
    body = (await api.post(query, variables, key=keys["sales"])).json()
    shown = body["data"]["customer"]["events"]["edges"][0]["node"]["properties"]
    assert shown["products"] == [{"sku": "***", "price": None}, {"sku": "***", "price": None}]
    assert shown["shipping"] == {"cost": None}
    reported = {e["extensions"]["key"] for e in body["errors"]}
    assert reported == {"products[0].price", "products[1].price", "shipping.cost"}


async def test_a_mask_shows_nothing_of_numbers_and_short_values(
    api: Api, keys: dict[str, str]
) -> None:
    customer = await customer_with(
        api, {"employees": 9000, "vip": True, "nickname": "Bo", "favourite_colour": "teal-ish"}
    )
    data = await api(CUSTOM, {"id": customer}, key=keys["marketing"])
    assert data["customer"]["traits"]["custom"] == {
        "employees": "***",
        "vip": "***",
        "nickname": "***",
        "favourite_colour": "t***",
    }


async def test_history_of_a_denied_trait_is_denied_whole(api: Api, keys: dict[str, str]) -> None:
    customer = await customer_with(api, {"income": "120000 EUR", "plan": "platinum-plus"})
    query = """query($id: ID!) { customer(id: $id) {
        income: traitHistory(name: "Income") { name source observedAt messageId value }
        plan: traitHistory(name: "plan") { name value } } }"""
    body = (await api.post(query, {"id": customer}, key=keys["sales"])).json()
    assert body["data"]["customer"]["income"] is None
    assert body["data"]["customer"]["plan"] == [{"name": "plan", "value": "p***"}]
    assert codes(body["errors"]) == ["FORBIDDEN_FIELD"]
    assert body["errors"][0]["path"] == ["customer", "income"]


async def test_few_valued_traits_are_masked_where_the_role_sees_hashes(
    api: Api, keys: dict[str, str]
) -> None:
    customer = await customer_with(
        api, {"gender": "female", "name": "Ada Lovelace", "country": "United Kingdom"}
    )
    query = "query($id: ID!) { customer(id: $id) { traits { gender name } } }"
    data = await api(query, {"id": customer}, key=keys["analyst"])
    traits = data["customer"]["traits"]
    assert traits["gender"] == "f***"
    assert len(traits["name"]) == 64  # a keyed hash: names have too many values to try


async def test_lists_without_first_count_their_worst_case(api: Api) -> None:
    """The review's probe: 30 aliases of one customer's identifiers, refused before it runs."""
    customer = await customer_with(api, {"email": "probe@example.com"})
    fields = "identifiers { kind value firstSeen lastSeen sources }"
    aliases = " ".join(f'c{i}: customer(id: "{customer}") {{ {fields} }}' for i in range(30))
    errors = await api.errors(f"{{ {aliases} }}")
    assert codes(errors) == ["QUERY_TOO_COSTLY"]
    assert "exceeds the budget of 50000" in errors[0]["message"]
    await api(f'{{ c0: customer(id: "{customer}") {{ {fields} }} }}')
