"""The embedded store's memory: the partition of identifiers into profiles.

Each identifier's profile, each profile's identifiers, when each profile was made, and
where a merged profile went; read from the tables at start and changed by each write as it
is planned. The links between identifiers stay in the tables (see `store`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping

from identity_graph.adapters.embedded.sql import kind_of
from identity_graph.codec import from_micros, to_micros
from identity_graph.errors import StoreUnavailable
from identity_graph.store import ChangeSet, ProfileState

_COUNTS_KEPT_FROM = 32
"""profiles with at least this many identifiers keep their kind counts in memory"""


def _count_kinds(keys: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in keys:
        kind = key[: key.find(":")]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


class Partition:
    """Who belongs together, in memory."""

    def __init__(self) -> None:
        self.profile_of: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}
        self.created: dict[str, int] = {}
        self.redirect: dict[str, str] = {}
        self._kind_counts: dict[str, dict[str, int]] = {}
        """kind counts of the profiles with many members, kept up to date as they change"""

    def load(self, db: sqlite3.Connection) -> None:
        """Read the partition from the tables; memory is replaced once all of it is read."""
        created: dict[str, int] = {}
        members: dict[str, set[str]] = {}
        redirect: dict[str, str] = {}
        profile_of: dict[str, str] = {}
        for pid, made, merged_into in db.execute(
            "SELECT id, created_at, merged_into FROM profiles"
        ):
            created[pid] = made
            if merged_into is None:
                members[pid] = set()
            else:
                redirect[pid] = merged_into
        for key, pid in db.execute("SELECT key, profile_id FROM identifiers"):
            profile_of[key] = pid
            members[pid].add(key)
        self.created, self.members, self.redirect = created, members, redirect
        self.profile_of, self._kind_counts = profile_of, {}

    def current(self, pid: str) -> str | None:
        """The profile `pid` is now (following merges), or None if there is none."""
        hops = 0
        while pid in self.redirect:
            pid = self.redirect[pid]
            hops += 1
            if hops > 10_000:
                raise StoreUnavailable("redirect cycle in profiles")
        return pid if pid in self.members else None

    def kind_counts(self, pid: str) -> dict[str, int]:
        """How many identifiers of each kind the current profile `pid` holds."""
        cached = self._kind_counts.get(pid)
        if cached is not None:
            return dict(cached)
        keys = self.members[pid]
        counts = _count_kinds(keys)
        if len(keys) >= _COUNTS_KEPT_FROM:
            self._kind_counts[pid] = dict(counts)
        return counts

    def states(self, ids: set[str]) -> Mapping[str, ProfileState]:
        """The states of the profiles `ids`, each made on first use."""
        return _States(self, ids)

    def apply(self, c: ChangeSet) -> None:
        """Change memory as the change set `c` changes the tables."""
        members = self.members
        profile_of = self.profile_of
        counted = self._kind_counts
        for pid, t in c.new_profiles:
            self.created[pid] = to_micros(t)
            members[pid] = set()
        for pid in c.restored_profiles:
            self.redirect.pop(pid, None)
            members.setdefault(pid, set())
            counted.pop(pid, None)
        for s in c.sightings:
            if s.new:
                profile_of[s.key] = s.profile_id
                members[s.profile_id].add(s.key)
                counts = counted.get(s.profile_id)
                if counts is not None:
                    kind = kind_of(s.key)
                    counts[kind] = counts.get(kind, 0) + 1
        for absorbed, survivor in c.reassign:
            gone = counted.pop(absorbed, None)
            kept = counted.get(survivor)
            if kept is not None:
                for kind, n in (gone or _count_kinds(members[absorbed])).items():
                    kept[kind] = kept.get(kind, 0) + n
            moved = members.pop(absorbed)
            for key in moved:
                profile_of[key] = survivor
            members[survivor] |= moved
            self.redirect[absorbed] = survivor
        for key, pid in c.assign.items():
            counted.pop(profile_of[key], None)
            counted.pop(pid, None)
            members[profile_of[key]].discard(key)
            profile_of[key] = pid
            members[pid].add(key)
        for erasure in c.erasures:
            scope = erasure.scope
            for key in scope.keys:
                owner = profile_of.pop(key, None)
                if owner is not None:
                    members.get(owner, set()).discard(key)
            for pid in scope.profile_ids:
                members.pop(pid, None)
                self.created.pop(pid, None)
                self.redirect.pop(pid, None)
                counted.pop(pid, None)


class _States(Mapping[str, ProfileState]):
    """A snapshot's profile states, made from memory on first use: most observations
    touch one profile and add nothing to it, and never need its state."""

    def __init__(self, partition: Partition, ids: set[str]) -> None:
        self._partition = partition
        self._ids = ids
        self._made: dict[str, ProfileState] = {}

    def __getitem__(self, pid: str) -> ProfileState:
        state = self._made.get(pid)
        if state is None:
            if pid not in self._ids:
                raise KeyError(pid)
            partition = self._partition
            state = ProfileState(
                pid, from_micros(partition.created[pid]), partition.kind_counts(pid)
            )
            self._made[pid] = state
        return state

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)
