from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api import described
from graph_api.context import Info
from graph_api.limits import page_size
from graph_api.types.identifier import IdentifierRef
from graph_api.types.merge_record import DEFAULT_PART
from identity_graph.model import Identifier
from identity_graph.model import MergeConflict as DomainMergeConflict


@strawberry.type(description="An observation whose identifiers could not all be joined.")
class MergeConflict:
    id: strawberry.ID
    at: datetime
    message_id: str
    customer_id: strawberry.ID
    reason: str = strawberry.field(
        description="Why, with identifiers named by kind only: values are in `dropped`."
    )
    keys: strawberry.Private[tuple[str, ...]]

    @described.field("The identifiers the observation could not join.")
    async def dropped(self, info: Info, first: int = DEFAULT_PART) -> list[IdentifierRef]:
        keys = self.keys[: page_size(first, info.context.services.settings)]
        # a dropped identifier is another customer's, or (held by no one) this one's
        holders = await info.context.loaders.holders(keys, otherwise=str(self.customer_id))
        return [IdentifierRef.from_key(key, holders[key]) for key in keys]

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
            keys=tuple(conflict.dropped),
            reason=reason,
        )
