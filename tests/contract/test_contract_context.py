"""`customer_context`: the customer and what a request reads of it, in one call, agreeing
with the separate reads."""

from __future__ import annotations

import pytest
from streams import observe

from identity_graph.errors import InvalidOperation
from identity_graph.service import IdentityGraph


async def test_the_context_agrees_with_the_separate_reads(graph: IdentityGraph) -> None:
    store = graph.store
    outcomes = await graph.ingest(
        [
            observe("m1", "email:cy@x.io", "user_id:cy", t=0, traits={"name": "Cy", "plan": "a"}),
            *[
                observe(f"e{n}", "user_id:cy", t=n, event="Viewed", properties={"n": n})
                for n in range(1, 8)
            ],
            observe("m2", "anonymous_id:cy-1", "user_id:cy", t=9, traits={"plan": "b"}),
            observe("other", "email:dee@x.io", t=10, event="Viewed"),
        ]
    )
    pid = outcomes[0].profile_id
    assert pid
    by_key = await store.customer_context(
        key="email:cy@x.io", traits=True, events=3, count_events=None
    )
    assert by_key is not None
    assert by_key.profile == (await store.profiles([pid]))[pid]
    assert by_key.traits == (await store.traits([pid]))[pid]
    separate = (await store.events([pid], first=3, after=None, types=None, count_up_to=None))[pid]
    assert by_key.events == separate
    assert by_key.events is not None and by_key.events.total == 7 and by_key.events.more
    bounded = await store.customer_context(key="email:cy@x.io", events=3, count_events=5)
    assert bounded is not None and bounded.events is not None and bounded.events.total == 5
    uncounted = await store.customer_context(key="email:cy@x.io", events=3)
    assert uncounted is not None and uncounted.events is not None
    assert uncounted.events.total == 0 and uncounted.events.items == by_key.events.items
    bare = await store.customer_context(key="user_id:cy")
    assert bare is not None and (bare.traits, bare.events) == (None, None)
    assert bare.profile == by_key.profile


async def test_the_context_by_id_follows_redirects(graph: IdentityGraph) -> None:
    [a] = await graph.ingest([observe("m1", "anonymous_id:r1", t=0)])
    [b] = await graph.ingest([observe("m2", "email:rho@x.io", t=1, event="Signed Up")])
    [m] = await graph.ingest([observe("m3", "anonymous_id:r1", "email:rho@x.io", t=2)])
    assert a.profile_id and b.profile_id and m.profile_id and m.merges
    absorbed = b.profile_id if m.profile_id == a.profile_id else a.profile_id
    found = await graph.store.customer_context(profile_id=absorbed, events=5)
    assert found is not None and found.profile.id == m.profile_id
    assert found.events is not None and [e.name for e in found.events.items] == ["Signed Up"]
    empty = await graph.store.customer_context(profile_id=m.profile_id, events=0)
    assert empty is not None and empty.events is not None
    assert (empty.events.items, empty.events.more) == ((), True)


async def test_an_unknown_customer_has_no_context(graph: IdentityGraph) -> None:
    assert await graph.store.customer_context(key="email:nobody@x.io", traits=True) is None
    assert await graph.store.customer_context(profile_id="no-such-id", events=5) is None
    with pytest.raises(InvalidOperation):
        await graph.store.customer_context(key="email:a@x.io", profile_id="p")


async def test_links_are_every_link_among_a_profiles_identifiers(graph: IdentityGraph) -> None:
    [one] = await graph.ingest([observe("l1", "user_id:lu", "email:lu@x.io", t=0)])
    await graph.ingest([observe("l2", "user_id:lu", "anonymous_id:la", t=1)])
    await graph.ingest([observe("l3", "email:other@x.io", "anonymous_id:lo", t=2)])
    pid = one.profile_id
    assert pid
    found = await graph.store.links([pid, "no-such-profile"])
    assert list(found) == [pid]
    assert [(x.a, x.b, x.message_id) for x in found[pid]] == [
        ("anonymous_id:la", "user_id:lu", "l2"),
        ("email:lu@x.io", "user_id:lu", "l1"),
    ]
    path = await graph.store.link_path("email:lu@x.io", "anonymous_id:la", max_hops=5)
    assert path is not None
    assert {frozenset((x.a, x.b)) for x in path} <= {frozenset((x.a, x.b)) for x in found[pid]}
