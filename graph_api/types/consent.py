from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from identity_graph.model import ConsentRecord


@strawberry.enum
class ConsentStatus(Enum):
    GRANTED = "GRANTED"
    DENIED = "DENIED"
    REVOKED = "REVOKED"


@strawberry.type(description="The effective consent choice for one purpose.")
class Consent:
    purpose: str
    status: ConsentStatus
    at: datetime
    source: str

    @classmethod
    def from_domain(cls, record: ConsentRecord) -> Consent:
        return cls(
            purpose=record.purpose,
            status=ConsentStatus(record.status.value),
            at=record.at,
            source=record.source,
        )


@strawberry.input(description="A consent choice for one purpose.")
class ConsentInput:
    purpose: str = strawberry.field(
        description="analytics, email_marketing, advertising, personalization or sale_of_data"
    )
    status: ConsentStatus
