"""Ingest, idempotency, merges, limits and blocked values, through the service."""

from __future__ import annotations

from streams import check_invariants, groups, observe, partition

from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore


async def test_ingest_creates_a_profile_holding_the_identifiers(graph: IdentityGraph) -> None:
    [outcome] = await graph.ingest([observe("m1", "anonymous_id:a1", "email:jo@x.io", t=5)])
    assert outcome.status == "applied"
    assert outcome.profile_id is not None
    store = graph.store
    owners = await store.profile_ids(["anonymous_id:a1", "email:jo@x.io", "email:no@x.io"])
    assert owners == {"anonymous_id:a1": outcome.profile_id, "email:jo@x.io": outcome.profile_id}
    profile = (await store.profiles([outcome.profile_id]))[outcome.profile_id]
    assert {r.identifier.key for r in profile.identifiers} == {"anonymous_id:a1", "email:jo@x.io"}
    assert all(r.sources == ("web",) for r in profile.identifiers)
    assert profile.created_at == observe("x", t=5).timestamp


async def test_replaying_a_message_changes_nothing(graph: IdentityGraph) -> None:
    first = observe("m1", "anonymous_id:a1", "user_id:u1", event="Signed Up")
    [applied] = await graph.ingest([first])
    before = await partition(graph.store)
    replay = observe("m1", "anonymous_id:a9", "user_id:u9", event="Other", t=50)
    outcomes = await graph.ingest([replay, first])
    assert [o.status for o in outcomes] == ["duplicate", "duplicate"]
    assert {o.profile_id for o in outcomes} == {applied.profile_id}
    assert await partition(graph.store) == before
    pages = await graph.store.events(
        [applied.profile_id], first=10, after=None, types=None, count_up_to=None
    )
    page = pages[applied.profile_id]
    assert page.total == 1 and page.items[0].name == "Signed Up"


async def test_a_message_repeated_inside_one_batch_applies_once(graph: IdentityGraph) -> None:
    outcomes = await graph.ingest(
        [observe("m1", "anonymous_id:a1", event="Viewed"), observe("m1", "anonymous_id:a1")]
    )
    assert [o.status for o in outcomes] == ["applied", "duplicate"]
    pid = outcomes[0].profile_id
    assert pid is not None
    pages = await graph.store.events([pid], first=10, after=None, types=None, count_up_to=None)
    assert pages[pid].total == 1


async def test_shared_identifier_merges_into_the_oldest_profile(graph: IdentityGraph) -> None:
    [old] = await graph.ingest([observe("m1", "anonymous_id:a1", t=0)])
    [young] = await graph.ingest([observe("m2", "email:jo@x.io", t=10)])
    [joined] = await graph.ingest([observe("m3", "anonymous_id:a1", "email:jo@x.io", t=20)])
    assert old.profile_id and young.profile_id
    assert joined.profile_id == old.profile_id
    assert len(joined.merges) == 1
    store = graph.store
    assert await store.resolve_profiles([young.profile_id, old.profile_id, "nope"]) == {
        young.profile_id: old.profile_id,
        old.profile_id: old.profile_id,
    }
    assert young.profile_id not in await store.profiles([young.profile_id])
    assert groups(await partition(store)) == {frozenset({"anonymous_id:a1", "email:jo@x.io"})}
    [record] = (await store.merge_history([old.profile_id]))[old.profile_id]
    assert (record.id, record.survivor, record.absorbed) == (
        joined.merges[0],
        old.profile_id,
        young.profile_id,
    )
    assert record.message_id == "m3"
    assert {frozenset((x.a, x.b)) for x in record.links} == {
        frozenset({"anonymous_id:a1", "email:jo@x.io"})
    }


async def test_redirects_follow_chains_of_merges(graph: IdentityGraph) -> None:
    [a] = await graph.ingest([observe("m1", "anonymous_id:a", t=0)])
    [b] = await graph.ingest([observe("m2", "anonymous_id:b", t=1)])
    [c] = await graph.ingest([observe("m3", "anonymous_id:c", t=2)])
    await graph.ingest([observe("m4", "anonymous_id:b", "anonymous_id:c", t=3)])
    await graph.ingest([observe("m5", "anonymous_id:a", "anonymous_id:b", t=4)])
    resolved = await graph.store.resolve_profiles([a.profile_id, b.profile_id, c.profile_id])
    assert set(resolved.values()) == {a.profile_id}


async def test_two_user_ids_never_merge_and_the_conflict_is_kept(graph: IdentityGraph) -> None:
    [first] = await graph.ingest([observe("m1", "user_id:u1", "anonymous_id:shared", t=0)])
    [second] = await graph.ingest(
        [observe("m2", "user_id:u2", "anonymous_id:shared", t=5, event="Logged In")]
    )
    assert second.status == "applied"
    assert second.profile_id != first.profile_id
    assert second.conflict is not None and second.merges == ()
    store = graph.store
    owners = await store.profile_ids(["user_id:u1", "user_id:u2", "anonymous_id:shared"])
    assert owners["anonymous_id:shared"] == first.profile_id
    assert owners["user_id:u2"] == second.profile_id
    assert second.profile_id is not None
    [conflict] = (await store.conflicts([second.profile_id]))[second.profile_id]
    assert conflict.id == second.conflict
    assert conflict.message_id == "m2"
    assert conflict.dropped == ("anonymous_id:shared",)
    assert "user_id" in conflict.reason and "limit 1" in conflict.reason
    events = await store.events(
        [first.profile_id or "", second.profile_id],
        first=10,
        after=None,
        types=None,
        count_up_to=None,
    )
    assert events[first.profile_id or ""].total == 0
    assert [e.name for e in events[second.profile_id].items] == ["Logged In"]
    assert [e.identifier_key for e in events[second.profile_id].items] == ["user_id:u2"]
    await check_invariants(store, graph.rules, await partition(store))


async def test_a_kind_limit_from_the_rules_is_never_exceeded(store: IdentityStore) -> None:
    rules = Rules.parse("[kinds.email]\nlimit = 2\n")
    graph = IdentityGraph(store, rules)
    await graph.ingest(
        [
            observe("m1", "email:a@x.io", "device_id:d1", t=0),
            observe("m2", "email:b@x.io", "device_id:d1", t=1),
            observe("m3", "email:c@x.io", "device_id:d1", t=2),
        ]
    )
    part = await partition(store)
    await check_invariants(store, rules, part)
    assert groups(part) == {
        frozenset({"email:a@x.io", "email:b@x.io", "device_id:d1"}),
        frozenset({"email:c@x.io"}),
    }


async def test_blocked_values_are_dropped_and_never_stored(graph: IdentityGraph) -> None:
    [outcome] = await graph.ingest(
        [
            observe(
                "m1",
                "anonymous_id:undefined",
                "device_id:000-000",
                "email:jo@x.io",
                "user_id:NULL",
                event="Clicked",
            )
        ]
    )
    assert outcome.status == "applied"
    store = graph.store
    assert await store.profile_ids(
        ["anonymous_id:undefined", "device_id:000-000", "user_id:NULL", "email:jo@x.io"]
    ) == {"email:jo@x.io": outcome.profile_id}
    assert groups(await partition(store)) == {frozenset({"email:jo@x.io"})}


async def test_an_observation_of_only_blocked_identifiers_is_dropped(
    graph: IdentityGraph,
) -> None:
    outcomes = await graph.ingest(
        [observe("m1", "anonymous_id:null", "user_id:0", event="Clicked"), observe("m2")]
    )
    assert [(o.status, o.profile_id) for o in outcomes] == [("dropped", None), ("dropped", None)]
    assert await partition(graph.store) == {}
    assert await graph.store.profile_ids(["anonymous_id:null", "user_id:0"]) == {}


async def test_a_batch_decides_in_order_against_its_own_earlier_decisions(
    graph: IdentityGraph,
) -> None:
    outcomes = await graph.ingest(
        [
            observe("m1", "anonymous_id:a1", t=0),
            observe("m2", "anonymous_id:a2", t=1),
            observe("m3", "anonymous_id:a1", "user_id:u1", t=2),
            observe("m4", "anonymous_id:a2", "user_id:u1", t=3),
            observe("m5", "anonymous_id:a3", "user_id:u2", t=4),
            observe("m6", "anonymous_id:a3", "anonymous_id:a1", t=5),
        ]
    )
    assert [o.status for o in outcomes] == ["applied"] * 6
    assert outcomes[3].profile_id == outcomes[0].profile_id
    assert outcomes[5].conflict is not None
    part = await partition(graph.store)
    await check_invariants(graph.store, graph.rules, part)
    assert groups(part) == {
        frozenset({"anonymous_id:a1", "anonymous_id:a2", "user_id:u1"}),
        frozenset({"anonymous_id:a3", "user_id:u2"}),
    }


async def test_identifier_sightings_widen_times_and_sources(graph: IdentityGraph) -> None:
    await graph.ingest([observe("m1", "email:jo@x.io", t=10, source="web")])
    await graph.ingest([observe("m2", "email:jo@x.io", t=30, source="crm")])
    await graph.ingest([observe("m3", "email:jo@x.io", t=5, source="web")])
    [pid] = (await graph.store.profile_ids(["email:jo@x.io"])).values()
    [record] = (await graph.store.profiles([pid]))[pid].identifiers
    assert (record.first_seen, record.last_seen) == (
        observe("x", t=5).timestamp,
        observe("x", t=30).timestamp,
    )
    assert sorted(record.sources) == ["crm", "web"]
