"""JSON maps rendered for a caller who reads everything clear skip the walk key by key: the
answer and the audited keys must be those of the walk."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph_api.access.pii import Access
from graph_api.access.policy import Policy

KEYS = st.sampled_from(["email", "price", "a.b", "x[0]", "plan", "address", "", "Card_Number"])
LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rendered(walk: bool, value: Any, **options: Any) -> tuple[Any, set[tuple[str, str]], int]:
    policy = Policy.default()
    access = Access(roles=frozenset({"admin"}), policy=policy, hash_key=b"k", reads=[])
    assert access.all_clear
    access.all_clear = not walk
    shown = access.render_tree(value, policy.property_category, "Event.properties", "c1",
                               ("customer", "events"), **options)  # fmt: skip
    return shown, set(access.reads), len(access.denied)


@SETTINGS
@given(st.dictionaries(KEYS, JSON_VALUES, max_size=4))
def test_a_clear_map_reads_and_audits_as_the_walk_does(value: dict[str, Any]) -> None:
    assert rendered(False, value) == rendered(True, value)


@SETTINGS
@given(JSON_VALUES, st.sampled_from(["products", "a.b", "x[1]"]))
def test_a_clear_value_under_a_key_reads_and_audits_as_the_walk_does(value: Any, key: str) -> None:
    assert rendered(False, value, key=key) == rendered(True, value, key=key)


def test_keys_holding_only_nulls_are_not_audited() -> None:
    value = {"email": "a@b.example", "gone": None, "empty": {"x": None, "y": []}, "n": [0]}
    shown, reads, _ = rendered(False, value)
    assert shown == value
    assert reads == {("c1", "Event.properties.email"), ("c1", "Event.properties.n")}
