"""The embedded store's memory of consent: each current profile's effective status per
purpose, as the domain decided it, read from the tables at start."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping

from identity_graph.model import ConsentStatus
from identity_graph.store import ChangeSet, ProfileState


class ConsentStates:
    """Each current profile's consent state in memory (those with one), as the domain
    decided it (`ChangeSet.consent_states`): a merge joins the states of its sides."""

    def __init__(self) -> None:
        self.of: dict[str, dict[str, ConsentStatus]] = {}

    def load(self, db: sqlite3.Connection, current: Mapping[str, object]) -> None:
        """Read the states of the `current` profiles from the tables."""
        of: dict[str, dict[str, ConsentStatus]] = {}
        for pid, purpose, status in db.execute(
            "SELECT profile_id, purpose, status FROM profile_consents"
        ):
            if pid in current:
                of.setdefault(pid, {})[purpose] = ConsentStatus(status)
        self.of = of

    def apply(self, c: ChangeSet, current: Mapping[str, object]) -> None:
        """Change memory as `c` changes the tables (after the partition took it)."""
        for absorbed, _ in c.reassign:
            self.of.pop(absorbed, None)
        for erasure in c.erasures:
            for pid in erasure.scope.profile_ids:
                self.of.pop(pid, None)
        for pid, changed in c.consent_states.items():
            if pid not in current:
                continue  # absorbed later in the same change set
            state = {**self.of.get(pid, {}), **changed}
            kept = {purpose: status for purpose, status in state.items() if status is not None}
            if kept:
                self.of[pid] = kept
            else:
                self.of.pop(pid, None)

    def states(self, profiles: Mapping[str, ProfileState]) -> Mapping[str, ProfileState]:
        """The partition's profile states with their consent."""
        return _WithConsent(profiles, self.of)


class _WithConsent(Mapping[str, ProfileState]):
    """Profile states with their consent added on first use, as the partition's are made."""

    def __init__(
        self,
        profiles: Mapping[str, ProfileState],
        consent: Mapping[str, Mapping[str, ConsentStatus]],
    ) -> None:
        self._profiles = profiles
        self._consent = consent

    def __getitem__(self, pid: str) -> ProfileState:
        state = self._profiles[pid]
        consent = self._consent.get(pid)
        return state if consent is None else state._replace(consent=consent)

    def __iter__(self) -> Iterator[str]:
        return iter(self._profiles)

    def __len__(self) -> int:
        return len(self._profiles)
