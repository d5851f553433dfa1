"""Computed traits and audiences over HTTP, on both stores: definitions, live membership,
members and changes, values and explanations as each role may see them, errors and roles.

People (tests/api/people.py): Ann ordered once (revenue 42, sku ann-sku-31337) and denied
advertising; Bob ordered once (no revenue); Cy only watched a video.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from graph_api.app import create_app
from graph_api.services import Services
from tests.api.conftest import Api, codes, eventually
from tests.api.people import ANN_EMAIL, messages, send, settings_for, wipe

STORES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]
T = TypeVar("T")

DEFINE_TRAIT = """mutation($name: String!, $definition: JSON!) {
  defineComputedTrait(name: $name, definition: $definition) { name definition createdAt }
}"""
DEFINE_AUDIENCE = """mutation($name: String!, $condition: JSON!, $purpose: String) {
  defineAudience(name: $name, condition: $condition, purpose: $purpose) { id name status }
}"""
AUDIENCES = "{ audiences { id name size status progress builtAt purpose condition } }"
MEMBERS = """query($id: ID!, $after: String) { audience(id: $id) {
  name size members(first: 1, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } }
  }
} }"""
CUSTOMER = """query($id: ID!) { customer(id: $id) {
  computedTraits audiences { since audience { name } }
} }"""
LOOKUP = 'query($v: String!) { customer(identifier: {kind: "user_id", value: $v}) { id } }'
CHANGES = """query($id: ID!, $after: String) {
  audienceChanges(audienceId: $id, first: 10, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { customerId kind at } }
  }
}"""
EXPLAIN = "query($c: ID!, $a: ID!) { explainMembership(customerId: $c, audienceId: $a) }"

TRAITS = {
    "orders": {"kind": "event_count", "event": "Order Completed"},
    "spend": {"kind": "sum", "event": "Order Completed", "property": "revenue"},
    "lastSku": {"kind": "last", "event": "Order Completed", "property": "sku"},
}


@dataclass
class Served:
    api: Api
    services: Services

    async def settle(self) -> None:
        """Until the engine has evaluated every write and finished every build."""
        await asyncio.wait_for(self.services.audiences.settle(), 10)

    async def customer(self, user_id: str) -> str:
        found = (await self.api(LOOKUP, {"v": user_id}))["customer"]
        assert found, user_id
        return str(found["id"])

    async def define(self, name: str, condition: Any, purpose: str | None = None) -> str:
        made = await self.api(
            DEFINE_AUDIENCE, {"name": name, "condition": condition, "purpose": purpose}
        )
        return str(made["defineAudience"]["id"])


@pytest.fixture(params=STORES)
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    store: str = request.param
    await wipe(store)
    app = create_app(settings_for(store, tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await send(client, messages())
            served = Served(Api(client), app.state.services)
            for name, definition in TRAITS.items():
                await served.api(DEFINE_TRAIT, {"name": name, "definition": definition})
            yield served


async def test_an_audience_is_built_then_followed_live(served: Served) -> None:
    api = served.api
    buyers = await served.define(
        "buyers", {"computed": {"name": "orders", "op": "gte", "value": 1}}
    )
    big = await served.define(
        "bigSpenders", {"computed": {"name": "spend", "op": "gt", "value": 40}}
    )
    await served.settle()
    ann, bob = await served.customer("ann-user-5521"), await served.customer("bob-user-1")

    listed = {a["name"]: a for a in (await api(AUDIENCES))["audiences"]}
    assert list(listed) == ["bigSpenders", "buyers"]
    assert [(a["size"], a["status"], a["progress"]) for a in listed.values()] == [
        (1, "READY", 1.0),
        (2, "READY", 1.0),
    ]
    assert listed["buyers"]["builtAt"] and listed["buyers"]["purpose"] is None
    assert listed["buyers"]["condition"] == {
        "computed": {"name": "orders", "op": "gte", "value": 1}
    }

    first = (await api(MEMBERS, {"id": buyers}))["audience"]
    assert first["size"] == 2 and first["members"]["totalCount"] == 2
    assert first["members"]["pageInfo"]["hasNextPage"] is True
    cursor = first["members"]["pageInfo"]["endCursor"]
    second = (await api(MEMBERS, {"id": buyers, "after": cursor}))["audience"]["members"]
    assert second["pageInfo"]["hasNextPage"] is False
    seen = [e["node"]["id"] for e in first["members"]["edges"] + second["edges"]]
    assert seen == sorted([ann, bob])
    by_name = (await api('{ audience(name: "bigSpenders") { id size } }'))["audience"]
    assert by_name == {"id": big, "size": 1}

    memberships = (await api(CUSTOMER, {"id": ann}))["customer"]["audiences"]
    assert [m["audience"]["name"] for m in memberships] == ["bigSpenders", "buyers"]
    assert all(m["since"] for m in memberships)

    # Bob orders big: he enters within a second, with no call but the write
    order = {"type": "track", "messageId": "bob-9", "userId": "bob-user-1",
             "event": "Order Completed", "properties": {"revenue": 100}}  # fmt: skip
    await send(api.client, [order])

    async def bob_entered() -> list[dict[str, Any]]:
        edges = (await api(CHANGES, {"id": big}))["audienceChanges"]["edges"]
        assert [(e["node"]["customerId"], e["node"]["kind"]) for e in edges] == [
            (ann, "ENTERED"),
            (bob, "ENTERED"),
        ]
        return [e["node"] for e in edges]

    changes = await eventually(bob_entered)
    assert changes[0]["at"] <= changes[1]["at"]
    assert (await api(MEMBERS, {"id": big}))["audience"]["size"] == 2
    bob_traits = (await api(CUSTOMER, {"id": bob}))["customer"]["computedTraits"]
    assert bob_traits == {"lastSku": None, "orders": 2, "spend": 100}


async def test_changes_are_paged_and_a_deleted_audience_is_gone(served: Served) -> None:
    api = served.api
    buyers = await served.define(
        "buyers", {"computed": {"name": "orders", "op": "gte", "value": 1}}
    )
    await served.settle()
    page = await api(CHANGES.replace("first: 10", "first: 1"), {"id": buyers})
    connection = page["audienceChanges"]
    assert connection["totalCount"] == 2 and connection["pageInfo"]["hasNextPage"]
    after = connection["pageInfo"]["endCursor"]
    rest = await api(CHANGES, {"id": buyers, "after": after})
    assert len(rest["audienceChanges"]["edges"]) == 1

    assert (await api("mutation($id: ID!) { deleteAudience(id: $id) }", {"id": buyers})) == {
        "deleteAudience": True
    }
    assert (await api(AUDIENCES))["audiences"] == []
    ann = await served.customer("ann-user-5521")
    assert (await api(CUSTOMER, {"id": ann}))["customer"]["audiences"] == []


async def test_consent_for_the_purpose_decides_membership(served: Served) -> None:
    api = served.api
    ads = await served.define(
        "adBuyers", {"computed": {"name": "orders", "op": "gte", "value": 1}}, "advertising"
    )
    await served.settle()
    # Ann denied advertising, Bob never said: neither is a member
    assert (await api(MEMBERS, {"id": ads}))["audience"]["size"] == 0
    bob = await served.customer("bob-user-1")
    await api(
        'mutation($id: ID!) { setConsent(customerId: $id, choices: [{purpose: "advertising",'
        " status: GRANTED}]) { purpose } }",
        {"id": bob},
    )

    async def bob_is_in() -> None:
        edges = (await api(MEMBERS, {"id": ads}))["audience"]["members"]["edges"]
        assert [e["node"]["id"] for e in edges] == [bob]

    await eventually(bob_is_in)
    ann = await served.customer("ann-user-5521")
    explained = (await api(EXPLAIN, {"c": ann, "a": ads}))["explainMembership"]
    assert explained["member"] is False
    assert explained["consent"] == {"purpose": "advertising", "status": "DENIED", "holds": False}
    assert explained["condition"]["holds"] is True


async def test_computed_traits_are_masked_by_the_property_they_aggregate(served: Served) -> None:
    api = served.api
    ann = await served.customer("ann-user-5521")
    clear = (await api(CUSTOMER, {"id": ann}))["customer"]["computedTraits"]
    assert clear == {"lastSku": "ann-sku-31337", "orders": 1, "spend": 42}

    marketing = await api.key("marketing")
    response = await api.post(CUSTOMER, {"id": ann}, key=marketing)
    body = response.json()
    shown = body["data"]["customer"]["computedTraits"]
    # a count is no personal value; revenue is FINANCIAL (denied); sku is UNCLASSIFIED (masked)
    assert shown == {"lastSku": "a***", "orders": 1, "spend": None}
    [denied] = body["errors"]
    assert denied["extensions"] == {"code": "FORBIDDEN_FIELD", "key": "spend"}
    assert denied["path"] == ["customer", "computedTraits"]

    definitions = await api("{ computedTraits { name definition } }", key=marketing)
    assert [t["name"] for t in definitions["computedTraits"]] == ["lastSku", "orders", "spend"]
    assert definitions["computedTraits"][2]["definition"] == TRAITS["spend"]

    audit = await api(
        "query($id: ID!) { auditLog(customerId: $id, first: 10) { edges { node { fields } } } }",
        {"id": ann},
    )
    read = {f for e in audit["auditLog"]["edges"] for f in e["node"]["fields"]}
    assert {"Customer.computedTraits.lastSku", "Customer.computedTraits.spend"} <= read
    assert "Customer.computedTraits.orders" not in read  # not personal: not audited


async def test_an_explanation_is_masked_by_the_callers_role(served: Served) -> None:
    api = served.api
    condition = {
        "all": [
            {"trait": {"name": "email", "op": "exists", "value": True}},
            {"computed": {"name": "spend", "op": "gt", "value": 40}},
            {"event": {"name": "Order Completed"}},
            {"not": {"identifier": {"kind": "phone", "exists": False}}},
        ]
    }
    audience = await served.define("annLike", condition)
    await served.settle()
    ann = await served.customer("ann-user-5521")

    admin = (await api(EXPLAIN, {"c": ann, "a": audience}))["explainMembership"]
    assert admin["member"] is True and admin["customerId"] == ann
    assert admin["audience"] == {"id": audience, "name": "annLike"}
    nodes = admin["condition"]["all"]
    assert [n["holds"] for n in nodes] == [True, True, True, True]
    assert [n.get("seen") for n in nodes[:3]] == [ANN_EMAIL, 42, 1]
    assert nodes[3]["not"]["seen"] is True

    response = await api.post(EXPLAIN, {"c": ann, "a": audience}, key=await api.key("marketing"))
    body = response.json()
    nodes = body["data"]["explainMembership"]["condition"]["all"]
    assert [n.get("seen") for n in nodes[:3]] == ["A***@E***.com", None, 1]
    assert [n["holds"] for n in nodes] == [True, None, True, True]  # not what spend hides
    [denied] = body["errors"]
    assert denied["extensions"] == {"code": "FORBIDDEN_FIELD", "key": "condition.all[1].seen"}
    assert denied["path"] == ["explainMembership"]

    response = await api.post(EXPLAIN, {"c": ann, "a": audience}, key=await api.key("analyst"))
    analyst = response.json()
    assert codes(analyst["errors"]) == ["FORBIDDEN_FIELD"]  # FINANCIAL: denied here too
    hashed = analyst["data"]["explainMembership"]["condition"]["all"][0]["seen"]
    assert len(hashed) == 64 and hashed != ANN_EMAIL  # CONTACT is hashed for analysts


async def test_the_values_a_condition_tests_are_masked_by_the_callers_role(
    served: Served,
) -> None:
    api = served.api
    condition = {
        "any": [
            {"trait": {"name": "email", "op": "eq", "value": ANN_EMAIL}},
            {"computed": {"name": "lastSku", "op": "in", "value": ["ann-sku-31337"]}},
            {"event": {"name": "Order Completed", "where": [
                {"property": "revenue", "op": "gt", "value": 40},
                {"property": "sku", "op": "eq", "value": "ann-sku-31337"},
            ]}},
        ]
    }  # fmt: skip
    audience = await served.define("annOnly", condition)
    await served.settle()
    query = "query($id: ID!) { audience(id: $id) { condition } }"
    admin = (await api(query, {"id": audience}))["audience"]["condition"]
    assert admin == condition
    response = await api.post(query, {"id": audience}, key=await api.key("marketing"))
    body = response.json()
    shown = body["data"]["audience"]["condition"]["any"]
    assert shown[0]["trait"] == {"name": "email", "op": "eq", "value": "A***@E***.com"}
    assert shown[1]["computed"]["value"] == ["a***"]  # sku: UNCLASSIFIED, masked
    where = shown[2]["event"]["where"]
    assert where[0]["value"] == 40  # a threshold is the definer's, not a customer's
    assert where[1]["value"] == "a***"
    assert ANN_EMAIL not in response.text and "ann-sku-31337" not in response.text
    assert "errors" not in body
    # the explanation shows the tested texts the same way
    ann = await served.customer("ann-user-5521")
    response = await api.post(EXPLAIN, {"c": ann, "a": audience}, key=await api.key("marketing"))
    assert ANN_EMAIL not in response.text and "ann-sku-31337" not in response.text


async def test_bad_definitions_name_the_path_and_unknown_audiences_are_not_found(
    served: Served,
) -> None:
    api = served.api
    bad = {"all": [{"trait": {"name": "plan", "op": "equals", "value": "pro"}}]}
    [error] = await api.errors(DEFINE_AUDIENCE, {"name": "bad", "condition": bad})
    assert error["extensions"]["code"] == "INVALID_DEFINITION"
    assert error["message"].startswith("condition.all[0].trait.op: unknown operator 'equals'")
    unknown = {"computed": {"name": "ltv", "op": "gt", "value": 1}}
    [error] = await api.errors(DEFINE_AUDIENCE, {"name": "bad", "condition": unknown})
    assert codes([error]) == ["INVALID_DEFINITION"] and "'ltv'" in error["message"]
    [error] = await api.errors(
        DEFINE_AUDIENCE,
        {
            "name": "bad",
            "condition": {"trait": {"name": "x", "op": "exists", "value": True}},
            "purpose": "spam",
        },  # fmt: skip
    )
    assert codes([error]) == ["INVALID_DEFINITION"] and error["message"].startswith("purpose:")
    [error] = await api.errors(DEFINE_TRAIT, {"name": "x", "definition": {"kind": "median"}})
    assert codes([error]) == ["INVALID_DEFINITION"]
    assert error["message"].startswith("definition.kind: unknown kind 'median'")
    assert (await api(AUDIENCES))["audiences"] == []

    await served.define("buyers", {"computed": {"name": "orders", "op": "gte", "value": 1}})
    [error] = await api.errors('mutation { deleteComputedTrait(name: "orders") }')
    assert codes([error]) == ["INVALID_DEFINITION"] and "buyers" in error["message"]
    assert await api('mutation { deleteComputedTrait(name: "lastSku") }') == {
        "deleteComputedTrait": True
    }

    ann = await served.customer("ann-user-5521")
    missing = {"c": ann, "a": "no-such-audience"}
    assert codes(await api.errors(EXPLAIN, missing)) == ["NOT_FOUND"]
    assert codes(await api.errors(CHANGES, {"id": "no-such-audience"})) == ["NOT_FOUND"]
    assert codes(await api.errors('mutation { deleteAudience(id: "nope") }')) == ["NOT_FOUND"]
    assert codes(await api.errors('mutation { deleteComputedTrait(name: "nope") }')) == [
        "NOT_FOUND"
    ]
    assert (await api('{ audience(id: "nope") { id } }')) == {"audience": None}
    assert codes(await api.errors("{ audience { id } }")) == ["BAD_INPUT"]


async def test_roles(served: Served) -> None:
    api = served.api
    buyers = await served.define(
        "buyers", {"computed": {"name": "orders", "op": "gte", "value": 1}}
    )
    await served.settle()
    ann = await served.customer("ann-user-5521")
    marketing, support = await api.key("marketing"), await api.key("support")

    response = await api.post(
        DEFINE_AUDIENCE, {"name": "mine", "condition": {"identifier": {"kind": "email"}}},
        key=marketing,
    )  # fmt: skip
    assert response.status_code == 403 and codes(response.json()["errors"]) == ["FORBIDDEN"]
    response = await api.post(DEFINE_TRAIT, {"name": "x", "definition": TRAITS["orders"]},
                              key=marketing)  # fmt: skip
    assert response.status_code == 403
    assert (await api(MEMBERS, {"id": buyers}, key=marketing))["audience"]["size"] == 2

    response = await api.post(AUDIENCES, key=support)
    assert response.status_code == 403 and codes(response.json()["errors"]) == ["FORBIDDEN"]
    # support reads a customer's audiences, but may not list an audience's members from there
    seen = await api(CUSTOMER, {"id": ann}, key=support)
    assert [m["audience"]["name"] for m in seen["customer"]["audiences"]] == ["buyers"]
    members = "audiences { audience { members { totalCount } } }"
    response = await api.post(
        f"query($id: ID!) {{ customer(id: $id) {{ {members} }} }}", {"id": ann}, key=support
    )
    assert codes(response.json()["errors"]) == ["FORBIDDEN"]
    response = await api.post(EXPLAIN, {"c": ann, "a": buyers}, key=support)
    assert response.status_code == 403
    ingest = await api.key("ingest")
    response = await api.post("{ computedTraits { name } }", key=ingest)
    assert response.status_code == 403


async def test_a_page_of_customers_costs_the_same_round_trips_for_1_and_10(served: Served) -> None:
    api = served.api
    await send(api.client, [
        {"type": "track", "messageId": f"m-{n}", "userId": f"u-{n}", "event": "Order Completed",
         "properties": {"revenue": n, "sku": f"sku-{n}"}}
        for n in range(12)
    ])  # fmt: skip
    await served.define("everyone", {"computed": {"name": "orders", "op": "gte", "value": 0}})
    await served.settle()
    query = """query($n: Int!) { customers(first: $n) { edges { node {
      computedTraits audiences { since audience { name size } }
    } } } }"""
    store = served.services.store
    support = await api.key("support")  # reads no value clear here: no audit write to count
    await api("{ computedTraits { name } }", key=support)  # its key's record, now cached

    async def trips(n: int) -> int:
        before = store.round_trips
        edges = (await api(query, {"n": n}, key=support))["customers"]["edges"]
        assert len(edges) == n
        assert all(e["node"]["computedTraits"] and e["node"]["audiences"] for e in edges)
        return store.round_trips - before

    assert await trips(1) == await trips(10)


async def test_the_engine_stops_when_woken_just_before(served: Served) -> None:
    """A definition wakes the engine's task, and the stop comes before the task has run:
    Python 3.11's `wait_for` swallows that cancellation; the task must end all the same."""
    engine = served.services.audiences
    await served.settle()
    await asyncio.sleep(0.05)  # the task waits to be woken
    await engine.define_audience("buyers", {"identifier": {"kind": "email"}}, None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(engine.stop(), 5)  # (`stop` itself swallows this one's timeout)
    assert loop.time() - started < 2


async def test_no_node_tells_what_a_denied_value_hides(served: Served) -> None:
    """A group over a hidden test, an event count filtered on a denied property, and a count
    computed over one: none of them answers for a role that may not read the value."""
    api = served.api
    big = await served.api(
        DEFINE_TRAIT,
        {
            "name": "bigOrders",
            "definition": {
                "kind": "event_count",
                "event": "Order Completed",
                "where": [{"property": "revenue", "op": "gt", "value": 40}],
            },
        },
    )
    assert big["defineComputedTrait"]["name"] == "bigOrders"
    condition = {
        "any": [
            {"not": {"computed": {"name": "spend", "op": "gt", "value": 40}}},
            {"event": {"name": "Order Completed",
                       "where": [{"property": "revenue", "op": "gt", "value": 40}]}},
        ]
    }  # fmt: skip
    audience = await served.define("hidden", condition)
    await served.settle()
    ann = await served.customer("ann-user-5521")
    admin = (await api(EXPLAIN, {"c": ann, "a": audience}))["explainMembership"]
    assert admin["member"] is True and admin["condition"]["any"][1]["seen"] == 1
    marketing = await api.key("marketing")
    body = (await api.post(EXPLAIN, {"c": ann, "a": audience}, key=marketing)).json()
    shown = body["data"]["explainMembership"]
    [negated, event] = shown["condition"]["any"]
    assert negated["holds"] is None and negated["not"]["holds"] is None
    assert (event["holds"], event["seen"]) == (None, None)
    assert shown["condition"]["holds"] is None and shown["member"] is None
    values = (await api.post(CUSTOMER, {"id": ann}, key=marketing)).json()
    assert values["data"]["customer"]["computedTraits"]["bigOrders"] is None
    admin_values = (await api(CUSTOMER, {"id": ann}))["customer"]["computedTraits"]
    assert admin_values["bigOrders"] == 1
