"""The outbox of the embedded store: destinations and their deliveries, in the audiences file
(`audiences.sqlite3`), so that `record` enqueues deliveries in the transaction that records
the changes. One process owns the data directory, so `resume` releases every claim."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from identity_graph.activation.deliveries import Delivery, DeliveryStatus, delivery_id
from identity_graph.activation.destinations import (
    Destination,
    DestinationFormat,
    DestinationStatus,
    SigningSecret,
)
from identity_graph.activation.store import LEASE, Outbox
from identity_graph.adapters.embedded.side_file import SideFile
from identity_graph.audiences.store import AudienceChange, ChangeKind
from identity_graph.codec import dumps, from_micros, loads, to_micros
from identity_graph.errors import InvalidOperation
from identity_graph.model import Page

SCHEMA = """
CREATE TABLE IF NOT EXISTS destinations (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL,
    audience_ids TEXT NOT NULL, format TEXT NOT NULL, role TEXT NOT NULL,
    secrets TEXT NOT NULL, created_at INTEGER NOT NULL, status TEXT NOT NULL,
    last_error TEXT, mapping TEXT NOT NULL, headers TEXT NOT NULL, updated_at INTEGER);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY, destination_id TEXT NOT NULL, audience_id TEXT NOT NULL,
    customer_id TEXT NOT NULL, kind TEXT NOT NULL, changed_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    next_at INTEGER, last_attempt_at INTEGER, last_error TEXT, response_status INTEGER,
    delivered_at INTEGER, leased_until INTEGER);
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (destination_id, status, id);
CREATE INDEX IF NOT EXISTS deliveries_customer
    ON deliveries (destination_id, customer_id, status, id);
CREATE INDEX IF NOT EXISTS deliveries_audience ON deliveries (audience_id);
"""

DELIVERY_COLUMNS = (
    "id, destination_id, audience_id, customer_id, kind, changed_at, created_at, status,"
    " attempts, next_at, last_attempt_at, last_error, response_status, delivered_at"
)
DESTINATION_COLUMNS = (
    "id, name, url, audience_ids, format, role, secrets, created_at, status, last_error,"
    " mapping, headers, updated_at"
)
CLAIMABLE = f"""
SELECT {DELIVERY_COLUMNS} FROM deliveries d
WHERE d.destination_id = ? AND d.status = 'PENDING' AND d.next_at <= ?
  AND (d.leased_until IS NULL OR d.leased_until <= ?)
  AND NOT EXISTS (
    SELECT 1 FROM deliveries e
    WHERE e.destination_id = d.destination_id AND e.customer_id = d.customer_id
      AND e.status = 'PENDING' AND e.id < d.id)
ORDER BY d.id LIMIT ?
"""
"""due, unclaimed, and the customer's earliest pending one"""


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        destination_id=row[1],
        audience_id=row[2],
        customer_id=row[3],
        kind=ChangeKind(row[4]),
        changed_at=from_micros(row[5]),
        created_at=from_micros(row[6]),
        status=DeliveryStatus(row[7]),
        attempts=int(row[8]),
        next_attempt_at=_time(row[9]),
        last_attempt_at=_time(row[10]),
        last_error=row[11],
        response_status=row[12],
        delivered_at=_time(row[13]),
    )


def destination_from_row(row: Sequence[Any]) -> Destination:
    return Destination(
        id=row[0],
        name=row[1],
        url=row[2],
        audience_ids=tuple(loads(row[3])),
        format=DestinationFormat(row[4]),
        role=row[5],
        secrets=tuple(SigningSecret(s["value"], _time(s.get("expires_at"))) for s in loads(row[6])),
        created_at=from_micros(row[7]),
        status=DestinationStatus(row[8]),
        last_error=row[9],
        mapping=loads(row[10]),
        headers=loads(row[11]),
        updated_at=_time(row[12]),
    )


def enqueue(db: sqlite3.Connection, recorded: Sequence[AudienceChange]) -> None:
    """Inside `record`'s transaction: a delivery for each recorded change and each enabled
    destination of its audience, due at once."""
    if not recorded:
        return
    wanted: dict[str, list[str]] = {}
    for did, audience_ids in db.execute(
        "SELECT id, audience_ids FROM destinations WHERE status != 'DISABLED'"
    ):
        for aid in loads(audience_ids):
            wanted.setdefault(aid, []).append(did)
    if not wanted:
        return
    rows = []
    for c in recorded:
        at = to_micros(c.at)
        for did in wanted.get(c.audience_id, ()):
            rows.append(
                (
                    delivery_id(c.id, did),
                    did,
                    c.audience_id,
                    c.customer_id,
                    c.kind.value,
                    at,
                    at,
                    at,
                )
            )
    db.executemany(
        "INSERT OR IGNORE INTO deliveries (id, destination_id, audience_id, customer_id, kind,"
        " changed_at, created_at, status, attempts, next_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', 0, ?)",
        rows,
    )


class EmbeddedOutbox(Outbox):
    """The `Outbox` methods of `EmbeddedAudiences`, over its file."""

    _file: SideFile

    async def put_destination(self, destination: Destination) -> None:
        d = destination
        row = (
            d.id,
            d.name,
            d.url,
            dumps(list(d.audience_ids)),
            d.format.value,
            d.role,
            dumps([{"value": s.value, "expires_at": _micros(s.expires_at)} for s in d.secrets]),
            to_micros(d.created_at),
            d.status.value,
            d.last_error,
            dumps(dict(d.mapping)),
            dumps(dict(d.headers)),
            _micros(d.updated_at),
        )

        def run(db: sqlite3.Connection) -> None:
            taken = db.execute(
                "SELECT 1 FROM destinations WHERE name = ? AND id != ?", (d.name, d.id)
            ).fetchone()
            if taken:
                raise InvalidOperation(f"a destination named {d.name!r} exists")
            db.execute(
                f"INSERT OR REPLACE INTO destinations ({DESTINATION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._file.transaction(run)

    async def delete_destination(self, destination_id: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM deliveries WHERE destination_id = ?", (destination_id,))
            return (
                db.execute("DELETE FROM destinations WHERE id = ?", (destination_id,)).rowcount > 0
            )

        return await self._file.transaction(run)

    async def destinations(self) -> list[Destination]:
        rows = self._file.read().execute(
            f"SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY name"
        )
        return [destination_from_row(r) for r in rows]

    async def set_status(
        self, destination_id: str, status: DestinationStatus, last_error: str | None
    ) -> None:
        await self._file.transaction(
            lambda db: db.execute(
                "UPDATE destinations SET status = ?, last_error = ? WHERE id = ?",
                (status.value, last_error, destination_id),
            )
        )

    async def claim(
        self, destination_id: str, *, now: datetime, limit: int, lease: timedelta = LEASE
    ) -> list[Delivery]:
        t = to_micros(now)

        def run(db: sqlite3.Connection) -> list[Delivery]:
            rows = db.execute(CLAIMABLE, (destination_id, t, t, limit)).fetchall()
            db.executemany(
                "UPDATE deliveries SET leased_until = ? WHERE id = ?",
                [(to_micros(now + lease), r[0]) for r in rows],
            )
            return [delivery_from_row(r) for r in rows]

        return await self._file.transaction(run)

    async def finish(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        rows = [
            (
                d.status.value,
                d.attempts,
                _micros(d.next_attempt_at),
                _micros(d.last_attempt_at),
                d.last_error,
                d.response_status,
                _micros(d.delivered_at),
                d.id,
            )
            for d in deliveries
        ]
        await self._file.transaction(
            lambda db: db.executemany(
                "UPDATE deliveries SET status = ?, attempts = ?, next_at = ?,"
                " last_attempt_at = ?, last_error = ?, response_status = ?, delivered_at = ?,"
                " leased_until = NULL WHERE id = ?",
                rows,
            )
        )

    async def deliveries(
        self,
        destination_id: str,
        *,
        first: int,
        after: str | None,
        status: DeliveryStatus | None = None,
    ) -> Page[Delivery]:
        db = self._file.read()
        where, params = "destination_id = ?", [destination_id]
        if status is not None:
            where += " AND status = ?"
            params.append(status.value)
        (total,) = db.execute(f"SELECT count(*) FROM deliveries WHERE {where}", params).fetchone()
        if after is not None:
            where += " AND id < ?"
            params.append(after)
        rows = db.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, first + 1],
        ).fetchall()
        more = len(rows) > first
        items = tuple(delivery_from_row(r) for r in rows[:first])
        return Page(items, int(total), items[-1].id if more and items else None, more)

    async def delivery(self, delivery_id: str) -> Delivery | None:
        row = (
            self._file.read()
            .execute(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,))
            .fetchone()
        )
        return None if row is None else delivery_from_row(row)

    async def redeliver(self, delivery_id: str, now: datetime) -> Delivery | None:
        def run(db: sqlite3.Connection) -> Delivery | None:
            db.execute(
                "UPDATE deliveries SET status = 'PENDING', next_at = ?, leased_until = NULL"
                " WHERE id = ?",
                (to_micros(now), delivery_id),
            )
            row = db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            return None if row is None else delivery_from_row(row)

        return await self._file.transaction(run)

    async def resume(self, now: datetime) -> int:
        def run(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE deliveries SET next_at = min(next_at, ?), leased_until = NULL"
                " WHERE status = 'PENDING' AND destination_id IN"
                " (SELECT id FROM destinations WHERE status != 'DISABLED')",
                (to_micros(now),),
            ).rowcount

        return await self._file.transaction(run)

    async def next_due(self, destination_id: str) -> datetime | None:
        (due,) = (
            self._file.read()
            .execute(
                "SELECT min(max(next_at, coalesce(leased_until, 0))) FROM deliveries d"
                " WHERE destination_id = ? AND status = 'PENDING' AND NOT EXISTS ("
                "  SELECT 1 FROM deliveries e WHERE e.destination_id = d.destination_id"
                "  AND e.customer_id = d.customer_id AND e.status = 'PENDING' AND e.id < d.id)",
                (destination_id,),
            )
            .fetchone()
        )
        return _time(due)
