"""`totalCount` is counted only when a query selects it, and only up to the documented bound:
the store reads of `customers`, `Customer.events` and `auditLog` are asked to count nothing
otherwise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.applications import Starlette

from graph_api import totals
from graph_api.services import Services
from tests.api.conftest import Api

INGEST = "mutation($m: [MessageInput!]!) { ingest(messages: $m) { status } }"


def _counts(
    monkeypatch: pytest.MonkeyPatch, target: object, method: str, keyword: str = "count_up_to"
) -> list[Any]:
    """What each call of `target.method` is asked to count up to (its argument `keyword`),
    from now on."""
    asked: list[Any] = []
    inner: Callable[..., Awaitable[Any]] = getattr(target, method)

    async def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get(keyword, 0))
        return await inner(*args, **kwargs)

    monkeypatch.setattr(target, method, spy)
    return asked


@pytest.fixture
async def services(api: Api, app: Starlette) -> Services:
    messages: list[dict[str, Any]] = []
    for n in range(5):
        messages.append({"type": "IDENTIFY", "userId": f"u{n}", "traits": {"email": f"{n}@x.io"}})
        messages.extend(
            {"type": "TRACK", "userId": f"u{n}", "event": f"E{e}"} for e in range(n + 1)
        )
    await api(INGEST, {"m": messages})
    found: Services = app.state.services
    return found


async def test_customers_and_their_events_count_only_when_asked(
    api: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = _counts(monkeypatch, services.store, "list_profiles")
    events = _counts(monkeypatch, services.store, "events")
    plain = await api(
        "{ customers(first: 2) { pageInfo { hasNextPage }"
        " edges { node { id events(first: 2) { edges { node { name } } } } } } }"
    )
    assert len(plain["customers"]["edges"]) == 2 and plain["customers"]["pageInfo"]["hasNextPage"]
    assert listed == [0] and events == [0]

    counted = await api(
        '{ customers(first: 5, where: {hasKind: "user_id"}) { ...total'
        " edges { node { events(first: 1) { totalCount } } } } }"
        " fragment total on CustomerConnection { totalCount }"
    )
    assert counted["customers"]["totalCount"] == 5
    shown = [e["node"]["events"]["totalCount"] for e in counted["customers"]["edges"]]
    assert sorted(shown) == [1, 2, 3, 4, 5]
    assert listed == [0, totals.COUNTED] and events == [0, totals.COUNTED]


async def test_a_customer_counts_its_events_only_when_asked(
    api: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = _counts(monkeypatch, services.store, "customer_context", "count_events")
    query = '{ customer(identifier: {kind: "user_id", value: "u4"}) { events(first: 2) { %s } } }'
    plain = await api(query % "edges { node { name } }")
    assert len(plain["customer"]["events"]["edges"]) == 2
    counted = await api(query % "totalCount")
    assert counted["customer"]["events"]["totalCount"] == 5
    assert contexts == [0, totals.COUNTED]


async def test_the_total_is_bounded(
    api: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(totals, "COUNTED", 4)
    data = await api(
        '{ customers(first: 1) { totalCount } customer(identifier: {kind: "user_id", value: "u4"})'
        " { events(first: 1) { totalCount } } }"
    )
    assert data["customers"]["totalCount"] == 4
    assert data["customer"]["events"]["totalCount"] == 4


async def test_the_audit_log_counts_only_when_asked(
    api: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api('{ customer(identifier: {kind: "user_id", value: "u1"}) { traits { email } } }')
    logged = _counts(monkeypatch, services.records, "audit_log")
    plain = await api("{ auditLog(first: 5) { edges { node { customerId } } } }")
    assert plain["auditLog"]["edges"]
    counted = await api("{ auditLog(first: 5) { totalCount } }")
    assert counted["auditLog"]["totalCount"] >= 1
    assert logged == [0, totals.COUNTED]
