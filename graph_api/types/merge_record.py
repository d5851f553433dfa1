from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api.types.identifier import IdentifierRef
from graph_api.types.link import Link
from identity_graph.model import MergeKind
from identity_graph.model import MergeRecord as DomainMergeRecord

strawberry.enum(MergeKind)  # the domain's own enum: no value can be left out of the SDL


@strawberry.type(
    description="A merge (survivor absorbed absorbed), the undo of one, or a split"
    " (unmerge: survivor is the profile split from, absorbed the new one)."
)
class MergeRecord:
    id: strawberry.ID
    at: datetime
    kind: MergeKind
    survivor_id: strawberry.ID
    absorbed_id: strawberry.ID
    links: list[Link]
    identifiers: list[IdentifierRef]
    message_id: str | None
    undoes: strawberry.ID | None
    undone_by: strawberry.ID | None

    @classmethod
    def from_domain(cls, record: DomainMergeRecord) -> MergeRecord:
        return cls(
            id=strawberry.ID(record.id),
            at=record.at,
            kind=record.kind,
            survivor_id=strawberry.ID(record.survivor),
            absorbed_id=strawberry.ID(record.absorbed),
            links=[Link.from_domain(link, record.survivor) for link in record.links],
            identifiers=[IdentifierRef.from_key(k, record.survivor) for k in record.identifiers],
            message_id=record.message_id,
            undoes=strawberry.ID(record.undoes) if record.undoes else None,
            undone_by=strawberry.ID(record.undone_by) if record.undone_by else None,
        )
