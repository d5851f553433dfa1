"""Events (track, page and screen calls) and their Relay connection, newest first."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from graph_api import totals
from graph_api.access.categories import PiiClassifier
from graph_api.access.pii import pii_field
from graph_api.types.page_info import PageInfo
from identity_graph.model import EventCategory as DomainCategory
from identity_graph.model import MessageType, Page, StoredEvent
from identity_graph.store import event_cursor


@strawberry.enum(description="The call that recorded an event.")
class EventType(Enum):
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"


@strawberry.enum(description="What an event says about the customer.")
class EventCategory(Enum):
    ENGAGEMENT = "engagement"
    BEHAVIOURAL = "behavioural"
    ATTITUDINAL = "attitudinal"

    def to_domain(self) -> DomainCategory:
        return DomainCategory(self.value)


@strawberry.type
class Event:
    id: strawberry.ID = strawberry.field(description="The message id of the call.")
    type: EventType
    name: str | None
    category: EventCategory
    timestamp: datetime
    source: str
    properties: JSON = pii_field(classified_by=PiiClassifier.EVENT_PROPERTY)
    customer_id: strawberry.Private[str | None] = None
    """the customer the value was read from, for the PII audit"""

    @classmethod
    def from_domain(cls, event: StoredEvent, customer_id: str | None = None) -> Event:
        return cls(
            id=strawberry.ID(event.message_id),
            type=_TYPES[event.type],
            name=event.name,
            category=_CATEGORIES[event.category],
            timestamp=event.timestamp,
            source=event.source,
            # the guard renders a copy where the caller may not read it all as it is
            properties=JSON(
                event.properties if isinstance(event.properties, dict) else dict(event.properties)
            ),
            customer_id=customer_id,
        )


_TYPES = {MessageType(t.value): t for t in EventType}
_CATEGORIES = {DomainCategory(c.value): c for c in EventCategory}


@strawberry.type
class EventEdge:
    node: Event
    cursor: str


@strawberry.type
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description=totals.DESCRIPTION)

    @classmethod
    def from_domain(
        cls, page: Page[StoredEvent], customer_id: str | None = None
    ) -> EventConnection:
        edges = [
            EventEdge(
                node=Event.from_domain(e, customer_id),
                cursor=event_cursor(e),
            )
            for e in page.items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.more,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=page.total,
        )


def domain_types(types: list[EventType] | None) -> tuple[str, ...] | None:
    return tuple(sorted(MessageType(t.value).value for t in types)) if types else None
