"""The `@pii` schema directive: which fields carry personal data, and of what category.

Every field that can carry personal data is declared with `pii_field(...)`, which puts the
directive in the SDL (so `schema.graphql` documents what is personal) and attaches
`PiiGuard`, the one field extension that enforces the access policy.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.schema_directive import Location


@strawberry.enum(description="Categories of personal data, after GDPR's language.")
class PiiCategory(Enum):
    CONTACT = "CONTACT"
    IDENTITY = "IDENTITY"
    LOCATION = "LOCATION"
    DEVICE = "DEVICE"
    FINANCIAL = "FINANCIAL"
    UNCLASSIFIED = "UNCLASSIFIED"


@strawberry.enum(description="How a field's category is found when it depends on the data.")
class PiiClassifier(Enum):
    IDENTIFIER_KIND = "IDENTIFIER_KIND"
    """by the identifier's kind: email and phone CONTACT, ids DEVICE, custom kinds by config"""
    TRAIT_KEY = "TRAIT_KEY"
    """a JSON map of traits, classified key by key in config"""
    EVENT_PROPERTY = "EVENT_PROPERTY"
    """a JSON map of event properties, classified key by key in config"""


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description="This field carries personal data of the given category.",
)
class Pii:
    category: PiiCategory | None = None
    classified_by: PiiClassifier | None = None


class PiiGuard(FieldExtension):
    """Enforces the caller's access mode for the field's `@pii` category.

    Implemented by the field-level access work (issue 5); until then it passes values through.
    """

    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return next_(source, info, **kwargs)

    async def resolve_async(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return await next_(source, info, **kwargs)


def pii_field(
    *,
    category: PiiCategory | None = None,
    classified_by: PiiClassifier | None = None,
    **kwargs: Any,
) -> Any:
    """A `strawberry.field` carrying `@pii` and guarded by `PiiGuard`."""
    return strawberry.field(
        directives=[Pii(category=category, classified_by=classified_by)],
        extensions=[PiiGuard()],
        **kwargs,
    )
