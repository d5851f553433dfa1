"""The API served on the Neo4j store: end to end over HTTP, and through an outage.

With Neo4j down, requests get a 503 and a clear error, nothing is half-written, and the
same app serves again once Neo4j is back, without a restart. The sales-context query is one
Cypher statement for the customer and what it selects, and one for its audit entry.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from starlette.applications import Starlette
from stores import neo4j_uri

from graph_api.app import create_app
from graph_api.settings import Secret, Settings
from identity_graph.adapters.neo4j.store import Neo4jStore

pytestmark = pytest.mark.neo4j

ADMIN_KEY = "c360_neo4j-http-admin-Jr4Vw8Qn2Xc6Zt1Lp9Kd"
SERVER = Path(__file__).parent.parent / "neo4j" / "server"
QUERY = """query($email: String!) {
  customer(identifier: {kind: "email", value: $email}) {
    id
    traits { name email }
    identifiers { kind value }
    events(first: 5) { totalCount edges { node { name } } }
  }
}"""


async def server(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, f"server {' '.join(args)} failed: {err.decode()[-2000:]}"


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    """The app over a wiped Neo4j database, its lifespan running."""
    uri = neo4j_uri()
    wiper = Neo4jStore(uri, auth=None)
    await wiper.open()
    await wiper.wipe()
    await wiper.close()
    served: Starlette = create_app(
        Settings(
            store="neo4j",
            neo4j_uri=uri,
            bootstrap_admin_key=Secret(ADMIN_KEY),
            hash_key=Secret("neo4j-http-test"),
        )
    )
    async with served.router.lifespan_context(served):
        yield served


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as c:
        yield c


def identify(n: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"msg-{n}",
        "userId": f"user-{n}",
        "anonymousId": f"anon-{n}",
        "traits": {"email": f"Person{n}@Example.com", "name": f"Person {n}"},
    }


def track(n: int) -> dict[str, Any]:
    return {"type": "track", "messageId": f"evt-{n}", "userId": f"user-{n}", "event": "Clicked"}


async def send(client: httpx.AsyncClient, messages: list[dict[str, Any]]) -> httpx.Response:
    auth = base64.b64encode(f"{ADMIN_KEY}:".encode()).decode()
    return await client.post(
        "/v1/batch", json={"batch": messages}, headers={"Authorization": f"Basic {auth}"}
    )


async def lookup(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": QUERY, "variables": {"email": email}},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )


async def test_segment_messages_are_served_back_from_neo4j(client: httpx.AsyncClient) -> None:
    response = await send(client, [identify(1), track(1), identify(2)])
    assert response.status_code == 200, response.text
    body = (await lookup(client, " person1@example.COM ")).json()
    customer = body["data"]["customer"]
    assert customer["traits"] == {"name": "Person 1", "email": "Person1@Example.com"}
    assert {(i["kind"], i["value"]) for i in customer["identifiers"]} == {
        ("user_id", "user-1"),
        ("anonymous_id", "anon-1"),
        ("email", "person1@example.com"),
    }
    assert customer["events"]["totalCount"] == 1
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.slow
async def test_an_outage_gives_503_and_the_app_recovers_by_itself(
    client: httpx.AsyncClient,
) -> None:
    port = str(urlparse(neo4j_uri()).port)
    assert (await send(client, [identify(1)])).status_code == 200
    await server("stop", "--keep-data")
    try:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        down = await send(client, [identify(2), track(2)])
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "STORE_UNAVAILABLE"
        query = await lookup(client, "person1@example.com")
        assert query.status_code == 503
        [error] = query.json()["errors"]
        assert error["extensions"]["code"] == "STORE_UNAVAILABLE"
        assert "Traceback" not in query.text and "neo4j." not in query.text
    finally:
        await server("start", "--port", port, "--keep-data")
    for _ in range(60):
        if (await client.get("/readyz")).status_code == 200:
            break
        await asyncio.sleep(0.5)
    assert (await client.get("/readyz")).status_code == 200
    assert (await lookup(client, "person2@example.com")).json()["data"]["customer"] is None
    assert (await send(client, [identify(2), track(2)])).status_code == 200
    body = (await lookup(client, "person2@example.com")).json()
    assert body["data"]["customer"]["events"]["totalCount"] == 1
    assert (await lookup(client, "person1@example.com")).json()["data"]["customer"]["id"]


SALES_CONTEXT = """query($email: String!) {
  customer(identifier: {kind: "email", value: $email}) {
    id
    traits { name email }
    identifiers { kind value firstSeen lastSeen }
    events(first: 20) { totalCount edges { node { type name timestamp properties } } }
  }
}"""
BY_ID = """query($id: ID!) {
  customer(id: $id) { id traits { name } events(first: 20) { totalCount } }
}"""


async def test_a_customer_and_its_selected_parts_are_one_statement(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    response = await send(client, [identify(1), track(1), identify(2)])
    assert response.status_code == 200, response.text
    store = app.state.services.store
    # the key, once read, stays cached for the test however slow the machine (a lookup of
    # it after the cache's 5 s would count as a round trip of the request)
    app.state.services.auth.keys.ttl = 3600.0

    async def trips(query: str, variables: dict[str, str]) -> tuple[int, dict[str, Any]]:
        before = store.round_trips
        answer = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "errors" not in body, body
        return store.round_trips - before, body["data"]["customer"]

    await trips(SALES_CONTEXT, {"email": "person1@example.com"})  # keys cached
    count, customer = await trips(SALES_CONTEXT, {"email": "person1@example.com"})
    assert customer["traits"] == {"name": "Person 1", "email": "Person1@Example.com"}
    assert len(customer["identifiers"]) == 3
    assert customer["events"]["totalCount"] == 1
    assert count == 2  # the customer with its parts, and the audit entry
    count, by_id = await trips(BY_ID, {"id": customer["id"]})
    assert by_id["traits"] == {"name": "Person 1"} and count == 2
