"""Computed traits and audiences on every adapter: the audience store port (`store.audiences`),
then the engine keeping memberships live over the real identity store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest
from streams import at, observe

from identity_graph.audiences import engine as engine_module
from identity_graph.audiences.engine import AudienceEngine
from identity_graph.audiences.store import (
    Audience,
    AudienceChange,
    AudienceStore,
    ChangeKind,
    ComputedTrait,
    Membership,
    Status,
)
from identity_graph.errors import InvalidOperation
from identity_graph.model import ConsentStatus, MessageType, Observation
from identity_graph.privacy import RetentionPolicy
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore

T = at(0)
ENTERED, EXITED = ChangeKind.ENTERED, ChangeKind.EXITED


def audiences_of(store: IdentityStore) -> AudienceStore:
    found: AudienceStore = store.audiences  # type: ignore[attr-defined]
    return found


def audience(aid: str, name: str, *, size: int = 0, status: Status = Status.READY) -> Audience:
    condition = {"identifier": {"kind": "email"}}
    return Audience(aid, name, condition, None, status, T, None, 0.0, size)


class Changes:
    """Changes with time-ordered ids, one second apart."""

    def __init__(self) -> None:
        self.n = count()

    def __call__(self, aid: str, cid: str, kind: ChangeKind) -> AudienceChange:
        n = next(self.n)
        return AudienceChange(f"c{n:04d}", aid, cid, kind, T + timedelta(seconds=n))


# --- the port -------------------------------------------------------------------------------


async def test_computed_traits_are_stored_replaced_and_deleted(store: IdentityStore) -> None:
    aud = audiences_of(store)
    assert await aud.computed_traits() == []
    spend = ComputedTrait("spend", {"kind": "sum", "event": "Order", "property": "total"}, T, T)
    visits = ComputedTrait("visits", {"kind": "event_count", "type": "PAGE"}, T, T)
    await aud.put_computed_trait(visits)
    await aud.put_computed_trait(spend)
    assert await aud.computed_traits() == [spend, visits]
    later = T + timedelta(days=1)
    changed = ComputedTrait(
        "spend", {"kind": "max", "event": "Order", "property": "total"}, T, later
    )
    await aud.put_computed_trait(changed)
    assert await aud.computed_traits() == [changed, visits]
    assert await aud.delete_computed_trait("spend")
    assert not await aud.delete_computed_trait("spend")
    assert await aud.computed_traits() == [visits]


async def test_audiences_are_listed_by_name_and_keep_their_counted_size(
    store: IdentityStore,
) -> None:
    aud = audiences_of(store)
    await aud.put_audience(audience("a2", "zebras", status=Status.BUILDING))
    await aud.put_audience(audience("a1", "ants", size=99))
    listed = await aud.audiences()
    assert [(a.id, a.name, a.size) for a in listed] == [("a1", "ants", 0), ("a2", "zebras", 0)]
    assert listed[1].status is Status.BUILDING and listed[1].built_at is None
    assert listed[0].condition == {"identifier": {"kind": "email"}}
    change = Changes()
    assert await aud.record([change("a1", "p1", ENTERED), change("a1", "p2", ENTERED)]) == 2
    built = T + timedelta(hours=1)
    condition = {"trait": {"name": "x", "op": "eq", "value": 1}}
    ready = Audience("a1", "ants", condition, "advertising", Status.READY, T, built, 1.0, 0)
    await aud.put_audience(ready)
    [stored, _] = await aud.audiences()
    assert stored == Audience(
        "a1", "ants", condition, "advertising", Status.READY, T, built, 1.0, 2
    )


async def test_record_applies_only_effective_changes(store: IdentityStore) -> None:
    aud = audiences_of(store)
    await aud.put_audience(audience("a1", "one"))
    await aud.put_audience(audience("a2", "two"))
    change = Changes()
    first = [
        change("a1", "p1", ENTERED),
        change("a1", "p2", ENTERED),
        change("a2", "p1", ENTERED),
        change("a1", "p1", ENTERED),  # again, in the same call
        change("a2", "p3", EXITED),  # never a member
        change("gone", "p1", ENTERED),  # no such audience
    ]
    assert await aud.record(first) == 3
    assert await aud.record([change("a1", "p2", ENTERED), change("a1", "p9", EXITED)]) == 0
    assert await aud.record([]) == 0
    sizes = {a.id: a.size for a in await aud.audiences()}
    assert sizes == {"a1": 2, "a2": 1}
    reentry = [change("a1", "p1", EXITED), change("a1", "p1", ENTERED)]
    assert await aud.record(reentry) == 2
    assert await aud.record([change("a1", "p2", EXITED)]) == 1
    sizes = {a.id: a.size for a in await aud.audiences()}
    assert sizes == {"a1": 1, "a2": 1}
    held = await aud.memberships(["p1", "p2", "p3"])
    assert held == {
        "p1": [Membership("a1", "p1", reentry[1].at), Membership("a2", "p1", first[2].at)],
        "p2": [],
        "p3": [],
    }
    log = await aud.changes("a1", first=100, after=None)
    assert [(c.customer_id, c.kind) for c in log.items] == [
        ("p1", ENTERED),
        ("p2", ENTERED),
        ("p1", EXITED),
        ("p1", ENTERED),
        ("p2", EXITED),
    ]
    assert log.total == 5 and not log.more and log.cursor is None


async def test_members_page_in_customer_id_order(store: IdentityStore) -> None:
    aud = audiences_of(store)
    await aud.put_audience(audience("a1", "one"))
    await aud.put_audience(audience("a2", "two"))
    change = Changes()
    ids = ["p3", "p1", "p5", "p2", "p4"]
    await aud.record([change("a1", cid, ENTERED) for cid in ids] + [change("a2", "p0", ENTERED)])
    seen: list[str] = []
    after = None
    while True:
        page = await aud.members("a1", first=2, after=after)
        assert page.total == 5
        seen.extend(m.customer_id for m in page.items)
        assert all(m.audience_id == "a1" for m in page.items)
        if not page.more:
            assert page.cursor is None
            break
        after = page.cursor
    assert seen == sorted(ids)
    empty = await aud.members("a1", first=0, after=None)
    assert empty.items == () and empty.more and empty.total == 5
    last = await aud.members("a1", first=10, after="p4")
    assert [m.customer_id for m in last.items] == ["p5"] and not last.more
    nobody = await aud.members("none", first=10, after=None)
    assert nobody.items == () and nobody.total == 0 and not nobody.more


async def test_changes_page_oldest_first_and_reject_a_bad_cursor(store: IdentityStore) -> None:
    aud = audiences_of(store)
    await aud.put_audience(audience("a1", "one"))
    await aud.put_audience(audience("a2", "two"))
    same = T + timedelta(days=1)
    changes = [
        AudienceChange("c3", "a1", "p1", ENTERED, same),
        AudienceChange("c2", "a1", "p2", ENTERED, same),
        AudienceChange("c1", "a1", "p3", ENTERED, same + timedelta(seconds=1)),
        AudienceChange("c0", "a1", "p4", ENTERED, same - timedelta(seconds=1)),
        AudienceChange("c9", "a2", "p1", ENTERED, same),
    ]
    await aud.record(changes)
    ids: list[str] = []
    after = None
    while True:
        page = await aud.changes("a1", first=1, after=after)
        assert page.total == 4
        ids.extend(c.id for c in page.items)
        if not page.more:
            break
        after = page.cursor
    assert ids == ["c0", "c2", "c3", "c1"]
    full = await aud.changes("a1", first=10, after="c2")
    assert full.items == (changes[0], changes[2])
    with pytest.raises(InvalidOperation):
        await aud.changes("a1", first=10, after="no-such-change")
    with pytest.raises(InvalidOperation):
        await aud.changes("a1", first=10, after="c9")  # another audience's


async def test_deleting_an_audience_deletes_its_memberships_and_changes(
    store: IdentityStore,
) -> None:
    aud = audiences_of(store)
    await aud.put_audience(audience("a1", "one"))
    await aud.put_audience(audience("a2", "two"))
    change = Changes()
    await aud.record([change("a1", "p1", ENTERED), change("a2", "p1", ENTERED)])
    assert await aud.delete_audience("a1")
    assert not await aud.delete_audience("a1")
    assert [a.id for a in await aud.audiences()] == ["a2"]
    assert [m.audience_id for m in (await aud.memberships(["p1"]))["p1"]] == ["a2"]
    await aud.put_audience(audience("a1", "one"))
    again = await aud.audiences()
    assert [(a.id, a.size) for a in again] == [("a1", 0), ("a2", 1)]
    assert (await aud.changes("a1", first=10, after=None)).total == 0
    assert (await aud.members("a1", first=10, after=None)).items == ()
    assert await aud.record([change("a1", "p1", ENTERED)]) == 1


# --- the engine -----------------------------------------------------------------------------


class Now:
    """A clock that stands still until moved."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


NOW = at(10 * 86400)


@pytest.fixture
async def engine(graph: IdentityGraph) -> AsyncIterator[AudienceEngine]:
    clock = Now(NOW)
    e = AudienceEngine(
        graph.store, audiences_of(graph.store), Rules.default(), clock=clock, tick=0.05
    )
    graph.listeners.append(e.touched)
    await e.start()
    try:
        yield e
    finally:
        await e.stop()


def clock_of(engine: AudienceEngine) -> Now:
    assert isinstance(engine.clock, Now)
    return engine.clock


async def members(engine: AudienceEngine, name: str) -> set[str]:
    found = await engine.find(name=name)
    assert found is not None
    page = await engine.audiences.members(found.id, first=1000, after=None)
    assert page.total == len(page.items)
    return {m.customer_id for m in page.items}


async def log(engine: AudienceEngine, name: str) -> list[tuple[str, ChangeKind]]:
    found = await engine.find(name=name)
    assert found is not None
    page = await engine.audiences.changes(found.id, first=1000, after=None)
    return [(c.customer_id, c.kind) for c in page.items]


def order(n: str, *keys: str, t: float, total: float, currency: str = "EUR") -> Observation:
    props = {"total": total, "currency": currency}
    return observe(n, *keys, t=t, event="Order Completed", properties=props)


def viewed(n: str, *keys: str, t: float, category: str) -> Observation:
    return observe(n, *keys, t=t, event="Viewed", properties={"category": category})


async def test_computed_traits_and_audiences_follow_ingest(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    await engine.define_computed_trait(
        "orders", {"kind": "event_count", "event": "Order Completed"}
    )
    await engine.define_computed_trait(
        "spend_eur",
        {
            "kind": "sum",
            "event": "Order Completed",
            "property": "total",
            "where": [{"property": "currency", "op": "eq", "value": "EUR"}],
        },
    )
    await engine.define_computed_trait(
        "favourite", {"kind": "most_frequent", "event": "Viewed", "property": "category"}
    )
    await engine.define_computed_trait(
        "categories", {"kind": "unique_count", "event": "Viewed", "property": "category"}
    )
    await engine.define_computed_trait("first_view", {"kind": "first_seen", "event": "Viewed"})
    big = await engine.define_audience(
        "big_spenders", {"computed": {"name": "spend_eur", "op": "gte", "value": 100}}, None
    )
    await engine.define_audience(
        "loyal",
        {
            "all": [
                {"computed": {"name": "orders", "op": "gte", "value": 2}},
                {"not": {"trait": {"name": "plan", "op": "eq", "value": "free"}}},
            ]
        },
        None,
    )
    await engine.define_audience(
        "browsers",
        {
            "any": [
                {"event": {"name": "Viewed", "count": {"op": "gte", "value": 3}}},
                {"identifier": {"kind": "email"}},
            ]
        },
        None,
    )
    await engine.define_audience(
        "shoe_fans", {"computed": {"name": "favourite", "op": "eq", "value": "shoes"}}, None
    )
    ads = await engine.define_audience(
        "pro_ads", {"trait": {"name": "plan", "op": "eq", "value": "pro"}}, "advertising"
    )
    assert big.status is Status.BUILDING
    await engine.settle()
    assert all(a.status is Status.READY and a.size == 0 for a in await engine.defined())

    outcomes = await graph.ingest(
        [
            observe("m1", "user_id:u1", "email:jo@x.io", t=1, traits={"plan": "pro"}),
            order("m2", "user_id:u1", t=2, total=60),
            order("m3", "user_id:u1", t=3, total=50.5),
            order("m4", "user_id:u1", t=4, total=1000, currency="USD"),
            viewed("v1", "anonymous_id:a2", t=5, category="shoes"),
            viewed("v2", "anonymous_id:a2", t=6, category="hats"),
            viewed("v3", "anonymous_id:a2", t=7, category="shoes"),
            observe("m5", "user_id:u3", t=8, traits={"plan": "free"}),
            order("m6", "user_id:u3", t=9, total=10),
            order("m7", "user_id:u3", t=10, total=10),
        ]
    )
    p1, p2, p3 = (outcomes[0].profile_id, outcomes[4].profile_id, outcomes[7].profile_id)
    assert p1 and p2 and p3
    await engine.settle()
    assert await members(engine, "big_spenders") == {p1}
    assert await members(engine, "loyal") == {p1}
    assert await members(engine, "browsers") == {p1, p2}
    assert await members(engine, "shoe_fans") == {p2}
    assert await members(engine, "pro_ads") == set()  # no consent to advertise
    sizes = {a.name: a.size for a in await engine.defined()}
    assert sizes == {"big_spenders": 1, "browsers": 2, "loyal": 1, "pro_ads": 0, "shoe_fans": 1}
    assert sorted(await log(engine, "browsers")) == sorted([(p1, ENTERED), (p2, ENTERED)])

    assert await engine.computed_values(p1) == {
        "categories": 0,
        "favourite": None,
        "first_view": None,
        "orders": 3,
        "spend_eur": 110.5,
    }
    values = await engine.computed_values(p2)
    assert values["favourite"] == "shoes" and values["categories"] == 2
    assert values["first_view"] == at(5).isoformat() and values["orders"] == 0
    assert await engine.computed_values("no-such-profile") == {}

    why = await engine.explain(p1, big.id)
    assert why["member"] is True and why["customerId"] == p1
    assert why["condition"]["holds"] is True and why["condition"]["seen"] == 110.5
    why_not = await engine.explain(p3, big.id)
    assert why_not["member"] is False and why_not["condition"]["seen"] == 20
    consent = (await engine.explain(p1, ads.id))["consent"]
    assert consent == {"purpose": "advertising", "status": None, "holds": False}

    await graph.set_consent(p1, {"advertising": ConsentStatus.GRANTED}, source="ops")
    await engine.settle()
    assert await members(engine, "pro_ads") == {p1}
    assert (await engine.explain(p1, ads.id))["member"] is True
    await graph.set_consent(p1, {"advertising": ConsentStatus.REVOKED}, source="ops")
    await engine.settle()
    assert await members(engine, "pro_ads") == set()
    assert await log(engine, "pro_ads") == [(p1, ENTERED), (p1, EXITED)]

    await graph.ingest([observe("m8", "user_id:u3", t=11, traits={"plan": "basic"})])
    await engine.settle()
    assert await members(engine, "loyal") == {p1, p3}


async def test_a_merge_exits_the_absorbed_profile_and_an_undo_or_split_brings_it_back(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    await engine.define_audience("emailable", {"identifier": {"kind": "email"}}, None)
    await engine.define_audience(
        "buyers", {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 1}}}, None
    )
    [a] = await graph.ingest([order("m1", "user_id:u1", "anonymous_id:a1", t=1, total=5)])
    [b] = await graph.ingest([observe("m2", "anonymous_id:a2", "email:jo@x.io", t=2)])
    pa, pb = a.profile_id, b.profile_id
    assert pa and pb
    await engine.settle()
    assert await members(engine, "emailable") == {pb}
    assert await members(engine, "buyers") == {pa}

    [m] = await graph.ingest([observe("m3", "user_id:u1", "email:jo@x.io", t=3)])
    assert m.profile_id == pa and m.merges
    await engine.settle()
    assert await members(engine, "emailable") == {pa}
    assert await members(engine, "buyers") == {pa}
    history = await log(engine, "emailable")  # the last two at one moment, in id order
    assert history[0] == (pb, ENTERED)
    assert sorted(history[1:]) == sorted([(pb, EXITED), (pa, ENTERED)])
    assert (await engine.audiences.memberships([pb]))[pb] == []

    await graph.undo_merge(m.merges[0], actor="ops")
    await engine.settle()
    assert await members(engine, "emailable") == {pb}
    assert await members(engine, "buyers") == {pa}

    [again] = await graph.ingest([observe("m4", "user_id:u1", "email:jo@x.io", t=4)])
    await engine.settle()
    assert await members(engine, "emailable") == {pa} and again.merges
    split = await graph.unmerge(pa, ["email:jo@x.io", "anonymous_id:a2"], actor="ops")
    await engine.settle()
    assert split.survivor == pa
    assert await members(engine, "emailable") == {split.absorbed}
    assert await members(engine, "buyers") == {pa}
    sizes = {a.name: a.size for a in await engine.defined()}
    assert sizes == {"buyers": 1, "emailable": 1}


async def test_an_erased_customer_leaves_every_audience(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    await engine.define_audience("emailable", {"identifier": {"kind": "email"}}, None)
    [a, b] = await graph.ingest(
        [observe("m1", "email:jo@x.io", t=1), observe("m2", "email:al@x.io", t=2)]
    )
    assert a.profile_id and b.profile_id
    await engine.settle()
    assert await members(engine, "emailable") == {a.profile_id, b.profile_id}
    await graph.erase(a.profile_id, reason="request", actor="ops")
    await engine.settle()
    assert await members(engine, "emailable") == {b.profile_id}
    assert (await engine.audiences.memberships([a.profile_id]))[a.profile_id] == []
    assert (await log(engine, "emailable"))[-1] == (a.profile_id, EXITED)


async def wait_for(engine: AudienceEngine, name: str, expected: set[str]) -> None:
    """Until the audience holds `expected` (the engine wakes every `tick` to look for
    lapses): a bounded wait, never a timing assertion."""
    for _ in range(400):
        await engine.settle()
        if await members(engine, name) == expected:
            return
        await asyncio.sleep(engine.tick)
    assert await members(engine, name) == expected


async def test_a_time_window_lapses_with_no_write(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    clock = clock_of(engine)
    await engine.define_computed_trait(
        "recent_orders", {"kind": "event_count", "event": "Order Completed", "within_days": 7}
    )
    await engine.define_audience(
        "recent_buyers", {"event": {"name": "Order Completed", "within_days": 3}}, None
    )
    await engine.define_audience(
        "weekly", {"computed": {"name": "recent_orders", "op": "gte", "value": 1}}, None
    )
    day = 86400.0
    now = (NOW - at(0)).total_seconds()
    [a] = await graph.ingest([order("m1", "user_id:u1", t=now - day, total=5)])
    [b] = await graph.ingest([order("m2", "user_id:u2", t=now - 5 * day, total=5)])
    pa, pb = a.profile_id, b.profile_id
    assert pa and pb
    await engine.settle()
    assert await members(engine, "recent_buyers") == {pa}
    assert await members(engine, "weekly") == {pa, pb}

    clock.now = NOW + timedelta(days=2, seconds=1)
    await wait_for(engine, "recent_buyers", set())
    await wait_for(engine, "weekly", {pa})
    clock.now = NOW + timedelta(days=6, seconds=1)
    await wait_for(engine, "weekly", set())
    assert await log(engine, "recent_buyers") == [(pa, ENTERED), (pa, EXITED)]


async def test_a_new_audience_is_built_over_existing_profiles(
    graph: IdentityGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BUILD_PAGE", 2)
    outcomes = await graph.ingest(
        [observe(f"m{n}", f"user_id:u{n}", t=n, traits={"tier": n % 2}) for n in range(5)]
    )
    odd = {o.profile_id for n, o in enumerate(outcomes) if n % 2}
    store = audiences_of(graph.store)
    engine = AudienceEngine(graph.store, store, Rules.default(), clock=Now(NOW), tick=0.05)
    graph.listeners.append(engine.touched)
    defined = await engine.define_audience(
        "odd", {"trait": {"name": "tier", "op": "eq", "value": 1}}, None
    )
    [stored] = await store.audiences()
    assert stored.status is Status.BUILDING and stored.progress == 0.0
    progress: list[tuple[Status, float]] = []
    put = store.put_audience

    async def watched(a: Audience) -> None:
        progress.append((a.status, a.progress))
        await put(a)

    monkeypatch.setattr(store, "put_audience", watched)
    await engine.start()
    try:
        await engine.settle()
        [built] = await store.audiences()
        assert built.id == defined.id and built.status is Status.READY
        assert built.progress == 1.0 and built.built_at == NOW and built.size == 2
        assert await members(engine, "odd") == odd
        assert progress[-1] == (Status.READY, 1.0)
        steps = [p for s, p in progress[:-1]]
        assert steps and all(s is Status.BUILDING for s, _ in progress[:-1])
        assert steps == sorted(steps) and 0 < steps[0] < 1
    finally:
        await engine.stop()


async def test_a_build_finishes_while_profiles_keep_being_touched(
    graph: IdentityGraph, engine: AudienceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BUILD_PAGE", 2)
    await engine.define_audience("anyone", {"identifier": {"kind": "user_id"}}, None)
    outcomes = await graph.ingest([observe(f"m{n}", f"user_id:u{n}", t=n) for n in range(6)])
    await engine.settle()
    defined = await engine.define_audience(
        "u3", {"trait": {"name": "n", "op": "eq", "value": 3}}, None
    )
    await graph.ingest([observe("t3", "user_id:u3", t=9, traits={"n": 3})])
    pid = outcomes[0].profile_id
    assert pid
    for _ in range(5000):  # steady ingest, as the engine sees it: the build goes on regardless
        engine.touched([pid])
        await asyncio.sleep(0)
        [found] = [a for a in await engine.defined() if a.id == defined.id]
        if found.status is Status.READY:
            break
    assert found.status is Status.READY
    await engine.settle()
    assert await members(engine, "u3") == {outcomes[3].profile_id}


async def test_a_write_is_evaluated_against_the_audiences_that_read_what_it_changed(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    await engine.define_computed_trait(
        "orders", {"kind": "event_count", "event": "Order Completed"}
    )
    conditions = {
        "buyers": ({"computed": {"name": "orders", "op": "gte", "value": 1}}, None),
        "pro": ({"trait": {"name": "plan", "op": "eq", "value": "pro"}}, None),
        "known": ({"identifier": {"kind": "email"}}, None),
        "pages": ({"event": {"type": "PAGE", "count": {"op": "gte", "value": 1}}}, None),
        "ads": ({"identifier": {"kind": "user_id"}}, "advertising"),
        # holds for the empty profile: evaluated for every profile a write makes
        "no_orders": ({"not": {"event": {"name": "Order Completed"}}}, None),
    }
    names = {}
    for name, (condition, purpose) in conditions.items():
        names[(await engine.define_audience(name, condition, purpose)).id] = name
    await engine.settle()
    seen: list[str] = []
    member = engine.member

    def noting(d, view):  # type: ignore[no-untyped-def]
        seen.append(names[d.audience.id])
        return member(d, view)

    engine.member = noting  # type: ignore[method-assign]

    async def evaluated(*observations: Observation) -> set[str]:
        seen.clear()
        await graph.ingest(list(observations))
        await engine.settle()
        return set(seen)

    # a profile a write made held nothing before: the audiences that read nothing it was
    # given see the empty profile still, and only the one the empty profile is a member of
    # is evaluated with those that do
    made = {"known", "ads", "no_orders"}
    assert await evaluated(observe("m1", "user_id:u1", t=1, event="Viewed")) == made
    [pid] = (await graph.store.profile_ids(["user_id:u1"])).values()
    assert await members(engine, "no_orders") == {pid}
    assert await evaluated(observe("m2", "user_id:u1", t=2, event="Viewed")) == set()
    ordered = observe("m3", "user_id:u1", t=3, event="Order Completed")
    assert await evaluated(ordered) == {"buyers", "no_orders"}
    assert await members(engine, "no_orders") == set()
    page = observe("m4", "user_id:u1", t=4, type=MessageType.PAGE, event="Pricing")
    assert await evaluated(page) == {"pages"}
    assert await evaluated(observe("m5", "user_id:u1", t=5, traits={"plan": "pro"})) == {"pro"}
    assert await evaluated(observe("m6", "user_id:u1", "email:u1@x.io", t=6)) == {"known", "ads"}
    assert await evaluated(observe("m7", "user_id:u1", t=7)) == set()  # nothing new
    seen.clear()
    await graph.set_consent(pid, {"advertising": ConsentStatus.GRANTED}, source="ops")
    await engine.settle()
    assert set(seen) == {"ads"}
    for name in ("buyers", "pro", "known", "pages", "ads"):
        assert await members(engine, name) == {pid}, name
    assert await evaluated(observe("m8", "anonymous_id:a2", t=8)) == made
    # a merge may change anything of both sides
    assert await evaluated(observe("m9", "anonymous_id:a2", "email:u1@x.io", t=9)) == set(
        conditions
    )
    assert (
        len(set((await graph.store.profile_ids(["anonymous_id:a2", "user_id:u1"])).values())) == 1
    )


async def test_events_deleted_by_retention_leave_their_audiences_with_no_write(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    graph.expired.append(engine.events_expired)
    await engine.define_computed_trait(
        "orders", {"kind": "event_count", "event": "Order Completed"}
    )
    await engine.define_audience(
        "repeat", {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 2}}}, None
    )
    await engine.define_audience(
        "ordered", {"computed": {"name": "orders", "op": "gte", "value": 1}}, None
    )
    await engine.define_audience("known", {"identifier": {"kind": "email"}}, None)
    await graph.ingest(
        [
            observe("o1", "email:old@x.io", t=1, event="Order Completed"),
            observe("o2", "email:old@x.io", t=2, event="Order Completed"),
        ]
    )
    await engine.settle()
    [pid] = (await graph.store.profile_ids(["email:old@x.io"])).values()
    for name in ("repeat", "ordered", "known"):
        assert await members(engine, name) == {pid}
    report = await graph.apply_retention(RetentionPolicy(event_days=1))
    assert report.events == 2
    await engine.settle()
    assert await members(engine, "repeat") == set()
    assert await members(engine, "ordered") == set()
    assert await members(engine, "known") == {pid}
    assert all(a.status is Status.READY for a in await engine.defined())


async def test_a_profile_is_judged_from_what_its_writes_gave_it_where_they_tell_all(
    graph: IdentityGraph, engine: AudienceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a store no other process writes, a profile made since it was last evaluated, or
    one whose content the engine kept, is judged from what its writes gave it, not read
    back; a consent choice (which a later one may override) makes it read back. On a store
    other processes may write, every evaluation reads: a write the engine was not told of
    would be missed."""
    await engine.define_computed_trait(
        "orders", {"kind": "event_count", "event": "Order Completed"}
    )
    await engine.define_audience(
        "pro_buyers",
        {
            "all": [
                {"computed": {"name": "orders", "op": "gte", "value": 2}},
                {"trait": {"name": "plan", "op": "eq", "value": "pro"}},
                {"identifier": {"kind": "email"}},
            ]
        },
        None,
    )
    await engine.settle()
    reads: list[str] = []
    store = graph.store
    for name in ("events_of", "traits_named", "identifier_kinds", "events", "traits"):
        read = getattr(store, name)

        def noting(*args: object, _read: object = read, _name: str = name, **kw: object) -> object:
            reads.append(_name)
            return _read(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(store, name, noting)
    told = store.sole_writer
    await graph.ingest(
        [
            observe("g1", "email:g@x.io", "user_id:g", t=1, traits={"plan": "pro"}),
            observe("g2", "user_id:g", t=2, event="Order Completed"),
            observe("g3", "email:g@x.io", t=3, event="Order Completed"),
        ]
    )
    await engine.settle()
    [pid] = set((await graph.store.profile_ids(["email:g@x.io", "user_id:g"])).values())
    assert await members(engine, "pro_buyers") == {pid}
    assert (reads == []) is told
    reads.clear()
    await graph.ingest([observe("g4", "user_id:g", t=4, traits={"plan": "free"})])
    await engine.settle()
    assert await members(engine, "pro_buyers") == set()
    assert (reads == []) is told
    reads.clear()
    await graph.set_consent(pid, {"analytics": ConsentStatus.GRANTED}, source="ops")
    await engine.settle()
    reads.clear()
    await graph.ingest([observe("g5", "user_id:g", t=5, traits={"plan": "pro"})])
    await engine.settle()
    assert await members(engine, "pro_buyers") == {pid}
    assert reads  # what the consent choice left is read back


async def test_writes_made_while_no_audience_is_defined_are_not_missed_later(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    """With no audience defined the engine follows no write: what it kept of a customer
    from before would miss those writes, so it keeps nothing across that gap."""
    exactly_two = {"event": {"name": "Order Completed", "count": {"op": "eq", "value": 2}}}
    first = await engine.define_audience("two", exactly_two, None)
    await graph.ingest([observe("t1", "email:t@x.io", t=1, event="Order Completed")])
    await engine.settle()
    assert await engine.delete_audience(first.id)
    await graph.ingest([observe("t2", "email:t@x.io", t=2, event="Order Completed")])
    await engine.define_audience("two", exactly_two, None)
    await engine.settle()
    [pid] = (await graph.store.profile_ids(["email:t@x.io"])).values()
    assert await members(engine, "two") == {pid}
    await graph.ingest([observe("t3", "email:t@x.io", t=3, event="Order Completed")])
    await engine.settle()
    assert await members(engine, "two") == set()  # three orders, not two


async def two_orders_then_three(graph: IdentityGraph, engine: AudienceEngine, key: str) -> None:
    """The customer of `key`, with two orders, is in audience "two"; one more takes it out."""
    [pid] = (await graph.store.profile_ids([key])).values()
    assert await members(engine, "two") == {pid}
    await graph.ingest([observe(f"{key}-3", key, t=3, event="Order Completed")])
    await engine.settle()
    assert await members(engine, "two") == set()


async def test_a_write_that_fails_after_it_committed_is_still_followed(
    graph: IdentityGraph, engine: AudienceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write may commit and its caller still fail (a cancelled request): the profiles it
    touched are looked at afresh, and nothing kept of them from before is trusted."""
    exactly_two = {"event": {"name": "Order Completed", "count": {"op": "eq", "value": 2}}}
    await engine.define_audience("two", exactly_two, None)
    await graph.ingest([observe("f1", "email:f@x.io", t=1, event="Order Completed")])
    await engine.settle()
    store = graph.store
    write = store.write

    async def committed_then_failed(work: Any) -> Any:
        await write(work)
        raise asyncio.CancelledError

    monkeypatch.setattr(store, "write", committed_then_failed)
    with pytest.raises(asyncio.CancelledError):
        await graph.ingest([observe("f2", "email:f@x.io", t=2, event="Order Completed")])
    monkeypatch.setattr(store, "write", write)
    await engine.settle()
    await two_orders_then_three(graph, engine, "email:f@x.io")


async def test_what_was_queued_before_a_gap_with_no_audience_is_read_back(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    """A customer made while the engine was behind, then written to while no audience was
    defined: what its first write gave it is not all it holds any more."""
    exactly_two = {"event": {"name": "Order Completed", "count": {"op": "eq", "value": 2}}}
    first = await engine.define_audience("two", exactly_two, None)
    await engine.settle()
    await engine.stop()  # behind: writes queue up
    await graph.ingest([observe("q1", "email:q@x.io", t=1, event="Order Completed")])
    assert await engine.delete_audience(first.id)
    await graph.ingest([observe("q2", "email:q@x.io", t=2, event="Order Completed")])
    await engine.start(build=False)
    await engine.settle()
    await engine.define_audience("two", exactly_two, None)
    await engine.settle()
    await two_orders_then_three(graph, engine, "email:q@x.io")


async def test_events_retention_deleted_are_not_counted_from_a_queued_write(
    graph: IdentityGraph, engine: AudienceEngine
) -> None:
    """A write queued for evaluation gave a customer an event that retention deleted before
    the engine got to it: the customer is read back, and nothing kept counts the event."""
    graph.expired.append(engine.events_expired)
    exactly_one = {"event": {"name": "Order Completed", "count": {"op": "eq", "value": 1}}}
    await engine.define_audience("one", exactly_one, None)
    await engine.settle()
    await engine.stop()
    await graph.ingest([observe("r1", "email:r@x.io", t=1, event="Order Completed")])
    report = await graph.apply_retention(RetentionPolicy(event_days=1))
    assert report.events == 1
    await engine.start(build=False)
    await engine.settle()
    assert await members(engine, "one") == set()
    await graph.ingest([observe("r2", "email:r@x.io", t=10 * 86400, event="Order Completed")])
    await engine.settle()
    [pid] = (await graph.store.profile_ids(["email:r@x.io"])).values()
    assert await members(engine, "one") == {pid}
