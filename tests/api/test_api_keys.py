"""Keys an admin can manage: an expiry, a listing that never shows a secret, revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from graph_api.access.auth import Authenticator
from tests.api.conftest import Api, codes

CREATE = """mutation($role: String!, $name: String, $expiresAt: DateTime) {
  createApiKey(role: $role, name: $name, expiresAt: $expiresAt) {
    id key role name createdAt expiresAt } }"""
LIST = """query($first: Int!, $after: String) { apiKeys(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { id role name createdAt expiresAt revokedAt } } } }"""
READ = "{ customers(first: 1) { totalCount } }"


async def create(api: Api, role: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    data = await api(CREATE, {"role": role, "name": name, **extra})
    made: dict[str, Any] = data["createApiKey"]
    return made


async def test_an_expired_key_is_refused_as_an_invalid_token(
    api: Api, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    made = await create(api, "support", "contractor", expiresAt=expires.isoformat())
    assert made["expiresAt"] == expires.isoformat()
    assert (await api(READ, key=made["key"]))["customers"]["totalCount"] == 0

    auth: Authenticator = app.state.services.auth
    monkeypatch.setattr(auth, "_clock", lambda: expires + timedelta(seconds=1))
    response = await api.post(READ, key=made["key"])
    assert response.status_code == 401
    assert codes(response.json()["errors"]) == ["INVALID_TOKEN"]
    assert response.json()["errors"][0]["message"] == "unknown, revoked or expired API key"


async def test_an_expiry_must_be_a_time_to_come_with_a_zone(api: Api) -> None:
    for when in ("2001-01-01T00:00:00Z", "2999-01-01T00:00:00"):
        errors = await api.errors(CREATE, {"role": "support", "expiresAt": when})
        assert codes(errors) == ["BAD_INPUT"], when


async def test_admins_list_keys_without_their_secrets(api: Api) -> None:
    made = [
        await create(api, "ingest", "web"),
        await create(api, "sales", None, expiresAt="2999-01-01T00:00:00+00:00"),
        await create(api, "analyst", "gone"),
    ]
    assert await api(f'mutation {{ revokeApiKey(id: "{made[2]["id"]}") }}')

    listed: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await api(LIST, {"first": 2, "after": after}))["apiKeys"]
        assert page["totalCount"] == 4  # with the bootstrap key
        listed.extend(edge["node"] for edge in page["edges"])
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert [k["name"] for k in listed] == ["bootstrap admin key", "web", None, "gone"]
    by_id = {k["id"]: k for k in listed}
    assert by_id[made[1]["id"]]["expiresAt"] == "2999-01-01T00:00:00+00:00"
    assert by_id[made[2]["id"]]["revokedAt"] is not None
    assert by_id[made[0]["id"]]["revokedAt"] is None and by_id[made[0]["id"]]["expiresAt"] is None
    text = str(listed)
    for key in made:
        assert key["key"] not in text

    for field in ("key", "keyHash"):
        errors = await api.errors(f"{{ apiKeys {{ edges {{ node {{ {field} }} }} }} }}")
        assert codes(errors) == ["BAD_REQUEST"]


async def test_only_admins_list_keys(api: Api) -> None:
    for role in ("support", "sales", "marketing", "analyst", "ingest"):
        response = await api.post(LIST, {"first": 5}, key=await api.key(role))
        assert response.status_code == 403, role
        assert codes(response.json()["errors"]) == ["FORBIDDEN"]
