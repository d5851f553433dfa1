"""Store round trips depend on the query's shape, not on how many customers it returns."""

from __future__ import annotations

from starlette.applications import Starlette

from graph_api.services import Services
from tests.api.conftest import Api

QUERY = """query($n: Int!) { customers(first: $n) { totalCount edges { node {
  id identifiers { kind value firstSeen }
  traits { email firstName custom }
  events(first: 5) { totalCount edges { node { id name properties } } }
  mergeHistory { id } conflicts { id } consents { purpose }
} } } }"""


async def test_round_trips_same_for_1_and_10_customers(api: Api, app: Starlette) -> None:
    messages = []
    for n in range(50):
        messages.append(
            {
                "type": "IDENTIFY",
                "userId": f"u{n}",
                "anonymousId": f"a{n}",
                "traits": {"email": f"c{n}@example.com", "firstName": f"N{n}"},
            }
        )
        for e in range(3):
            messages.append(
                {"type": "TRACK", "userId": f"u{n}", "event": f"E{e}", "properties": {"n": e}}
            )
    await api("mutation($m: [MessageInput!]!) { ingest(messages: $m) { status } }", {"m": messages})
    services: Services = app.state.services
    store = services.store

    async def trips(n: int) -> int:
        before = store.round_trips
        data = await api(QUERY, {"n": n})
        edges = data["customers"]["edges"]
        assert len(edges) == n
        assert all(len(e["node"]["events"]["edges"]) == 3 for e in edges)
        return store.round_trips - before

    # 10, not 50: a page of customers with their identifiers costs up to the rules' identifier
    # bound (1,021 by default) per customer, and 50 of them are over the cost budget
    one, ten = await trips(1), await trips(10)
    assert one == ten
    assert one <= 9
