"""The audience store in Neo4j: computed traits, audiences, memberships and their log of
changes, in the identity store's database.

`Neo4jAudiences` owns no driver: the store hands it the two ways it runs one statement (a
read and a write managed transaction, retried by the driver, driver errors translated), as it
does the access records (`records`). The store makes `SCHEMA` with its own at open: each
lookup below is an index seek, never a label scan.

`record` locks each audience it changes before reading its memberships, so that the engines
of several API processes recording the same entry count it once. The store is also the outbox
(`outbox.Neo4jOutbox`): `record` enqueues the deliveries of the changes it records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from identity_graph.adapters.neo4j import outbox
from identity_graph.adapters.neo4j.outbox import Neo4jOutbox
from identity_graph.adapters.neo4j.records import RunQuery
from identity_graph.audiences.store import (
    Audience,
    AudienceChange,
    AudienceStore,
    ChangeKind,
    ComputedTrait,
    Membership,
    Status,
)
from identity_graph.codec import dumps, from_micros, loads, to_micros
from identity_graph.errors import InvalidOperation
from identity_graph.model import Page

SCHEMA = (
    "CREATE CONSTRAINT computed_trait_name IF NOT EXISTS"
    " FOR (n:ComputedTraitDef) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT audience_id IF NOT EXISTS FOR (n:AudienceDef) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT audience_name IF NOT EXISTS FOR (n:AudienceDef) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT membership_key IF NOT EXISTS"
    " FOR (n:Membership) REQUIRE (n.audience_id, n.customer_id) IS UNIQUE",
    "CREATE INDEX membership_customer IF NOT EXISTS FOR (n:Membership) ON (n.customer_id)",
    "CREATE CONSTRAINT audience_change_id IF NOT EXISTS"
    " FOR (n:AudienceChange) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX audience_change_time IF NOT EXISTS"
    " FOR (n:AudienceChange) ON (n.audience_id, n.at, n.id)",
    *outbox.SCHEMA,
)
"""Made by the store at open, after its own schema."""


class Neo4jAudiences(AudienceStore, Neo4jOutbox):
    """Definitions as (:ComputedTraitDef) and (:AudienceDef) nodes; each membership a
    (:Membership) node, each change an (:AudienceChange) node, keyed by ids (no
    relationships: a profile's node may be merged away while its memberships are exited);
    with the outbox of their deliveries (`Neo4jOutbox`)."""

    def __init__(self, *, read: RunQuery, write: RunQuery) -> None:
        self._read = read
        self._write = write

    async def put_computed_trait(self, trait: ComputedTrait) -> None:
        row = {
            "name": trait.name,
            "definition": dumps(trait.definition),
            "created_at": to_micros(trait.created_at),
            "updated_at": to_micros(trait.updated_at),
        }
        await self._write(PUT_COMPUTED_TRAIT, row=row)

    async def delete_computed_trait(self, name: str) -> bool:
        [[deleted]] = await self._write(DELETE_COMPUTED_TRAIT, name=name)
        return int(deleted) > 0

    async def computed_traits(self) -> list[ComputedTrait]:
        rows = await self._read(COMPUTED_TRAITS)
        return [
            ComputedTrait(
                t["name"],
                loads(t["definition"]),
                from_micros(t["created_at"]),
                from_micros(t["updated_at"]),
            )
            for [t] in rows
        ]

    async def put_audience(self, audience: Audience) -> None:
        row = {
            "id": audience.id,
            "name": audience.name,
            "condition": dumps(audience.condition),
            "purpose": audience.purpose,
            "status": audience.status.value,
            "created_at": to_micros(audience.created_at),
            "built_at": to_micros(audience.built_at) if audience.built_at else None,
            "progress": audience.progress,
        }
        await self._write(PUT_AUDIENCE, row=row)

    async def delete_audience(self, audience_id: str) -> bool:
        [[found]] = await self._write(DELETE_AUDIENCE, id=audience_id)
        return bool(found)

    async def audiences(self) -> list[Audience]:
        return [audience_from_row(a) for [a] in await self._read(AUDIENCES)]

    async def record(self, changes: Sequence[AudienceChange]) -> int:
        if not changes:
            return 0
        rows = [
            {
                "id": c.id,
                "audience_id": c.audience_id,
                "customer_id": c.customer_id,
                "kind": c.kind.value,
                "at": to_micros(c.at),
            }
            for c in changes
        ]
        [[done]] = await self._write(RECORD, changes=rows)
        return int(done)

    async def memberships(self, customer_ids: Sequence[str]) -> dict[str, list[Membership]]:
        found: dict[str, list[Membership]] = {cid: [] for cid in customer_ids}
        if not customer_ids:
            return found
        for aid, cid, since in await self._read(MEMBERSHIPS, ids=sorted(set(customer_ids))):
            found[cid].append(Membership(aid, cid, from_micros(since)))
        return found

    async def members(self, audience_id: str, *, first: int, after: str | None) -> Page[Membership]:
        [[size, found]] = await self._read(
            MEMBERS, id=audience_id, after=after or "", limit=first + 1
        )
        more = len(found) > first
        items = tuple(
            Membership(audience_id, m["customer_id"], from_micros(m["since"]))
            for m in found[:first]
        )
        return Page(items, int(size or 0), items[-1].customer_id if more and items else None, more)

    async def changes(
        self, audience_id: str, *, first: int, after: str | None
    ) -> Page[AudienceChange]:
        [[total, known, found]] = await self._read(
            CHANGES, id=audience_id, after=after, limit=first + 1
        )
        if not known:
            raise InvalidOperation("malformed audience change cursor")
        more = len(found) > first
        items = tuple(
            AudienceChange(
                c["id"], audience_id, c["customer_id"], ChangeKind(c["kind"]), from_micros(c["at"])
            )
            for c in found[:first]
        )
        return Page(items, int(total), items[-1].id if more and items else None, more)


def audience_from_row(row: Mapping[str, Any]) -> Audience:
    built = row.get("built_at")
    return Audience(
        row["id"],
        row["name"],
        loads(row["condition"]),
        row.get("purpose"),
        Status(row["status"]),
        from_micros(row["created_at"]),
        from_micros(built) if built is not None else None,
        float(row["progress"]),
        int(row["size"]),
    )


# --- Cypher --------------------------------------------------------------------------------

PUT_COMPUTED_TRAIT = """
MERGE (t:ComputedTraitDef {name: $row.name})
SET t += $row
"""

DELETE_COMPUTED_TRAIT = """
OPTIONAL MATCH (t:ComputedTraitDef {name: $name})
DELETE t
RETURN count(t)
"""

COMPUTED_TRAITS = "MATCH (t:ComputedTraitDef) RETURN t {.*} ORDER BY t.name"

PUT_AUDIENCE = """
MERGE (a:AudienceDef {id: $row.id})
ON CREATE SET a.size = 0
SET a += $row
"""
"""`size` is set once, when the audience is made: `record` keeps it after that (a null in
`$row`, `built_at` say, removes the property)."""

DELETE_AUDIENCE = """
OPTIONAL MATCH (a:AudienceDef {id: $id})
{lock}
CALL () {
  MATCH (m:Membership)
  WHERE m.audience_id = $id AND m.customer_id IS NOT NULL
  DELETE m
}
CALL () {
  MATCH (c:AudienceChange)
  WHERE c.audience_id = $id AND c.at IS NOT NULL AND c.id IS NOT NULL
  DELETE c
}
CALL () {
  MATCH (d:Delivery {audience_id: $id})
  DELETE d
}
WITH a, a IS NOT NULL AS found
DELETE a
RETURN found
""".replace("{lock}", outbox.LOCK_AUDIENCE_DESTINATIONS)
"""The destinations of the audience's deliveries are locked first, as every change to
deliveries locks them (`outbox`)."""

AUDIENCES = "MATCH (a:AudienceDef) RETURN a {.*} ORDER BY a.name"

RECORD = """
{enabled}
UNWIND $changes AS c
CALL (c, destinations) {
  MATCH (a:AudienceDef {id: c.audience_id})
  SET a._lock = true
  REMOVE a._lock
  WITH c, destinations
  MATCH (a:AudienceDef {id: c.audience_id})
  OPTIONAL MATCH (m:Membership {audience_id: c.audience_id, customer_id: c.customer_id})
  WITH a, c, destinations, m, m IS NULL AS entering
  WHERE entering = (c.kind = 'ENTERED')
  FOREACH (_ IN CASE WHEN entering THEN [1] ELSE [] END |
    CREATE (:Membership {audience_id: c.audience_id, customer_id: c.customer_id, since: c.at}))
  FOREACH (gone IN CASE WHEN entering THEN [] ELSE [m] END | DELETE gone)
  SET a.size = a.size + CASE WHEN entering THEN 1 ELSE -1 END
  CREATE (:AudienceChange {
    id: c.id, audience_id: c.audience_id, customer_id: c.customer_id, kind: c.kind, at: c.at
  })
  {enqueue}
  RETURN count(*) AS done
}
RETURN sum(done)
""".replace("{enabled}", outbox.ENABLED).replace("{enqueue}", outbox.ENQUEUE)
"""Each change in turn (a later one sees what an earlier made): its audience is locked
first (setting and removing a property), then matched again, so that an audience deleted
while the lock was awaited records nothing, and the membership read after it is the one
committed last; entering an existing membership or exiting a missing one changes nothing.
A change recorded is enqueued for the enabled destinations of its audience."""

MEMBERSHIPS = """
UNWIND $ids AS cid
MATCH (m:Membership {customer_id: cid})
RETURN m.audience_id, m.customer_id, m.since
ORDER BY m.customer_id, m.audience_id
"""

MEMBERS = """
OPTIONAL MATCH (a:AudienceDef {id: $id})
CALL () {
  MATCH (m:Membership)
  WHERE m.audience_id = $id AND m.customer_id > $after
  WITH m ORDER BY m.audience_id, m.customer_id LIMIT $limit
  RETURN collect(m {.customer_id, .since}) AS found
}
RETURN a.size, found
"""
"""Members in customer id order from the `membership_key` index (read in its order)."""

CHANGES = """
CALL () {
  MATCH (c:AudienceChange)
  WHERE c.audience_id = $id AND c.at IS NOT NULL AND c.id IS NOT NULL
  RETURN count(c) AS total
}
CALL () {
  OPTIONAL MATCH (s:AudienceChange {id: $after})
  WHERE s.audience_id = $id
  RETURN s.at AS at, s.id AS sid
}
CALL (at, sid) {
  MATCH (c:AudienceChange)
  WHERE c.audience_id = $id AND c.at >= coalesce(at, -9223372036854775808) AND c.id IS NOT NULL
    AND (at IS NULL OR c.at > at OR c.id > sid)
  WITH c ORDER BY c.audience_id, c.at, c.id LIMIT $limit
  RETURN collect(c {.*}) AS found
}
RETURN total, $after IS NULL OR at IS NOT NULL AS known, found
"""
"""An audience's changes oldest first by (at, id) from the `audience_change_time` index,
after the change whose id is `$after`; `known` is false when the audience has no such
change."""
