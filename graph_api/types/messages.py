"""Mutation inputs for `identify`, `track` and `ingest`, turned into domain observations."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from graph_api.errors import bad_input
from graph_api.types.event import EventCategory, EventType
from graph_api.types.identifier import IdentifierInput
from identity_graph.model import Event, Identifier, MessageType, Observation
from identity_graph.normalize import normalize
from identity_graph.resolver import Outcome
from identity_graph.rules import Rules

DEFAULT_SOURCE = "graphql"


@strawberry.enum
class MessageKind(Enum):
    IDENTIFY = "identify"
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"
    ALIAS = "alias"
    GROUP = "group"


@strawberry.input
class IdentifyInput:
    user_id: str | None = None
    anonymous_id: str | None = None
    identifiers: list[IdentifierInput] | None = None
    traits: JSON | None = strawberry.field(
        default=None, description="`email` and `phone` traits also identify the customer."
    )
    message_id: str | None = strawberry.field(default=None, description="Idempotency key.")
    timestamp: datetime | None = None
    source: str | None = None

    def to_observation(self, rules: Rules) -> Observation:
        return MessageInput(
            type=MessageKind.IDENTIFY,
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            identifiers=self.identifiers,
            traits=self.traits,
            message_id=self.message_id,
            timestamp=self.timestamp,
            source=self.source,
        ).to_observation(rules)


@strawberry.input
class TrackInput:
    event: str
    type: EventType = EventType.TRACK
    category: EventCategory = EventCategory.ENGAGEMENT
    properties: JSON | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    identifiers: list[IdentifierInput] | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    source: str | None = None

    def to_observation(self, rules: Rules) -> Observation:
        return MessageInput(
            type=MessageKind(self.type.value),
            event=self.event,
            category=self.category,
            properties=self.properties,
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            identifiers=self.identifiers,
            message_id=self.message_id,
            timestamp=self.timestamp,
            source=self.source,
        ).to_observation(rules)


@strawberry.input(description="One message of an `ingest` batch.")
class MessageInput:
    type: MessageKind
    user_id: str | None = None
    anonymous_id: str | None = None
    identifiers: list[IdentifierInput] | None = None
    traits: JSON | None = None
    event: str | None = strawberry.field(
        default=None, description="The event name of a track call, the page or screen name."
    )
    category: EventCategory = EventCategory.ENGAGEMENT
    properties: JSON | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    source: str | None = None

    def to_observation(self, rules: Rules) -> Observation:
        """Normalise identifiers (raising `InvalidIdentifier` / `UnknownKind`) and fill in
        a message id and the current time when absent."""
        traits = _mapping(self.traits, "traits")
        properties = _mapping(self.properties, "properties")
        identifiers = _identifiers(self, traits, rules)
        if not identifiers:
            raise bad_input("a message needs userId, anonymousId or identifiers")
        message_type = MessageType(self.type.value)
        event = None
        if message_type in (MessageType.TRACK, MessageType.PAGE, MessageType.SCREEN):
            if message_type is MessageType.TRACK and not self.event:
                raise bad_input("a track message needs an event name")
            event = Event(message_type, self.event, properties, self.category.to_domain())
        timestamp = self.timestamp or datetime.now(UTC)
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        return Observation(
            message_id=self.message_id or uuid.uuid4().hex,
            timestamp=timestamp,
            source=self.source or DEFAULT_SOURCE,
            type=message_type,
            identifiers=tuple(identifiers),
            traits=traits,
            event=event,
        )


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise bad_input(f"{name} must be a JSON object")
    return dict(value)


def _identifiers(
    message: MessageInput, traits: Mapping[str, Any], rules: Rules
) -> list[Identifier]:
    raw: list[tuple[str, Any]] = [(i.kind, i.value) for i in message.identifiers or ()]
    if message.user_id is not None:
        raw.append(("user_id", message.user_id))
    if message.anonymous_id is not None:
        raw.append(("anonymous_id", message.anonymous_id))
    for kind in ("email", "phone"):
        if traits.get(kind) is not None:
            raw.append((kind, traits[kind]))
    found = {normalize(kind, value, rules) for kind, value in raw}
    return sorted(found)


@strawberry.type(description="What became of one message.")
class IngestResult:
    message_id: str
    status: str = strawberry.field(
        description="`applied`, `duplicate` (the message id was seen before) or `dropped`"
        " (every identifier was blocked)."
    )
    customer_id: strawberry.ID | None
    merges: list[strawberry.ID]
    conflict: strawberry.ID | None

    @classmethod
    def from_domain(cls, outcome: Outcome) -> IngestResult:
        return cls(
            message_id=outcome.message_id,
            status=outcome.status,
            customer_id=strawberry.ID(outcome.profile_id) if outcome.profile_id else None,
            merges=[strawberry.ID(m) for m in outcome.merges],
            conflict=strawberry.ID(outcome.conflict) if outcome.conflict else None,
        )
