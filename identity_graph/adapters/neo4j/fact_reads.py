"""The Neo4j store's reads for computed traits and audiences: only the records their
definitions read, filtered in the statement, one statement for a batch of profiles."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, LiteralString

from identity_graph.adapters.neo4j.rows import event_from_row
from identity_graph.codec import from_micros, loads
from identity_graph.model import MessageType, StoredEvent, TraitValue
from identity_graph.store import IdentityStore

KINDS_OF = """
UNWIND $ids AS pid
MATCH (p:Profile {id: pid})
WHERE p.merged_into IS NULL
CALL (p) {
  OPTIONAL MATCH (i:Identifier {profile_id: p.id})
  RETURN collect(DISTINCT i.kind) AS kinds
}
RETURN pid, kinds
"""

TRAITS_NAMED = """
UNWIND $ids AS pid
MATCH (i:Identifier {profile_id: pid})
MATCH (t:Trait {identifier_key: i.key})
WHERE t.name IN $names
RETURN pid, t.name, t.value, t.source, t.observed_at, t.message_id, t.identifier_key, t.ord
"""

EVENTS_MATCHING = """
UNWIND $ids AS pid
MATCH (i:Identifier {profile_id: pid})
MATCH (e:Event {identifier_key: i.key})
WHERE e.type IN $whole OR [e.type, e.name] IN $named
RETURN pid, e {.*}
"""


class FactReads(IdentityStore):
    """`identifier_kinds`, `traits_named` and `events_of` of `Neo4jStore`."""

    async def _read(self, query: LiteralString, **params: Any) -> list[list[Any]]:
        raise NotImplementedError

    async def identifier_kinds(self, ids: Sequence[str]) -> dict[str, frozenset[str]]:
        rows = await self._read(KINDS_OF, ids=list(dict.fromkeys(ids)))
        return {pid: frozenset(kinds) for pid, kinds in rows}

    async def traits_named(
        self, ids: Sequence[str], names: Collection[str]
    ) -> dict[str, list[TraitValue]]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, list[list[Any]]] = {pid: [] for pid in wanted}
        if names:
            for pid, *row in await self._read(TRAITS_NAMED, ids=wanted, names=sorted(names)):
                found[pid].append(row)
        return {
            pid: [
                TraitValue(name, loads(value), source, from_micros(at), mid, key)
                for name, value, source, at, mid, key, _ in sorted(
                    rows, key=lambda r: (r[3], r[4], r[6])
                )
            ]
            for pid, rows in found.items()
        }

    async def events_of(
        self, ids: Sequence[str], selectors: Collection[tuple[MessageType, str | None]]
    ) -> dict[str, list[StoredEvent]]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, list[StoredEvent]] = {pid: [] for pid in wanted}
        whole = sorted({kind.value for kind, name in selectors if name is None})
        named = sorted([kind.value, name] for kind, name in selectors if name is not None)
        if selectors:
            rows = await self._read(EVENTS_MATCHING, ids=wanted, whole=whole, named=named)
            for pid, event in rows:
                found[pid].append(event_from_row(event))
        return found
