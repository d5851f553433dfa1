"""The Neo4j store's privacy operations: the Cypher of erasure, suppression and retention, and
the rows it takes and gives. The schema they need is in `cypher.SCHEMA`.

Model: (:Suppression {hash, kind, erasure_id, at}), unique by `hash`; those of identifiers
also carry the label `SuppressedIdentifier` (listed, counted and paged by (at, hash)), those of
message ids (`kind` 'message') only stop replays. (:Erasure {id, customer_id, erased_at,
identifiers, events, suppressed, reason, actor}) is the receipt: counts, never values.

Merge and conflict records keep the identifier keys they name inside JSON text (`identifiers`,
`links`, `dropped`), which no range or text index can search by element (a text index refuses
values over 32 KB, so a large merge would fail to be written). The full-text index
`record_keys` finds the candidates for a key (a phrase query on its JSON spelling; the
analyzer splits and lowercases, so it finds a superset) and `names_any` keeps those whose
parsed JSON names the key exactly.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from identity_graph.codec import from_micros, loads, to_micros
from identity_graph.privacy import MESSAGE_KIND, Erasure, ErasureReceipt, Suppression

# --- write transaction ---------------------------------------------------------------------

ERASURE_SCOPE = """
MATCH (c:Profile {id: $profile_id})
WHERE c.merged_into IS NULL
SET c._lock = true
WITH c
CALL (c) {
  OPTIONAL MATCH (a:Profile)-[:MERGED_INTO*1..1000]->(c)
  WITH collect(DISTINCT a.id) AS absorbed
  RETURN [c.id] + absorbed AS profile_ids
}
CALL (profile_ids) {
  UNWIND profile_ids AS pid
  MATCH (i:Identifier {profile_id: pid})
  RETURN collect(i.key) AS keys
}
CALL (keys) {
  UNWIND keys AS key
  MATCH (e:Event {identifier_key: key})
  RETURN count(e) AS events, collect(e.message_id) AS event_messages
}
CALL (keys) {
  UNWIND keys AS key
  MATCH (t:Trait {identifier_key: key})
  RETURN collect(DISTINCT t.message_id) AS trait_messages
}
CALL (profile_ids) {
  UNWIND profile_ids AS pid
  MATCH (m:Message {profile_id: pid})
  RETURN collect(m.id) AS messages
}
RETURN profile_ids, keys, events, event_messages + trait_messages AS named, messages
"""
"""Lock a current profile (as `cypher.LOCK_CURRENT` does) and read everything of it: the
absorbed profiles whose redirects end at it (as far as `cypher.MAX_REDIRECTS`), the keys they
hold, their events, the message ids of those events and of their trait values (`named`), and
those of the messages that landed on them."""

SUPPRESSED = """
UNWIND $hashes AS h
MATCH (s:Suppression {hash: h})
RETURN collect(h) AS suppressed
"""

NAMING = """
UNWIND $queries AS query
CALL db.index.fulltext.queryNodes('record_keys', query) YIELD node
WITH DISTINCT node
RETURN node {.id, .identifiers, .links, .dropped, merge: node:Merge} AS row
"""
"""The merge and conflict records that may name one of the keys (`naming_queries`)."""

ERASE = """
CALL () {
  UNWIND $e.identifiers AS s
  MERGE (x:Suppression {hash: s.hash})
  ON CREATE SET x.kind = s.kind, x.erasure_id = s.erasure_id, x.at = s.at,
                x:SuppressedIdentifier
}
CALL () {
  UNWIND $e.messages AS s
  MERGE (x:Suppression {hash: s.hash})
  ON CREATE SET x.kind = s.kind, x.erasure_id = s.erasure_id, x.at = s.at
}
CALL () {
  CREATE (r:Erasure)
  SET r = $e.receipt
}
CALL () {
  UNWIND $e.keys AS key
  MATCH (x:Trait {identifier_key: key})
  DELETE x
}
CALL () {
  UNWIND $e.keys AS key
  MATCH (x:Event {identifier_key: key})
  DELETE x
}
CALL () {
  UNWIND $e.keys AS key
  MATCH (x:Consent {identifier_key: key})
  DELETE x
}
CALL () {
  CALL () {
    UNWIND $e.other_messages AS mid
    MATCH (m:Message {id: mid})
    RETURN m
    UNION
    UNWIND $e.profile_ids AS pid
    MATCH (m:Message {profile_id: pid})
    RETURN m
  }
  DELETE m
}
CALL () {
  MATCH (m:Merge)
  WHERE m.survivor IN $e.profile_ids OR m.absorbed IN $e.profile_ids OR m.id IN $e.merges
  DELETE m
}
CALL () {
  MATCH (c:Conflict)
  WHERE c.profile_id IN $e.profile_ids OR c.id IN $e.conflicts
  DELETE c
}
CALL () {
  UNWIND $e.keys AS key
  MERGE (i:Identifier {key: key})
  DETACH DELETE i
}
CALL () {
  UNWIND $e.profile_ids AS pid
  MATCH (i:Identifier {profile_id: pid})
  DETACH DELETE i
}
CALL () {
  UNWIND $e.profile_ids AS pid
  MATCH (p:Profile {id: pid})
  DETACH DELETE p
}
"""
"""One erasure, in one statement: the suppressions and the receipt are stored, everything of
the person and the records of others naming their keys go. Each kind of node is found once,
before any is deleted: an index seek in a transaction that has deleted many nodes of that
index is slow (looking 10,000 messages up by id after deleting them by profile took 20 s).
Messages are found by profile, and by id only those that landed elsewhere
(`other_messages`). The identifiers are
deleted through `MERGE`, which takes their unique-constraint entry locks: an ingest that
would create one of these keys again waits for this transaction to end, and then sees its
suppressions."""

UNSUPPRESS = """
UNWIND $hashes AS h
MATCH (s:Suppression {hash: h})
DELETE s
"""

# --- reads -----------------------------------------------------------------------------------

ERASURE = """
CALL () {
  MATCH (e:Erasure {id: $id}) RETURN e
  UNION
  MATCH (e:Erasure {customer_id: $id}) RETURN e
}
RETURN e {.*} AS e
ORDER BY e.erased_at DESC
LIMIT 1
"""

SUPPRESSIONS = """
CALL () {
  OPTIONAL MATCH (c:Suppression {hash: $after})
  WHERE c:SuppressedIdentifier
  RETURN c.at AS at, c.hash AS hash
}
CALL (at, hash) {
  MATCH (s:SuppressedIdentifier)
  WHERE s.at >= coalesce(at, -9223372036854775808) AND s.hash IS NOT NULL
    AND (at IS NULL OR s.at > at OR s.hash > hash)
  WITH s
  ORDER BY s.at, s.hash
  LIMIT $limit
  RETURN collect(s {.*}) AS found
}
RETURN COUNT { (:SuppressedIdentifier) } AS total, $after IS NULL OR at IS NOT NULL AS known,
       found
"""
"""Suppressed identifiers oldest first by (at, hash), read in order from the
`suppressed_identifier_time` index, after the one whose hash is `$after`; `known` is false
when none has it. The total comes from the label's count."""

INACTIVE_PROFILES = """
MATCH (p:Profile)
WHERE p.id > $after AND p.merged_into IS NULL
  AND NOT EXISTS {
    MATCH (i:Identifier {profile_id: p.id})
    WHERE i.last_seen >= $before
  }
WITH p
ORDER BY p.id
LIMIT $first
RETURN p.id
"""
"""Current profiles in id order (from the unique `Profile.id` index), none of whose
identifiers was seen since `$before`."""

CHECKPOINT = "CALL db.checkpoint()"

# --- retention: each statement deletes at most `$batch` records in a transaction of its own --

EXPIRE_EVENTS = """
MATCH (e:Event)
WHERE e.category = $category AND e.ts < $before
WITH e
LIMIT $batch
OPTIONAL MATCH (m:Message {id: e.message_id})
DELETE e, m
RETURN count(e)
"""
"""Old events of a category (from the `event_time` index), with their message-id entries:
an event's message id lives as long as the event."""

EXPIRE_MESSAGES = """
MATCH (m:Message)
WHERE m.at >= $from_at AND m.at < $before AND m.id IS NOT NULL
  AND (m.at > $from_at OR m.id > $from_id)
WITH m
ORDER BY m.at, m.id
LIMIT $batch
WITH collect(m) AS window
WITH window, size(window) AS seen, window[-1].at AS at, window[-1].id AS id
CALL (window) {
  UNWIND window AS m
  WITH m
  WHERE NOT EXISTS { MATCH (:Event {message_id: m.id}) }
  DELETE m
  RETURN count(m) AS deleted
}
RETURN seen, deleted, at, id
"""
"""The next `$batch` message-id entries older than `$before`, after (`$from_at`, `$from_id`)
in (at, id) order (the `message_time` index), less those of events (which go with their
events); the caller moves the cursor to the last one read, so the entries of events still
kept are read once, not once per batch."""

EXPIRE_CONFLICTS = """
MATCH (c:Conflict)
WHERE c.at < $before
WITH c
LIMIT $batch
DELETE c
RETURN count(c)
"""


# --- rows ------------------------------------------------------------------------------------


def naming_queries(keys: Sequence[str]) -> list[str]:
    """Full-text queries, one per key, for the records that may name it: a phrase of the key
    as JSON text spells it (non-ASCII escaped), or as it is."""
    queries = []
    for key in keys:
        phrases = dict.fromkeys([json.dumps(key)[1:-1], key])
        queries.append(" OR ".join(f'"{_escaped(p)}"' for p in phrases))
    return queries


def _escaped(phrase: str) -> str:
    return phrase.replace("\\", "\\\\").replace('"', '\\"')


def names_any(row: Mapping[str, Any], keys: set[str]) -> bool:
    """Whether a merge or conflict record (a `NAMING` row) names one of `keys` exactly."""
    if row["merge"]:
        named = set(loads(row["identifiers"] or "[]"))
        for link in loads(row["links"] or "[]"):
            named |= {link.get("a"), link.get("b")}
    else:
        named = set(loads(row["dropped"] or "[]"))
    return not named.isdisjoint(keys)


def erasure_params(
    erasure: Erasure,
    *,
    merges: Sequence[str],
    conflicts: Sequence[str],
    landed: Collection[str] = (),
) -> dict[str, Any]:
    """The `$e` parameter of `ERASE`; `landed` are message ids known to be on the person's
    profiles (deleted by profile, not looked up by id)."""
    scope = erasure.scope
    receipt = erasure.receipt

    def row(s: Suppression) -> dict[str, Any]:
        return {"hash": s.hash, "kind": s.kind, "erasure_id": s.erasure_id, "at": to_micros(s.at)}

    return {
        "keys": sorted(scope.keys),
        "profile_ids": sorted(scope.profile_ids),
        "other_messages": sorted(set(scope.message_ids).difference(landed)),
        "merges": sorted(merges),
        "conflicts": sorted(conflicts),
        "identifiers": [row(s) for s in erasure.suppressions if s.kind != MESSAGE_KIND],
        "messages": [row(s) for s in erasure.suppressions if s.kind == MESSAGE_KIND],
        "receipt": {
            "id": receipt.id,
            "customer_id": receipt.customer_id,
            "erased_at": to_micros(receipt.erased_at),
            "identifiers": receipt.identifiers,
            "events": receipt.events,
            "suppressed": receipt.suppressed,
            "reason": receipt.reason,
            "actor": receipt.actor,
        },
    }


def receipt_from_row(row: Mapping[str, Any]) -> ErasureReceipt:
    return ErasureReceipt(
        id=row["id"],
        customer_id=row["customer_id"],
        erased_at=from_micros(row["erased_at"]),
        identifiers=row["identifiers"],
        events=row["events"],
        suppressed=row["suppressed"],
        reason=row["reason"],
        actor=row["actor"],
    )


def suppression_from_row(row: Mapping[str, Any]) -> Suppression:
    return Suppression(row["hash"], row["kind"], row.get("erasure_id"), from_micros(row["at"]))
