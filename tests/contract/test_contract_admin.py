"""Audit log, API keys, merge history, errors and round-trip counting."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from streams import T0, observe

from identity_graph.errors import InvalidOperation, MalformedObservation
from identity_graph.model import Identifier
from identity_graph.records import AccessRecords, ApiKey, AuditEntry
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore


def _entry(n: int, customer: str) -> AuditEntry:
    return AuditEntry(
        f"a{n}", T0 + timedelta(seconds=n), "key-1", "support", customer, ("email", f"field{n}")
    )


async def test_audit_log_pages_newest_first(store: IdentityStore) -> None:
    await store.records.append_audit([_entry(n, "p1" if n % 2 else "p2") for n in range(5)])
    await store.records.append_audit([])
    await store.records.append_audit([_entry(5, "p1")])
    seen, cursor = [], None
    while True:
        page = await store.records.audit_log(
            first=2, after=cursor, customer_id=None, count_up_to=None
        )
        assert page.total == 6
        assert page.more is (page.cursor is not None)
        seen.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            break
    assert [e.id for e in seen] == ["a5", "a4", "a3", "a2", "a1", "a0"]
    assert seen[0] == _entry(5, "p1")
    page = await store.records.audit_log(first=10, after=None, customer_id="p1", count_up_to=9)
    assert [e.id for e in page.items] == ["a5", "a3", "a1"] and page.total == 3
    assert not page.more
    counted = await store.records.audit_log(first=0, after=None, customer_id="p1", count_up_to=9)
    assert (counted.items, counted.total, counted.more) == ((), 3, True)
    with pytest.raises(InvalidOperation):
        await store.records.audit_log(first=2, after="not-a-cursor", customer_id=None)


async def _every_page(
    records: AccessRecords, *, first: int, customer_id: str | None = None
) -> list[AuditEntry]:
    seen: list[AuditEntry] = []
    cursor = None
    while True:
        page = await records.audit_log(first=first, after=cursor, customer_id=customer_id)
        seen.extend(page.items)
        if page.cursor is None:
            return seen
        cursor = page.cursor


async def test_audit_entries_appended_concurrently_are_each_listed_once(
    store: IdentityStore,
) -> None:
    """Appends need no shared counter: many at once each land, ordered by (at, id), with
    entries of the same time in id order, however the appends interleaved."""
    entries = [
        AuditEntry(
            f"e{n:02d}", T0 + timedelta(seconds=n // 3), "key-1", "support", f"p{n % 2}", ("x",)
        )
        for n in range(24)
    ]
    batches = [entries[n : n + 2] for n in range(0, len(entries), 2)]
    await asyncio.gather(*(store.records.append_audit(b) for b in reversed(batches)))
    newest_first = sorted(entries, key=lambda e: (e.at, e.id), reverse=True)
    assert await _every_page(store.records, first=5) == newest_first
    for customer in ("p0", "p1"):
        mine = [e for e in newest_first if e.customer_id == customer]
        assert await _every_page(store.records, first=4, customer_id=customer) == mine
        page = await store.records.audit_log(
            first=1, after=None, customer_id=customer, count_up_to=None
        )
        assert page.total == 12


async def test_an_audit_entry_appended_again_is_listed_once(store: IdentityStore) -> None:
    """A retried append (the same entries again) adds nothing."""
    batch = [_entry(1, "p1"), _entry(2, "p1")]
    await store.records.append_audit(batch)
    await store.records.append_audit([*batch, _entry(3, "p1")])
    assert [e.id for e in await _every_page(store.records, first=2)] == ["a3", "a2", "a1"]
    page = await store.records.audit_log(first=10, after=None, customer_id="p1", count_up_to=9)
    assert page.total == 3


async def test_api_keys_put_get_revoke(store: IdentityStore) -> None:
    key = ApiKey("k1", "hash-1", "support", "desk", T0)
    await store.records.put_api_key(key)
    assert await store.records.api_key("hash-1") == key
    assert await store.records.api_key("hash-2") is None
    later = T0 + timedelta(days=1)
    assert await store.records.revoke_api_key("k1", at=later) is True
    assert await store.records.revoke_api_key("k1", at=later + timedelta(days=1)) is False
    assert await store.records.revoke_api_key("nope", at=later) is False
    revoked = await store.records.api_key("hash-1")
    assert revoked is not None and revoked.revoked_at == later


async def test_api_keys_keep_their_expiry(store: IdentityStore) -> None:
    expires = T0 + timedelta(days=30)
    key = ApiKey("k1", "hash-1", "ingest", "web", T0, expires_at=expires)
    await store.records.put_api_key(key)
    assert await store.records.api_key("hash-1") == key
    assert key.usable(T0) and not key.usable(expires)
    await store.records.revoke_api_key("k1", at=T0 + timedelta(days=1))
    revoked = await store.records.api_key("hash-1")
    assert revoked is not None and revoked.expires_at == expires
    assert not revoked.usable(T0 + timedelta(days=2))


async def test_api_keys_are_listed_oldest_first_a_page_at_a_time(store: IdentityStore) -> None:
    """Revoked and expired keys too; keys made in the same instant in id order."""
    keys = [
        ApiKey(f"k{n}", f"hash-{n}", "support", f"key {n}", T0 + timedelta(seconds=n // 2))
        for n in (4, 0, 3, 1, 2)
    ]
    for key in keys:
        await store.records.put_api_key(key)
    await store.records.revoke_api_key("k3", at=T0 + timedelta(days=1))
    empty = await store.records.api_keys(first=0, after=None)
    assert (empty.items, empty.total, empty.more) == ((), 5, True)
    seen: list[ApiKey] = []
    cursor = None
    while True:
        page = await store.records.api_keys(first=2, after=cursor)
        assert page.total == 5 and page.more is (page.cursor is not None)
        seen.extend(page.items)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert [k.id for k in seen] == ["k0", "k1", "k2", "k3", "k4"]
    assert seen[3].revoked_at == T0 + timedelta(days=1)
    assert seen[0] == ApiKey("k0", "hash-0", "support", "key 0", T0)
    with pytest.raises(InvalidOperation):
        await store.records.api_keys(first=2, after="no-such-key")


async def test_merge_history_and_conflicts_of_unknown_profiles_are_empty(
    store: IdentityStore,
) -> None:
    assert await store.merge_history(["nobody"]) == {"nobody": []}
    assert await store.conflicts(["nobody"]) == {"nobody": []}
    assert await store.profiles(["nobody"]) == {}
    assert await store.resolve_profiles(["nobody"]) == {}
    assert await store.link_path("user_id:x", "user_id:y", max_hops=5) is None


async def test_malformed_observations_are_refused_whole(graph: IdentityGraph) -> None:
    good = observe("m1", "user_id:u1")
    bad_kind = replace(observe("m2"), identifiers=(Identifier("shoe_size", "42"),))
    naive = replace(observe("m3", "user_id:u3"), timestamp=good.timestamp.replace(tzinfo=None))
    for batch in ([good, bad_kind], [naive], [observe("", "user_id:u1")]):
        with pytest.raises(MalformedObservation):
            await graph.ingest(batch)
    assert await graph.store.profile_ids(["user_id:u1"]) == {}


async def test_round_trips_increase_with_calls(graph: IdentityGraph) -> None:
    store = graph.store
    start = store.round_trips
    await graph.ingest([observe("m1", "user_id:u1")])
    after_write = store.round_trips
    assert after_write > start
    await store.profile_ids(["user_id:u1"])
    assert store.round_trips > after_write
