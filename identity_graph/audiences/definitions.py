"""Computed trait definitions and audience conditions: parsed from JSON, checked, immutable.

A malformed definition raises `DefinitionError` naming the path of the bad part, e.g.
`condition.all[1].trait.op: unknown operator 'equals' (one of eq, neq, ...)`.

>>> c = parse_condition({"all": [{"trait": {"name": "plan", "op": "eq", "value": "pro"}},
...                              {"event": {"name": "Order Completed", "within_days": 30}}]})
>>> [type(x).__name__ for x in c.children]
['TraitTest', 'EventTest']
>>> try:
...     parse_condition({"any": [{"trait": {"name": "plan", "op": "gt", "value": "pro"}}]})
... except DefinitionError as e:
...     print(e)
condition.any[0].trait.value: gt needs a number or a date-time, got 'pro'
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from identity_graph.errors import IdentityGraphError
from identity_graph.model import JSON, MessageType

MAX_DEPTH = 8
"""levels of a condition tree, at most"""
MAX_NODES = 64
"""nodes of a condition tree (groups and leaves), at most"""
MAX_WHERE = 8
"""property tests of one event condition or computed trait, at most"""
MAX_WINDOW_DAYS = 3650
MAX_LIST = 100
"""values an `in` test may list"""
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
"""a computed trait's or an audience's name"""
MAX_TEXT = 200
"""characters of an event name, property name or string value"""


class DefinitionError(IdentityGraphError):
    """A computed trait definition or an audience condition that cannot be used."""


class Op(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    CONTAINS = "contains"
    EXISTS = "exists"


ORDERED = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})


class Kind(StrEnum):
    EVENT_COUNT = "event_count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    AVERAGE = "average"
    FIRST = "first"
    LAST = "last"
    MOST_FREQUENT = "most_frequent"
    UNIQUE_LIST = "unique_list"
    UNIQUE_COUNT = "unique_count"
    FIRST_SEEN = "first_seen"
    LAST_SEEN = "last_seen"


NUMERIC = frozenset({Kind.SUM, Kind.MIN, Kind.MAX, Kind.AVERAGE})
NEEDS_PROPERTY = NUMERIC | {
    Kind.FIRST,
    Kind.LAST,
    Kind.MOST_FREQUENT,
    Kind.UNIQUE_LIST,
    Kind.UNIQUE_COUNT,
}
EVENT_KINDS = {"TRACK": MessageType.TRACK, "PAGE": MessageType.PAGE, "SCREEN": MessageType.SCREEN}


@dataclass(frozen=True, slots=True)
class Test:
    """`op` applied to a value against `value` (for `exists`, whether there is a value)."""

    op: Op
    value: JSON

    def holds(self, seen: JSON | None) -> bool:
        return compare(self.op, seen, self.value)

    def predicate(self) -> Callable[[JSON | None], bool]:
        """`holds` with what depends only on the test decided now: the same answers,
        cheaper when asked for many values."""
        return _predicate(self.op, self.value)


@dataclass(frozen=True, slots=True)
class PropertyTest:
    property: str
    test: Test


@dataclass(frozen=True, slots=True)
class EventMatch:
    """Which events count: of a type, optionally one name, whose properties pass `where`."""

    type: MessageType
    name: str | None
    where: tuple[PropertyTest, ...]
    within_days: int | None


@dataclass(frozen=True, slots=True)
class ComputedTraitDefinition:
    name: str
    kind: Kind
    match: EventMatch
    property: str | None
    source: Mapping[str, Any]
    """the definition as given (JSON), echoed back to clients"""


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Any_:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition


@dataclass(frozen=True, slots=True)
class TraitTest:
    name: str
    test: Test


@dataclass(frozen=True, slots=True)
class ComputedTest:
    name: str
    test: Test


@dataclass(frozen=True, slots=True)
class EventTest:
    match: EventMatch
    count: Test
    """on the number of matching events; `gte 1` when not given"""


@dataclass(frozen=True, slots=True)
class IdentifierTest:
    kind: str
    exists: bool


Condition = All | Any_ | Not | TraitTest | ComputedTest | EventTest | IdentifierTest


# --- comparing ------------------------------------------------------------------------------


def compare(op: Op, seen: JSON | None, wanted: JSON) -> bool:
    """Whether `seen` (None: no value) passes `op wanted`; values of unlike types never do
    (`"10" gt 9` is false), so a test never raises on what a profile happens to hold."""
    if op is Op.EXISTS:
        return (seen is not None) is bool(wanted)
    if seen is None:
        return op is Op.NEQ
    if op is Op.EQ:
        return _same(seen, wanted)
    if op is Op.NEQ:
        return not _same(seen, wanted)
    if op is Op.IN:
        return isinstance(wanted, list) and any(_same(seen, w) for w in wanted)
    if op is Op.CONTAINS:
        if isinstance(seen, str) and isinstance(wanted, str):
            return wanted.lower() in seen.lower()
        if isinstance(seen, list):
            return any(_same(item, wanted) for item in seen)
        return False
    left, right = _ordered(seen), _ordered(wanted)
    if (
        left is None
        or right is None
        or isinstance(left, datetime) is not isinstance(right, datetime)
    ):
        return False
    if op is Op.GT:
        return left > right  # type: ignore[operator]
    if op is Op.GTE:
        return left >= right  # type: ignore[operator]
    if op is Op.LT:
        return left < right  # type: ignore[operator]
    return left <= right  # type: ignore[operator]


_ORDER = {Op.GT: operator.gt, Op.GTE: operator.ge, Op.LT: operator.lt, Op.LTE: operator.le}


def _predicate(op: Op, wanted: JSON) -> Callable[[JSON | None], bool]:
    """`compare(op, seen, wanted)` as a function of `seen` alone (see `Test.predicate`)."""
    if op is Op.EXISTS:
        present = bool(wanted)
        return lambda seen: (seen is not None) is present
    if op is Op.EQ:
        return lambda seen: seen is not None and _same(seen, wanted)
    if op is Op.NEQ:
        return lambda seen: seen is None or not _same(seen, wanted)
    if op is Op.IN:
        if not isinstance(wanted, list):
            return lambda seen: False
        return lambda seen: seen is not None and any(_same(seen, w) for w in wanted)
    if op is Op.CONTAINS:
        return lambda seen: compare(op, seen, wanted)
    right = _ordered(wanted)
    if right is None:
        return lambda seen: False
    order = _ORDER[op]
    if not isinstance(right, datetime):
        # only numbers order against a number: the common case, without `_ordered`'s work
        return lambda seen: (
            isinstance(seen, int | float) and not isinstance(seen, bool) and order(seen, right)
        )

    def ordered(seen: JSON | None) -> bool:
        left = _ordered(seen)
        return isinstance(left, datetime) and order(left, right)

    return ordered


def _same(a: JSON, b: JSON) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def _ordered(value: JSON | None) -> int | float | datetime | None:
    """A number as it is (Python orders ints and floats exactly, however large), a
    date-time parsed; None for what does not order."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return parse_time(value)
    if isinstance(value, datetime):
        return value
    return None


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 date-time with a zone, or None."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# --- parsing --------------------------------------------------------------------------------


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def condition(self, node: Any, path: str, depth: int) -> Condition:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise DefinitionError(f"{path}: a condition may have at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise DefinitionError(f"{path}: a condition may nest at most {MAX_DEPTH} levels")
        if not isinstance(node, dict) or len(node) != 1:
            raise DefinitionError(
                f"{path}: a condition is an object with one key: all, any, not, trait,"
                " computed, event or identifier"
            )
        [(key, body)] = node.items()
        at = f"{path}.{key}"
        if key in ("all", "any"):
            if not isinstance(body, list) or not body:
                raise DefinitionError(f"{at}: {key} takes a non-empty list of conditions")
            children = tuple(
                self.condition(child, f"{at}[{n}]", depth + 1) for n, child in enumerate(body)
            )
            return All(children) if key == "all" else Any_(children)
        if key == "not":
            return Not(self.condition(body, at, depth + 1))
        if not isinstance(body, dict):
            raise DefinitionError(f"{at}: {key} takes an object")
        if key == "trait":
            _keys(body, {"name", "op", "value"}, at)
            return TraitTest(_text(body, "name", at), parse_test(body, at))
        if key == "computed":
            _keys(body, {"name", "op", "value"}, at)
            return ComputedTest(_name(body, at), parse_test(body, at))
        if key == "event":
            _keys(body, {"name", "type", "count", "within_days", "where"}, at)
            count = body.get("count", {"op": "gte", "value": 1})
            if not isinstance(count, dict):
                raise DefinitionError(f"{at}.count: count takes an object with op and value")
            _keys(count, {"op", "value"}, f"{at}.count")
            counted = parse_test(count, f"{at}.count")
            if counted.op not in ORDERED | {Op.EQ, Op.NEQ, Op.IN} or not _counts(counted.value):
                raise DefinitionError(
                    f"{at}.count: a count is compared with eq, neq, gt, gte, lt, lte or in and"
                    " whole numbers"
                )
            return EventTest(parse_match(body, at), counted)
        if key == "identifier":
            _keys(body, {"kind", "exists"}, at)
            exists = body.get("exists", True)
            if not isinstance(exists, bool):
                raise DefinitionError(f"{at}.exists: exists takes true or false")
            return IdentifierTest(_text(body, "kind", at), exists)
        raise DefinitionError(
            f"{path}: unknown condition {key!r} (one of all, any, not, trait, computed, event,"
            " identifier)"
        )


def _counts(value: JSON) -> bool:
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


def parse_condition(node: Any, *, path: str = "condition") -> Condition:
    """A condition tree from its JSON; `DefinitionError` names the path of a bad part."""
    return _Parser().condition(node, path, 1)


def parse_computed_trait(name: str, node: Any) -> ComputedTraitDefinition:
    """A computed trait from its name and JSON definition."""
    if not NAME.fullmatch(name):
        raise DefinitionError(
            "name: a computed trait's name is a letter then up to 63 letters, digits or _"
        )
    path = "definition"
    if not isinstance(node, dict):
        raise DefinitionError(f"{path}: a definition is an object with a kind")
    _keys(node, {"kind", "event", "type", "property", "within_days", "where"}, path)
    raw = node.get("kind")
    try:
        kind = Kind(str(raw))
    except ValueError:
        raise DefinitionError(
            f"{path}.kind: unknown kind {raw!r} (one of {', '.join(k.value for k in Kind)})"
        ) from None
    prop = node.get("property")
    if kind in NEEDS_PROPERTY:
        prop = _text(node, "property", path)
    elif prop is not None:
        raise DefinitionError(f"{path}.property: {kind.value} takes no property")
    return ComputedTraitDefinition(
        name, kind, parse_match(node, path, name_key="event"), prop, node
    )


def parse_match(body: Mapping[str, Any], path: str, *, name_key: str = "name") -> EventMatch:
    raw_type = body.get("type", "TRACK")
    if raw_type not in EVENT_KINDS:
        raise DefinitionError(f"{path}.type: type is one of {', '.join(EVENT_KINDS)}")
    name = body.get(name_key)
    if name is not None:
        name = _text(body, name_key, path)
    within = body.get("within_days")
    if within is not None and (
        isinstance(within, bool)
        or not isinstance(within, int)
        or not 1 <= within <= MAX_WINDOW_DAYS
    ):
        raise DefinitionError(
            f"{path}.within_days: within_days is a whole number of days, 1 to {MAX_WINDOW_DAYS}"
        )
    where = body.get("where", [])
    if not isinstance(where, list) or len(where) > MAX_WHERE:
        raise DefinitionError(f"{path}.where: where is a list of at most {MAX_WHERE} tests")
    tests = []
    for n, item in enumerate(where):
        at = f"{path}.where[{n}]"
        if not isinstance(item, dict):
            raise DefinitionError(f"{at}: a property test is an object: property, op, value")
        _keys(item, {"property", "op", "value"}, at)
        tests.append(PropertyTest(_text(item, "property", at), parse_test(item, at)))
    return EventMatch(EVENT_KINDS[raw_type], name, tuple(tests), within)


def parse_test(body: Mapping[str, Any], path: str) -> Test:
    """An operator and its value, checked against each other."""
    raw = body.get("op")
    try:
        op = Op(str(raw))
    except ValueError:
        raise DefinitionError(
            f"{path}.op: unknown operator {raw!r} (one of {', '.join(o.value for o in Op)})"
        ) from None
    if "value" not in body:
        raise DefinitionError(f"{path}.value: {op.value} needs a value")
    value = body["value"]
    at = f"{path}.value"
    if op is Op.EXISTS:
        if not isinstance(value, bool):
            raise DefinitionError(f"{at}: exists needs true or false, got {value!r}")
    elif op in ORDERED:
        if isinstance(value, bool) or not (
            isinstance(value, int | float) or (isinstance(value, str) and parse_time(value))
        ):
            raise DefinitionError(f"{at}: {op.value} needs a number or a date-time, got {value!r}")
    elif op is Op.IN:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise DefinitionError(f"{at}: in needs a list of 1 to {MAX_LIST} values")
        for item in value:
            _scalar(item, at)
    elif op is Op.CONTAINS:
        _scalar(value, at)
    else:
        _scalar(value, at)
    return Test(op, value)


def _scalar(value: Any, at: str) -> None:
    if value is None or isinstance(value, dict | list):
        raise DefinitionError(f"{at}: compare with a string, number or boolean, got {value!r}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise DefinitionError(f"{at}: strings compared are at most {MAX_TEXT} characters")


def _keys(body: Mapping[str, Any], known: set[str], path: str) -> None:
    for key in body:
        if key not in known:
            raise DefinitionError(
                f"{path}.{key}: unknown key {key!r} (known: {', '.join(sorted(known))})"
            )


def _text(body: Mapping[str, Any], key: str, path: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise DefinitionError(f"{path}.{key}: {key} is a string of 1 to {MAX_TEXT} characters")
    return value


def _name(body: Mapping[str, Any], path: str) -> str:
    name = _text(body, "name", path)
    if not NAME.fullmatch(name):
        raise DefinitionError(f"{path}.name: {name!r} is not a computed trait's name")
    return name


def computed_names(condition: Condition) -> set[str]:
    """The computed traits a condition reads."""
    if isinstance(condition, All | Any_):
        return set().union(*(computed_names(c) for c in condition.children))
    if isinstance(condition, Not):
        return computed_names(condition.child)
    if isinstance(condition, ComputedTest):
        return {condition.name}
    return set()


def windows(condition: Condition) -> list[EventMatch]:
    """The event matches with a time window that a condition reads directly."""
    if isinstance(condition, All | Any_):
        return [m for c in condition.children for m in windows(c)]
    if isinstance(condition, Not):
        return windows(condition.child)
    if isinstance(condition, EventTest) and condition.match.within_days is not None:
        return [condition.match]
    return []


@dataclass(frozen=True, slots=True)
class Reads:
    """What evaluating some definitions reads of a profile; nothing else is fetched."""

    events: frozenset[tuple[MessageType, str | None]] = frozenset()
    """(type, name) of the events counted; name None: every event of the type"""
    traits: frozenset[str] = frozenset()
    kinds: bool = False
    """the identifier kinds it holds"""
    consent: bool = False

    def __or__(self, other: Reads) -> Reads:
        return Reads(
            self.events | other.events,
            self.traits | other.traits,
            self.kinds or other.kinds,
            self.consent or other.consent,
        )


def condition_reads(condition: Condition) -> Reads:
    """What a condition reads directly (the computed traits it names read theirs:
    `trait_reads`)."""
    if isinstance(condition, All | Any_):
        found = Reads()
        for child in condition.children:
            found = found | condition_reads(child)
        return found
    if isinstance(condition, Not):
        return condition_reads(condition.child)
    if isinstance(condition, EventTest):
        return Reads(events=frozenset({(condition.match.type, condition.match.name)}))
    if isinstance(condition, TraitTest):
        return Reads(traits=frozenset({condition.name}))
    if isinstance(condition, IdentifierTest):
        return Reads(kinds=True)
    return Reads()


def trait_reads(trait: ComputedTraitDefinition) -> Reads:
    """What a computed trait reads: the events it aggregates."""
    return Reads(events=frozenset({(trait.match.type, trait.match.name)}))
