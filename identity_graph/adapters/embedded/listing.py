"""The embedded store's profile listing in SQL: a page read in id order from the index of one
condition of the filter (the driver), the other conditions checked on each row it yields, so
that a page stops after `first + 1` matches, whatever the store holds.

The driver is the first of: the identifiers asked for (a handful of rows), the consent granted
for a purpose (`profile_consents_granted`), a kind of identifier (`identifiers_kind`), and
otherwise every current profile (`profiles_current`). A filter with several conditions costs
its page divided by the share of the driver's rows that meet the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from identity_graph.adapters.embedded.sql import qmarks
from identity_graph.codec import dumps
from identity_graph.model import JSON
from identity_graph.store import ProfileFilter


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a filter: how to read the profiles that meet it in id order, if
    an index can, and how to check one profile (`{pid}` names its id)."""

    check: str
    params: list[Any]
    driver: str | None = None
    """`FROM <table> d WHERE ...` yielding the profiles that meet it (maybe more than once
    each), in id order from an index"""
    column: str = ""
    """the driver's column that holds the profile id"""
    driver_params: list[Any] = field(default_factory=list)


CURRENT = Condition(
    "EXISTS (SELECT 1 FROM profiles p WHERE p.id = {pid} AND p.merged_into IS NULL)",
    [],
    "FROM profiles d INDEXED BY profiles_current WHERE d.merged_into IS NULL",
    "d.id",
)
"""a current (not absorbed) profile: what every listing returns"""


def has_kind(kind: str) -> Condition:
    return Condition(
        "EXISTS (SELECT 1 FROM identifiers i WHERE i.kind = ? AND i.profile_id = {pid})",
        [kind],
        "FROM identifiers d INDEXED BY identifiers_kind WHERE d.kind = ?",
        "d.profile_id",
        [kind],
    )


def identifier_keys(keys: tuple[str, ...]) -> Condition:
    marks = qmarks(len(keys))
    return Condition(
        f"{{pid}} IN (SELECT profile_id FROM identifiers WHERE key IN ({marks}))",
        list(keys),
        f"FROM identifiers d WHERE d.key IN ({marks})",
        "d.profile_id",
        list(keys),
    )


def consent_granted(purpose: str) -> Condition:
    """The state the domain decided when the profile's consent last changed."""
    return Condition(
        "EXISTS (SELECT 1 FROM profile_consents s WHERE s.profile_id = {pid}"
        " AND s.purpose = ? AND s.status = 'GRANTED')",
        [purpose],
        "FROM profile_consents d INDEXED BY profile_consents_granted"
        " WHERE d.purpose = ? AND d.status = 'GRANTED'",
        "d.profile_id",
        [purpose],
    )


def trait_value(name: str, value: JSON) -> Condition:
    """Some value ever observed of the trait equals `value`: checked on each profile the
    other conditions yield, never a driver (no index orders its matches by profile)."""
    return Condition(
        "EXISTS (SELECT 1 FROM identifiers i JOIN traits t ON t.identifier_key = i.key"
        " WHERE i.profile_id = {pid} AND t.name = ? AND t.value = ?)",
        [name, dumps(value)],
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


def _select(where: ProfileFilter, after: str | None) -> tuple[str, list[Any]]:
    """`SELECT DISTINCT pid ...` of the matching profiles after `after`, unordered and
    unlimited, and its parameters."""
    driver, *checks = conditions(where)
    assert driver.driver is not None
    pid = driver.column
    sql = f"SELECT DISTINCT {pid} AS pid {driver.driver}"
    params = list(driver.driver_params)
    if after is not None:
        sql += f" AND {pid} > ?"
        params.append(after)
    for check in checks:
        sql += " AND " + check.check.format(pid=pid)
        params.extend(check.params)
    return sql, params


def page_query(where: ProfileFilter, after: str | None, limit: int) -> tuple[str, list[Any]]:
    """Up to `limit` matching profile ids after `after`, in id order."""
    sql, params = _select(where, after)
    return f"{sql} ORDER BY pid LIMIT ?", [*params, limit]


def count_query(where: ProfileFilter, up_to: int | None) -> tuple[str, list[Any]]:
    """How many profiles match, counting at most `up_to` (None: all)."""
    sql, params = _select(where, None)
    return f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, -1 if up_to is None else up_to]
