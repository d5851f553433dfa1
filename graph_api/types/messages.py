"""Mutation inputs for `identify`, `track` and `ingest`, turned into domain observations by
the mapper every entry point shares (`graph_api.tracking.mapper`): the same rules as the
Segment tracking API and the importer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from graph_api import described
from graph_api.access.auth import READ_ROLES
from graph_api.context import Info
from graph_api.errors import ApiError, SegmentError, bad_input
from graph_api.tracking.mapper import Mapper, Message, Named
from graph_api.types.event import EventCategory, EventType
from graph_api.types.identifier import IdentifierInput
from identity_graph.model import EventCategory as DomainCategory
from identity_graph.model import MessageType, Observation
from identity_graph.resolver import Outcome
from identity_graph.rules import Rules

DEFAULT_SOURCE = "graphql"
GRAPHQL_CODES = {"MISSING_FIELD": "BAD_INPUT", "INVALID_FIELD": "BAD_INPUT"}
"""the mapper's error codes -> GraphQL's (the rest, INVALID_IDENTIFIER and UNKNOWN_KIND,
are the same)"""


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
        """The observation by the one mapping every entry point shares
        (`graph_api.tracking.mapper`); an error is an `ApiError` naming the field."""
        named = [
            Named(i.kind, i.value, f"identifiers[{n}].value")
            for n, i in enumerate(self.identifiers or ())
        ]
        if self.user_id is not None:
            named.append(Named("user_id", self.user_id, "userId"))
        if self.anonymous_id is not None:
            named.append(Named("anonymous_id", self.anonymous_id, "anonymousId"))
        message = Message(
            type=MessageType(self.type.value),
            identifiers=named,
            traits=_mapping(self.traits, "traits"),
            event=self.event,
            properties=_mapping(self.properties, "properties"),
            category=_category(self.category),
            message_id=self.message_id,
            timestamp=self.timestamp,
        )
        try:
            return Mapper(rules, source=self.source or DEFAULT_SOURCE).observation(message)
        except SegmentError as e:
            raise ApiError(GRAPHQL_CODES.get(e.code, e.code), e.message) from e


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise bad_input(f"{name} must be a JSON object")
    return dict(value)


def _category(category: EventCategory) -> DomainCategory | None:
    """The caller's category; the default, engagement, leaves it to the event's name."""
    return None if category is EventCategory.ENGAGEMENT else category.to_domain()


@strawberry.type(
    description="What became of one message. What it did to the graph (`customerId`,"
    " `merges`, `conflict`) is shown only to a caller whose role reads customers: a write key"
    " (role `ingest`) ships inside apps, so it learns nothing, not even whether an"
    " identifier was known."
)
class IngestResult:
    message_id: str
    status: str = strawberry.field(
        description="`applied`, `duplicate` (the message id was seen before) or `dropped`"
        " (every identifier was blocked)."
    )
    outcome: strawberry.Private[Outcome]

    @described.field(
        "The customer the message landed on; null for a caller whose role does not read customers."
    )
    def customer_id(self, info: Info) -> strawberry.ID | None:
        profile_id = self.outcome.profile_id
        return strawberry.ID(profile_id) if profile_id and reads_customers(info) else None

    @described.field(
        "The merges the message caused; null for a caller whose role does not read customers."
    )
    def merges(self, info: Info) -> list[strawberry.ID] | None:
        if not reads_customers(info):
            return None
        return [strawberry.ID(m) for m in self.outcome.merges]

    @described.field(
        "The merge conflict the message raised, if any; null for a caller whose"
        " role does not read customers."
    )
    def conflict(self, info: Info) -> strawberry.ID | None:
        conflict = self.outcome.conflict
        return strawberry.ID(conflict) if conflict and reads_customers(info) else None

    @classmethod
    def from_domain(cls, outcome: Outcome) -> IngestResult:
        return cls(message_id=outcome.message_id, status=outcome.status, outcome=outcome)


def reads_customers(info: Info) -> bool:
    return not info.context.principal.roles.isdisjoint(READ_ROLES)
