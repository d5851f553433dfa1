from __future__ import annotations

import strawberry

from graph_api.context import Info
from graph_api.types.link import Link
from identity_graph.model import Link as DomainLink
from identity_graph.service import Explanation


@strawberry.type(description="Why two identifiers belong to one customer: the links joining them.")
class LinkExplanation:
    linked: bool
    customer_id: strawberry.ID | None
    links: strawberry.Private[tuple[DomainLink, ...]]

    @strawberry.field
    async def path(self, info: Info) -> list[Link]:
        if not self.links or self.customer_id is None:
            return []
        keys = [key for link in self.links for key in (link.a, link.b)]
        holders = await info.context.loaders.holders(keys, otherwise=str(self.customer_id))
        return [Link.from_domain(link, holders) for link in self.links]

    @classmethod
    def from_domain(cls, explanation: Explanation) -> LinkExplanation:
        pid = explanation.profile_id
        return cls(
            linked=explanation.linked,
            customer_id=strawberry.ID(pid) if pid else None,
            links=explanation.path,
        )
