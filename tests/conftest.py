"""Shared fixtures: a fresh store of each adapter kind.

The `store` fixture is parametrised over every adapter; the Neo4j case needs the server
started by `tests/neo4j/server start` (its URI in NEO4J_TEST_URI) and fails, never skips,
without it.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from stores import make_store

from identity_graph.store import IdentityStore

ADAPTERS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdentityStore]:
    s = await make_store(request.param, tmp_path)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def cpython_gc() -> Iterator[None]:
    """CPython's default collector thresholds for the test, whatever an earlier test left
    (`tune_gc` is process-wide); the thresholds before it afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*before)
