"""CORS: pages on listed origins may call the API and the tracking endpoints from a browser;
others get no `Access-Control-Allow-Origin`, and no origin is allowed by default."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from graph_api.app import create_app
from graph_api.errors import ConfigError
from graph_api.settings import Settings
from tests.api.conftest import ADMIN_KEY

LISTED = "https://app.example.com"
OTHER = "https://evil.example.net"


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(dataclasses.replace(settings, cors_origins=(LISTED,)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as c:
            yield c


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


@pytest.mark.parametrize("path", ["/graphql", "/v1/batch"])
async def test_a_listed_origin_gets_its_preflight_answered_and_cached(
    cors_client: httpx.AsyncClient, path: str
) -> None:
    response = await cors_client.options(path, headers=preflight(LISTED))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == LISTED
    assert response.headers["access-control-max-age"] == "600"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


async def test_an_unlisted_origin_is_refused(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options("/graphql", headers=preflight(OTHER))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    query = {"query": "{ customers(first: 1) { edges { node { id } } } }"}
    headers = {"Origin": OTHER, "Authorization": f"Bearer {ADMIN_KEY}"}
    answered = await cors_client.post("/graphql", json=query, headers=headers)
    assert "access-control-allow-origin" not in answered.headers


async def test_a_listed_origin_reads_with_its_key(cors_client: httpx.AsyncClient) -> None:
    query = {"query": "{ customers(first: 1) { edges { node { id } } } }"}
    headers = {"Origin": LISTED, "Authorization": f"Bearer {ADMIN_KEY}"}
    response = await cors_client.post("/graphql", json=query, headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == LISTED
    assert "errors" not in response.json()


async def test_no_origin_is_allowed_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options("/graphql", headers=preflight(LISTED))
    assert "access-control-allow-origin" not in response.headers


def test_origins_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"C360_CORS_ORIGINS": f" {LISTED}/ , http://localhost:3000"})
    assert settings.cors_origins == (LISTED, "http://localhost:3000")
    with pytest.raises(ConfigError, match="is not an origin"):
        Settings.from_env({"C360_CORS_ORIGINS": "app.example.com/path"})
