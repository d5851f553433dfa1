"""A customer's current traits: Segment's reserved ones typed, the rest as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry
from strawberry.scalars import JSON

from graph_api.access.categories import PiiCategory, PiiClassifier
from graph_api.access.pii import pii_field
from graph_api.types.address import Address, text

RESERVED = frozenset(
    {
        "name", "firstName", "lastName", "email", "phone", "username", "title", "gender",
        "birthday", "age", "company", "website", "description", "avatar", "createdAt",
        "address",
    }
)  # fmt: skip


def _age(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _company(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return text(value.get("name"))
    return text(value)


@strawberry.type(description="Current trait values, chosen by the survivorship policy.")
class Traits:
    name: str | None = pii_field(category=PiiCategory.IDENTITY)
    first_name: str | None = pii_field(category=PiiCategory.IDENTITY)
    last_name: str | None = pii_field(category=PiiCategory.IDENTITY)
    email: str | None = pii_field(category=PiiCategory.CONTACT)
    phone: str | None = pii_field(category=PiiCategory.CONTACT)
    username: str | None = pii_field(category=PiiCategory.IDENTITY)
    title: str | None = pii_field(category=PiiCategory.IDENTITY)
    gender: str | None = pii_field(category=PiiCategory.IDENTITY)
    birthday: str | None = pii_field(category=PiiCategory.IDENTITY)
    age: int | None = pii_field(category=PiiCategory.IDENTITY)
    company: str | None = pii_field(category=PiiCategory.IDENTITY)
    website: str | None = pii_field(category=PiiCategory.CONTACT)
    description: str | None = pii_field(category=PiiCategory.UNCLASSIFIED)
    avatar: str | None = pii_field(category=PiiCategory.IDENTITY)
    created_at: str | None
    address: Address | None
    custom: JSON = pii_field(
        classified_by=PiiClassifier.TRAIT_KEY,
        description="Traits outside Segment's reserved set, by name.",
    )
    customer_id: strawberry.Private[str | None] = None
    """the customer the value was read from, for the PII audit"""

    @classmethod
    def from_values(cls, values: Mapping[str, Any], customer_id: str | None = None) -> Traits:
        """Build from current values by trait name."""
        get = values.get
        return cls(
            name=text(get("name")),
            first_name=text(get("firstName")),
            last_name=text(get("lastName")),
            email=text(get("email")),
            phone=text(get("phone")),
            username=text(get("username")),
            title=text(get("title")),
            gender=text(get("gender")),
            birthday=text(get("birthday")),
            age=_age(get("age")),
            company=_company(get("company")),
            website=text(get("website")),
            description=text(get("description")),
            avatar=text(get("avatar")),
            created_at=text(get("createdAt")),
            address=Address.from_trait(get("address"), customer_id),
            custom=JSON({k: v for k, v in values.items() if k not in RESERVED}),
            customer_id=customer_id,
        )
