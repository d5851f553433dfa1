"""Shared fixtures: a fresh store of each adapter kind.

The `store` fixture is parametrised over every adapter; the Neo4j case needs the server
started by `tests/neo4j/server start` (its URI in NEO4J_TEST_URI) and fails, never skips,
without it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from identity_graph.adapters.embedded import EmbeddedStore
from identity_graph.store import IdentityStore

ADAPTERS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]


def neo4j_uri() -> str:
    uri = os.environ.get("NEO4J_TEST_URI")
    if not uri:
        pytest.fail(
            "NEO4J_TEST_URI is not set: start the test server with"
            " `tests/neo4j/server start` or deselect with -m 'not neo4j'"
        )
    return uri


async def make_store(kind: str, tmp_path: Path) -> IdentityStore:
    if kind == "embedded":
        store: IdentityStore = EmbeddedStore(tmp_path / "data")
    else:
        from identity_graph.adapters.neo4j import Neo4jStore

        store = Neo4jStore(neo4j_uri(), auth=None, database="neo4j")
        await store.open()
        await store.wipe()
    await store.open()
    return store


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdentityStore]:
    s = await make_store(request.param, tmp_path)
    try:
        yield s
    finally:
        await s.close()
