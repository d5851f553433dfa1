"""Clear reads of personal data are audited: one entry per customer per request, durable,
queryable by admins; and a read that cannot be audited is not answered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graph_api.app import create_app
from graph_api.settings import Settings
from identity_graph.errors import StoreUnavailable
from tests.api.conftest import Api, codes
from tests.privacy.conftest import IDENTIFY, TRAITS, Seeded, seed, token

AUDIT = """query($first: Int!, $after: String, $customer: ID) {
  auditLog(first: $first, after: $after, customerId: $customer) {
    totalCount edges { cursor node { id at principal role customerId fields } }
    pageInfo { hasNextPage endCursor } } }"""
READ = "query($id: ID!) { customer(id: $id) { %s } }"


async def audit_log(api: Api, customer: str | None = None, first: int = 50) -> dict[str, Any]:
    data = await api(AUDIT, {"first": first, "customer": customer})
    log: dict[str, Any] = data["auditLog"]
    return log


async def read(api: Api, role: str, customer: str, selection: str) -> dict[str, Any]:
    response = await api.post(READ % selection, {"id": customer}, key=token(role))
    body: dict[str, Any] = response.json()
    return body


async def test_a_clear_read_is_one_entry_naming_the_fields(api: Api, seeded: Seeded) -> None:
    assert (await audit_log(api))["totalCount"] == 0
    selection = """traits { email phone address { city } custom }
      again: traits { email } traitHistory(name: "email") { value }"""
    body = await read(api, "support", seeded.customer_id, selection)
    assert body["data"]["customer"]["traits"]["email"] == TRAITS["email"]
    log = await audit_log(api)
    assert log["totalCount"] == 1
    entry = log["edges"][0]["node"]
    assert entry["customerId"] == seeded.customer_id
    assert entry["principal"] == "jwt:privacy-tester"
    assert entry["role"] == "support"
    assert set(entry["fields"]) == {
        "Traits.email",
        "Traits.phone",
        "Traits.custom.mobile",
        "Traits.custom.push_token",
        "Traits.custom.ssn",
        "TraitValue.value:email",
    }


async def test_one_entry_per_customer_per_request(api: Api, seeded: Seeded) -> None:
    await api(IDENTIFY, {"input": {"userId": "u-other-9", "traits": {"email": "o9@example.org"}}})
    query = "{ customers(first: 10) { edges { node { id traits { email } } } } }"
    response = await api.post(query, key=token("sales"))
    assert "errors" not in response.json()
    log = await audit_log(api)
    assert log["totalCount"] == 2
    nodes = [e["node"] for e in log["edges"]]
    assert len({n["customerId"] for n in nodes}) == 2
    assert all(n["fields"] == ["Traits.email"] and n["role"] == "sales" for n in nodes)


@pytest.mark.parametrize(("role", "selection"), [
    ("marketing", "traits { email phone firstName }"),  # masked
    ("analyst", "traits { email phone } identifiers { value }"),  # hashed
    ("support", "traits { address { city street } }"),  # masked for support
    ("sales", "identifiers { kind } traits { createdAt }"),  # nothing personal
])  # fmt: skip
async def test_masked_hashed_and_denied_reads_are_not_audited(
    api: Api, seeded: Seeded, role: str, selection: str
) -> None:
    body = await read(api, role, seeded.customer_id, selection)
    assert body["data"]["customer"] is not None
    assert (await audit_log(api))["totalCount"] == 0


async def test_audit_log_is_for_admins_only(api: Api, seeded: Seeded) -> None:
    for role in ("support", "sales", "marketing", "analyst", "ingest"):
        response = await api.post(AUDIT, {"first": 5}, key=token(role))
        assert codes(response.json()["errors"]) == ["FORBIDDEN"]


async def test_audit_log_filters_by_customer_and_pages(api: Api, seeded: Seeded) -> None:
    other = await api(IDENTIFY, {"input": {"userId": "u-x-2", "traits": {"email": "x2@ex.org"}}})
    other_id = other["identify"]["customerId"]
    for _ in range(5):
        await read(api, "support", seeded.customer_id, "traits { email }")
    await read(api, "support", other_id, "traits { email }")
    assert (await audit_log(api))["totalCount"] == 6
    assert (await audit_log(api, other_id))["totalCount"] == 1
    seen: list[str] = []
    after = None
    while True:
        data = await api(AUDIT, {"first": 2, "after": after, "customer": seeded.customer_id})
        page = data["auditLog"]
        assert page["totalCount"] == 5
        assert all(e["node"]["customerId"] == seeded.customer_id for e in page["edges"])
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 5
    times = [e["node"]["at"] for e in (await audit_log(api, seeded.customer_id))["edges"]]
    assert times == sorted(times, reverse=True)


async def test_entries_survive_a_restart(settings: Settings) -> None:
    async def session(work: Callable[[Api], Awaitable[Any]]) -> Any:
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await work(Api(client))

    async def seed_and_read(api: Api) -> str:
        customer = (await seed(api)).customer_id
        await read(api, "support", customer, "traits { email }")
        return customer

    customer = await session(seed_and_read)
    log = await session(lambda api: audit_log(api, customer))
    assert log["totalCount"] == 1
    assert log["edges"][0]["node"]["fields"] == ["Traits.email"]


@pytest.mark.parametrize(
    ("failure", "code", "status"),
    [(StoreUnavailable("audit table locked"), "STORE_UNAVAILABLE", 503),
     (RuntimeError("disk on fire"), "INTERNAL", 200)],
)  # fmt: skip
async def test_a_read_that_cannot_be_audited_is_withheld(
    api: Api,
    app: Starlette,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    code: str,
    status: int,
) -> None:
    async def broken(entries: Any) -> None:
        raise failure

    monkeypatch.setattr(app.state.services.records, "append_audit", broken)
    selection = "id traits { email firstName custom }"
    response = await api.post(READ % selection, {"id": seeded.customer_id}, key=token("support"))
    assert response.status_code == status
    body = response.json()
    assert body["data"] is None
    assert codes(body["errors"]) == [code]
    for value in (TRAITS["email"], TRAITS["firstName"], TRAITS["ssn"], str(failure)):
        assert value not in response.text
    masked = await read(api, "marketing", seeded.customer_id, "traits { email }")
    assert masked["data"]["customer"]["traits"]["email"] == "j***@e***.com"
