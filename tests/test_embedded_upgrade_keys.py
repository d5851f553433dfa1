"""API keys in an audit file written before keys could expire: it opens, its keys never
expire, and new keys get their expiry."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from identity_graph.adapters.embedded.sql import AUDIT_FILE
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.records import ApiKey

T = datetime(2024, 5, 1, tzinfo=UTC)


async def test_keys_of_an_audit_file_without_expiries_open_and_never_expire(
    tmp_path: Path,
) -> None:
    old = ApiKey("k1", "hash-1", "support", "desk", T)
    store = EmbeddedStore(tmp_path)
    await store.open()
    try:
        await store.records.put_api_key(old)
    finally:
        await store.close()
    with closing(sqlite3.connect(tmp_path / AUDIT_FILE, isolation_level=None)) as db:
        db.execute("DROP TABLE api_key_expiry")  # as the previous version left it

    new = ApiKey("k2", "hash-2", "ingest", "web", T, expires_at=T + timedelta(days=7))
    store = EmbeddedStore(tmp_path)
    await store.open()
    try:
        assert await store.records.api_key("hash-1") == old
        await store.records.put_api_key(new)
        assert await store.records.api_key("hash-2") == new
        page = await store.records.api_keys(first=10, after=None)
        assert page.items == (old, new)
    finally:
        await store.close()
