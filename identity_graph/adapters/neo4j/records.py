"""The access records in Neo4j: API keys and the audit log, in the identity store's database.

`Neo4jRecords` owns no driver: the store hands it the two ways it runs one statement (a read
and a write managed transaction, retried by the driver, driver errors translated), so the
records open, close and fail with the store. The schema (unique `ApiKey.key_hash` and
`ApiKey.id`, unique `Audit.seq`, the `audit` counter) is made with the store's, in `cypher`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, LiteralString, Protocol

from identity_graph.codec import dumps, from_micros, loads, to_micros
from identity_graph.errors import InvalidOperation
from identity_graph.model import Page
from identity_graph.records import AccessRecords, ApiKey, AuditEntry


class RunQuery(Protocol):
    """Runs one statement in a managed transaction of its own and returns its rows."""

    async def __call__(self, query: LiteralString, **params: Any) -> list[list[Any]]: ...


class Neo4jRecords(AccessRecords):
    """API keys and audit entries as (:ApiKey) and (:Audit) nodes."""

    def __init__(self, *, read: RunQuery, write: RunQuery) -> None:
        self._read = read
        self._write = write

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        rows = [
            {
                "id": e.id,
                "at": to_micros(e.at),
                "principal": e.principal,
                "role": e.role,
                "customer_id": e.customer_id,
                "fields": dumps(list(e.fields)),
            }
            for e in entries
        ]
        await self._write(APPEND_AUDIT, rows=rows)

    async def audit_log(
        self, *, first: int, after: str | None, customer_id: str | None
    ) -> Page[AuditEntry]:
        [[total, known, found]] = await self._read(
            AUDIT_LOG, customer_id=customer_id, after=after, limit=first + 1
        )
        if not known:
            raise InvalidOperation("malformed audit cursor")
        more = len(found) > first
        found = found[:first]
        return Page(
            tuple(audit_from_row(a) for a in found),
            int(total),
            str(found[-1]["id"]) if more and found else None,
            more,
        )

    async def put_api_key(self, key: ApiKey) -> None:
        row = {
            "id": key.id,
            "key_hash": key.key_hash,
            "role": key.role,
            "name": key.name,
            "created_at": to_micros(key.created_at),
            "revoked_at": to_micros(key.revoked_at) if key.revoked_at else None,
        }
        await self._write(PUT_API_KEY, row=row)

    async def api_key(self, key_hash: str) -> ApiKey | None:
        rows = await self._read(API_KEY, key_hash=key_hash)
        return api_key_from_row(rows[0][0]) if rows else None

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        [[changed]] = await self._write(REVOKE_API_KEY, id=key_id, at=to_micros(at))
        return int(changed) > 0


def audit_from_row(row: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        row["id"],
        from_micros(row["at"]),
        row["principal"],
        row["role"],
        row["customer_id"],
        tuple(loads(row["fields"])),
    )


def api_key_from_row(row: Mapping[str, Any]) -> ApiKey:
    revoked = row.get("revoked_at")
    return ApiKey(
        row["id"],
        row["key_hash"],
        row["role"],
        row.get("name"),
        from_micros(row["created_at"]),
        from_micros(revoked) if revoked is not None else None,
    )


# --- Cypher --------------------------------------------------------------------------------

APPEND_AUDIT = """
MERGE (c:Counter {name: 'audit'})
ON CREATE SET c.value = 0
SET c.value = c.value + size($rows)
WITH c.value - size($rows) AS base
UNWIND range(0, size($rows) - 1) AS n
WITH base + n + 1 AS seq, $rows[n] AS r
CREATE (a:Audit)
SET a = r, a.seq = seq
"""
"""Numbers the entries from the `audit` counter, whose lock orders concurrent appends."""

AUDIT_LOG = """
CALL () {
  MATCH (a:Audit)
  WHERE $customer_id IS NULL OR a.customer_id = $customer_id
  RETURN count(a) AS total
}
CALL () {
  OPTIONAL MATCH (c:Audit {id: $after})
  RETURN min(c.seq) AS before
}
CALL (before) {
  MATCH (a:Audit)
  WHERE ($customer_id IS NULL OR a.customer_id = $customer_id)
    AND ($after IS NULL OR a.seq < before)
  WITH a
  ORDER BY a.seq DESC
  LIMIT $limit
  RETURN collect(a {.*}) AS found
}
RETURN total, $after IS NULL OR before IS NOT NULL AS known, found
"""
"""Entries newest first; `$after` is the id of the entry to continue after (`known` is false
when no entry has that id)."""

PUT_API_KEY = """
MERGE (k:ApiKey {key_hash: $row.key_hash})
ON CREATE SET k = $row
"""

API_KEY = "MATCH (k:ApiKey {key_hash: $key_hash}) RETURN k {.*} AS k"

REVOKE_API_KEY = """
MATCH (k:ApiKey {id: $id})
WHERE k.revoked_at IS NULL
SET k.revoked_at = $at
RETURN count(k) AS n
"""
