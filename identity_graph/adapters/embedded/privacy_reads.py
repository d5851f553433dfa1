"""The embedded store's reads for privacy operations: what an erasure deletes (its scope),
the receipts and the suppression list, and the profiles retention finds inactive."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from identity_graph.adapters.embedded.partition import Partition
from identity_graph.adapters.embedded.sql import chunks, qmarks
from identity_graph.codec import from_micros, to_micros
from identity_graph.privacy import MESSAGE_KIND, ErasureReceipt, ErasureScope, Suppression


def read_scope(db: sqlite3.Connection, partition: Partition, profile_id: str) -> ErasureScope:
    """Everything the tables (fresh for this person) hold of the current profile
    `profile_id`: its absorbed ids (those the tables say were merged into it or into one of
    them, kept if memory says they still redirect to it), its keys (from memory), its
    message ids and its event count."""
    ids = [profile_id]
    frontier = [profile_id]
    while frontier:
        found: list[str] = []
        for chunk in chunks(frontier):
            found.extend(
                absorbed
                for (absorbed,) in db.execute(
                    f"SELECT id FROM profiles WHERE merged_into IN ({qmarks(len(chunk))})",
                    chunk,
                )
                if partition.current(absorbed) == profile_id
            )
        frontier = found
        ids.extend(found)
    keys = sorted(partition.members[profile_id])
    messages: dict[str, None] = {}
    events = 0
    for chunk in chunks(keys):
        marks = qmarks(len(chunk))
        for (mid,) in db.execute(
            f"SELECT message_id FROM events WHERE identifier_key IN ({marks})", chunk
        ):
            messages[mid] = None
            events += 1
        messages.update(
            dict.fromkeys(
                mid
                for (mid,) in db.execute(
                    f"SELECT DISTINCT message_id FROM traits WHERE identifier_key IN ({marks})",
                    chunk,
                )
            )
        )
    for chunk in chunks(ids):
        messages.update(
            dict.fromkeys(
                mid
                for (mid,) in db.execute(
                    f"SELECT message_id FROM messages WHERE profile_id IN ({qmarks(len(chunk))})",
                    chunk,
                )
            )
        )
    return ErasureScope(profile_id, tuple(ids), tuple(keys), tuple(messages), events)


def read_receipt(db: sqlite3.Connection, id: str) -> ErasureReceipt | None:
    """The receipt stored under erasure id `id`, or the latest of customer `id`."""
    row = db.execute(
        "SELECT id, customer_id, erased_at, identifiers, events, suppressed, reason, actor"
        " FROM erasures WHERE id = ?1 OR customer_id = ?1 ORDER BY id = ?1 DESC,"
        " erased_at DESC LIMIT 1",
        (id,),
    ).fetchone()
    if row is None:
        return None
    eid, customer, at, identifiers, events, suppressed, reason, actor = row
    return ErasureReceipt(
        eid, customer, from_micros(at), identifiers, events, suppressed, reason, actor
    )


def read_suppressions(
    db: sqlite3.Connection, *, first: int, after: str | None
) -> tuple[list[Suppression], int, bool] | None:
    """A page of listed suppressions (not message ids), oldest first by (at, hash), after
    the one with hash `after`, with the total and whether more follow; None if `after` is
    not a listed hash."""
    listed = f"kind != '{MESSAGE_KIND}'"
    total = int(db.execute(f"SELECT count(*) FROM suppressions WHERE {listed}").fetchone()[0])
    where, params = listed, []
    if after is not None:
        start = db.execute(
            f"SELECT at, hash FROM suppressions WHERE hash = ? AND {listed}", (after,)
        ).fetchone()
        if start is None:
            return None
        where += " AND (at, hash) > (?, ?)"
        params = list(start)
    rows = db.execute(
        f"SELECT hash, kind, erasure_id, at FROM suppressions WHERE {where}"
        " ORDER BY at, hash LIMIT ?",
        [*params, first + 1],
    ).fetchall()
    items = [Suppression(h, kind, eid, from_micros(at)) for h, kind, eid, at in rows[:first]]
    return items, total, len(rows) > first


def suppression_hashes(db: sqlite3.Connection) -> set[str]:
    return {h for (h,) in db.execute("SELECT hash FROM suppressions")}


def inactive_profiles(
    db: sqlite3.Connection, *, before: datetime, first: int, after: str | None
) -> list[str]:
    """Up to `first` profiles of the tables, in id order after `after`, not merged into
    another and none of whose identifiers was seen at or after `before`."""
    return [
        pid
        for (pid,) in db.execute(
            "SELECT p.id FROM profiles p WHERE p.id > ? AND p.merged_into IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM identifiers i"
            " WHERE i.profile_id = p.id AND i.last_seen >= ?) ORDER BY p.id LIMIT ?",
            (after if after is not None else "", to_micros(before), first),
        )
    ]
