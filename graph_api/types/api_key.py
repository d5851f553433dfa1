"""API keys as admins see them: never the key, nor its hash; the new key itself once."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api.types.page_info import PageInfo
from identity_graph.model import Page
from identity_graph.records import ApiKey as DomainApiKey


@strawberry.type(description="An API key's record: who it is for and how long it works.")
class ApiKey:
    id: strawberry.ID
    role: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None = strawberry.field(
        description="From then on the key is refused; null: it does not expire."
    )
    revoked_at: datetime | None

    @classmethod
    def from_domain(cls, record: DomainApiKey) -> ApiKey:
        return cls(
            id=strawberry.ID(record.id),
            role=record.role,
            name=record.name,
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
        )


@strawberry.type(description="A new API key. `key` is shown this once; only its hash is stored.")
class ApiKeyCreated(ApiKey):
    key: str

    @classmethod
    def made(cls, key: str, record: DomainApiKey) -> ApiKeyCreated:
        return cls(key=key, **vars(ApiKey.from_domain(record)))


@strawberry.type
class ApiKeyEdge:
    node: ApiKey
    cursor: str


@strawberry.type
class ApiKeyConnection:
    edges: list[ApiKeyEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_domain(cls, page: Page[DomainApiKey]) -> ApiKeyConnection:
        edges = [ApiKeyEdge(node=ApiKey.from_domain(key), cursor=key.id) for key in page.items]
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.more, end_cursor=page.cursor),
            total_count=page.total,
        )
