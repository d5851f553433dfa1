"""A computed trait's definition: a value computed from each customer's events."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from identity_graph.audiences.store import ComputedTrait as DomainComputedTrait


@strawberry.type(
    description="A value computed from each customer's events (a count, a sum, the last value"
    " of a property...), read as `Customer.computedTraits` and usable in audience conditions."
)
class ComputedTrait:
    name: str
    definition: JSON = strawberry.field(
        description="As defined: kind, event, type, property, within_days, where."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_domain(cls, trait: DomainComputedTrait) -> ComputedTrait:
        return cls(
            name=trait.name,
            definition=JSON(dict(trait.definition)),
            created_at=trait.created_at,
            updated_at=trait.updated_at,
        )
