"""The access records in Neo4j: API keys and the audit log, in the identity store's database.

`Neo4jRecords` owns no driver: the store hands it the two ways it runs one statement (a read
and a write managed transaction, retried by the driver, driver errors translated), so the
records open, close and fail with the store. The schema (unique `ApiKey.key_hash`,
`ApiKey.id` and `Audit.id`; the audit log's `(at, id)` and `(customer_id, at, id)` indexes)
is made with the store's, in `cypher`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, LiteralString, Protocol

from identity_graph.adapters.neo4j.rows import count_limit
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
        self,
        *,
        first: int,
        after: str | None,
        customer_id: str | None,
        count_up_to: int | None = 0,
    ) -> Page[AuditEntry]:
        query = AUDIT_LOG if customer_id is None else AUDIT_LOG_OF
        [[total, known, found]] = await self._read(
            query,
            customer_id=customer_id,
            after=after,
            limit=first + 1,
            count=count_limit(count_up_to),
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

    async def expire_audit(self, before: datetime, *, batch: int) -> int:
        total = 0
        while True:
            [[deleted]] = await self._write(EXPIRE_AUDIT, before=to_micros(before), batch=batch)
            total += int(deleted)
            if deleted < batch:
                return total

    async def put_api_key(self, key: ApiKey) -> None:
        row = {
            "id": key.id,
            "key_hash": key.key_hash,
            "role": key.role,
            "name": key.name,
            "created_at": to_micros(key.created_at),
            "revoked_at": to_micros(key.revoked_at) if key.revoked_at else None,
            "expires_at": to_micros(key.expires_at) if key.expires_at else None,
        }
        await self._write(PUT_API_KEY, row=row)

    async def api_key(self, key_hash: str) -> ApiKey | None:
        rows = await self._read(API_KEY, key_hash=key_hash)
        return api_key_from_row(rows[0][0]) if rows else None

    async def api_keys(self, *, first: int, after: str | None) -> Page[ApiKey]:
        [[total, known, found]] = await self._read(API_KEYS, after=after, limit=first + 1)
        if not known:
            raise InvalidOperation("malformed API key cursor")
        more = len(found) > first
        items = tuple(api_key_from_row(k) for k in found[:first])
        return Page(items, int(total), items[-1].id if more and items else None, more)

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
    expires = row.get("expires_at")  # absent on keys stored before keys could expire
    return ApiKey(
        row["id"],
        row["key_hash"],
        row["role"],
        row.get("name"),
        from_micros(row["created_at"]),
        from_micros(revoked) if revoked is not None else None,
        from_micros(expires) if expires is not None else None,
    )


# --- Cypher --------------------------------------------------------------------------------

APPEND_AUDIT = """
UNWIND $rows AS r
MERGE (a:Audit {id: r.id})
ON CREATE SET a = r
"""
"""Each entry is created once, by its id (unique): a retried transaction adds nothing, and
concurrent appends share no node, so none waits for another."""


_AUDIT_PAGE = """
CALL () {
  MATCH (a:Audit)
  WHERE <scope>
  WITH a LIMIT $count
  RETURN count(a) AS total
}
CALL () {
  OPTIONAL MATCH (c:Audit {id: $after})
  RETURN c.at AS at, c.id AS id
}
CALL (at, id) {
  MATCH (a:Audit)
  WHERE <scope>
    AND a.at <= coalesce(at, 9223372036854775807) AND a.id IS NOT NULL
    AND (at IS NULL OR a.at < at OR a.id < id)
  WITH a
  ORDER BY <order>a.at DESC, a.id DESC
  LIMIT $limit
  RETURN collect(a {.*}) AS found
}
RETURN total, $after IS NULL OR at IS NOT NULL AS known, found
"""
"""The entries `<scope>` selects, newest first by (at, id), read in order from the index
whose leading properties `<order>` names, and how many there are, counted up to `$count`.
Page after the entry (at, id) of `$after`: those with `a.at <= at`, less than it in (at, id).
`known` is false when no entry has that id."""


def _audit_page(scope: LiteralString, order: LiteralString) -> LiteralString:
    return _AUDIT_PAGE.replace("<scope>", scope).replace("<order>", order)


AUDIT_LOG = _audit_page("true", "")
"""All entries, from the `audit_time` index (and the count store)."""

AUDIT_LOG_OF = _audit_page(
    "a.customer_id = $customer_id AND a.at IS NOT NULL AND a.id IS NOT NULL",
    "a.customer_id DESC, ",
)
"""One customer's entries, from the `audit_customer_time` index (ordering by its leading,
here constant, `customer_id` too lets the planner read the index in order, not sort)."""

EXPIRE_AUDIT = """
MATCH (a:Audit)
WHERE a.at < $before AND a.id IS NOT NULL
WITH a
LIMIT $batch
DELETE a
RETURN count(a)
"""
"""At most `$batch` entries older than `$before` (from the `audit_time` index), in a
transaction of their own."""

PUT_API_KEY = """
MERGE (k:ApiKey {key_hash: $row.key_hash})
ON CREATE SET k = $row
"""

API_KEY = "MATCH (k:ApiKey {key_hash: $key_hash}) RETURN k {.*} AS k"

API_KEYS = """
OPTIONAL MATCH (c:ApiKey {id: $after})
WITH c.created_at AS at, c.id AS id, COUNT { (:ApiKey) } AS total
CALL (at, id) {
  MATCH (k:ApiKey)
  WHERE at IS NULL OR k.created_at > at OR (k.created_at = at AND k.id > id)
  WITH k ORDER BY k.created_at, k.id LIMIT $limit
  RETURN collect(k {.*}) AS found
}
RETURN total, $after IS NULL OR at IS NOT NULL AS known, found
"""
"""Keys oldest first by (created_at, id), after the key whose id is `$after`; `known` is
false when no key has that id. Keys are few: a label scan, no index."""

REVOKE_API_KEY = """
MATCH (k:ApiKey {id: $id})
WHERE k.revoked_at IS NULL
SET k.revoked_at = $at
RETURN count(k) AS n
"""
