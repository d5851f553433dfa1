"""The store port: what the domain needs from a place that keeps the identity graph.

Adapters (`embedded`, `neo4j`) store and fetch; they never decide. Decisions are made by
`identity_graph.resolver` inside `IdentityStore.write`, against a `WriteTx`, and come back
as one `ChangeSet` that the adapter applies atomically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple, TypeVar

from identity_graph.codec import to_micros
from identity_graph.errors import InvalidOperation
from identity_graph.model import (
    JSON,
    ConsentRecord,
    ConsentStatus,
    Link,
    MergeConflict,
    MergeRecord,
    MessageType,
    Page,
    Profile,
    StoredEvent,
    TraitValue,
)
from identity_graph.privacy import Cutoffs, Erasure, ErasureReceipt, ErasureScope, Suppression

T = TypeVar("T")

NO_CONSENT: Mapping[str, ConsentStatus] = MappingProxyType({})


def check_context_args(key: str | None, profile_id: str | None) -> None:
    """`customer_context` names its customer by exactly one of an identifier key and a
    profile id."""
    if (key is None) == (profile_id is None):
        raise InvalidOperation("give exactly one of key and profile_id")


class ProfileState(NamedTuple):
    """What a merge decision needs to know of a profile."""

    id: str
    created_at: datetime
    kind_counts: Mapping[str, int]
    consent: Mapping[str, ConsentStatus] = NO_CONSENT
    """the profile's effective consent status per purpose, as the store keeps it"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The part of the graph a batch of observations touches, read inside its transaction."""

    profile_of: Mapping[str, str]
    profiles: Mapping[str, ProfileState]
    seen: Mapping[str, str]
    """message id -> the profile it landed on, for message ids already applied"""


@dataclass(frozen=True, slots=True)
class Member:
    key: str
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class ProfileGraph:
    """A profile's identifiers and the links among them."""

    profile_id: str
    created_at: datetime
    members: tuple[Member, ...]
    links: tuple[Link, ...]
    consents: tuple[ConsentRecord, ...] = ()
    """the consent records of its identifiers: a split decides each side's consent anew"""


class IdentifierSighting(NamedTuple):
    """Insert the identifier into `profile_id` if new; else widen first/last seen and sources."""

    key: str
    profile_id: str
    seen_at: datetime
    source: str
    new: bool
    """the store did not hold the identifier before: this, its first sighting, inserts it
    (later sightings of it in the same change set are not new)"""
    digest: str | None = None
    """a keyed digest of the value, stored with a new identifier for pseudonymous lookups"""


@dataclass(frozen=True, slots=True)
class ProfileConsent:
    """A consent choice for a whole profile: stored for every identifier it holds then."""

    profile_id: str
    purpose: str
    status: ConsentStatus
    at: datetime
    source: str


@dataclass
class ChangeSet:
    """Everything one write transaction changes, applied by the adapter in field order."""

    new_profiles: list[tuple[str, datetime]] = field(default_factory=list)
    restored_profiles: list[str] = field(default_factory=list)
    sightings: list[IdentifierSighting] = field(default_factory=list)
    reassign: list[tuple[str, str]] = field(default_factory=list)
    """(absorbed, survivor): every identifier of absorbed moves; absorbed redirects"""
    assign: dict[str, str] = field(default_factory=dict)
    """identifier key -> profile id, for splits"""
    removed_links: list[tuple[str, str]] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    merges: list[MergeRecord] = field(default_factory=list)
    undone: list[tuple[str, str]] = field(default_factory=list)
    """(merge id, undo record id)"""
    conflicts: list[MergeConflict] = field(default_factory=list)
    traits: list[TraitValue] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    consents: list[ProfileConsent] = field(default_factory=list)
    consent_states: dict[str, dict[str, ConsentStatus | None]] = field(default_factory=dict)
    """profile id -> purpose -> its effective status from now on (None: no choice), as the
    domain decided it; purposes not named keep theirs. Filters read these, never records."""
    messages: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(message id, profile id, time)"""
    digests: dict[str, str] = field(default_factory=dict)
    """identifier key -> the digest of its value under the current key (a re-hash)"""
    erasures: list[Erasure] = field(default_factory=list)
    """people to delete physically, applied after everything else of the change set"""
    unsuppress: list[str] = field(default_factory=list)
    """suppression hashes to lift"""

    def __bool__(self) -> bool:
        return any(bool(v) for v in vars(self).values())


EVENT_PAGE = 1000
"""events per read where a default method walks a whole history"""


@dataclass(frozen=True, slots=True)
class ProfileFilter:
    """Which profiles `list_profiles` returns; all given conditions must hold."""

    has_kind: str | None = None
    """a kind of identifier the profile holds"""
    identifier_keys: tuple[str, ...] | None = None
    """identifiers of which the profile holds one"""
    trait: tuple[str, JSON] | None = None
    """(name, value): some value of the trait ever equalled it"""
    consent_granted: str | None = None
    """a purpose whose effective status (`ChangeSet.consent_states`) is GRANTED"""

    def plan(self) -> list[tuple[str, object]]:
        """The conditions a listing checks, as (field name, its value), "current" (not
        merged away) among them, in the order an adapter applies them: the first drives
        the page (read in id order from its index: the identifiers asked for, else consent
        granted, else a kind, else every current profile), the others are checked per row;
        the trait, which has no index to drive a page with, last."""
        found: list[tuple[str, object]] = [
            (name, getattr(self, name))
            for name in ("identifier_keys", "consent_granted", "has_kind")
            if getattr(self, name) is not None
        ]
        found.insert(1 if found else 0, ("current", None))
        if self.trait is not None:
            found.append(("trait", self.trait))
        return found


@dataclass(frozen=True, slots=True)
class CustomerContext:
    """A current profile and what a request reads of it, fetched together."""

    profile: Profile
    traits: list[TraitValue] | None = None
    """every trait value, as `IdentityStore.traits` gives them; None if not asked for"""
    events: Page[StoredEvent] | None = None
    """the first page of events, as `IdentityStore.events` gives it; None if not asked for"""


class WriteTx(ABC):
    """Reads and one final write inside a single atomic transaction.

    A transaction function may be run more than once (Neo4j retries transient failures),
    so it must not have side effects beyond calling these methods.
    """

    @abstractmethod
    async def snapshot(self, keys: Sequence[str], *, message_ids: Sequence[str]) -> Snapshot:
        """Lock the given identifiers (in a consistent order) and return their profiles.

        Identifier keys that do not exist yet are locked too where the store can, so two
        concurrent transactions cannot both create them.
        """

    @abstractmethod
    async def profile_graph(self, profile_id: str) -> ProfileGraph | None:
        """Lock a current (not absorbed) profile and return its identifiers, links and
        consent records."""

    @abstractmethod
    async def merge_record(self, merge_id: str) -> MergeRecord | None:
        """The merge, undo or unmerge record with this id."""

    @abstractmethod
    async def resolve(self, profile_id: str) -> str | None:
        """The current profile an id names, following `mergedInto` redirects; None if unknown."""

    @abstractmethod
    async def erasure_scope(self, profile_id: str) -> ErasureScope | None:
        """Lock a current profile and return everything the store holds of it (None if
        `profile_id` is not a current profile)."""

    @abstractmethod
    async def suppressed(self, hashes: Sequence[str]) -> set[str]:
        """The hashes among these that are on the suppression list."""

    @abstractmethod
    async def apply(self, changes: ChangeSet) -> None:
        """Write a change set. Called last by the transaction function, once or several
        times: each change set sees the ones applied before it in the transaction."""


class IdentityStore(ABC):
    """An identity graph store. Every method is safe to call concurrently."""

    round_trips: int = 0
    """Store round trips since start; tests and benchmarks read it."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and create what the store needs (tables, constraints). Idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; acknowledged writes stay durable."""

    @abstractmethod
    async def ping(self) -> None:
        """Return if the store answers; raise `StoreUnavailable` otherwise."""

    @abstractmethod
    async def write(self, work: Callable[[WriteTx], Awaitable[T]]) -> T:
        """Run `work` in one atomic, durable write transaction and return its result.

        Nothing of a transaction that raises is kept. `work` may be called more than once.
        """

    # --- reads -----------------------------------------------------------------------

    @abstractmethod
    async def profile_ids(self, keys: Sequence[str]) -> dict[str, str]:
        """identifier key -> current profile id, for the keys that exist."""

    @abstractmethod
    async def profile_ids_by_digest(self, digests: Sequence[str], *, kind: str) -> dict[str, str]:
        """digest -> current profile id, for identifiers of `kind` stored with that digest."""

    @abstractmethod
    async def identifier_keys(self, *, first: int, after: str | None) -> list[str]:
        """Up to `first` identifier keys in key order, after the key `after` (None: from the
        first), for walking every identifier in pages."""

    @abstractmethod
    async def resolve_profiles(self, ids: Sequence[str]) -> dict[str, str]:
        """profile id -> current profile id (following redirects), for the ids that exist."""

    @abstractmethod
    async def profiles(self, ids: Sequence[str]) -> dict[str, Profile]:
        """Current profiles by id, with their identifiers; absorbed or unknown ids are absent."""

    async def customer_context(
        self,
        *,
        key: str | None = None,
        profile_id: str | None = None,
        traits: bool = False,
        events: int | None = None,
        count_events: int | None = 0,
    ) -> CustomerContext | None:
        """The current profile holding identifier `key`, or named by `profile_id` (followed
        through redirects), with its trait values if `traits` and the first page of `events`
        events if given, its total counted as `events` counts with `count_up_to=count_events`;
        None if there is none. What a "who is this customer" request reads, in one round trip
        where the store can (Neo4j: one statement); this default composes the other reads."""
        current = await self.context_profile_id(key, profile_id)
        profile = (await self.profiles([current])).get(current) if current else None
        if profile is None:
            return None
        values = (await self.traits([profile.id])).get(profile.id, []) if traits else None
        page = None
        if events is not None:
            pages = await self.events(
                [profile.id], first=events, after=None, types=None, count_up_to=count_events
            )
            page = pages.get(profile.id, Page((), 0, None, False))
        return CustomerContext(profile, values, page)

    async def context_profile_id(self, key: str | None, profile_id: str | None) -> str | None:
        """The current profile `customer_context` reads: the one holding identifier `key`,
        or `profile_id` followed through redirects (exactly one of them given)."""
        check_context_args(key, profile_id)
        if key is not None:
            return (await self.profile_ids([key])).get(key)
        assert profile_id is not None
        return (await self.resolve_profiles([profile_id])).get(profile_id)

    @abstractmethod
    async def list_profiles(
        self, *, first: int, after: str | None, where: ProfileFilter, count_up_to: int | None = 0
    ) -> Page[str]:
        """Current profile ids in id order, after the cursor, matching the filter.

        A page costs what it returns, not what the store holds: it is read in id order from
        an index of the filter's conditions. `Page.total` counts the matching profiles (all
        of them, not only those after the cursor) up to `count_up_to`: min(matching,
        `count_up_to`), so 0, the default, counts nothing; None counts them all, at the cost
        of reading every match."""

    @abstractmethod
    async def traits(self, ids: Sequence[str]) -> dict[str, list[TraitValue]]:
        """Every trait value ever observed on each profile's identifiers, oldest first."""

    @abstractmethod
    async def events(
        self,
        ids: Sequence[str],
        *,
        first: int,
        after: str | None,
        types: Sequence[str] | None,
        count_up_to: int | None = 0,
    ) -> dict[str, Page[StoredEvent]]:
        """Each profile's events, newest first, a page of at most `first` after the cursor.
        `Page.total` counts the profile's events of those `types` up to `count_up_to`, as
        `list_profiles` counts: 0, the default, counts nothing; None, all."""

    async def identifier_kinds(self, ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """The identifier kinds each current profile holds; absorbed or unknown ids are
        absent. This default reads the whole profiles."""
        return {
            pid: frozenset(r.identifier.kind for r in profile.identifiers)
            for pid, profile in (await self.profiles(ids)).items()
        }

    async def traits_named(
        self, ids: Sequence[str], names: Collection[str]
    ) -> dict[str, list[TraitValue]]:
        """`traits`, only the values of the traits `names`. This default reads them all."""
        wanted = set(names)
        return {
            pid: [v for v in values if v.name in wanted]
            for pid, values in (await self.traits(ids)).items()
        }

    async def events_of(
        self, ids: Sequence[str], selectors: Collection[tuple[MessageType, str | None]]
    ) -> dict[str, list[StoredEvent]]:
        """Every event of each profile that a selector `(type, name)` matches (name None:
        every event of that type), in no particular order: what computed traits and
        audiences count. This default reads `events` in pages, every profile's first page
        in one call, and filters."""

        def wanted(e: StoredEvent) -> bool:
            return (e.type, e.name) in selectors or (e.type, None) in selectors

        found: dict[str, list[StoredEvent]] = {pid: [] for pid in dict.fromkeys(ids)}
        if not selectors:
            return found
        first = await self.events(list(found), first=EVENT_PAGE, after=None, types=None)
        for pid, page in first.items():
            found[pid].extend(e for e in page.items if wanted(e))
            while page.more and page.items:
                pages = await self.events([pid], first=EVENT_PAGE, after=page.cursor, types=None)
                page = pages.get(pid, Page((), 0, None, False))
                found[pid].extend(e for e in page.items if wanted(e))
        return found

    @abstractmethod
    async def merge_history(self, ids: Sequence[str]) -> dict[str, list[MergeRecord]]:
        """Records naming each profile as survivor or absorbed, oldest first."""

    @abstractmethod
    async def conflicts(self, ids: Sequence[str]) -> dict[str, list[MergeConflict]]:
        """Merge conflicts recorded against each profile, oldest first."""

    @abstractmethod
    async def consents(self, ids: Sequence[str]) -> dict[str, list[ConsentRecord]]:
        """Consent records of each profile's identifiers, each with its `seq`; each
        identifier's in the order they were stored."""

    # --- privacy ---------------------------------------------------------------------

    may_suppress: bool = True
    """False only when the store knows its suppression list is empty, so that ingest can
    skip hashing every identifier. A store shared by several processes keeps it True."""

    sole_writer: bool = False
    """True when no other process writes the store (the embedded store locks its data
    directory): every write to it goes through this process, so what this process saw
    written to a profile is all it holds. Neo4j may be shared by several API processes."""

    @abstractmethod
    async def purge(self) -> None:
        """Make every deletion applied so far physical in every file the store writes
        (its journal, write-ahead logs): once this returns, no file holds a deleted value."""

    @abstractmethod
    async def erasure(self, id: str) -> ErasureReceipt | None:
        """The receipt of the erasure with this id, or of the erasure of the customer with
        this id; None if there is none."""

    @abstractmethod
    async def suppressions(self, *, first: int, after: str | None) -> Page[Suppression]:
        """Suppressed identifiers (not message ids), oldest first by (`at`, `hash`); `after`
        is the hash the page continues after. The page's cursor is its last hash."""

    @abstractmethod
    async def inactive_profiles(
        self, *, before: datetime, first: int, after: str | None
    ) -> list[str]:
        """Up to `first` current profile ids, in id order after `after`, none of whose
        identifiers was seen at or after `before`."""

    @abstractmethod
    async def expire(self, cutoffs: Cutoffs, *, batch: int) -> dict[str, int]:
        """Physically delete events (per category), message-id entries of messages that are
        not events, and conflict records older than the cutoffs, `batch` rows per
        transaction (memory stays bounded whatever the store holds; writes go on between
        batches). Returns counts under `events`, `messages` and `conflicts`."""

    @abstractmethod
    async def links(self, ids: Sequence[str]) -> dict[str, list[Link]]:
        """Every link among each current profile's identifiers, ordered by (`a`, `b`)."""

    @abstractmethod
    async def link_path(self, a: str, b: str, *, max_hops: int) -> list[Link] | None:
        """The shortest chain of links from identifier `a` to `b`, in order; None if none."""


def event_cursor(event: StoredEvent) -> str:
    """The cursor of an event in `IdentityStore.events`: its page continues after it."""
    return f"{to_micros(event.timestamp)}|{event.message_id}"


def parse_event_cursor(cursor: str | None) -> tuple[int, str] | None:
    """(time in microseconds, message id) of a cursor made by `event_cursor`; a malformed
    one is an `InvalidOperation`."""
    if cursor is None:
        return None
    micros, sep, message_id = cursor.partition("|")
    if not sep or not micros.lstrip("-").isdigit():
        raise InvalidOperation("malformed events cursor")
    return int(micros), message_id
