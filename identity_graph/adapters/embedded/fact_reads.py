"""The embedded store's reads for computed traits and audiences: only the records their
definitions read, with the filter in SQL, so that evaluating a profile costs what its
conditions look at, not its whole history."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from identity_graph.adapters.embedded.reads import ProfileReads
from identity_graph.adapters.embedded.sql import SQL_VARS, chunks, qmarks
from identity_graph.codec import from_micros, loads
from identity_graph.model import EventCategory, MessageType, StoredEvent, TraitValue


def _selecting(selectors: Collection[tuple[MessageType, str | None]]) -> tuple[str, list[Any]]:
    """An SQL condition on `events` matching any selector, and its parameters."""
    whole = sorted({kind.value for kind, name in selectors if name is None})
    named: dict[str, set[str]] = {}
    for kind, name in selectors:
        if name is not None and kind.value not in whole:
            named.setdefault(kind.value, set()).add(name)
    clauses: list[str] = []
    params: list[Any] = []
    if whole:
        clauses.append(f"type IN ({qmarks(len(whole))})")
        params.extend(whole)
    for type_, names in sorted(named.items()):
        clauses.append(f"(type = ? AND name IN ({qmarks(len(names))}))")
        params.extend([type_, *sorted(names)])
    return " OR ".join(clauses), params


class FactReads(ProfileReads):
    """`identifier_kinds`, `traits_named` and `events_of` of `EmbeddedStore`."""

    async def identifier_kinds(self, ids: Sequence[str]) -> dict[str, frozenset[str]]:
        self._round_trip()
        members = self.partition.members
        return {
            pid: frozenset(key.partition(":")[0] for key in members[pid])
            for pid in dict.fromkeys(ids)
            if pid in members
        }

    async def traits_named(
        self, ids: Sequence[str], names: Collection[str]
    ) -> dict[str, list[TraitValue]]:
        wanted = sorted(set(names))
        rows = await self._rows_of(
            ids,
            "SELECT identifier_key, name, value, source, observed_at, message_id FROM traits"
            " WHERE identifier_key IN ({marks})"
            f" AND name IN ({qmarks(len(wanted))})",
            wanted,
        )
        return {
            pid: sorted(
                (
                    TraitValue(name, loads(value), source, from_micros(at), mid, key)
                    for key, name, value, source, at, mid in found
                ),
                key=lambda t: (t.observed_at, t.message_id),
            )
            for pid, found in rows.items()
        }

    async def events_of(
        self, ids: Sequence[str], selectors: Collection[tuple[MessageType, str | None]]
    ) -> dict[str, list[StoredEvent]]:
        condition, params = _selecting(selectors)
        # over the events' index on identifier_key; the type/name test runs in SQLite, so
        # events no definition counts are never decoded
        rows = await self._rows_of(
            ids,
            "SELECT identifier_key, message_id, type, name, category, properties, ts, source"
            " FROM events WHERE identifier_key IN ({marks})" + f" AND ({condition})",
            params,
        )
        return {
            pid: [
                StoredEvent(
                    mid,
                    key,
                    MessageType(kind),
                    name,
                    EventCategory(category),
                    loads(props),
                    from_micros(ts),
                    source,
                )
                for key, mid, kind, name, category, props, ts, source in found
            ]
            for pid, found in rows.items()
        }

    async def _rows_of(
        self, ids: Sequence[str], sql: str, params: Sequence[Any]
    ) -> dict[str, list[Any]]:
        """Rows of `sql` (its first column an identifier key; `{marks}` the identifiers,
        then `params`) for every identifier of the given profiles, grouped by profile: one
        statement for many profiles' identifiers. Nothing is read without `params`."""
        wanted = list(dict.fromkeys(ids))
        if not params:
            return {pid: [] for pid in wanted}
        owner = self._owners(wanted)

        def read(db: sqlite3.Connection) -> dict[str, list[Any]]:
            result: dict[str, list[Any]] = {pid: [] for pid in wanted}
            for chunk in chunks(sorted(owner), SQL_VARS - len(params)):
                for row in db.execute(sql.format(marks=qmarks(len(chunk))), [*chunk, *params]):
                    result[owner[row[0]]].append(row)
            return result

        return await self._lookup(ids, read)
