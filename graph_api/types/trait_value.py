from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graph_api.access.categories import PiiClassifier
from graph_api.access.pii import pii_field
from identity_graph.model import TraitValue as DomainTraitValue


@strawberry.type(description="One observed value of a trait, with its evidence.")
class TraitValue:
    name: str
    value: JSON | None = pii_field(classified_by=PiiClassifier.TRAIT_NAME)
    source: str
    observed_at: datetime
    message_id: str
    customer_id: strawberry.Private[str | None] = None
    """the customer the value was read from, for the PII audit"""

    @classmethod
    def from_domain(cls, value: DomainTraitValue, customer_id: str | None = None) -> TraitValue:
        return cls(
            name=value.name,
            value=value.value,
            source=value.source,
            observed_at=value.observed_at,
            message_id=value.message_id,
            customer_id=customer_id,
        )
