"""A change of the partition (merge, undo, split) as GraphQL shows it.

Undos and splits are made by an operator: the store records `operator:<principal id>` (an
API key's id, or a JWT's subject) where a merge records its message id. Every role learns
that an operator acted; only admins learn which one (`operatorId`), and nothing derived from
a secret is ever recorded.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from graph_api import described
from graph_api.access.auth import ADMIN_ROLES, Principal
from graph_api.context import Info
from graph_api.limits import page_size
from graph_api.types.identifier import IdentifierRef
from graph_api.types.link import Link
from identity_graph.model import MergeKind
from identity_graph.model import MergeRecord as DomainMergeRecord

strawberry.enum(MergeKind)  # the domain's own enum: no value can be left out of the SDL

OPERATOR = "operator:"
DEFAULT_PART = 20


def operator(principal: Principal) -> str:
    """What an undo or a split records of who made it."""
    return OPERATOR + principal.id


@strawberry.enum(description="Who caused a merge record.")
class ActorKind(Enum):
    MESSAGE = "MESSAGE"
    """an observation (its message id is `messageId`)"""
    OPERATOR = "OPERATOR"
    """a person or tool calling `undoMerge` or `unmerge`"""


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
    actor: ActorKind
    message_id: str | None = strawberry.field(
        description="The message that caused a merge; null for an operator's change."
    )
    undoes: strawberry.ID | None
    undone_by: strawberry.ID | None
    record: strawberry.Private[DomainMergeRecord]

    @described.field("The links that caused a merge (or that an undo or split cut).")
    async def links(self, info: Info, first: int = DEFAULT_PART) -> list[Link]:
        links = self.record.links[: page_size(first, info.context.services.settings)]
        keys = [key for link in links for key in (link.a, link.b)]
        holders = await info.context.loaders.holders(keys, otherwise=self.record.survivor)
        return [Link.from_domain(link, holders) for link in links]

    @described.field("The identifiers a split moved.")
    async def identifiers(self, info: Info, first: int = DEFAULT_PART) -> list[IdentifierRef]:
        keys = self.record.identifiers[: page_size(first, info.context.services.settings)]
        holders = await info.context.loaders.holders(keys, otherwise=self.record.survivor)
        return [IdentifierRef.from_key(key, holders[key]) for key in keys]

    @described.field(
        "Which operator made an undo or a split (an API key id or a JWT subject);"
        " null for a merge, and for every role but admin."
    )
    def operator_id(self, info: Info) -> str | None:
        actor = self.record.message_id or ""
        if not actor.startswith(OPERATOR) or info.context.principal.roles.isdisjoint(ADMIN_ROLES):
            return None
        return actor.removeprefix(OPERATOR)

    @classmethod
    def from_domain(cls, record: DomainMergeRecord) -> MergeRecord:
        by_operator = (record.message_id or "").startswith(OPERATOR)
        return cls(
            id=strawberry.ID(record.id),
            at=record.at,
            kind=record.kind,
            survivor_id=strawberry.ID(record.survivor),
            absorbed_id=strawberry.ID(record.absorbed),
            actor=ActorKind.OPERATOR if by_operator else ActorKind.MESSAGE,
            message_id=None if by_operator else record.message_id,
            undoes=strawberry.ID(record.undoes) if record.undoes else None,
            undone_by=strawberry.ID(record.undone_by) if record.undone_by else None,
            record=record,
        )
