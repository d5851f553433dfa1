"""The embedded store's reads of customer data: memory says who belongs together, SQLite
holds what they did."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx

from identity_graph.adapters.embedded import listing
from identity_graph.adapters.embedded.partition import Partition
from identity_graph.adapters.embedded.sql import chunks, merge_from_row, qmarks
from identity_graph.codec import from_micros, loads
from identity_graph.model import (
    ConsentRecord,
    ConsentStatus,
    EventCategory,
    Identifier,
    IdentifierRecord,
    Link,
    MergeConflict,
    MergeRecord,
    MessageType,
    Page,
    Profile,
    StoredEvent,
    TraitValue,
)
from identity_graph.store import ProfileFilter, event_cursor, parse_event_cursor

PER_KEY_UP_TO = 64
"""a profile with up to this many identifiers has its events read one identifier at a time"""


def links_from(db: sqlite3.Connection, keys: Sequence[str]) -> list[Link]:
    """The stored links whose lower end (`a`, the smaller key) is one of `keys`: all the
    links of a profile, given its identifiers (a link never leaves its profile)."""
    links: list[Link] = []
    for chunk in chunks(keys, 400):
        links.extend(
            Link(a, b, source, mid, from_micros(at), rule)
            for a, b, source, mid, at, rule in db.execute(
                "SELECT a, b, source, message_id, observed_at, rule FROM links"
                f" WHERE a IN ({qmarks(len(chunk))})",
                chunk,
            )
        )
    return links


CONSENTS_OF = (
    "SELECT identifier_key, purpose, status, at, source, rowid FROM consents"
    " WHERE identifier_key IN ({marks})"
)
"""the consent records of some identifiers; the rowid orders each one's choices (`seq`)"""


def consents_from_rows(rows: Iterable[Sequence[Any]]) -> list[ConsentRecord]:
    """Records of `CONSENTS_OF` rows, in the order they were stored."""
    return [
        ConsentRecord(key, purpose, ConsentStatus(status), from_micros(at), source, seq)
        for key, purpose, status, at, source, seq in sorted(rows, key=lambda row: row[5])
    ]


def consents_of(db: sqlite3.Connection, keys: Sequence[str]) -> list[ConsentRecord]:
    """The consent records of the identifiers `keys`, in the order they were stored."""
    rows: list[Sequence[Any]] = []
    for chunk in chunks(keys):
        rows.extend(db.execute(CONSENTS_OF.format(marks=qmarks(len(chunk))), chunk))
    return consents_from_rows(rows)


class ProfileReads:
    """Read methods of `EmbeddedStore` (the port's customer-data reads)."""

    partition: Partition

    async def _fresh(self, ids: Sequence[str] | None = None) -> sqlite3.Connection:
        """The reader, once the tables hold every write applied before the call that
        touched the profiles `ids` (None: any profile)."""
        raise NotImplementedError

    def _copied_all_of(self, ids: Sequence[str]) -> bool:
        """Whether the tables hold every applied write that touched the profiles `ids`."""
        raise NotImplementedError

    async def profiles(self, ids: Sequence[str]) -> dict[str, Profile]:
        db = await self._fresh(ids)
        wanted = [pid for pid in dict.fromkeys(ids) if pid in self.partition.members]
        records: dict[str, list[IdentifierRecord]] = {pid: [] for pid in wanted}
        profile_of = self.partition.profile_of
        for chunk in chunks(wanted):
            # one range of the profile index, then each row by rowid, where looking each
            # member up by key took a descent of the key index more per identifier: 14
            # against 23 µs a lookup at 345k profiles
            rows = db.execute(
                "SELECT key, profile_id, first_seen, last_seen, sources FROM identifiers"
                f" WHERE profile_id IN ({qmarks(len(chunk))})",
                chunk,
            )
            for key, pid, first, last, sources in rows:
                if profile_of.get(key) == pid:
                    records[pid].append(
                        IdentifierRecord(
                            Identifier.from_key(key),
                            pid,
                            from_micros(first),
                            from_micros(last),
                            tuple(s for s in sources.split(",") if s),
                        )
                    )
        return {
            pid: Profile(
                pid,
                from_micros(self.partition.created[pid]),
                tuple(sorted(records[pid], key=lambda r: (r.first_seen, r.identifier.key))),
            )
            for pid in wanted
        }

    async def list_profiles(
        self, *, first: int, after: str | None, where: ProfileFilter, count_up_to: int | None = 0
    ) -> Page[str]:
        db = await self._fresh()
        count = 0
        if count_up_to != 0:
            count = int(db.execute(*listing.count_query(where, count_up_to)).fetchone()[0])
        ids = [row[0] for row in db.execute(*listing.page_query(where, after, first + 1))]
        more = len(ids) > first
        ids = ids[:first]
        return Page(tuple(ids), count, ids[-1] if more and ids else None, more)

    async def _member_rows(self, ids: Sequence[str], sql: str) -> dict[str, list[Any]]:
        """Rows of `sql` (its first column an identifier key) for every identifier of the
        given profiles, grouped by profile: one statement per 900 identifiers, not one per
        profile."""
        db = await self._fresh(ids)
        result: dict[str, list[Any]] = {pid: [] for pid in dict.fromkeys(ids)}
        owner = {key: pid for pid in result for key in self.partition.members.get(pid, ())}
        for chunk in chunks(sorted(owner)):
            for row in db.execute(sql.format(marks=qmarks(len(chunk))), chunk):
                result[owner[row[0]]].append(row)
        return result

    async def traits(self, ids: Sequence[str]) -> dict[str, list[TraitValue]]:
        rows = await self._member_rows(
            ids,
            "SELECT identifier_key, name, value, source, observed_at, message_id FROM traits"
            " WHERE identifier_key IN ({marks})",
        )
        return {
            pid: sorted(
                (
                    TraitValue(name, loads(value), source, from_micros(at), mid, key)
                    for key, name, value, source, at, mid in found
                ),
                key=lambda t: (t.observed_at, t.message_id),
            )
            for pid, found in rows.items()
        }

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
        db = await self._fresh(ids)
        type_clause = f" AND type IN ({qmarks(len(types))})" if types else ""
        result: dict[str, Page[StoredEvent]] = {}
        page_clause = ""
        if cursor is not None:
            # `ts <= ?` lets the index start at the cursor instead of at the newest event, so
            # a page costs the same however deep into the history it is
            page_clause = " AND ts <= ? AND (ts < ? OR message_id < ?)"
        for pid in dict.fromkeys(ids):
            keys = sorted(self.partition.members.get(pid, ()))
            total = 0
            found: list[Any] = []
            # one query per identifier over its (identifier_key, ts) index, merged here: an
            # `IN (...)` over several keys sorts every remaining event of them for each page.
            # A profile with very many identifiers (a device farm) is read in chunks instead
            groups = chunks(keys) if len(keys) > PER_KEY_UP_TO else chunks(keys, 1)
            for group in groups:
                marks = qmarks(len(group))
                args: list[Any] = [*group, *(types or ())]
                if count_up_to is None or total < count_up_to:
                    total += db.execute(
                        "SELECT count(*) FROM (SELECT 1 FROM events"
                        f" WHERE identifier_key IN ({marks}){type_clause} LIMIT ?)",
                        [*args, -1 if count_up_to is None else count_up_to - total],
                    ).fetchone()[0]
                if cursor is not None:
                    args += [cursor[0], cursor[0], cursor[1]]
                found.extend(
                    db.execute(
                        "SELECT message_id, identifier_key, type, name, category, properties,"
                        f" ts, source FROM events WHERE identifier_key IN ({marks}){type_clause}"
                        f"{page_clause} ORDER BY ts DESC, message_id DESC LIMIT ?",
                        [*args, first + 1],
                    )
                )
            found.sort(key=lambda r: (r[6], r[0]), reverse=True)
            more = len(found) > first
            found = found[:first]
            items = tuple(
                StoredEvent(
                    mid,
                    key,
                    MessageType(kind),
                    name,
                    EventCategory(cat),
                    loads(props),
                    from_micros(ts),
                    source,
                )
                for mid, key, kind, name, cat, props, ts, source in found
            )
            next_cursor = event_cursor(items[-1]) if more and items else None
            result[pid] = Page(items, total, next_cursor, more)
        return result

    async def merge_history(self, ids: Sequence[str]) -> dict[str, list[MergeRecord]]:
        db = await self._fresh(ids)
        wanted = list(dict.fromkeys(ids))
        result: dict[str, list[MergeRecord]] = {pid: [] for pid in wanted}
        for chunk in chunks(wanted, 400):
            marks = qmarks(len(chunk))
            for row in db.execute(
                "SELECT id, at, kind, survivor, absorbed, links, identifiers, message_id,"
                f" undoes, undone_by FROM merges WHERE survivor IN ({marks})"
                f" OR absorbed IN ({marks}) ORDER BY at, id",
                [*chunk, *chunk],
            ):
                record = merge_from_row(row)
                for pid in {record.survivor, record.absorbed}:
                    if pid in result:
                        result[pid].append(record)
        return result

    async def conflicts(self, ids: Sequence[str]) -> dict[str, list[MergeConflict]]:
        db = await self._fresh(ids)
        wanted = list(dict.fromkeys(ids))
        result: dict[str, list[MergeConflict]] = {pid: [] for pid in wanted}
        for chunk in chunks(wanted):
            for cid, at, mid, pid, dropped, reason in db.execute(
                "SELECT id, at, message_id, profile_id, dropped, reason FROM conflicts"
                f" WHERE profile_id IN ({qmarks(len(chunk))}) ORDER BY at, id",
                chunk,
            ):
                result[pid].append(
                    MergeConflict(cid, from_micros(at), mid, pid, tuple(loads(dropped)), reason)
                )
        return result

    async def consents(self, ids: Sequence[str]) -> dict[str, list[ConsentRecord]]:
        rows = await self._member_rows(ids, CONSENTS_OF)
        return {pid: consents_from_rows(found) for pid, found in rows.items()}

    async def links(self, ids: Sequence[str]) -> dict[str, list[Link]]:
        db = await self._fresh(ids)
        members = self.partition.members
        return {
            pid: sorted(links_from(db, sorted(members[pid])), key=lambda x: (x.a, x.b))
            for pid in dict.fromkeys(ids)
            if pid in members
        }

    async def link_path(self, a: str, b: str, *, max_hops: int) -> list[Link] | None:
        owner = self.partition.profile_of.get(a)
        while owner is not None:
            db = await self._fresh([owner])
            # memory moves with each applied write, the tables when it is copied: wait
            # until they agree on this profile, or the path could take links an undo or a
            # split removed meanwhile
            if self.partition.profile_of.get(a) == owner and self._copied_all_of([owner]):
                break
            owner = self.partition.profile_of.get(a)
        # a link always joins two identifiers of one profile: the path, if any, is in it
        if owner is None or self.partition.profile_of.get(b) != owner:
            return None
        found = {(x.a, x.b): x for x in links_from(db, sorted(self.partition.members[owner]))}
        graph: nx.Graph[str] = nx.Graph(list(found))
        try:
            nodes = nx.bidirectional_shortest_path(graph, a, b)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None
        if len(nodes) - 1 > max_hops:
            return None
        path = []
        for x, y in itertools.pairwise(nodes):
            stored = found[min(x, y), max(x, y)]
            path.append(stored._replace(a=x, b=y))  # in the path's direction
        return path

    # --- audit and keys -------------------------------------------------------------
