"""The Neo4j store: the identity graph in a Neo4j 5 database, through the official async driver.

Writes are managed transactions (`execute_write`), which the driver retries on transient
failures (deadlocks, leader switches, lost connections) for at most `max_retry_time` seconds;
the transaction function only talks to the database, so running it again is harmless. The
locking discipline is described in `cypher`. Outages (no connection, expired session,
transient errors left after the retries, connection pool timeouts) become `StoreUnavailable`;
every other Neo4j or driver error (client errors such as syntax errors or constraint
violations, database errors) is a bug and becomes `StoreFailed`, whose message names only the
error code. Domain errors raised by the work function pass through unchanged and are not
retried. API keys and the audit log are the store's `records` (`records.Neo4jRecords`), which
run their statements through the same sessions.

The work of a write transaction goes through `transaction.Neo4jWriteTx`. Privacy operations
(`privacy`): an erasure is one transaction; a write whose suppression check an erasure
overtook runs again (`SuppressedMeanwhile`); retention deletes in batches of managed
transactions. Deleted values leave every node at commit, but stay in Neo4j's transaction log
files until those are pruned, and in freed records of its store files until reused: see
`purge` and docs/neo4j-erasure.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, LiteralString, TypeVar

from neo4j import (
    AsyncDriver,
    AsyncGraphDatabase,
    AsyncManagedTransaction,
    AsyncSession,
    NotificationMinimumSeverity,
)
from neo4j.exceptions import (
    ClientError,
    ConnectionPoolError,
    DatabaseUnavailable,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from identity_graph.adapters.neo4j import audiences as aq
from identity_graph.adapters.neo4j import cypher as q
from identity_graph.adapters.neo4j import listing
from identity_graph.adapters.neo4j import privacy as pq
from identity_graph.adapters.neo4j.fact_reads import FactReads
from identity_graph.adapters.neo4j.records import Neo4jRecords
from identity_graph.adapters.neo4j.rows import (
    conflict_from_row,
    consent_from_row,
    count_limit,
    event_from_row,
    merge_from_row,
)
from identity_graph.adapters.neo4j.transaction import Neo4jWriteTx, SuppressedMeanwhile
from identity_graph.codec import from_micros, loads, to_micros
from identity_graph.errors import InvalidOperation, StoreFailed, StoreUnavailable
from identity_graph.model import (
    ConsentRecord,
    Identifier,
    IdentifierRecord,
    Link,
    MergeConflict,
    MergeRecord,
    Page,
    Profile,
    StoredEvent,
    TraitValue,
)
from identity_graph.privacy import Cutoffs, ErasureReceipt, Suppression
from identity_graph.records import AccessRecords
from identity_graph.store import (
    CustomerContext,
    IdentityStore,
    ProfileFilter,
    WriteTx,
    check_context_args,
    event_cursor,
    parse_event_cursor,
)

T = TypeVar("T")

PROCEDURE_NOT_FOUND = "Neo.ClientError.Procedure.ProcedureNotFound"

RERUNS = 10
"""how many times a write runs again because erasures suppressed its identifiers meanwhile"""


class Neo4jStore(FactReads, IdentityStore):
    """An identity store in Neo4j; several processes may share one database."""

    def __init__(
        self,
        uri: str,
        *,
        auth: tuple[str, str] | None,
        database: str = "neo4j",
        max_retry_time: float = 5.0,
        connection_timeout: float = 3.0,
    ) -> None:
        self.uri = uri
        self.database = database
        self.round_trips = 0
        self._auth = auth
        self._max_retry_time = max_retry_time
        self._connection_timeout = connection_timeout
        self._driver: AsyncDriver | None = None
        self._bookmarks = AsyncGraphDatabase.bookmark_manager()
        self._records = Neo4jRecords(read=self._read, write=self._write)
        self._checkpoints = True
        """whether the server has `db.checkpoint()` (until it says it has not)"""
        self._audiences = aq.Neo4jAudiences(read=self._read, write=self._write)

    # --- life cycle ----------------------------------------------------------------

    @property
    def records(self) -> AccessRecords:
        """API keys and the audit log, in this store's database."""
        return self._records

    @property
    def audiences(self) -> aq.Neo4jAudiences:
        """Computed traits, audiences and memberships, in this store's database."""
        return self._audiences

    async def open(self) -> None:
        if self._driver is not None:
            return
        driver = AsyncGraphDatabase.driver(
            self.uri,
            auth=self._auth,
            connection_timeout=self._connection_timeout,
            connection_acquisition_timeout=self._max_retry_time + self._connection_timeout,
            max_transaction_retry_time=self._max_retry_time,
            notifications_min_severity=NotificationMinimumSeverity.OFF,
        )
        try:
            async with self._translated("start"):
                await driver.verify_connectivity()
                async with driver.session(database=self.database) as session:
                    for statement in (*q.SCHEMA, *listing.INDEXES, *aq.SCHEMA):
                        await (await session.run(statement)).consume()
                    await (await session.run(q.AWAIT_INDEXES)).consume()
        except BaseException:
            await driver.close()
            raise
        self._driver = driver

    async def close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.close()

    async def wipe(self) -> None:
        """Delete every node and relationship; constraints and indexes stay."""
        async with self._session("wipe") as session:
            await (await session.run(q.WIPE)).consume()

    async def ping(self) -> None:
        await self._read(q.PING)

    @asynccontextmanager
    async def _translated(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except (ServiceUnavailable, SessionExpired, ConnectionPoolError) as e:
            raise StoreUnavailable(f"Neo4j at {self.uri} is unavailable ({what}): {e}") from e
        except (TransientError, DatabaseUnavailable) as e:
            raise StoreUnavailable(f"Neo4j {what} failed ({e.code})") from e
        except Neo4jError as e:
            # the server's message can quote stored values: name the code only, and keep the
            # original out of tracebacks (it stays reachable as `__context__`)
            raise StoreFailed(f"Neo4j {what} failed ({e.code})") from None
        except DriverError as e:
            raise StoreFailed(f"Neo4j driver {what} failed ({type(e).__name__})") from None

    @asynccontextmanager
    async def _session(self, what: str) -> AsyncIterator[AsyncSession]:
        if self._driver is None:
            raise StoreUnavailable("the Neo4j store is not open")
        self.round_trips += 1
        async with self._translated(what):
            async with self._driver.session(
                database=self.database, bookmark_manager=self._bookmarks
            ) as session:
                yield session

    async def _read(self, query: LiteralString, **params: Any) -> list[list[Any]]:
        async def run(tx: AsyncManagedTransaction) -> list[list[Any]]:
            result = await tx.run(query, params)
            return [list(r) async for r in result]

        async with self._session("read") as session:
            return await session.execute_read(run)

    async def _write(self, query: LiteralString, **params: Any) -> list[list[Any]]:
        async def run(tx: AsyncManagedTransaction) -> list[list[Any]]:
            result = await tx.run(query, params)
            return [list(r) async for r in result]

        async with self._session("write") as session:
            return await session.execute_write(run)

    # --- writes --------------------------------------------------------------------

    async def write(self, work: Callable[[WriteTx], Awaitable[T]]) -> T:
        async def run(tx: AsyncManagedTransaction) -> T:
            wtx = Neo4jWriteTx(tx)
            result = await work(wtx)
            await wtx.release()
            return result

        async with self._session("write") as session:
            for _ in range(RERUNS):
                try:
                    return await session.execute_write(run)
                except SuppressedMeanwhile:
                    continue
        raise StoreUnavailable("Neo4j write failed (the suppression list kept changing)")

    # --- reads ---------------------------------------------------------------------

    async def profile_ids(self, keys: Sequence[str]) -> dict[str, str]:
        rows = await self._read(q.PROFILE_IDS, keys=list(dict.fromkeys(keys)))
        return {key: pid for key, pid in rows if pid is not None}

    async def profile_ids_by_digest(self, digests: Sequence[str], *, kind: str) -> dict[str, str]:
        rows = await self._read(
            q.PROFILE_IDS_BY_DIGEST, kind=kind, digests=list(dict.fromkeys(digests))
        )
        return {digest: pid for digest, pid in rows}

    async def identifier_keys(self, *, first: int, after: str | None) -> list[str]:
        rows = await self._read(q.IDENTIFIER_KEYS, after=after or "", first=first)
        return [key for (key,) in rows]

    async def resolve_profiles(self, ids: Sequence[str]) -> dict[str, str]:
        rows = await self._read(q.RESOLVE, ids=list(dict.fromkeys(ids)))
        return dict((pid, current) for pid, current in rows)

    async def profiles(self, ids: Sequence[str]) -> dict[str, Profile]:
        wanted = list(dict.fromkeys(ids))
        rows = await self._read(q.PROFILES, ids=wanted)
        found = {pid: _profile(pid, created_at, members) for pid, created_at, members in rows}
        return {pid: found[pid] for pid in wanted if pid in found}

    async def customer_context(
        self,
        *,
        key: str | None = None,
        profile_id: str | None = None,
        traits: bool = False,
        events: int | None = None,
        count_events: int | None = 0,
    ) -> CustomerContext | None:
        """One statement: the profile, its identifiers, trait values and first events page."""
        check_context_args(key, profile_id)
        params: dict[str, Any] = {
            "traits": traits,
            "limit": None if events is None else events + 1,
            "count": count_limit(count_events),
        }
        if key is not None:
            rows = await self._read(q.CONTEXT_BY_KEY, key=key, **params)
        else:
            rows = await self._read(q.CONTEXT_BY_ID, id=profile_id, **params)
        if not rows:
            return None
        pid, created_at, members, trait_rows, total, found = rows[0]
        profile = _profile(pid, created_at, members)
        values = _trait_values(trait_rows) if traits else None
        page = None
        if events is not None:
            more = len(found) > events
            items = tuple(event_from_row(e) for e in found[:events])
            page = Page(
                items, int(total), event_cursor(items[-1]) if more and items else None, more
            )
        return CustomerContext(profile, values, page)

    async def list_profiles(
        self, *, first: int, after: str | None, where: ProfileFilter, count_up_to: int | None = 0
    ) -> Page[str]:
        query, params = listing.query(where, counting=count_up_to != 0)
        [[total, ids]] = await self._read(
            query,  # made of listing's fixed parts only
            **params,
            after=after or "",
            start="",
            limit=first + 1,
            count=count_limit(count_up_to),
        )
        more = len(ids) > first
        ids = ids[:first]
        return Page(tuple(ids), int(total), ids[-1] if more and ids else None, more)

    async def traits(self, ids: Sequence[str]) -> dict[str, list[TraitValue]]:
        wanted = list(dict.fromkeys(ids))
        result: dict[str, list[list[Any]]] = {pid: [] for pid in wanted}
        for pid, *row in await self._read(q.TRAITS_OF, ids=wanted):
            result[pid].append(row)
        return {pid: _trait_values(rows) for pid, rows in result.items()}

    async def events(
        self,
        ids: Sequence[str],
        *,
        first: int,
        after: str | None,
        types: Sequence[str] | None,
        count_up_to: int | None = 0,
    ) -> dict[str, Page[StoredEvent]]:
        cursor = parse_event_cursor(after)
        wanted = list(dict.fromkeys(ids))
        rows = await self._read(
            q.EVENTS_OF,
            ids=wanted,
            types=list(types) if types else None,
            ts=cursor[0] if cursor else None,
            message_id=cursor[1] if cursor else None,
            limit=first + 1,
            count=count_limit(count_up_to),
        )
        empty: Page[StoredEvent] = Page((), 0, None, False)
        result = dict.fromkeys(wanted, empty)
        for pid, total, found in rows:
            more = len(found) > first
            items = tuple(event_from_row(e) for e in found[:first])
            next_cursor = event_cursor(items[-1]) if more and items else None
            result[pid] = Page(items, int(total), next_cursor, more)
        return result

    async def merge_history(self, ids: Sequence[str]) -> dict[str, list[MergeRecord]]:
        wanted = list(dict.fromkeys(ids))
        result: dict[str, list[MergeRecord]] = {pid: [] for pid in wanted}
        for pid, node in await self._read(q.MERGE_HISTORY, ids=wanted):
            result[pid].append(merge_from_row(dict(node)))
        for records in result.values():
            records.sort(key=lambda m: (m.at, m.id))
        return result

    async def conflicts(self, ids: Sequence[str]) -> dict[str, list[MergeConflict]]:
        wanted = list(dict.fromkeys(ids))
        result: dict[str, list[MergeConflict]] = {pid: [] for pid in wanted}
        for [node] in await self._read(q.CONFLICTS_OF, ids=wanted):
            conflict = conflict_from_row(dict(node))
            result[conflict.profile_id].append(conflict)
        for found in result.values():
            found.sort(key=lambda c: (c.at, c.id))
        return result

    async def consents(self, ids: Sequence[str]) -> dict[str, list[ConsentRecord]]:
        wanted = list(dict.fromkeys(ids))
        rows: dict[str, list[dict[str, Any]]] = {pid: [] for pid in wanted}
        for pid, node in await self._read(q.CONSENTS_OF, ids=wanted):
            rows[pid].append(dict(node))
        return {
            pid: [
                consent_from_row(c)
                for c in sorted(found, key=lambda c: (c.get("seq") or 0, c["identifier_key"]))
            ]
            for pid, found in rows.items()
        }

    async def links(self, ids: Sequence[str]) -> dict[str, list[Link]]:
        found: dict[str, list[Link]] = {}
        for pid, a, b, source, mid, at, rule in await self._read(
            q.LINKS_OF, ids=list(dict.fromkeys(ids))
        ):
            held = found.setdefault(pid, [])
            if a is not None:
                held.append(Link(a, b, source, mid, from_micros(at), rule))
        return {pid: sorted(links, key=lambda x: (x.a, x.b)) for pid, links in found.items()}

    async def link_path(self, a: str, b: str, *, max_hops: int) -> list[Link] | None:
        if a == b:
            return [] if await self._read(q.IDENTIFIER_EXISTS, key=a) else None
        if max_hops < 1:
            self.round_trips += 1
            return None
        rows = await self._read(q.shortest_path(int(max_hops)), a=a, b=b)
        if not rows:
            return None
        keys, links = rows[0]
        return [
            Link(x, y, source, mid, from_micros(at), rule)
            for x, y, (source, mid, at, rule) in zip(keys, keys[1:], links, strict=False)
        ]

    # --- privacy ---------------------------------------------------------------------

    async def purge(self) -> None:
        """Checkpoint where the server can be asked to (`db.checkpoint()`, Enterprise Edition
        only), so that the transaction log files its retention policy no longer keeps are
        pruned now rather than at the next periodic checkpoint; on Community Edition,
        nothing. Either way the newest log files still hold deleted values until they are
        rotated and pruned: docs/neo4j-erasure.md says what they keep and for how long."""
        if not self._checkpoints:
            return
        async with self._session("purge") as session:
            try:
                await (await session.run(pq.CHECKPOINT)).consume()
            except ClientError as e:
                if e.code != PROCEDURE_NOT_FOUND:
                    raise
                self._checkpoints = False

    async def erasure(self, id: str) -> ErasureReceipt | None:
        rows = await self._read(pq.ERASURE, id=id)
        return pq.receipt_from_row(rows[0][0]) if rows else None

    async def suppressions(self, *, first: int, after: str | None) -> Page[Suppression]:
        [[total, known, found]] = await self._read(pq.SUPPRESSIONS, after=after, limit=first + 1)
        if not known:
            raise InvalidOperation("malformed suppression cursor")
        more = len(found) > first
        items = tuple(pq.suppression_from_row(row) for row in found[:first])
        return Page(items, int(total), items[-1].hash if more and items else None, more)

    async def inactive_profiles(
        self, *, before: datetime, first: int, after: str | None
    ) -> list[str]:
        rows = await self._read(
            pq.INACTIVE_PROFILES, before=to_micros(before), first=first, after=after or ""
        )
        return [pid for (pid,) in rows]

    async def expire(self, cutoffs: Cutoffs, *, batch: int) -> dict[str, int]:
        counts = {"events": 0, "messages": 0, "conflicts": 0}
        for category, before in sorted(cutoffs.events.items()):
            if before is not None:
                counts["events"] += await self._expire(
                    pq.EXPIRE_EVENTS, batch=batch, category=category, before=to_micros(before)
                )
        if cutoffs.messages is not None:
            counts["messages"] = await self._expire_messages(to_micros(cutoffs.messages), batch)
        if cutoffs.conflicts is not None:
            counts["conflicts"] = await self._expire(
                pq.EXPIRE_CONFLICTS, batch=batch, before=to_micros(cutoffs.conflicts)
            )
        return counts

    async def _expire(self, query: LiteralString, *, batch: int, **params: Any) -> int:
        """Run a deleting statement, a transaction each, until it deletes less than `batch`."""
        total = 0
        while True:
            [[deleted]] = await self._write(query, batch=batch, **params)
            total += int(deleted)
            if deleted < batch:
                return total

    async def _expire_messages(self, before: int, batch: int) -> int:
        total = 0
        at, mid = -(1 << 63), ""
        while True:
            [[seen, deleted, last_at, last_id]] = await self._write(
                pq.EXPIRE_MESSAGES, batch=batch, before=before, from_at=at, from_id=mid
            )
            total += int(deleted)
            if seen < batch:
                return total
            at, mid = last_at, last_id


def _profile(pid: str, created_at: int, members: Sequence[Sequence[Any]]) -> Profile:
    """A profile from its row: [key, first_seen, last_seen, sources] per identifier."""
    records = [
        IdentifierRecord(
            Identifier.from_key(key),
            pid,
            from_micros(first),
            from_micros(last),
            tuple(sources or ()),
        )
        for key, first, last, sources in members
        if key is not None
    ]
    records.sort(key=lambda r: (r.first_seen, r.identifier.key))
    return Profile(pid, from_micros(created_at), tuple(records))


def _trait_values(rows: Sequence[Sequence[Any]]) -> list[TraitValue]:
    """Trait values from rows [name, value, source, observed_at, message id, key, ord], in the
    order they were observed (then stored)."""
    ordered = sorted(rows, key=lambda r: (r[3], r[4], r[6]))
    return [
        TraitValue(name, loads(value), source, from_micros(at), mid, key)
        for name, value, source, at, mid, key, _ in ordered
    ]
