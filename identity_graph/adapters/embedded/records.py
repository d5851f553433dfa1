"""The access records of the embedded store: API keys and the audit log, in a file of their
own (`audit.sqlite3`) written by the store's process directly, so that an audited read
never waits for the copier. Opened and closed with the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from identity_graph.adapters.embedded.journal import TABLES_FILE
from identity_graph.adapters.embedded.side_file import SideFile
from identity_graph.adapters.embedded.sql import AUDIT_FILE, create_audit_tables
from identity_graph.codec import dumps, from_micros, loads, to_micros
from identity_graph.errors import InvalidOperation
from identity_graph.model import Page
from identity_graph.records import AccessRecords, ApiKey, AuditEntry


class EmbeddedRecords(AccessRecords):
    """API keys and audit entries in `audit.sqlite3`, one writer and readers in threads."""

    def __init__(self, *, round_trip: Callable[[], None]) -> None:
        """`round_trip` is called on each read and write (the store counts them)."""
        self._file = SideFile("audit", round_trip=round_trip)

    def open(self, data_dir: Path) -> None:
        """Open the audit file in `data_dir`, making its tables (and moving there the
        audit log and API keys an older c360 kept in the tables file)."""
        self._file.open(
            data_dir / AUDIT_FILE, lambda db: create_audit_tables(db, data_dir / TABLES_FILE)
        )

    async def close(self) -> None:
        """Close the audit file once no write is under way."""
        await self._file.close()

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        first_of_id: dict[str, AuditEntry] = {}
        for e in entries:
            first_of_id.setdefault(e.id, e)
        rows = [
            (e.id, to_micros(e.at), e.principal, e.role, e.customer_id, dumps(list(e.fields)))
            for e in first_of_id.values()
        ]
        if len(rows) <= ROWS_PER_APPEND:
            if rows:
                await self._file.statement(append_statement(len(rows)), _flat(rows))
            return
        chunks = [rows[n : n + ROWS_PER_APPEND] for n in range(0, len(rows), ROWS_PER_APPEND)]
        await self._file.transaction(
            lambda db: [db.execute(append_statement(len(c)), _flat(c)) for c in chunks]
        )

    async def audit_log(
        self,
        *,
        first: int,
        after: str | None,
        customer_id: str | None,
        count_up_to: int | None = 0,
    ) -> Page[AuditEntry]:
        clauses: list[str] = []
        params: list[Any] = []
        if customer_id is not None:
            clauses.append("customer_id = ?")
            params.append(customer_id)

        def read(db: sqlite3.Connection) -> tuple[int, list[Any]]:
            where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
            total = 0
            if count_up_to != 0:
                total = db.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM audit{where} LIMIT ?)",
                    [*params, -1 if count_up_to is None else count_up_to],
                ).fetchone()[0]
            if after is not None:
                found = db.execute("SELECT at, id FROM audit WHERE id = ?", (after,)).fetchone()
                if found is None:
                    raise InvalidOperation("malformed audit cursor")
                clauses.append("(at, id) < (?, ?)")
                params.extend(found)
            where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
            rows = db.execute(
                "SELECT id, at, principal, role, customer_id, fields FROM audit"
                f"{where} ORDER BY at DESC, id DESC LIMIT ?",
                [*params, first + 1],
            ).fetchall()
            return total, rows

        total, rows = await self._file.scan(read)
        more = len(rows) > first
        rows = rows[:first]
        items = tuple(
            AuditEntry(eid, from_micros(at), principal, role, cid, tuple(loads(fields)))
            for eid, at, principal, role, cid, fields in rows
        )
        return Page(items, total, items[-1].id if more and items else None, more)

    async def expire_audit(self, before: datetime, *, batch: int) -> int:
        deleted = 0
        while True:
            done = await self._write_rows(
                "DELETE FROM audit WHERE rowid IN"
                " (SELECT rowid FROM audit WHERE at < ? ORDER BY at LIMIT ?)",
                [(to_micros(before), batch)],
            )
            deleted += done
            if done < batch:
                return deleted

    async def put_api_key(self, key: ApiKey) -> None:
        if key.expires_at is not None:  # first: a key is never stored without its expiry
            await self._write_rows(
                "INSERT INTO api_key_expiry (id, expires_at) VALUES (?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                [(key.id, to_micros(key.expires_at))],
            )
        await self._write_rows(
            "INSERT INTO api_keys (id, key_hash, role, name, created_at, revoked_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING",
            [
                (
                    key.id,
                    key.key_hash,
                    key.role,
                    key.name,
                    to_micros(key.created_at),
                    to_micros(key.revoked_at) if key.revoked_at else None,
                )
            ],
        )

    async def api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._file.lookup(
            lambda db: db.execute(f"{SELECT_API_KEYS} WHERE k.key_hash = ?", (key_hash,)).fetchone()
        )
        return None if row is None else api_key_from_row(row)

    async def api_keys(self, *, first: int, after: str | None) -> Page[ApiKey]:
        def read(db: sqlite3.Connection) -> tuple[int, list[Any]]:
            total = int(db.execute("SELECT count(*) FROM api_keys").fetchone()[0])
            where, params = "", []
            if after is not None:
                found = db.execute("SELECT created_at, id FROM api_keys WHERE id = ?", (after,))
                start = found.fetchone()
                if start is None:
                    raise InvalidOperation("malformed API key cursor")
                where, params = " WHERE (k.created_at, k.id) > (?, ?)", list(start)
            rows = db.execute(
                f"{SELECT_API_KEYS}{where} ORDER BY k.created_at, k.id LIMIT ?",
                [*params, first + 1],
            ).fetchall()
            return total, rows

        total, rows = await self._file.scan(read)
        more = len(rows) > first
        items = tuple(api_key_from_row(row) for row in rows[:first])
        return Page(items, total, items[-1].id if more and items else None, more)

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        changed = await self._write_rows(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            [(to_micros(at), key_id)],
        )
        return changed > 0

    async def _write_rows(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Write rows in one transaction (in a worker thread); return how many changed."""
        return await self._file.transaction(
            lambda db: sum(db.execute(sql, row).rowcount for row in rows)
        )


ROWS_PER_APPEND = 500
"""audit rows one statement appends (6 parameters each), at most; a group commit of more is
one transaction of several statements"""


def append_statement(rows: int) -> str:
    """Append `rows` audit entries, but not those whose id is recorded already: one statement
    (the common case is one commit of one statement, see `SideFile.statement`)."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "INSERT INTO audit (id, at, principal, role, customer_id, fields)"
        " SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6"
        f" FROM (VALUES {values}) AS v"
        " WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE a.id = v.column1)"
    )


def _flat(rows: Sequence[Sequence[Any]]) -> list[Any]:
    return [value for row in rows for value in row]


SELECT_API_KEYS = (
    "SELECT k.id, k.key_hash, k.role, k.name, k.created_at, k.revoked_at, e.expires_at"
    " FROM api_keys k LEFT JOIN api_key_expiry e ON e.id = k.id"
)


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    kid, khash, role, name, created, revoked, expires = row
    return ApiKey(
        kid,
        khash,
        role,
        name,
        from_micros(created),
        from_micros(revoked) if revoked is not None else None,
        from_micros(expires) if expires is not None else None,
    )
