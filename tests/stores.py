"""Making a fresh store of each adapter kind, for fixtures and property tests, and the
embedded store's files as older versions made them."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path

import pytest

from identity_graph.adapters.embedded import journal as embedded_journal
from identity_graph.adapters.embedded.store import EmbeddedStore
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
        from identity_graph.adapters.neo4j.store import Neo4jStore

        store = Neo4jStore(neo4j_uri(), auth=None, database="neo4j")
        await store.open()
        await store.wipe()
    await store.open()
    return store


OLD_PAGE_SIZE = 4096
"""the page size of every file c360 made before 16 KB tables and 64 KB journals"""


@contextmanager
def older_page_sizes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Within it, new embedded files get the page size of older versions."""
    with monkeypatch.context() as older:
        older.setattr(embedded_journal, "TABLES_PAGE_SIZE", OLD_PAGE_SIZE)
        older.setattr(embedded_journal, "JOURNAL_PAGE_SIZE", OLD_PAGE_SIZE)
        yield


def page_size(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA page_size").fetchone()[0])


@asynccontextmanager
async def reopened(data_dir: Path) -> AsyncIterator[EmbeddedStore]:
    """The embedded store in `data_dir` opened anew, as after a restart; closed after."""
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
