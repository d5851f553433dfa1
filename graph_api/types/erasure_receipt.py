"""What an erasure did, as GraphQL shows it: counts and times, never a value."""

from __future__ import annotations

from datetime import datetime

import strawberry

from identity_graph.privacy import ErasureReceipt as DomainErasureReceipt


@strawberry.type(
    description="An erasure: what was deleted (counts only) and when. The reason and the"
    " operator are kept with it in the store."
)
class ErasureReceipt:
    id: strawberry.ID
    customer_id: strawberry.ID = strawberry.field(
        description="The erased customer (an absorbed id given to eraseCustomer names its"
        " survivor here)."
    )
    erased_at: datetime
    identifiers: int = strawberry.field(description="Identifiers deleted.")
    events: int = strawberry.field(description="Events deleted.")
    suppressed: int = strawberry.field(
        description="Identifiers put on the suppression list (0 with suppress: false)."
    )

    @classmethod
    def from_domain(cls, receipt: DomainErasureReceipt) -> ErasureReceipt:
        return cls(
            id=strawberry.ID(receipt.id),
            customer_id=strawberry.ID(receipt.customer_id),
            erased_at=receipt.erased_at,
            identifiers=receipt.identifiers,
            events=receipt.events,
            suppressed=receipt.suppressed,
        )
