from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api.types.identifier import IdentifierRef
from identity_graph.model import Identifier
from identity_graph.model import MergeConflict as DomainMergeConflict


@strawberry.type(description="An observation whose identifiers could not all be joined.")
class MergeConflict:
    id: strawberry.ID
    at: datetime
    message_id: str
    customer_id: strawberry.ID
    dropped: list[IdentifierRef]
    reason: str = strawberry.field(
        description="Why, with identifiers named by kind only: values are in `dropped`."
    )

    @classmethod
    def from_domain(cls, conflict: DomainMergeConflict) -> MergeConflict:
        reason = conflict.reason
        for key in conflict.dropped:
            reason = reason.replace(key, Identifier.from_key(key).kind)
        return cls(
            id=strawberry.ID(conflict.id),
            at=conflict.at,
            message_id=conflict.message_id,
            customer_id=strawberry.ID(conflict.profile_id),
            dropped=[IdentifierRef.from_key(k, conflict.profile_id) for k in conflict.dropped],
            reason=reason,
        )
