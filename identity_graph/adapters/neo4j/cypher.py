"""The Cypher the Neo4j store sends (the access records' own is in `records`). Every value is a
parameter; no text is built from input.

Model: (:Identifier {key, kind, profile_id, first_seen, last_seen, sources}) joined by
(:Identifier)-[:LINKED {source, message_id, observed_at, rule}]->(:Identifier), stored once per
pair from the lower key to the higher; (:Profile {id, created_at, merged_into}) with
(:Profile)-[:MERGED_INTO]->(:Profile) redirects; records (:Merge), (:Conflict), (:Trait),
(:Event), (:Consent), (:Message), (:Audit), (:ApiKey) keyed by plain properties. Times are
integer microseconds, JSON values are JSON text.

Locking: a write transaction MERGEs every Identifier and Message it reads (placeholders with no
`profile_id` for new ones, so two transactions creating the same key or message serialise on
the unique constraint) and, in the same statement, takes write locks on the Profile nodes those
identifiers belong to, in id order. Every change to which identifiers a profile holds is made
under that profile's lock. A change set is written by one statement (`APPLY`), which also drops
the placeholders no change set has used so far; a later change set of the same transaction
MERGEs a dropped key again if it needs it.

Suppression: `snapshot` reads again, after its locks are taken, the suppression hashes the
transaction function asked `suppressed` about (`$claim.hashes`); one suppressed meanwhile (an
erasure that committed in between) makes the store run the function again
(`transaction.SuppressedMeanwhile`; docs/neo4j-erasure.md says why).

Variable-length patterns are bounded: redirects are followed at most `MAX_REDIRECTS` hops
(Cypher takes the bound only as a literal, so it is written into each pattern), so a corrupt or
cyclic chain costs a bounded walk; a profile further than that from a current one reads as
absent.
"""

SCHEMA = (
    "CREATE CONSTRAINT identifier_key IF NOT EXISTS FOR (n:Identifier) REQUIRE n.key IS UNIQUE",
    "CREATE CONSTRAINT profile_id IF NOT EXISTS FOR (n:Profile) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT message_id IF NOT EXISTS FOR (n:Message) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT merge_id IF NOT EXISTS FOR (n:Merge) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT conflict_id IF NOT EXISTS FOR (n:Conflict) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT event_message_id IF NOT EXISTS FOR (n:Event) REQUIRE n.message_id IS UNIQUE",
    "CREATE CONSTRAINT api_key_hash IF NOT EXISTS FOR (n:ApiKey) REQUIRE n.key_hash IS UNIQUE",
    "CREATE CONSTRAINT api_key_id IF NOT EXISTS FOR (n:ApiKey) REQUIRE n.id IS UNIQUE",
    # the audit log of an older c360 was numbered from a counter; its schema is dropped
    "DROP CONSTRAINT audit_seq IF EXISTS",
    "DROP CONSTRAINT counter_name IF EXISTS",
    "DROP INDEX audit_id IF EXISTS",
    "DROP INDEX audit_customer IF EXISTS",
    "CREATE CONSTRAINT audit_entry_id IF NOT EXISTS FOR (n:Audit) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX identifier_profile IF NOT EXISTS FOR (n:Identifier) ON (n.profile_id)",
    "CREATE INDEX identifier_kind IF NOT EXISTS FOR (n:Identifier) ON (n.kind)",
    "CREATE INDEX identifier_digest IF NOT EXISTS FOR (n:Identifier) ON (n.digest)",
    "CREATE INDEX profile_merged_into IF NOT EXISTS FOR (n:Profile) ON (n.merged_into)",
    "CREATE INDEX merge_survivor IF NOT EXISTS FOR (n:Merge) ON (n.survivor)",
    "CREATE INDEX merge_absorbed IF NOT EXISTS FOR (n:Merge) ON (n.absorbed)",
    "CREATE INDEX conflict_profile IF NOT EXISTS FOR (n:Conflict) ON (n.profile_id)",
    "CREATE INDEX trait_identifier IF NOT EXISTS FOR (n:Trait) ON (n.identifier_key)",
    "CREATE INDEX event_identifier IF NOT EXISTS FOR (n:Event) ON (n.identifier_key)",
    "CREATE INDEX consent_identifier IF NOT EXISTS FOR (n:Consent) ON (n.identifier_key)",
    "CREATE INDEX audit_time IF NOT EXISTS FOR (n:Audit) ON (n.at, n.id)",
    "CREATE INDEX audit_customer_time IF NOT EXISTS FOR (n:Audit) ON (n.customer_id, n.at, n.id)",
    # privacy operations (`privacy`): erasure finds a person's messages by profile, records
    # naming a key by full-text search, retention reads old records in time order
    "CREATE CONSTRAINT suppression_hash IF NOT EXISTS FOR (n:Suppression) REQUIRE n.hash IS UNIQUE",
    "CREATE INDEX suppressed_identifier_time IF NOT EXISTS"
    " FOR (n:SuppressedIdentifier) ON (n.at, n.hash)",
    "CREATE CONSTRAINT erasure_id IF NOT EXISTS FOR (n:Erasure) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX erasure_customer IF NOT EXISTS FOR (n:Erasure) ON (n.customer_id)",
    "CREATE INDEX message_profile IF NOT EXISTS FOR (n:Message) ON (n.profile_id)",
    "CREATE INDEX message_time IF NOT EXISTS FOR (n:Message) ON (n.at, n.id)",
    "CREATE INDEX event_time IF NOT EXISTS FOR (n:Event) ON (n.category, n.ts)",
    "CREATE INDEX conflict_time IF NOT EXISTS FOR (n:Conflict) ON (n.at)",
    "CREATE FULLTEXT INDEX record_keys IF NOT EXISTS"
    " FOR (n:Merge|Conflict) ON EACH [n.identifiers, n.links, n.dropped]"
    " OPTIONS {indexConfig: {`fulltext.analyzer`: 'standard-no-stop-words'}}",
)

MAX_REDIRECTS = 1000
"""The bound of every MERGED_INTO pattern below (`*0..1000`)."""

AWAIT_INDEXES = "CALL db.awaitIndexes(60)"

WIPE = "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 5000 ROWS"

PING = "RETURN 1"

# --- write transaction: snapshot and locks ---------------------------------------------

CONSENT_STATE = "[k IN keys(p) WHERE k STARTS WITH 'consent_' | [substring(k, 8), p[k]]]"
"""a profile's consent state, kept as its `consent_<purpose>` properties: [purpose, status]
pairs"""

SNAPSHOT = """
CALL () {
  UNWIND $claim.message_ids AS mid
  MERGE (m:Message {id: mid})
  RETURN collect([mid, m.profile_id]) AS seen
}
CALL () {
  UNWIND $claim.keys AS key
  MERGE (i:Identifier {key: key})
  WITH DISTINCT i.profile_id AS pid
  WHERE pid IS NOT NULL
  WITH pid
  ORDER BY pid
  MATCH (p:Profile {id: pid})
  SET p._lock = true
  RETURN collect(p) AS locked
}
CALL (locked) {
  UNWIND $claim.keys AS key
  MATCH (i:Identifier {key: key})
  RETURN collect([key, i.profile_id]) AS owners
}
CALL (locked) {
  UNWIND locked AS p
  OPTIONAL MATCH (i:Identifier {profile_id: p.id})
  WITH p, i.kind AS kind, count(i) AS n
  RETURN collect([p.id, p.created_at, kind, n, {consent}]) AS counts
}
CALL (locked) {
  UNWIND $claim.hashes AS h
  MATCH (:Suppression {hash: h})
  RETURN collect(h) AS suppressed
}
RETURN seen, owners, [p IN locked | p.id] AS locked, counts, suppressed
""".replace("{consent}", CONSENT_STATE)

LOCK_PROFILES = """
UNWIND $profile_ids AS pid
MATCH (p:Profile {id: pid})
SET p._lock = true
WITH collect(p) AS locked
CALL (locked) {
  UNWIND $keys AS key
  MATCH (i:Identifier {key: key})
  RETURN collect([key, i.profile_id]) AS owners
}
CALL (locked) {
  UNWIND locked AS p
  OPTIONAL MATCH (i:Identifier {profile_id: p.id})
  WITH p, i.kind AS kind, count(i) AS n
  RETURN collect([p.id, p.created_at, kind, n, {consent}]) AS counts
}
CALL (locked) {
  UNWIND $hashes AS h
  MATCH (:Suppression {hash: h})
  RETURN collect(h) AS suppressed
}
RETURN owners, counts, suppressed
""".replace("{consent}", CONSENT_STATE)

RELEASE_CLAIMS = """
CALL () {
  UNWIND $changes.release_keys AS key
  MATCH (i:Identifier {key: key})
  WHERE i.profile_id IS NULL
  DELETE i
}
CALL () {
  UNWIND $changes.release_messages AS mid
  MATCH (m:Message {id: mid})
  WHERE m.profile_id IS NULL
  DELETE m
}
"""

LOCK_CURRENT = """
MATCH (:Profile {id: $profile_id})-[:MERGED_INTO*0..1000]->(c:Profile)
WHERE c.merged_into IS NULL
SET c._lock = true
WITH c
MATCH (c)-[:MERGED_INTO*0..1000]->(d:Profile)
WHERE d.merged_into IS NULL
RETURN c.id AS locked, d.id AS current
"""

PROFILE_GRAPH = """
MATCH (p:Profile {id: $profile_id})
WHERE p.merged_into IS NULL
CALL (p) {
  OPTIONAL MATCH (i:Identifier {profile_id: p.id})
  RETURN collect([i.key, i.first_seen]) AS members
}
CALL (p) {
  MATCH (i:Identifier {profile_id: p.id})-[l:LINKED]->(j:Identifier)
  RETURN collect([i.key, j.key, l.source, l.message_id, l.observed_at, l.rule]) AS links
}
CALL (p) {
  MATCH (i:Identifier {profile_id: p.id})
  MATCH (c:Consent {identifier_key: i.key})
  RETURN collect(c {.*}) AS consents
}
RETURN p.created_at AS created_at, members, links, consents
"""

MERGE_RECORD = "MATCH (m:Merge {id: $id}) RETURN m"

# --- write transaction: apply, in ChangeSet field order ----------------------------------
# Each step reads its rows from `$changes.<its name>`; `APPLY` runs them all in order in one
# statement (a step with no rows costs one empty UNWIND), so later steps see earlier ones. The
# rows travel inside one map parameter because Neo4j keys its plan cache on the size of each
# list parameter: with sixteen lists, nearly every change set would be planned afresh.

NEW_PROFILES = """
UNWIND $changes.new_profiles AS r
CREATE (:Profile {id: r.id, created_at: r.created_at})
"""

RESTORE_PROFILES = """
UNWIND $changes.restored_profiles AS pid
MATCH (p:Profile {id: pid})
SET p.merged_into = null
WITH p
OPTIONAL MATCH (p)-[m:MERGED_INTO]->()
DELETE m
"""

SIGHTINGS = """
UNWIND $changes.sightings AS r
MERGE (i:Identifier {key: r.key})
WITH i, r, i.profile_id IS NULL AS fresh, coalesce(i.sources, []) AS known
SET i.kind = r.kind,
    i.profile_id = CASE WHEN fresh THEN r.profile_id ELSE i.profile_id END,
    i.first_seen = CASE WHEN fresh OR r.first < i.first_seen THEN r.first ELSE i.first_seen END,
    i.last_seen = CASE WHEN fresh OR r.last > i.last_seen THEN r.last ELSE i.last_seen END,
    i.sources = known + [s IN r.sources WHERE NOT s IN known],
    i.digest = CASE WHEN fresh THEN r.digest ELSE i.digest END
"""

REDIRECT_PROFILES = """
UNWIND $changes.redirects AS r
MATCH (a:Profile {id: r.absorbed}), (s:Profile {id: r.survivor})
SET a.merged_into = s.id
CREATE (a)-[:MERGED_INTO]->(s)
"""

MOVE_MEMBERS = """
UNWIND $changes.moves AS r
MATCH (i:Identifier {profile_id: r.absorbed})
SET i.profile_id = r.target
"""

ASSIGN = """
UNWIND $changes.assign AS r
MATCH (i:Identifier {key: r.key})
SET i.profile_id = r.profile_id
"""

REMOVE_LINKS = """
UNWIND $changes.removed_links AS r
MATCH (:Identifier {key: r.a})-[l:LINKED]->(:Identifier {key: r.b})
DELETE l
"""

LINKS = """
UNWIND $changes.links AS r
MATCH (a:Identifier {key: r.a}), (b:Identifier {key: r.b})
MERGE (a)-[l:LINKED]->(b)
ON CREATE SET l.source = r.source, l.message_id = r.message_id, l.observed_at = r.observed_at,
              l.rule = r.rule
"""

MERGES = """
UNWIND $changes.merges AS r
CREATE (m:Merge)
SET m = r
"""

UNDONE = """
UNWIND $changes.undone AS r
MATCH (m:Merge {id: r.id})
SET m.undone_by = r.undone_by
"""

CONFLICTS = """
UNWIND $changes.conflicts AS r
CREATE (c:Conflict)
SET c = r
"""

TRAITS = """
UNWIND $changes.traits AS r
CREATE (t:Trait)
SET t = r
"""

EVENTS = """
UNWIND $changes.events AS r
MERGE (e:Event {message_id: r.message_id})
ON CREATE SET e = r
"""

CONSENTS = """
UNWIND $changes.consents AS r
CALL (r) {
  MATCH (i:Identifier {profile_id: r.profile_id})
  SET i.consent_seq = coalesce(i.consent_seq, 0) + 1
  CREATE (:Consent {identifier_key: i.key, purpose: r.purpose, status: r.status, at: r.at,
                    source: r.source, ord: r.ord, seq: i.consent_seq})
}
"""
"""each record numbered (`seq`) after the identifier's last: the order c360 stored them in
(under the profile's lock), which orders an identifier's choices"""

CONSENT_STATES = """
UNWIND $changes.consent_states AS r
MATCH (p:Profile {id: r.profile_id})
SET p += r.states
"""
"""the profile's consent state as the domain decided it: `consent_<purpose>` properties, a
null removing one"""

MESSAGES = """
UNWIND $changes.messages AS r
MERGE (m:Message {id: r.id})
WITH m, r
WHERE m.profile_id IS NULL
SET m.profile_id = r.profile_id, m.at = r.at
"""

DIGESTS = """
UNWIND $changes.digests AS r
MATCH (i:Identifier {key: r.key})
SET i.digest = r.digest
"""

APPLY_STEPS = (
    ("new_profiles", NEW_PROFILES),
    ("restored_profiles", RESTORE_PROFILES),
    ("sightings", SIGHTINGS),
    ("redirects", REDIRECT_PROFILES),
    ("moves", MOVE_MEMBERS),
    ("assign", ASSIGN),
    ("removed_links", REMOVE_LINKS),
    ("links", LINKS),
    ("merges", MERGES),
    ("undone", UNDONE),
    ("conflicts", CONFLICTS),
    ("traits", TRAITS),
    ("events", EVENTS),
    ("consents", CONSENTS),
    ("consent_states", CONSENT_STATES),
    ("messages", MESSAGES),
    ("digests", DIGESTS),
)
"""(parameter, step) in ChangeSet field order; `rows.changes_to_rows` fills them."""

APPLY = "\n".join([*(f"CALL () {{{step}}}" for _, step in APPLY_STEPS), RELEASE_CLAIMS.strip()])
"""A whole change set, then the placeholders still unused (`release_keys`, `release_messages`)."""

# --- reads -------------------------------------------------------------------------------

PROFILE_IDS = """
UNWIND $keys AS key
MATCH (i:Identifier {key: key})
RETURN key, i.profile_id AS profile_id
"""

PROFILE_IDS_BY_DIGEST = """
UNWIND $digests AS digest
MATCH (i:Identifier {digest: digest})
WHERE i.kind = $kind AND i.profile_id IS NOT NULL
RETURN digest, i.profile_id AS profile_id
"""

RESOLVE = """
UNWIND $ids AS pid
MATCH (:Profile {id: pid})-[:MERGED_INTO*0..1000]->(c:Profile)
WHERE c.merged_into IS NULL
RETURN pid, c.id AS current
"""

PROFILES = """
UNWIND $ids AS pid
MATCH (p:Profile {id: pid})
WHERE p.merged_into IS NULL
CALL (p) {
  OPTIONAL MATCH (i:Identifier {profile_id: p.id})
  RETURN collect([i.key, i.first_seen, i.last_seen, i.sources]) AS members
}
RETURN pid, p.created_at AS created_at, members
"""

_CONTEXT = """
CALL (p) {
  OPTIONAL MATCH (i:Identifier {profile_id: p.id})
  RETURN collect([i.key, i.first_seen, i.last_seen, i.sources]) AS members, collect(i.key) AS keys
}
CALL (keys) {
  UNWIND CASE WHEN $traits THEN keys ELSE [] END AS key
  MATCH (t:Trait {identifier_key: key})
  RETURN collect([t.name, t.value, t.source, t.observed_at, t.message_id, t.identifier_key,
                  t.ord]) AS traits
}
CALL (keys) {
  UNWIND CASE WHEN $limit IS NULL THEN [] ELSE keys END AS key
  MATCH (e:Event {identifier_key: key})
  WITH e LIMIT $count
  RETURN count(e) AS total
}
CALL (keys) {
  UNWIND CASE WHEN $limit IS NULL THEN [] ELSE keys END AS key
  MATCH (e:Event {identifier_key: key})
  WITH e
  ORDER BY e.ts DESC, e.message_id DESC
  LIMIT coalesce($limit, 1)
  RETURN collect(e {.*}) AS found
}
RETURN p.id AS pid, p.created_at AS created_at, members, traits, total, found
"""
CONTEXT_BY_KEY = (
    """
MATCH (k:Identifier {key: $key})
WHERE k.profile_id IS NOT NULL
MATCH (p:Profile {id: k.profile_id})
WHERE p.merged_into IS NULL
"""
    + _CONTEXT
)
"""a customer by one of its identifiers, with the parts a request reads of it: its
identifiers, trait values (`$traits`) and first `$limit` events (null: none), these counted
up to `$count`, in one statement"""
CONTEXT_BY_ID = (
    """
MATCH (:Profile {id: $id})-[:MERGED_INTO*0..1000]->(p:Profile)
WHERE p.merged_into IS NULL
"""
    + _CONTEXT
)
"""the same, by a profile id (followed through redirects)"""

LINKS_OF = """
UNWIND $ids AS pid
MATCH (p:Profile {id: pid})
WHERE p.merged_into IS NULL
OPTIONAL MATCH (i:Identifier {profile_id: pid})-[l:LINKED]->(j:Identifier)
RETURN pid, i.key AS a, j.key AS b, l.source AS source, l.message_id AS message_id,
       l.observed_at AS observed_at, l.rule AS rule
"""

TRAITS_OF = """
UNWIND $ids AS pid
MATCH (i:Identifier {profile_id: pid})
MATCH (t:Trait {identifier_key: i.key})
RETURN pid, t.name AS name, t.value AS value, t.source AS source,
       t.observed_at AS observed_at, t.message_id AS message_id, t.identifier_key AS key,
       t.ord AS ord
"""

EVENTS_OF = """
UNWIND $ids AS pid
CALL (pid) {
  MATCH (i:Identifier {profile_id: pid})
  MATCH (e:Event {identifier_key: i.key})
  WHERE $types IS NULL OR e.type IN $types
  WITH e LIMIT $count
  RETURN count(e) AS total
}
CALL (pid) {
  MATCH (i:Identifier {profile_id: pid})
  MATCH (e:Event {identifier_key: i.key})
  WHERE ($types IS NULL OR e.type IN $types)
    AND ($ts IS NULL OR e.ts < $ts OR (e.ts = $ts AND e.message_id < $message_id))
  WITH e
  ORDER BY e.ts DESC, e.message_id DESC
  LIMIT $limit
  RETURN collect(e {.*}) AS found
}
RETURN pid, total, found
"""

MERGE_HISTORY = """
UNWIND $ids AS pid
CALL (pid) {
  MATCH (m:Merge {survivor: pid}) RETURN m
  UNION
  MATCH (m:Merge {absorbed: pid}) RETURN m
}
RETURN pid, m
"""

CONFLICTS_OF = """
UNWIND $ids AS pid
MATCH (c:Conflict {profile_id: pid})
RETURN c
"""

CONSENTS_OF = """
UNWIND $ids AS pid
MATCH (i:Identifier {profile_id: pid})
MATCH (c:Consent {identifier_key: i.key})
RETURN pid, c
"""

IDENTIFIER_EXISTS = "MATCH (i:Identifier {key: $key}) RETURN i.key"

IDENTIFIER_KEYS = """
MATCH (i:Identifier)
WHERE i.key > $after AND i.profile_id IS NOT NULL
RETURN i.key AS key
ORDER BY key
LIMIT $first
"""


def shortest_path(max_hops: int) -> str:
    """The shortest-path query; Cypher takes the bound only as a literal, so it must be an int."""
    if type(max_hops) is not int or max_hops < 1:
        raise ValueError("max_hops must be a positive int")
    return f"""
MATCH (a:Identifier {{key: $a}}), (b:Identifier {{key: $b}})
MATCH p = shortestPath((a)-[:LINKED*..{max_hops}]-(b))
RETURN [n IN nodes(p) | n.key] AS keys,
       [l IN relationships(p) | [l.source, l.message_id, l.observed_at, l.rule]] AS links
"""
