"""Traits, events and consent: kept per identifier, so they follow the profile."""

from __future__ import annotations

from dataclasses import replace

import pytest
from streams import at, observe

from identity_graph.codec import dumps
from identity_graph.errors import InvalidOperation, MalformedObservation, NotFound
from identity_graph.model import ConsentStatus, MessageType
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore, ProfileFilter, event_cursor
from identity_graph.survivorship import current_traits, effective_consent


async def _owner(store: IdentityStore, key: str) -> str:
    return (await store.profile_ids([key]))[key]


async def test_trait_history_and_survivorship(graph: IdentityGraph) -> None:
    await graph.ingest(
        [
            observe("m1", "user_id:u1", t=0, source="crm", traits={"plan": "pro", "age": 41}),
            observe("m2", "user_id:u1", t=9, source="web", traits={"plan": "free"}),
            observe("m3", "user_id:u1", t=5, source="web", traits={"tags": ["a", {"b": 1}]}),
        ]
    )
    pid = await _owner(graph.store, "user_id:u1")
    history = (await graph.store.traits([pid]))[pid]
    assert [t.message_id for t in history] == ["m1", "m1", "m3", "m2"]
    assert {(t.name, dumps(t.value), t.source, t.message_id) for t in history} == {
        ("age", "41", "crm", "m1"),
        ("plan", '"pro"', "crm", "m1"),
        ("tags", '["a",{"b":1}]', "web", "m3"),
        ("plan", '"free"', "web", "m2"),
    }
    assert all(t.identifier_key == "user_id:u1" for t in history)
    newest = current_traits(history, Rules.default())
    assert {k: v.value for k, v in newest.items()} == {
        "plan": "free",
        "age": 41,
        "tags": ["a", {"b": 1}],
    }
    ranked = current_traits(history, Rules.parse('[survivorship.traits.plan]\nsources = ["crm"]'))
    assert ranked["plan"].value == "pro"


async def test_traits_follow_the_profile_through_a_merge(graph: IdentityGraph) -> None:
    await graph.ingest([observe("m1", "anonymous_id:a1", t=0, traits={"city": "Leeds"})])
    await graph.ingest([observe("m2", "user_id:u1", t=5, traits={"plan": "pro"})])
    await graph.ingest([observe("m3", "anonymous_id:a1", "user_id:u1", t=9)])
    pid = await _owner(graph.store, "user_id:u1")
    values = (await graph.store.traits([pid]))[pid]
    assert {(t.name, t.value) for t in values} == {("city", "Leeds"), ("plan", "pro")}


async def test_events_newest_first_with_cursors_filter_and_totals(graph: IdentityGraph) -> None:
    await graph.ingest(
        [
            observe(
                f"e{i}",
                "anonymous_id:a1",
                t=i,
                event=f"Event {i}",
                type=MessageType.PAGE if i % 3 == 0 else MessageType.TRACK,
                properties={"i": i},
            )
            for i in range(7)
        ]
    )
    pid = await _owner(graph.store, "anonymous_id:a1")
    seen, cursor, totals = [], None, set()
    while True:
        pages = await graph.store.events([pid], first=3, after=cursor, types=None, count_up_to=None)
        page = pages[pid]
        seen.extend(page.items)
        totals.add(page.total)
        assert page.more is (page.cursor is not None)
        cursor = page.cursor
        if cursor is None:
            break
    assert [e.name for e in seen] == [f"Event {i}" for i in reversed(range(7))]
    assert totals == {7}
    assert seen[0].properties == {"i": 6} and seen[0].type is MessageType.PAGE
    assert seen[0].timestamp == observe("x", t=6).timestamp and seen[0].source == "web"
    pages = (await graph.store.events([pid], first=10, after=None, types=["page"], count_up_to=9))[
        pid
    ]
    assert [e.name for e in pages.items] == ["Event 6", "Event 3", "Event 0"]
    assert pages.total == 3 and pages.cursor is None and not pages.more
    with pytest.raises(InvalidOperation):
        await graph.store.events([pid], first=3, after="garbage", types=None)


async def test_a_page_of_size_zero_says_whether_items_follow(graph: IdentityGraph) -> None:
    """`first: 0` asks for the total and whether anything follows, without items."""
    await graph.ingest([observe(f"e{i}", "anonymous_id:a1", t=i, event="Tick") for i in range(3)])
    pid = await _owner(graph.store, "anonymous_id:a1")
    events = graph.store.events
    empty = (await events([pid], first=0, after=None, types=None, count_up_to=9))[pid]
    assert (empty.items, empty.total, empty.cursor, empty.more) == ((), 3, None, True)
    last = (await events([pid], first=2, after=None, types=None))[pid]
    assert last.cursor is not None and last.more
    follows = (await events([pid], first=0, after=last.cursor, types=None))[pid]
    assert follows.items == () and follows.more
    end = (await events([pid], first=3, after=None, types=None))[pid]
    assert end.cursor is None and not end.more
    after_end = await events([pid], first=0, after=event_cursor(end.items[-1]), types=None)
    assert not after_end[pid].more
    none = (await events([pid], first=0, after=None, types=["screen"], count_up_to=9))[pid]
    assert (none.total, none.more) == (0, False)
    profiles = await graph.store.list_profiles(
        first=0, after=None, where=ProfileFilter(), count_up_to=9
    )
    assert (profiles.items, profiles.total, profiles.more) == ((), 1, True)


async def test_a_malformed_events_cursor_is_refused(graph: IdentityGraph) -> None:
    [o] = await graph.ingest([observe("m1", "user_id:u1", event="Clicked")])
    assert o.profile_id
    for cursor in ("no-separator", "soon|m1"):
        with pytest.raises(InvalidOperation, match="malformed events cursor"):
            await graph.store.events([o.profile_id], first=5, after=cursor, types=None)


async def test_events_with_equal_times_page_without_loss(graph: IdentityGraph) -> None:
    await graph.ingest([observe(f"e{i}", "anonymous_id:a1", t=0, event="Tick") for i in range(5)])
    pid = await _owner(graph.store, "anonymous_id:a1")
    first = (await graph.store.events([pid], first=2, after=None, types=None))[pid]
    rest = (await graph.store.events([pid], first=10, after=first.cursor, types=None))[pid]
    ids = [e.message_id for e in (*first.items, *rest.items)]
    assert sorted(ids) == [f"e{i}" for i in range(5)] and len(set(ids)) == 5


async def test_identify_and_alias_produce_no_events(graph: IdentityGraph) -> None:
    await graph.ingest(
        [
            observe("m1", "anonymous_id:a1", "user_id:u1", traits={"name": "Jo"}),
            observe("m2", "user_id:u1", "user_id:u1", type=MessageType.ALIAS),
            observe("m3", "user_id:u1", type=MessageType.GROUP, traits={"company": "X"}),
        ]
    )
    pid = await _owner(graph.store, "user_id:u1")
    page = (await graph.store.events([pid], first=10, after=None, types=None))[pid]
    assert page.total == 0 and page.items == ()


async def test_events_follow_the_profile_through_merge_undo_and_unmerge(
    graph: IdentityGraph,
) -> None:
    store = graph.store
    await graph.ingest([observe("m1", "anonymous_id:a1", t=0, event="Viewed Home")])
    await graph.ingest([observe("m2", "user_id:u1", t=5, event="Logged In")])
    [merged] = await graph.ingest([observe("m3", "anonymous_id:a1", "user_id:u1", t=9)])
    survivor = merged.profile_id
    assert survivor is not None

    async def names(pid: str) -> list[str | None]:
        page = (await store.events([pid], first=10, after=None, types=None))[pid]
        return [e.name for e in page.items]

    assert await names(survivor) == ["Logged In", "Viewed Home"]
    undo = await graph.undo_merge(merged.merges[0], actor="ops")
    assert await names(undo.survivor) == ["Viewed Home"]
    assert await names(undo.absorbed) == ["Logged In"]
    await graph.ingest([observe("m4", "anonymous_id:a1", "user_id:u1", t=20)])
    split = await graph.unmerge(survivor, ["user_id:u1"], actor="ops")
    assert await names(split.survivor) == ["Viewed Home"]
    assert await names(split.absorbed) == ["Logged In"]


async def test_consent_is_the_most_restrictive_latest_choice(graph: IdentityGraph) -> None:
    store = graph.store
    [a] = await graph.ingest([observe("m1", "anonymous_id:a1", t=0)])
    [b] = await graph.ingest([observe("m2", "user_id:u1", t=1)])
    assert a.profile_id and b.profile_id
    granted = ConsentStatus.GRANTED
    await graph.set_consent(
        a.profile_id,
        {"email_marketing": granted, "analytics": granted},
        source="web",
        at=observe("x", t=2).timestamp,
    )
    await graph.set_consent(
        b.profile_id,
        {"email_marketing": ConsentStatus.DENIED},
        source="crm",
        at=observe("x", t=1.5).timestamp,
    )
    [m] = await graph.ingest([observe("m3", "anonymous_id:a1", "user_id:u1", t=3)])
    assert m.profile_id == a.profile_id
    records = (await store.consents([a.profile_id]))[a.profile_id]
    effective = effective_consent(records)
    assert effective["email_marketing"].status is ConsentStatus.DENIED
    assert effective["analytics"].status is ConsentStatus.GRANTED
    current = await graph.set_consent(
        b.profile_id, {"email_marketing": granted}, source="web", at=observe("x", t=4).timestamp
    )
    assert current == a.profile_id
    records = (await store.consents([current]))[current]
    assert effective_consent(records)["email_marketing"].status is ConsentStatus.GRANTED
    assert {r.identifier_key for r in records if r.at == observe("x", t=4).timestamp} == {
        "anonymous_id:a1",
        "user_id:u1",
    }


async def test_consent_rejects_unknown_purposes_and_profiles(graph: IdentityGraph) -> None:
    with pytest.raises(MalformedObservation):
        await graph.set_consent("p", {"telepathy": ConsentStatus.GRANTED}, source="web")
    with pytest.raises(NotFound):
        await graph.set_consent("nobody", {"analytics": ConsentStatus.GRANTED}, source="web")


async def test_consent_in_an_observation_lands_on_its_profile(graph: IdentityGraph) -> None:
    obs = replace(
        observe("m1", "anonymous_id:a1", "email:jo@x.io", t=0),
        consent={"advertising": ConsentStatus.REVOKED},
    )
    [outcome] = await graph.ingest([obs])
    assert outcome.profile_id
    records = (await graph.store.consents([outcome.profile_id]))[outcome.profile_id]
    assert {(r.identifier_key, r.purpose, r.status) for r in records} == {
        ("anonymous_id:a1", "advertising", ConsentStatus.REVOKED),
        ("email:jo@x.io", "advertising", ConsentStatus.REVOKED),
    }


async def test_consent_survives_a_merge_later_in_the_same_batch(graph: IdentityGraph) -> None:
    [old] = await graph.ingest([observe("m0", "user_id:u1", t=0)])
    obs = replace(
        observe("m1", "anonymous_id:a1", t=1), consent={"advertising": ConsentStatus.DENIED}
    )
    await graph.ingest([obs, observe("m2", "anonymous_id:a1", "user_id:u1", t=2)])
    assert old.profile_id
    records = (await graph.store.consents([old.profile_id]))[old.profile_id]
    assert effective_consent(records)["advertising"].status is ConsentStatus.DENIED


async def test_list_profiles_filters_and_pages(graph: IdentityGraph) -> None:
    store = graph.store
    await graph.ingest(
        [
            observe("m1", "user_id:u1", "email:a@x.io", traits={"plan": "pro"}),
            observe("m2", "user_id:u2", traits={"plan": "free"}),
            observe("m3", "anonymous_id:a3", "email:c@x.io"),
            observe("m4", "anonymous_id:a4"),
            observe("m5", "anonymous_id:a5"),
        ]
    )
    owner = await store.profile_ids(
        ["user_id:u1", "user_id:u2", "anonymous_id:a3", "anonymous_id:a4", "anonymous_id:a5"]
    )
    everyone = sorted(owner.values())
    ids, cursor = [], None
    while True:
        page = await store.list_profiles(
            first=2, after=cursor, where=ProfileFilter(), count_up_to=None
        )
        assert page.total == 5 and len(page.items) <= 2
        assert page.more is (page.cursor is not None)
        ids.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            break
    assert ids == everyone

    async def matching(where: ProfileFilter) -> list[str]:
        page = await store.list_profiles(first=50, after=None, where=where, count_up_to=None)
        assert page.total == len(page.items) and page.cursor is None
        return list(page.items)

    assert await matching(ProfileFilter(has_kind="email")) == sorted(
        [owner["user_id:u1"], owner["anonymous_id:a3"]]
    )
    assert await matching(ProfileFilter(trait=("plan", "pro"))) == [owner["user_id:u1"]]
    keys = ("anonymous_id:a4", "user_id:u2", "email:zz@x.io")
    assert await matching(ProfileFilter(identifier_keys=keys)) == sorted(
        [owner["anonymous_id:a4"], owner["user_id:u2"]]
    )
    assert await matching(ProfileFilter(has_kind="email", trait=("plan", "free"))) == []
    await graph.set_consent(
        owner["anonymous_id:a5"], {"analytics": ConsentStatus.GRANTED}, source="web"
    )
    assert await matching(ProfileFilter(consent_granted="analytics")) == [owner["anonymous_id:a5"]]
    await graph.ingest([observe("m6", "anonymous_id:a4", "anonymous_id:a5")])
    everyone = await store.list_profiles(
        first=50, after=None, where=ProfileFilter(), count_up_to=None
    )
    assert everyone.total == 4


async def test_the_consent_filter_follows_the_effective_choice(graph: IdentityGraph) -> None:
    store = graph.store
    granted = ProfileFilter(consent_granted="email_marketing")

    async def matching() -> set[str]:
        page = await store.list_profiles(first=50, after=None, where=granted, count_up_to=None)
        assert page.total == len(page.items)
        return set(page.items)

    [one] = await graph.ingest([observe("m1", "email:one@x.io", t=0)])
    [two] = await graph.ingest([observe("m2", "email:two@x.io", t=1)])
    assert one.profile_id and two.profile_id
    yes, no = ConsentStatus.GRANTED, ConsentStatus.REVOKED
    await graph.set_consent(one.profile_id, {"email_marketing": yes}, source="t", at=at(2))
    await graph.set_consent(two.profile_id, {"email_marketing": yes}, source="t", at=at(2))
    assert await matching() == {one.profile_id, two.profile_id}
    await graph.set_consent(two.profile_id, {"email_marketing": no}, source="t", at=at(3))
    assert await matching() == {one.profile_id}
    await graph.set_consent(two.profile_id, {"email_marketing": yes}, source="t", at=at(4))
    assert await matching() == {one.profile_id, two.profile_id}
    await graph.set_consent(one.profile_id, {"email_marketing": no}, source="t", at=at(5))
    [merged] = await graph.ingest([observe("m3", "email:one@x.io", "email:two@x.io", t=6)])
    assert merged.profile_id
    records = (await store.consents([merged.profile_id]))[merged.profile_id]
    assert effective_consent(records)["email_marketing"].status is no
    assert await matching() == set()


async def _views_agree(graph: IdentityGraph, purpose: str) -> set[str]:
    """The profiles granted `purpose`, checked to be the same by the filter and by the
    domain's rule over each profile's records (what `Customer.consents` shows)."""
    store = graph.store
    everyone = (await store.list_profiles(first=100, after=None, where=ProfileFilter())).items
    records = await store.consents(list(everyone))
    shown = {
        pid
        for pid in everyone
        if (chosen := effective_consent(records[pid]).get(purpose)) is not None
        and chosen.status is ConsentStatus.GRANTED
    }
    page = await store.list_profiles(
        first=100, after=None, where=ProfileFilter(consent_granted=purpose), count_up_to=None
    )
    assert page.total == len(page.items)
    assert set(page.items) == shown
    return shown


async def test_the_filter_and_the_profile_agree_on_ties(graph: IdentityGraph) -> None:
    """Two choices with the same time, GRANTED on one identifier and DENIED on another, then
    merged: the most restrictive wins, for the profile's consents and for the filter alike;
    undone, each side has its own again. On one identifier, the choice stored later wins."""
    [a] = await graph.ingest([observe("m1", "anonymous_id:a1", t=0)])
    [b] = await graph.ingest([observe("m2", "user_id:u1", t=1)])
    assert a.profile_id and b.profile_id
    email = "email_marketing"
    await graph.set_consent(a.profile_id, {email: ConsentStatus.GRANTED}, source="t", at=at(2))
    await graph.set_consent(b.profile_id, {email: ConsentStatus.DENIED}, source="t", at=at(2))
    assert await _views_agree(graph, email) == {a.profile_id}
    [m] = await graph.ingest([observe("m3", "anonymous_id:a1", "user_id:u1", t=3)])
    assert m.profile_id == a.profile_id
    assert await _views_agree(graph, email) == set()
    records = (await graph.store.consents([m.profile_id]))[m.profile_id]
    assert effective_consent(records)[email].status is ConsentStatus.DENIED
    await graph.undo_merge(m.merges[0], actor="ops")
    assert await _views_agree(graph, email) == {a.profile_id}
    # on one identifier, of two choices with the same time the one stored later holds
    await graph.set_consent(b.profile_id, {email: ConsentStatus.GRANTED}, source="t", at=at(2))
    assert await _views_agree(graph, email) == {a.profile_id, b.profile_id}
    await graph.set_consent(a.profile_id, {email: ConsentStatus.DENIED}, source="t", at=at(2))
    assert await _views_agree(graph, email) == {b.profile_id}


async def test_a_choice_stored_later_wins_whatever_time_it_claims(graph: IdentityGraph) -> None:
    """On one identifier, choices count in the order c360 stored them: a later one claiming
    an earlier (or the same) time still supersedes; a claimed time later than now is now."""
    [a] = await graph.ingest([observe("m1", "anonymous_id:a1", t=0)])
    assert a.profile_id
    ads = "advertising"
    future = at(10**9)
    await graph.set_consent(a.profile_id, {ads: ConsentStatus.GRANTED}, source="t", at=future)
    [record] = (await graph.store.consents([a.profile_id]))[a.profile_id]
    assert record.at < future
    for status, claimed in (
        (ConsentStatus.REVOKED, at(1)),
        (ConsentStatus.GRANTED, at(1)),
        (ConsentStatus.DENIED, at(0)),
    ):
        await graph.set_consent(a.profile_id, {ads: status}, source="t", at=claimed)
        records = (await graph.store.consents([a.profile_id]))[a.profile_id]
        assert effective_consent(records)[ads].status is status
        granted = await _views_agree(graph, ads)
        assert (a.profile_id in granted) is (status is ConsentStatus.GRANTED)


async def test_a_split_decides_each_sides_consent_anew(graph: IdentityGraph) -> None:
    [a] = await graph.ingest([observe("m1", "anonymous_id:a1", "user_id:u1", t=0)])
    assert a.profile_id
    obs = replace(observe("m2", "email:e@x.io", t=1), consent={"analytics": ConsentStatus.DENIED})
    [e] = await graph.ingest([obs])
    assert e.profile_id
    await graph.set_consent(a.profile_id, {"analytics": ConsentStatus.GRANTED}, source="t")
    [m] = await graph.ingest([observe("m3", "user_id:u1", "email:e@x.io", t=2)])
    assert await _views_agree(graph, "analytics") == set()
    split = await graph.unmerge(a.profile_id, ["email:e@x.io"], actor="ops")
    assert await _views_agree(graph, "analytics") == {a.profile_id}
    records = (await graph.store.consents([split.absorbed]))[split.absorbed]
    assert effective_consent(records)["analytics"].status is ConsentStatus.DENIED
    assert m.profile_id == a.profile_id
