"""The embedded store's SQLite layout: the tables, and how a change set is written to them.

Rows are kept per identifier (events, traits, consent), so one person's data can be
erased physically (`secure_delete` is on) without rewriting anyone else's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from identity_graph.codec import (
    dumps,
    from_micros,
    link_from_json,
    link_to_json,
    loads,
    to_micros,
)
from identity_graph.model import MergeKind, MergeRecord
from identity_graph.store import ChangeSet

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
CREATE INDEX IF NOT EXISTS links_b ON links (b);
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
    source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_identifier ON events (identifier_key, ts);
CREATE TABLE IF NOT EXISTS consents (
    identifier_key TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL,
    at INTEGER NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS consents_identifier ON consents (identifier_key);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY, profile_id TEXT NOT NULL, at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, at INTEGER NOT NULL,
    principal TEXT NOT NULL, role TEXT NOT NULL, customer_id TEXT NOT NULL,
    fields TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_customer ON audit (customer_id, seq);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, name TEXT,
    created_at INTEGER NOT NULL, revoked_at INTEGER);
"""

MIGRATIONS = (("identifiers", "digest", "ALTER TABLE identifiers ADD COLUMN digest TEXT"),)
INDEXES = """
CREATE INDEX IF NOT EXISTS identifiers_digest ON identifiers (digest) WHERE digest IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_id ON audit (id);
"""


def create_tables(db: sqlite3.Connection) -> None:
    """Create the tables, and add the columns a data directory from an older c360 lacks."""
    db.executescript(SCHEMA)
    for table, column, statement in MIGRATIONS:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            db.execute(statement)
    db.executescript(INDEXES)


SQL_VARS = 900


def chunks(items: Sequence[str], size: int = SQL_VARS) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def qmarks(n: int) -> str:
    return ",".join("?" * n)


def kind_of(key: str) -> str:
    return key.partition(":")[0]


def write_changes(db: sqlite3.Connection, c: ChangeSet) -> None:
    """Write one change set with the connection's open transaction."""
    db.executemany(
        "INSERT INTO profiles (id, created_at) VALUES (?, ?)",
        [(pid, to_micros(t)) for pid, t in c.new_profiles],
    )
    db.executemany(
        "UPDATE profiles SET merged_into = NULL WHERE id = ?",
        [(pid,) for pid in c.restored_profiles],
    )
    db.executemany(
        "INSERT INTO identifiers (key, kind, profile_id, first_seen, last_seen, sources, digest)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ',' || ?6 || ',', ?7) ON CONFLICT (key) DO UPDATE SET"
        " first_seen = min(first_seen, excluded.first_seen),"
        " last_seen = max(last_seen, excluded.last_seen),"
        " sources = CASE WHEN instr(sources, excluded.sources) > 0 THEN sources"
        " ELSE sources || ?6 || ',' END",
        sighting_rows(c),
    )
    for absorbed, survivor in c.reassign:
        db.execute(
            "UPDATE identifiers SET profile_id = ? WHERE profile_id = ?",
            (survivor, absorbed),
        )
        db.execute("UPDATE profiles SET merged_into = ? WHERE id = ?", (survivor, absorbed))
    db.executemany(
        "UPDATE identifiers SET profile_id = ? WHERE key = ?",
        [(pid, key) for key, pid in c.assign.items()],
    )
    db.executemany(
        "DELETE FROM links WHERE (a = ?1 AND b = ?2) OR (a = ?2 AND b = ?1)",
        c.removed_links,
    )
    db.executemany(
        "INSERT OR IGNORE INTO links (a, b, source, message_id, observed_at, rule)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (*sorted((x.a, x.b)), x.source, x.message_id, to_micros(x.observed_at), x.rule)
            for x in c.links
        ],
    )
    db.executemany(
        "INSERT INTO merges (id, at, kind, survivor, absorbed, links, identifiers,"
        " message_id, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                m.id,
                to_micros(m.at),
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
    )
    db.executemany("UPDATE merges SET undone_by = ?2 WHERE id = ?1", c.undone)
    db.executemany(
        "INSERT INTO conflicts (id, at, message_id, profile_id, dropped, reason)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (x.id, to_micros(x.at), x.message_id, x.profile_id, dumps(x.dropped), x.reason)
            for x in c.conflicts
        ],
    )
    db.executemany(
        "INSERT INTO traits (identifier_key, name, value, source, observed_at,"
        " message_id) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                t.identifier_key,
                t.name,
                dumps(t.value),
                t.source,
                to_micros(t.observed_at),
                t.message_id,
            )
            for t in c.traits
        ],
    )
    db.executemany(
        "INSERT OR IGNORE INTO events (message_id, identifier_key, type, name, category,"
        " properties, ts, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.message_id,
                e.identifier_key,
                e.type.value,
                e.name,
                e.category.value,
                dumps(e.properties),
                to_micros(e.timestamp),
                e.source,
            )
            for e in c.events
        ],
    )
    for consent in c.consents:
        db.execute(
            "INSERT INTO consents (identifier_key, purpose, status, at, source)"
            " SELECT key, ?, ?, ?, ? FROM identifiers WHERE profile_id = ?",
            (
                consent.purpose,
                consent.status.value,
                to_micros(consent.at),
                consent.source,
                consent.profile_id,
            ),
        )
    db.executemany(
        "INSERT OR IGNORE INTO messages (message_id, profile_id, at) VALUES (?, ?, ?)",
        [(m, pid, to_micros(t)) for m, pid, t in c.messages],
    )


def sighting_rows(c: ChangeSet) -> list[list[Any]]:
    """One row per identifier and source: the identifier's first sighting in the change
    set places it, the rest only widen its first/last seen and sources."""
    rows: dict[tuple[str, str], list[Any]] = {}
    for s in c.sightings:
        at = to_micros(s.seen_at)
        row = rows.get((s.key, s.source))
        if row is None:
            rows[(s.key, s.source)] = [
                s.key,
                kind_of(s.key),
                s.profile_id,
                at,
                at,
                s.source,
                s.digest,
            ]
        elif at < row[3]:
            row[3] = at
        elif at > row[4]:
            row[4] = at
    return list(rows.values())


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
