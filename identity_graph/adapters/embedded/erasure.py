"""How the embedded store erases a person: the statements a journalled erasure runs in the
tables, and the tables it adds (suppressions, receipts).

An erasure travels in a change set like any write: it is journalled, so it is ordered with
the writes before and after it and a crash leaves it whole or not at all (a restart copies
it), and the copier deletes the rows. A link always joins two identifiers of one profile, so
every link of the person has its lower end (`a`) among the person's keys. Merge and conflict
records of other profiles that name one of the person's identifiers (in their `identifiers`,
`links` or `dropped` JSON text) are deleted whole: they would keep the value. The needle is
the key as JSON writes it, quotes included, so `email:a@x.io` does not match
`email:a@x.io.uk`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from identity_graph.codec import dumps, to_micros
from identity_graph.privacy import Erasure

SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    hash TEXT PRIMARY KEY, kind TEXT NOT NULL, erasure_id TEXT, at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS suppressions_listed ON suppressions (at, hash)
    WHERE kind != 'message';
CREATE TABLE IF NOT EXISTS erasures (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, erased_at INTEGER NOT NULL,
    identifiers INTEGER NOT NULL, events INTEGER NOT NULL, suppressed INTEGER NOT NULL,
    reason TEXT NOT NULL, actor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS erasures_customer ON erasures (customer_id);
"""
"""the suppression list (keyed hashes only) and the erasure receipts (counts, never values)"""

_NAMING = "EXISTS (SELECT 1 FROM json_each(?1) needle WHERE {})"
STATEMENTS = (
    "DELETE FROM suppressions WHERE hash = ?",
    "DELETE FROM events WHERE identifier_key = ?",
    "DELETE FROM traits WHERE identifier_key = ?",
    "DELETE FROM consents WHERE identifier_key = ?",
    "DELETE FROM links WHERE a = ?",
    "DELETE FROM merges WHERE "
    + _NAMING.format(
        "instr(merges.identifiers, needle.value) > 0 OR instr(merges.links, needle.value) > 0"
    ),
    "DELETE FROM conflicts WHERE " + _NAMING.format("instr(conflicts.dropped, needle.value) > 0"),
    "DELETE FROM identifiers WHERE key = ?",
    "DELETE FROM profiles WHERE id = ?",
    "DELETE FROM profile_consents WHERE profile_id = ?",
    "DELETE FROM merges WHERE survivor = ?1 OR absorbed = ?1",
    "DELETE FROM conflicts WHERE profile_id = ?",
    "DELETE FROM messages WHERE message_id = ?",
    "INSERT INTO suppressions (hash, kind, erasure_id, at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (hash) DO NOTHING",
    "INSERT INTO erasures (id, customer_id, erased_at, identifiers, events, suppressed,"
    " reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
)
"""The statements of `sql.STATEMENTS` from `FIRST` on, in the order they run: lifting
suppressions, then each erasure's deletions, then its suppressions and receipt."""
FIRST = 19
"""the index of the first of them in `sql.STATEMENTS`"""
DELETING = frozenset(range(FIRST + 1, FIRST + 13))
"""the statements that delete rows other statements add: rows a copy window holds back
(`sql.WindowWriter`) run before them"""


def erasure_rows(unsuppress: Sequence[str], erasures: Sequence[Erasure]) -> list[list[Any]]:
    """The rows of `STATEMENTS`, one list per statement, for a change set's lifted
    suppressions and erasures."""
    rows: list[list[Any]] = [[] for _ in STATEMENTS]
    rows[0] = [(h,) for h in unsuppress]
    for erasure in erasures:
        scope = erasure.scope
        keys = [(key,) for key in scope.keys]
        for index in (1, 2, 3, 4, 7):
            rows[index].extend(keys)
        needles = dumps([dumps(key) for key in scope.keys])
        if scope.keys:
            rows[5].append((needles,))
            rows[6].append((needles,))
        ids = [(pid,) for pid in scope.profile_ids]
        for index in (8, 9, 10, 11):
            rows[index].extend(ids)
        rows[12].extend((m,) for m in scope.message_ids)
        rows[13].extend(
            (s.hash, s.kind, s.erasure_id, to_micros(s.at)) for s in erasure.suppressions
        )
        r = erasure.receipt
        rows[14].append(
            (
                r.id,
                r.customer_id,
                to_micros(r.erased_at),
                r.identifiers,
                r.events,
                r.suppressed,
                r.reason,
                r.actor,
            )
        )
    return rows
