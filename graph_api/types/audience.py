"""An audience: the customers a condition selects, kept up to date as their data changes."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graph_api.access.auth import AUDIENCE_ROLES
from graph_api.access.categories import PiiClassifier
from graph_api.access.permissions import Roles, operation
from graph_api.access.pii import pii_field
from graph_api.context import Info
from graph_api.limits import page_size
from graph_api.types.customer import Customer, CustomerConnection, CustomerEdge
from graph_api.types.page_info import PageInfo
from identity_graph.audiences.store import Audience as DomainAudience
from identity_graph.audiences.store import Status

strawberry.enum(
    Status, name="AudienceStatus", description="BUILDING while evaluated for every customer."
)

DEFAULT_MEMBERS = 20


@strawberry.type(
    description="The customers a condition selects (and, with a purpose, who granted consent"
    " for it), kept exact within a second of the writes that change them."
)
class Audience:
    id: strawberry.ID
    name: str
    condition: JSON = pii_field(
        classified_by=PiiClassifier.AUDIENCE_CONDITION,
        description="The condition tree; the values it tests read as the caller may read"
        " the traits and properties they are compared with.",
    )
    purpose: str | None = strawberry.field(
        description="The consent purpose members must have granted, if any."
    )
    size: int = strawberry.field(description="Members now.")
    status: Status
    progress: float = strawberry.field(description="Of the build under way, 0 to 1 (1 when READY).")
    built_at: datetime | None = strawberry.field(description="When its last build finished.")
    created_at: datetime

    @classmethod
    def from_domain(cls, audience: DomainAudience) -> Audience:
        return cls(
            id=strawberry.ID(audience.id),
            name=audience.name,
            condition=JSON(audience.condition),
            purpose=audience.purpose,
            size=audience.size,
            status=audience.status,
            progress=audience.progress,
            built_at=audience.built_at,
            created_at=audience.created_at,
        )

    @operation(
        "Members in customer id order, a page at a time.",
        allow=Roles(AUDIENCE_ROLES, "list audience members"),
    )
    async def members(
        self, info: Info, first: int = DEFAULT_MEMBERS, after: str | None = None
    ) -> CustomerConnection:
        services = info.context.services
        size = page_size(first, services.settings)
        page = await services.audiences.audiences.members(str(self.id), first=size, after=after)
        edges = [
            CustomerEdge(node=Customer(id=strawberry.ID(m.customer_id)), cursor=m.customer_id)
            for m in page.items
        ]
        return CustomerConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.more, end_cursor=page.cursor),
            total_count=page.total,
        )
