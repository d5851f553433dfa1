"""Activation over HTTP, on both stores: destinations made and changed through GraphQL, and
audience changes delivered to a real receiver on a local port that checks every signature
with the `standardwebhooks` package. Retries, 410, rotation, CRM shapes and bad input."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from graph_api.app import create_app
from graph_api.services import Services
from tests.api.conftest import Api, codes, eventually
from tests.api.people import send, settings_for, wipe
from tests.receiver import Receiver, ReceiverServer

STORES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]
T = TypeVar("T")
PRO = {"trait": {"name": "plan", "op": "eq", "value": "pro"}}
DEFINE = """mutation($name: String!, $condition: JSON!, $purpose: String) {
  defineAudience(name: $name, condition: $condition, purpose: $purpose) { id }
}"""
CREATE = """mutation($name: String!, $url: String!, $audiences: [ID!]!,
                     $format: DestinationFormat! = STANDARD, $role: String! = "marketing",
                     $mapping: JSON, $headers: JSON) {
  createDestination(name: $name, url: $url, audienceIds: $audiences, format: $format,
                    role: $role, mapping: $mapping, headers: $headers) {
    secret destination { id name url status format role headerNames secretCount audienceIds }
  }
}"""
DESTINATIONS = """{ destinations { id name status lastError
  deliveries(first: 50) { totalCount edges { node {
    id webhookId status attempts kind customerId lastError responseStatus nextAttemptAt
  } } }
} }"""
counter = itertools.count()


@dataclass
class Served:
    api: Api
    client: httpx.AsyncClient
    services: Services
    receiver: Receiver
    url: str

    async def identify(
        self, user: str, consent: dict[str, bool] | None = None, **traits: Any
    ) -> None:
        n = next(counter)
        message = {"type": "identify", "messageId": f"m{n}", "userId": user, "traits": traits}
        if consent is not None:
            message["context"] = {"consent": {"categoryPreferences": consent}}
        await send(self.client, [message])
        await asyncio.wait_for(self.services.audiences.settle(), 10)

    async def audience(self, name: str = "pros", condition: Any = PRO, **kw: Any) -> str:
        made = await self.api(DEFINE, {"name": name, "condition": condition, **kw})
        await asyncio.wait_for(self.services.audiences.settle(), 10)
        return str(made["defineAudience"]["id"])

    async def destination(self, audience: str, **kw: Any) -> tuple[str, str]:
        variables = {"name": "hooks", "url": self.url + "/hooks", "audiences": [audience], **kw}
        made = (await self.api(CREATE, variables))["createDestination"]
        self.receiver.secrets.append(made["secret"])
        return str(made["destination"]["id"]), str(made["secret"])

    async def destinations(self) -> dict[str, Any]:
        return {d["name"]: d for d in (await self.api(DESTINATIONS))["destinations"]}


@pytest.fixture
def receiving() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with ReceiverServer(receiver) as server:
        yield receiver, server.url


@pytest.fixture(params=STORES)
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, receiving: tuple[Receiver, str]
) -> AsyncIterator[Served]:
    store: str = request.param
    await wipe(store)
    receiver, url = receiving
    app = create_app(settings_for(store, tmp_path, webhook_allow_private=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Served(Api(client), client, app.state.services, receiver, url)


async def test_entries_and_exits_are_delivered_signed_in_order_as_the_role_sees_them(
    served: Served,
) -> None:
    pros = await served.audience()
    did, secret = await served.destination(pros)
    assert secret.startswith("whsec_")
    await served.identify("u-ada", plan="pro", email="ada.lovelace@example.com", name="Ada L")
    await served.identify("u-ada", plan="free")
    received = served.receiver.received

    async def both_arrived() -> None:
        assert len(received) == 2

    await eventually(both_arrived, 10)
    entered, exited = received
    assert all(r.verified for r in received)  # signatures checked by standardwebhooks
    assert entered.json["type"] == "audience.entered" and exited.json["type"] == "audience.exited"
    assert entered.method == "POST" and entered.path == "/hooks"
    data = entered.json["data"]
    assert data["audience"] == {"id": pros, "name": "pros"}
    customer = data["customer"]
    assert set(customer) == {"id", "identifiers", "traits", "computedTraits"}
    # a marketing destination: contact data masked as a marketing key reads it
    emails = [i["value"] for i in customer["identifiers"] if i["kind"] == "email"]
    assert emails and "ada.lovelace@example.com" not in emails[0]
    # traits as marketing reads them: UNCLASSIFIED and IDENTITY values masked
    assert customer["traits"]["plan"] == "***" and "Ada L" not in entered.body.decode()
    assert exited.json["data"]["customer"]["id"] == customer["id"]
    assert entered.headers["webhook-id"] != exited.headers["webhook-id"]
    assert entered.headers["webhook-signature"].startswith("v1,")
    listed = (await served.destinations())["hooks"]
    assert listed["status"] == "ACTIVE"
    deliveries = [e["node"] for e in listed["deliveries"]["edges"]]
    assert [(d["kind"], d["status"], d["attempts"]) for d in deliveries] == [
        ("EXITED", "DELIVERED", 1),
        ("ENTERED", "DELIVERED", 1),
    ]
    assert {d["webhookId"] for d in deliveries} == set(served.receiver.ids())


async def test_a_failing_receiver_is_retried_with_the_same_webhook_id(served: Served) -> None:
    pros = await served.audience()
    served.receiver.answers = [500]
    await served.destination(pros)
    await served.identify("u-bo", plan="pro")

    async def failed_once() -> dict[str, Any]:
        hooks = (await served.destinations())["hooks"]
        [node] = [e["node"] for e in hooks["deliveries"]["edges"]]
        assert node["attempts"] == 1 and node["status"] == "PENDING"
        assert hooks["status"] == "FAILING"  # written just after the delivery
        return hooks

    hooks = await eventually(failed_once, 10)
    [node] = [e["node"] for e in hooks["deliveries"]["edges"]]
    assert hooks["lastError"].startswith("HTTP 500")
    assert node["responseStatus"] == 500 and node["nextAttemptAt"]

    # Standard Webhooks' schedule: the second attempt 5 s (less jitter) later
    async def delivered() -> None:
        assert served.receiver.ids() == [node["webhookId"]]

    await eventually(delivered, 15)
    assert served.receiver.refused == [node["webhookId"]]

    async def active_again() -> None:
        assert (await served.destinations())["hooks"]["status"] == "ACTIVE"

    await eventually(active_again, 10)


async def test_consent_is_checked_again_when_an_entry_is_sent(served: Served) -> None:
    pros = await served.audience(purpose="advertising")
    served.receiver.answers = [500]  # the entry waits 5 s for its second attempt
    await served.destination(pros)
    await served.identify("u-gus", consent={"advertising": True}, plan="pro")

    async def refused_once() -> None:
        assert len(served.receiver.refused) == 1

    await eventually(refused_once, 10)
    await served.identify("u-gus", consent={"advertising": False})  # withdrawn: exits

    async def settled() -> list[dict[str, Any]]:
        hooks = (await served.destinations())["hooks"]
        nodes = [e["node"] for e in hooks["deliveries"]["edges"]]
        assert [(n["kind"], n["status"]) for n in nodes] == [
            ("EXITED", "DELIVERED"),
            ("ENTERED", "SKIPPED"),
        ]
        return nodes

    exited, entered = await eventually(settled, 15)
    assert entered["lastError"] == "consent for advertising is no longer granted"
    # the entry was never received; the exit was, after the entry was settled
    assert served.receiver.ids() == [exited["webhookId"]]
    [message] = served.receiver.received
    assert message.json["type"] == "audience.exited"


async def test_gone_disables_and_enabling_sends_what_waited(served: Served) -> None:
    pros = await served.audience()
    served.receiver.answers = [410]
    did, _ = await served.destination(pros)
    await served.identify("u-cy", plan="pro")

    async def disabled() -> None:
        assert (await served.destinations())["hooks"]["status"] == "DISABLED"

    await eventually(disabled, 10)
    await served.identify("u-di", plan="pro")  # nothing is enqueued for a disabled one
    await asyncio.wait_for(served.services.audiences.settle(), 10)
    enabled = await served.api(
        "mutation($id: ID!) { updateDestination(id: $id, enabled: true) { status } }", {"id": did}
    )
    assert enabled["updateDestination"]["status"] == "ACTIVE"

    async def sent() -> None:
        assert len(served.receiver.received) == 1

    await eventually(sent, 10)
    hooks = (await served.destinations())["hooks"]
    assert hooks["deliveries"]["totalCount"] == 1


async def test_rotation_signs_with_both_secrets_during_the_grace_period(served: Served) -> None:
    pros = await served.audience()
    did, old = await served.destination(pros)
    rotated = await served.api(
        """mutation($id: ID!) { rotateDestinationSecret(id: $id, graceHours: 2) {
             secret destination { secretCount } } }""",
        {"id": did},
    )
    new = rotated["rotateDestinationSecret"]["secret"]
    assert new != old and rotated["rotateDestinationSecret"]["destination"]["secretCount"] == 2
    served.receiver.secrets[:] = [new]  # a receiver that switched already
    await served.identify("u-ed", plan="pro")

    async def arrived() -> None:
        assert len(served.receiver.received) == 1

    await eventually(arrived, 10)
    [message] = served.receiver.received
    assert message.verified
    assert len(message.headers["webhook-signature"].split(" ")) == 2


async def test_crm_formats_send_the_vendors_shapes(served: Served) -> None:
    pros = await served.audience()
    await served.destination(
        pros,
        name="hubspot",
        format="HUBSPOT",
        role="admin",
        url=served.url + "/crm/v3/objects/contacts/batch/upsert",
        mapping={"plan_tier": "traits.plan", "$membershipProperty": "c360_lists"},
        headers={"Authorization": "Bearer pat-na1-test"},
    )
    await served.destination(
        pros,
        name="salesforce",
        format="SALESFORCE",
        role="admin",
        url=served.url + "/services/data/v60.0/composite/sobjects/Contact/C360_Id__c",
    )
    listed = await served.destinations()
    assert sorted(listed) == ["hubspot", "salesforce"]
    await served.identify(
        "u-fay", plan="pro", email="fay@example.com", firstName="Fay", lastName="Fox"
    )

    async def both() -> None:
        assert len(served.receiver.received) == 2

    await eventually(both, 10)
    by_path = {r.path: r for r in served.receiver.received}
    hub = by_path["/crm/v3/objects/contacts/batch/upsert"]
    assert hub.method == "POST" and hub.headers["authorization"] == "Bearer pat-na1-test"
    [item] = hub.json["inputs"]
    assert item["idProperty"] == "email" and item["id"] == "fay@example.com"
    assert item["properties"]["firstname"] == "Fay" and item["properties"]["lastname"] == "Fox"
    assert item["properties"]["plan_tier"] == "pro" and item["properties"]["c360_lists"] == "pros"
    sf = by_path["/services/data/v60.0/composite/sobjects/Contact/C360_Id__c"]
    assert sf.method == "PATCH"
    [record] = sf.json["records"]
    assert record["attributes"] == {"type": "Contact"}
    assert record["Email"] == "fay@example.com" and record["LastName"] == "Fox"
    assert record["C360_Audiences__c"] == "pros" and record["C360_Id__c"]


async def test_bad_destinations_are_refused_with_the_part_named(served: Served) -> None:
    pros = await served.audience()
    base = {"name": "x", "url": "https://hooks.example.com/a", "audiences": [pros]}
    cases = [
        ({"url": "ftp://hooks.example.com/a"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/a"}, "credentials"),
        ({"audiences": ["no-such-audience"]}, "audienceIds"),
        ({"audiences": []}, "audienceIds"),
        ({"role": "ingest"}, "role"),
        ({"role": "root"}, "role"),
        ({"mapping": {"x": "traits.plan"}}, "mapping"),
        ({"format": "HUBSPOT", "mapping": {"x": "plan"}}, "mapping.x"),
        ({"format": "HUBSPOT", "mapping": {"$nope": "y"}}, "unknown option"),
        ({"headers": {"webhook-signature": "forged"}}, "headers"),
        ({"headers": {"X-Ok": "a\r\nInjected: 1"}}, "headers"),
        ({"format": "SALESFORCE"}, "composite/sobjects/Contact"),
        ({"name": ""}, "name"),
    ]
    for change, words in cases:
        errors = await served.api.errors(CREATE, {**base, **change})
        assert codes(errors) == ["BAD_INPUT"], (change, errors)
        assert words in errors[0]["message"], (change, errors)
    assert await served.destinations() == {}
    marketing = await served.api.key("marketing")
    denied = await served.api.errors(CREATE, base, key=marketing)
    assert codes(denied) == ["FORBIDDEN"]
    missing = await served.api.errors('mutation { redeliver(deliveryId: "nope") { id } }')
    assert codes(missing) == ["NOT_FOUND"]


async def test_private_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    app = create_app(settings_for("embedded", tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client)
            made = await api(DEFINE, {"name": "pros", "condition": PRO})
            aid = made["defineAudience"]["id"]
            for url in (
                "http://hooks.example.com/a",
                "https://127.0.0.1/a",
                "https://169.254.169.254/latest/meta-data",
                "https://[::1]/a",
                "https://[::ffff:10.0.0.1]/a",
                "https://10.1.2.3/a",
                "https://localhost/a",
            ):
                errors = await api.errors(CREATE, {"name": "x", "url": url, "audiences": [aid]})
                assert codes(errors) == ["BAD_INPUT"], (url, errors)
            ok = await api(
                CREATE, {"name": "x", "url": "https://93.184.215.14/hook", "audiences": [aid]}
            )
            assert ok["createDestination"]["destination"]["status"] == "ACTIVE"
