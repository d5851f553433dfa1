"""Destinations and their deliveries, as admins see them: the signing secret only once (when
made or rotated), header values never."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graph_api import described
from graph_api.activation.manage import outbox
from graph_api.context import Info
from graph_api.errors import bad_input
from graph_api.limits import page_size
from graph_api.types.page_info import PageInfo
from identity_graph.activation.deliveries import Delivery as DomainDelivery
from identity_graph.activation.deliveries import DeliveryStatus
from identity_graph.activation.destinations import Destination as DomainDestination
from identity_graph.activation.destinations import DestinationFormat, DestinationStatus
from identity_graph.audiences.store import ChangeKind
from identity_graph.model import Page

strawberry.enum(
    DestinationFormat,
    description="What a destination receives: STANDARD (Standard Webhooks events), HUBSPOT"
    " (a contacts batch upsert by email), SALESFORCE (a Contact upsert by external id).",
)
strawberry.enum(
    DestinationStatus,
    description="ACTIVE; FAILING (its last attempts failed: retried with backoff); DISABLED"
    " (by an admin, or by the receiver answering 410 Gone).",
)
strawberry.enum(
    DeliveryStatus,
    description="PENDING (to be sent, or sent again, at nextAttemptAt); DELIVERED; FAILED"
    " (retried until the retry window closed); SKIPPED (not sent: consent withdrawn, customer"
    " gone, nothing to upsert).",
)


@strawberry.type(description="One audience change on its way to one destination.")
class Delivery:
    id: strawberry.ID
    webhook_id: str = strawberry.field(
        description="The `webhook-id` header: the same on every attempt, for deduplication."
    )
    audience_id: strawberry.ID
    customer_id: strawberry.ID
    kind: ChangeKind
    changed_at: datetime
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    response_status: int | None
    delivered_at: datetime | None

    @classmethod
    def from_domain(cls, d: DomainDelivery) -> Delivery:
        return cls(
            id=strawberry.ID(d.id),
            webhook_id=d.webhook_id,
            audience_id=strawberry.ID(d.audience_id),
            customer_id=strawberry.ID(d.customer_id),
            kind=d.kind,
            changed_at=d.changed_at,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status is DeliveryStatus.PENDING else None,
            last_attempt_at=d.last_attempt_at,
            last_error=d.last_error,
            response_status=d.response_status,
            delivered_at=d.delivered_at,
        )


@strawberry.type
class DeliveryEdge:
    node: Delivery
    cursor: str


@strawberry.type
class DeliveryConnection:
    edges: list[DeliveryEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_domain(cls, page: Page[DomainDelivery]) -> DeliveryConnection:
        return cls(
            edges=[DeliveryEdge(node=Delivery.from_domain(d), cursor=d.id) for d in page.items],
            page_info=PageInfo(has_next_page=page.more, end_cursor=page.cursor),
            total_count=page.total,
        )


@strawberry.type(description="Where audience changes are delivered, signed, as a role sees them.")
class Destination:
    id: strawberry.ID
    name: str
    url: str
    audience_ids: list[strawberry.ID]
    format: DestinationFormat
    role: str = strawberry.field(
        description="What of a customer it receives: what this role may read, as it may read it."
    )
    status: DestinationStatus
    last_error: str | None
    mapping: JSON = strawberry.field(
        description="CRM property -> source (`traits.NAME`, `computed.NAME`,"
        " `identifiers.KIND`, `id`) over the format's defaults, and `$option` settings."
    )
    header_names: list[str] = strawberry.field(
        description="The extra headers sent with every request (their values are never shown)."
    )
    secret_count: int = strawberry.field(
        description="Secrets signing now: 2 during a rotation's grace period."
    )
    created_at: datetime
    updated_at: datetime | None

    @described.field("Its deliveries, newest first, a page at a time; `status` filters.")
    async def deliveries(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        status: DeliveryStatus | None = None,
    ) -> DeliveryConnection:
        size = page_size(first, info.context.services.settings)
        if after is not None and len(after) > 200:
            raise bad_input("after: not a delivery id")
        page = await outbox(info.context.services).deliveries(
            str(self.id), first=size, after=after, status=status
        )
        return DeliveryConnection.from_domain(page)

    @classmethod
    def from_domain(cls, d: DomainDestination, now: datetime) -> Destination:
        return cls(
            id=strawberry.ID(d.id),
            name=d.name,
            url=d.url,
            audience_ids=[strawberry.ID(a) for a in d.audience_ids],
            format=d.format,
            role=d.role,
            status=d.status,
            last_error=d.last_error,
            mapping=JSON(dict(d.mapping)),
            header_names=sorted(d.headers),
            secret_count=len(d.signing_keys(now)),
            created_at=d.created_at,
            updated_at=d.updated_at,
        )


@strawberry.type(
    description="A destination with its new signing secret (`whsec_...`), shown this once."
)
class DestinationCreated:
    destination: Destination
    secret: str
