"""Undo and split merges, and explain why two identifiers belong together."""

from __future__ import annotations

import pytest
from streams import check_invariants, groups, observe, partition

from identity_graph.errors import InvalidOperation, NotFound
from identity_graph.model import Identifier, MergeKind
from identity_graph.service import IdentityGraph

A = frozenset({"anonymous_id:a1", "user_id:u1"})
B = frozenset({"anonymous_id:a2", "email:jo@x.io"})


async def _merged(graph: IdentityGraph) -> tuple[str, str, str]:
    """Two profiles, A (older) and B, merged by a third message: (a id, b id, merge id)."""
    [a] = await graph.ingest([observe("m1", *A, t=0)])
    [b] = await graph.ingest([observe("m2", *B, t=10)])
    [m] = await graph.ingest([observe("m3", "user_id:u1", "email:jo@x.io", t=20)])
    assert a.profile_id and b.profile_id and m.profile_id == a.profile_id
    return a.profile_id, b.profile_id, m.merges[0]


async def test_undo_restores_the_previous_partition_and_the_absorbed_id(
    graph: IdentityGraph,
) -> None:
    a, b, merge_id = await _merged(graph)
    store = graph.store
    assert groups(await partition(store)) == {A | B}
    undo = await graph.undo_merge(merge_id, actor="ops@c360")
    assert undo.kind is MergeKind.UNDO and undo.undoes == merge_id
    assert (undo.survivor, undo.absorbed) == (a, b)
    assert set(undo.identifiers) == B
    part = await partition(store)
    assert part == {a: A, b: B}
    await check_invariants(store, graph.rules, part)
    assert await store.resolve_profiles([a, b]) == {a: a, b: b}
    history = (await store.merge_history([b]))[b]
    assert [r.kind for r in history] == [MergeKind.MERGE, MergeKind.UNDO]
    assert history[0].undone_by == undo.id
    path = await graph.explain_link(Identifier("user_id", "u1"), Identifier("email", "jo@x.io"))
    assert not path.linked


async def test_undo_twice_or_an_unknown_merge_fails(graph: IdentityGraph) -> None:
    _, _, merge_id = await _merged(graph)
    undo = await graph.undo_merge(merge_id, actor="ops")
    before = await partition(graph.store)
    with pytest.raises(InvalidOperation):
        await graph.undo_merge(merge_id, actor="ops")
    with pytest.raises(InvalidOperation):
        await graph.undo_merge(undo.id, actor="ops")
    with pytest.raises(NotFound):
        await graph.undo_merge("no-such-merge", actor="ops")
    assert await partition(graph.store) == before


async def test_a_merge_can_happen_again_after_its_undo(graph: IdentityGraph) -> None:
    a, b, merge_id = await _merged(graph)
    await graph.undo_merge(merge_id, actor="ops")
    [again] = await graph.ingest([observe("m4", "anonymous_id:a2", "user_id:u1", t=30)])
    assert again.profile_id == a and len(again.merges) == 1
    assert await partition(graph.store) == {a: A | B}
    assert await graph.store.resolve_profiles([b]) == {b: a}


async def test_unmerge_splits_identifiers_into_a_new_profile(graph: IdentityGraph) -> None:
    a, _, _ = await _merged(graph)
    record = await graph.unmerge(a, ["email:jo@x.io", "anonymous_id:a2"], actor="ops")
    assert record.kind is MergeKind.UNMERGE
    assert record.survivor == a and record.absorbed != a
    assert set(record.identifiers) == B
    part = await partition(graph.store)
    assert part == {a: A, record.absorbed: B}
    await check_invariants(graph.store, graph.rules, part)
    history = (await graph.store.merge_history([record.absorbed]))[record.absorbed]
    assert [r.id for r in history] == [record.id]


async def test_unmerge_of_unlinked_identifiers_keeps_them_together(graph: IdentityGraph) -> None:
    [p] = await graph.ingest([observe("m1", "user_id:u1", "email:a@x.io", "email:b@x.io")])
    assert p.profile_id
    record = await graph.unmerge(p.profile_id, ["email:a@x.io", "email:b@x.io"], actor="ops")
    part = await partition(graph.store)
    assert part == {
        p.profile_id: frozenset({"user_id:u1"}),
        record.absorbed: frozenset({"email:a@x.io", "email:b@x.io"}),
    }
    why = await graph.explain_link(Identifier("email", "a@x.io"), Identifier("email", "b@x.io"))
    assert why.linked and [x.rule for x in why.path] == ["unmerge"]


async def test_unmerge_refuses_bad_requests(graph: IdentityGraph) -> None:
    a, _, _ = await _merged(graph)
    with pytest.raises(NotFound):
        await graph.unmerge("nobody", ["user_id:u1"], actor="ops")
    with pytest.raises(InvalidOperation):
        await graph.unmerge(a, ["user_id:u9"], actor="ops")
    with pytest.raises(InvalidOperation):
        await graph.unmerge(a, sorted(A | B), actor="ops")
    with pytest.raises(InvalidOperation):
        await graph.unmerge(a, [], actor="ops")
    assert groups(await partition(graph.store)) == {A | B}


async def test_explain_link_returns_the_chain_with_its_evidence(graph: IdentityGraph) -> None:
    await graph.ingest([observe("m1", "anonymous_id:a1", "user_id:u1", t=0, source="ios")])
    await graph.ingest([observe("m2", "user_id:u1", "email:jo@x.io", t=5, source="crm")])
    why = await graph.explain_link(Identifier("anonymous_id", "a1"), Identifier("email", "jo@x.io"))
    assert why.linked and why.profile_id is not None
    assert [(x.a, x.b) for x in why.path] == [
        ("anonymous_id:a1", "user_id:u1"),
        ("user_id:u1", "email:jo@x.io"),
    ]
    assert [(x.source, x.message_id, x.observed_at) for x in why.path] == [
        ("ios", "m1", observe("x", t=0).timestamp),
        ("crm", "m2", observe("x", t=5).timestamp),
    ]
    assert all(x.rule == "co-observed:identify" for x in why.path)


async def test_explain_link_of_separate_or_unknown_identifiers(graph: IdentityGraph) -> None:
    await graph.ingest([observe("m1", "user_id:u1"), observe("m2", "user_id:u2")])
    why = await graph.explain_link(Identifier("user_id", "u1"), Identifier("user_id", "u2"))
    assert not why.linked and why.path == () and why.profile_id is None
    with pytest.raises(NotFound):
        await graph.explain_link(Identifier("user_id", "u1"), Identifier("user_id", "u3"))


async def test_undo_gives_each_side_its_own_id_back_even_after_a_late_message(
    graph: IdentityGraph,
) -> None:
    [s] = await graph.ingest([observe("m1", "user_id:s", t=10)])
    [a] = await graph.ingest([observe("m2", "anonymous_id:a", t=20)])
    [m] = await graph.ingest([observe("m3", "anonymous_id:a", "user_id:s", t=30)])
    await graph.ingest([observe("m4", "anonymous_id:a", t=0)])  # late: a now looks oldest
    await graph.undo_merge(m.merges[0], actor="test")
    owners = await graph.store.profile_ids(["user_id:s", "anonymous_id:a"])
    assert owners == {"user_id:s": s.profile_id, "anonymous_id:a": a.profile_id}


async def test_undo_keeps_a_new_identifier_with_the_side_it_arrived_on(
    graph: IdentityGraph,
) -> None:
    [s] = await graph.ingest([observe("m1", "email:e@x.io", t=0)])
    [a] = await graph.ingest([observe("m2", "user_id:u", t=1)])
    [m] = await graph.ingest(
        [observe("m3", "user_id:u", "email:e@x.io", "phone:+14155550134", t=2)]
    )
    assert m.profile_id == s.profile_id
    await graph.undo_merge(m.merges[0], actor="test")
    part = await partition(graph.store)
    assert groups(part) == {
        frozenset({"email:e@x.io"}),
        frozenset({"user_id:u", "phone:+14155550134"}),
    }
    assert part[a.profile_id] == {"user_id:u", "phone:+14155550134"}


async def test_the_merges_of_one_message_undo_in_any_order(graph: IdentityGraph) -> None:
    """A message joins three profiles through its center, whose profile is not the oldest.
    Undoing the center's merge first gives its profile back with the third joined to it
    (they are still linked); undoing the third's merge then splits that off too."""
    older = frozenset({"anonymous_id:a1"})
    center = frozenset({"user_id:u2"})
    third = frozenset({"anonymous_id:a3"})
    [a] = await graph.ingest([observe("m1", *older, t=0)])
    [b] = await graph.ingest([observe("m2", *center, t=10)])
    [c] = await graph.ingest([observe("m3", *third, t=20)])
    [m] = await graph.ingest(
        [observe("m4", "user_id:u2", "anonymous_id:a1", "anonymous_id:a3", t=30)]
    )
    assert a.profile_id and b.profile_id and c.profile_id and m.profile_id == a.profile_id
    store = graph.store
    history = (await store.merge_history([a.profile_id]))[a.profile_id]
    by_absorbed = {r.absorbed: r.id for r in history if r.id in m.merges}
    assert set(by_absorbed) == {b.profile_id, c.profile_id}
    await graph.undo_merge(by_absorbed[b.profile_id], actor="ops@c360")
    assert await partition(store) == {a.profile_id: older, b.profile_id: center | third}
    undo = await graph.undo_merge(by_absorbed[c.profile_id], actor="ops@c360")
    assert (undo.survivor, undo.absorbed) == (b.profile_id, c.profile_id)
    part = await partition(store)
    assert part == {a.profile_id: older, b.profile_id: center, c.profile_id: third}
    await check_invariants(store, graph.rules, part)
