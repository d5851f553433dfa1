"""The embedded store's SQLite layout: the tables, and how a change set is written to them.

Rows are kept per identifier (events, traits, consent), so one person's data can be
erased physically (`secure_delete` is on) without rewriting anyone else's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from identity_graph.adapters.embedded import erasure
from identity_graph.codec import (
    dumps,
    from_micros,
    link_from_json,
    link_to_json,
    loads,
    to_micros,
)
from identity_graph.model import ConsentRecord, ConsentStatus, MergeKind, MergeRecord
from identity_graph.store import ChangeSet
from identity_graph.survivorship import consent_state

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, merged_into TEXT);
CREATE TABLE IF NOT EXISTS identifiers (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, profile_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, sources TEXT NOT NULL,
    digest TEXT);
CREATE INDEX IF NOT EXISTS identifiers_profile ON identifiers (profile_id);
CREATE TABLE IF NOT EXISTS links (
    a TEXT NOT NULL, b TEXT NOT NULL, source TEXT NOT NULL, message_id TEXT NOT NULL,
    observed_at INTEGER NOT NULL, rule TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS merges (
    id TEXT PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL, survivor TEXT NOT NULL,
    absorbed TEXT NOT NULL, links TEXT NOT NULL, identifiers TEXT NOT NULL,
    message_id TEXT, undoes TEXT, undone_by TEXT);
CREATE INDEX IF NOT EXISTS merges_survivor ON merges (survivor);
CREATE INDEX IF NOT EXISTS merges_absorbed ON merges (absorbed);
CREATE TABLE IF NOT EXISTS conflicts (
    id TEXT PRIMARY KEY, at INTEGER NOT NULL, message_id TEXT NOT NULL,
    profile_id TEXT NOT NULL, dropped TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conflicts_profile ON conflicts (profile_id);
CREATE TABLE IF NOT EXISTS traits (
    identifier_key TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    source TEXT NOT NULL, observed_at INTEGER NOT NULL, message_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS traits_identifier ON traits (identifier_key, observed_at);
CREATE TABLE IF NOT EXISTS events (
    message_id TEXT PRIMARY KEY, identifier_key TEXT NOT NULL, type TEXT NOT NULL,
    name TEXT, category TEXT NOT NULL, properties TEXT NOT NULL, ts INTEGER NOT NULL,
    source TEXT NOT NULL, profile_id TEXT);
CREATE INDEX IF NOT EXISTS events_identifier ON events (identifier_key, ts);
CREATE TABLE IF NOT EXISTS consents (
    identifier_key TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL,
    at INTEGER NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS consents_identifier ON consents (identifier_key);
-- each profile's effective consent status per purpose, as the domain decided it at write time
-- (ChangeSet.consent_states): the consent filter reads it. A consent row's rowid orders an
-- identifier's choices (VACUUM renumbers rowids but keeps their order)
CREATE TABLE IF NOT EXISTS profile_consents (
    profile_id TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (profile_id, purpose)) WITHOUT ROWID;
-- messages seen (for idempotence) that are not events: an event row records its own
-- message id and the profile it landed on (events.profile_id, NULL in rows from before)
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY, profile_id TEXT NOT NULL, at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

AUDIT_FILE = "audit.sqlite3"
"""the audit log and API keys: written by the API process itself, never by the copier, so a
clear read's audit entry never waits behind a copy window's transaction"""
AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, at INTEGER NOT NULL,
    principal TEXT NOT NULL, role TEXT NOT NULL, customer_id TEXT NOT NULL,
    fields TEXT NOT NULL);
DROP INDEX IF EXISTS audit_customer;
CREATE INDEX IF NOT EXISTS audit_id ON audit (id);
CREATE INDEX IF NOT EXISTS audit_time ON audit (at, id);
CREATE INDEX IF NOT EXISTS audit_customer_time ON audit (customer_id, at, id);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, name TEXT,
    created_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS api_key_expiry (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
"""
"""`audit.sqlite3`. The log is ordered newest first by (at, id), as the Neo4j store keeps
it: entries appended by several processes need no shared counter (`seq` stays only for the
files of older versions). A key's expiry is in `api_key_expiry` rather than a column of
`api_keys`: the keys of an older c360 (moved from its tables file column for column) keep
their table as it was, and never expire."""

MIGRATIONS = (
    ("identifiers", "digest", "ALTER TABLE identifiers ADD COLUMN digest TEXT"),
    ("events", "profile_id", "ALTER TABLE events ADD COLUMN profile_id TEXT"),
)
INDEXES = """
DROP INDEX IF EXISTS links_b;
CREATE INDEX IF NOT EXISTS identifiers_digest ON identifiers (digest) WHERE digest IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_profile ON messages (profile_id);
CREATE INDEX IF NOT EXISTS profiles_merged_into ON profiles (merged_into)
    WHERE merged_into IS NOT NULL;
CREATE INDEX IF NOT EXISTS profiles_current ON profiles (id) WHERE merged_into IS NULL;
CREATE INDEX IF NOT EXISTS identifiers_kind ON identifiers (kind, profile_id);
CREATE INDEX IF NOT EXISTS profile_consents_granted ON profile_consents (purpose, profile_id)
    WHERE status = 'GRANTED';
"""
"""Indexes made after the columns they need (`MIGRATIONS`). `messages_profile` and
`profiles_merged_into` find the message ids and the absorbed ids of a profile an erasure
deletes, which it would otherwise scan two tables for (under the write lock, once per
profile retention erases). `profiles_current`, `identifiers_kind` and
`profile_consents_granted` give the profile listing its pages in id order (`listing`)."""


def create_tables(db: sqlite3.Connection) -> None:
    """Create the tables, and add the columns (and the consent states) a data directory from
    an older c360 lacks."""
    had_states = db.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'profile_consents'"
    ).fetchone()
    db.executescript(SCHEMA)
    db.executescript(erasure.SCHEMA)
    if not had_states:
        _decide_consent_states(db)
    for table, column, statement in MIGRATIONS:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            db.execute(statement)
    db.executescript(INDEXES)


def _decide_consent_states(db: sqlite3.Connection) -> None:
    """Store each profile's consent state, decided by the domain from the stored records."""
    records: dict[str, list[ConsentRecord]] = {}
    for pid, key, purpose, status, at, source, seq in db.execute(
        "SELECT i.profile_id, c.identifier_key, c.purpose, c.status, c.at, c.source, c.rowid"
        " FROM consents c JOIN identifiers i ON i.key = c.identifier_key"
    ):
        record = ConsentRecord(key, purpose, ConsentStatus(status), from_micros(at), source, seq)
        records.setdefault(pid, []).append(record)
    db.executemany(
        STATEMENTS[_SET_CONSENT_STATE],
        [
            (pid, purpose, status.value)
            for pid, held in records.items()
            for purpose, status in consent_state(held).items()
        ],
    )


def create_audit_tables(audit: sqlite3.Connection, tables_file: Path) -> None:
    """Create the audit tables, and move there the audit log and API keys that an older
    c360 kept in the tables file. Each step is idempotent: the entries are copied once by
    id, then the old tables dropped (the two files do not share a transaction)."""
    audit.executescript(AUDIT_SCHEMA)
    audit.execute("ATTACH DATABASE ? AS old", (str(tables_file),))
    try:
        old = {row[0] for row in audit.execute("SELECT name FROM old.sqlite_master")}
        if not {"audit", "api_keys"} & old:
            return
        audit.execute("BEGIN IMMEDIATE")
        try:
            if "audit" in old:
                audit.execute(
                    "INSERT INTO main.audit (id, at, principal, role, customer_id, fields)"
                    " SELECT id, at, principal, role, customer_id, fields FROM old.audit o"
                    " WHERE NOT EXISTS (SELECT 1 FROM main.audit a WHERE a.id = o.id)"
                    " ORDER BY seq"
                )
            if "api_keys" in old:
                audit.execute("INSERT OR IGNORE INTO main.api_keys SELECT * FROM old.api_keys")
            audit.execute("COMMIT")
        except BaseException:
            audit.execute("ROLLBACK")
            raise
        audit.execute("DROP TABLE IF EXISTS old.audit")
        audit.execute("DROP TABLE IF EXISTS old.api_keys")
    finally:
        audit.execute("DETACH DATABASE old")


SQL_VARS = 900


def chunks(items: Sequence[str], size: int = SQL_VARS) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def qmarks(n: int) -> str:
    return ",".join("?" * n)


def kind_of(key: str) -> str:
    return key.partition(":")[0]


STATEMENTS = (
    "INSERT INTO profiles (id, created_at) VALUES (?, ?)",
    "UPDATE profiles SET merged_into = NULL WHERE id = ?",
    "INSERT INTO identifiers (key, kind, profile_id, first_seen, last_seen, sources, digest)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ',' || ?6 || ',', ?7) ON CONFLICT (key) DO UPDATE SET"
    " first_seen = min(first_seen, excluded.first_seen),"
    " last_seen = max(last_seen, excluded.last_seen),"
    " sources = CASE WHEN instr(sources, excluded.sources) > 0 THEN sources"
    " ELSE sources || ?6 || ',' END",
    "UPDATE identifiers SET profile_id = ?2 WHERE profile_id = ?1",
    "UPDATE profiles SET merged_into = ?2 WHERE id = ?1",
    "UPDATE identifiers SET profile_id = ? WHERE key = ?",
    "DELETE FROM links WHERE a = ? AND b = ?",
    "INSERT OR IGNORE INTO links (a, b, source, message_id, observed_at, rule)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "INSERT INTO merges (id, at, kind, survivor, absorbed, links, identifiers,"
    " message_id, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "UPDATE merges SET undone_by = ?2 WHERE id = ?1",
    "INSERT INTO conflicts (id, at, message_id, profile_id, dropped, reason)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "INSERT INTO traits (identifier_key, name, value, source, observed_at,"
    " message_id) VALUES (?, ?, ?, ?, ?, ?)",
    "INSERT OR IGNORE INTO events (message_id, identifier_key, type, name, category,"
    " properties, ts, source, profile_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO consents (identifier_key, purpose, status, at, source)"
    " SELECT key, ?, ?, ?, ? FROM identifiers WHERE profile_id = ?",
    "INSERT OR IGNORE INTO messages (message_id, profile_id, at) VALUES (?, ?, ?)",
    # a later sighting of a known identifier: cheaper than the insert's upsert
    "UPDATE identifiers SET first_seen = min(first_seen, ?2), last_seen = max(last_seen, ?3),"
    " sources = CASE WHEN instr(sources, ',' || ?4 || ',') > 0 THEN sources"
    " ELSE sources || ?4 || ',' END WHERE key = ?1",
    "UPDATE identifiers SET digest = ?2 WHERE key = ?1",
    "INSERT INTO profile_consents (profile_id, purpose, status) VALUES (?, ?, ?)"
    " ON CONFLICT (profile_id, purpose) DO UPDATE SET status = excluded.status",
    "DELETE FROM profile_consents WHERE profile_id = ? AND purpose = ?",
    *erasure.STATEMENTS,
)
"""The statements a change set is written with. Journalled rows name them by index, so a
new statement is added at the end, whatever its place in `ORDER`."""
ORDER = (
    *(0, 1, 2, 15, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 18, 14, 16),
    *range(erasure.FIRST, erasure.FIRST + len(erasure.STATEMENTS)),
)
"""the order in which a change set's statements run: erasures after everything else"""
_SET_CONSENT_STATE = 17

Rows = list[tuple[int, list[Sequence[Any]]]]
"""A change set as rows: (index into `STATEMENTS`, the rows it runs with), in the order
they run. Strings (`StrEnum` members among them), integers and None, and in the columns
`JSON_COLUMNS` a JSON value (a trait's value, an event's properties), so it can be
journalled as it is. The copier encodes those values as JSON text, sparing the planning
process that work."""

JSON_COLUMNS = {11: 2, 12: 5}
"""statement index -> the column of its rows that holds a JSON value, stored as its text"""


class JsonText(str):
    """A JSON value's text, already encoded (a journal's fallback for values msgpack cannot
    hold, such as integers wider than 64 bits)."""


def json_text(value: Any) -> str:
    return value if type(value) is JsonText else dumps(value)


def map_json(index: int, params: list[Sequence[Any]], convert: Callable[[Any], Any]) -> list[Any]:
    """Statement `index`'s rows with `convert` applied to their JSON column (`JSON_COLUMNS`),
    if they have one: in place for rows that are lists (as the journal decodes them), in
    copies for tuples."""
    column = JSON_COLUMNS.get(index)
    if column is None:
        return params
    mapped: list[Any] = []
    for row in params:
        if isinstance(row, list):
            row[column] = convert(row[column])
            mapped.append(row)
        else:
            mapped.append((*row[:column], convert(row[column]), *row[column + 1 :]))
    return mapped


class _Micros:
    """`to_micros`, remembering the last time converted: the rows of one observation
    share its timestamp."""

    def __init__(self) -> None:
        self.last: datetime | None = None
        self.value = 0

    def __call__(self, moment: datetime) -> int:
        if moment is not self.last:
            self.last = moment
            self.value = to_micros(moment)
        return self.value


def change_rows(c: ChangeSet) -> Rows:
    """The rows that write one change set, statements without rows left out."""
    micros = _Micros()
    landed = {m: pid for m, pid, _ in c.messages}
    event_ids = {e.message_id for e in c.events}
    inserted, widened = sighting_rows(c, micros)
    rows: list[list[Sequence[Any]]] = [
        [(pid, micros(t)) for pid, t in c.new_profiles],
        [(pid,) for pid in c.restored_profiles],
        inserted,
        list(c.reassign),
        list(c.reassign),
        [(pid, key) for key, pid in c.assign.items()],
        [tuple(sorted(pair)) for pair in c.removed_links],
        [
            (*sorted((x.a, x.b)), x.source, x.message_id, micros(x.observed_at), x.rule)
            for x in c.links
        ],
        [
            (
                m.id,
                micros(m.at),
                m.kind.value,
                m.survivor,
                m.absorbed,
                dumps([link_to_json(x) for x in m.links]),
                dumps(list(m.identifiers)),
                m.message_id,
                m.undoes,
            )
            for m in c.merges
        ],
        list(c.undone),
        [
            (x.id, micros(x.at), x.message_id, x.profile_id, dumps(x.dropped), x.reason)
            for x in c.conflicts
        ],
        [
            (
                t.identifier_key,
                t.name,
                t.value,
                t.source,
                micros(t.observed_at),
                t.message_id,
            )
            for t in c.traits
        ],
        [
            (
                e.message_id,
                e.identifier_key,
                e.type,
                e.name,
                e.category,
                e.properties,
                micros(e.timestamp),
                e.source,
                landed.get(e.message_id),
            )
            for e in c.events
        ],
        [(x.purpose, x.status.value, micros(x.at), x.source, x.profile_id) for x in c.consents],
        # an event's row records its message already (events.message_id is unique)
        [(m, pid, micros(t)) for m, pid, t in c.messages if m not in event_ids],
        widened,
        [(key, d) for key, d in sorted(c.digests.items())],
        [
            (pid, purpose, status.value)
            for pid, states in c.consent_states.items()
            for purpose, status in states.items()
            if status is not None
        ],
        [
            (pid, purpose)
            for pid, states in c.consent_states.items()
            for purpose, status in states.items()
            if status is None
        ],
    ]
    if c.erasures or c.unsuppress:
        rows.extend(erasure.erasure_rows(c.unsuppress, c.erasures))
    return [(i, rows[i]) for i in ORDER if i < len(rows) and rows[i]]


SORTED_LAST = {2: 0, 15: 0, 11: 0, 12: 1, 14: 0}
"""statements a copy window holds back, and the column of the index their rows are sorted
by: those whose rows commute with every other statement (widening known identifiers,
traits, events, messages), links while the window removes none, and new identifiers while
no statement reads or moves identifiers one by one (`_IN_ORDER_FROM`)"""
_INSERT_IDENTIFIERS, _REASSIGN, _REMOVED_LINKS, _LINKS = 2, 3, 6, 7
_IN_ORDER_FROM = {1, 5, 13, 16}
"""restoring a profile, assigning identifiers by key, storing consent for a profile's
identifiers, storing digests by key: from the first of these on, new identifiers are
inserted in order"""


class WindowWriter:
    """Writes the change sets of one copy window (many journalled writes, one transaction).

    Rows of the statements in `SORTED_LAST` are held back and run at the end, sorted by
    the key of the index they land in, so that each page of a random-keyed index is visited
    once per window in order instead of at random (with windows of 100k+ observations this
    saves a third of the time of those statements). Sorting is stable, so of rows with one
    key the earliest still runs first (`INSERT OR IGNORE` keeps the first event of a
    message id). A held new identifier follows the merges of its profile made after it:
    when a profile is absorbed, its held identifiers move to the survivor as its stored
    ones do.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.held: dict[int, list[Sequence[Any]]] = {}
        self.held_of: dict[str, list[list[Any]]] = {}
        """profile id -> its held new identifier rows"""
        self.in_order: set[int] = set()
        """the held statements that, from now on in this window, run in order"""

    def write(self, rows: Rows) -> None:
        db = self.db
        held = self.held
        for index, params in rows:
            params = map_json(index, params, json_text)
            if (
                index in SORTED_LAST
                and index not in self.in_order
                or (index == _LINKS and _LINKS not in self.in_order)
            ):
                if index == _INSERT_IDENTIFIERS:
                    movable = [row if isinstance(row, list) else list(row) for row in params]
                    for row in movable:
                        self.held_of.setdefault(row[2], []).append(row)
                    held.setdefault(index, []).extend(movable)
                    continue
                held.setdefault(index, []).extend(params)
                continue
            if index in erasure.DELETING:
                self._run_held()
            elif index == _REMOVED_LINKS:
                self._in_order(_LINKS)
            elif index in _IN_ORDER_FROM:
                self._in_order(_INSERT_IDENTIFIERS)
            elif index == _REASSIGN:
                self._follow(params)
            db.executemany(STATEMENTS[index], params)

    def _in_order(self, index: int) -> None:
        """Run the held rows of statement `index` now, and its later rows in order."""
        if index not in self.in_order:
            self.in_order.add(index)
            self.db.executemany(STATEMENTS[index], self.held.pop(index, []))
            if index == _INSERT_IDENTIFIERS:
                self.held_of.clear()

    def _follow(self, merges: list[Sequence[Any]]) -> None:
        """Move the held new identifiers of absorbed profiles to their survivors."""
        held_of = self.held_of
        for absorbed, survivor in merges:
            moved = held_of.pop(absorbed, None)
            if moved:
                for row in moved:
                    row[2] = survivor
                held_of.setdefault(survivor, []).extend(moved)

    def finish(self) -> None:
        """Run the held rows, sorted; call before the window's transaction commits."""
        self._run_held()

    def _run_held(self) -> None:
        """Run the rows held so far, sorted (before an erasure deletes what they add, and
        at the window's end)."""
        for index in sorted(self.held):
            params = self.held[index]
            params.sort(key=itemgetter(SORTED_LAST.get(index, 0)))
            self.db.executemany(STATEMENTS[index], params)
        self.held.clear()
        self.held_of.clear()


def write_rows(db: sqlite3.Connection, rows: Rows) -> None:
    """Run the rows of one change set with the connection's open transaction."""
    writer = WindowWriter(db)
    writer.write(rows)
    writer.finish()


def sighting_rows(
    c: ChangeSet, micros: Callable[[datetime], int] = to_micros
) -> tuple[list[Sequence[Any]], list[Sequence[Any]]]:
    """(rows inserting the new identifiers, rows widening first/last seen and sources of
    known ones). An identifier's first sighting inserts it; the widening rows run after."""
    inserted: list[Sequence[Any]] = []
    widened: list[Sequence[Any]] = []
    for s in c.sightings:
        at = micros(s.seen_at)
        if s.new:
            inserted.append((s.key, kind_of(s.key), s.profile_id, at, at, s.source, s.digest))
        else:
            widened.append((s.key, at, at, s.source))
    return inserted, widened


def merge_from_row(row: Sequence[Any]) -> MergeRecord:
    mid, at, kind, survivor, absorbed, links, identifiers, message_id, undoes, undone_by = row
    return MergeRecord(
        id=mid,
        at=from_micros(at),
        kind=MergeKind(kind),
        survivor=survivor,
        absorbed=absorbed,
        links=tuple(link_from_json(x) for x in loads(links)),
        identifiers=tuple(loads(identifiers)),
        message_id=message_id,
        undoes=undoes,
        undone_by=undone_by,
    )
