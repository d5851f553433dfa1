"""The identity graph's use cases, written once against the store port."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from identity_graph.errors import (
    IdentityGraphError,
    InvalidOperation,
    MalformedObservation,
    NotFound,
)
from identity_graph.model import (
    PURPOSES,
    ConsentStatus,
    Identifier,
    Link,
    MergeKind,
    MergeRecord,
    MessageType,
    Observation,
    StoredEvent,
    TraitValue,
)
from identity_graph.normalize import normalize
from identity_graph.privacy import (
    MAX_REASON,
    MESSAGE_KIND,
    Erasure,
    ErasureReceipt,
    ErasureScope,
    RetentionPolicy,
    RetentionReport,
    Suppression,
    suppression_hash,
)
from identity_graph.records import AccessRecords
from identity_graph.resolver import (
    NewId,
    Outcome,
    new_id,
    plan_batch,
    plan_undo,
    plan_unmerge,
    usable_identifiers,
)
from identity_graph.rules import Rules
from identity_graph.store import (
    ChangeSet,
    IdentityStore,
    ProfileConsent,
    ProfileGraph,
    Snapshot,
    WriteTx,
    event_cursor,
)

MAX_EXPLAIN_HOPS = 50
MAX_MESSAGE_ID = 200
"""characters a message id may have"""
MAX_IDENTIFIERS = 100
"""identifiers one observation may carry; more is a malformed message, not a person"""
SOURCE = re.compile(r"[A-Za-z0-9_.:/@-]{1,64}")
MAX_SOURCES_KNOWN = 1024
"""well-formed sources remembered, so that most observations skip the pattern"""


def utcnow() -> datetime:
    return datetime.now(UTC)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """What a write changed of one profile, as far as readers of its facts care: the
    events it gained (type, name), the traits it was told, whether it gained identifiers or
    consent choices; `made` when the write made it (it held nothing before, so what changed
    is all it holds); `whole` when it was merged, split, restored or erased, and so anything
    about it may differ."""

    events: frozenset[tuple[MessageType, str | None]] = frozenset()
    traits: frozenset[str] = frozenset()
    identifiers: bool = False
    consent: bool = False
    whole: bool = False
    made: bool = False
    given: Given | None = None
    """what the write gave the profile, when it knows (None: only a read tells); with
    `made`, everything the profile holds"""

    def __or__(self, other: ProfileChange) -> ProfileChange:
        """Both changes, one after the other."""
        if self.whole or other.whole:
            return WHOLE
        return ProfileChange(
            self.events | other.events,
            self.traits | other.traits,
            self.identifiers or other.identifiers,
            self.consent or other.consent,
            made=self.made or other.made,
            given=None if self.given is None or other.given is None else self.given + other.given,
        )


@dataclass(frozen=True, slots=True)
class Given:
    """The identifiers, trait values and events a write gave a profile (a consent choice,
    which a later one may override, is never told this way: the profile is read back)."""

    keys: tuple[str, ...]
    """identifier keys (one may come twice)"""
    traits: tuple[TraitValue, ...]
    events: tuple[StoredEvent, ...]

    def __add__(self, other: Given) -> Given:
        return Given(self.keys + other.keys, self.traits + other.traits, self.events + other.events)


WHOLE = ProfileChange(whole=True)


NOTHING = ProfileChange(given=Given((), (), ()))
"""touched, but nothing a fact reads changed (only when identifiers were last seen)"""


def touched_profiles(
    changes: Iterable[ChangeSet], *, given: bool = True
) -> dict[str, ProfileChange]:
    """Every profile id a change set makes, changes, absorbs, splits or erases, with what
    changed of it, and (if `given`) what the change sets gave it."""
    whole: set[str] = set()
    made: set[str] = set()
    keys_given: defaultdict[str, list[str]] = defaultdict(list)
    traits_given: defaultdict[str, list[TraitValue]] = defaultdict(list)
    events_given: defaultdict[str, list[StoredEvent]] = defaultdict(list)
    unsure: set[str] = set()
    """profiles made with an identifier the store held before: read back, not trusted"""
    inserted: set[str] = set()
    """identifiers the write inserted (sighted again, they are not new)"""
    events: dict[str, set[tuple[MessageType, str | None]]] = {}
    traits: dict[str, set[str]] = {}
    identifiers: set[str] = set()
    consent: set[str] = set()
    touched: set[str] = set()
    for c in changes:
        made.update([pid for pid, _ in c.new_profiles])
        whole.update(c.restored_profiles)
        for absorbed, survivor in c.reassign:
            whole.add(absorbed)
            whole.add(survivor)
        whole.update(c.assign.values())
        for record in c.merges:
            whole.add(record.survivor)
            whole.add(record.absorbed)
        for erasure in c.erasures:
            whole.update(erasure.scope.profile_ids)
        owner = {s.key: s.profile_id for s in c.sightings}
        for s in c.sightings if given else ():
            keys_given[s.profile_id].append(s.key)
            if s.new:
                inserted.add(s.key)
            elif s.profile_id in made and s.key not in inserted:
                unsure.add(s.profile_id)
        identifiers.update([s.profile_id for s in c.sightings if s.new])
        consent.update([x.profile_id for x in c.consents])
        consent.update(c.consent_states)
        of_message = {mid: pid for mid, pid, _ in c.messages}
        touched.update(owner.values())
        touched.update(of_message.values())
        for value in c.traits:
            told = owner.get(value.identifier_key)
            if told is None:  # not seen in this change set: whose it is, is not known here
                whole.update(of_message.values())
            elif told not in whole:
                traits.setdefault(told, set()).add(value.name)
                if given:
                    traits_given[told].append(value)
        for event in c.events:
            doer = of_message.get(event.message_id) or owner.get(event.identifier_key)
            if doer is None:
                whole.update(of_message.values())
            elif doer not in whole:
                events.setdefault(doer, set()).add((event.type, event.name))
                if given:
                    events_given[doer].append(event)
    touched |= consent
    made -= whole
    touched |= made
    found = dict.fromkeys(whole, WHOLE)
    for pid in touched - whole:
        done, said = events.get(pid), traits.get(pid)
        new, chose, fresh = pid in identifiers or pid in made, pid in consent, pid in made
        if done is None and said is None and not new and not chose:
            found[pid] = NOTHING
        else:
            found[pid] = ProfileChange(
                frozenset(done) if done else frozenset(),
                frozenset(said) if said else frozenset(),
                new,
                chose,
                made=fresh,
                given=None
                if chose or pid in unsure or not given
                else Given(
                    tuple(keys_given.get(pid, ())),
                    tuple(traits_given.get(pid, ())),
                    tuple(events_given.get(pid, ())),
                ),
            )
    return found


class _Recording(WriteTx):
    """A transaction that notes the change sets applied through it."""

    def __init__(self, tx: WriteTx, applied: list[ChangeSet]) -> None:
        self.tx = tx
        self.applied = applied

    async def snapshot(self, keys: Sequence[str], *, message_ids: Sequence[str]) -> Snapshot:
        return await self.tx.snapshot(keys, message_ids=message_ids)

    async def profile_graph(self, profile_id: str) -> ProfileGraph | None:
        return await self.tx.profile_graph(profile_id)

    async def merge_record(self, merge_id: str) -> MergeRecord | None:
        return await self.tx.merge_record(merge_id)

    async def resolve(self, profile_id: str) -> str | None:
        return await self.tx.resolve(profile_id)

    async def erasure_scope(self, profile_id: str) -> ErasureScope | None:
        return await self.tx.erasure_scope(profile_id)

    async def suppressed(self, hashes: Sequence[str]) -> set[str]:
        return await self.tx.suppressed(hashes)

    async def apply(self, changes: ChangeSet) -> None:
        await self.tx.apply(changes)
        self.applied.append(changes)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why two identifiers belong to one profile: the chain of links joining them."""

    a: Identifier
    b: Identifier
    linked: bool
    path: tuple[Link, ...]
    profile_id: str | None


class IdentityGraph:
    """Ingest observations, undo and split merges, explain links."""

    def __init__(
        self,
        store: IdentityStore,
        rules: Rules,
        *,
        clock: Callable[[], datetime] = utcnow,
        make_id: NewId = new_id,
        digest: Callable[[str], str] | None = None,
    ) -> None:
        """`digest` (a keyed hash of a value) is stored with new identifiers so that callers
        who may only see pseudonyms can look customers up by them."""
        self.store = store
        self.rules = rules
        self.clock = clock
        self.make_id = make_id
        self.digest = digest
        self._sources: set[str] = set()
        """sources already found well-formed (a deployment has a few)"""
        self.listeners: list[Callable[[Mapping[str, ProfileChange]], None]] = []
        """called after each write with the profiles it touched (made, changed, absorbed,
        split or erased) and what changed of each: how computed audiences stay live"""
        self.expired: list[Callable[[], None]] = []
        """called after a retention run deleted events: what counts them may have changed
        for anyone"""

    async def _write(self, work: Callable[[WriteTx], Awaitable[T]]) -> T:
        """`store.write(work)`, then tell the listeners which profiles it touched (from the
        change sets of the run that committed: a transaction function may run again)."""
        if not self.listeners:
            return await self.store.write(work)
        applied: list[ChangeSet] = []

        async def recorded(tx: WriteTx) -> T:
            applied.clear()
            return await work(_Recording(tx, applied))

        try:
            result = await self.store.write(recorded)
        except BaseException:
            if applied:  # it may have committed (then failed, or been cancelled): the
                # listeners look at these profiles afresh, trusting nothing they kept
                for listener in self.listeners:
                    listener(dict.fromkeys(touched_profiles(applied, given=False), WHOLE))
            raise
        # what a write gave a profile is used only where no other process writes the store
        # (`IdentityStore.sole_writer`): elsewhere a change is read back, so not noted
        touched = touched_profiles(applied, given=self.store.sole_writer)
        if touched:
            for listener in self.listeners:
                listener(touched)
        return result

    def _check(self, observation: Observation) -> None:
        if not observation.message_id or len(observation.message_id) > MAX_MESSAGE_ID:
            raise MalformedObservation(f"messageId must be 1 to {MAX_MESSAGE_ID} characters")
        if observation.timestamp.tzinfo is None:
            raise MalformedObservation("timestamp must carry a time zone")
        if observation.source not in self._sources:
            if not SOURCE.fullmatch(observation.source):
                raise MalformedObservation(
                    "source must be 1 to 64 letters, digits or _ . : / @ - characters"
                )
            if len(self._sources) < MAX_SOURCES_KNOWN:
                self._sources.add(observation.source)
        if len(observation.identifiers) > MAX_IDENTIFIERS:
            raise MalformedObservation(
                f"an observation may carry at most {MAX_IDENTIFIERS} identifiers"
            )
        kinds = self.rules.kinds
        for identifier in observation.identifiers:
            if identifier.kind not in kinds:
                raise MalformedObservation(f"unknown identifier kind {identifier.kind!r}")
        for purpose in observation.consent:
            if purpose not in PURPOSES:
                raise MalformedObservation(f"unknown consent purpose {purpose!r}")

    async def ingest(self, observations: Sequence[Observation]) -> list[Outcome]:
        """Apply a batch atomically; a message id seen before changes nothing.

        Every observation is checked here, and only here, before anything is written: a
        malformed one (message id, time zone, source, too many identifiers, an unknown kind
        or consent purpose) raises `MalformedObservation` and nothing is written. Callers
        need not check first."""
        for observation in observations:
            self._check(observation)
        found = [usable_identifiers(o, self.rules) for o in observations]
        message_ids = [o.message_id for o in observations]

        async def work(tx: WriteTx) -> list[Outcome]:
            planned, usable = observations, found
            if self.store.may_suppress:
                # inside the transaction, before anything is read or written: a suppressed
                # value never reaches the store again
                planned, usable = await self._unsuppressed(tx, observations, found)
            keys = list({i.key for kept in usable for i in kept})  # the store orders its locks
            snapshot = await tx.snapshot(keys, message_ids=message_ids)
            batches, outcomes = plan_batch(
                planned,
                snapshot,
                self.rules,
                make_id=self.make_id,
                usable=usable,
                digest=self.digest,
            )
            for changes in batches:
                await tx.apply(changes)
            return outcomes

        return await self._write(work)

    async def _unsuppressed(
        self,
        tx: WriteTx,
        observations: Sequence[Observation],
        usable: Sequence[list[Identifier]],
    ) -> tuple[list[Observation], list[list[Identifier]]]:
        """The observations and their usable identifiers less what is suppressed: each
        suppressed identifier is dropped as a blocked value would be, and so is a trait that
        carries its value (an `email` trait that named a suppressed email); a message whose
        id is suppressed (a replay of an erased person's) keeps no identifier at all."""
        hashes: dict[str, str] = {}
        for observation, kept in zip(observations, usable, strict=True):
            hashes[f"{MESSAGE_KIND}:{observation.message_id}"] = ""
            for identifier in kept:
                hashes[identifier.key] = ""
        for what in hashes:
            hashes[what] = suppression_hash(self.digest, what)
        suppressed = await tx.suppressed(list(set(hashes.values())))
        if not suppressed:
            return list(observations), list(usable)
        planned: list[Observation] = []
        remaining: list[list[Identifier]] = []
        for observation, kept in zip(observations, usable, strict=True):
            if hashes[f"{MESSAGE_KIND}:{observation.message_id}"] in suppressed:
                planned.append(observation)
                remaining.append([])
                continue
            dropped = {i.key for i in kept if hashes[i.key] in suppressed}
            remaining.append([i for i in kept if i.key not in dropped])
            if dropped and observation.traits:
                traits = {
                    name: value
                    for name, value in observation.traits.items()
                    if not self._carries(value, dropped)
                }
                observation = replace(observation, traits=traits)
            planned.append(observation)
        return planned, remaining

    def _carries(self, value: object, keys: set[str]) -> bool:
        """Whether a trait's value is the value of one of these identifier keys."""
        if not isinstance(value, str | int):
            return False
        for kind in {key.partition(":")[0] for key in keys}:
            try:
                if normalize(kind, value, self.rules).key in keys:
                    return True
            except IdentityGraphError:
                continue
        return False

    async def erase(
        self,
        customer_id: str,
        *,
        reason: str,
        actor: str,
        suppress: bool = True,
        purge: bool = True,
    ) -> ErasureReceipt:
        """Erase a person: everything the store holds of them is physically deleted when this
        returns, and (with `suppress`) their identifiers and message ids are suppressed, so
        no later or replayed message brings them back. All or nothing; an absorbed id
        erases the profile it was merged into. `purge=False` leaves the deleted values in
        the store's logs until the next `purge` (for many erasures in a row)."""
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise InvalidOperation(f"an erasure needs a reason of 1 to {MAX_REASON} characters")
        at = self.clock()
        erasure_id = self.make_id()

        async def work(tx: WriteTx) -> ErasureReceipt:
            current = await tx.resolve(customer_id)
            scope = await tx.erasure_scope(current) if current else None
            if scope is None:
                raise await self._unknown_customer(customer_id)
            suppressions: tuple[Suppression, ...] = ()
            if suppress:
                suppressions = tuple(
                    Suppression(
                        suppression_hash(self.digest, key), key.partition(":")[0], erasure_id, at
                    )
                    for key in scope.keys
                ) + tuple(
                    Suppression(
                        suppression_hash(self.digest, f"{MESSAGE_KIND}:{m}"),
                        MESSAGE_KIND,
                        erasure_id,
                        at,
                    )
                    for m in scope.message_ids
                )
            erasure = Erasure(erasure_id, scope, at, reason, actor, suppressions)
            await tx.apply(ChangeSet(erasures=[erasure]))
            return erasure.receipt

        receipt = await self._write(work)
        if purge:
            await self.store.purge()
        return receipt

    async def _unknown_customer(self, customer_id: str) -> IdentityGraphError:
        erased = await self.store.erasure(customer_id)
        if erased is not None:
            return InvalidOperation(
                f"customer {customer_id!r} was erased at {erased.erased_at.isoformat()}"
                f" (erasure {erased.id})"
            )
        return NotFound(f"no customer {customer_id!r}")

    async def unsuppress(self, identifier: Identifier) -> bool:
        """Lift the suppression of an identifier; False if it was not suppressed."""
        hashed = suppression_hash(self.digest, identifier.key)

        async def work(tx: WriteTx) -> bool:
            if not await tx.suppressed([hashed]):
                return False
            await tx.apply(ChangeSet(unsuppress=[hashed]))
            return True

        return await self._write(work)

    async def export_events(
        self, customer_id: str, *, page: int = 1000
    ) -> AsyncIterator[StoredEvent]:
        """Every event of a customer, newest first, a page at a time (never all in memory)."""
        after: str | None = None
        while True:
            pages = await self.store.events([customer_id], first=page, after=after, types=None)
            got = pages.get(customer_id)
            if got is None:
                return
            for event in got.items:
                yield event
            if not got.more or not got.items:
                return
            after = event_cursor(got.items[-1])

    async def apply_retention(
        self,
        policy: RetentionPolicy,
        *,
        records: AccessRecords | None = None,
        batch: int = 5000,
    ) -> RetentionReport:
        """Delete physically what the policy no longer keeps, in batches: old events,
        message-id entries and conflict records, audit entries (in `records`), and inactive
        profiles (erased without suppression: they may come back)."""
        now = self.clock()
        cutoffs = policy.cutoffs(now)
        counts = await self.store.expire(cutoffs, batch=batch)
        if counts.get("events"):
            for listener in self.expired:
                listener()
        audit = 0
        if records is not None and cutoffs.audit is not None:
            audit = await records.expire_audit(cutoffs.audit, batch=batch)
        profiles = identifiers = 0
        if cutoffs.profiles is not None:
            after: str | None = None
            while ids := await self.store.inactive_profiles(
                before=cutoffs.profiles, first=100, after=after
            ):
                after = ids[-1]
                for pid in ids:
                    try:
                        receipt = await self.erase(
                            pid,
                            reason="retention: inactive profile",
                            actor="retention",
                            suppress=False,
                            purge=False,
                        )
                    except (NotFound, InvalidOperation):
                        continue  # merged or erased meanwhile
                    profiles += 1
                    identifiers += receipt.identifiers
                    counts["events"] = counts.get("events", 0) + receipt.events
        await self.store.purge()
        return RetentionReport(
            ran_at=now,
            events=counts.get("events", 0),
            audit=audit,
            profiles=profiles,
            identifiers=identifiers,
            messages=counts.get("messages", 0),
            conflicts=counts.get("conflicts", 0),
        )

    async def undo_merge(self, merge_id: str, *, actor: str) -> MergeRecord:
        """Undo a merge: remove the links that caused it and split the profile again."""
        at = self.clock()

        async def work(tx: WriteTx) -> MergeRecord:
            record = await tx.merge_record(merge_id)
            if record is None:
                raise NotFound(f"no merge record {merge_id!r}")
            if record.kind is not MergeKind.MERGE:
                raise InvalidOperation(f"{merge_id!r} is an {record.kind.value}, not a merge")
            if record.undone_by is not None:
                raise InvalidOperation(f"merge {merge_id!r} was already undone")
            current = await self._holder(tx, record)
            graph = await tx.profile_graph(current) if current else None
            if graph is None:
                raise NotFound(f"the profile of merge {merge_id!r} no longer exists")
            changes = plan_undo(record, graph, at=at, actor=actor, make_id=self.make_id)
            if not changes.assign:
                raise InvalidOperation(
                    f"merge {merge_id!r} cannot be undone: later links still join both sides"
                )
            await tx.apply(changes)
            return changes.merges[0]

        return await self._write(work)

    @staticmethod
    async def _holder(tx: WriteTx, record: MergeRecord) -> str | None:
        """The profile that holds both ends of the merge's links now: the survivor's, unless
        an undo of another merge of the same message moved them together elsewhere."""
        ends = sorted({k for link in record.links for k in (link.a, link.b)})
        holders = set((await tx.snapshot(ends, message_ids=())).profile_of.values())
        if len(holders) == 1:
            return await tx.resolve(holders.pop())
        return await tx.resolve(record.survivor)

    async def rehash(
        self, *, batch: int = 1000, progress: Callable[[int], None] | None = None
    ) -> int:
        """Store the digest of every identifier's value under the current key, a page of
        `batch` at a time; return how many. For after the key changed (old digests no longer
        find anyone), or for identifiers stored before digests were."""
        digest = self.digest
        if digest is None:
            raise InvalidOperation("no digest key is configured, so there is nothing to store")
        done = 0
        after: str | None = None
        while keys := await self.store.identifier_keys(first=batch, after=after):
            changes = ChangeSet(
                digests={key: digest(Identifier.from_key(key).value) for key in keys}
            )

            async def work(tx: WriteTx, changes: ChangeSet = changes) -> None:
                await tx.apply(changes)

            await self._write(work)
            done += len(keys)
            after = keys[-1]
            if progress is not None:
                progress(len(keys))
        return done

    async def unmerge(self, profile_id: str, keys: Sequence[str], *, actor: str) -> MergeRecord:
        """Detach identifiers from a profile into a new one."""
        at = self.clock()
        wanted = sorted(set(keys))
        if not wanted:
            raise InvalidOperation("name at least one identifier to split off")

        async def work(tx: WriteTx) -> MergeRecord:
            current = await tx.resolve(profile_id)
            graph = await tx.profile_graph(current) if current else None
            if graph is None:
                raise NotFound(f"no customer {profile_id!r}")
            members = {m.key for m in graph.members}
            missing = [k for k in wanted if k not in members]
            if missing:
                raise InvalidOperation(
                    f"{len(missing)} of the identifiers do not belong to customer {profile_id!r}"
                )
            if len(wanted) == len(members):
                raise InvalidOperation("cannot split off every identifier of a customer")
            changes = plan_unmerge(graph, wanted, at=at, actor=actor, make_id=self.make_id)
            await tx.apply(changes)
            return changes.merges[-1]

        return await self._write(work)

    async def set_consent(
        self,
        profile_id: str,
        choices: dict[str, ConsentStatus],
        *,
        source: str,
        at: datetime | None = None,
    ) -> str:
        """Record consent choices for every identifier the profile holds now.

        They supersede every earlier choice (choices are ordered as c360 stores them); `at`
        is when they were made, if earlier than now (never later: a later time is now)."""
        for purpose in choices:
            if purpose not in PURPOSES:
                raise MalformedObservation(f"unknown consent purpose {purpose!r}")
        now = self.clock()
        when = now if at is None else min(at, now)

        async def work(tx: WriteTx) -> str:
            current = await tx.resolve(profile_id)
            if current is None:
                raise NotFound(f"no customer {profile_id!r}")
            await tx.apply(
                ChangeSet(
                    consents=[
                        ProfileConsent(current, purpose, status, when, source)
                        for purpose, status in choices.items()
                    ],
                    # stored for every identifier, they supersede: they are the new state
                    consent_states={current: dict(choices)},
                )
            )
            return current

        return await self._write(work)

    async def explain_link(self, a: Identifier, b: Identifier) -> Explanation:
        """The shortest chain of links between two identifiers, each with its evidence."""
        owners = await self.store.profile_ids([a.key, b.key])
        for identifier in (a, b):
            if identifier.key not in owners:
                raise NotFound(f"no {identifier.kind} identifier with that value")
        if owners[a.key] != owners[b.key]:
            return Explanation(a, b, False, (), None)
        if a == b:
            return Explanation(a, b, True, (), owners[a.key])
        path = await self.store.link_path(a.key, b.key, max_hops=MAX_EXPLAIN_HOPS)
        if path is None:
            return Explanation(a, b, False, (), None)
        return Explanation(a, b, True, tuple(path), owners[a.key])
