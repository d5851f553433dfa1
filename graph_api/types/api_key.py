from __future__ import annotations

from datetime import datetime

import strawberry

from identity_graph.records import ApiKey


@strawberry.type(description="A new API key. `key` is shown this once; only its hash is stored.")
class ApiKeyCreated:
    id: strawberry.ID
    key: str
    role: str
    name: str | None
    created_at: datetime

    @classmethod
    def from_domain(cls, key: str, record: ApiKey) -> ApiKeyCreated:
        return cls(
            id=strawberry.ID(record.id),
            key=key,
            role=record.role,
            name=record.name,
            created_at=record.created_at,
        )
