"""Pseudonymous lookups: a keyed digest stored with each new identifier finds its customer."""

from __future__ import annotations

import hashlib

import pytest
from streams import observe

from identity_graph.errors import InvalidOperation
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore


def digest(value: str) -> str:
    return hashlib.sha256(b"contract-key:" + value.encode()).hexdigest()


async def test_a_digest_finds_the_current_customer_through_merges(store: IdentityStore) -> None:
    graph = IdentityGraph(store, Rules.default(), digest=digest)
    [first] = await graph.ingest([observe("m1", "email:jo@x.io", "anonymous_id:a1", t=0)])
    [second] = await graph.ingest([observe("m2", "user_id:u1", t=1)])
    assert await store.profile_ids_by_digest([digest("jo@x.io")], kind="email") == {
        digest("jo@x.io"): first.profile_id
    }
    [merge] = await graph.ingest([observe("m3", "user_id:u1", "anonymous_id:a1", t=2)])
    found = await store.profile_ids_by_digest(
        [digest("u1"), digest("nobody"), digest("u1")], kind="user_id"
    )
    assert found == {digest("u1"): merge.profile_id}
    assert merge.profile_id in {first.profile_id, second.profile_id}
    assert await store.profile_ids_by_digest([digest("u1")], kind="email") == {}
    assert await store.profile_ids_by_digest([], kind="user_id") == {}


async def test_identifiers_ingested_without_a_digest_are_not_found_by_one(
    store: IdentityStore,
) -> None:
    plain = IdentityGraph(store, Rules.default())
    await plain.ingest([observe("m1", "email:jo@x.io", t=0)])
    keyed = IdentityGraph(store, Rules.default(), digest=digest)
    await keyed.ingest([observe("m2", "email:jo@x.io", "email:al@x.io", t=1)])
    found = await store.profile_ids_by_digest([digest("jo@x.io"), digest("al@x.io")], kind="email")
    assert list(found) == [digest("al@x.io")]


def other_digest(value: str) -> str:
    return hashlib.sha256(b"rotated-key:" + value.encode()).hexdigest()


async def test_rehash_stores_every_digest_under_the_current_key(store: IdentityStore) -> None:
    """After the key changes (or for identifiers stored without digests), `rehash` makes
    lookups by digest find every identifier again, and old digests find no one."""
    plain = IdentityGraph(store, Rules.default())
    [jo] = await plain.ingest([observe("m1", "email:jo@x.io", "user_id:u1", t=0)])
    keyed = IdentityGraph(store, Rules.default(), digest=digest)
    [al] = await keyed.ingest([observe("m2", "email:al@x.io", t=1)])
    emails = [digest("jo@x.io"), digest("al@x.io")]
    assert list(await store.profile_ids_by_digest(emails, kind="email")) == [digest("al@x.io")]
    assert await keyed.rehash(batch=2) == 3
    assert await store.profile_ids_by_digest(emails, kind="email") == {
        digest("jo@x.io"): jo.profile_id,
        digest("al@x.io"): al.profile_id,
    }
    assert await store.profile_ids_by_digest([digest("u1")], kind="user_id") == {
        digest("u1"): jo.profile_id
    }
    rotated = IdentityGraph(store, Rules.default(), digest=other_digest)
    pages: list[int] = []
    assert await rotated.rehash(batch=2, progress=pages.append) == 3
    assert pages == [2, 1]
    assert await store.profile_ids_by_digest(emails, kind="email") == {}
    found = await store.profile_ids_by_digest([other_digest("al@x.io")], kind="email")
    assert found == {other_digest("al@x.io"): al.profile_id}
    with pytest.raises(InvalidOperation, match="no digest key"):
        await plain.rehash()


async def test_identifier_keys_page_in_key_order(store: IdentityStore) -> None:
    graph = IdentityGraph(store, Rules.default())
    await graph.ingest([observe("m1", "user_id:u2", "email:b@x.io", "anonymous_id:a1", t=0)])
    await graph.ingest([observe("m2", "user_id:u1", t=1)])
    keys, after = [], None
    while page := await store.identifier_keys(first=3, after=after):
        assert len(page) <= 3
        keys.extend(page)
        after = page[-1]
    assert keys == ["anonymous_id:a1", "email:b@x.io", "user_id:u1", "user_id:u2"]
