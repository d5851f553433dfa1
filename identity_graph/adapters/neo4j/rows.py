"""Domain values to and from the property maps the Neo4j store keeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from identity_graph.codec import (
    dumps,
    from_micros,
    link_from_json,
    link_to_json,
    loads,
    to_micros,
)
from identity_graph.model import (
    ConsentRecord,
    ConsentStatus,
    EventCategory,
    Link,
    MergeConflict,
    MergeKind,
    MergeRecord,
    MessageType,
    StoredEvent,
)
from identity_graph.store import ChangeSet

Row = dict[str, Any]


def changes_to_rows(c: ChangeSet, *, first_ord: int = 0) -> dict[str, list[Any]]:
    """The parameter rows of each step of `cypher.APPLY`, by parameter name.

    Traits and consents are numbered (`ord`) from `first_ord`, so the change sets of one
    transaction keep their order where their times are equal.
    """
    return {
        "new_profiles": [{"id": pid, "created_at": to_micros(t)} for pid, t in c.new_profiles],
        "restored_profiles": list(c.restored_profiles),
        "sightings": _sightings(c),
        "redirects": [{"absorbed": a, "survivor": s} for a, s in c.reassign],
        "moves": _moves(c.reassign),
        "assign": [{"key": key, "profile_id": pid} for key, pid in c.assign.items()],
        "removed_links": [
            {"a": a, "b": b} for a, b in sorted({tuple(sorted(p)) for p in c.removed_links})
        ],
        "links": [_link_row(x) for x in c.links],
        "merges": [_merge_row(m) for m in c.merges],
        "undone": [{"id": mid, "undone_by": by} for mid, by in c.undone],
        "conflicts": [
            {
                "id": x.id,
                "at": to_micros(x.at),
                "message_id": x.message_id,
                "profile_id": x.profile_id,
                "dropped": dumps(list(x.dropped)),
                "reason": x.reason,
            }
            for x in c.conflicts
        ],
        "traits": [
            {
                "identifier_key": t.identifier_key,
                "name": t.name,
                "value": dumps(t.value),
                "source": t.source,
                "observed_at": to_micros(t.observed_at),
                "message_id": t.message_id,
                "ord": n,
            }
            for n, t in enumerate(c.traits, first_ord)
        ],
        "events": [
            {
                "message_id": e.message_id,
                "identifier_key": e.identifier_key,
                "type": e.type.value,
                "name": e.name,
                "category": e.category.value,
                "properties": dumps(e.properties),
                "ts": to_micros(e.timestamp),
                "source": e.source,
            }
            for e in c.events
        ],
        "consents": [
            {
                "profile_id": x.profile_id,
                "purpose": x.purpose,
                "status": x.status.value,
                "at": to_micros(x.at),
                "source": x.source,
                "ord": n,
            }
            for n, x in enumerate(c.consents, first_ord)
        ],
        "consent_states": [
            {
                "profile_id": pid,
                "states": {
                    consent_property(purpose): None if status is None else status.value
                    for purpose, status in states.items()
                },
            }
            for pid, states in c.consent_states.items()
        ],
        "messages": [
            {"id": mid, "profile_id": pid, "at": to_micros(t)} for mid, pid, t in c.messages
        ],
        "digests": [{"key": key, "digest": d} for key, d in sorted(c.digests.items())],
    }


def _sightings(c: ChangeSet) -> list[Row]:
    """One row per key: the first sighting's profile, the widest times, sources in order."""
    rows: dict[str, Row] = {}
    for s in c.sightings:
        at = to_micros(s.seen_at)
        row = rows.get(s.key)
        if row is None:
            rows[s.key] = {
                "key": s.key,
                "kind": s.key.partition(":")[0],
                "profile_id": s.profile_id,
                "first": at,
                "last": at,
                "sources": [s.source],
                "digest": s.digest,
            }
            continue
        row["first"] = min(row["first"], at)
        row["last"] = max(row["last"], at)
        if s.source not in row["sources"]:
            row["sources"].append(s.source)
    return list(rows.values())


def _moves(reassign: list[tuple[str, str]]) -> list[Row]:
    """Where each absorbed profile's identifiers end up once every merge of the set is done."""
    redirect = dict(reassign)

    def target(pid: str) -> str:
        while pid in redirect:
            pid = redirect[pid]
        return pid

    return [{"absorbed": a, "target": target(a)} for a, _ in reassign]


def _link_row(link: Link) -> Row:
    """A link as the LINKED relationship keeps it: once per pair, the smaller key first."""
    a, b = sorted((link.a, link.b))
    return {**link_to_json(link), "a": a, "b": b}


def _merge_row(m: MergeRecord) -> Row:
    return {
        "id": m.id,
        "at": to_micros(m.at),
        "kind": m.kind.value,
        "survivor": m.survivor,
        "absorbed": m.absorbed,
        "links": dumps([link_to_json(x) for x in m.links]),
        "identifiers": dumps(list(m.identifiers)),
        "message_id": m.message_id,
        "undoes": m.undoes,
    }


def merge_from_row(row: Mapping[str, Any]) -> MergeRecord:
    return MergeRecord(
        id=row["id"],
        at=from_micros(row["at"]),
        kind=MergeKind(row["kind"]),
        survivor=row["survivor"],
        absorbed=row["absorbed"],
        links=tuple(link_from_json(x) for x in loads(row["links"])),
        identifiers=tuple(loads(row["identifiers"])),
        message_id=row.get("message_id"),
        undoes=row.get("undoes"),
        undone_by=row.get("undone_by"),
    )


def conflict_from_row(row: Mapping[str, Any]) -> MergeConflict:
    return MergeConflict(
        row["id"],
        from_micros(row["at"]),
        row["message_id"],
        row["profile_id"],
        tuple(loads(row["dropped"])),
        row["reason"],
    )


def consent_from_row(row: Mapping[str, Any]) -> ConsentRecord:
    return ConsentRecord(
        row["identifier_key"],
        row["purpose"],
        ConsentStatus(row["status"]),
        from_micros(row["at"]),
        row["source"],
        row.get("seq") or 0,
    )


def consent_property(purpose: str) -> str:
    """The Profile property that keeps the profile's consent status for `purpose`."""
    return f"consent_{purpose}"


def consent_state(pairs: Sequence[Sequence[str]]) -> dict[str, ConsentStatus]:
    """A profile's consent state from `cypher.CONSENT_STATE`'s [purpose, status] pairs."""
    return {purpose: ConsentStatus(status) for purpose, status in pairs}


def event_from_row(row: Mapping[str, Any]) -> StoredEvent:
    return StoredEvent(
        message_id=row["message_id"],
        identifier_key=row["identifier_key"],
        type=MessageType(row["type"]),
        name=row.get("name"),
        category=EventCategory(row["category"]),
        properties=loads(row["properties"]),
        timestamp=from_micros(row["ts"]),
        source=row["source"],
    )


EVERYTHING = 2**62
"""a LIMIT no count reaches"""


def count_limit(up_to: int | None) -> int:
    """A port's `count_up_to` as the LIMIT of a count (Cypher has no unbounded LIMIT)."""
    return EVERYTHING if up_to is None else up_to
