"""Resolution rules: which kinds exist, their limits and priorities, blocked values and
the trait survivorship policy. Loaded from a TOML file over safe built-in defaults.

A rules file looks like::

    default_region = "GB"

    [kinds.email]
    limit = 3

    [kinds.crm_id]          # declares a custom kind
    limit = 1
    priority = 2
    blocked = ["unknown"]   # junk values of this kind only
    blocked_patterns = ["^tmp-"]

    [blocked]
    values = ["test@example.com"]
    patterns = ["^guest-"]

    [survivorship.traits.email]
    sources = ["crm", "web"]   # crm wins over web, then newest
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from identity_graph.config_text import ConfigText, parse_toml, read_toml
from identity_graph.errors import RulesError
from identity_graph.model import Identifier

BUILTIN_KINDS: dict[str, tuple[int, int]] = {
    "user_id": (1, 1),
    "email": (5, 2),
    "phone": (5, 3),
    "device_id": (10, 4),
    "anonymous_id": (1000, 5),
}
BLOCKED_VALUES = ("null", "undefined", "none", "nil", "0", "-1", "anonymous", "[object object]", "")
BLOCKED_PATTERNS = (r"^[0-]*$",)


@dataclass(frozen=True, slots=True)
class KindRule:
    limit: int
    priority: int
    blocked_values: frozenset[str] = frozenset()
    blocked_patterns: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class Rules:
    kinds: Mapping[str, KindRule]
    blocked_values: frozenset[str]
    blocked_patterns: tuple[re.Pattern[str], ...]
    default_region: str = "US"
    trait_sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Rules:
        return cls(
            kinds={k: KindRule(limit, prio) for k, (limit, prio) in BUILTIN_KINDS.items()},
            blocked_values=frozenset(BLOCKED_VALUES),
            blocked_patterns=tuple(re.compile(p, re.IGNORECASE) for p in BLOCKED_PATTERNS),
        )

    @classmethod
    def load(cls, path: str | Path | None) -> Rules:
        """Read a rules file over the defaults; `RulesError` names the line at fault."""
        if path is None:
            return cls.default()
        return _Builder(read_toml(path, what="rules", error=RulesError)).build()

    @classmethod
    def parse(cls, text: str, *, origin: str = "<rules>") -> Rules:
        return _Builder(parse_toml(text, origin=origin, error=RulesError)).build()

    def limit(self, kind: str) -> int:
        return self.kinds[kind].limit

    def is_blocked(self, value: str, kind: str | None = None) -> bool:
        """Whether a value is junk, for every kind or (given `kind`) for that kind."""
        return not self.unblocked([Identifier(kind or "", value)])

    def unblocked(self, identifiers: Iterable[Identifier]) -> list[Identifier]:
        """The identifiers whose values are not junk for their kind, in order (the
        resolver's hot path: one call per observation, not one per identifier)."""
        junk = self.junk
        everywhere = junk[None]
        kept = []
        for i in identifiers:
            values, patterns = junk.get(i.kind, everywhere)
            lowered = i.value.lower()
            if lowered in values:
                continue
            for pattern in patterns:
                if pattern.search(lowered):
                    break
            else:
                kept.append(i)
        return kept

    @cached_property
    def junk(self) -> dict[str | None, tuple[frozenset[str], tuple[re.Pattern[str], ...]]]:
        """kind (None: any kind) -> the values and patterns blocked for it, its own and
        those of every kind together (`is_blocked` looks once instead of twice)"""
        junk: dict[str | None, tuple[frozenset[str], tuple[re.Pattern[str], ...]]] = {
            kind: (
                self.blocked_values | rule.blocked_values,
                self.blocked_patterns + rule.blocked_patterns,
            )
            for kind, rule in self.kinds.items()
        }
        junk[None] = (self.blocked_values, self.blocked_patterns)
        return junk

    @cached_property
    def priorities(self) -> dict[str, int]:
        """kind -> its priority (1 first)"""
        return {kind: rule.priority for kind, rule in self.kinds.items()}


class _Builder:
    def __init__(self, config: ConfigText[RulesError]) -> None:
        self.config = config
        self.fail = config.fail
        self.table = config.table

    def pattern(self, text: str, *, key: str) -> re.Pattern[str]:
        try:
            return re.compile(text, re.IGNORECASE)
        except re.error as e:
            raise self.fail(key, f"bad blocked pattern {text!r}: {e}") from e

    def build(self) -> Rules:
        doc = self.config.data
        known = {"default_region", "kinds", "blocked", "survivorship"}
        for key in doc:
            if key not in known:
                raise self.fail(key, f"unknown setting {key!r}; expected one of {sorted(known)}")
        base = Rules.default()
        kinds = dict(base.kinds)
        for name, spec in self.table(doc, "kinds").items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise self.fail(name, f"kind name {name!r} must match [a-z][a-z0-9_]*")
            if not isinstance(spec, dict):
                raise self.fail(name, f"kinds.{name} must be a table")
            default = kinds.get(name, KindRule(limit=1, priority=10))
            for key in spec:
                if key not in ("limit", "priority", "blocked", "blocked_patterns"):
                    raise self.fail(key, f"kinds.{name}: unknown key {key!r}")
            limit = spec.get("limit", default.limit)
            priority = spec.get("priority", default.priority)
            for key, number in (("limit", limit), ("priority", priority)):
                if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                    raise self.fail(key, f"kinds.{name}.{key} must be a positive integer")
            kinds[name] = KindRule(
                limit=limit,
                priority=priority,
                blocked_values=frozenset(
                    v.strip().lower() for v in _strings(self, spec, "blocked")
                ),
                blocked_patterns=tuple(
                    self.pattern(p, key="blocked_patterns")
                    for p in _strings(self, spec, "blocked_patterns")
                ),
            )
        blocked = self.table(doc, "blocked")
        values = set(base.blocked_values)
        patterns = list(base.blocked_patterns)
        for value in _strings(self, blocked, "values"):
            values.add(value.strip().lower())
        patterns.extend(
            self.pattern(p, key="patterns") for p in _strings(self, blocked, "patterns")
        )
        region = doc.get("default_region", base.default_region)
        if not isinstance(region, str) or not re.fullmatch(r"[A-Z]{2}", region):
            raise self.fail("default_region", "default_region must be a two-letter region code")
        trait_sources: dict[str, tuple[str, ...]] = {}
        survivorship = self.table(doc, "survivorship")
        for trait, spec in self.table(survivorship, "traits").items():
            if not isinstance(spec, dict):
                raise self.fail(trait, f"survivorship.traits.{trait} must be a table")
            trait_sources[trait] = tuple(_strings(self, spec, "sources"))
        return Rules(
            kinds=kinds,
            blocked_values=frozenset(values),
            blocked_patterns=tuple(patterns),
            default_region=region,
            trait_sources=trait_sources,
        )


def _strings(builder: _Builder, doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise builder.fail(key, f"{key} must be a list of strings")
    return value
