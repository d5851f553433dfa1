"""Erasure, suppression, retention and the export's event stream, on every store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from streams import at, groups, observe, partition

from identity_graph.errors import InvalidOperation, NotFound
from identity_graph.model import (
    ConsentStatus,
    Event,
    EventCategory,
    Identifier,
    MessageType,
    Observation,
)
from identity_graph.privacy import RetentionPolicy
from identity_graph.service import IdentityGraph
from identity_graph.store import ProfileFilter

ANN = ("email:ann@x.io", "user_id:ann-1", "anonymous_id:ann-a")
BOB = ("email:bob@x.io", "user_id:bob-1")


async def _people(graph: IdentityGraph) -> tuple[str, str]:
    """Ann (three identifiers, traits, events, consent) and Bob; returns their ids."""
    outcomes = await graph.ingest(
        [
            observe("a1", *ANN[:2], t=0, traits={"name": "Ann Example", "plan": "pro"}),
            observe(
                "a2", ANN[2], ANN[1], t=5, event="Order Completed", properties={"sku": "ann-sku-1"}
            ),
            observe("a3", ANN[2], t=6, event="Page Viewed", properties={"path": "/ann-secret"}),
            observe("b1", *BOB, t=1, traits={"name": "Bob Other"}),
            observe("b2", BOB[1], t=7, event="Order Completed", properties={"sku": "bob-sku"}),
        ]
    )
    ann, bob = outcomes[0].profile_id, outcomes[3].profile_id
    assert ann and bob and ann != bob
    await graph.set_consent(ann, {"email_marketing": ConsentStatus.GRANTED}, source="web")
    return ann, bob


async def test_erasure_removes_every_record_of_the_person_and_nothing_of_others(
    graph: IdentityGraph,
) -> None:
    ann, bob = await _people(graph)
    store = graph.store
    before_bob = (
        await store.traits([bob]),
        await store.events([bob], first=50, after=None, types=None),
    )
    receipt = await graph.erase(ann, reason="Art. 17 request #12", actor="admin:ops")
    assert (receipt.customer_id, receipt.identifiers, receipt.events) == (ann, 3, 2)
    assert receipt.suppressed == 3
    assert await store.profile_ids(list(ANN)) == {}
    assert await store.profiles([ann]) == {}
    assert await store.resolve_profiles([ann]) == {}
    assert (await store.traits([ann])).get(ann, []) == []
    pages = await store.events([ann], first=50, after=None, types=None)
    assert ann not in pages or pages[ann].items == ()
    assert (await store.consents([ann])).get(ann, []) == []
    assert (await store.merge_history([ann])).get(ann, []) == []
    granted = await store.list_profiles(
        first=50, after=None, where=ProfileFilter(consent_granted="email_marketing")
    )
    assert ann not in granted.items
    assert groups(await partition(store)) == {frozenset(BOB)}
    after_bob = (
        await store.traits([bob]),
        await store.events([bob], first=50, after=None, types=None),
    )
    assert after_bob == before_bob
    assert await store.erasure(receipt.id) == receipt
    assert await store.erasure(ann) == receipt


async def test_an_absorbed_id_erases_the_profile_it_was_merged_into(
    graph: IdentityGraph,
) -> None:
    [a] = await graph.ingest([observe("m1", "anonymous_id:x1", t=0)])
    [b] = await graph.ingest([observe("m2", "email:zed@x.io", t=1)])
    [m] = await graph.ingest([observe("m3", "anonymous_id:x1", "email:zed@x.io", t=2)])
    assert a.profile_id and b.profile_id and m.merges
    absorbed = b.profile_id if m.profile_id == a.profile_id else a.profile_id
    receipt = await graph.erase(absorbed, reason="request", actor="ops")
    assert receipt.customer_id == m.profile_id
    assert receipt.identifiers == 2
    assert await graph.store.resolve_profiles([a.profile_id, b.profile_id]) == {}
    assert await partition(graph.store) == {}


async def test_erasing_an_unknown_or_erased_customer_fails_clearly(graph: IdentityGraph) -> None:
    ann, _ = await _people(graph)
    with pytest.raises(NotFound):
        await graph.erase("no-such-customer", reason="request", actor="ops")
    with pytest.raises(InvalidOperation, match="reason"):
        await graph.erase(ann, reason="  ", actor="ops")
    assert await graph.store.profile_ids([ANN[0]])  # a refused erasure changes nothing
    receipt = await graph.erase(ann, reason="request", actor="ops")
    with pytest.raises(InvalidOperation, match=f"erasure {receipt.id}"):
        await graph.erase(ann, reason="again", actor="ops")


async def test_suppressed_identifiers_are_dropped_and_replays_change_nothing(
    graph: IdentityGraph,
) -> None:
    ann, bob = await _people(graph)
    await graph.erase(ann, reason="request", actor="ops")
    store = graph.store
    before = await partition(store)
    # a replay of an erased message is dropped whole, even with an identifier of Bob's
    replayed = observe("a1", *ANN[:2], BOB[0], t=0, traits={"name": "Ann Example"})
    [outcome] = await graph.ingest([replayed])
    assert (outcome.status, outcome.profile_id) == ("dropped", None)
    # a new message: the suppressed identifiers are dropped as blocked values would be
    only_ann = observe("n1", ANN[0], ANN[1], t=100, traits={"name": "Ann Example"})
    [dropped] = await graph.ingest([only_ann])
    assert dropped.status == "dropped"
    [kept] = await graph.ingest([observe("n2", ANN[0], "anonymous_id:fresh", t=101)])
    assert kept.status == "applied"
    after = await partition(store)
    assert after[bob] == before[bob]
    assert groups(after) == {frozenset(BOB), frozenset({"anonymous_id:fresh"})}
    listed = await store.suppressions(first=10, after=None)
    assert sorted(s.kind for s in listed.items) == ["anonymous_id", "email", "user_id"]
    assert all(ANN[0] not in s.hash and "ann" not in s.hash for s in listed.items)


async def test_unsuppress_lifts_one_identifier(graph: IdentityGraph) -> None:
    ann, _ = await _people(graph)
    await graph.erase(ann, reason="request", actor="ops")
    assert await graph.unsuppress(Identifier("email", "ann@x.io"))
    assert not await graph.unsuppress(Identifier("email", "ann@x.io"))
    assert not await graph.unsuppress(Identifier("email", "never@x.io"))
    [back] = await graph.ingest([observe("n1", ANN[0], ANN[1], t=100)])
    assert back.status == "applied"
    assert await graph.store.profile_ids([ANN[0], ANN[1]]) == {ANN[0]: back.profile_id}
    listed = await graph.store.suppressions(first=10, after=None)
    assert sorted(s.kind for s in listed.items) == ["anonymous_id", "user_id"]


async def test_suppressions_page_in_order(graph: IdentityGraph) -> None:
    ann, bob = await _people(graph)
    await graph.erase(ann, reason="request", actor="ops")
    await graph.erase(bob, reason="request", actor="ops")
    seen = []
    cursor = None
    while True:
        page = await graph.store.suppressions(first=2, after=cursor)
        seen.extend(page.items)
        if not page.more:
            break
        cursor = page.cursor
    assert len(seen) == 5 and len({s.hash for s in seen}) == 5
    assert [(s.at, s.hash) for s in seen] == sorted((s.at, s.hash) for s in seen)


async def test_erasure_without_suppression_lets_them_come_back(graph: IdentityGraph) -> None:
    ann, _ = await _people(graph)
    receipt = await graph.erase(ann, reason="test data", actor="ops", suppress=False)
    assert receipt.suppressed == 0
    assert (await graph.store.suppressions(first=10, after=None)).items == ()
    [back] = await graph.ingest([observe("a1", *ANN[:2], t=0)])
    assert back.status == "applied" and back.profile_id


async def test_other_profiles_records_keep_nothing_of_the_erased(graph: IdentityGraph) -> None:
    """X absorbs Y, whose email is then split off into Z: erasing Z removes the email from
    X's merge history too; a conflict of X's that dropped Z's email goes as well."""
    [x] = await graph.ingest([observe("m1", "user_id:x", t=0)])
    [y] = await graph.ingest([observe("m2", "anonymous_id:y", "email:zoe@x.io", t=1)])
    [m] = await graph.ingest([observe("m3", "user_id:x", "anonymous_id:y", t=2)])
    assert x.profile_id and y.profile_id and m.merges
    split = await graph.unmerge(x.profile_id, ["email:zoe@x.io"], actor="ops")
    zoe = (await graph.store.profile_ids(["email:zoe@x.io"]))["email:zoe@x.io"]
    assert zoe != x.profile_id and split.id
    [c] = await graph.ingest([observe("m4", "email:xavier@x.io", "user_id:x", t=3)])
    await graph.ingest([observe("m5", "email:zoe@x.io", "user_id:zoe", t=4)])
    # joining x and zoe would give two user ids: zoe's email is dropped, a conflict of x's
    [d] = await graph.ingest([observe("m6", "user_id:x", "email:zoe@x.io", t=5)])
    assert d.conflict is not None and d.profile_id == x.profile_id
    await graph.erase(zoe, reason="request", actor="ops")
    history = (await graph.store.merge_history([x.profile_id]))[x.profile_id]
    conflicts = (await graph.store.conflicts([x.profile_id])).get(x.profile_id, [])
    for record in history:
        assert "email:zoe@x.io" not in record.identifiers
        assert all("email:zoe@x.io" not in (link.a, link.b) for link in record.links)
    for conflict in conflicts:
        assert "email:zoe@x.io" not in conflict.dropped
    assert groups(await partition(graph.store)) == {
        frozenset({"user_id:x", "anonymous_id:y", "email:xavier@x.io"})
    }
    assert c.profile_id == x.profile_id


async def test_export_events_streams_every_event(graph: IdentityGraph) -> None:
    observations = [
        observe(f"e{n}", "user_id:many", t=n, event="Tick", properties={"n": n}) for n in range(23)
    ]
    outcomes = await graph.ingest(observations)
    pid = outcomes[0].profile_id
    assert pid
    events = [e async for e in graph.export_events(pid, page=5)]
    assert sorted(e.properties["n"] for e in events) == list(range(23))
    assert [e async for e in graph.export_events("no-such-customer")] == []


def _event(message_id: str, key: str, t: float, category: EventCategory) -> Observation:
    return Observation(
        message_id=message_id,
        timestamp=at(t),
        source="web",
        type=MessageType.TRACK,
        identifiers=(Identifier.from_key(key),),
        event=Event(MessageType.TRACK, "Seen", {"t": t}, category),
    )


async def test_retention_deletes_old_records_per_kind(graph: IdentityGraph) -> None:
    day = 86_400.0
    now = graph.clock()  # the test clock: about 11.6 days after T0, one second per call
    old, recent = 0.0, (now - at(0)).total_seconds() - day
    await graph.ingest(
        [
            _event("old-engagement", "user_id:keep", old, EventCategory.ENGAGEMENT),
            _event("old-behaviour", "user_id:keep", old, EventCategory.BEHAVIOURAL),
            _event("new-engagement", "user_id:keep", recent, EventCategory.ENGAGEMENT),
            observe("idle", "user_id:idle", t=old),
            observe("active", "user_id:keep", t=recent),
        ]
    )
    policy = RetentionPolicy.from_text(
        "[events]\ndays = 30\n[events.by_category]\nENGAGEMENT = 5\n[profiles]\ninactive_days = 5\n"
    )
    report = await graph.apply_retention(policy)
    assert (report.events, report.profiles, report.identifiers) == (1, 1, 1)
    store = graph.store
    keep = (await store.profile_ids(["user_id:keep"]))["user_id:keep"]
    pages = await store.events([keep], first=10, after=None, types=None)
    assert sorted(e.message_id for e in pages[keep].items) == ["new-engagement", "old-behaviour"]
    assert await store.profile_ids(["user_id:idle"]) == {}
    # the inactive profile was erased without suppression: it may come back
    [back] = await graph.ingest([observe("idle-again", "user_id:idle", t=recent)])
    assert back.status == "applied"
    again = await graph.apply_retention(policy)
    assert (again.events, again.profiles) == (0, 0)


async def test_retention_bounds_message_ids_and_conflicts(graph: IdentityGraph) -> None:
    await graph.ingest([observe("ident", "user_id:u", "email:u@x.io", t=0)])
    # a second user id for the person: one user id each, so the email is dropped
    [conflict] = await graph.ingest([observe("c", "email:u@x.io", "user_id:v", t=1)])
    assert conflict.conflict is not None
    now = graph.clock()
    policy = RetentionPolicy.from_text("[messages]\ndays = 1\n[conflicts]\ndays = 1\n")
    report = await graph.apply_retention(policy)
    assert report.messages >= 1 and report.conflicts == 1
    pid = (await graph.store.profile_ids(["user_id:u"]))["user_id:u"]
    assert (await graph.store.conflicts([pid])).get(pid, []) == []
    # a message id forgotten by retention is a new message again (documented window)
    [again] = await graph.ingest([observe("ident", "user_id:u", "email:u@x.io", t=0)])
    assert again.status == "applied"
    assert now - at(0) > timedelta(days=1)


async def test_a_trait_carrying_a_suppressed_value_is_dropped_with_it(
    graph: IdentityGraph,
) -> None:
    ann, _ = await _people(graph)
    await graph.erase(ann, reason="request", actor="ops")
    traits = {"email": " ANN@x.io ", "name": "Someone", "user": "ann-1"}
    [kept] = await graph.ingest([observe("n1", ANN[0], "anonymous_id:new", t=100, traits=traits)])
    assert kept.status == "applied" and kept.profile_id
    values = (await graph.store.traits([kept.profile_id]))[kept.profile_id]
    # the email trait named the suppressed email; a user id trait is no identifier here
    assert {(v.name, v.value) for v in values} == {("name", "Someone"), ("user", "ann-1")}
