"""Issue 18's "done when", over real HTTP to a running server, on both stores.

Several people are ingested (Ann uses a tablet Cy used first); Ann is exported, then erased;
every original message is replayed through `/v1/batch`. The export held all of Ann's data
and none of the others'; after the erasure no lookup finds her; the replay did not bring her
back; the others are unchanged; and (embedded) no file of the data directory holds a byte of
any of her values.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph_api.app import create_app
from graph_api.settings import Settings
from tests.api.conftest import ADMIN_KEY
from tests.api.people import ANN_VALUES, OTHERS_VALUES, messages, settings_for, wipe
from tests.api.servers import Server

STORES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]
ANN_IDENTIFIERS = [
    ("user_id", "ann-user-5521"),
    ("anonymous_id", "ann-anon-9c1f"),
    ("device_id", "ann-phone-device-77"),
    ("email", "annabel.erasable@example.com"),
    ("phone", "+14155550123"),
]
ANN_MESSAGE_IDS = ("ann-1", "ann-2", "ann-3", "ann-4")
LOOKUP = """query($kind: String!, $value: String!) {
  customer(identifier: {kind: $kind, value: $value}) { id }
}"""
EXPORT = "query($id: ID!) { dataSubjectExport(customerId: $id) }"
ERASE = """mutation($id: ID!) {
  eraseCustomer(customerId: $id, reason: "GDPR Art. 17 request #77") { identifiers events }
}"""


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    store: str = request.param
    return settings_for(store, tmp_path)


@pytest.fixture
async def wiped(settings: Settings) -> Settings:
    await wipe(settings.store)
    return settings


@pytest.fixture
def server(wiped: Settings) -> Iterator[Server]:
    running = Server(create_app(wiped))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


class Graphql:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.client.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def holder(self, kind: str, value: str) -> str | None:
        found = (await self(LOOKUP, {"kind": kind, "value": value}))["customer"]
        return found["id"] if found else None

    async def export(self, customer_id: str) -> dict[str, Any]:
        document: dict[str, Any] = (await self(EXPORT, {"id": customer_id}))["dataSubjectExport"]
        return document


def unchanging(document: dict[str, Any]) -> dict[str, Any]:
    """An export less what every export changes: its time and the access log it adds to."""
    return {k: v for k, v in document.items() if k not in ("exportedAt", "accessLog")}


def files_holding(data_dir: Path, values: list[str]) -> dict[str, list[str]]:
    """file -> the values whose bytes it holds, for every file under `data_dir`."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        content = path.read_bytes()
        hits = [v for v in values if v.encode("utf-8") in content]
        if hits:
            found[str(path.relative_to(data_dir))] = hits
    return found


@pytest.mark.parametrize("settings", STORES, indirect=True)
async def test_an_erased_person_is_gone_for_good_and_the_others_are_unchanged(
    settings: Settings, server: Server, client: httpx.AsyncClient
) -> None:
    api = Graphql(client, server.url)
    original = messages()
    await send_to(client, server.url, original)
    ann = await api.holder("user_id", "ann-user-5521")
    bob = await api.holder("user_id", "bob-user-1")
    cy = await api.holder("user_id", "cy-user-1")
    assert ann and bob and cy and len({ann, bob, cy}) == 3

    exported = json.dumps(await api.export(ann), ensure_ascii=False)
    assert [v for v in ANN_VALUES if v not in exported] == []
    assert [m for m in ANN_MESSAGE_IDS if f'"{m}"' not in exported] == []
    assert [v for v in OTHERS_VALUES if v in exported] == []
    others = {pid: unchanging(await api.export(pid)) for pid in (bob, cy)}

    if settings.store == "embedded":  # the search looks where the values are
        assert files_holding(settings.data_dir, list(ANN_VALUES))
    erased = (await api(ERASE, {"id": ann}))["eraseCustomer"]
    assert (erased["identifiers"], erased["events"]) == (5, 3)
    if settings.store == "embedded":
        leftover = files_holding(settings.data_dir, [*ANN_VALUES, *ANN_MESSAGE_IDS])
        assert leftover == {}, "erased values left in the data directory"

    await send_to(client, server.url, original)  # a replay of everything, Ann's too

    for kind, value in ANN_IDENTIFIERS:
        assert await api.holder(kind, value) is None, f"{kind} came back"
    by_id = await api("query($id: ID!) { customer(id: $id) { id } }", {"id": ann})
    assert by_id["customer"] is None
    for pid, before in others.items():
        assert unchanging(await api.export(pid)) == before
    if settings.store == "embedded":
        leftover = files_holding(settings.data_dir, [*ANN_VALUES, *ANN_MESSAGE_IDS])
        assert leftover == {}, "the replay wrote erased values"


async def send_to(client: httpx.AsyncClient, url: str, batch: list[dict[str, Any]]) -> None:
    response = await client.post(f"{url}/v1/batch", json={"batch": batch}, auth=(ADMIN_KEY, ""))
    assert response.status_code == 200, response.text
