"""Computed traits and conditions evaluated against a profile's facts at a given time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from identity_graph.audiences.definitions import parse_computed_trait, parse_condition, windows
from identity_graph.audiences.evaluation import Facts, compute, explain, holds, next_lapse
from identity_graph.model import ConsentStatus, EventCategory, MessageType, StoredEvent

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def event(
    n: int, name: str, days_ago: float, type: MessageType = MessageType.TRACK, **props: Any
) -> StoredEvent:
    return StoredEvent(
        f"m{n}",
        "email:a@x.io",
        type,
        name,
        EventCategory.BEHAVIOURAL,
        props,
        NOW - days_ago * DAY,
        "web",
    )


EVENTS = (
    event(1, "Order Completed", 100, total=50, currency="EUR", sku="A"),
    event(2, "Order Completed", 20, total=30.5, currency="USD", sku="B"),
    event(3, "Order Completed", 2, total=19.5, currency="EUR", sku="A"),
    event(4, "Order Completed", 1, total="n/a", currency="EUR", sku="C"),
    event(5, "Pricing", 3, MessageType.PAGE, path="/pricing"),
)
FACTS = Facts(
    "p1",
    {"plan": "pro", "age": 41},
    EVENTS,
    frozenset({"email", "user_id"}),
    {"email_marketing": ConsentStatus.GRANTED},
)


@pytest.mark.parametrize(
    ("definition", "value"),
    [
        ({"kind": "event_count", "event": "Order Completed"}, 4),
        ({"kind": "event_count", "event": "Order Completed", "within_days": 30}, 3),
        (
            {
                "kind": "event_count",
                "event": "Order Completed",
                "where": [{"property": "currency", "op": "eq", "value": "EUR"}],
            },
            3,
        ),
        ({"kind": "event_count"}, 4),
        ({"kind": "event_count", "type": "PAGE"}, 1),
        ({"kind": "event_count", "event": "Pricing", "type": "PAGE"}, 1),
        ({"kind": "sum", "event": "Order Completed", "property": "total"}, 100),
        ({"kind": "min", "event": "Order Completed", "property": "total"}, 19.5),
        ({"kind": "max", "event": "Order Completed", "property": "total"}, 50),
        ({"kind": "average", "event": "Order Completed", "property": "total"}, 100 / 3),
        ({"kind": "sum", "event": "Refund", "property": "total"}, 0),
        ({"kind": "average", "event": "Refund", "property": "total"}, None),
        ({"kind": "first", "event": "Order Completed", "property": "sku"}, "A"),
        ({"kind": "last", "event": "Order Completed", "property": "sku"}, "C"),
        ({"kind": "most_frequent", "event": "Order Completed", "property": "currency"}, "EUR"),
        ({"kind": "unique_list", "event": "Order Completed", "property": "sku"}, ["A", "B", "C"]),
        ({"kind": "unique_count", "event": "Order Completed", "property": "currency"}, 2),
        ({"kind": "first_seen", "event": "Order Completed"}, (NOW - 100 * DAY).isoformat()),
        ({"kind": "last_seen", "event": "Order Completed"}, (NOW - DAY).isoformat()),
        ({"kind": "last_seen", "event": "Refund"}, None),
    ],
)
def test_each_kind_of_computed_trait(definition: dict[str, Any], value: Any) -> None:
    computed = compute(parse_computed_trait("t", definition), FACTS, NOW)
    if isinstance(value, float):
        assert computed == pytest.approx(value)
    else:
        assert computed == value


def test_a_window_is_rolling_days_ending_now() -> None:
    trait = parse_computed_trait(
        "recent", {"kind": "event_count", "event": "Order Completed", "within_days": 2}
    )
    assert compute(trait, FACTS, NOW) == 1  # the order 2 days ago sits on the boundary: out
    assert compute(trait, FACTS, NOW - timedelta(hours=1)) == 2


CONDITION = {
    "all": [
        {
            "event": {
                "name": "Order Completed",
                "count": {"op": "gte", "value": 2},
                "within_days": 30,
            }
        },
        {"trait": {"name": "plan", "op": "eq", "value": "pro"}},
        {"computed": {"name": "ltv", "op": "gt", "value": 90}},
        {"not": {"identifier": {"kind": "phone", "exists": True}}},
    ]
}


def test_the_issue_condition_holds_and_is_explained() -> None:
    condition = parse_condition(CONDITION)
    assert holds(condition, FACTS, {"ltv": 100}, NOW)
    assert not holds(condition, FACTS, {"ltv": 80}, NOW)
    tree = explain(condition, FACTS, {"ltv": 80}, NOW)
    assert tree["holds"] is False
    event_node, trait_node, computed_node, not_node = tree["all"]
    assert (event_node["holds"], event_node["seen"]) == (True, 3)
    assert (trait_node["holds"], trait_node["seen"]) == (True, "pro")
    assert (computed_node["holds"], computed_node["seen"]) == (False, 80)
    assert not_node["holds"] is True and not_node["not"]["seen"] is False


def test_any_and_a_missing_trait() -> None:
    condition = parse_condition(
        {
            "any": [
                {"trait": {"name": "vip", "op": "eq", "value": True}},
                {"trait": {"name": "age", "op": "in", "value": [40, 41]}},
            ]
        }
    )
    assert holds(condition, FACTS, {}, NOW)
    nodes = explain(condition, FACTS, {}, NOW)["any"]
    assert [n["seen"] for n in nodes] == [None, 41]


def test_the_next_lapse_is_when_the_oldest_counted_event_leaves_its_window() -> None:
    condition = parse_condition(CONDITION)
    lapse = next_lapse(windows(condition), FACTS, NOW)
    assert lapse == EVENTS[1].timestamp + 30 * DAY
    later = lapse + timedelta(seconds=1)
    assert holds(condition, FACTS, {"ltv": 100}, later)  # two orders are still in the window
    assert next_lapse(windows(condition), FACTS, later) == EVENTS[2].timestamp + 30 * DAY
    assert (
        next_lapse(
            windows(parse_condition({"trait": {"name": "plan", "op": "exists", "value": True}})),
            FACTS,
            NOW,
        )
        is None
    )


@pytest.mark.parametrize(
    ("totals", "kind"),
    [([10**400, 0.5], "sum"), ([10**400], "average"), ([1e308, 1e308], "sum"), ([10**400], "max")],
)
def test_numbers_json_cannot_hold_compute_to_no_value(totals: list[Any], kind: str) -> None:
    events = tuple(event(n, "Big", 1, total=t) for n, t in enumerate(totals))
    facts = Facts("p", {}, events, frozenset(), {})
    definition = parse_computed_trait("t", {"kind": kind, "event": "Big", "property": "total"})
    assert compute(definition, facts, NOW) is None


LEAVES = [
    {"trait": {"name": "plan", "op": "eq", "value": "pro"}},
    {"trait": {"name": "age", "op": "gt", "value": 50}},
    {"trait": {"name": "missing", "op": "exists", "value": True}},
    {"computed": {"name": "ltv", "op": "gte", "value": 80}},
    {"computed": {"name": "none", "op": "exists", "value": False}},
    {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 3}}},
    {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 1}, "within_days": 1}},
    {"event": {"type": "PAGE", "count": {"op": "eq", "value": 1}}},
    {"identifier": {"kind": "email", "exists": True}},
    {"identifier": {"kind": "phone", "exists": True}},
]


def trees() -> Any:
    from hypothesis import strategies as st

    return st.recursive(
        st.sampled_from(LEAVES),
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=12,
    )


def test_holds_says_what_explain_says_at_its_root() -> None:
    from hypothesis import given, settings

    @settings(max_examples=300, deadline=None)
    @given(trees())
    def check(tree: dict[str, Any]) -> None:
        condition = parse_condition(tree)
        computed = {"ltv": 80, "none": None}
        assert (
            holds(condition, FACTS, computed, NOW)
            is explain(condition, FACTS, computed, NOW)["holds"]
        )

    check()


SCALARS = [
    None,
    True,
    False,
    0,
    1,
    2.5,
    41,
    10**400,
    "pro",
    "PRO plan",
    "2026-06-01T00:00:00Z",
    "2026-07-01T00:00:00+02:00",
    "not a time",
    ["pro", 1],
    {"nested": 1},
]
WANTED = [
    ("eq", "pro"),
    ("eq", 1),
    ("eq", True),
    ("neq", 41),
    ("gt", 1),
    ("gte", 2.5),
    ("lt", "2026-06-15T00:00:00Z"),
    ("lte", 41),
    ("in", ["pro", 1, False]),
    ("contains", "pro"),
    ("contains", 1),
    ("exists", True),
    ("exists", False),
]


def test_a_compiled_test_answers_as_compare_does() -> None:
    from identity_graph.audiences.definitions import Op, Test, compare

    for op, wanted in WANTED:
        predicate = Test(Op(op), wanted).predicate()
        for seen in SCALARS:
            try:
                expected: object = compare(Op(op), seen, wanted)
            except OverflowError as e:  # an integer beyond a float's range, ordered
                expected = type(e)
            try:
                got: object = predicate(seen)
            except OverflowError as e:
                got = type(e)
            assert got == expected, (op, wanted, seen)


def test_a_compiled_condition_holds_where_holds_does() -> None:
    """Random trees over random facts: the compiled condition, reading each event match and
    computed trait once per profile (`Evaluator`), answers what `holds` answers, and
    `Evaluator.next_lapse` what `next_lapse` does."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from identity_graph.audiences.evaluation import CompiledTrait, Evaluator, compile_condition

    traits = {
        "ltv": parse_computed_trait(
            "ltv", {"kind": "sum", "event": "Order Completed", "property": "total"}
        ),
        "none": parse_computed_trait("none", {"kind": "last_seen", "event": "Refund"}),
    }
    compiled = {name: CompiledTrait.of(t) for name, t in traits.items()}
    facts_of = st.builds(
        lambda events, plan, age, kinds: Facts(
            "p", {"plan": plan, "age": age}, tuple(events), frozenset(kinds), {}
        ),
        st.lists(st.sampled_from(EVENTS), max_size=5, unique_by=lambda e: e.message_id),
        st.sampled_from(SCALARS),
        st.sampled_from(SCALARS),
        st.sets(st.sampled_from(["email", "phone", "user_id"])),
    )

    @settings(max_examples=300, deadline=None)
    @given(trees(), facts_of, st.sampled_from([NOW, NOW - 2 * DAY, NOW + 40 * DAY]))
    def check(tree: dict[str, Any], facts: Facts, now: datetime) -> None:
        condition = parse_condition(tree)
        computed = {name: compute(t, facts, now) for name, t in traits.items()}
        view = Evaluator(facts, now, compiled)
        assert compile_condition(condition)(view) is holds(condition, facts, computed, now)
        matches = windows(condition)
        assert view.next_lapse([(match_key(m), m) for m in matches]) == next_lapse(
            matches, facts, now
        )

    from identity_graph.audiences.evaluation import match_key

    check()


def test_integers_beyond_a_floats_range_order_exactly() -> None:
    from identity_graph.audiences.definitions import Op, Test, compare

    assert compare(Op.GT, 10**400, 50) and not compare(Op.LT, 10**400, 1e308)
    assert Test(Op.GTE, 2.5).predicate()(10**400)
    huge = parse_condition({"trait": {"name": "age", "op": "gt", "value": 50}})
    assert holds(huge, Facts("p", {"age": 10**400}, (), frozenset(), {}), {}, NOW)


def test_a_sum_of_floats_does_not_depend_on_the_order_of_the_events() -> None:
    totals = [1e16, -1e16, 1.0]
    definition = parse_computed_trait("t", {"kind": "sum", "event": "Big", "property": "total"})
    sums = set()
    for order in ([0, 1, 2], [0, 2, 1], [2, 1, 0]):
        events = tuple(event(n, "Big", 1, total=totals[n]) for n in order)
        sums.add(compute(definition, Facts("p", {}, events, frozenset(), {}), NOW))
    assert sums == {1}


def test_first_and_last_seen_are_told_in_utc_whatever_zone_an_event_came_in() -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=1))
    when = datetime(2026, 6, 1, 13, tzinfo=paris)
    seen = StoredEvent("m1", "email:a@x.io", MessageType.TRACK, "Big", EventCategory.BEHAVIOURAL,
                       {}, when, "web")  # fmt: skip
    facts = Facts("p", {}, (seen,), frozenset(), {})
    first = parse_computed_trait("first", {"kind": "first_seen", "event": "Big"})
    assert compute(first, facts, NOW) == "2026-06-01T12:00:00+00:00"
