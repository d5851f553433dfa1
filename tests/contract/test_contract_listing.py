"""Listings page in id order through every filter and count only what they are asked to:
`list_profiles`, `events` and the audit log, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams import observe

from identity_graph.model import ConsentStatus
from identity_graph.records import AuditEntry
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore, ProfileFilter


async def _people(graph: IdentityGraph) -> dict[str, str]:
    """Eight people a0..a7: every other one with an email (a0 with two), every third on the
    pro plan, a1, a2, a4 and a6 granting analytics; then a6 and a7 merged by a shared email.
    Identifier key -> profile id."""
    observations = []
    for n in range(8):
        keys = [f"anonymous_id:a{n}", *([f"email:p{n}@x.io"] if n % 2 == 0 else [])]
        plan = "pro" if n % 3 == 0 else "free"
        observations.append(observe(f"m{n}", *keys, t=n, traits={"plan": plan}))
    observations.append(observe("m8", "anonymous_id:a0", "email:second@x.io", t=8))
    await graph.ingest(observations)
    keys = [f"anonymous_id:a{n}" for n in range(8)]
    owner = await graph.store.profile_ids(keys)
    for n in (1, 2, 4, 6):
        granted = {"analytics": ConsentStatus.GRANTED}
        await graph.set_consent(owner[f"anonymous_id:a{n}"], granted, source="web")
    await graph.ingest([observe("m9", "anonymous_id:a7", "email:p6@x.io", t=9)])
    return await graph.store.profile_ids(keys)


async def _walk(store: IdentityStore, where: ProfileFilter, first: int) -> list[str]:
    """Every matching id, a page of `first` at a time, checking each page's shape."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list_profiles(first=first, after=cursor, where=where)
        assert len(page.items) <= first and page.total == 0
        assert page.more is (page.cursor is not None)
        if page.cursor is not None:
            assert page.cursor == page.items[-1]
        ids.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            return ids


async def test_every_filter_pages_in_id_order(graph: IdentityGraph) -> None:
    owner = await _people(graph)
    store = graph.store
    of = {n: owner[f"anonymous_id:a{n}"] for n in range(8)}
    assert of[6] == of[7]  # merged: the absorbed profile is listed by nobody
    cases = {
        ProfileFilter(): set(of.values()),
        ProfileFilter(has_kind="email"): {of[0], of[2], of[4], of[7]},
        ProfileFilter(has_kind="phone"): set(),
        ProfileFilter(consent_granted="analytics"): {of[1], of[2], of[4], of[7]},
        ProfileFilter(consent_granted="advertising"): set(),
        ProfileFilter(identifier_keys=("email:second@x.io", "anonymous_id:a5", "email:no@x.io")): {
            of[0],
            of[5],
        },
        ProfileFilter(has_kind="email", consent_granted="analytics"): {of[2], of[4], of[7]},
        ProfileFilter(has_kind="email", identifier_keys=("anonymous_id:a3", "anonymous_id:a4")): {
            of[4]
        },
        ProfileFilter(trait=("plan", "pro")): {of[0], of[3], of[7]},
        ProfileFilter(has_kind="email", trait=("plan", "free")): {of[2], of[4], of[7]},
        ProfileFilter(consent_granted="analytics", trait=("plan", "pro")): {of[7]},
    }
    for where, expected in cases.items():
        for first in (1, 2, 50):
            assert await _walk(store, where, first) == sorted(expected), (where, first)


async def test_the_total_counts_every_match_up_to_what_is_asked(graph: IdentityGraph) -> None:
    await _people(graph)
    store = graph.store
    emails = ProfileFilter(has_kind="email")
    everything = await store.list_profiles(first=1, after=None, where=emails, count_up_to=None)
    assert everything.total == 4 and len(everything.items) == 1
    # from the start, whatever the cursor: the total is not what follows it
    later = await store.list_profiles(
        first=1, after=everything.cursor, where=emails, count_up_to=100
    )
    assert later.total == 4 and later.items[0] > everything.items[0]
    bounded = await store.list_profiles(first=1, after=None, where=emails, count_up_to=3)
    assert bounded.total == 3 and bounded.items == everything.items
    unasked = await store.list_profiles(first=1, after=None, where=emails)
    assert unasked.total == 0 and unasked.items == everything.items and unasked.more
    granted = ProfileFilter(consent_granted="analytics", trait=("plan", "pro"))
    assert (await store.list_profiles(first=5, after=None, where=granted, count_up_to=9)).total == 1
    empty = await store.list_profiles(
        first=0, after=None, where=ProfileFilter(has_kind="phone"), count_up_to=9
    )
    assert (empty.items, empty.total, empty.more) == ((), 0, False)


async def test_events_count_only_what_they_are_asked_to(graph: IdentityGraph) -> None:
    await graph.ingest(
        [observe(f"e{n}", "user_id:u1", "anonymous_id:a1", t=n, event="Tick") for n in range(6)]
    )
    await graph.ingest([observe("e9", "anonymous_id:a1", t=9, event="Tock")])
    [pid] = (await graph.store.profile_ids(["user_id:u1"])).values()
    events = graph.store.events
    plain = (await events([pid], first=2, after=None, types=None))[pid]
    assert plain.total == 0 and len(plain.items) == 2 and plain.more
    exact = (await events([pid], first=2, after=None, types=None, count_up_to=None))[pid]
    assert exact.total == 7 and exact.items == plain.items
    bounded = (await events([pid], first=2, after=plain.cursor, types=None, count_up_to=5))[pid]
    assert bounded.total == 5 and bounded.items[0].timestamp < plain.items[-1].timestamp
    ticks = (await events([pid], first=10, after=None, types=["track"], count_up_to=9))[pid]
    assert ticks.total == 7 and len(ticks.items) == 7 and not ticks.more


async def test_the_audit_log_counts_only_what_it_is_asked_to(store: IdentityStore) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    await store.records.append_audit(
        [
            AuditEntry(f"a{n}", t0 + timedelta(seconds=n), "k", "support", f"p{n % 2}", ("email",))
            for n in range(5)
        ]
    )
    log = store.records.audit_log
    plain = await log(first=2, after=None, customer_id=None)
    assert plain.total == 0 and [e.id for e in plain.items] == ["a4", "a3"] and plain.more
    assert (await log(first=2, after=None, customer_id=None, count_up_to=None)).total == 5
    assert (await log(first=2, after=plain.cursor, customer_id=None, count_up_to=3)).total == 3
    mine = await log(first=1, after=None, customer_id="p0", count_up_to=10)
    assert mine.total == 3 and [e.id for e in mine.items] == ["a4"]
