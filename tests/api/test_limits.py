"""Query limits: depth, aliases (fragments expanded at every spread), tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from graph_api.app import create_app
from graph_api.settings import Settings
from tests.api.conftest import Api, codes

DEEP = "{ customers { edges { node { mergeHistory { links { from { kind } } } } } } }"
SHALLOW = "{ customers { edges { node { id } } } }"


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Api]:
    small = dataclasses.replace(settings, max_depth=5, max_aliases=4, max_tokens=60)
    app = create_app(small)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Api(client)


async def test_depth_limit(limited: Api) -> None:
    await limited(SHALLOW)
    errors = await limited.errors(DEEP)
    assert codes(errors) == ["BAD_REQUEST"]
    assert "exceeds maximum operation depth of 5" in errors[0]["message"]


async def test_depth_counts_through_fragments(limited: Api) -> None:
    query = "fragment L on Link { from { kind } } fragment C on Customer { mergeHistory"
    query += " { links { ...L } } } { customers { edges { node { ...C } } } }"
    assert codes(await limited.errors(query)) == ["BAD_REQUEST"]


async def test_introspection_is_not_depth_limited(limited: Api) -> None:
    query = "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }"
    data = await limited(query)
    assert data["__schema"]["types"]


async def test_alias_limit(limited: Api) -> None:
    await limited("{ a: customers { n: totalCount } b: customers { totalCount } }")
    errors = await limited.errors(
        "{ a: customers { totalCount } b: customers { totalCount } c: customers { totalCount }"
        " d: customers { totalCount } e: customers { totalCount } }"
    )
    assert codes(errors) == ["BAD_REQUEST"]
    assert errors[0]["message"] == "5 aliases in one operation; at most 4 allowed"


async def test_alias_limit_counts_each_fragment_spread(limited: Api) -> None:
    fragment = "fragment F on CustomerConnection { x: totalCount y: totalCount }"
    await limited(fragment + " { customers { ...F } }")
    errors = await limited.errors(fragment + " { customers { ...F } other: customers { ...F } }")
    assert errors[0]["message"] == "5 aliases in one operation; at most 4 allowed"
    nested = "fragment F on CustomerConnection { x: totalCount ...G } "
    nested += "fragment G on CustomerConnection { y: totalCount z: totalCount } "
    errors = await limited.errors(nested + "{ customers { ...F ...G } }")
    assert errors[0]["message"] == "5 aliases in one operation; at most 4 allowed"


async def test_token_limit(limited: Api) -> None:
    errors = await limited.errors("{ customers { " + "totalCount " * 80 + "} }")
    assert codes(errors) == ["BAD_REQUEST"]
    assert "more than 60 tokens" in errors[0]["message"]


async def test_default_limits_allow_a_profile_page(api: Api) -> None:
    await api(DEEP)
