from __future__ import annotations

import strawberry

from graph_api.types.link import Link
from identity_graph.service import Explanation


@strawberry.type(description="Why two identifiers belong to one customer: the links joining them.")
class LinkExplanation:
    linked: bool
    customer_id: strawberry.ID | None
    path: list[Link]

    @classmethod
    def from_domain(cls, explanation: Explanation) -> LinkExplanation:
        pid = explanation.profile_id
        return cls(
            linked=explanation.linked,
            customer_id=strawberry.ID(pid) if pid else None,
            path=[Link.from_domain(link, pid) for link in explanation.path],
        )
