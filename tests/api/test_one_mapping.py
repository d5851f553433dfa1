"""Every entry point maps a message by the same rules: the same message sent to the GraphQL
`ingest` mutation and to `/v1/batch` reaches the domain as the same observation."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from identity_graph.model import EventCategory, Observation
from identity_graph.resolver import Outcome
from identity_graph.service import IdentityGraph
from tests.api.conftest import ADMIN_KEY, Api

INGEST = """mutation($messages: [MessageInput!]!) { ingest(messages: $messages) {
  messageId status } }"""
WHEN = "2024-04-01T10:00:00+02:00"
IDENTIFY = {
    "userId": "u-1",
    "anonymousId": "a-1",
    "traits": {"email": " Jane@Example.COM", "phone": "(415) 555-0134", "plan": "pro"},
    "timestamp": WHEN,
}
TRACK = {
    "userId": "u-1",
    "event": "Order Completed",
    "properties": {"revenue": 9.5},
    "timestamp": WHEN,
}
BLOCKED = {
    "userId": "null",
    "anonymousId": "0",
    "traits": {"email": "undefined"},
    "timestamp": WHEN,
}

# the same messages; only what each wire format says its own way differs
SEGMENT: list[dict[str, Any]] = [
    {"type": "identify", **IDENTIFY, "context": {"device": {"id": "dev-9"}}},
    {"type": "track", **TRACK},
    {"type": "page", "anonymousId": "a-1", "name": "Pricing", "timestamp": WHEN},
    {"type": "identify", **BLOCKED},
]
GRAPHQL: list[dict[str, Any]] = [
    {"type": "IDENTIFY", **IDENTIFY, "identifiers": [{"kind": "device_id", "value": "dev-9"}]},
    {"type": "TRACK", **TRACK},
    {"type": "PAGE", "anonymousId": "a-1", "event": "Pricing", "timestamp": WHEN},
    {"type": "IDENTIFY", **BLOCKED},
]


@pytest.fixture
def ingested(monkeypatch: pytest.MonkeyPatch) -> list[Observation]:
    """Every observation handed to `IdentityGraph.ingest`, in order."""
    seen: list[Observation] = []
    ingest = IdentityGraph.ingest

    async def capture(self: IdentityGraph, observations: Sequence[Observation]) -> list[Outcome]:
        seen.extend(observations)
        return await ingest(self, observations)

    monkeypatch.setattr(IdentityGraph, "ingest", capture)
    return seen


def anonymous(observation: Observation) -> Observation:
    """The observation less what tells the entry points apart."""
    return dataclasses.replace(observation, message_id="", source="")


async def test_graphql_and_segment_give_the_same_observations(
    api: Api, client: httpx.AsyncClient, ingested: list[Observation]
) -> None:
    messages = [{**m, "messageId": f"gql-{i}"} for i, m in enumerate(GRAPHQL)]
    results = (await api(INGEST, {"messages": messages}))["ingest"]
    assert [r["status"] for r in results] == ["applied", "applied", "applied", "dropped"]
    batch = [{**m, "messageId": f"seg-{i}"} for i, m in enumerate(SEGMENT)]
    response = await client.post("/v1/batch", json={"batch": batch}, auth=(ADMIN_KEY, ""))
    assert response.status_code == 200, response.text

    graphql, segment = ingested[: len(GRAPHQL)], ingested[len(GRAPHQL) :]
    assert len(segment) == len(SEGMENT)
    assert [o.message_id for o in graphql] == [f"gql-{i}" for i in range(len(GRAPHQL))]
    assert [o.message_id for o in segment] == [f"seg-{i}" for i in range(len(SEGMENT))]
    assert {o.source for o in graphql} == {"graphql"}
    assert {o.source for o in segment} == {"segment"}
    assert [anonymous(o) for o in graphql] == [anonymous(o) for o in segment]

    identify, track, _, blocked = graphql
    assert {i.key for i in identify.identifiers} == {
        "user_id:u-1",
        "anonymous_id:a-1",
        "email:jane@example.com",
        "phone:+14155550134",
        "device_id:dev-9",
    }
    assert identify.timestamp.isoformat() == "2024-04-01T08:00:00+00:00"
    assert track.event is not None and track.event.category is EventCategory.BEHAVIOURAL
    assert {i.value for i in blocked.identifiers} == {"null", "0", "undefined"}


async def test_messages_without_an_id_get_one_of_the_same_form(
    api: Api, client: httpx.AsyncClient, ingested: list[Observation]
) -> None:
    await api(INGEST, {"messages": GRAPHQL[1:2]})
    response = await client.post("/v1/batch", json={"batch": SEGMENT[1:2]}, auth=(ADMIN_KEY, ""))
    assert response.status_code == 200, response.text
    graphql, segment = (o.message_id for o in ingested)
    assert graphql != segment
    assert len(graphql) == len(segment) == 36 and graphql.count("-") == segment.count("-") == 4
