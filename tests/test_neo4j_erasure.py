"""Erasure on Neo4j: no node or relationship keeps an erased value, suppressions keep hashes
only, retention deletes in batches, and an ingest racing an erasure brings nothing back."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from neo4j import AsyncGraphDatabase
from stores import make_store, neo4j_uri
from streams import at, observe

from identity_graph.adapters.neo4j.store import Neo4jStore
from identity_graph.adapters.neo4j.transaction import Neo4jWriteTx
from identity_graph.errors import InvalidOperation
from identity_graph.model import ConsentStatus, Event, EventCategory, MessageType, Observation
from identity_graph.privacy import Cutoffs
from identity_graph.records import AuditEntry
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph

pytestmark = pytest.mark.neo4j

ANN = ("email:ann.erased@x.io", "user_id:ann-erased-1", "anonymous_id:ann-erased-a")
BOB = ("email:bob.kept@x.io", "user_id:a-bob-kept-1")  # sorts before Ann's user id
SECOND = "anonymous_id:ann-second-a"
ANN_VALUES = (
    *ANN,
    SECOND,
    *(key.partition(":")[2] for key in (*ANN, SECOND)),
    "Ann Erased",
    "ann-sku-secret",
    "/ann-secret-path",
    "msg-ann-1",
    "msg-ann-2",
    "msg-ann-3",
    "msg-ann-4",
    "msg-ann-5",
    "msg-ann-7",
)
"""every value of Ann's that the store held: keys, raw values, traits, event properties and
message ids (all distinctive, so a substring search finds only hers). Not `msg-y-1`: that
message landed on a profile Bob absorbed, so its id is a message-id entry of Bob's."""


class Clock:
    def __init__(self) -> None:
        self.seconds = 1_000_000.0

    def __call__(self) -> Any:
        self.seconds += 1
        return at(self.seconds)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Neo4jStore]:
    s = await make_store("neo4j", tmp_path)
    assert isinstance(s, Neo4jStore)
    try:
        yield s
    finally:
        await s.close()


def service(store: Neo4jStore) -> IdentityGraph:
    return IdentityGraph(store, Rules.default(), clock=Clock())


async def everything(store: Neo4jStore) -> list[tuple[str, dict[str, Any]]]:
    """Every node's and relationship's labels (or type) and properties."""
    nodes = await store._read("MATCH (n) RETURN labels(n), properties(n)")
    rels = await store._read("MATCH ()-[r]->() RETURN [type(r)], properties(r)")
    return [(":".join(labels), props) for labels, props in [*nodes, *rels]]


def holding(found: list[tuple[str, dict[str, Any]]], values: tuple[str, ...]) -> list[str]:
    """The entities one of whose properties (as text: JSON, lists) contains one of `values`."""
    return [
        f"{what} {name}"
        for what, props in found
        for name, value in props.items()
        if any(v in str(value) for v in values)
    ]


async def people(graph: IdentityGraph) -> tuple[str, str]:
    """Bob, then Ann (merged from two profiles, traits, events, consent); Bob keeps a merge
    record and a conflict record naming keys of Ann's, which name neither Ann's profile nor
    one absorbed into it."""
    [b1] = await graph.ingest([observe("msg-bob-1", *BOB, t=0, traits={"name": "Bob Kept"})])
    assert b1.profile_id
    await graph.ingest(
        [
            observe("msg-ann-1", ANN[0], t=1, traits={"name": "Ann Erased"}),
            observe("msg-ann-2", ANN[1], t=2),
            observe("msg-ann-3", ANN[0], ANN[1], ANN[2], t=3),
            observe("msg-ann-4", ANN[2], t=4, event="Bought", properties={"sku": "ann-sku-secret"}),
            observe(
                "msg-ann-5", ANN[1], t=5, event="Viewed", properties={"path": "/ann-secret-path"}
            ),
            observe("msg-bob-2", BOB[1], t=6, event="Bought", properties={"sku": "bob-sku"}),
        ]
    )
    ann = (await graph.store.profile_ids([ANN[0]]))[ANN[0]]
    await graph.set_consent(ann, {"email_marketing": ConsentStatus.GRANTED}, source="web")
    # Bob absorbs a profile holding another identifier of Ann's, which is split off again
    # and joins Ann: Bob's merge record names it
    [y] = await graph.ingest([observe("msg-y-1", SECOND, t=7)])
    [m] = await graph.ingest([observe("msg-bob-3", BOB[0], SECOND, t=8)])
    assert m.merges and m.profile_id == b1.profile_id != y.profile_id
    await graph.unmerge(b1.profile_id, [SECOND], actor="ops")
    [j] = await graph.ingest([observe("msg-ann-7", ANN[0], SECOND, t=9)])
    assert j.profile_id == ann
    # a second user id breaks Bob's limit: Bob's conflict record names Ann's
    [c] = await graph.ingest([observe("msg-bob-4", BOB[1], ANN[1], t=10)])
    assert c.conflict is not None and c.profile_id == b1.profile_id
    conflicts = (await graph.store.conflicts([b1.profile_id]))[b1.profile_id]
    assert [x.dropped for x in conflicts] == [(ANN[1],)]
    history = (await graph.store.merge_history([b1.profile_id]))[b1.profile_id]
    assert any(SECOND in r.identifiers for r in history if r.absorbed == y.profile_id)
    return ann, b1.profile_id


async def test_an_erased_person_leaves_no_value_in_any_node_or_relationship(
    store: Neo4jStore,
) -> None:
    graph = service(store)
    ann, bob = await people(graph)
    before = await everything(store)
    assert holding(before, ANN_VALUES)  # the scan finds them while they are there
    bob_before = (
        await store.profiles([bob]),
        await store.traits([bob]),
        await store.events([bob], first=50, after=None, types=None),
        await store.consents([bob]),
    )

    receipt = await graph.erase(ann, reason="Art. 17 request", actor="admin:ops")

    after = await everything(store)
    assert holding(after, ANN_VALUES) == []
    assert (receipt.identifiers, receipt.events) == (4, 2)
    assert not any(
        props.get("customer_id") == ann or ann in str(props)
        for what, props in after
        if what != "Erasure"
    ), "only the receipt names the erased profile id"
    bob_after = (
        await store.profiles([bob]),
        await store.traits([bob]),
        await store.events([bob], first=50, after=None, types=None),
        await store.consents([bob]),
    )
    assert bob_after == bob_before
    assert (await store.profile_ids(list(BOB))).keys() == set(BOB)
    assert await store.erasure(ann) == receipt


async def test_suppressions_hold_hashes_and_nothing_else(store: Neo4jStore) -> None:
    graph = service(store)
    ann, _ = await people(graph)
    receipt = await graph.erase(ann, reason="request", actor="ops")
    suppressions = [props for what, props in await everything(store) if "Suppression" in what]
    assert {frozenset(s) for s in suppressions} == {frozenset({"hash", "kind", "erasure_id", "at"})}
    assert all(re.fullmatch("[0-9a-f]{64}", s["hash"]) for s in suppressions)
    assert {s["kind"] for s in suppressions} == {"email", "user_id", "anonymous_id", "message"}
    assert {s["erasure_id"] for s in suppressions} == {receipt.id}
    listed = await store.suppressions(first=100, after=None)
    assert len(listed.items) == listed.total == receipt.suppressed == 4
    assert not any(s.kind == "message" for s in listed.items)


async def test_a_replay_or_a_new_message_of_the_erased_brings_nothing_back(
    store: Neo4jStore,
) -> None:
    graph = service(store)
    ann, _ = await people(graph)
    await graph.erase(ann, reason="request", actor="ops")
    [replay, new] = await graph.ingest(
        [
            observe("msg-ann-1", ANN[0], t=0, traits={"name": "Ann Erased"}),
            observe("msg-ann-new", ANN[0], ANN[1], t=20, traits={"name": "Ann Erased"}),
        ]
    )
    assert (replay.status, new.status) == ("dropped", "dropped")
    assert await store.profile_ids(list(ANN)) == {}
    assert holding(await everything(store), ANN) == []


# --- retention -------------------------------------------------------------------------------


def counting_writes(owner: Any) -> list[str]:
    """Note each statement `owner` (the store or its records) runs in a write transaction
    of its own."""
    calls: list[str] = []
    write = owner._write

    async def counted(query: Any, **params: Any) -> list[list[Any]]:
        calls.append(query)
        return await write(query, **params)

    owner._write = counted
    return calls


def tracked(message_id: str, key: str, t: float, category: EventCategory) -> Observation:
    return Observation(
        message_id=message_id,
        timestamp=at(t),
        source="web",
        type=MessageType.TRACK,
        identifiers=(observe("x", key).identifiers[0],),
        event=Event(MessageType.TRACK, "Clicked", {"n": t}, category),
    )


async def test_expire_deletes_in_batches_of_their_own(store: Neo4jStore) -> None:
    graph = service(store)
    old = [tracked(f"old-{i}", "user_id:u", i, EventCategory.ENGAGEMENT) for i in range(7)]
    kept = [tracked(f"kept-{i}", "user_id:u", i, EventCategory.BEHAVIOURAL) for i in range(3)]
    new = [tracked(f"new-{i}", "user_id:u", 10_000 + i, EventCategory.ENGAGEMENT) for i in range(2)]
    identifies = [observe(f"ident-{i}", "user_id:u", t=i) for i in range(5)]
    await graph.ingest([*old, *kept, *new, *identifies])
    calls = counting_writes(store)
    cutoff = at(1_000)
    cutoffs = Cutoffs(
        events={c.value: cutoff if c is EventCategory.ENGAGEMENT else None for c in EventCategory},
        audit=None,
        profiles=None,
        messages=cutoff,
        conflicts=cutoff,
    )

    counts = await store.expire(cutoffs, batch=3)

    assert counts == {"events": 7, "messages": 5, "conflicts": 0}
    # 7 events: batches of 3, 3, 1; 5 + 3 kept events' message ids read: 3, 3, 2; conflicts: 1
    assert len(calls) == 3 + 3 + 1
    pid = (await store.profile_ids(["user_id:u"]))["user_id:u"]
    page = (await store.events([pid], first=50, after=None, types=None))[pid]
    assert sorted(e.message_id for e in page.items) == [
        *(e.message_id for e in kept),
        "new-0",
        "new-1",
    ]
    messages = {m for [m] in await store._read("MATCH (m:Message) RETURN m.id")}
    assert messages == {"kept-0", "kept-1", "kept-2", "new-0", "new-1"}
    assert await store.expire(cutoffs, batch=3) == {"events": 0, "messages": 0, "conflicts": 0}


async def test_expire_audit_deletes_in_batches(store: Neo4jStore) -> None:
    entries = [AuditEntry(f"a{i}", at(i), "p", "admin", "c1", ()) for i in range(10)]
    await store.records.append_audit(entries)
    calls = counting_writes(store.records)
    assert await store.records.expire_audit(at(5), batch=2) == 5
    assert len(calls) == 3
    page = await store.records.audit_log(first=50, after=None, customer_id=None)
    assert sorted(e.id for e in page.items) == [f"a{i}" for i in range(5, 10)]


async def test_inactive_profiles_in_id_order(store: Neo4jStore) -> None:
    graph = service(store)
    outcomes = await graph.ingest([observe(f"m{i}", f"user_id:p{i}", t=i * 1000) for i in range(6)])
    ids = sorted(o.profile_id for o in outcomes if o.profile_id)
    idle = sorted(o.profile_id for o in outcomes[:3] if o.profile_id)
    assert await store.inactive_profiles(before=at(2500), first=10, after=None) == idle
    assert await store.inactive_profiles(before=at(2500), first=2, after=None) == idle[:2]
    assert await store.inactive_profiles(before=at(2500), first=10, after=idle[1]) == idle[2:]
    assert len(ids) == 6


# --- an ingest racing an erasure -------------------------------------------------------------


@pytest.fixture
async def second(store: Neo4jStore) -> AsyncIterator[Neo4jStore]:
    """Another store on the same database, with its own driver, as another process has."""
    other = Neo4jStore(neo4j_uri(), auth=None, max_retry_time=30.0)
    await other.open()
    try:
        yield other
    finally:
        await other.close()


def pause_after(
    monkeypatch: pytest.MonkeyPatch, name: str, until: asyncio.Event, reached: asyncio.Event
) -> None:
    """Make the first call of the transaction method `name` wait for `until` once it has
    run (and set `reached`)."""
    original: Callable[..., Awaitable[Any]] = getattr(Neo4jWriteTx, name)
    first = True

    async def paused(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal first
        result = await original(self, *args, **kwargs)
        if first:
            first = False
            reached.set()
            await until.wait()
        return result

    monkeypatch.setattr(Neo4jWriteTx, name, paused)


async def test_an_ingest_that_checked_suppression_before_the_erasure_committed_runs_again(
    store: Neo4jStore, second: Neo4jStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest reads the suppression list, the erasure commits, then the ingest takes its
    locks: the snapshot reads the hashes again, sees them suppressed and the store reruns the
    ingest, which now drops Ann's identifiers."""
    graph = service(store)
    ann, _ = await people(graph)
    erased, checked = asyncio.Event(), asyncio.Event()
    pause_after(monkeypatch, "suppressed", erased, checked)
    ingest = asyncio.create_task(
        service(second).ingest([observe("late", ANN[0], "device_id:late-device", t=50)])
    )
    await checked.wait()
    await graph.erase(ann, reason="request", actor="ops")
    erased.set()
    [outcome] = await ingest
    assert await store.profile_ids(list(ANN)) == {}
    assert outcome.status == "applied"
    assert (await store.profile_ids(["device_id:late-device"])).keys() == {"device_id:late-device"}
    assert holding(await everything(store), ANN) == []


@pytest.mark.parametrize("suppress", [True, False], ids=["suppressed", "not-suppressed"])
async def test_an_ingest_waiting_on_the_erased_profile(
    store: Neo4jStore, second: Neo4jStore, monkeypatch: pytest.MonkeyPatch, suppress: bool
) -> None:
    """The erasure has deleted Ann (not committed yet) when the ingest takes its snapshot:
    the ingest waits for Ann's profile lock. After the commit it finds her keys suppressed
    and runs again without them; or, erased without suppression, it makes a new profile of
    them (nothing of the old one)."""
    graph = service(store)
    ann, _ = await people(graph)
    go_on, deleted = asyncio.Event(), asyncio.Event()
    pause_after(monkeypatch, "_erase", go_on, deleted)
    erasure = asyncio.create_task(
        graph.erase(ann, reason="request", actor="ops", suppress=suppress)
    )
    await deleted.wait()
    ingest = asyncio.create_task(
        service(second).ingest([observe("late", ANN[0], "device_id:late-device", t=50)])
    )
    await asyncio.sleep(0.5)  # the ingest is waiting for Ann's profile lock by now
    assert not ingest.done()
    go_on.set()
    await erasure
    [outcome] = await ingest
    assert outcome.status == "applied" and outcome.profile_id != ann
    owners = await store.profile_ids([*ANN, "device_id:late-device"])
    if suppress:
        assert owners == {"device_id:late-device": outcome.profile_id}
        assert holding(await everything(store), ANN) == []
    else:
        assert owners == {ANN[0]: outcome.profile_id, "device_id:late-device": outcome.profile_id}
        [profile] = (await store.profiles([outcome.profile_id])).values()
        assert {r.identifier.key for r in profile.identifiers} == {ANN[0], "device_id:late-device"}
        assert (await store.traits([outcome.profile_id]))[outcome.profile_id] == []


async def test_concurrent_ingests_and_erasures_never_resurrect(
    store: Neo4jStore, second: Neo4jStore
) -> None:
    """Unpaused, many times: whichever commits first, Ann's keys are gone at the end."""
    for round in range(8):
        await store.wipe()
        graph = service(store)
        ann, _ = await people(graph)
        late = [observe(f"late-{round}-{i}", ANN[i % 3], f"device_id:d{i}", t=50) for i in range(4)]
        results = await asyncio.gather(
            graph.erase(ann, reason="request", actor="ops"),
            *(service(second).ingest([o]) for o in late),
        )
        assert results[0].customer_id == ann
        assert await store.profile_ids(list(ANN)) == {}, f"round {round}"
        assert holding(await everything(store), ANN) == []


async def test_erasure_receipts_and_unknown_cursor(store: Neo4jStore) -> None:
    graph = service(store)
    ann, _ = await people(graph)
    receipt = await graph.erase(ann, reason="request", actor="ops")
    assert await store.erasure(receipt.id) == receipt
    assert await store.erasure("nobody") is None
    with pytest.raises(InvalidOperation, match="cursor"):
        await store.suppressions(first=10, after="f" * 64)
    first = await store.suppressions(first=2, after=None)
    rest = await store.suppressions(first=10, after=first.cursor)
    assert [*first.items, *rest.items] == sorted(
        [*first.items, *rest.items], key=lambda s: (s.at, s.hash)
    )
    assert len(first.items) + len(rest.items) == 4


async def test_a_driver_of_its_own_sees_the_same(store: Neo4jStore) -> None:
    """The scan does not depend on the store's own session (bookmarks): a fresh driver sees
    the erased values gone as well."""
    graph = service(store)
    ann, _ = await people(graph)
    await graph.erase(ann, reason="request", actor="ops")
    async with AsyncGraphDatabase.driver(neo4j_uri(), auth=None) as driver:
        records, _, _ = await driver.execute_query("MATCH (n) RETURN properties(n) AS p")
    assert not any(v in str(r["p"]) for r in records for v in ANN_VALUES)
