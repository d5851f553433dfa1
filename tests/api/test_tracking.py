"""The Segment tracking API over HTTP: validation, auth, limits, idempotency, and the
official `segment-analytics-python` client against a running server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import segment.analytics
from segment.analytics.request import APIError

from graph_api.app import create_app
from graph_api.services import Services, build_services
from graph_api.settings import Settings
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.model import ConsentStatus, EventCategory
from tests.api.servers import Server

RULES = "[kinds.crm_id]\nlimit = 1\n"


@dataclass
class Tracker:
    client: httpx.AsyncClient
    services: Services
    keys: dict[str, str]

    async def post(self, path: str, body: Any, *, role: str | None = "ingest") -> httpx.Response:
        auth = (self.keys[role], "") if role else None
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        return await self.client.post(path, content=content, auth=auth, headers=headers)

    async def profile_of(self, kind: str, value: str) -> str | None:
        return (await self.services.store.profile_ids([f"{kind}:{value}"])).get(f"{kind}:{value}")


def settings_for(tmp_path: Path) -> Settings:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    return Settings(data_dir=tmp_path / "data", rules_file=rules, public_metrics=True)


@pytest.fixture
async def tracker(tmp_path: Path) -> AsyncIterator[Tracker]:
    services = build_services(settings_for(tmp_path))
    app = create_app(services.settings, services=services)
    async with app.router.lifespan_context(app):
        roles = ("ingest", "admin", "sales")
        keys = {role: (await services.auth.create_key(role, role))[0] for role in roles}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Tracker(client, services, keys)


def message(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"m-{i}",
        "userId": f"u-{i}",
        "event": "Product Added",
        "properties": {"sku": "S1"},
        "timestamp": "2024-05-01T10:00:00Z",
        **extra,
    }


async def test_identify_is_visible_after_the_200(tracker: Tracker) -> None:
    body = {
        "userId": "u-1",
        "anonymousId": "a-1",
        "messageId": "id-1",
        "traits": {"email": "Jane@Example.com", "firstName": "Jane"},
        "context": {
            "device": {"id": "d-1"},
            "externalIds": [
                {"id": "C-1", "type": "crm_id", "collection": "users", "encoding": "none"}
            ],
            "consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}},
        },
    }
    response = await tracker.post("/v1/identify", body)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    profile = await tracker.profile_of("user_id", "u-1")
    assert profile is not None
    for kind, value in [("email", "jane@example.com"), ("device_id", "d-1"), ("crm_id", "C-1")]:
        assert await tracker.profile_of(kind, value) == profile
    traits = (await tracker.services.store.traits([profile]))[profile]
    assert {(t.name, t.value) for t in traits} >= {("firstName", "Jane")}
    consents = (await tracker.services.store.consents([profile]))[profile]
    assert {(c.purpose, c.status) for c in consents} == {
        ("analytics", ConsentStatus.GRANTED),
        ("advertising", ConsentStatus.DENIED),
    }


async def test_every_call_maps_onto_one_profile(tracker: Tracker) -> None:
    calls = [
        ("/v1/page", {"anonymousId": "anon", "name": "Home", "messageId": "p"}),
        ("/v1/screen", {"anonymousId": "anon", "name": "Cart", "messageId": "s"}),
        ("/v1/alias", {"previousId": "anon", "userId": "u-7", "messageId": "al"}),
        ("/v1/track", {"userId": "u-7", "event": "Order Completed", "messageId": "t"}),
        (
            "/v1/group",
            {"userId": "u-7", "groupId": "acme", "traits": {"name": "Acme"}, "messageId": "g"},
        ),
    ]
    for path, body in calls:
        response = await tracker.post(path, body)
        assert response.status_code == 200, (path, response.text)
    profile = await tracker.profile_of("user_id", "u-7")
    assert profile is not None and await tracker.profile_of("anonymous_id", "anon") == profile
    page = (await tracker.services.store.events([profile], first=10, after=None, types=None))[
        profile
    ]
    assert {(e.type.value, e.name, e.category) for e in page.items} == {
        ("page", "Home", EventCategory.ENGAGEMENT),
        ("screen", "Cart", EventCategory.ENGAGEMENT),
        ("track", "Order Completed", EventCategory.BEHAVIOURAL),
    }
    traits = (await tracker.services.store.traits([profile]))[profile]
    assert any(t.name == "group" and t.value["id"] == "acme" for t in traits)


async def test_batch_accepts_write_key_in_body_and_replays_are_idempotent(tracker: Tracker) -> None:
    body = {"batch": [message(i) for i in range(5)], "writeKey": tracker.keys["ingest"]}
    for _ in range(2):
        response = await tracker.post("/v1/batch", body, role=None)
        assert response.status_code == 200, response.text
    profile = await tracker.profile_of("user_id", "u-3")
    assert profile is not None
    pages = await tracker.services.store.events(
        [profile], first=10, after=None, types=None, count_up_to=None
    )
    assert pages[profile].total == 1


async def test_a_batch_with_one_bad_message_writes_nothing(tracker: Tracker) -> None:
    batch = [message(0), message(1, context={"externalIds": [{"id": "x", "type": "shoe"}]})]
    response = await tracker.post("/v1/batch", {"batch": batch})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "UNKNOWN_KIND"
    assert (error["message_index"], error["field"]) == (1, "context.externalIds[0].type")
    assert await tracker.profile_of("user_id", "u-0") is None


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        ("/v1/track", b"{not json", "MALFORMED_JSON", None),
        ("/v1/track", b"[1, 2]", "MALFORMED_JSON", None),
        ("/v1/track", {"userId": 12.5, "event": "X"}, "INVALID_FIELD", "userId"),
        ("/v1/track", {"userId": "u"}, "MISSING_FIELD", "event"),
        (
            "/v1/identify",
            {"userId": "u", "traits": {"phone": "call me"}},
            "INVALID_IDENTIFIER",
            "traits.phone",
        ),
        ("/v1/batch", {"batch": "nope"}, "INVALID_FIELD", "batch"),
        ("/v1/batch", {"batch": [{"type": "launch", "userId": "u"}]}, "INVALID_FIELD", "type"),
    ],
)
async def test_malformed_requests_get_a_precise_400(
    tracker: Tracker, path: str, body: Any, code: str, field: str | None
) -> None:
    response = await tracker.post(path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error.get("field") == field


async def test_size_limits(tracker: Tracker) -> None:
    big = message(0, properties={"blob": "x" * 33_000})
    response = await tracker.post("/v1/track", big)
    assert response.status_code == 413
    response = await tracker.post("/v1/batch", {"batch": [message(1), big]})
    assert response.status_code == 413
    assert response.json()["error"]["message_index"] == 1
    many = [message(i, properties={"blob": "x" * 20_000}) for i in range(30)]
    response = await tracker.post("/v1/batch", {"batch": many})
    assert response.status_code == 413
    assert await tracker.profile_of("user_id", "u-1") is None


async def test_credentials_and_roles(tracker: Tracker) -> None:
    assert (await tracker.post("/v1/track", message(), role=None)).status_code == 401
    response = await tracker.client.post("/v1/track", json=message(), auth=("wrong-key", ""))
    assert response.status_code == 401
    response = await tracker.post(
        "/v1/batch", {"batch": [message()], "writeKey": "wrong"}, role=None
    )
    assert response.status_code == 401
    assert (await tracker.post("/v1/track", message(), role="sales")).status_code == 403
    for key, status in (("", 401), (tracker.keys["sales"], 403)):
        body = {"batch": [message()], "writeKey": key}
        assert (await tracker.post("/v1/batch", body, role=None)).status_code == status
    assert (await tracker.post("/v1/track", message(), role="admin")).status_code == 200


async def test_metrics_count_requests_and_ingest(tracker: Tracker) -> None:
    await tracker.post("/v1/batch", {"batch": [message(i) for i in range(3)]})
    await tracker.post("/v1/track", {"userId": "u"})
    text = (await tracker.client.get("/metrics")).text
    assert 'c360_http_requests_total{method="POST",route="/v1/batch",status="200"}' in text
    assert 'c360_ingest_messages_total{outcome="accepted",source="segment"}' in text
    assert 'c360_ingest_messages_total{outcome="rejected",source="segment"}' in text
    assert "c360_http_request_duration_seconds_bucket" in text


# --- the official Segment client against a running server ------------------------------


async def seed_key(settings: Settings, key: str) -> None:
    services = build_services(settings)
    await services.store.open()
    try:
        await services.auth.seed_key(key, "ingest", "segment")
    finally:
        await services.store.close()


def test_official_segment_client_reaches_the_store(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    key = "c360_segment-test-key"
    asyncio.run(seed_key(settings, key))
    server = Server(create_app(settings))
    server.start()
    try:
        errors: list[Exception] = []
        client = segment.analytics.Client(
            write_key=key,
            host=server.url,
            sync_mode=True,
            on_error=lambda e, _batch: errors.append(e),
        )
        client.identify(
            "sdk-user", {"email": "sdk@example.com", "plan": "pro"}, anonymous_id="sdk-anon"
        )
        client.track("sdk-user", "Order Completed", {"revenue": 42.0})
        client.page("sdk-user", "Docs", "Install")
        client.screen("sdk-user", "Mobile", "Home")
        client.group("sdk-user", "acme", {"name": "Acme"})
        client.alias("sdk-anon-2", "sdk-user")
        assert errors == []
        bad = segment.analytics.Client(write_key="wrong", host=server.url, sync_mode=True)
        with pytest.raises(APIError) as info:
            bad.track("sdk-user", "Ignored")
        assert info.value.status == 401
    finally:
        server.stop()
    asyncio.run(check_sdk_data(settings.data_dir))


async def check_sdk_data(data_dir: Path) -> None:
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        keys = ["user_id:sdk-user", "email:sdk@example.com", "anonymous_id:sdk-anon"]
        owners = await store.profile_ids([*keys, "anonymous_id:sdk-anon-2"])
        assert len(owners) == 4 and len(set(owners.values())) == 1
        profile = owners["user_id:sdk-user"]
        events = (await store.events([profile], first=10, after=None, types=None))[profile]
        assert {e.name for e in events.items} == {"Order Completed", "Install", "Home"}
    finally:
        await store.close()
