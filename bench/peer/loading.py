"""Filling the database through c360: the customers of bench/sales_context.py sent to its
GraphQL `ingest` mutation over HTTP; then the joins the peer's `relationship` model reads."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sales_context import observations  # noqa: E402

RELATIONSHIPS = (
    """MATCH (i:Identifier) WHERE i.profile_id IS NOT NULL
    CALL (i) { MATCH (p:Profile {id: i.profile_id}) MERGE (p)-[:HAS_IDENTIFIER]->(i) }
    IN TRANSACTIONS OF 5000 ROWS""",
    """MATCH (t:Trait)
    CALL (t) { MATCH (i:Identifier {key: t.identifier_key}) MATCH (p:Profile {id: i.profile_id})
               MERGE (p)-[:HAS_TRAIT]->(t) } IN TRANSACTIONS OF 5000 ROWS""",
    """MATCH (e:Event)
    CALL (e) { MATCH (i:Identifier {key: e.identifier_key}) MATCH (p:Profile {id: i.profile_id})
               MERGE (p)-[:HAS_EVENT]->(e) } IN TRANSACTIONS OF 5000 ROWS""",
)
"""the peer's `relationship` model's joins, derived from c360's properties after the load"""

INGEST = "mutation($m: [MessageInput!]!) { ingest(messages: $m) { status } }"


def message(observation: Any) -> dict[str, Any]:
    """A bench observation as the GraphQL `ingest` mutation takes it."""
    out: dict[str, Any] = {
        "type": observation.type.name,
        "identifiers": [{"kind": i.kind, "value": i.value} for i in observation.identifiers],
        "messageId": observation.message_id,
        "timestamp": observation.timestamp.isoformat(),
        "source": observation.source,
    }
    if observation.traits:
        out["traits"] = observation.traits
    if observation.event is not None:
        out["event"] = observation.event.name
        out["category"] = observation.event.category.name
        out["properties"] = observation.event.properties
    return out


def batches(customers: int, size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for observation in observations(customers):
        batch.append(message(observation))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def load(port: int, key: str, customers: int, *, size: int, connections: int) -> None:
    """Every customer's messages through c360's GraphQL `ingest`, `connections` at a time."""
    import httpx

    pending = batches(customers, size)
    done = 0
    started = last = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:

        async def worker() -> None:
            nonlocal done, last
            for batch in pending:
                body = {"query": INGEST, "variables": {"m": batch}}
                response = await http.post("/graphql", json=body, headers=headers)
                ok = response.status_code == 200
                answer = response.json() if ok else {}
                if not ok or answer.get("errors"):
                    raise SystemExit(f"ingest: {response.status_code} {response.text[:300]}")
                results = answer["data"]["ingest"]
                bad = [r for r in results if r["status"] not in ("applied", "duplicate")]
                if bad:
                    raise SystemExit(f"ingest: {bad[:3]}")
                done += len(batch)
                if time.perf_counter() - last > 15:
                    last = time.perf_counter()
                    rate = done / (last - started)
                    print(f"  loaded {done:,} messages, {rate:,.0f}/s", flush=True)

        await asyncio.gather(*(worker() for _ in range(connections)))
    took = time.perf_counter() - started
    print(
        f"loaded {customers:,} customers, {done:,} messages in {took:.0f} s ({done / took:,.0f}/s)"
    )


def derive_relationships(uri: str) -> None:
    from neo4j import GraphDatabase

    started = time.perf_counter()
    with GraphDatabase.driver(uri, auth=None) as driver, driver.session() as session:
        for statement in RELATIONSHIPS:
            session.run(statement).consume()
    print(f"derived the relationship model's joins in {time.perf_counter() - started:.0f} s")
