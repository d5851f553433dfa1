"""The embedded store's reads of customer data: memory says who belongs together, SQLite
holds what they did."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

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
from identity_graph.store import (
    CustomerContext,
    ProfileFilter,
    event_cursor,
    parse_event_cursor,
)

T = TypeVar("T")

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


def _identifier_rows(db: sqlite3.Connection, ids: Sequence[str]) -> list[Any]:
    """The identifier rows (key, profile id, first seen, last seen, sources) whose profile
    column is one of `ids`."""
    rows: list[Any] = []
    for chunk in chunks(ids):
        # one range of the profile index, then each row by rowid, where looking each
        # member up by key took a descent of the key index more per identifier: 14
        # against 23 µs a lookup at 345k profiles
        rows.extend(
            db.execute(
                "SELECT key, profile_id, first_seen, last_seen, sources FROM identifiers"
                f" WHERE profile_id IN ({qmarks(len(chunk))})",
                chunk,
            )
        )
    return rows


def _keyed_rows(db: sqlite3.Connection, owner: dict[str, str], sql: str) -> dict[str, list[Any]]:
    """Rows of `sql` (its first column an identifier key, `{marks}` the keys) for the
    identifiers of `owner` (key -> profile id), grouped by profile: one statement per 900
    identifiers, not one per profile."""
    result: dict[str, list[Any]] = {pid: [] for pid in owner.values()}
    for chunk in chunks(sorted(owner)):
        for row in db.execute(sql.format(marks=qmarks(len(chunk))), chunk):
            result[owner[row[0]]].append(row)
    return result


TRAITS_OF = (
    "SELECT identifier_key, name, value, source, observed_at, message_id FROM traits"
    " WHERE identifier_key IN ({marks})"
)


def traits_from_rows(rows: Iterable[Sequence[Any]]) -> list[TraitValue]:
    """Trait values of `TRAITS_OF` rows, oldest first."""
    return sorted(
        (
            TraitValue(name, loads(value), source, from_micros(at), mid, key)
            for key, name, value, source, at, mid in rows
        ),
        key=lambda t: (t.observed_at, t.message_id),
    )


def _event_page(
    db: sqlite3.Connection,
    keys: Sequence[str],
    *,
    first: int,
    cursor: tuple[int, str] | None,
    types: Sequence[str] | None,
    count_up_to: int | None,
) -> Page[StoredEvent]:
    """A page of the events of the identifiers `keys` (one profile's), newest first."""
    type_clause = f" AND type IN ({qmarks(len(types))})" if types else ""
    page_clause = ""
    if cursor is not None:
        # `ts <= ?` lets the index start at the cursor instead of at the newest event, so
        # a page costs the same however deep into the history it is
        page_clause = " AND ts <= ? AND (ts < ? OR message_id < ?)"
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
    return Page(items, total, next_cursor, more)


class ProfileReads:
    """Read methods of `EmbeddedStore` (the port's customer-data reads).

    Memory (who belongs to which profile) is read on the event loop, then the SQL of the
    read runs whole in a reader thread (`_lookup`, `_scan`) on the keys memory gave."""

    partition: Partition

    def _round_trip(self) -> None:
        raise NotImplementedError

    async def _lookup(
        self, ids: Sequence[str] | None, work: Callable[[sqlite3.Connection], T]
    ) -> T:
        """`work(db)` in a lookup thread, once the tables hold every write applied before
        the call that touched the profiles `ids` (None: any profile)."""
        raise NotImplementedError

    async def _scan(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a scan thread, once the tables hold every write applied before."""
        raise NotImplementedError

    def _copied_all_of(self, ids: Sequence[str]) -> bool:
        """Whether the tables hold every applied write that touched the profiles `ids`."""
        raise NotImplementedError

    async def profile_ids(self, keys: Sequence[str]) -> dict[str, str]:
        """identifier key -> current profile id (`IdentityStore.profile_ids`)."""
        raise NotImplementedError

    async def resolve_profiles(self, ids: Sequence[str]) -> dict[str, str]:
        """profile id -> current profile id (`IdentityStore.resolve_profiles`)."""
        raise NotImplementedError

    if TYPE_CHECKING:  # IdentityStore's, which `EmbeddedStore` inherits

        async def context_profile_id(
            self, key: str | None, profile_id: str | None
        ) -> str | None: ...

    def _owners(self, ids: Iterable[str]) -> dict[str, str]:
        """identifier key -> profile id, for every identifier of the profiles `ids`."""
        members = self.partition.members
        return {key: pid for pid in ids for key in members.get(pid, ())}

    def _profiles_from(
        self, wanted: Sequence[str], owner: dict[str, str], rows: Iterable[Sequence[Any]]
    ) -> dict[str, Profile]:
        records: dict[str, list[IdentifierRecord]] = {pid: [] for pid in wanted}
        for key, pid, first, last, sources in rows:
            if owner.get(key) == pid:
                records[pid].append(
                    IdentifierRecord(
                        Identifier.from_key(key),
                        pid,
                        from_micros(first),
                        from_micros(last),
                        tuple(s for s in sources.split(",") if s),
                    )
                )
        created = self.partition.created
        return {
            pid: Profile(
                pid,
                from_micros(created[pid]),
                tuple(sorted(records[pid], key=lambda r: (r.first_seen, r.identifier.key))),
            )
            for pid in wanted
            if pid in created
        }

    async def profiles(self, ids: Sequence[str]) -> dict[str, Profile]:
        wanted = [pid for pid in dict.fromkeys(ids) if pid in self.partition.members]
        owner = self._owners(wanted)
        rows = await self._lookup(ids, lambda db: _identifier_rows(db, wanted))
        return self._profiles_from(wanted, owner, rows)

    async def customer_context(
        self,
        *,
        key: str | None = None,
        profile_id: str | None = None,
        traits: bool = False,
        events: int | None = None,
        count_events: int | None = 0,
    ) -> CustomerContext | None:
        current = await self.context_profile_id(key, profile_id)
        if current is None or current not in self.partition.members:
            return None
        owner = self._owners([current])
        keys = sorted(owner)

        def read(db: sqlite3.Connection) -> tuple[list[Any], list[Any], Page[StoredEvent] | None]:
            found = _identifier_rows(db, [current])
            values = _keyed_rows(db, owner, TRAITS_OF).get(current, []) if traits else []
            page = None
            if events is not None:
                page = _event_page(
                    db, keys, first=events, cursor=None, types=None, count_up_to=count_events
                )
            return found, values, page

        found, values, page = await self._lookup([current], read)
        profile = self._profiles_from([current], owner, found).get(current)
        if profile is None:
            return None
        return CustomerContext(profile, traits_from_rows(values) if traits else None, page)

    async def list_profiles(
        self, *, first: int, after: str | None, where: ProfileFilter, count_up_to: int | None = 0
    ) -> Page[str]:
        def read(db: sqlite3.Connection) -> tuple[int, list[str]]:
            count = 0
            if count_up_to != 0:
                count = int(db.execute(*listing.count_query(where, count_up_to)).fetchone()[0])
            return count, [
                row[0] for row in db.execute(*listing.page_query(where, after, first + 1))
            ]

        count, ids = await self._scan(read)
        more = len(ids) > first
        ids = ids[:first]
        return Page(tuple(ids), count, ids[-1] if more and ids else None, more)

    async def _member_rows(self, ids: Sequence[str], sql: str) -> dict[str, list[Any]]:
        """Rows of `sql` (its first column an identifier key) for every identifier of the
        given profiles, grouped by profile (`_keyed_rows`)."""
        wanted = list(dict.fromkeys(ids))
        owner = self._owners(wanted)
        rows = await self._lookup(ids, lambda db: _keyed_rows(db, owner, sql))
        return {pid: rows.get(pid, []) for pid in wanted}

    async def traits(self, ids: Sequence[str]) -> dict[str, list[TraitValue]]:
        rows = await self._member_rows(ids, TRAITS_OF)
        return {pid: traits_from_rows(found) for pid, found in rows.items()}

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
        members = self.partition.members
        keys = {pid: sorted(members.get(pid, ())) for pid in dict.fromkeys(ids)}

        def read(db: sqlite3.Connection) -> dict[str, Page[StoredEvent]]:
            return {
                pid: _event_page(
                    db, held, first=first, cursor=cursor, types=types, count_up_to=count_up_to
                )
                for pid, held in keys.items()
            }

        return await self._lookup(ids, read)

    async def merge_history(self, ids: Sequence[str]) -> dict[str, list[MergeRecord]]:
        wanted = list(dict.fromkeys(ids))

        def read(db: sqlite3.Connection) -> dict[str, list[MergeRecord]]:
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

        return await self._lookup(ids, read)

    async def conflicts(self, ids: Sequence[str]) -> dict[str, list[MergeConflict]]:
        wanted = list(dict.fromkeys(ids))

        def read(db: sqlite3.Connection) -> dict[str, list[MergeConflict]]:
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

        return await self._lookup(ids, read)

    async def consents(self, ids: Sequence[str]) -> dict[str, list[ConsentRecord]]:
        rows = await self._member_rows(ids, CONSENTS_OF)
        return {pid: consents_from_rows(found) for pid, found in rows.items()}

    async def links(self, ids: Sequence[str]) -> dict[str, list[Link]]:
        members = self.partition.members
        keys = {pid: sorted(members[pid]) for pid in dict.fromkeys(ids) if pid in members}

        def read(db: sqlite3.Connection) -> dict[str, list[Link]]:
            return {
                pid: sorted(links_from(db, held), key=lambda x: (x.a, x.b))
                for pid, held in keys.items()
            }

        return await self._lookup(ids, read)

    async def link_path(self, a: str, b: str, *, max_hops: int) -> list[Link] | None:
        partition = self.partition
        owner = partition.profile_of.get(a)
        while owner is not None:
            keys = partition.members[owner].copy()
            found_links = await self._lookup([owner], partial(links_from, keys=sorted(keys)))
            # memory moves with each applied write, the tables when it is copied: wait
            # until they agree on this profile, or the path could take links an undo or a
            # split removed meanwhile
            if (
                partition.profile_of.get(a) == owner
                and partition.members.get(owner) == keys
                and self._copied_all_of([owner])
            ):
                break
            owner = partition.profile_of.get(a)
        # a link always joins two identifiers of one profile: the path, if any, is in it
        if owner is None or partition.profile_of.get(b) != owner:
            return None
        found = {(x.a, x.b): x for x in found_links}
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
