"""The identity model: identifiers, observations, links, profiles and their history.

Everything here is an immutable value; the store holds them and the resolver decides
which of them to write. The values made several times per observation (links, trait
values, events) are named tuples: as immutable as frozen dataclasses, and made in a fifth
of the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, NamedTuple, TypeVar

JSON = Any
T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """A normalised identifier; `key` (`kind:value`) is its identity in the graph."""

    kind: str
    value: str
    key: str = field(init=False, repr=False, compare=False)
    """`kind:value`, made once: the resolver looks identifiers up by it many times"""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.kind}:{self.value}")

    @classmethod
    def from_key(cls, key: str) -> Identifier:
        kind, _, value = key.partition(":")
        return cls(kind, value)


class MessageType(StrEnum):
    IDENTIFY = "identify"
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"
    ALIAS = "alias"
    GROUP = "group"
    IMPORT = "import"


EVENT_TYPES = frozenset({MessageType.TRACK, MessageType.PAGE, MessageType.SCREEN})


class EventCategory(StrEnum):
    ENGAGEMENT = "engagement"
    BEHAVIOURAL = "behavioural"
    ATTITUDINAL = "attitudinal"


class ConsentStatus(StrEnum):
    GRANTED = "GRANTED"
    DENIED = "DENIED"
    REVOKED = "REVOKED"


PURPOSES = ("analytics", "email_marketing", "advertising", "personalization", "sale_of_data")


@dataclass(frozen=True, slots=True)
class Event:
    """What a track, page or screen call says the customer did."""

    type: MessageType
    name: str | None
    properties: Mapping[str, JSON] = field(default_factory=dict)
    category: EventCategory = EventCategory.ENGAGEMENT


@dataclass(frozen=True, slots=True)
class Observation:
    """One message as the domain sees it: identifiers seen together, and what they said."""

    message_id: str
    timestamp: datetime
    source: str
    type: MessageType
    identifiers: tuple[Identifier, ...]
    traits: Mapping[str, JSON] = field(default_factory=dict)
    event: Event | None = None
    consent: Mapping[str, ConsentStatus] = field(default_factory=dict)


class Link(NamedTuple):
    """An edge between two identifiers seen together, with its evidence."""

    a: str
    b: str
    source: str
    message_id: str
    observed_at: datetime
    rule: str


@dataclass(frozen=True, slots=True)
class IdentifierRecord:
    identifier: Identifier
    profile_id: str
    first_seen: datetime
    last_seen: datetime
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Profile:
    """A person: the identifiers that belong together. `id` is stable across merges."""

    id: str
    created_at: datetime
    identifiers: tuple[IdentifierRecord, ...]


class MergeKind(StrEnum):
    MERGE = "merge"
    UNDO = "undo"
    UNMERGE = "unmerge"


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """A change of the partition: a merge, the undo of one, or a split (`unmerge`).

    For a merge, `survivor` absorbed `absorbed` because of `links`. For an undo, `undoes`
    names the merge and `absorbed` is the profile given back its identifiers. For an unmerge,
    `survivor` is the profile split from and `absorbed` the new profile.
    """

    id: str
    at: datetime
    kind: MergeKind
    survivor: str
    absorbed: str
    links: tuple[Link, ...] = ()
    identifiers: tuple[str, ...] = ()
    message_id: str | None = None
    undoes: str | None = None
    undone_by: str | None = None


@dataclass(frozen=True, slots=True)
class MergeConflict:
    """An observation whose identifiers could not all be joined without breaking a limit."""

    id: str
    at: datetime
    message_id: str
    profile_id: str
    dropped: tuple[str, ...]
    reason: str


class TraitValue(NamedTuple):
    name: str
    value: JSON
    source: str
    observed_at: datetime
    message_id: str
    identifier_key: str


class StoredEvent(NamedTuple):
    message_id: str
    identifier_key: str
    type: MessageType
    name: str | None
    category: EventCategory
    properties: Mapping[str, JSON]
    timestamp: datetime
    source: str


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A consent choice stored for one identifier. `at` is the time the choice claims (shown,
    never used to order choices); `seq` orders the identifier's choices as c360 stored them."""

    identifier_key: str
    purpose: str
    status: ConsentStatus
    at: datetime
    source: str
    seq: int = 0
    """greater for a choice stored later for the same identifier (0: unknown, older data)"""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing; `cursor` continues after the last item."""

    items: tuple[T, ...]
    total: int
    cursor: str | None
    more: bool
    """whether items follow this page: with a page size of 0, whether any follow the
    position asked for (there is no last item to make `cursor` from)"""
