"""API keys managed through a running c360 server's GraphQL API, with an admin key.

What `c360 keys` uses while a server holds the embedded data directory (one process per
data directory): the server does the work, as it would for any admin. Every failure is a
one-line `CliError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from graph_api.errors import CliError
from identity_graph.records import ApiKey

KEYS_PAGE = 100
CREATE = """mutation($role: String!, $name: String, $expiresAt: DateTime) {
  createApiKey(role: $role, name: $name, expiresAt: $expiresAt) {
    key id role name createdAt expiresAt } }"""
LIST = """query($first: Int!, $after: String) { apiKeys(first: $first, after: $after) {
  pageInfo { hasNextPage endCursor }
  edges { node { id role name createdAt expiresAt revokedAt } } } }"""
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) }"


class RemoteKeys:
    """The key operations of one server, as its admin."""

    def __init__(self, url: str, admin_key: str | None, *, timeout: float = 30.0) -> None:
        if not admin_key:
            raise CliError("--url needs an admin API key: --admin-key or C360_ADMIN_KEY")
        base = url.rstrip("/")
        self.url = base if base.endswith("/graphql") else base + "/graphql"
        self.admin_key = admin_key
        self.timeout = timeout

    def create(
        self, role: str, name: str | None, expires_at: datetime | None
    ) -> tuple[str, ApiKey]:
        variables = {
            "role": role,
            "name": name,
            "expiresAt": expires_at.isoformat() if expires_at else None,
        }
        made = self.call(CREATE, variables)["createApiKey"]
        return str(made["key"]), from_json(made)

    def list(self) -> list[ApiKey]:
        found: list[ApiKey] = []
        after = None
        while True:
            page = self.call(LIST, {"first": KEYS_PAGE, "after": after})["apiKeys"]
            found.extend(from_json(edge["node"]) for edge in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def revoke(self, key_id: str) -> None:
        self.call(REVOKE, {"id": key_id})

    def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The `data` of a GraphQL request that succeeded; otherwise a `CliError` saying
        why, in the server's words where it gave any."""
        try:
            response = httpx.post(
                self.url,
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.admin_key}"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as e:
            raise CliError(f"cannot reach the c360 server at {self.url}: {e}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CliError(
                f"{self.url} answered HTTP {response.status_code}, not as a c360 server does"
            )
        errors = body.get("errors")
        if errors:
            first = errors[0]
            code = (first.get("extensions") or {}).get("code", "ERROR")
            raise CliError(f"the server refused: {first.get('message')} ({code})")
        data: dict[str, Any] = body["data"]
        return data


def from_json(node: dict[str, Any]) -> ApiKey:
    """A key record from the API (which never gives the key's hash)."""

    def when(name: str) -> datetime | None:
        value = node.get(name)
        return datetime.fromisoformat(value) if value else None

    created = when("createdAt")
    assert created is not None
    return ApiKey(
        str(node["id"]),
        "",
        str(node["role"]),
        node.get("name"),
        created,
        revoked_at=when("revokedAt"),
        expires_at=when("expiresAt"),
    )
