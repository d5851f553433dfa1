"""Rules: safe defaults, TOML overrides, custom kinds, and bad files naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity_graph.errors import RulesError
from identity_graph.rules import KindRule, Rules


def test_defaults_follow_the_issue() -> None:
    rules = Rules.default()
    assert dict(rules.kinds) == {
        "user_id": KindRule(1, 1),
        "email": KindRule(5, 2),
        "phone": KindRule(5, 3),
        "device_id": KindRule(10, 4),
        "anonymous_id": KindRule(1000, 5),
    }
    assert rules.default_region == "US"
    assert Rules.load(None) == rules


@pytest.mark.parametrize(
    "value",
    [
        "null",
        "NULL",
        "undefined",
        "None",
        "nil",
        "0",
        "-1",
        "anonymous",
        "[object Object]",
        "",
        "000",
        "0-0-0",
        "---",
    ],
)
def test_default_blocked_values(value: str) -> None:
    assert Rules.default().is_blocked(value)


@pytest.mark.parametrize("value", ["u1", "jo@x.io", "+14155550134", "10", "nullify", "a-0"])
def test_ordinary_values_are_not_blocked(value: str) -> None:
    assert not Rules.default().is_blocked(value)


def test_a_file_overrides_defaults_and_declares_kinds(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        'default_region = "GB"\n'
        "[kinds.email]\nlimit = 3\n"
        "[kinds.crm_id]\nlimit = 1\npriority = 2\n"
        "[kinds.loyalty_id]\n"
        '[blocked]\nvalues = [" Test@Example.com "]\npatterns = ["^guest-"]\n'
        '[survivorship.traits.email]\nsources = ["crm", "web"]\n',
        encoding="utf-8",
    )
    rules = Rules.load(path)
    assert rules.kinds["email"] == KindRule(3, 2)
    assert rules.kinds["crm_id"] == KindRule(1, 2)
    assert rules.kinds["loyalty_id"] == KindRule(1, 10)
    assert rules.kinds["user_id"] == KindRule(1, 1)
    assert rules.default_region == "GB"
    assert rules.is_blocked("test@example.com") and rules.is_blocked("GUEST-42")
    assert rules.is_blocked("null") and not rules.is_blocked("member-42")
    assert rules.trait_sources == {"email": ("crm", "web")}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[kinds.email]\nlimit = 0\n", 2, "limit must be a positive integer"),
        ("[kinds.email]\n\nlimit = true\n", 3, "positive integer"),
        ('[kinds.email]\nlimit = 2\npriority = "high"\n', 3, "priority"),
        ("[kinds.Bad-Kind]\nlimit = 1\n", 1, "must match"),
        ("[kinds.email]\ncolour = 1\n", 2, "unknown key 'colour'"),
        ('\n\nregion = "GB"\n', 3, "unknown setting 'region'"),
        ('default_region = "Britain"\n', 1, "two-letter"),
        ('[blocked]\nvalues = ["a"]\npatterns = ["(unclosed"]\n', 3, "bad blocked pattern"),
        ("[blocked]\nvalues = [1, 2]\n", 2, "list of strings"),
        ("kinds = 3\n", 1, "kinds must be a table"),
    ],
)
def test_bad_rules_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(RulesError, match=rf"line {line}\b.*{words}|{words}.*line {line}\b") as e:
        Rules.parse(text, origin="rules.toml")
    assert str(e.value).startswith("rules.toml")


def test_toml_syntax_errors_name_the_line() -> None:
    with pytest.raises(RulesError, match=r"rules\.toml.*line 2"):
        Rules.parse("[kinds.email]\nlimit = = 3\n", origin="rules.toml")


def test_an_unreadable_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read rules file"):
        Rules.load(tmp_path / "missing.toml")


def test_a_kind_can_block_values_of_its_own() -> None:
    rules = Rules.parse(
        '[kinds.email]\nblocked = ["Test@Example.com"]\nblocked_patterns = ["@mailinator\\\\."]\n'
    )
    assert rules.is_blocked("test@example.com", "email")
    assert rules.is_blocked("x@mailinator.com", "email")
    assert not rules.is_blocked("test@example.com", "user_id")
    assert not rules.is_blocked("test@example.com")
    assert rules.is_blocked("null", "email")
    assert rules.limit("email") == 5


def test_a_bad_per_kind_pattern_names_its_line() -> None:
    with pytest.raises(RulesError, match="line 3"):
        Rules.parse('[kinds.email]\nlimit = 3\nblocked_patterns = ["("]\n')
