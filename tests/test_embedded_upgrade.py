"""A data directory written by the previous c360 (no journal, no copier mark, events
without their profile, every message in `messages`, the `links_b` index, the audit log and
API keys in the tables file) opens, keeps every customer, audit entry and key, and still
recognises the messages it saw; one that is not a database is refused with a clear error."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import msgpack  # type: ignore[import-untyped]
import pytest
from stores import OLD_PAGE_SIZE, older_page_sizes, page_size
from streams import observe, partition

from identity_graph.adapters.embedded import journal as embedded_journal
from identity_graph.adapters.embedded.journal import JOURNAL_FILE, TABLES_FILE
from identity_graph.adapters.embedded.sql import AUDIT_FILE, AUDIT_SCHEMA
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.errors import StoreUnavailable
from identity_graph.records import ApiKey, AuditEntry
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


async def test_files_with_the_4k_pages_of_older_versions_keep_them_and_new_files_get_bigger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    with older_page_sizes(monkeypatch):
        store = EmbeddedStore(old_dir)
        await store.open()
        try:
            graph = IdentityGraph(store, Rules.default())
            await graph.ingest([observe("m1", "anonymous_id:a1", "email:p@x.io", t=1)])
        finally:
            await store.close()
    for data_dir in (old_dir, new_dir):
        store = EmbeddedStore(data_dir)
        await store.open()
        try:
            graph = IdentityGraph(store, Rules.default())
            await graph.ingest([observe("m2", "user_id:u1", "email:p@x.io", event="Paid", t=2)])
            [pid] = store.partition.members
            [profile] = (await store.profiles([pid])).values()
            assert {r.identifier.key for r in profile.identifiers} >= {"user_id:u1", "email:p@x.io"}
            events = (await store.events([pid], first=5, after=None, types=None))[pid].items
            assert [e.name for e in events] == ["Paid"]
        finally:
            await store.close()
    assert page_size(old_dir / TABLES_FILE) == page_size(old_dir / JOURNAL_FILE) == OLD_PAGE_SIZE
    assert page_size(new_dir / TABLES_FILE) == embedded_journal.TABLES_PAGE_SIZE == 16384
    assert page_size(new_dir / JOURNAL_FILE) == embedded_journal.JOURNAL_PAGE_SIZE == 65536


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


def move_audit_to_tables_file(data_dir: Path, *, keep_copy: bool) -> None:
    """Put the audit log and API keys where the previous version kept them: in the tables
    file. `keep_copy` leaves the audit file as it was too (a crash after the move copied
    them but before it dropped the old tables)."""
    with closing(sqlite3.connect(data_dir / "c360.sqlite3", isolation_level=None)) as db:
        db.executescript(AUDIT_SCHEMA)
        db.execute("ATTACH DATABASE ? AS a", (str(data_dir / AUDIT_FILE),))
        db.execute("INSERT INTO main.audit SELECT * FROM a.audit")
        db.execute("INSERT INTO main.api_keys SELECT * FROM a.api_keys")
        db.execute("DETACH DATABASE a")
    if not keep_copy:
        for suffix in ("", "-wal", "-shm"):
            (data_dir / (AUDIT_FILE + suffix)).unlink(missing_ok=True)


@pytest.mark.parametrize("crashed_midway", [False, True], ids=["moved", "crashed-midway"])
async def test_the_audit_log_and_keys_move_from_the_tables_file_once(
    tmp_path: Path, crashed_midway: bool
) -> None:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    entries = [
        AuditEntry(f"a{i}", t, "ops@x.io", "support", "cust-1", ("email",)) for i in range(3)
    ]
    key = ApiKey("k1", "hash-1", "support", "desk", t)
    store = EmbeddedStore(tmp_path)
    await store.open()
    try:
        await store.records.append_audit(entries)
        await store.records.put_api_key(key)
    finally:
        await store.close()
    move_audit_to_tables_file(tmp_path, keep_copy=crashed_midway)

    for _ in range(2):  # a second start finds nothing left to move
        store = EmbeddedStore(tmp_path)
        await store.open()
        try:
            page = await store.records.audit_log(
                first=10, after=None, customer_id=None, count_up_to=None
            )
            assert [e.id for e in page.items] == ["a2", "a1", "a0"]
            assert page.items[0] == entries[2] and page.total == 3
            assert await store.records.api_key("hash-1") == key
        finally:
            await store.close()
        with closing(sqlite3.connect(tmp_path / "c360.sqlite3")) as db:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert not {"audit", "api_keys"} & names


async def test_journal_rows_an_older_version_left_uncopied_are_copied_as_they_were(
    tmp_path: Path,
) -> None:
    """Format 1 bodies (a bare list, JSON columns already text) from a c360 that stopped
    before its copier took them."""
    store = EmbeddedStore(tmp_path)
    await store.open()
    await store.close()
    t = 1_714_521_600_000_000
    body = msgpack.packb(
        [
            [
                (0, [("p9", t)]),
                (2, [("user_id:u9", "user_id", "p9", t, t, "web", None)]),
                (11, [("user_id:u9", "plan", '"pro"', "web", t, "m9")]),
                (
                    12,
                    [
                        (
                            "m9",
                            "user_id:u9",
                            "track",
                            "Paid",
                            "behavioural",
                            '{"cents":5}',
                            t,
                            "web",
                            "p9",
                        )
                    ],
                ),  # fmt: skip
            ]
        ]
    )
    with closing(sqlite3.connect(tmp_path / "journal.sqlite3", isolation_level=None)) as db:
        db.execute("INSERT INTO journal (seq, body) VALUES (1, ?)", (body,))

    store = EmbeddedStore(tmp_path)
    await store.open()
    try:
        assert store.partition.profile_of == {"user_id:u9": "p9"}
        traits = (await store.traits(["p9"]))["p9"]
        assert [(x.name, x.value) for x in traits] == [("plan", "pro")]
        events = (await store.events(["p9"], first=5, after=None, types=None))["p9"].items
        assert [(e.name, dict(e.properties)) for e in events] == [("Paid", {"cents": 5})]
    finally:
        await store.close()


async def test_a_journal_body_of_an_unknown_format_is_refused_clearly(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.open()
    await store.close()
    with closing(sqlite3.connect(tmp_path / "journal.sqlite3", isolation_level=None)) as db:
        body = msgpack.packb({"v": 99, "sets": []})
        db.execute("INSERT INTO journal (seq, body) VALUES (1, ?)", (body,))
    with pytest.raises(StoreUnavailable, match="unknown format 99"):
        await EmbeddedStore(tmp_path).open()


def drop_privacy_tables(data_dir: Path) -> None:
    """Take away what the privacy operations added: the suppression list, the erasure
    receipts and the indexes of messages and absorbed profiles by profile."""
    with closing(sqlite3.connect(data_dir / TABLES_FILE, isolation_level=None)) as db:
        db.execute("DROP TABLE suppressions")
        db.execute("DROP TABLE erasures")
        db.execute("DROP INDEX messages_profile")
        db.execute("DROP INDEX profiles_merged_into")


async def test_a_data_dir_from_before_erasure_gets_its_tables_and_erases_without_a_trace(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    person = [
        observe("m1", "email:erase.me@x.io", "anonymous_id:a1", traits={"name": "Ulla"}, t=1),
        observe("m2", "anonymous_id:a1", event="Viewed", properties={"ref": "kept-ref"}, t=2),
    ]
    other = [observe("m3", "email:stays@x.io", traits={"name": "Other"}, t=3)]
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        [outcome, _] = await IdentityGraph(store, Rules.default()).ingest(person)
        await IdentityGraph(store, Rules.default()).ingest(other)
    finally:
        await store.close()
    drop_privacy_tables(data_dir)

    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        assert not store.may_suppress
        graph = IdentityGraph(store, Rules.default())
        assert outcome.profile_id is not None
        receipt = await graph.erase(outcome.profile_id, reason="asked", actor="dpo")
        assert (receipt.identifiers, receipt.events, receipt.suppressed) == (2, 1, 2)
        assert store.may_suppress
        for value in ("erase.me@x.io", "Ulla", "kept-ref"):
            held = [f.name for f in data_dir.iterdir() if value.encode() in f.read_bytes()]
            assert held == [], value
        assert await store.profile_ids(["email:stays@x.io"])
    finally:
        await store.close()
    with closing(sqlite3.connect(data_dir / TABLES_FILE)) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"suppressions", "erasures", "messages_profile", "profiles_merged_into"} <= names
