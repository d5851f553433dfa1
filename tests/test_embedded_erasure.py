"""Erasure and retention on the embedded store: not one byte of an erased value is left in
any file of the data directory once the call returns; a kill -9 at any point leaves the
person wholly there or wholly gone, and a retry (or the restart itself) finishes; ingest
goes on while an erasure waits for the copier; retention deletes physically, in batches.

Run as a script, this file is the eraser of the crash tests: it ingests `people()`, erases
the first person and stops at the point it is told, printing `POINT` there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gated import GatedStore
from stores import reopened
from streams import T0, at, observe

from identity_graph.adapters.embedded import journal as embedded_journal
from identity_graph.adapters.embedded import maintenance
from identity_graph.adapters.embedded.commit import GroupCommit
from identity_graph.adapters.embedded.journal import TABLES_FILE
from identity_graph.adapters.embedded.sql import WindowWriter, change_rows, create_tables
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.errors import InvalidOperation, NotFound
from identity_graph.model import (
    EventCategory,
    Identifier,
    MessageType,
    Observation,
    StoredEvent,
    TraitValue,
)
from identity_graph.privacy import Erasure, ErasureScope, RetentionPolicy
from identity_graph.records import AuditEntry
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import ChangeSet, IdentifierSighting

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = 6
SHARED_DEVICE = "device_id:dev-shared-0042"
"""used by person 0, then by person 1, whose user id keeps it out of their profile: a
conflict record of person 1 names it"""


def keys_of(p: int) -> list[str]:
    return [f"email:person{p}@mail.test", f"phone:+1555000010{p}", f"user_id:user-erasable-{p}"]


def values_of(p: int) -> list[str]:
    """What must go with person `p`: each identifier's value, a trait value (a name with a
    character JSON escapes) and the property values of their events."""
    return [
        *(key.partition(":")[2] for key in keys_of(p)),
        f"Zoë Person{p}",
        f"secret-sku-{p}-",
    ]


def people(events: int = 12) -> list[Observation]:
    """`PEOPLE` people, each with identifiers, a name and `events` track calls; persons 0
    and 1 share a device."""
    out: list[Observation] = []
    for p in range(PEOPLE):
        keys = keys_of(p)
        out.append(observe(f"id-{p}", *keys, t=p, traits={"name": f"Zoë Person{p}"}))
        for n in range(events):
            out.append(
                observe(
                    f"ev-{p}-{n}",
                    keys[n % len(keys)],
                    t=100 + n,
                    event="Bought",
                    properties={"sku": f"secret-sku-{p}-{n}", "n": n},
                )
            )
    out.append(observe("dev-0", keys_of(0)[2], SHARED_DEVICE, t=200))
    out.append(observe("dev-1", keys_of(1)[2], SHARED_DEVICE, t=201, traits={"seen": True}))
    return out


def files_holding(data_dir: Path, value: str) -> list[str]:
    """The files of `data_dir` holding `value`, as UTF-8 or as JSON writes it escaped."""
    forms = {value.encode(), json.dumps(value)[1:-1].encode()}
    return sorted(
        f.name
        for f in data_dir.iterdir()
        if f.is_file() and any(form in f.read_bytes() for form in forms)
    )


def check_no_trace(data_dir: Path, erased: int) -> None:
    for value in [*values_of(erased), SHARED_DEVICE.partition(":")[2]]:
        assert files_holding(data_dir, value) == [], value
    for p in range(PEOPLE):
        if p != erased:
            for value in values_of(p):
                assert files_holding(data_dir, value), value


async def profile_of(store: EmbeddedStore, p: int) -> str:
    found = await store.profile_ids(keys_of(p))
    assert len(set(found.values())) == 1 and len(found) == len(keys_of(p))
    return next(iter(found.values()))


# --- 1. no byte left --------------------------------------------------------------------


async def test_an_erased_persons_values_are_in_no_file_of_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        await graph.ingest(people())
        victim = await profile_of(store, 0)
        other = await profile_of(store, 1)
        assert (await store.conflicts([other]))[other], "the shared device made no conflict"
        for value in values_of(0):
            assert files_holding(data_dir, value), value

        receipt = await graph.erase(victim, reason="asked by the customer", actor="dpo")

        assert (receipt.identifiers, receipt.events, receipt.suppressed) == (4, 12, 4)
        check_no_trace(data_dir, erased=0)
        assert await store.profile_ids([*keys_of(0), SHARED_DEVICE]) == {}
        assert (await store.conflicts([other]))[other] == []  # it named the device
        assert await store.erasure(victim) == receipt == await store.erasure(receipt.id)
        # a replay of their messages, or a new one with their identifiers, brings nothing back
        outcomes = await graph.ingest(people())
        assert [o.message_id for o in outcomes if o.status == "applied"] == []
        assert await store.profile_ids([*keys_of(0), SHARED_DEVICE]) == {}
        check_no_trace(data_dir, erased=0)
    finally:
        await store.close()
    check_no_trace(data_dir, erased=0)


async def test_an_absorbed_id_erases_the_profile_it_joined_and_its_merge_records(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        await graph.ingest(people())
        [first] = await graph.ingest([observe("late-1", "anonymous_id:anon-late-77", t=300)])
        absorbed = first.profile_id
        [joined] = await graph.ingest(
            [observe("late-2", "anonymous_id:anon-late-77", keys_of(0)[0], t=301)]
        )
        assert joined.merges and absorbed is not None
        victim = await profile_of(store, 0)
        assert absorbed != victim

        receipt = await graph.erase(absorbed, reason="asked", actor="dpo")

        assert receipt.customer_id == victim
        assert await store.resolve_profiles([absorbed, victim]) == {}
        assert (await store.merge_history([victim, absorbed])) == {victim: [], absorbed: []}
        check_no_trace(data_dir, erased=0)
        assert files_holding(data_dir, "anon-late-77") == []
    finally:
        await store.close()


def test_rows_a_copy_window_holds_back_are_written_before_an_erasure_deletes(
    tmp_path: Path,
) -> None:
    """A copy window holds new rows back to sort them; an erasure in the same window runs
    them first, so that it deletes them too."""
    key = keys_of(0)[0]
    written = ChangeSet(
        new_profiles=[("p0", at(0))],
        sightings=[IdentifierSighting(key, "p0", at(0), "web", True)],
        traits=[TraitValue("name", "Zoë Person0", "web", at(0), "m1", key)],
        events=[
            StoredEvent(
                "m1", key, MessageType.TRACK, "Bought", EventCategory.ENGAGEMENT, {}, at(0), "web"
            )
        ],
        messages=[("m1", "p0", at(0))],
    )
    scope = ErasureScope("p0", ("p0",), (key,), ("m1",), 1)
    erased = ChangeSet(erasures=[Erasure("e1", scope, at(1), "asked", "dpo")])
    with closing(sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)) as db:
        create_tables(db)
        db.execute("BEGIN")
        window = WindowWriter(db)
        window.write(change_rows(written))
        assert window.held, "the window held no row back"
        window.write(change_rows(erased))
        window.finish()
        db.execute("COMMIT")
        for table in ("identifiers", "events", "traits", "profiles", "messages"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        assert db.execute("SELECT customer_id FROM erasures").fetchall() == [("p0",)]


# --- 2. kill -9 anywhere ------------------------------------------------------------------

POINTS = ("before-commit", "journalled", "copied", "mid-purge")
"""where the eraser stops to be killed: while the erasure's journal row is being committed;
once it is journalled but not copied (no copier runs); once the tables hold it but nothing
was purged; between deleting the journal rows and truncating the write-ahead logs (in a
purge the store runs itself, as it does when no copier runs)"""


def stop_here() -> None:
    print("POINT", flush=True)
    time.sleep(3600)


async def erase_until(point: str, data_dir: Path) -> None:
    """Ingest `people()`, erase person 0, and stop at `point` (`POINTS`)."""
    store = EmbeddedStore(data_dir)
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    await graph.ingest(people())
    victim = await profile_of(store, 0)
    await store.settle()
    if point == "before-commit":
        append = GroupCommit.append

        def stopping_append(self: GroupCommit, rows: Any, copied: int) -> None:
            stop_here()
            append(self, rows, copied)

        GroupCommit.append = stopping_append  # type: ignore[method-assign]
    elif point == "journalled":
        await store._copier.stop()  # and none starts again

        async def stopping_purge() -> None:
            stop_here()

        store.purge = stopping_purge  # type: ignore[method-assign]
    elif point == "copied":

        async def settled_purge() -> None:
            await store.settle()
            stop_here()

        store.purge = settled_purge  # type: ignore[method-assign]
    else:

        async def no_copier(mark: int) -> bool:
            return False  # the store purges by itself

        def stopping_purge_copied(
            journal: sqlite3.Connection, tables: sqlite3.Connection, request: int
        ) -> bool:
            mark = embedded_journal.copied_mark(tables)
            journal.execute("DELETE FROM journal WHERE seq <= ?", (mark,))
            stop_here()
            return False

        store._copier.purged = no_copier  # type: ignore[method-assign]
        maintenance.purge_copied = stopping_purge_copied
    await graph.erase(victim, reason="asked", actor="dpo")
    print("RETURNED", flush=True)


def kill_at(point: str, data_dir: Path) -> None:
    """Run the eraser until it reaches `point`, then SIGKILL it and its copier."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen(
        [sys.executable, __file__, point, str(data_dir)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        said = proc.stdout.readline().strip()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert said == "POINT", f"the eraser said {said!r}"


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
async def test_a_kill_during_an_erasure_leaves_the_person_or_no_trace(
    tmp_path: Path, point: str
) -> None:
    data_dir = tmp_path / "data"
    kill_at(point, data_dir)
    async with reopened(data_dir) as store:
        found = await store.profile_ids([*keys_of(0), SHARED_DEVICE])
        if point == "before-commit":
            assert len(found) == 4 and len(set(found.values())) == 1, "not wholly there"
            victim = next(iter(found.values()))
            pages = await store.events(
                [victim], first=100, after=None, types=None, count_up_to=None
            )
            assert pages[victim].total == 12
            receipt = await IdentityGraph(store, Rules.default()).erase(
                victim, reason="asked again", actor="dpo"
            )
            assert receipt.events == 12
        else:
            assert found == {}, "not wholly gone"
            receipts = sqlite_rows(data_dir / TABLES_FILE, "SELECT count(*) FROM erasures")
            assert receipts == [(1,)]
        check_no_trace(data_dir, erased=0)
        assert await store.profile_ids(keys_of(1))


def sqlite_rows(path: Path, query: str) -> list[Any]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


# --- 3. ingest goes on --------------------------------------------------------------------


HANG_GUARD_SECONDS = 30
"""a write blocked for good fails the test after this, instead of hanging it"""


async def test_ingest_goes_on_while_an_erasure_waits_for_the_copier(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "data")
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        await graph.ingest(people())
        victim = await profile_of(store, 0)
        await store._copier.stop()
        store._copier._closing = False
        store.copier_allowed = False
        # the victim's latest write is not in the tables: the erasure waits for the copier
        await graph.ingest([observe("late-0", keys_of(0)[0], t=400, event="Late")])
        erasing = asyncio.ensure_future(graph.erase(victim, reason="asked", actor="dpo"))
        await asyncio.sleep(0.05)
        assert not erasing.done()

        # others are written meanwhile (a write lock held until the copier runs would hang
        # them: the guard fails the test instead), and so is the victim, erased with the rest
        others = await asyncio.wait_for(
            graph.ingest(
                [observe(f"new-{n}", f"email:newcomer{n}@mail.test", t=500 + n) for n in range(5)]
            ),
            HANG_GUARD_SECONDS,
        )
        more = await asyncio.wait_for(
            graph.ingest([observe("later-0", keys_of(0)[1], t=401, event="Later")]),
            HANG_GUARD_SECONDS,
        )
        assert {o.status for o in [*others, *more]} == {"applied"}
        assert not erasing.done(), "the erasure did not wait for the copier"

        store.copier_allowed = True
        receipt = await erasing
        assert receipt.events == 14
        assert await store.profile_ids([*keys_of(0), SHARED_DEVICE]) == {}
        found = await store.profile_ids([f"email:newcomer{n}@mail.test" for n in range(5)])
        assert len(found) == 5
        check_no_trace(store.data_dir, erased=0)
    finally:
        await store.close()


async def test_an_erasure_of_someone_unknown_or_erased_says_so(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        await graph.ingest(people(events=1))
        victim = await profile_of(store, 0)
        receipt = await graph.erase(victim, reason="asked", actor="dpo", purge=False)
        with pytest.raises(InvalidOperation, match=receipt.id):
            await graph.erase(victim, reason="asked", actor="dpo")
        with pytest.raises(NotFound):
            await graph.erase("nobody", reason="asked", actor="dpo")
        await store.purge()
        check_no_trace(store.data_dir, erased=0)
        # lifting a suppression lets the identifier come back
        email = Identifier.from_key(keys_of(0)[0])
        assert await graph.unsuppress(email)
        assert not await graph.unsuppress(email)
        page = await store.suppressions(first=10, after=None)
        assert page.total == 3 and len(page.items) == 3
        [back] = await graph.ingest([observe("back", keys_of(0)[0], keys_of(0)[1], t=900)])
        assert back.status == "applied"
        assert set(await store.profile_ids(keys_of(0))) == {keys_of(0)[0]}
    finally:
        await store.close()
    async with reopened(tmp_path / "data") as store:
        assert store.may_suppress
        assert (await store.suppressions(first=10, after=None)).total == 3


# --- 4. retention -------------------------------------------------------------------------

NOW = T0 + timedelta(days=400)
RETENTION = RetentionPolicy.from_text(
    """
[events]
days = 30
[audit]
days = 30
[profiles]
inactive_days = 200
[messages]
days = 90
[conflicts]
days = 365
"""
)


def counting_transactions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that begin a transaction on retention's connections, from now on."""
    begun: list[str] = []
    connect = embedded_journal.connect

    def traced(path: Path, **options: Any) -> sqlite3.Connection:
        db = connect(path, **options)
        db.set_trace_callback(lambda s: begun.append(s) if s.startswith("BEGIN") else None)
        return db

    monkeypatch.setattr(maintenance, "connect", traced)
    return begun


async def test_retention_deletes_old_records_physically_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default(), clock=lambda: NOW)
        await graph.ingest(people(events=12))  # all of it a year old
        recent = (NOW - T0).total_seconds() - 86_400
        fresh = [
            observe(
                f"fresh-{p}-{n}",
                keys_of(p)[0],
                t=recent + n,
                event="Fresh",
                properties={"kept": f"fresh-value-{p}-{n}"},
            )
            for p in range(1, PEOPLE)
            for n in range(3)
        ]
        await graph.ingest(fresh)
        old_entry = AuditEntry("a-old", T0, "someone", "admin", "c1", ("email",))
        new_entry = AuditEntry("a-new", NOW, "someone", "admin", "c1", ("email",))
        await store.records.append_audit([old_entry, new_entry])
        begun = counting_transactions(monkeypatch)

        report = await graph.apply_retention(RETENTION, records=store.records, batch=4)

        # every old event: person 0's 12 went with their inactive profile, the others' 60
        # by age; every identify message (persons 0-5, the two devices) and the conflict
        assert (report.events, report.profiles, report.identifiers) == (72, 1, 4)
        assert (report.messages, report.conflicts, report.audit) == (PEOPLE + 2, 1, 1)
        assert len(begun) >= 60 // 4, "the events were not deleted in batches"
        for p in range(1, PEOPLE):
            pid = await profile_of(store, p)
            page = (await store.events([pid], first=100, after=None, types=None))[pid]
            assert sorted(e.message_id for e in page.items) == [f"fresh-{p}-{n}" for n in range(3)]
            assert files_holding(data_dir, f"secret-sku-{p}-") == []
            assert files_holding(data_dir, f"fresh-value-{p}-0") == ["c360.sqlite3"]
        assert await store.profile_ids(keys_of(0)) == {}
        for value in values_of(0):
            assert files_holding(data_dir, value) == [], value
        log = await store.records.audit_log(first=10, after=None, customer_id=None)
        assert [e.id for e in log.items] == ["a-new"]
        # an inactive profile is erased without suppression: the person may come back
        [back] = await graph.ingest([observe("back-0", keys_of(0)[0], t=recent)])
        assert back.status == "applied"
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(erase_until(sys.argv[1], Path(sys.argv[2])))
