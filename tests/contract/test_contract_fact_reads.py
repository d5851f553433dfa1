"""The reads audiences use (`events_of`, `traits_named`, `identifier_kinds`): each store's
filtered statement agrees with the port's defaults, which read everything and filter."""

from __future__ import annotations

from streams import observe

from identity_graph.model import MessageType
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore

TRACK, PAGE = MessageType.TRACK, MessageType.PAGE


async def test_filtered_reads_agree_with_reading_everything(graph: IdentityGraph) -> None:
    store = graph.store
    outcomes = await graph.ingest(
        [
            observe("m1", "email:cy@x.io", "user_id:cy", t=0, traits={"plan": "a", "n": 1}),
            observe("o1", "user_id:cy", t=1, event="Order Completed", properties={"total": 5}),
            observe("o2", "email:cy@x.io", t=2, event="Order Completed", properties={"total": 7}),
            observe("v1", "user_id:cy", t=3, event="Product Viewed"),
            observe("p1", "anonymous_id:a-1", "user_id:cy", t=4, type=PAGE, event="Pricing"),
            observe("m2", "anonymous_id:a-1", t=5, traits={"plan": "b", "o'k": True}),
            observe("d1", "email:dee@x.io", t=6, event="Order Completed"),
        ]
    )
    cy, dee = outcomes[0].profile_id, outcomes[-1].profile_id
    assert cy and dee and cy != dee
    ids = [cy, dee, "no-such-profile"]

    def ids_of(found: dict[str, list]) -> dict[str, list[str]]:
        return {pid: sorted(e.message_id for e in events) for pid, events in found.items()}

    for selectors in (
        {(TRACK, "Order Completed")},
        {(TRACK, "Order Completed"), (TRACK, "Product Viewed")},
        {(PAGE, None)},
        {(TRACK, None), (TRACK, "Order Completed")},
        {(TRACK, "Nothing")},
        set(),
    ):
        filtered = await store.events_of(ids, selectors)
        everything = await IdentityStore.events_of(store, ids, selectors)
        assert ids_of(filtered) == ids_of(everything), selectors
        assert sorted(filtered[cy]) == sorted(everything[cy])
    assert ids_of(await store.events_of(ids, {(TRACK, "Order Completed")})) == {
        cy: ["o1", "o2"],
        dee: ["d1"],
        "no-such-profile": [],
    }
    assert ids_of(await store.events_of([cy], {(PAGE, None)})) == {cy: ["p1"]}

    for names in ({"plan"}, {"plan", "o'k"}, {"missing"}, set()):
        assert await store.traits_named(ids, names) == await IdentityStore.traits_named(
            store, ids, names
        )
    assert [v.value for v in (await store.traits_named([cy], {"plan"}))[cy]] == ["a", "b"]

    kinds = await store.identifier_kinds(ids)
    assert kinds == await IdentityStore.identifier_kinds(store, ids)
    assert kinds == {cy: {"email", "user_id", "anonymous_id"}, dee: {"email"}}
