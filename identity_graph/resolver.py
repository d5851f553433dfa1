"""Merge decisions: pure functions from what the store holds to what it should change.

Deterministic and explainable, after Segment's identity resolution: identifiers seen
together are linked and their profiles merged, unless a per-kind limit would break; then the
lowest-priority identifier is dropped from the observation and the decision retried.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import networkx as nx

from identity_graph.model import (
    EVENT_TYPES,
    PURPOSES,
    ConsentRecord,
    ConsentStatus,
    Identifier,
    Link,
    MergeConflict,
    MergeKind,
    MergeRecord,
    MessageType,
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
from identity_graph.survivorship import consent_state, joined_consent

NewId = Callable[[], str]


class _TimeOrderedIds:
    """Ids of 32 hex digits: the time in milliseconds (12 digits), then 80 random bits.

    Like UUIDv7, ids made later sort later, so new rows land at the end of the indexes
    keyed by them instead of on random pages. The random part is read from the OS 256 ids
    at a time (one system call instead of one per id); safe across threads, and a forked
    child reads its own (it must not repeat its parent's).
    """

    BLOCK = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hex = ""
        self._at = 0
        _ID_MAKERS.add(self)

    def _forget(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._hex = ""
        self._at = 0

    def __call__(self) -> str:
        with self._lock:
            prefix = self._prefix()
            return prefix + self._bits(32 - len(prefix))

    def _prefix(self) -> str:
        """What orders the ids: the millisecond (under the lock)."""
        return f"{time.time_ns() // 1_000_000:012x}"

    def _bits(self, n: int) -> str:
        """`n` random hex digits from the block (under the lock)."""
        if self._at + n > len(self._hex):
            self._hex = os.urandom(10 * self.BLOCK).hex()
            self._at = 0
        start = self._at
        self._at = start + n
        return self._hex[start : start + n]


class MonotonicIds(_TimeOrderedIds):
    """Time-ordered ids that also sort in the order they were made within a process: the
    millisecond never goes back (the wall clock may) and ids of one millisecond carry a
    rising sequence before their random bits. What a receiver must see in order (one
    customer's audience changes, and their deliveries) is ordered by these."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0
        self._seq = 0

    def _forget(self) -> None:
        super()._forget()
        self._last = 0
        self._seq = 0

    def _prefix(self) -> str:
        now = time.time_ns() // 1_000_000
        if now > self._last:
            self._last, self._seq = now, 0
        else:
            self._seq += 1
            if self._seq > 0xFFFF:  # 65,536 ids in one millisecond: borrow the next
                self._last, self._seq = self._last + 1, 0
        return f"{self._last:012x}{self._seq:04x}"


_ID_MAKERS: weakref.WeakSet[_TimeOrderedIds] = weakref.WeakSet()


def _forget_random_bits() -> None:
    for ids in list(_ID_MAKERS):
        ids._forget()


os.register_at_fork(after_in_child=_forget_random_bits)

new_id: NewId = _TimeOrderedIds()
"""a new id for a profile, merge or conflict: time-ordered, unguessable past its time"""


class Outcome(NamedTuple):
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
    """the snapshot's, then every identifier placed so far in the batch"""
    profiles: dict[str, ProfileState] = field(default_factory=dict)
    redirect: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.profile_of.update(self.snapshot.profile_of)

    def profile(self, key: str) -> str | None:
        pid = self.profile_of.get(key)
        while pid in self.redirect:
            pid = self.redirect[pid]
        return pid

    def state(self, pid: str) -> ProfileState:
        return self.profiles.get(pid) or self.snapshot.profiles[pid]


_CO_OBSERVED = {t: f"co-observed:{t.value}" for t in MessageType}
"""the rule of a link between identifiers seen together in a message of each type"""


def usable_identifiers(observation: Observation, rules: Rules) -> list[Identifier]:
    """The observation's identifiers less blocked values, highest priority first.

    >>> from datetime import datetime, timezone
    >>> from identity_graph.model import MessageType
    >>> obs = Observation("m1", datetime.now(timezone.utc), "web", MessageType.IDENTIFY,
    ...                   (Identifier("anonymous_id", "null"), Identifier("user_id", "u1")))
    >>> [i.key for i in usable_identifiers(obs, Rules.default())]
    ['user_id:u1']
    """
    kept = rules.unblocked(observation.identifiers)
    if len(kept) < 2:
        return kept
    priority = rules.priorities
    ranked = {(priority[i.kind], i.kind, i.value): i for i in kept}
    return [ranked[rank] for rank in sorted(ranked)]


def plan_batch(
    observations: Sequence[Observation],
    snapshot: Snapshot,
    rules: Rules,
    *,
    make_id: NewId = new_id,
    usable: Sequence[list[Identifier]] | None = None,
    digest: Callable[[str], str] | None = None,
) -> tuple[list[ChangeSet], list[Outcome]]:
    """Decide a batch of observations against a snapshot, in order.

    Returns the change sets to apply in order in one transaction. A consent choice is stored
    for the identifiers its profile holds at that point of the batch, so a change set ends
    after each observation that carries one: later merges in the batch come after it.
    `digest`, if given, makes the digest stored with each new identifier's value.
    `usable`, if given, is `usable_identifiers` of each observation, already computed.
    """
    if usable is None:
        usable = [usable_identifiers(o, rules) for o in observations]
    limits = {kind: rule.limit for kind, rule in rules.kinds.items()}
    overlay = _Overlay(snapshot)
    changes = ChangeSet()
    batches = [changes]
    seen = dict(snapshot.seen)
    outcomes = []
    for observation, kept in zip(observations, usable, strict=True):
        if observation.message_id in seen:
            outcomes.append(
                Outcome(observation.message_id, "duplicate", seen[observation.message_id])
            )
            continue
        outcome = _plan_one(observation, kept, overlay, limits, changes, make_id, digest)
        if outcome.profile_id is not None:
            seen[observation.message_id] = outcome.profile_id
        outcomes.append(outcome)
        if changes.consents:
            changes = ChangeSet()
            batches.append(changes)
    return [c for c in batches if c], outcomes


def _counts(
    kinds: Sequence[str], owners: Sequence[str | None], overlay: _Overlay
) -> tuple[set[str], dict[str, int]]:
    """The profiles the identifiers belong to, and the identifiers of each kind that
    joining them all would give."""
    profiles: set[str] = set()
    counts: dict[str, int] = {}
    for kind, pid in zip(kinds, owners, strict=True):
        if pid is None:
            counts[kind] = counts.get(kind, 0) + 1
        else:
            profiles.add(pid)
    for pid in profiles:
        for kind, n in overlay.state(pid).kind_counts.items():
            counts[kind] = counts.get(kind, 0) + n
    return profiles, counts


def _plan_one(
    obs: Observation,
    kept: Sequence[Identifier],
    overlay: _Overlay,
    limits: dict[str, int],
    changes: ChangeSet,
    make_id: NewId,
    digest: Callable[[str], str] | None = None,
) -> Outcome:
    if not kept:
        return Outcome(obs.message_id, "dropped", None)
    keys = [i.key for i in kept]
    kinds = [i.kind for i in kept]
    owner_of = overlay.profile_of.get
    redirect = overlay.redirect
    owners: list[str | None] = []
    for key in keys:
        pid = owner_of(key)
        while pid in redirect:
            pid = redirect[pid]
        owners.append(pid)
    dropped: list[str] = []
    reasons: list[str] = []
    involved = {pid for pid in owners if pid is not None}
    if None in owners or len(involved) > 1:
        # new identifiers or several profiles: the counts may break a limit
        while True:
            involved, counts = _counts(kinds, owners, overlay)
            broken = sorted(k for k, n in counts.items() if n > limits[k])
            if not broken or len(keys) == 1:
                break
            kinds.pop()
            owners.pop()
            victim = keys.pop()
            dropped.append(victim)
            reasons.extend(
                f"{victim} dropped: joining would give {counts[k]} {k} (limit {limits[k]})"
                for k in broken
            )
    center = keys[0]
    at = obs.timestamp
    if len(involved) == 1:
        survivor = next(iter(involved))
        absorbed_ids: list[str] = []
    elif involved:
        created = sorted((overlay.state(pid).created_at, pid) for pid in involved)
        survivor = created[0][1]
        absorbed_ids = [pid for _, pid in created[1:]]
        if owners[0] in absorbed_ids:
            # the others are linked to the center, not to the survivor: its profile joins
            # first, so that each merge's links join the absorbed profile to what the
            # survivor holds by then, and undoing the merges last to first restores each
            absorbed_ids.remove(owners[0])
            absorbed_ids.insert(0, owners[0])
    else:
        survivor = make_id()
        absorbed_ids = []
        changes.new_profiles.append((survivor, at))
        overlay.profiles[survivor] = ProfileState(survivor, at, {})
    center_owner = owners[0]
    links = [
        Link(center, key, obs.source, obs.message_id, at, _CO_OBSERVED[obs.type])
        for key, owner in zip(keys[1:], owners[1:], strict=True)
        if owner is None or owner != center_owner
    ]
    changes.links.extend(links)
    merge_ids = []
    grows = bool(absorbed_ids) or None in owners
    # the survivor's counts change only if it grows; most observations leave them alone
    state = overlay.state(survivor) if grows else None
    survivor_counts = dict(state.kind_counts) if state is not None else {}
    # a new identifier sides with the center (or, if the center is new, the survivor)
    home = center_owner if center_owner is not None else survivor
    side = (
        {key: owner or home for key, owner in zip(keys, owners, strict=True)}
        if absorbed_ids
        else {}
    )
    consent = overlay.state(survivor).consent if absorbed_ids or obs.consent else None
    joined = {survivor}
    for absorbed in absorbed_ids:
        cause = tuple(
            link
            for link in links
            if (side[link.a] == absorbed and side[link.b] in joined)
            or (side[link.b] == absorbed and side[link.a] in joined)
        )
        joined.add(absorbed)
        record = MergeRecord(
            id=make_id(),
            at=at,
            kind=MergeKind.MERGE,
            survivor=survivor,
            absorbed=absorbed,
            links=cause,
            identifiers=tuple(
                sorted({k for x in cause for k in (x.a, x.b) if side[k] == absorbed})
            ),
            message_id=obs.message_id,
        )
        changes.reassign.append((absorbed, survivor))
        changes.merges.append(record)
        merge_ids.append(record.id)
        for kind, n in overlay.state(absorbed).kind_counts.items():
            survivor_counts[kind] = survivor_counts.get(kind, 0) + n
        overlay.redirect[absorbed] = survivor
    sightings = changes.sightings
    profile_of = overlay.profile_of
    for key, kind, owner in zip(keys, kinds, owners, strict=True):
        if owner is None:
            survivor_counts[kind] = survivor_counts.get(kind, 0) + 1
            profile_of[key] = survivor
        stamp = digest(key[len(kind) + 1 :]) if digest is not None and owner is None else None
        sightings.append(IdentifierSighting(key, survivor, at, obs.source, owner is None, stamp))
    if state is not None:
        overlay.profiles[survivor] = state._replace(kind_counts=survivor_counts)
    if consent is not None:
        _decide_consent(obs, survivor, consent, absorbed_ids, overlay, changes)
    conflict = None
    if dropped:
        conflict = MergeConflict(
            id=make_id(),
            at=at,
            message_id=obs.message_id,
            profile_id=survivor,
            dropped=tuple(dropped),
            reason="; ".join(reasons),
        )
        changes.conflicts.append(conflict)
    for name, value in obs.traits.items():
        changes.traits.append(TraitValue(name, value, obs.source, at, obs.message_id, center))
    if obs.event is not None and obs.type in EVENT_TYPES:
        changes.events.append(
            StoredEvent(
                message_id=obs.message_id,
                identifier_key=center,
                type=obs.event.type,
                name=obs.event.name,
                category=obs.event.category,
                properties=obs.event.properties,
                timestamp=at,
                source=obs.source,
            )
        )
    for purpose, status in obs.consent.items():
        changes.consents.append(ProfileConsent(survivor, purpose, status, at, obs.source))
    changes.messages.append((obs.message_id, survivor, at))
    return Outcome(
        obs.message_id,
        "applied",
        survivor,
        tuple(merge_ids),
        conflict.id if conflict else None,
    )


def _decide_consent(
    obs: Observation,
    survivor: str,
    held: Mapping[str, ConsentStatus],
    absorbed: Sequence[str],
    overlay: _Overlay,
    changes: ChangeSet,
) -> None:
    """The survivor's consent state after the observation: the sides' states joined, then
    the observation's choices (stored for every identifier it holds, so they supersede)."""
    state = joined_consent(held, *(overlay.state(pid).consent for pid in absorbed))
    state.update(obs.consent)
    changed = {p: s for p, s in state.items() if held.get(p) is not s}
    if changed:
        changes.consent_states.setdefault(survivor, {}).update(changed)
    overlay.profiles[survivor] = overlay.state(survivor)._replace(consent=state)


def _consent_after_split(graph: ProfileGraph, changes: ChangeSet) -> None:
    """Decide anew the consent state of each profile a split leaves, from the records of
    the identifiers it holds."""
    if not graph.consents:
        return
    owner = {m.key: changes.assign.get(m.key, graph.profile_id) for m in graph.members}
    records: dict[str, list[ConsentRecord]] = {pid: [] for pid in set(owner.values())}
    for record in graph.consents:
        pid = owner.get(record.identifier_key)
        if pid is not None:
            records[pid].append(record)
    for pid, held in records.items():
        state = consent_state(held)
        changes.consent_states[pid] = {p: state.get(p) for p in PURPOSES}


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

    The side holding the absorbed profile's ends of those links (`record.identifiers`) gets
    the absorbed id back; the side holding their other ends keeps the profile id; any further
    side gets a new id. Nothing moves if later links still join the two sides.
    """
    cut = [(link.a, link.b) for link in record.links]
    groups = components(graph, without=cut)
    absorbed_ends = set(record.identifiers)
    survivor_ends = {k for link in record.links for k in (link.a, link.b)} - absorbed_ends
    absorbed_group = next((g for g in groups if absorbed_ends & set(g)), None)
    kept_group = next((g for g in groups if survivor_ends & set(g)), None)
    if absorbed_group is None or kept_group is None:
        # a record without its absorbed ends: the oldest side keeps the id, the next returns
        kept_group = groups[0]
        absorbed_group = groups[1] if len(groups) > 1 else groups[0]
    moved = [] if absorbed_group is kept_group else absorbed_group
    undo = MergeRecord(
        id=make_id(),
        at=at,
        kind=MergeKind.UNDO,
        survivor=graph.profile_id,
        absorbed=record.absorbed,
        links=record.links,
        identifiers=tuple(moved),
        message_id=actor,
        undoes=record.id,
    )
    changes = ChangeSet(removed_links=cut, merges=[undo], undone=[(record.id, undo.id)])
    if not moved:
        return changes
    changes.restored_profiles.append(record.absorbed)
    changes.assign.update(dict.fromkeys(moved, record.absorbed))
    for group in groups:
        if group is not kept_group and group is not absorbed_group:
            pid = make_id()
            changes.new_profiles.append((pid, at))
            changes.assign.update(dict.fromkeys(group, pid))
    _consent_after_split(graph, changes)
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
    cut = [(link.a, link.b) for link in graph.links if (link.a in detached) != (link.b in detached)]
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
    _consent_after_split(graph, changes)
    return changes
