"""A data directory written by the previous c360 (no journal, no copier mark, events
without their profile, every message in `messages`, the `links_b` index) opens, keeps
every customer, and still recognises the messages it saw; one that is not a database is
refused with a clear error."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from streams import observe, partition

from identity_graph.adapters.embedded import EmbeddedStore
from identity_graph.errors import StoreUnavailable
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def make_previous_layout(data_dir: Path) -> None:
    """Turn a data dir of this version into what the previous version left."""
    (data_dir / "journal.sqlite3").unlink()
    with closing(sqlite3.connect(data_dir / "c360.sqlite3", isolation_level=None)) as db:
        # the previous version recorded every message, events included, in `messages`
        db.execute(
            "INSERT INTO messages (message_id, profile_id, at)"
            " SELECT message_id, profile_id, ts FROM events"
        )
        db.execute("ALTER TABLE events DROP COLUMN profile_id")
        db.execute("DROP TABLE meta")
        db.execute("CREATE INDEX links_b ON links (b)")
        assert "profile_id" not in columns(db, "events")


async def test_a_data_dir_of_the_previous_version_opens_and_deduplicates(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = [
        observe("m1", "anonymous_id:a1", event="Viewed", t=1),
        observe("m2", "anonymous_id:a1", "email:p@x.io", traits={"plan": "pro"}, t=2),
        observe("m3", "user_id:u1", "email:p@x.io", event="Bought", t=3),
    ]
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        outcomes = await IdentityGraph(store, Rules.default()).ingest(first)
        before = await partition(store)
    finally:
        await store.close()
    make_previous_layout(data_dir)

    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        assert await partition(store) == before
        with closing(sqlite3.connect(data_dir / "c360.sqlite3")) as db:
            assert "profile_id" in columns(db, "events")
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            assert "links_b" not in names and "meta" in names

        again = await graph.ingest(first)
        assert [o.status for o in again] == ["duplicate"] * 3
        assert [o.profile_id for o in again] == [o.profile_id for o in outcomes]

        [new] = await graph.ingest([observe("m4", "user_id:u1", event="Returned", t=4)])
        assert new.status == "applied"
        [replayed] = await graph.ingest([observe("m4", "user_id:u1", event="Returned", t=4)])
        assert replayed.status == "duplicate" and replayed.profile_id == new.profile_id

        assert new.profile_id is not None
        events = await store.events([new.profile_id], first=10, after=None, types=None)
        assert [e.name for e in events[new.profile_id].items] == ["Returned", "Bought", "Viewed"]
    finally:
        await store.close()


async def test_a_data_dir_that_is_not_a_database_is_refused_and_left_unlocked(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "c360.sqlite3").write_bytes(b"not a database " * 100)
    with pytest.raises(StoreUnavailable, match="cannot open the embedded store"):
        await EmbeddedStore(data_dir).open()
    (data_dir / "c360.sqlite3").unlink()
    store = EmbeddedStore(data_dir)
    await store.open()
    await store.close()
