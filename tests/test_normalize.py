"""Per-kind normalisation, and the doctests of the identity graph's modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

from identity_graph.errors import InvalidIdentifier, UnknownKind
from identity_graph.normalize import normalize
from identity_graph.rules import Rules

RULES = Rules.default()


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("email", "  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("EMAIL", "a@b.co", "a@b.co"),
        ("phone", "(415) 555-0134", "+14155550134"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("phone", "+1 415-555-0134", "+14155550134"),
        ("user_id", "  U-123 ", "U-123"),
        ("user_id", 42, "42"),
        ("anonymous_id", "f81d4fae-7dec", "f81d4fae-7dec"),
        ("device_id", "IDFA:ABC", "IDFA:ABC"),
    ],
)
def test_values_are_normalised_per_kind(kind: str, raw: object, value: str) -> None:
    identifier = normalize(kind, raw, RULES)
    assert (identifier.kind, identifier.value) == (kind.lower(), value)
    assert identifier.key == f"{kind.lower()}:{value}"


def test_phones_without_a_country_code_use_the_default_region() -> None:
    british = Rules.parse('default_region = "GB"\n')
    assert normalize("phone", "020 7946 0958", british).value == "+442079460958"
    assert normalize("phone", "(415) 555-0134", RULES).value == "+14155550134"


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("email", "not-an-email", "not an email address"),
        ("email", "a@b", "not an email address"),
        ("email", "   ", "empty value"),
        ("phone", "call me", "not a phone number"),
        ("phone", "12", "phone"),
        ("user_id", "x" * 300, "longer than 256"),
        ("user_id", "a\x00b", "control characters"),
        ("user_id", None, "expected a string"),
        ("user_id", True, "expected a string"),
        ("device_id", 1.5, "expected a string"),
    ],
)
def test_bad_values_raise_naming_the_kind(kind: str, raw: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason) as e:
        normalize(kind, raw, RULES)
    assert e.value.kind == kind
    assert str(e.value).startswith(f"invalid {kind}:")


def test_unknown_kinds_are_refused_and_custom_kinds_accepted() -> None:
    with pytest.raises(UnknownKind, match="crm_id") as e:
        normalize("crm_id", "C-1", RULES)
    assert "user_id" in str(e.value)
    custom = Rules.parse("[kinds.crm_id]\nlimit = 1\n")
    assert normalize(" CRM_ID ", " C-1 ", custom).key == "crm_id:C-1"


MODULES = [
    "identity_graph.config_text",
    "identity_graph.normalize",
    "identity_graph.resolver",
    "identity_graph.survivorship",
    "graph_api.access.masking",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
