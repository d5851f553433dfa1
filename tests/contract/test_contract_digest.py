"""Pseudonymous lookups: a keyed digest stored with each new identifier finds its customer."""

from __future__ import annotations

import hashlib

from streams import observe

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
