"""Property test of live audiences, on every adapter: whatever stream of observations, merges,
undos, splits and consent choices, and whenever an audience is defined (built while the
stream goes on), the memberships the engine recorded equal a from-scratch evaluation of every
current profile over the final state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from streams import at, observe, partition
from test_resolver_properties import ADAPTERS, run

from identity_graph.audiences.definitions import parse_computed_trait, parse_condition
from identity_graph.audiences.engine import AudienceEngine
from identity_graph.audiences.evaluation import compute, holds
from identity_graph.errors import InvalidOperation, NotFound
from identity_graph.model import ConsentStatus, Observation
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore

KEYS = (
    "user_id:u0",
    "user_id:u1",
    "email:e0@x.io",
    "email:e1@x.io",
    "anonymous_id:a0",
    "anonymous_id:a1",
)
NOW = at(10**6)
TRAITS: dict[str, dict[str, Any]] = {
    "spend": {"kind": "sum", "event": "Order Completed", "property": "total"},
    "orders": {"kind": "event_count", "event": "Order Completed"},
    "favourite": {"kind": "most_frequent", "event": "Viewed", "property": "category"},
}
AUDIENCES: list[tuple[str, dict[str, Any], str | None]] = [
    ("emailable", {"identifier": {"kind": "email"}}, None),
    ("buyers", {"computed": {"name": "spend", "op": "gte", "value": 50}}, None),
    (
        "browsing_non_pro",
        {
            "all": [
                {"event": {"name": "Viewed", "type": "TRACK"}},
                {"not": {"trait": {"name": "plan", "op": "eq", "value": "pro"}}},
            ]
        },
        None,
    ),
    ("shoe_fans", {"computed": {"name": "favourite", "op": "eq", "value": "shoes"}}, None),
    (
        "ads",
        {
            "any": [
                {"trait": {"name": "plan", "op": "eq", "value": "pro"}},
                {"computed": {"name": "orders", "op": "gte", "value": 2}},
            ]
        },
        "advertising",
    ),
]

key_sets = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)
observations = st.tuples(
    st.just("observe"),
    key_sets,
    st.sampled_from(["pro", "free", "order", "shoes", "hats"]),
)
undos = st.tuples(st.just("undo"), st.integers(0, 5), st.none())
splits = st.tuples(st.just("split"), st.sampled_from(KEYS), st.none())
consents = st.tuples(
    st.just("consent"), st.sampled_from(KEYS), st.sampled_from(list(ConsentStatus))
)
settles = st.tuples(st.just("settle"), st.none(), st.none())
"""let the engine catch up (else it may evaluate only the final state)"""
steps = st.lists(
    st.one_of(observations, observations, undos, splits, consents, settles),
    min_size=3,
    max_size=14,
)


def observation(n: int, keys: list[str], what: str) -> Observation:
    if what in ("pro", "free"):
        return observe(f"m{n}", *keys, t=n, traits={"plan": what})
    if what == "order":
        return observe(f"m{n}", *keys, t=n, event="Order Completed", properties={"total": 30})
    return observe(f"m{n}", *keys, t=n, event="Viewed", properties={"category": what})


class Ticking:
    def __init__(self) -> None:
        self.seconds = 10**6

    def __call__(self) -> datetime:
        self.seconds += 1
        return at(self.seconds)


SETTLE = ("settle", None, None)
MERGE_UNDO_SPLIT = [
    ("observe", ["email:e0@x.io"], "order"),
    ("observe", ["anonymous_id:a0"], "shoes"),
    ("consent", "anonymous_id:a0", ConsentStatus.GRANTED),
    ("observe", ["user_id:u0", "anonymous_id:a1"], "pro"),
    ("observe", ["email:e0@x.io", "anonymous_id:a0"], "order"),
    ("observe", ["user_id:u0", "email:e0@x.io"], "order"),
    ("undo", 1, None),
    ("split", "anonymous_id:a0", None),
    ("consent", "user_id:u0", ConsentStatus.REVOKED),
]
"""two merges (the first absorbing a profile in several audiences), the second undone, a
split, consent given and revoked"""


@ADAPTERS
@settings(max_examples=20, deadline=None)
@example(script=MERGE_UNDO_SPLIT[:5], defined_at=0)
@example(script=MERGE_UNDO_SPLIT, defined_at=0)
@example(script=MERGE_UNDO_SPLIT, defined_at=5)
@example(script=[s for step in MERGE_UNDO_SPLIT for s in (step, SETTLE)], defined_at=0)
@given(script=steps, defined_at=st.integers(0, 12))
def test_live_membership_equals_a_fresh_evaluation(
    adapter: str, script: list[tuple[str, Any, Any]], defined_at: int
) -> None:
    async def body(store: IdentityStore) -> None:
        graph = IdentityGraph(store, Rules.default(), clock=Ticking())
        engine = AudienceEngine(
            store, store.audiences, Rules.default(), clock=lambda: NOW, tick=0.05
        )
        graph.listeners.append(engine.touched)
        await engine.start()
        try:
            for name, definition in TRAITS.items():
                await engine.define_computed_trait(name, definition)
            early, late = AUDIENCES[:2], AUDIENCES[2:]
            for name, condition, purpose in early:
                await engine.define_audience(name, condition, purpose)
            merges: list[str] = []
            for n, (what, arg, extra) in enumerate(script):
                if n == defined_at:
                    for name, condition, purpose in late:
                        await engine.define_audience(name, condition, purpose)
                await step(engine, graph, merges, n, what, arg, extra)
            if defined_at >= len(script):
                for name, condition, purpose in late:
                    await engine.define_audience(name, condition, purpose)
            await engine.settle()
            await check(engine)
        finally:
            await engine.stop()

    run(adapter, body)


async def step(
    engine: AudienceEngine,
    graph: IdentityGraph,
    merges: list[str],
    n: int,
    what: str,
    arg: Any,
    extra: Any,
) -> None:
    if what == "settle":
        await engine.settle()
        return
    if what == "observe":
        [outcome] = await graph.ingest([observation(n, arg, extra)])
        merges.extend(outcome.merges)
        return
    try:
        if what == "undo":
            if merges:
                await graph.undo_merge(merges[arg % len(merges)], actor="ops")
        elif what == "split":
            owner = (await graph.store.profile_ids([arg])).get(arg)
            if owner is not None:
                await graph.unmerge(owner, [arg], actor="ops")
        else:
            owner = (await graph.store.profile_ids([arg])).get(arg)
            if owner is not None:
                await graph.set_consent(owner, {"advertising": extra}, source="ops")
    except (InvalidOperation, NotFound):
        pass  # undone already, or the profile's only identifier


async def check(engine: AudienceEngine) -> None:
    """Every audience holds exactly the current profiles a fresh evaluation admits, and its
    size counts them."""
    current = sorted(await partition(engine.store))
    traits = {name: parse_computed_trait(name, d) for name, d in TRAITS.items()}
    expected: dict[str, set[str]] = {name: set() for name, _, _ in AUDIENCES}
    for pid in current:
        facts = await engine.facts(pid)
        assert facts is not None
        computed = {name: compute(t, facts, NOW) for name, t in traits.items()}
        for name, condition, purpose in AUDIENCES:
            consented = purpose is None or facts.consent.get(purpose) is ConsentStatus.GRANTED
            if consented and holds(parse_condition(condition), facts, computed, NOW):
                expected[name].add(pid)
    defined = await engine.defined()
    assert sorted(a.name for a in defined) == sorted(expected)
    for audience in defined:
        page = await engine.audiences.members(audience.id, first=1000, after=None)
        live = {m.customer_id for m in page.items}
        assert live == expected[audience.name], audience.name
        assert audience.size == len(live) == page.total
    held = await engine.audiences.memberships(current)
    by_name = {a.id: a.name for a in defined}
    for pid in current:
        assert {by_name[m.audience_id] for m in held[pid]} == {
            name for name, found in expected.items() if pid in found
        }
