"""The suppression list as admins see it: keyed hashes of erased identifiers, never values."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api.types.page_info import PageInfo
from identity_graph.model import Page
from identity_graph.privacy import Suppression as DomainSuppression


@strawberry.type(
    description="An erased identifier that later messages lose, as if it were a blocked"
    " value: its keyed hash and kind only."
)
class Suppression:
    hash: str = strawberry.field(description="HMAC-SHA256 (C360_HASH_KEY) of kind:value.")
    kind: str
    erasure_id: strawberry.ID | None = strawberry.field(
        description="The erasure that suppressed it."
    )
    at: datetime

    @classmethod
    def from_domain(cls, suppression: DomainSuppression) -> Suppression:
        return cls(
            hash=suppression.hash,
            kind=suppression.kind,
            erasure_id=strawberry.ID(suppression.erasure_id) if suppression.erasure_id else None,
            at=suppression.at,
        )


@strawberry.type
class SuppressionEdge:
    node: Suppression
    cursor: str


@strawberry.type
class SuppressionConnection:
    edges: list[SuppressionEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_domain(cls, page: Page[DomainSuppression]) -> SuppressionConnection:
        edges = [
            SuppressionEdge(node=Suppression.from_domain(entry), cursor=entry.hash)
            for entry in page.items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.more, end_cursor=page.cursor),
            total_count=page.total,
        )
