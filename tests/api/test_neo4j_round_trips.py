"""The sales-context query on Neo4j: one statement for the customer and what it selects, and
one for the audit entry of its clear read (issue 19)."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from stores import neo4j_uri

from graph_api.app import create_app
from graph_api.settings import Secret, Settings
from identity_graph.adapters.neo4j.store import Neo4jStore
from tests.api.test_neo4j_http import ADMIN_KEY, identify, send, track

pytestmark = pytest.mark.neo4j

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


async def test_a_customer_and_its_selected_parts_are_one_statement() -> None:
    uri = neo4j_uri()
    wiper = Neo4jStore(uri, auth=None)
    await wiper.open()
    await wiper.wipe()
    await wiper.close()
    app: Starlette = create_app(
        Settings(
            store="neo4j",
            neo4j_uri=uri,
            bootstrap_admin_key=Secret(ADMIN_KEY),
            hash_key=Secret("neo4j-round-trips-test"),
        )
    )
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as client:
            response = await send(client, [identify(1), track(1), identify(2)])
            assert response.status_code == 200, response.text
            store = app.state.services.store

            async def trips(query: str, variables: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
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
