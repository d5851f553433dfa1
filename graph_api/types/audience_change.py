"""The log of an audience's entries and exits."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api.types.page_info import PageInfo
from identity_graph.audiences.store import AudienceChange as DomainChange
from identity_graph.audiences.store import ChangeKind
from identity_graph.model import Page

strawberry.enum(
    ChangeKind, name="AudienceChangeKind", description="Whether a customer entered or left."
)


@strawberry.type(description="A customer entered or left an audience.")
class AudienceChange:
    id: strawberry.ID
    customer_id: strawberry.ID
    kind: ChangeKind
    at: datetime

    @classmethod
    def from_domain(cls, change: DomainChange) -> AudienceChange:
        return cls(
            id=strawberry.ID(change.id),
            customer_id=strawberry.ID(change.customer_id),
            kind=change.kind,
            at=change.at,
        )


@strawberry.type
class AudienceChangeEdge:
    node: AudienceChange
    cursor: str


@strawberry.type
class AudienceChangeConnection:
    edges: list[AudienceChangeEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_domain(cls, page: Page[DomainChange]) -> AudienceChangeConnection:
        edges = [
            AudienceChangeEdge(node=AudienceChange.from_domain(c), cursor=c.id) for c in page.items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.more, end_cursor=page.cursor),
            total_count=page.total,
        )
