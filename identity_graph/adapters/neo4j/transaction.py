"""The Neo4j store's write transaction: the `WriteTx` a transaction function is given, over
one managed transaction. The Cypher and its locking discipline are in `cypher` and `privacy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, LiteralString

from neo4j import AsyncManagedTransaction

from identity_graph.adapters.neo4j import cypher as q
from identity_graph.adapters.neo4j import privacy as pq
from identity_graph.adapters.neo4j.rows import (
    changes_to_rows,
    consent_from_row,
    consent_state,
    merge_from_row,
)
from identity_graph.codec import from_micros
from identity_graph.model import ConsentStatus, Link, MergeRecord
from identity_graph.privacy import Erasure, ErasureScope
from identity_graph.store import (
    ChangeSet,
    Member,
    ProfileGraph,
    ProfileState,
    Snapshot,
    WriteTx,
)


class SuppressedMeanwhile(Exception):
    """A hash the transaction function was told is not suppressed was suppressed before the
    transaction's locks were taken (an erasure committed in between): its plan may bring an
    erased value back, so the store runs the function again, in a new transaction."""


class Neo4jWriteTx(WriteTx):
    """A `WriteTx` over one managed transaction; it holds no state that outlives a retry."""

    def __init__(self, tx: AsyncManagedTransaction) -> None:
        self.tx = tx
        self.claimed_keys: set[str] = set()
        """placeholders `snapshot` made and no applied change set has used yet"""
        self.claimed_messages: set[str] = set()
        self.next_ord = 0
        self.asked: set[str] = set()
        """suppression hashes `suppressed` was asked about, which `snapshot` reads again"""
        self.suppressed_seen: set[str] = set()
        self.landed: dict[str, set[str]] = {}
        """profile id -> the ids of the messages `erasure_scope` found on its profiles"""

    async def _run(self, query: LiteralString, **params: Any) -> list[list[Any]]:
        result = await self.tx.run(query, params)
        return [list(r) async for r in result]

    async def snapshot(self, keys: Sequence[str], *, message_ids: Sequence[str]) -> Snapshot:
        ordered_keys = sorted(set(keys))
        claim = {
            "keys": ordered_keys,
            "message_ids": sorted(set(message_ids)),
            "hashes": sorted(self.asked),
        }
        [[seen, owners, locked_ids, counts, suppressed]] = await self._run(q.SNAPSHOT, claim=claim)
        self._still_unsuppressed(suppressed)
        profile_of = {key: pid for key, pid in owners if pid is not None}
        self.claimed_keys |= {key for key, pid in owners if pid is None}
        self.claimed_messages |= {mid for mid, pid in seen if pid is None}
        locked = set(locked_ids)
        # an identifier moved to another profile before its profile's lock was taken
        while not set(profile_of.values()) <= locked:
            locked |= set(profile_of.values())
            [[owners, counts, suppressed]] = await self._run(
                q.LOCK_PROFILES,
                profile_ids=sorted(locked),
                keys=ordered_keys,
                hashes=claim["hashes"],
            )
            self._still_unsuppressed(suppressed)
            profile_of = {key: pid for key, pid in owners if pid is not None}
        current = set(profile_of.values())
        created: dict[str, int] = {}
        kinds: dict[str, dict[str, int]] = {}
        consent: dict[str, dict[str, ConsentStatus]] = {}
        for pid, created_at, kind, n, state in counts:
            if pid in current:
                created[pid] = created_at
                consent[pid] = consent_state(state)
                if kind is not None:
                    kinds.setdefault(pid, {})[kind] = int(n)
        profiles = {
            pid: ProfileState(pid, from_micros(created[pid]), kinds.get(pid, {}), consent[pid])
            for pid in current
        }
        return Snapshot(profile_of, profiles, {mid: pid for mid, pid in seen if pid is not None})

    def _still_unsuppressed(self, suppressed: list[str]) -> None:
        """Raise `SuppressedMeanwhile` if a hash `suppressed` answered for is suppressed now
        (read after the snapshot's locks were taken)."""
        if not set(suppressed) <= self.suppressed_seen:
            raise SuppressedMeanwhile

    async def profile_graph(self, profile_id: str) -> ProfileGraph | None:
        current = await self._lock_current(profile_id)
        if current != profile_id:
            return None
        rows = await self._run(q.PROFILE_GRAPH, profile_id=profile_id)
        if not rows:
            return None
        created_at, members, links, consents = rows[0]
        return ProfileGraph(
            profile_id,
            from_micros(created_at),
            tuple(Member(key, from_micros(first)) for key, first in members if key is not None),
            tuple(
                Link(a, b, source, mid, from_micros(at), rule)
                for a, b, source, mid, at, rule in links
            ),
            tuple(consent_from_row(c) for c in consents),
        )

    async def _lock_current(self, profile_id: str) -> str | None:
        """Lock the current profile `profile_id` names and return its id."""
        while True:
            rows = await self._run(q.LOCK_CURRENT, profile_id=profile_id)
            if not rows:
                return None
            locked, current = rows[0]
            if locked == current:
                return str(current)

    async def merge_record(self, merge_id: str) -> MergeRecord | None:
        rows = await self._run(q.MERGE_RECORD, id=merge_id)
        return merge_from_row(dict(rows[0][0])) if rows else None

    async def resolve(self, profile_id: str) -> str | None:
        return await self._lock_current(profile_id)

    async def erasure_scope(self, profile_id: str) -> ErasureScope | None:
        if await self._lock_current(profile_id) != profile_id:
            return None
        rows = await self._run(pq.ERASURE_SCOPE, profile_id=profile_id)
        if not rows:
            return None
        profile_ids, keys, events, named, landed = rows[0]
        self.landed[profile_id] = set(landed)
        return ErasureScope(
            profile_id=profile_id,
            profile_ids=tuple(profile_ids),
            keys=tuple(sorted(keys)),
            message_ids=tuple(sorted({m for m in [*named, *landed] if m is not None})),
            events=int(events),
        )

    async def suppressed(self, hashes: Sequence[str]) -> set[str]:
        wanted = sorted(set(hashes))
        [[found]] = await self._run(pq.SUPPRESSED, hashes=wanted)
        self.asked |= set(wanted)
        self.suppressed_seen |= set(found)
        return set(found)

    async def apply(self, changes: ChangeSet) -> None:
        erasures, unsuppress = changes.erasures, changes.unsuppress
        changes = replace(changes, erasures=[], unsuppress=[])
        if changes or self.claimed_keys or self.claimed_messages:
            await self._apply(changes)
        for erasure in erasures:
            await self._erase(erasure)
        if unsuppress:
            await (await self.tx.run(pq.UNSUPPRESS, {"hashes": sorted(unsuppress)})).consume()

    async def _erase(self, erasure: Erasure) -> None:
        """Delete a person and the records of others that name their keys (found by full-text
        search, kept only if their JSON names a key exactly); store suppressions and receipt."""
        keys = set(erasure.scope.keys)
        merges: list[str] = []
        conflicts: list[str] = []
        if keys:
            for [row] in await self._run(pq.NAMING, queries=pq.naming_queries(sorted(keys))):
                if pq.names_any(row, keys):
                    (merges if row["merge"] else conflicts).append(row["id"])
        params = pq.erasure_params(
            erasure,
            merges=merges,
            conflicts=conflicts,
            landed=self.landed.get(erasure.scope.profile_id, ()),
        )
        await (await self.tx.run(pq.ERASE, {"e": params})).consume()

    async def _apply(self, changes: ChangeSet) -> None:
        params = changes_to_rows(changes, first_ord=self.next_ord)
        self.next_ord += len(changes.traits) + len(changes.consents)
        self.claimed_keys -= {s.key for s in changes.sightings}
        self.claimed_messages -= {mid for mid, _, _ in changes.messages}
        params["release_keys"] = sorted(self.claimed_keys)
        params["release_messages"] = sorted(self.claimed_messages)
        self.claimed_keys.clear()
        self.claimed_messages.clear()
        await (await self.tx.run(q.APPLY, {"changes": params})).consume()

    async def release(self) -> None:
        """Drop the placeholders `snapshot` made when no change set was applied after it."""
        if self.claimed_keys or self.claimed_messages:
            params = {
                "release_keys": sorted(self.claimed_keys),
                "release_messages": sorted(self.claimed_messages),
            }
            self.claimed_keys.clear()
            self.claimed_messages.clear()
            await (await self.tx.run(q.RELEASE_CLAIMS, {"changes": params})).consume()
