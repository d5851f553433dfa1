from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import strawberry

from graph_api.types.identifier import IdentifierRef
from identity_graph.model import Link as DomainLink


@strawberry.type(description="Two identifiers seen together, with the evidence.")
class Link:
    from_: IdentifierRef = strawberry.field(name="from")
    to: IdentifierRef
    source: str
    message_id: str
    observed_at: datetime
    rule: str

    @classmethod
    def from_domain(cls, link: DomainLink, holders: Mapping[str, str]) -> Link:
        """`holders`: who holds each end now (`Loaders.holders`), for the PII audit."""
        return cls(
            from_=IdentifierRef.from_key(link.a, holders[link.a]),
            to=IdentifierRef.from_key(link.b, holders[link.b]),
            source=link.source,
            message_id=link.message_id,
            observed_at=link.observed_at,
            rule=link.rule,
        )
