"""Making a fresh store of each adapter kind, for fixtures and property tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from identity_graph.adapters.embedded import EmbeddedStore
from identity_graph.store import IdentityStore


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
