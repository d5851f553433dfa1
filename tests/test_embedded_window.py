"""A copy window (many journalled writes in one transaction, some statements held back and
run sorted at the end) leaves the tables exactly as copying the writes one by one does."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from streams import observe

from identity_graph.adapters.embedded import commit as embedded_commit
from identity_graph.adapters.embedded.sql import Rows, WindowWriter, create_tables, write_rows
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.model import ConsentStatus, MergeKind
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import ChangeSet

TABLES = ("profiles", "identifiers", "links", "merges", "conflicts", "traits", "events",
          "consents", "messages")  # fmt: skip


def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Rows]:
    """The rows of every change set the embedded store journals from now on."""
    written: list[Rows] = []
    change_rows = embedded_commit.change_rows

    def record(c: ChangeSet) -> Rows:
        rows = change_rows(c)
        written.append(rows)
        return rows

    monkeypatch.setattr(embedded_commit, "change_rows", record)
    return written


async def journalled_writes(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[Rows]:
    """The rows of every change set of a history with re-sightings, merges, an undo that
    removes links which are then seen again, a split, consent, replayed messages and an
    event under a message id seen before. It starts with a merge of profiles whose
    identifiers are all new to the window, and consent for the merged profile."""
    written = recorded(monkeypatch)
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        await graph.ingest([observe("b1", "anonymous_id:b1", t=0.1)])
        await graph.ingest([observe("b2", "email:b@example.com", "user_id:ub", t=0.2)])
        merged = await graph.ingest([observe("b3", "anonymous_id:b1", "user_id:ub", t=0.3)])
        assert merged[0].merges and merged[0].profile_id is not None
        await graph.set_consent(
            merged[0].profile_id, {"analytics": ConsentStatus.DENIED}, source="web"
        )
        await graph.ingest([observe("m1", "anonymous_id:a1", t=1, event="Viewed")])
        await graph.ingest(
            [
                observe("m2", "anonymous_id:a1", "email:x@example.com", t=2, traits={"p": 1}),
                observe("m3", "anonymous_id:a2", "user_id:u1", t=3, source="ios"),
                observe("m1", "anonymous_id:a1", t=4, event="Again"),
            ]
        )
        outcomes = await graph.ingest(
            [observe("m4", "email:x@example.com", "user_id:u1", t=5, traits={"p": 2})]
        )
        merge = outcomes[0].merges[0]
        undo = await graph.undo_merge(merge, actor="ops")
        assert undo.kind is MergeKind.UNDO
        await graph.ingest(
            [
                observe("m5", "email:x@example.com", "user_id:u1", t=6, event="Joined"),
                observe("m6", "anonymous_id:a2", t=7, source="ios", event="Tapped"),
            ]
        )
        profile = outcomes[0].profile_id
        assert profile is not None
        await graph.unmerge(profile, ["anonymous_id:a2"], actor="ops")
        await graph.set_consent(profile, {"analytics": ConsentStatus.GRANTED}, source="web")
        await graph.ingest([observe("m7", "anonymous_id:a2", "device_id:d1", t=8)])
    finally:
        await store.close()
    return written


def table_contents(db: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def same_tables_one_by_one_and_in_one_window(written: list[Rows], tmp_path: Path) -> None:
    """Copy `written` one change set at a time and all in one window: the tables must be
    equal, and equal to the store's own (in `tmp_path / "store"`)."""
    with (
        closing(sqlite3.connect(tmp_path / "one_by_one.sqlite3", isolation_level=None)) as a,
        closing(sqlite3.connect(tmp_path / "window.sqlite3", isolation_level=None)) as b,
    ):
        create_tables(a)
        create_tables(b)
        for rows in written:
            write_rows(a, rows)
        window = WindowWriter(b)
        b.execute("BEGIN")
        for rows in written:
            window.write(rows)
        window.finish()
        b.execute("COMMIT")
        expected = table_contents(a)
        assert table_contents(b) == expected
        with closing(sqlite3.connect(tmp_path / "store" / "c360.sqlite3")) as stored:
            assert table_contents(stored) == expected


async def test_one_window_writes_what_copies_one_by_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = await journalled_writes(tmp_path / "store", monkeypatch)
    statements = {index for rows in written for index, _ in rows}
    assert {6, 7, 12, 15} <= statements  # links removed and added, events, widening
    same_tables_one_by_one_and_in_one_window(written, tmp_path)
    with closing(sqlite3.connect(tmp_path / "store" / "c360.sqlite3")) as stored:
        expected = table_contents(stored)
    assert expected["links"] and expected["events"] and expected["consents"]


async def test_digests_stored_by_key_follow_the_new_identifiers_of_their_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window holds new identifiers back; a re-hash's digests, stored by key, must not
    run before the insert of an identifier in the same window."""
    written = recorded(monkeypatch)
    store = EmbeddedStore(tmp_path / "store")
    await store.open()
    try:
        await IdentityGraph(store, Rules.default()).ingest([observe("m1", "device_id:d1")])
        keyed = IdentityGraph(store, Rules.default(), digest=lambda value: f"d({value})")
        assert await keyed.rehash() == 1
    finally:
        await store.close()
    assert [index for rows in written for index, _ in rows].count(16) == 1
    same_tables_one_by_one_and_in_one_window(written, tmp_path)
    with closing(sqlite3.connect(tmp_path / "store" / "c360.sqlite3")) as stored:
        assert stored.execute("SELECT digest FROM identifiers").fetchall() == [("d(d1)",)]


async def test_json_values_msgpack_cannot_hold_are_journalled_as_text(tmp_path: Path) -> None:
    big = 2**70
    store = EmbeddedStore(tmp_path)
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        await graph.ingest(
            [
                observe("m1", "user_id:u1", t=1, traits={"big": big, "plan": "pro"}),
                observe("m2", "user_id:u1", t=2, event="Paid", properties={"cents": big}),
                observe("m3", "user_id:u1", t=3, event="Viewed", properties={"path": "/é"}),
            ]
        )
        pid = store.partition.profile_of["user_id:u1"]
        traits = (await store.traits([pid]))[pid]
        events = (await store.events([pid], first=10, after=None, types=None))[pid].items
    finally:
        await store.close()
    assert {t.name: t.value for t in traits} == {"big": big, "plan": "pro"}
    assert [dict(e.properties) for e in events] == [{"path": "/é"}, {"cents": big}]
    with closing(sqlite3.connect(tmp_path / "c360.sqlite3")) as db:
        stored = db.execute("SELECT properties FROM events ORDER BY ts").fetchall()
    assert stored == [(f'{{"cents":{big}}}',), ('{"path":"/\\u00e9"}',)]
