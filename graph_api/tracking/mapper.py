"""Messages to observations: the one set of rules every entry point maps with.

Each entry point reads its own wire format into a `Message` (Segment JSON in `segment`,
GraphQL inputs in `graph_api.types.messages`, CSV rows in `importer`) and `Mapper` holds it
to the rules:

- identifiers: each is normalised for its kind; a value the rules block (`"null"`, `"0"`,
  ...) is kept as sent, for the resolver to drop, and is never an error. An unknown kind or a
  value that fails normalisation is an error naming the field it came from.
- traits: `email` and `phone` traits identify the customer, except a group call's (they
  describe the group). Identify and import calls record their traits; a group call records
  them under `group`; other calls' traits, and a library's cached `context.traits`, only
  identify.
- message id: the sender's (1 to 200 characters), else a fresh `str(uuid4())`; so a message
  sent again without one is *not* idempotent.
- timestamp: the sender's, in UTC (a naive time is taken as UTC), else the time of receipt.
  A client's clock is not trusted: a time later than the receipt (no skew allowed: any
  allowance would let a claimed time land after a later message's) is stored as the
  receipt time and counted
  (`c360_clamped_timestamps_total`), so no claimed future time wins a trait's survivorship
  or a merge. (Consent choices are ordered by receipt, whatever time they claim: see
  `identity_graph.survivorship.effective_consent`.)
- events: track, page and screen calls carry one; a track call needs a name. The category is
  the sender's if given, else the name's (`event_category`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from graph_api.errors import SegmentError
from graph_api.metrics import count_clamped
from identity_graph.errors import InvalidIdentifier, UnknownKind
from identity_graph.model import (
    EVENT_TYPES,
    ConsentStatus,
    Event,
    EventCategory,
    Identifier,
    MessageType,
    Observation,
)
from identity_graph.normalize import normalize
from identity_graph.rules import Rules
from identity_graph.service import MAX_MESSAGE_ID

IDENTIFYING_TRAITS = ("email", "phone")
"""traits whose values are also identifiers of the same kind"""
RECORDS_TRAITS = frozenset({MessageType.IDENTIFY, MessageType.IMPORT})
NOTHING: Mapping[str, Any] = MappingProxyType({})

ECOMMERCE_EVENTS = frozenset(
    name.lower()
    for name in (
        "Products Searched", "Product List Viewed", "Product List Filtered",
        "Promotion Viewed", "Promotion Clicked", "Product Clicked", "Product Viewed",
        "Product Added", "Product Removed", "Cart Viewed", "Checkout Started",
        "Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered",
        "Order Updated", "Order Completed", "Order Refunded", "Order Cancelled",
        "Coupon Entered", "Coupon Applied", "Coupon Denied", "Coupon Removed",
        "Product Added to Wishlist", "Product Removed from Wishlist",
        "Wishlist Product Added to Cart", "Product Shared", "Cart Shared", "Product Reviewed",
    )
)  # fmt: skip
_ATTITUDINAL = re.compile(
    r"\b(survey|nps|net promoter|feedback|questionnaire|poll|csat|rating|rated)\b", re.I
)


def event_category(call: str, name: str | None) -> EventCategory:
    """E-commerce spec events are behavioural, survey-like ones attitudinal, the rest
    engagement.

    >>> event_category("track", "Order Completed").value
    'behavioural'
    >>> event_category("track", "NPS Survey Answered").value
    'attitudinal'
    """
    if call != "track" or not name:
        return EventCategory.ENGAGEMENT
    if name.strip().lower() in ECOMMERCE_EVENTS:
        return EventCategory.BEHAVIOURAL
    if _ATTITUDINAL.search(name):
        return EventCategory.ATTITUDINAL
    return EventCategory.ENGAGEMENT


class Named(NamedTuple):
    """An identifier as sent: its kind, its value and the field it came from."""

    kind: str
    value: object
    field: str


class Message(NamedTuple):
    """A message read from its wire format but not yet held to the rules: values as sent.
    (A named tuple, as the model's per-message values are: made in a fraction of the time.)"""

    type: MessageType
    identifiers: Sequence[Named] = ()
    traits: Mapping[str, Any] = NOTHING
    """the call's own traits"""
    cached_traits: Mapping[str, Any] = NOTHING
    """a library's cached copy (`context.traits`): they may identify, they are not news"""
    event: str | None = None
    """a track call's event name, or a page or screen name"""
    properties: Mapping[str, Any] = NOTHING
    category: EventCategory | None = None
    """None: the event name's category"""
    message_id: object = None
    timestamp: datetime | None = None
    consent: Mapping[str, ConsentStatus] = NOTHING


@dataclass(frozen=True)
class Mapper:
    """Turns messages into observations for the rules in force; errors are `SegmentError`s
    naming the field."""

    rules: Rules
    source: str

    @property
    def entry(self) -> str:
        """The entry point the metrics name: GraphQL callers choose their `source` freely."""
        return "graphql"

    def observation(self, message: Message, *, received_at: datetime | None = None) -> Observation:
        """The observation of a message received at `received_at` (default: now)."""
        named = (*message.identifiers, *_trait_names(message))
        found = [self.identifier(kind, value, field) for kind, value, field in named]
        if not found:
            raise SegmentError("MISSING_FIELD", "no identifier in the message")
        received = utc(received_at or datetime.now(UTC))
        return Observation(
            message_id=_message_id(message.message_id),
            timestamp=self._time(message.timestamp, received),
            source=self.source,
            type=message.type,
            identifiers=_each_once(found),
            traits=_recorded_traits(message),
            event=_event(message),
            consent=dict(message.consent),
        )

    def _time(self, claimed: datetime | None, received: datetime) -> datetime:
        """The claimed time, unless it is later than the receipt: then the receipt's."""
        if claimed is None:
            return received
        claimed = utc(claimed)
        if claimed > received:
            count_clamped(self.entry)
            return received
        return claimed

    def identifier(self, kind: str, raw: object, field: str) -> Identifier:
        """A normalised identifier, or a blocked one as sent (the resolver drops it)."""
        known = kind.strip().lower()
        if known in self.rules.kinds and isinstance(raw, str | int) and not isinstance(raw, bool):
            text = str(raw).strip()
            if self.rules.is_blocked(text, known):
                return Identifier(known, text)
        try:
            return normalize(kind, raw, self.rules)
        except (InvalidIdentifier, UnknownKind) as e:
            raise SegmentError(e.code, f"{field}: {e}", field=field) from e


def _each_once(identifiers: list[Identifier]) -> tuple[Identifier, ...]:
    """Each identifier once, in key order, whatever order the wire format gave them in."""
    unique = {i.key: i for i in identifiers}
    return tuple(unique[key] for key in sorted(unique))


def _trait_names(message: Message) -> list[Named]:
    """The identifiers the traits name."""
    own = message.traits if message.type is not MessageType.GROUP else NOTHING
    cached = message.cached_traits
    if not own and not cached:
        return []
    found = []
    for name in IDENTIFYING_TRAITS:
        if own.get(name) is not None:
            found.append(Named(name, own[name], f"traits.{name}"))
        elif cached.get(name) is not None:
            found.append(Named(name, cached[name], f"context.traits.{name}"))
    return found


def _recorded_traits(message: Message) -> dict[str, Any]:
    if message.type is MessageType.GROUP:
        return {"group": dict(message.traits)}
    return dict(message.traits) if message.type in RECORDS_TRAITS else {}


def _message_id(raw: object) -> str:
    if raw is None:
        return str(uuid.uuid4())
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_MESSAGE_ID:
        raise SegmentError(
            "INVALID_FIELD",
            f"messageId must be a string of 1 to {MAX_MESSAGE_ID} characters",
            field="messageId",
        )
    return raw


def utc(value: datetime) -> datetime:
    """An aware time in UTC; a naive one is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _event(message: Message) -> Event | None:
    if message.type not in EVENT_TYPES:
        return None
    name = message.event
    if message.type is MessageType.TRACK and not (name and name.strip()):
        raise SegmentError("MISSING_FIELD", "event is required", field="event")
    category = message.category or event_category(message.type, name)
    return Event(message.type, name, dict(message.properties), category)
