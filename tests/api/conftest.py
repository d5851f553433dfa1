"""Fixtures for the API tests: an app on a fresh embedded store, and an HTTP client to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette

from graph_api.app import create_app
from graph_api.settings import Secret, Settings

ADMIN_KEY = "c360_test-admin-key-Wq7Zp3Lx9Rv2Nk5Tb8Hd"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
JWT_AUDIENCE = "c360-tests"
JWT_ISSUER = "https://issuer.c360.test/"
JWT_CLAIMS = {"aud": JWT_AUDIENCE, "iss": JWT_ISSUER}
"""the claims every token these tests make carries, to pass the audience and issuer checks"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        bootstrap_admin_key=Secret(ADMIN_KEY),
        jwt_secret=Secret(JWT_SECRET),
        jwt_audience=JWT_AUDIENCE,
        jwt_issuer=JWT_ISSUER,
    ).development()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as c:
        yield c


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Api]:
    """An app of these settings, started, and a GraphQL client to it."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Api(client)


class Api:
    """GraphQL over HTTP, as a client does it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None = ADMIN_KEY
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {"query": query, "variables": variables or {}}
        return await self.client.post("/graphql", json=body, headers=headers)

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None = ADMIN_KEY
    ) -> dict[str, Any]:
        """The `data` of a query that must succeed."""
        response = await self.post(query, variables, key=key)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def errors(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None = ADMIN_KEY
    ) -> list[dict[str, Any]]:
        """The error entries of a query that must fail."""
        response = await self.post(query, variables, key=key)
        body = response.json()
        assert body.get("errors"), body
        errors: list[dict[str, Any]] = body["errors"]
        return errors

    async def key(self, role: str) -> str:
        data = await self(
            "mutation($role: String!) { createApiKey(role: $role) { key } }", {"role": role}
        )
        key: str = data["createApiKey"]["key"]
        return key


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], seconds: float = 5.0) -> T:
    """`check` once it passes, polled until a deadline (for what the audience engine and the
    webhook dispatcher do in the background, within a second or a retry)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def codes(errors: list[dict[str, Any]]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]
