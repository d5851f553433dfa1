"""Role x field: every `@pii` field of the schema, read by every role, in the policy's mode.

The fields and their categories come from the exported SDL; the only hand-kept tables say
how a query reaches each *type* and where the seed keeps each type's raw values, so a new
`@pii` field on a known type is checked at once and a `@pii` field on a new type fails here
until someone says how to reach it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from graph_api.access.categories import PiiClassifier
from graph_api.access.policy import Mode
from tests.api.conftest import Api, codes
from tests.privacy.conftest import (
    READERS,
    PiiField,
    Seeded,
    expect,
    expect_map,
    pii_fields,
    policy,
    sdl_schema,
)

Path = tuple[str, ...]

REACH: dict[str, Callable[[Seeded], list[Path]]] = {
    "Traits": lambda s: [("traits",)],
    "Address": lambda s: [("traits", "address")],
    "Identifier": lambda s: [("identifiers",)],
    "Event": lambda s: [("events(first: 50)", "edges", "node")],
    "IdentifierRef": lambda s: [("mergeHistory", "links", "from"), ("mergeHistory", "links", "to")],
    "TraitValue": lambda s: [
        (f'h{i}: traitHistory(name: "{name}")',) for i, name in enumerate(sorted(s.history))
    ],
}
"""How a query on `customer(id:)` reaches objects of each type carrying `@pii` fields."""

ELSEWHERE = {
    ("Customer", "computedTraits"): "tests/api/test_audiences_api.py::"
    "test_computed_traits_are_masked_by_the_property_they_aggregate",
    ("Query", "explainMembership"): "tests/api/test_audiences_api.py::"
    "test_an_explanation_is_masked_by_the_callers_role",
    ("Audience", "condition"): "tests/api/test_audiences_api.py::"
    "test_the_values_a_condition_tests_are_masked_by_the_callers_role",
}
"""`@pii` fields whose values exist only once computed traits and audiences are defined, read
by each role in the test named (the seed here defines none)."""

CONTEXT = {"Identifier": "kind", "IdentifierRef": "kind", "Event": "id", "TraitValue": "name"}
"""The sibling field that says which seed value an object holds."""


def raw_value(field: PiiField, obj: dict[str, Any], index: int, seeded: Seeded) -> Any:
    """The value the seed gave this field of this object, or None if it gave none."""
    typed_traits = sdl_schema().type_map["Traits"].fields  # type: ignore[attr-defined]
    by_type: dict[str, Callable[[], dict[str, Any]]] = {
        "Traits": lambda: {
            **seeded.traits,
            "custom": {k: v for k, v in seeded.traits.items() if k not in typed_traits},
        },
        "Address": lambda: seeded.traits["address"],
        "Identifier": lambda: {"value": seeded.identifiers[obj["kind"]]},
        "IdentifierRef": lambda: {"value": seeded.identifiers[obj["kind"]]},
        "Event": lambda: {"properties": seeded.events[obj["id"]]},
        "TraitValue": lambda: {"value": seeded.history[obj["name"]][index]},
    }
    return by_type[field.type_name]().get(field.name)


def response_key(segment: str) -> str:
    head = segment.split("(")[0]
    return head.split(":")[0].strip()


def walk(data: Any, path: Path, at: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every object at the end of `path`, with its GraphQL response path; lists flattened."""
    if isinstance(data, list):
        for i, item in enumerate(data):
            yield from walk(item, path, (*at, i))
        return
    if data is None:
        return
    if not path:
        yield at, data
        return
    key = response_key(path[0])
    yield from walk(data.get(key), path[1:], (*at, key))


def selection(paths: dict[Path, set[str]]) -> str:
    tree: dict[str, Any] = {}
    for path, fields in paths.items():
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
        for name in fields:
            node.setdefault(name, {})

    def render(node: dict[str, Any]) -> str:
        return " ".join(k + (f" {{ {render(v)} }}" if v else "") for k, v in node.items())

    return render(tree)


def by_type() -> dict[str, list[PiiField]]:
    grouped: dict[str, list[PiiField]] = {}
    for field in pii_fields():
        if (field.type_name, field.name) not in ELSEWHERE:
            grouped.setdefault(field.type_name, []).append(field)
    return grouped


def matrix_query(seeded: Seeded) -> str:
    wanted: dict[Path, set[str]] = {}
    for type_name, fields in by_type().items():
        for path in REACH[type_name](seeded):
            names = wanted.setdefault(path, set())
            names.update(f.name for f in fields)
            if type_name in CONTEXT:
                names.add(CONTEXT[type_name])
    return f"query($id: ID!) {{ customer(id: $id) {{ {selection(wanted)} }} }}"


def test_the_schema_declares_pii_fields_of_every_category() -> None:
    fields = {(f.type_name, f.name): f for f in pii_fields()}
    assert fields[("Traits", "email")].category is not None
    assert fields[("Traits", "email")].category.value == "CONTACT"
    assert fields[("Address", "city")].category is not None
    assert fields[("Address", "city")].category.value == "LOCATION"
    assert fields[("Identifier", "value")].classified_by is PiiClassifier.IDENTIFIER_KIND
    assert fields[("Event", "properties")].classified_by is PiiClassifier.EVENT_PROPERTY
    assert fields[("Traits", "custom")].classified_by is PiiClassifier.TRAIT_KEY
    assert fields[("TraitValue", "value")].classified_by is PiiClassifier.TRAIT_NAME
    assert all((f.category is None) != (f.classified_by is None) for f in fields.values())


def test_every_pii_type_is_reachable() -> None:
    unreachable = sorted(by_type().keys() - REACH.keys())
    assert not unreachable, f"@pii fields on types the matrix cannot reach: {unreachable}"
    declared = {(f.type_name, f.name) for f in pii_fields()}
    assert ELSEWHERE.keys() <= declared  # an entry for a field that is gone fails too


def test_typed_traits_and_their_history_share_a_category() -> None:
    """traitHistory(name:) shows the same value as Traits.<name>: it must not be laxer."""
    rules = policy()
    typed = [f for f in pii_fields() if f.type_name == "Traits" and f.category is not None]
    assert typed
    for field in typed:
        assert rules.trait_category(field.name) is field.category, field.name
    for kind in ("email", "phone"):
        traits_field = next(f for f in typed if f.name == kind)
        assert rules.kind_category(kind) is traits_field.category


def expected_view(
    role: str, seeded: Seeded, data: dict[str, Any]
) -> tuple[list[tuple[str, Any, Any]], set[tuple[Any, ...]], set[str]]:
    """(label, got, expected) per value, the paths that must carry FORBIDDEN_FIELD, and the
    fields that were reached at least once."""
    rules = policy()
    checks: list[tuple[str, Any, Any]] = []
    denied: set[tuple[Any, ...]] = set()
    reached: set[str] = set()
    customer = data["customer"]
    for type_name, fields in by_type().items():
        for path in REACH[type_name](seeded):
            for index, (at, obj) in enumerate(walk(customer, path, ("customer",))):
                position = index if type_name == "TraitValue" else 0
                for field in fields:
                    label = f"{type_name}.{field.name} at {list(at)}"
                    raw = raw_value(field, obj, position, seeded)
                    assert raw is not None, f"the seed has no value for {label}"
                    reached.add(f"{type_name}.{field.name}")
                    got = obj[field.name]
                    if field.classified_by in (
                        PiiClassifier.TRAIT_KEY,
                        PiiClassifier.EVENT_PROPERTY,
                    ):
                        classify = (
                            rules.trait_category
                            if field.classified_by is PiiClassifier.TRAIT_KEY
                            else rules.property_category
                        )
                        modes = {k: rules.best_mode(frozenset({role}), classify(k)) for k in raw}
                        checks.append((label, got, expect_map(raw, modes)))
                        denied.update(
                            (*at, field.name, k) for k, m in modes.items() if m is Mode.DENIED
                        )
                        continue
                    key: str | None = field.name
                    if field.classified_by is PiiClassifier.IDENTIFIER_KIND:
                        category, key = rules.kind_category(obj["kind"]), None
                    elif field.classified_by is PiiClassifier.TRAIT_NAME:
                        category, key = rules.trait_category(obj["name"]), obj["name"]
                    else:
                        assert field.category is not None
                        category = field.category
                    mode = rules.best_mode(frozenset({role}), category)
                    if mode is Mode.DENIED:
                        denied.add((*at, field.name))
                    want = expect(raw, mode, numeric=field.numeric, key=key)
                    checks.append((label, got, want))
    return checks, denied, reached


@pytest.mark.parametrize("role", READERS)
async def test_each_role_reads_each_field_in_its_mode(
    api: Api, keys: dict[str, str], seeded: Seeded, role: str
) -> None:
    response = await api.post(matrix_query(seeded), {"id": seeded.customer_id}, key=keys[role])
    assert response.status_code == 200, response.text
    body = response.json()
    checks, denied, reached = expected_view(role, seeded, body["data"])
    assert reached == {f"{t}.{f.name}" for t, fields in by_type().items() for f in fields}
    wrong = [(label, got, want) for label, got, want in checks if got != want]
    assert not wrong, f"{role} sees fields in the wrong mode: {wrong}"
    errors = body.get("errors", [])
    assert set(codes(errors)) <= {"FORBIDDEN_FIELD"}, errors
    aliases = {f"h{i}" for i in range(len(seeded.history))}  # the traitHistory fields sent
    histories = {e["path"][-1] for e in errors if e["path"][-1] in aliases}
    reported = {
        (*e["path"], *([e["extensions"]["key"]] if "key" in e["extensions"] else []))
        for e in errors
        if e["path"][-1] not in histories
    }
    assert reported == denied
    assert len(errors) - len(histories) == len(denied)
    for alias in histories:
        name = sorted(seeded.history)[int(alias[1:])]
        assert body["data"]["customer"][alias] is None
        assert rules_mode(role, policy().trait_category(name)) is Mode.DENIED


def rules_mode(role: str, category: Any) -> Mode:
    return policy().best_mode(frozenset({role}), category)


def test_default_roles_differ_somewhere() -> None:
    """The matrix proves something only if the roles do not all see the same."""
    rules = policy()
    views = {
        role: tuple(rules.best_mode(frozenset({role}), c) for c in rules.roles["admin"])
        for role in READERS
    }
    assert len(set(views.values())) == len(READERS)
    assert set(views["admin"]) == {Mode.CLEAR}
    assert Mode.CLEAR not in views["analyst"]


async def test_ingest_is_refused_at_operation_level(
    api: Api, keys: dict[str, str], seeded: Seeded
) -> None:
    response = await api.post(matrix_query(seeded), {"id": seeded.customer_id}, key=keys["ingest"])
    body = response.json()
    assert codes(body["errors"]) == ["FORBIDDEN"]
    assert body["data"] in (None, {"customer": None})


def test_masked_examples_from_the_issue() -> None:
    assert expect("jane.doe@example.com", Mode.MASKED) == "j***@e***.com"
    assert expect("+14155550134", Mode.MASKED) == "+1 *** *** **34"
    assert expect("+1 (415) 555-0134", Mode.MASKED) == "+1 *** *** **34"
    hashed = expect("jane.doe@example.com", Mode.HASHED)
    assert re.fullmatch(r"[0-9a-f]{64}", hashed)
    assert hashed == expect("jane.doe@example.com", Mode.HASHED)
