from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from graph_api.errors import bad_input
from graph_api.types.identifier import IdentifierInput
from identity_graph.errors import UnknownKind
from identity_graph.model import PURPOSES
from identity_graph.rules import Rules
from identity_graph.store import ProfileFilter


@strawberry.input(description="Some value of the trait ever equalled `value`.")
class TraitFilter:
    name: str
    value: JSON


@strawberry.input(description="Conditions a customer must all meet.")
class CustomerFilter:
    has_kind: str | None = None
    identifier: IdentifierInput | None = None
    trait: TraitFilter | None = None
    consent_granted: str | None = strawberry.field(
        default=None, description="A purpose the customer has granted consent for."
    )

    def to_domain(self, rules: Rules) -> ProfileFilter:
        if self.has_kind is not None and self.has_kind not in rules.kinds:
            raise UnknownKind(self.has_kind, sorted(rules.kinds))
        if self.consent_granted is not None and self.consent_granted not in PURPOSES:
            raise bad_input(f"unknown consent purpose; known: {', '.join(PURPOSES)}")
        return ProfileFilter(
            has_kind=self.has_kind,
            identifier_keys=(self.identifier.to_domain(rules).key,) if self.identifier else None,
            trait=(self.trait.name, self.trait.value) if self.trait else None,
            consent_granted=self.consent_granted,
        )
