from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry

from graph_api.access.categories import PiiCategory
from graph_api.access.pii import pii_field


def text(value: Any) -> str | None:
    """A trait as text: strings and numbers as they are, anything else absent."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


@strawberry.type(description="Segment's reserved `address` trait.")
class Address:
    street: str | None = pii_field(category=PiiCategory.LOCATION)
    city: str | None = pii_field(category=PiiCategory.LOCATION)
    state: str | None = pii_field(category=PiiCategory.LOCATION)
    postal_code: str | None = pii_field(category=PiiCategory.LOCATION)
    country: str | None = pii_field(category=PiiCategory.LOCATION)
    customer_id: strawberry.Private[str | None] = None
    """the customer the value was read from, for the PII audit"""

    @classmethod
    def from_trait(cls, value: Any, customer_id: str | None = None) -> Address | None:
        if not isinstance(value, Mapping):
            return None
        return cls(
            street=text(value.get("street")),
            city=text(value.get("city")),
            state=text(value.get("state")),
            postal_code=text(value.get("postalCode", value.get("postal_code"))),
            country=text(value.get("country")),
            customer_id=customer_id,
        )
