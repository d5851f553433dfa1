"""The Neo4j store's profile listing: a page read in id order from the index of one condition
of the filter (the driver), the other conditions checked on each profile it yields, so that a
page stops after `$limit` matches, whatever the store holds. Every value is a parameter; the
text is made of the fixed parts below (a purpose names its property, from `PURPOSES` only).

The driver is the first of: the identifiers asked for (a handful of nodes), the consent
granted for a purpose (`profile_consent_<purpose>`), a kind of identifier
(`identifier_kind_profile`), and otherwise every profile (the `profile_id` constraint). A
filter with several conditions costs its page divided by the share of the driver's rows that
meet the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from identity_graph.adapters.neo4j.rows import consent_property
from identity_graph.codec import dumps
from identity_graph.model import JSON, PURPOSES
from identity_graph.store import ProfileFilter

INDEXES = (
    "CREATE INDEX identifier_kind_profile IF NOT EXISTS"
    " FOR (n:Identifier) ON (n.kind, n.profile_id)",
    *(
        f"CREATE INDEX profile_consent_{purpose} IF NOT EXISTS"
        f" FOR (n:Profile) ON (n.{consent_property(purpose)}, n.id)"
        for purpose in PURPOSES
    ),
)
"""what the drivers read in id order (made with the store's other indexes)"""


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a filter: a predicate on a profile id `pid`, and, if an index can
    give the profiles that meet it in id order, the pattern that reads them."""

    check: str
    params: dict[str, Any]
    driver: str | None = None
    """`MATCH (d:...) USING INDEX ... WHERE ...`: nodes `d` whose `column` is a profile id
    that meets it (maybe more than once), read in the order of their index; `$after` bounds
    the column"""
    column: str = ""
    lead: str = ""
    """the index's leading property, if it is not `column` (its value is one for all `d`):
    the planner reads the index in order only for an ORDER BY that names it"""


CURRENT = Condition(
    "EXISTS { MATCH (p:Profile {id: pid}) WHERE p.merged_into IS NULL }",
    {},
    "MATCH (d:Profile) USING INDEX d:Profile(id) WHERE d.id > $after AND d.merged_into IS NULL",
    "d.id",
)
"""a current (not absorbed) profile: what every listing returns"""


def has_kind(kind: str) -> Condition:
    return Condition(
        "EXISTS { MATCH (i:Identifier {kind: $has_kind, profile_id: pid}) }",
        {"has_kind": kind},
        "MATCH (d:Identifier) USING INDEX d:Identifier(kind, profile_id)"
        " WHERE d.kind = $has_kind AND d.profile_id > $after",
        "d.profile_id",
        "d.kind",
    )


def identifier_keys(keys: tuple[str, ...]) -> Condition:
    return Condition(
        "EXISTS { MATCH (i:Identifier) WHERE i.key IN $identifier_keys AND i.profile_id = pid }",
        {"identifier_keys": list(keys)},
        "MATCH (d:Identifier) WHERE d.key IN $identifier_keys AND d.profile_id > $after",
        "d.profile_id",
    )


def consent_granted(purpose: str) -> Condition:
    """The state the domain decided when the profile's consent last changed (the
    `consent_<purpose>` property `CONSENT_STATES` sets)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    prop = consent_property(purpose)
    return Condition(
        f"EXISTS {{ MATCH (p:Profile {{id: pid}}) WHERE p.{prop} = 'GRANTED' }}",
        {},
        f"MATCH (d:Profile) USING INDEX d:Profile({prop}, id)"
        f" WHERE d.{prop} = 'GRANTED' AND d.id > $after",
        "d.id",
        f"d.{prop}",
    )


def trait_value(name: str, value: JSON) -> Condition:
    """Some value ever observed of the trait equals `value`: checked on each profile the
    other conditions yield, never a driver (no index orders its matches by profile)."""
    return Condition(
        "EXISTS { MATCH (i:Identifier {profile_id: pid})"
        " MATCH (t:Trait {identifier_key: i.key})"
        " WHERE t.name = $trait_name AND t.value = $trait_value }",
        {"trait_name": name, "trait_value": dumps(value)},
    )


def conditions(where: ProfileFilter) -> list[Condition]:
    """The filter's conditions in the order of `ProfileFilter.plan`, the driver first."""
    return [_MAKERS[name](value) for name, value in where.plan()]


_MAKERS: dict[str, Callable[[Any], Condition]] = {
    "identifier_keys": lambda keys: identifier_keys(keys),
    "consent_granted": lambda purpose: consent_granted(purpose),
    "has_kind": lambda kind: has_kind(kind),
    "current": lambda _: CURRENT,
    "trait": lambda trait: trait_value(*trait),
}


def _matching(conditions: list[Condition], after: str) -> tuple[str, str]:
    """The ids `pid` of the profiles that meet every condition, after the parameter
    `after`, and the ORDER BY that reads them in id order from the driver's index."""
    driver, *checks = conditions
    assert driver.driver is not None
    found = driver.driver.replace("$after", after) + "\n  WITH DISTINCT "
    order = "pid"
    if driver.lead:
        found += f"{driver.lead} AS lead, "
        order = "lead, pid"
    found += f"{driver.column} AS pid"
    if checks:
        found += "\n  WHERE " + " AND ".join(c.check for c in checks)
    return found, order


def query(where: ProfileFilter, *, counting: bool) -> tuple[str, dict[str, Any]]:
    """The listing statement and the parameters of the filter's conditions. It returns
    `ids`, up to `$limit` matching profile ids after `$after` ('' for the first page) in id
    order, and `total`: how many profiles match, counted up to `$count` from `$start` ('')
    (without `counting`, 0)."""
    found = conditions(where)
    params: dict[str, Any] = {}
    for condition in found:
        params.update(condition.params)
    matching, order = _matching(found, "$after")
    page = (
        f"CALL () {{\n  {matching}\n"
        f"  WITH pid ORDER BY {order} LIMIT $limit\n  RETURN collect(pid) AS ids\n}}\n"
    )
    if not counting:
        return f"{page}RETURN 0 AS total, ids", params
    matching, _ = _matching(found, "$start")
    count = f"CALL () {{\n  {matching}\n  WITH pid LIMIT $count\n  RETURN count(pid) AS total\n}}\n"
    return f"{count}{page}RETURN total, ids", params
