"""The pages over HTTP: what c360 answers a browser, with GraphiQL on and off."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from graph_api.app import create_app
from graph_api.settings import Settings
from graph_api.web.assets import VENDOR

HTML = {"Accept": "text/html"}


@pytest.fixture(params=[True, False], ids=["graphiql on", "graphiql off"])
async def browser_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, bool]]:
    settings = dataclasses.replace(Settings(data_dir=tmp_path / "data"), graphiql=request.param)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as client:
            yield client, request.param


async def test_graphiql_is_c360s_own_page_or_none(
    browser_client: tuple[httpx.AsyncClient, bool],
) -> None:
    client, on = browser_client
    page = await client.get("/graphql", headers=HTML)
    if not on:
        assert page.status_code == 404
        return
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/static/") or s == "data:," for s in sources), sources


async def test_the_explorer_loads_only_c360s_files(
    browser_client: tuple[httpx.AsyncClient, bool],
) -> None:
    client, _ = browser_client
    page = await client.get("/explore", headers=HTML)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "script-src 'self'" in policy
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") or s == "data:," for s in sources), sources
    for source in sources:
        if source.startswith("/static/"):
            asset = await client.get(source)
            assert asset.status_code == 200, source
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_every_vendored_bundle_ships_with_its_licence(
    browser_client: tuple[httpx.AsyncClient, bool],
) -> None:
    client, _ = browser_client
    for path in VENDOR.values():
        folder = path.rsplit("/", 1)[0]
        licence = await client.get(f"/static/{folder}/LICENSE")
        assert licence.status_code == 200 and "Permission is hereby granted" in licence.text
