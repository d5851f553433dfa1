"""Several people for the privacy tests, as Segment messages, and settings for either store.

Ann has an anonymous profile merged into her user id's, traits, events, a consent choice and a
conflict: she used a family tablet that Cy used first, so the tablet stays Cy's and her
conflict names it. Bob shares nothing with anyone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from stores import neo4j_uri

from graph_api.settings import Secret, Settings
from identity_graph.adapters.neo4j.store import Neo4jStore
from tests.api.conftest import ADMIN_KEY

SHARED_DEVICE = "family-tablet-4711"
ANN_EMAIL = "Annabel.Erasable@Example.com"
ANN_VALUES = (
    "annabel.erasable@example.com",
    ANN_EMAIL,
    "ann-user-5521",
    "ann-anon-9c1f",
    "ann-phone-device-77",
    "Annabel Erasable",
    "+14155550123",
    "ann-sku-31337",
    "/ann-private-path",
    "Ann Street 9",
)
"""every value of Ann's: none may be left anywhere once she is erased"""
OTHERS_VALUES = ("bob-user-1", "bob@example.com", "Bob Keeps", "bob-sku-1", "cy-user-1",
                 "cy@example.com", "Cy Stays", SHARED_DEVICE)  # fmt: skip
"""values of the others: none may appear in Ann's export"""


def _message(mid: str, kind: str, when: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": mid, "timestamp": f"2026-11-{when}Z", **fields}


def messages() -> list[dict[str, Any]]:
    """Everyone's messages, in the order they are sent."""
    device = {"device": {"id": SHARED_DEVICE}}
    return [
        _message("cy-1", "identify", "01T09:00:00", userId="cy-user-1", context=device,
                 traits={"email": "cy@example.com", "name": "Cy Stays"}),
        _message("cy-2", "track", "01T09:05:00", userId="cy-user-1", event="Video Played",
                 properties={"title": "cartoons"}, context=device),
        _message("ann-1", "page", "02T10:00:00", anonymousId="ann-anon-9c1f",
                 name="Home", properties={"path": "/ann-private-path"}),
        _message("ann-2", "identify", "02T10:01:00", userId="ann-user-5521",
                 context={"device": {"id": "ann-phone-device-77"},
                          "consent": {"categoryPreferences": {"advertising": False}}},
                 traits={"email": ANN_EMAIL, "name": "Annabel Erasable", "phone": "+14155550123",
                         "address": {"street": "Ann Street 9"}}),
        _message("ann-3", "track", "02T10:02:00", userId="ann-user-5521",
                 anonymousId="ann-anon-9c1f", event="Order Completed",
                 properties={"sku": "ann-sku-31337", "revenue": 42}),
        _message("ann-4", "track", "02T10:03:00", userId="ann-user-5521", context=device,
                 event="Product Viewed", properties={"sku": "ann-sku-31337"}),
        _message("bob-1", "identify", "03T11:00:00", userId="bob-user-1",
                 traits={"email": "bob@example.com", "name": "Bob Keeps"}),
        _message("bob-2", "track", "03T11:01:00", userId="bob-user-1", event="Order Completed",
                 properties={"sku": "bob-sku-1"}),
    ]  # fmt: skip


async def send(client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
    """Send messages through `/v1/batch` with the admin key as the write key."""
    response = await client.post("/v1/batch", json={"batch": batch}, auth=(ADMIN_KEY, ""))
    assert response.status_code == 200, response.text


def settings_for(store: str, tmp_path: Path, **extra: Any) -> Settings:
    """Settings of a fresh server on `store` (call `wipe` first for Neo4j)."""
    common: dict[str, Any] = {"bootstrap_admin_key": Secret(ADMIN_KEY), **extra}
    if store == "embedded":
        return Settings(data_dir=tmp_path / "data", **common)
    return Settings(
        store="neo4j", neo4j_uri=neo4j_uri(), hash_key=Secret("privacy-test-key"), **common
    )


async def wipe(store: str) -> None:
    """Empty the Neo4j test database (nothing to do for a fresh embedded directory)."""
    if store != "neo4j":
        return
    wiper = Neo4jStore(neo4j_uri(), auth=None)
    await wiper.open()
    try:
        await wiper.wipe()
    finally:
        await wiper.close()
