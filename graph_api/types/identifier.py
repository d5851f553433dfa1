"""Identifiers: the input clients name one with, and the output types."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api.access.categories import PiiClassifier
from graph_api.access.pii import pii_field
from identity_graph.model import Identifier as DomainIdentifier
from identity_graph.model import IdentifierRecord
from identity_graph.normalize import normalize
from identity_graph.rules import Rules


@strawberry.input(description="An identifier as a client knows it; the value is normalised.")
class IdentifierInput:
    kind: str
    value: str

    def to_domain(self, rules: Rules) -> DomainIdentifier:
        """Normalise; raises `UnknownKind` or `InvalidIdentifier`."""
        return normalize(self.kind, self.value, rules)


@strawberry.type(description="A normalised identifier: kind and value.")
class IdentifierRef:
    kind: str
    value: str | None = pii_field(classified_by=PiiClassifier.IDENTIFIER_KIND)
    customer_id: strawberry.Private[str | None] = None
    """the customer the value was read from, for the PII audit"""

    @classmethod
    def from_key(cls, key: str, customer_id: str | None = None) -> IdentifierRef:
        identifier = DomainIdentifier.from_key(key)
        return cls(kind=identifier.kind, value=identifier.value, customer_id=customer_id)


@strawberry.type(description="An identifier of a customer, with when and where it was seen.")
class Identifier:
    kind: str
    value: str | None = pii_field(classified_by=PiiClassifier.IDENTIFIER_KIND)
    first_seen: datetime
    last_seen: datetime
    sources: list[str]
    customer_id: strawberry.Private[str | None] = None
    """the customer the value was read from, for the PII audit"""

    @classmethod
    def from_domain(cls, record: IdentifierRecord) -> Identifier:
        return cls(
            kind=record.identifier.kind,
            value=record.identifier.value,
            first_seen=record.first_seen,
            last_seen=record.last_seen,
            sources=list(record.sources),
            customer_id=record.profile_id,
        )
