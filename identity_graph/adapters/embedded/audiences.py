"""The audience store of the embedded store: computed traits, audiences, memberships and
their log of changes, in a file of their own (`audiences.sqlite3`) written by the store's
process directly, as the access records are (`records`). Opened and closed with the store."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from identity_graph.adapters.embedded import outbox
from identity_graph.adapters.embedded.outbox import EmbeddedOutbox
from identity_graph.adapters.embedded.side_file import SideFile
from identity_graph.adapters.embedded.sql import SQL_VARS, chunks, qmarks
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

T = TypeVar("T")

AUDIENCES_FILE = "audiences.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS computed_traits (
    name TEXT PRIMARY KEY, definition TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audiences (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, condition TEXT NOT NULL, purpose TEXT,
    status TEXT NOT NULL, created_at INTEGER NOT NULL, built_at INTEGER,
    progress REAL NOT NULL, size INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS memberships (
    audience_id TEXT NOT NULL, customer_id TEXT NOT NULL, since INTEGER NOT NULL,
    PRIMARY KEY (audience_id, customer_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_customer ON memberships (customer_id);
CREATE TABLE IF NOT EXISTS changes (
    id TEXT PRIMARY KEY, audience_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    kind TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS changes_audience_time ON changes (audience_id, at, id);
"""
"""`audiences.sqlite3`. An audience's `size` is kept by `record` as memberships come and
go, so that it is never counted on read."""

PUT_AUDIENCE = """
INSERT INTO audiences (id, name, condition, purpose, status, created_at, built_at, progress)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, condition = excluded.condition, purpose = excluded.purpose,
    status = excluded.status, created_at = excluded.created_at,
    built_at = excluded.built_at, progress = excluded.progress
"""
"""An audience stored or replaced, keeping the size the store counts."""


class EmbeddedAudiences(AudienceStore, EmbeddedOutbox):
    """Definitions, memberships and changes in `audiences.sqlite3`, one writer and one
    reader, with the outbox of their deliveries (`EmbeddedOutbox`)."""

    def __init__(self, *, round_trip: Callable[[], None]) -> None:
        """`round_trip` is called on each read and write (the store counts them)."""
        self._file = SideFile("audience", round_trip=round_trip)

    def open(self, data_dir: Path) -> None:
        """Open the audiences file in `data_dir`, making its tables."""
        self._file.open(
            data_dir / AUDIENCES_FILE, lambda db: db.executescript(SCHEMA + outbox.SCHEMA)
        )

    async def close(self) -> None:
        """Close the audiences file once no write is under way."""
        await self._file.close()

    # --- computed traits ----------------------------------------------------------------

    async def put_computed_trait(self, trait: ComputedTrait) -> None:
        row = (
            trait.name,
            dumps(trait.definition),
            to_micros(trait.created_at),
            to_micros(trait.updated_at),
        )
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO computed_traits (name, definition, created_at, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " definition = excluded.definition, created_at = excluded.created_at,"
                " updated_at = excluded.updated_at",
                row,
            )
        )

    async def delete_computed_trait(self, name: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM computed_traits WHERE name = ?", (name,)).rowcount > 0

        return await self._transaction(run)

    async def computed_traits(self) -> list[ComputedTrait]:
        rows = self._read().execute(
            "SELECT name, definition, created_at, updated_at FROM computed_traits ORDER BY name"
        )
        return [
            ComputedTrait(name, loads(definition), from_micros(created), from_micros(updated))
            for name, definition, created, updated in rows
        ]

    # --- audiences ----------------------------------------------------------------------

    async def put_audience(self, audience: Audience) -> None:
        row = (
            audience.id,
            audience.name,
            dumps(audience.condition),
            audience.purpose,
            audience.status.value,
            to_micros(audience.created_at),
            to_micros(audience.built_at) if audience.built_at is not None else None,
            audience.progress,
        )
        await self._transaction(lambda db: db.execute(PUT_AUDIENCE, row))

    async def delete_audience(self, audience_id: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM memberships WHERE audience_id = ?", (audience_id,))
            db.execute("DELETE FROM changes WHERE audience_id = ?", (audience_id,))
            db.execute("DELETE FROM deliveries WHERE audience_id = ?", (audience_id,))
            return db.execute("DELETE FROM audiences WHERE id = ?", (audience_id,)).rowcount > 0

        return await self._transaction(run)

    async def audiences(self) -> list[Audience]:
        rows = self._read().execute(
            "SELECT id, name, condition, purpose, status, created_at, built_at, progress, size"
            " FROM audiences ORDER BY name"
        )
        return [
            Audience(
                aid,
                name,
                loads(condition),
                purpose,
                Status(status),
                from_micros(created),
                from_micros(built) if built is not None else None,
                float(progress),
                int(size),
            )
            for aid, name, condition, purpose, status, created, built, progress, size in rows
        ]

    # --- memberships --------------------------------------------------------------------

    async def record(self, changes: Sequence[AudienceChange]) -> int:
        if not changes:
            return 0

        def run(db: sqlite3.Connection) -> int:
            wanted = sorted({c.audience_id for c in changes})
            known = {
                aid
                for part in chunks(wanted, SQL_VARS)
                for (aid,) in db.execute(
                    f"SELECT id FROM audiences WHERE id IN ({qmarks(len(part))})", part
                )
            }
            sizes: Counter[str] = Counter()
            recorded: list[AudienceChange] = []
            for c in changes:
                if c.audience_id not in known:
                    continue  # deleted meanwhile
                at = to_micros(c.at)
                if c.kind is ChangeKind.ENTERED:
                    done = db.execute(
                        "INSERT OR IGNORE INTO memberships (audience_id, customer_id, since)"
                        " VALUES (?, ?, ?)",
                        (c.audience_id, c.customer_id, at),
                    ).rowcount
                else:
                    done = db.execute(
                        "DELETE FROM memberships WHERE audience_id = ? AND customer_id = ?",
                        (c.audience_id, c.customer_id),
                    ).rowcount
                if done:
                    db.execute(
                        "INSERT INTO changes (id, audience_id, customer_id, kind, at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (c.id, c.audience_id, c.customer_id, c.kind.value, at),
                    )
                    sizes[c.audience_id] += 1 if c.kind is ChangeKind.ENTERED else -1
                    recorded.append(c)
            db.executemany(
                "UPDATE audiences SET size = size + ? WHERE id = ?",
                [(delta, aid) for aid, delta in sizes.items() if delta],
            )
            outbox.enqueue(db, recorded)
            return len(recorded)

        return await self._transaction(run)

    async def memberships(self, customer_ids: Sequence[str]) -> dict[str, list[Membership]]:
        def read(db: sqlite3.Connection) -> dict[str, list[Membership]]:
            found: dict[str, list[Membership]] = {cid: [] for cid in customer_ids}
            for part in chunks(sorted(set(customer_ids)), SQL_VARS):
                for aid, cid, since in db.execute(
                    "SELECT audience_id, customer_id, since FROM memberships"
                    f" WHERE customer_id IN ({qmarks(len(part))})"
                    " ORDER BY customer_id, audience_id",
                    part,
                ):
                    found[cid].append(Membership(aid, cid, from_micros(since)))
            return found

        return await self._file.lookup(read)

    async def members(self, audience_id: str, *, first: int, after: str | None) -> Page[Membership]:
        def read(db: sqlite3.Connection) -> tuple[Any, list[Any]]:
            size = db.execute("SELECT size FROM audiences WHERE id = ?", (audience_id,)).fetchone()
            rows = db.execute(
                "SELECT customer_id, since FROM memberships"
                " WHERE audience_id = ? AND customer_id > ? ORDER BY customer_id LIMIT ?",
                (audience_id, after if after is not None else "", first + 1),
            ).fetchall()
            return size, rows

        size, rows = await self._file.lookup(read)
        more = len(rows) > first
        items = tuple(
            Membership(audience_id, cid, from_micros(since)) for cid, since in rows[:first]
        )
        total = int(size[0]) if size is not None else 0
        return Page(items, total, items[-1].customer_id if more and items else None, more)

    async def changes(
        self, audience_id: str, *, first: int, after: str | None
    ) -> Page[AudienceChange]:
        def read(db: sqlite3.Connection) -> tuple[int, list[Any]]:
            (total,) = db.execute(
                "SELECT count(*) FROM changes WHERE audience_id = ?", (audience_id,)
            ).fetchone()
            where, params = "", [audience_id]
            if after is not None:
                start = db.execute(
                    "SELECT at, id FROM changes WHERE id = ? AND audience_id = ?",
                    (after, audience_id),
                ).fetchone()
                if start is None:
                    raise InvalidOperation("malformed audience change cursor")
                where, params = " AND (at, id) > (?, ?)", [audience_id, *start]
            rows = db.execute(
                "SELECT id, customer_id, kind, at FROM changes WHERE audience_id = ?"
                f"{where} ORDER BY at, id LIMIT ?",
                [*params, first + 1],
            ).fetchall()
            return total, rows

        total, rows = await self._file.scan(read)
        more = len(rows) > first
        items = tuple(
            AudienceChange(cid, audience_id, customer, ChangeKind(kind), from_micros(at))
            for cid, customer, kind, at in rows[:first]
        )
        return Page(items, int(total), items[-1].id if more and items else None, more)

    # --- connections --------------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        return self._file.read()

    async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one write transaction, in a worker thread."""
        return await self._file.transaction(work)
