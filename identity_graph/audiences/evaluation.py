"""Computed traits and audience conditions evaluated against one profile's facts: pure
functions of the facts and the time.

>>> from datetime import UTC, datetime
>>> from identity_graph.model import EventCategory, MessageType, StoredEvent
>>> now = datetime(2026, 1, 31, tzinfo=UTC)
>>> order = StoredEvent("m1", "email:a@x.io", MessageType.TRACK, "Order Completed",
...                     EventCategory.BEHAVIOURAL, {"total": 40},
...                     datetime(2026, 1, 30, tzinfo=UTC), "web")
>>> facts = Facts("p1", {"plan": "pro"}, (order,), frozenset({"email"}), {})
>>> ltv = parse_computed_trait(
...     "ltv", {"kind": "sum", "event": "Order Completed", "property": "total"})
>>> compute(ltv, facts, now)
40
>>> rich = parse_condition({"computed": {"name": "ltv", "op": "gt", "value": 30}})
>>> holds(rich, facts, {"ltv": 40}, now)
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_graph.audiences.definitions import (
    All,
    Any_,
    ComputedTest,
    ComputedTraitDefinition,
    Condition,
    EventMatch,
    EventTest,
    IdentifierTest,
    Kind,
    Not,
    TraitTest,
    parse_computed_trait,
    parse_condition,
)
from identity_graph.model import JSON, ConsentStatus, StoredEvent

__all__ = [
    "CompiledTrait",
    "Evaluator",
    "Facts",
    "compile_condition",
    "compute",
    "explain",
    "holds",
    "matching",
    "next_lapse",
]
_ = (parse_computed_trait, parse_condition)  # used by the doctest above


@dataclass(frozen=True, slots=True)
class Facts:
    """What a profile holds now, as conditions read it."""

    profile_id: str
    traits: Mapping[str, JSON]
    """each trait's current (surviving) value"""
    events: Sequence[StoredEvent]
    """every event of the profile"""
    kinds: frozenset[str]
    """the identifier kinds it holds"""
    consent: Mapping[str, ConsentStatus]
    """its effective consent status per purpose"""


def matching(
    match: EventMatch, events: Sequence[StoredEvent], now: datetime, *, ordered: bool = True
) -> list[StoredEvent]:
    """The events a match counts at `now`, oldest first (ties by message id) if `ordered`."""
    since = None if match.within_days is None else now - timedelta(days=match.within_days)
    found = [
        e
        for e in events
        if e.type == match.type
        and (match.name is None or e.name == match.name)
        and (since is None or since < e.timestamp <= now)
        and all(t.test.holds(_lookup(e.properties, t.property)) for t in match.where)
    ]
    if ordered:
        found.sort(key=lambda e: (e.timestamp, e.message_id))
    return found


def _lookup(properties: Mapping[str, JSON], path: str) -> JSON | None:
    """A property by name, or by a dotted path into nested objects."""
    if path in properties:
        return properties[path]
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _number(value: JSON | None) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _key(value: JSON) -> tuple[str, str]:
    """A sort key that orders unlike JSON scalars deterministically."""
    return (type(value).__name__, repr(value))


def compute(definition: ComputedTraitDefinition, facts: Facts, now: datetime) -> JSON:
    """A computed trait's value at `now`; None when no matching event gives one."""
    ordered = definition.kind in ORDERED_KINDS
    return _aggregate(definition, matching(definition.match, facts.events, now, ordered=ordered))


def _aggregate(definition: ComputedTraitDefinition, events: Sequence[StoredEvent]) -> JSON:
    """A computed trait's value over the events its match counts (oldest first, for the
    kinds in `ORDERED_KINDS`)."""
    kind = definition.kind
    if kind is Kind.EVENT_COUNT:
        return len(events)
    if kind is Kind.FIRST_SEEN:
        return events[0].timestamp.astimezone(UTC).isoformat() if events else None
    if kind is Kind.LAST_SEEN:
        return events[-1].timestamp.astimezone(UTC).isoformat() if events else None
    prop = definition.property or ""
    if kind is Kind.FIRST:
        return _lookup(events[0].properties, prop) if events else None
    if kind is Kind.LAST:
        return _lookup(events[-1].properties, prop) if events else None
    values = [v for e in events if (v := _lookup(e.properties, prop)) is not None]
    if kind in (Kind.SUM, Kind.MIN, Kind.MAX, Kind.AVERAGE):
        numbers = [n for v in values if (n := _number(v)) is not None]
        try:
            if kind is Kind.SUM:
                return _finite(_tidy(_total(numbers)))
            if not numbers:
                return None
            if kind is Kind.MIN:
                return _finite(min(numbers))
            if kind is Kind.MAX:
                return _finite(max(numbers))
            return _finite(_tidy(_total(numbers) / len(numbers)))
        except OverflowError:  # integers beyond a float's range, mixed with floats
            return None
    scalars = [v for v in values if not isinstance(v, dict | list)]
    if kind is Kind.MOST_FREQUENT:
        if not scalars:
            return None
        counts = Counter(_key(v) for v in scalars)
        by_key = {_key(v): v for v in scalars}
        best = min(counts, key=lambda k: (-counts[k], k))
        return by_key[best]
    unique = sorted({_key(v): v for v in scalars}.items())
    if kind is Kind.UNIQUE_LIST:
        return [v for _, v in unique]
    return len(unique)  # UNIQUE_COUNT


def _total(numbers: list[float | int]) -> float | int:
    """The exact sum of integers; of floats, the correctly rounded one (`math.fsum`), so
    that it does not depend on the order the events come in."""
    if all(isinstance(n, int) for n in numbers):
        return sum(numbers)
    return math.fsum(numbers)


def _finite(value: float | int) -> float | int | None:
    """The value, or None where JSON has no number for it (infinite, or an integer beyond a
    float's range)."""
    try:
        return value if math.isfinite(value) else None
    except OverflowError:
        return None


def _tidy(value: float | int) -> float | int:
    """A whole float as an int (a sum of integers stays an integer), else rounded to 10
    places so that sums do not depend on the order they were added in."""
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        return round(value, 10)
    return value


def holds(c: Condition, facts: Facts, computed: Mapping[str, JSON], now: datetime) -> bool:
    """Whether the condition holds for the facts at `now` (what `explain` says at its root,
    without noting what each node saw)."""
    if isinstance(c, All):
        return all(holds(child, facts, computed, now) for child in c.children)
    if isinstance(c, Any_):
        return any(holds(child, facts, computed, now) for child in c.children)
    if isinstance(c, Not):
        return not holds(c.child, facts, computed, now)
    if isinstance(c, TraitTest):
        return c.test.holds(facts.traits.get(c.name))
    if isinstance(c, ComputedTest):
        return c.test.holds(computed.get(c.name))
    if isinstance(c, EventTest):
        return c.count.holds(len(matching(c.match, facts.events, now, ordered=False)))
    assert isinstance(c, IdentifierTest)
    return (c.kind in facts.kinds) is c.exists


ORDERED_KINDS = frozenset({Kind.FIRST, Kind.LAST, Kind.FIRST_SEEN, Kind.LAST_SEEN})
"""kinds that read the matching events in order"""


# --- compiled: many definitions over many profiles -------------------------------------------


def match_key(match: EventMatch) -> tuple[Any, ...]:
    """Equal for equal matches (a match's `in` lists make it unhashable itself)."""
    return (match.type, match.name, match.within_days, repr(match.where))


@dataclass(frozen=True, slots=True)
class CompiledTrait:
    definition: ComputedTraitDefinition
    key: tuple[Any, ...]
    ordered: bool

    @classmethod
    def of(cls, definition: ComputedTraitDefinition) -> CompiledTrait:
        return cls(definition, match_key(definition.match), definition.kind in ORDERED_KINDS)


class Evaluator:
    """One profile's facts at one moment, read by many compiled conditions: each distinct
    event match is filtered once, each computed trait computed once. What it answers is what
    `holds`, `compute` and `next_lapse` answer over the same facts."""

    __slots__ = ("facts", "now", "traits", "_matched", "_sorted", "_values")

    def __init__(self, facts: Facts, now: datetime, traits: Mapping[str, CompiledTrait]) -> None:
        self.facts = facts
        self.now = now
        self.traits = traits
        self._matched: dict[tuple[Any, ...], list[StoredEvent]] = {}
        self._sorted: set[tuple[Any, ...]] = set()
        self._values: dict[str, JSON] = {}

    def matched(
        self, key: tuple[Any, ...], match: EventMatch, *, ordered: bool = False
    ) -> list[StoredEvent]:
        found = self._matched.get(key)
        if found is None:
            found = self._matched[key] = matching(match, self.facts.events, self.now, ordered=False)
        if ordered and key not in self._sorted:
            found.sort(key=lambda e: (e.timestamp, e.message_id))
            self._sorted.add(key)
        return found

    def value(self, name: str) -> JSON:
        """A computed trait's value (None for one not defined)."""
        if name in self._values:
            return self._values[name]
        trait = self.traits.get(name)
        value = (
            None
            if trait is None
            else _aggregate(
                trait.definition,
                self.matched(trait.key, trait.definition.match, ordered=trait.ordered),
            )
        )
        self._values[name] = value
        return value

    def next_lapse(self, matches: Sequence[tuple[tuple[Any, ...], EventMatch]]) -> datetime | None:
        """`next_lapse` of the windowed matches among these (key, match) pairs."""
        first: datetime | None = None
        for key, match in matches:
            if match.within_days is None:
                continue
            events = self.matched(key, match)
            if events:
                leaves = min(e.timestamp for e in events) + timedelta(days=match.within_days)
                if first is None or leaves < first:
                    first = leaves
        return first


Compiled = Callable[[Evaluator], bool]


def compile_condition(c: Condition) -> Compiled:
    """The condition as one function of an `Evaluator`: `holds`'s answer, with the tree's
    dispatch and each test's constants decided once."""
    if isinstance(c, All):
        alls = tuple(compile_condition(child) for child in c.children)
        return lambda v: all(f(v) for f in alls)
    if isinstance(c, Any_):
        anys = tuple(compile_condition(child) for child in c.children)
        return lambda v: any(f(v) for f in anys)
    if isinstance(c, Not):
        inner = compile_condition(c.child)
        return lambda v: not inner(v)
    if isinstance(c, TraitTest):
        trait_test, trait = c.test.predicate(), c.name
        return lambda v: trait_test(v.facts.traits.get(trait))
    if isinstance(c, ComputedTest):
        computed_test, computed = c.test.predicate(), c.name
        return lambda v: computed_test(v.value(computed))
    if isinstance(c, EventTest):
        count_test, key, match = c.count.predicate(), match_key(c.match), c.match
        return lambda v: count_test(len(v.matched(key, match)))
    assert isinstance(c, IdentifierTest)
    kind, exists = c.kind, c.exists
    return lambda v: (kind in v.facts.kinds) is exists


def explain(
    condition: Condition, facts: Facts, computed: Mapping[str, JSON], now: datetime
) -> dict[str, Any]:
    """The condition tree with, at each node, whether it held and what it saw."""
    return _walk(condition, facts, computed, now)


def _walk(
    c: Condition, facts: Facts, computed: Mapping[str, JSON], now: datetime
) -> dict[str, Any]:
    if isinstance(c, All | Any_):
        op = "all" if isinstance(c, All) else "any"
        children = []
        result = isinstance(c, All)
        for child in c.children:
            node = _walk(child, facts, computed, now)
            children.append(node)
            if isinstance(c, All) and not node["holds"]:
                result = False
            if isinstance(c, Any_) and node["holds"]:
                result = True
        return {op: children, "holds": result}
    if isinstance(c, Not):
        inner = _walk(c.child, facts, computed, now)
        return {"not": inner, "holds": not inner["holds"]}
    if isinstance(c, TraitTest):
        seen = facts.traits.get(c.name)
        return {
            "trait": {"name": c.name, "op": c.test.op.value, "value": c.test.value},
            "holds": c.test.holds(seen),
            "seen": seen,
        }
    if isinstance(c, ComputedTest):
        seen = computed.get(c.name)
        return {
            "computed": {"name": c.name, "op": c.test.op.value, "value": c.test.value},
            "holds": c.test.holds(seen),
            "seen": seen,
        }
    if isinstance(c, EventTest):
        count = len(matching(c.match, facts.events, now))
        return {
            "event": {
                "name": c.match.name,
                "type": c.match.type.name,
                "count": {"op": c.count.op.value, "value": c.count.value},
                "within_days": c.match.within_days,
                "where": [
                    {"property": t.property, "op": t.test.op.value, "value": t.test.value}
                    for t in c.match.where
                ],
            },
            "holds": c.count.holds(count),
            "seen": count,
        }
    assert isinstance(c, IdentifierTest)
    present = c.kind in facts.kinds
    return {
        "identifier": {"kind": c.kind, "exists": c.exists},
        "holds": present is c.exists,
        "seen": present,
    }


def next_lapse(matches: Sequence[EventMatch], facts: Facts, now: datetime) -> datetime | None:
    """The first moment after `now` when an event leaves one of these windowed matches (so a
    count, and what depends on it, may change with no write); None if none will."""
    first: datetime | None = None
    for match in matches:
        if match.within_days is None:
            continue
        events = matching(match, facts.events, now)
        if events:
            leaves = events[0].timestamp + timedelta(days=match.within_days)
            if first is None or leaves < first:
                first = leaves
    return first
