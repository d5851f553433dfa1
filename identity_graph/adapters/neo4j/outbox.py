"""The outbox in Neo4j: destinations and their deliveries, in the identity store's database, so
that `Neo4jAudiences.record` enqueues deliveries in the statement that records the changes
(`ENQUEUE`).

Several processes may send from one database. Every transaction that changes or deletes
existing deliveries first locks their destinations, in id order (`record` only creates
them): a claim reads under its destination's lock, so it never sees a delivery half-way
through another claim, a `finish` or a deletion (Neo4j reads committed values, each property
when it is read), and the claims of a destination serialise, each seeing the leases the one
before it set. `resume` releases only expired leases: another process may be sending under a
live one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, LiteralString

from identity_graph.activation.deliveries import Delivery, DeliveryStatus
from identity_graph.activation.destinations import (
    Destination,
    DestinationFormat,
    DestinationStatus,
    SigningSecret,
)
from identity_graph.activation.store import LEASE, Outbox
from identity_graph.adapters.neo4j.records import RunQuery
from identity_graph.audiences.store import ChangeKind
from identity_graph.codec import dumps, from_micros, loads, to_micros
from identity_graph.errors import InvalidOperation
from identity_graph.model import Page

SCHEMA = (
    "CREATE CONSTRAINT destination_id IF NOT EXISTS FOR (n:Destination) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT destination_name IF NOT EXISTS FOR (n:Destination) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT delivery_id IF NOT EXISTS FOR (n:Delivery) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX delivery_status IF NOT EXISTS"
    " FOR (n:Delivery) ON (n.destination_id, n.status, n.id)",
    "CREATE INDEX delivery_customer IF NOT EXISTS"
    " FOR (n:Delivery) ON (n.destination_id, n.customer_id, n.status, n.id)",
    "CREATE INDEX delivery_destination IF NOT EXISTS FOR (n:Delivery) ON (n.destination_id, n.id)",
    "CREATE INDEX delivery_audience IF NOT EXISTS FOR (n:Delivery) ON (n.audience_id)",
)
"""Made with the audiences' schema. `delivery_status` serves claims and listings by status,
`delivery_customer` finds a customer's earlier pending delivery, `delivery_destination`
lists and deletes a destination's, `delivery_audience` deletes an audience's."""


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def destination_to_row(d: Destination) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "url": d.url,
        "audience_ids": list(d.audience_ids),
        "format": d.format.value,
        "role": d.role,
        "secrets": dumps(
            [{"value": s.value, "expires_at": _micros(s.expires_at)} for s in d.secrets]
        ),
        "created_at": to_micros(d.created_at),
        "status": d.status.value,
        "last_error": d.last_error,
        "mapping": dumps(dict(d.mapping)),
        "headers": dumps(dict(d.headers)),
        "updated_at": _micros(d.updated_at),
    }


def destination_from_row(row: Mapping[str, Any]) -> Destination:
    return Destination(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        audience_ids=tuple(row["audience_ids"]),
        format=DestinationFormat(row["format"]),
        role=row["role"],
        secrets=tuple(
            SigningSecret(s["value"], _time(s.get("expires_at"))) for s in loads(row["secrets"])
        ),
        created_at=from_micros(row["created_at"]),
        status=DestinationStatus(row["status"]),
        last_error=row.get("last_error"),
        mapping=loads(row["mapping"]),
        headers=loads(row["headers"]),
        updated_at=_time(row.get("updated_at")),
    )


def delivery_from_row(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        destination_id=row["destination_id"],
        audience_id=row["audience_id"],
        customer_id=row["customer_id"],
        kind=ChangeKind(row["kind"]),
        changed_at=from_micros(row["changed_at"]),
        created_at=from_micros(row["created_at"]),
        status=DeliveryStatus(row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=_time(row.get("next_at")),
        last_attempt_at=_time(row.get("last_attempt_at")),
        last_error=row.get("last_error"),
        response_status=row.get("response_status"),
        delivered_at=_time(row.get("delivered_at")),
    )


class Neo4jOutbox(Outbox):
    """The `Outbox` methods of `Neo4jAudiences`: destinations as (:Destination) nodes (secrets,
    mapping and headers as JSON text), deliveries as (:Delivery) nodes keyed by ids, with
    `leased_until` while a sender holds them. Times are integer microseconds."""

    _read: RunQuery
    _write: RunQuery

    async def put_destination(self, destination: Destination) -> None:
        rows = await self._write(PUT_DESTINATION, row=destination_to_row(destination))
        if not rows:
            raise InvalidOperation(f"a destination named {destination.name!r} exists")

    async def delete_destination(self, destination_id: str) -> bool:
        [[found]] = await self._write(DELETE_DESTINATION, id=destination_id)
        return bool(found)

    async def destinations(self) -> list[Destination]:
        return [destination_from_row(d) for [d] in await self._read(DESTINATIONS)]

    async def set_status(
        self, destination_id: str, status: DestinationStatus, last_error: str | None
    ) -> None:
        await self._write(SET_STATUS, id=destination_id, status=status.value, error=last_error)

    async def claim(
        self, destination_id: str, *, now: datetime, limit: int, lease: timedelta = LEASE
    ) -> list[Delivery]:
        rows = await self._write(
            CLAIM,
            id=destination_id,
            now=to_micros(now),
            until=to_micros(now + lease),
            limit=limit,
        )
        return [delivery_from_row(d) for [d] in rows]

    async def finish(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        rows = [
            {
                "id": d.id,
                "status": d.status.value,
                "attempts": d.attempts,
                "next_at": _micros(d.next_attempt_at),
                "last_attempt_at": _micros(d.last_attempt_at),
                "last_error": d.last_error,
                "response_status": d.response_status,
                "delivered_at": _micros(d.delivered_at),
            }
            for d in sorted(deliveries, key=lambda d: d.id)  # the order claims lock them in
        ]
        destination_ids = sorted({d.destination_id for d in deliveries})
        await self._write(FINISH, destination_ids=destination_ids, rows=rows)

    async def deliveries(
        self,
        destination_id: str,
        *,
        first: int,
        after: str | None,
        status: DeliveryStatus | None = None,
    ) -> Page[Delivery]:
        [[total, found]] = await self._read(
            LISTINGS[status is not None, after is not None],
            id=destination_id,
            status=None if status is None else status.value,
            after=after,
            limit=first + 1,
        )
        more = len(found) > first
        items = tuple(delivery_from_row(d) for d in found[:first])
        return Page(items, int(total), items[-1].id if more and items else None, more)

    async def delivery(self, delivery_id: str) -> Delivery | None:
        rows = await self._read(DELIVERY, id=delivery_id)
        return delivery_from_row(rows[0][0]) if rows else None

    async def redeliver(self, delivery_id: str, now: datetime) -> Delivery | None:
        rows = await self._write(REDELIVER, id=delivery_id, now=to_micros(now))
        return delivery_from_row(rows[0][0]) if rows else None

    async def resume(self, now: datetime) -> int:
        [[made_due]] = await self._write(RESUME, now=to_micros(now))
        return int(made_due)

    async def next_due(self, destination_id: str) -> datetime | None:
        [[due]] = await self._read(NEXT_DUE, id=destination_id)
        return _time(due)


# --- Cypher --------------------------------------------------------------------------------

ENQUEUE = """
FOREACH (did IN [x IN destinations WHERE c.audience_id IN x.audience_ids | x.id] |
  CREATE (:Delivery {
    id: c.id + '.' + did, destination_id: did, audience_id: c.audience_id,
    customer_id: c.customer_id, kind: c.kind, changed_at: c.at, created_at: c.at,
    status: 'PENDING', attempts: 0, next_at: c.at
  }))
"""
"""A clause of `audiences.RECORD`, after it recorded change `c`: a delivery for each of the
enabled `destinations` ({id, audience_ids} maps, read by `ENABLED`) that lists its audience,
due at once, its id `<change id>.<destination id>` as `deliveries.delivery_id` makes it."""

ENABLED = """
CALL () {
  MATCH (x:Destination)
  WHERE x.status <> 'DISABLED'
  RETURN collect(x {.id, .audience_ids}) AS destinations
}
"""
"""The first clause of `audiences.RECORD`: the destinations `ENQUEUE` enqueues for."""

PUT_DESTINATION = """
OPTIONAL MATCH (other:Destination {name: $row.name})
WITH other
WHERE other IS NULL OR other.id = $row.id
MERGE (d:Destination {id: $row.id})
SET d += $row
RETURN true
"""
"""No row when another destination has the name (a null in `$row` removes the property)."""

DELETE_DESTINATION = """
OPTIONAL MATCH (dest:Destination {id: $id})
SET dest._lock = true
WITH dest
CALL (dest) {
  MATCH (d:Delivery)
  WHERE d.destination_id = $id AND d.id IS NOT NULL
  DELETE d
}
WITH dest, dest IS NOT NULL AS found
DELETE dest
RETURN found
"""
"""Locked first, so that no claim leases a delivery being deleted."""

LOCK_AUDIENCE_DESTINATIONS = """
CALL () {
  MATCH (d:Delivery {audience_id: $id})
  WITH DISTINCT d.destination_id AS did
  ORDER BY did
  MATCH (x:Destination {id: did})
  SET x._lock = true
  REMOVE x._lock
}
"""
"""A clause of `audiences.DELETE_AUDIENCE`, before it deletes the audience's deliveries: the
destinations they belong to locked."""

DESTINATIONS = "MATCH (d:Destination) RETURN d {.*} ORDER BY d.name"

SET_STATUS = """
MATCH (d:Destination {id: $id})
SET d.status = $status, d.last_error = $error
"""

EARLIEST = """
NOT EXISTS {
    MATCH (e:Delivery)
    WHERE e.destination_id = d.destination_id AND e.customer_id = d.customer_id
      AND e.status = 'PENDING' AND e.id < d.id
  }
"""
"""`d` is its customer's earliest pending delivery (a seek in `delivery_customer`)."""

CLAIM = """
MATCH (dest:Destination {id: $id})
SET dest._lock = true
REMOVE dest._lock
WITH dest
CALL (dest) {
  MATCH (d:Delivery)
  WHERE d.destination_id = dest.id AND d.status = 'PENDING' AND d.id IS NOT NULL
    AND d.next_at <= $now AND (d.leased_until IS NULL OR d.leased_until <= $now)
    AND {earliest}
  WITH d ORDER BY d.destination_id, d.status, d.id LIMIT $limit
  SET d.leased_until = $until
  RETURN d
}
RETURN d {.*} ORDER BY d.id
""".replace("{earliest}", EARLIEST)
"""The destination is locked before its deliveries are read (the subquery runs after the
lock, on its row): a concurrent claim waits, then reads the leases this one set. Due and
unleased pending deliveries in id order from `delivery_status`, each its customer's earliest
pending one."""

FINISH = """
CALL () {
  UNWIND $destination_ids AS did
  MATCH (x:Destination {id: did})
  SET x._lock = true
  REMOVE x._lock
  RETURN count(x) AS locked
}
CALL (locked) {
  UNWIND $rows AS r
  MATCH (d:Delivery {id: r.id})
  SET d += r
  REMOVE d.leased_until
}
"""
"""The destinations (`$destination_ids`, sorted) locked first; the subquery that takes
`locked` runs after them."""

DELIVERIES = """
CALL () {
  MATCH (d:Delivery)
  WHERE d.destination_id = $id {status} AND d.id IS NOT NULL
  RETURN count(d) AS total
}
CALL () {
  MATCH (d:Delivery)
  WHERE d.destination_id = $id {status} AND {after}
  WITH d ORDER BY {order} LIMIT $limit
  RETURN collect(d {.*}) AS found
}
RETURN total, found
"""


def listing(*, status: bool, after: bool) -> LiteralString:
    """`DELIVERIES` newest first, of the status `$status` (from `delivery_status`) or all
    (from `delivery_destination`), after the id `$after` or from the newest."""
    return (
        DELIVERIES.replace("{status}", "AND d.status = $status" if status else "")
        .replace(
            "{order}",
            "d.destination_id DESC, d.status DESC, d.id DESC"
            if status
            else "d.destination_id DESC, d.id DESC",
        )
        .replace("{after}", "d.id < $after" if after else "d.id IS NOT NULL")
    )


LISTINGS: dict[tuple[bool, bool], LiteralString] = {
    (status, after): listing(status=status, after=after)
    for status in (False, True)
    for after in (False, True)
}
"""`listing` of each (status given, after given)."""

DELIVERY = "MATCH (d:Delivery {id: $id}) RETURN d {.*}"

REDELIVER = """
MATCH (d:Delivery {id: $id})
OPTIONAL MATCH (x:Destination {id: d.destination_id})
SET x._lock = true
REMOVE x._lock
WITH d
SET d.status = 'PENDING', d.next_at = $now
REMOVE d.leased_until
RETURN d {.*}
"""

RESUME = """
CALL () {
  MATCH (dest:Destination)
  WHERE dest.status <> 'DISABLED'
  WITH dest ORDER BY dest.id
  SET dest._lock = true
  REMOVE dest._lock
  RETURN collect(dest.id) AS locked
}
CALL (locked) {
  UNWIND locked AS did
  MATCH (d:Delivery)
  WHERE d.destination_id = did AND d.status = 'PENDING' AND d.id IS NOT NULL
  SET d.next_at = CASE WHEN d.next_at > $now THEN $now ELSE d.next_at END,
      d.leased_until = CASE WHEN d.leased_until > $now THEN d.leased_until END
  RETURN count(d) AS made_due
}
RETURN made_due
"""
"""Enabled destinations locked in id order, then their pending deliveries made due, and
expired leases released: a live lease read under the lock is one no claim renews meanwhile."""

NEXT_DUE = """
MATCH (d:Delivery)
WHERE d.destination_id = $id AND d.status = 'PENDING' AND d.id IS NOT NULL AND {earliest}
RETURN min(CASE WHEN d.leased_until > d.next_at THEN d.leased_until ELSE d.next_at END)
""".replace("{earliest}", EARLIEST)
"""Over each customer's earliest pending delivery: when it is due, or its lease expires if
later."""
