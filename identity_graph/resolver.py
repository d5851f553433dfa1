"""Merge decisions: pure functions from what the store holds to what it should change.

Deterministic and explainable, after Segment's identity resolution: identifiers seen
together are linked and their profiles merged, unless a per-kind limit would break; then the
lowest-priority identifier is dropped from the observation and the decision retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import networkx as nx

from identity_graph.model import (
    EVENT_TYPES,
    Identifier,
    Link,
    MergeConflict,
    MergeKind,
    MergeRecord,
    Observation,
    StoredEvent,
    TraitValue,
)
from identity_graph.rules import Rules
from identity_graph.store import (
    ChangeSet,
    IdentifierSighting,
    ProfileConsent,
    ProfileGraph,
    ProfileState,
    Snapshot,
)

NewId = Callable[[], str]


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one observation."""

    message_id: str
    status: str
    """`applied`, `duplicate` or `dropped` (every identifier was blocked)"""
    profile_id: str | None
    merges: tuple[str, ...] = ()
    conflict: str | None = None


@dataclass
class _Overlay:
    """The snapshot plus the decisions already made earlier in the same batch."""

    snapshot: Snapshot
    profile_of: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, ProfileState] = field(default_factory=dict)
    redirect: dict[str, str] = field(default_factory=dict)

    def profile(self, key: str) -> str | None:
        pid = self.profile_of.get(key) or self.snapshot.profile_of.get(key)
        while pid is not None and pid in self.redirect:
            pid = self.redirect[pid]
        return pid

    def state(self, pid: str) -> ProfileState:
        return self.profiles.get(pid) or self.snapshot.profiles[pid]


def usable_identifiers(observation: Observation, rules: Rules) -> list[Identifier]:
    """The observation's identifiers less blocked values, highest priority first.

    >>> from datetime import datetime, timezone
    >>> from identity_graph.model import MessageType
    >>> obs = Observation("m1", datetime.now(timezone.utc), "web", MessageType.IDENTIFY,
    ...                   (Identifier("anonymous_id", "null"), Identifier("user_id", "u1")))
    >>> [i.key for i in usable_identifiers(obs, Rules.default())]
    ['user_id:u1']
    """
    unique = {i for i in observation.identifiers if not rules.is_blocked(i.value)}
    return sorted(unique, key=lambda i: (rules.priority(i.kind), i.kind, i.value))


def plan_batch(
    observations: Sequence[Observation],
    snapshot: Snapshot,
    rules: Rules,
    *,
    make_id: NewId = new_id,
) -> tuple[list[ChangeSet], list[Outcome]]:
    """Decide a batch of observations against a snapshot, in order.

    Returns the change sets to apply in order in one transaction. A consent choice is stored
    for the identifiers its profile holds at that point of the batch, so a change set ends
    after each observation that carries one: later merges in the batch come after it.
    """
    overlay = _Overlay(snapshot)
    changes = ChangeSet()
    batches = [changes]
    seen = dict(snapshot.seen)
    outcomes = []
    for observation in observations:
        if observation.message_id in seen:
            outcomes.append(
                Outcome(observation.message_id, "duplicate", seen[observation.message_id])
            )
            continue
        outcome = _plan_one(observation, overlay, rules, changes, make_id)
        if outcome.profile_id is not None:
            seen[observation.message_id] = outcome.profile_id
        outcomes.append(outcome)
        if changes.consents:
            changes = ChangeSet()
            batches.append(changes)
    return [c for c in batches if c], outcomes


def _counts(keys: Iterable[Identifier], overlay: _Overlay) -> tuple[set[str], dict[str, int]]:
    profiles: set[str] = set()
    counts: dict[str, int] = {}
    for identifier in keys:
        pid = overlay.profile(identifier.key)
        if pid is None:
            counts[identifier.kind] = counts.get(identifier.kind, 0) + 1
        else:
            profiles.add(pid)
    for pid in profiles:
        for kind, n in overlay.state(pid).kind_counts.items():
            counts[kind] = counts.get(kind, 0) + n
    return profiles, counts


def _plan_one(
    obs: Observation, overlay: _Overlay, rules: Rules, changes: ChangeSet, make_id: NewId
) -> Outcome:
    kept = usable_identifiers(obs, rules)
    if not kept:
        return Outcome(obs.message_id, "dropped", None)
    dropped: list[Identifier] = []
    reasons: list[str] = []
    while True:
        involved, counts = _counts(kept, overlay)
        broken = sorted(k for k, n in counts.items() if n > rules.limit(k))
        if not broken or len(kept) == 1:
            break
        victim = kept.pop()
        dropped.append(victim)
        reasons.extend(
            f"{victim.key} dropped: joining would give {counts[k]} {k} (limit {rules.limit(k)})"
            for k in broken
        )
    center = kept[0]
    created = [(pid, overlay.state(pid).created_at) for pid in involved]
    created.sort(key=lambda p: (p[1], p[0]))
    if created:
        survivor = created[0][0]
    else:
        survivor = make_id()
        changes.new_profiles.append((survivor, obs.timestamp))
        overlay.profiles[survivor] = ProfileState(survivor, obs.timestamp, {})
    before = {i.key: overlay.profile(i.key) for i in kept}
    rule = f"co-observed:{obs.type.value}"
    links = [
        Link(center.key, other.key, obs.source, obs.message_id, obs.timestamp, rule)
        for other in kept[1:]
        if before[other.key] is None or before[other.key] != before[center.key]
    ]
    changes.links.extend(links)
    merge_ids = []
    survivor_counts = dict(overlay.state(survivor).kind_counts)
    for absorbed, _ in created[1:]:
        cause = tuple(
            link for link in links if absorbed in (before.get(link.a), before.get(link.b))
        )
        record = MergeRecord(
            id=make_id(),
            at=obs.timestamp,
            kind=MergeKind.MERGE,
            survivor=survivor,
            absorbed=absorbed,
            links=cause,
            message_id=obs.message_id,
        )
        changes.reassign.append((absorbed, survivor))
        changes.merges.append(record)
        merge_ids.append(record.id)
        for kind, n in overlay.state(absorbed).kind_counts.items():
            survivor_counts[kind] = survivor_counts.get(kind, 0) + n
        overlay.redirect[absorbed] = survivor
    for identifier in kept:
        if before[identifier.key] is None:
            survivor_counts[identifier.kind] = survivor_counts.get(identifier.kind, 0) + 1
            overlay.profile_of[identifier.key] = survivor
        changes.sightings.append(
            IdentifierSighting(identifier.key, survivor, obs.timestamp, obs.source)
        )
    overlay.profiles[survivor] = ProfileState(
        survivor, overlay.state(survivor).created_at, survivor_counts
    )
    conflict = None
    if dropped:
        conflict = MergeConflict(
            id=make_id(),
            at=obs.timestamp,
            message_id=obs.message_id,
            profile_id=survivor,
            dropped=tuple(i.key for i in dropped),
            reason="; ".join(reasons),
        )
        changes.conflicts.append(conflict)
    for name, value in obs.traits.items():
        changes.traits.append(
            TraitValue(name, value, obs.source, obs.timestamp, obs.message_id, center.key)
        )
    if obs.event is not None and obs.type in EVENT_TYPES:
        changes.events.append(
            StoredEvent(
                message_id=obs.message_id,
                identifier_key=center.key,
                type=obs.event.type,
                name=obs.event.name,
                category=obs.event.category,
                properties=obs.event.properties,
                timestamp=obs.timestamp,
                source=obs.source,
            )
        )
    for purpose, status in obs.consent.items():
        changes.consents.append(
            ProfileConsent(survivor, purpose, status, obs.timestamp, obs.source)
        )
    changes.messages.append((obs.message_id, survivor, obs.timestamp))
    return Outcome(
        obs.message_id,
        "applied",
        survivor,
        tuple(merge_ids),
        conflict.id if conflict else None,
    )


def components(graph: ProfileGraph, *, without: Iterable[tuple[str, str]] = ()) -> list[list[str]]:
    """The profile's identifiers grouped by the links left after removing `without`,
    each group oldest identifier first, the group holding the oldest identifier first.

    >>> from datetime import datetime, timezone
    >>> from identity_graph.store import Member
    >>> t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    >>> g = ProfileGraph("p", t, (Member("a", t), Member("b", t), Member("c", t)),
    ...                  (Link("a", "b", "s", "m1", t, "r"), Link("b", "c", "s", "m2", t, "r")))
    >>> components(g, without=[("c", "b")])
    [['a', 'b'], ['c']]
    """
    removed = {frozenset(pair) for pair in without}
    order = {m.key: (m.first_seen, m.key) for m in graph.members}
    g: nx.Graph[str] = nx.Graph()
    g.add_nodes_from(order)
    g.add_edges_from(
        (link.a, link.b)
        for link in graph.links
        if frozenset((link.a, link.b)) not in removed and link.a in order and link.b in order
    )
    groups = [sorted(c, key=order.__getitem__) for c in nx.connected_components(g)]
    groups.sort(key=lambda group: order[group[0]])
    return groups


def plan_undo(
    record: MergeRecord, graph: ProfileGraph, *, at: datetime, actor: str, make_id: NewId = new_id
) -> ChangeSet:
    """Remove the links that caused a merge and split the profile where they held it.

    The side holding the profile's oldest identifier keeps the profile id; the next side
    gets the absorbed id back; any further side gets a new id.
    """
    cut = [(link.a, link.b) for link in record.links]
    groups = components(graph, without=cut)
    undo = MergeRecord(
        id=make_id(),
        at=at,
        kind=MergeKind.UNDO,
        survivor=graph.profile_id,
        absorbed=record.absorbed,
        links=record.links,
        identifiers=tuple(k for group in groups[1:] for k in group),
        message_id=actor,
        undoes=record.id,
    )
    changes = ChangeSet(removed_links=cut, merges=[undo], undone=[(record.id, undo.id)])
    for index, group in enumerate(groups[1:]):
        pid = record.absorbed if index == 0 else make_id()
        if index == 0:
            changes.restored_profiles.append(pid)
        else:
            changes.new_profiles.append((pid, at))
        changes.assign.update(dict.fromkeys(group, pid))
    return changes


def plan_unmerge(
    graph: ProfileGraph,
    keys: Sequence[str],
    *,
    at: datetime,
    actor: str,
    make_id: NewId = new_id,
) -> ChangeSet:
    """Detach `keys` from the profile into one new profile.

    Links across the cut are removed. If the detached identifiers are not linked among
    themselves, links with rule `unmerge` (the operator's decision) join them. If the rest
    falls apart, its side holding the oldest identifier keeps the id and the others get
    new ids, so every profile stays one connected set of identifiers.
    """
    detached = set(keys)
    rest_members = [m for m in graph.members if m.key not in detached]
    cut = [
        (link.a, link.b)
        for link in graph.links
        if (link.a in detached) != (link.b in detached)
    ]
    new_pid = make_id()
    changes = ChangeSet(removed_links=cut, new_profiles=[(new_pid, at)])
    changes.assign.update(dict.fromkeys(sorted(detached), new_pid))
    inner = ProfileGraph(
        graph.profile_id,
        graph.created_at,
        tuple(m for m in graph.members if m.key in detached),
        graph.links,
    )
    detached_groups = components(inner, without=cut)
    anchor = detached_groups[0][0]
    for group in detached_groups[1:]:
        changes.links.append(Link(anchor, group[0], "operator", actor, at, "unmerge"))
    rest = ProfileGraph(graph.profile_id, graph.created_at, tuple(rest_members), graph.links)
    for group in components(rest, without=cut)[1:]:
        pid = make_id()
        changes.new_profiles.append((pid, at))
        changes.assign.update(dict.fromkeys(group, pid))
    changes.merges.append(
        MergeRecord(
            id=make_id(),
            at=at,
            kind=MergeKind.UNMERGE,
            survivor=graph.profile_id,
            absorbed=new_pid,
            links=tuple(link for link in graph.links if (link.a, link.b) in set(cut)),
            identifiers=tuple(sorted(detached)),
            message_id=actor,
        )
    )
    return changes
