"""Audit entries: who read which personal fields of which customer, clear, and when."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api import totals
from graph_api.types.page_info import PageInfo
from identity_graph.model import Page
from identity_graph.records import AuditEntry as DomainAuditEntry


@strawberry.type(description="One request's clear reads of one customer's personal data.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    principal: str
    role: str
    customer_id: strawberry.ID
    fields: list[str]

    @classmethod
    def from_domain(cls, entry: DomainAuditEntry) -> AuditEntry:
        return cls(
            id=strawberry.ID(entry.id),
            at=entry.at,
            principal=entry.principal,
            role=entry.role,
            customer_id=strawberry.ID(entry.customer_id),
            fields=list(entry.fields),
        )


@strawberry.type
class AuditEntryEdge:
    node: AuditEntry
    cursor: str


@strawberry.type
class AuditConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description=totals.DESCRIPTION)

    @classmethod
    def from_domain(cls, page: Page[DomainAuditEntry]) -> AuditConnection:
        edges = [
            AuditEntryEdge(node=AuditEntry.from_domain(entry), cursor=entry.id)
            for entry in page.items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.more, end_cursor=page.cursor),
            total_count=page.total,
        )
