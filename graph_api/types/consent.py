from __future__ import annotations

from datetime import datetime

import strawberry

from identity_graph.model import ConsentRecord, ConsentStatus

strawberry.enum(ConsentStatus)  # the domain's own enum: no value can be left out of the SDL


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
            status=record.status,
            at=record.at,
            source=record.source,
        )


@strawberry.input(description="A consent choice for one purpose.")
class ConsentInput:
    purpose: str = strawberry.field(
        description="analytics, email_marketing, advertising, personalization or sale_of_data"
    )
    status: ConsentStatus
