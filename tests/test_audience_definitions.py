"""Computed trait definitions and audience conditions: what parses, and errors that name the
path of the bad part."""

from __future__ import annotations

from typing import Any

import pytest

from identity_graph.audiences.definitions import (
    MAX_DEPTH,
    MAX_NODES,
    All,
    ComputedTest,
    DefinitionError,
    EventTest,
    IdentifierTest,
    Kind,
    Not,
    Op,
    TraitTest,
    compare,
    computed_names,
    parse_computed_trait,
    parse_condition,
    windows,
)
from identity_graph.model import MessageType

ISSUE_EXAMPLE = {
    "all": [
        {
            "event": {
                "name": "Order Completed",
                "count": {"op": "gte", "value": 2},
                "within_days": 30,
            }
        },
        {"trait": {"name": "plan", "op": "eq", "value": "pro"}},
        {"computed": {"name": "lifetime_value", "op": "gt", "value": 100}},
        {"not": {"identifier": {"kind": "email", "exists": False}}},
    ]
}


def test_the_issue_example_condition_parses() -> None:
    condition = parse_condition(ISSUE_EXAMPLE)
    assert isinstance(condition, All)
    event, trait, computed, negated = condition.children
    assert isinstance(event, EventTest)
    assert (event.match.name, event.match.within_days, event.count.op) == (
        "Order Completed",
        30,
        Op.GTE,
    )
    assert isinstance(trait, TraitTest) and trait.test.value == "pro"
    assert isinstance(computed, ComputedTest) and computed.name == "lifetime_value"
    assert isinstance(negated, Not) and negated.child == IdentifierTest("email", False)
    assert computed_names(condition) == {"lifetime_value"}
    assert [m.within_days for m in windows(condition)] == [30]


def test_the_issue_example_computed_trait_parses() -> None:
    trait = parse_computed_trait(
        "eur_orders",
        {
            "kind": "event_count",
            "event": "Order Completed",
            "within_days": 30,
            "where": [{"property": "currency", "op": "eq", "value": "EUR"}],
        },
    )
    assert trait.kind is Kind.EVENT_COUNT and trait.property is None
    assert trait.match.type is MessageType.TRACK and trait.match.name == "Order Completed"
    assert trait.match.where[0].property == "currency"
    page = parse_computed_trait(
        "pricing_views", {"kind": "event_count", "event": "Pricing", "type": "PAGE"}
    )
    assert page.match.type is MessageType.PAGE


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"all": [{"trait": {"name": "plan", "op": "equals", "value": 1}}]},
            "condition.all[0].trait.op: unknown operator 'equals'",
        ),
        ({"any": []}, "condition.any: any takes a non-empty list"),
        ({"all": [{"nope": {}}]}, "condition.all[0]: unknown condition 'nope'"),
        (
            {"trait": {"name": "plan", "op": "gt", "value": "pro"}},
            "condition.trait.value: gt needs a number or a date-time",
        ),
        (
            {"trait": {"name": "plan", "op": "in", "value": "pro"}},
            "condition.trait.value: in needs a list",
        ),
        (
            {"trait": {"name": "plan", "op": "exists", "value": 1}},
            "condition.trait.value: exists needs true or false",
        ),
        ({"trait": {"name": "plan", "op": "eq"}}, "condition.trait.value: eq needs a value"),
        (
            {"trait": {"name": "plan", "op": "eq", "value": {"a": 1}}},
            "condition.trait.value: compare with a string",
        ),
        (
            {"trait": {"name": "plan", "op": "eq", "value": 1, "extra": 2}},
            "condition.trait.extra: unknown key 'extra'",
        ),
        (
            {"event": {"name": "X", "count": {"op": "gte", "value": 1.5}}},
            "condition.event.count: a count is compared",
        ),
        ({"event": {"name": "X", "within_days": 0}}, "condition.event.within_days"),
        ({"event": {"name": "X", "type": "CLICK"}}, "condition.event.type: type is one of"),
        (
            {"event": {"where": [{"property": "p", "op": "lt", "value": True}]}},
            "condition.event.where[0].value: lt needs a number",
        ),
        ({"identifier": {"kind": "email", "exists": "no"}}, "condition.identifier.exists"),
        (
            {"not": {"computed": {"name": "bad name", "op": "eq", "value": 1}}},
            "condition.not.computed.name",
        ),
        ({"all": {"trait": {}}}, "condition.all: all takes a non-empty list"),
        ({"trait": {}, "any": []}, "condition: a condition is an object with one key"),
        ([], "condition: a condition is an object with one key"),
    ],
)
def test_bad_conditions_name_the_path(condition: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_condition(condition)
    assert str(raised.value).startswith(message)


def test_trees_are_bounded_in_depth_and_size() -> None:
    deep: dict[str, Any] = {"identifier": {"kind": "email"}}
    for _ in range(MAX_DEPTH):
        deep = {"not": deep}
    with pytest.raises(DefinitionError, match=f"at most {MAX_DEPTH} levels"):
        parse_condition(deep)
    wide = {"any": [{"identifier": {"kind": "email"}}] * MAX_NODES}
    with pytest.raises(DefinitionError, match=f"at most {MAX_NODES} nodes"):
        parse_condition(wide)


@pytest.mark.parametrize(
    ("name", "definition", "message"),
    [
        ("ltv", {"kind": "total", "property": "x"}, "definition.kind: unknown kind 'total'"),
        ("ltv", {"kind": "sum"}, "definition.property: property is a string"),
        (
            "ltv",
            {"kind": "event_count", "property": "x"},
            "definition.property: event_count takes no property",
        ),
        ("ltv", {"kind": "sum", "property": "x", "within_days": -3}, "definition.within_days"),
        ("ltv", {"kind": "sum", "property": "x", "where": {"a": 1}}, "definition.where"),
        (
            "ltv",
            {"kind": "sum", "property": "x", "colour": "red"},
            "definition.colour: unknown key",
        ),
        ("1ltv", {"kind": "event_count"}, "name: a computed trait's name"),
        ("ltv", "sum", "definition: a definition is an object"),
    ],
)
def test_bad_computed_traits_name_the_path(name: str, definition: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_computed_trait(name, definition)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("op", "seen", "wanted", "expected"),
    [
        (Op.EQ, "pro", "pro", True),
        (Op.EQ, 1, 1.0, True),
        (Op.EQ, True, 1, False),
        (Op.NEQ, None, "pro", True),
        (Op.GT, 10, 9, True),
        (Op.GT, "10", 9, False),
        (Op.LTE, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00+00:00", True),
        (Op.IN, "b", ["a", "b"], True),
        (Op.CONTAINS, "Hello World", "world", True),
        (Op.CONTAINS, ["a", "b"], "b", True),
        (Op.CONTAINS, 5, "5", False),
        (Op.EXISTS, None, False, True),
        (Op.EXISTS, 0, True, True),
        (Op.GTE, None, 0, False),
    ],
)
def test_comparisons_never_mix_types(op: Op, seen: Any, wanted: Any, expected: bool) -> None:
    assert compare(op, seen, wanted) is expected
