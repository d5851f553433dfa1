"""The writes applied in memory that the tables do not hold yet, and what waits on them.

Reads of a profile wait for the uncopied writes that touched it (read-your-writes per
customer); a write's message ids are looked up here until the tables hold them; ingest waits
while more than `MAX_BACKLOG` observations are uncopied.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from identity_graph.privacy import Erasure, ErasureReceipt
from identity_graph.store import ChangeSet

MAX_BACKLOG = 250_000
"""observations applied but not yet in the tables before ingest waits"""

_PROFILE_ID = operator.attrgetter("profile_id")


@dataclass(slots=True)
class _Journalled:
    """A write in the journal, not yet copied to the tables."""

    seq: int
    messages: list[tuple[str, str]]
    """(message id, profile id) of the observations it applied"""
    weight: int
    """observations it holds (at least 1), counted against `MAX_BACKLOG`"""


class Backlog:
    """Where copying stands: the last write applied, the last copied, and those between."""

    def __init__(self, owner: Callable[[str], str | None]) -> None:
        """`owner` gives the profile an identifier belongs to in memory."""
        self._owner = owner
        self.applied = 0
        """sequence number of the last write applied in memory (in the journal, and
        acknowledged, once the group commit's `durable` reaches it)"""
        self.copied = 0
        """sequence number of the last write known to be in the tables"""
        self.pending: list[_Journalled] = []
        self.messages: dict[str, str] = {}
        """message id -> profile id of the writes not known to be in the tables"""
        self.weight = 0
        """observations of the pending writes"""
        self._dirty: dict[str, int] = {}
        """profile id -> the last uncopied write that touched it"""
        self._all_dirty = 0
        """the last uncopied write that erased a person: reads of any profile wait for it"""
        self.last_erasure = 0
        """the last write that erased someone"""
        self.receipts: dict[str, tuple[int, ErasureReceipt]] = {}
        """erasure id and customer id -> (write, receipt) of the uncopied erasures"""

    def start_at(self, seq: int) -> None:
        """Begin with every write up to `seq` applied and copied (as the tables hold them)."""
        self.applied = self.copied = seq

    def full(self) -> bool:
        """Whether ingest must wait for the copier."""
        return self.weight > MAX_BACKLOG

    def add(self, seq: int, batches: list[ChangeSet]) -> None:
        """Count write `seq`, about to be applied in memory, until it is copied.

        It touches the profiles it names and those its identifiers leave (an undo or a
        split), which memory still tells: reads of those wait for it, reads of others do
        not (a bulk import stalls no read of a customer it does not touch)."""
        messages = [(m, pid) for changes in batches for m, pid, _ in changes.messages]
        self.messages.update(messages)
        entry = _Journalled(seq, messages, max(1, len(messages)))
        self.pending.append(entry)
        self.weight += entry.weight
        dirty = self._dirty
        for changes in batches:
            dirty.update(dict.fromkeys(map(_PROFILE_ID, changes.sightings), seq))
            for key, pid in changes.assign.items():
                left = self._owner(key)
                if left is not None:
                    dirty[left] = seq
                dirty[pid] = seq
            dirty.update(dict.fromkeys(changes.restored_profiles, seq))
            dirty.update(dict.fromkeys(map(_PROFILE_ID, changes.consents), seq))
            dirty.update(dict.fromkeys(changes.consent_states, seq))
            for absorbed, survivor in changes.reassign:
                dirty[absorbed] = dirty[survivor] = seq
            for pid, _ in changes.new_profiles:
                dirty[pid] = seq
            for merge in changes.merges:
                dirty[merge.survivor] = dirty[merge.absorbed] = seq
            if changes.erasures:
                self._erased(seq, changes.erasures)
        self.applied = seq

    def _erased(self, seq: int, erasures: list[Erasure]) -> None:
        """Note erasures: reads of any profile wait for them (they delete records of other
        profiles that name the person), and their receipts answer until the tables hold
        them. (A pending message id of an erased profile is not looked for: the profile it
        names is gone, so a snapshot takes it as unseen.)"""
        self._all_dirty = self.last_erasure = seq
        for erasure in erasures:
            receipt = erasure.receipt
            self.receipts[receipt.id] = self.receipts[receipt.customer_id] = (seq, receipt)

    def copied_to(self, copied: int) -> None:
        """The tables hold the writes up to `copied`: forget them."""
        if copied <= self.copied:
            return
        self.copied = copied
        done = 0
        for entry in self.pending:
            if entry.seq > copied:
                break
            done += 1
            self.weight -= entry.weight
            for message_id, pid in entry.messages:
                # unless a later write applied it again (after its profile was erased)
                if self.messages.get(message_id) == pid:
                    del self.messages[message_id]
        del self.pending[:done]
        self._dirty = {pid: seq for pid, seq in self._dirty.items() if seq > copied}
        if self.receipts:
            self.receipts = {k: r for k, r in self.receipts.items() if r[0] > copied}

    def undo_after(self, durable: int) -> None:
        """Forget the writes after `durable`, which the journal failed to hold: reads and
        writes wait for the tables to hold what the journal holds, no more."""
        self.applied = durable
        self.pending = [p for p in self.pending if p.seq <= durable]
        self.messages = {m: pid for p in self.pending for m, pid in p.messages}
        self.weight = sum(p.weight for p in self.pending)
        self._dirty = {pid: seq for pid, seq in self._dirty.items() if seq <= durable}
        self._all_dirty = min(self._all_dirty, durable)
        self.last_erasure = min(self.last_erasure, durable)
        self.receipts = {k: r for k, r in self.receipts.items() if r[0] <= durable}

    def last_touch(self, ids: Sequence[str]) -> int:
        """The last uncopied write that touched the profiles `ids` themselves (0 if none):
        their identifiers, merges, traits, events or message ids."""
        dirty = self._dirty
        return max((dirty.get(pid, 0) for pid in ids), default=0)

    def last_write_to(self, ids: Sequence[str]) -> int:
        """The last uncopied write that touched the profiles `ids` (0 if none)."""
        dirty = self._dirty
        return max(max((dirty.get(pid, 0) for pid in ids), default=0), self._all_dirty)

    def copied_all_of(self, ids: Sequence[str]) -> bool:
        """Whether the tables hold every applied write that touched the profiles `ids`."""
        return min(self.last_write_to(ids), self.applied) <= self.copied
