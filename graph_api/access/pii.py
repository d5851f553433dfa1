"""The `@pii` schema directive: which fields carry personal data, and of what category.

Every field that can carry personal data is declared with `pii_field(...)`, which puts the
directive in the SDL (so `schema.graphql` documents what is personal) and attaches
`PiiGuard`, the one field extension that enforces the access policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.schema_directive import Location

from graph_api.access.categories import PiiCategory, PiiClassifier
from graph_api.access.masking import keyed_hash, mask
from graph_api.access.policy import Mode, Policy
from graph_api.errors import ApiError

if TYPE_CHECKING:
    from strawberry.types.field import StrawberryField


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description="This field carries personal data of the given category.",
)
class Pii:
    category: PiiCategory | None = None
    classified_by: PiiClassifier | None = None


class PiiGuard(FieldExtension):
    """The one enforcement point of field-level access to personal data.

    Reads the field's `@pii` directive once, then renders every value the field resolves
    in the caller's mode: `clear` (and audited), `masked`, `hashed`, or `denied` (null and a
    `FORBIDDEN_FIELD` error). JSON maps classified by key are filtered key by key.
    """

    category: PiiCategory | None = None
    classified_by: PiiClassifier | None = None
    numeric = False

    def apply(self, field: StrawberryField) -> None:
        self.numeric = getattr(field.type, "of_type", field.type) in (int, float)
        for directive in field.directives:
            if isinstance(directive, Pii):
                self.category = directive.category
                self.classified_by = directive.classified_by
        if self.category is None and self.classified_by is None:
            raise TypeError(f"field {field.python_name!r} is guarded but has no @pii category")

    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return self.enforce(next_(source, info, **kwargs), source, info)

    async def resolve_async(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return self.enforce(await next_(source, info, **kwargs), source, info)

    def enforce(self, value: Any, source: Any, info: Any) -> Any:
        if value is None:
            return None
        access = Access.of(info)
        label = f"{info._raw_info.parent_type.name}.{info.field_name}"
        customer = getattr(source, "customer_id", None)
        if self.classified_by is PiiClassifier.IDENTIFIER_KIND:
            kind = str(getattr(source, "kind", ""))
            category = access.policy.kind_category(kind)
            return access.render(value, category, f"{label}:{kind}", customer)
        if self.classified_by is PiiClassifier.TRAIT_NAME:
            name = str(getattr(source, "name", ""))
            category = access.policy.trait_category(name)
            return access.render(value, category, f"{label}:{name}", customer)
        if self.classified_by is not None:
            classify = (
                access.policy.trait_category
                if self.classified_by is PiiClassifier.TRAIT_KEY
                else access.policy.property_category
            )
            if not isinstance(value, dict):
                return None
            shown: dict[str, Any] = {}
            for key, item in value.items():
                rendered = access.render(
                    item, classify(key), f"{label}.{key}", customer, quiet=True
                )
                if rendered is not _DROPPED:
                    shown[key] = rendered
            return shown
        assert self.category is not None
        return access.render(value, self.category, label, customer, numeric=self.numeric)


_DROPPED = object()


@dataclass
class Access:
    """The caller's view: roles, policy and hash key; collects clear reads for the audit."""

    roles: frozenset[str]
    policy: Policy
    hash_key: bytes
    reads: list[tuple[str, str]]
    modes: dict[PiiCategory, Mode] = field(default_factory=dict)

    @classmethod
    def of(cls, info: Any) -> Access:
        context = info.context
        cached = getattr(context, "access", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        services = context.services
        access = cls(
            roles=context.principal.roles,
            policy=services.policy,
            hash_key=services.hash_key,
            reads=context.audit,
        )
        context.access = access
        return access

    def mode(self, category: PiiCategory) -> Mode:
        mode = self.modes.get(category)
        if mode is None:
            mode = self.modes[category] = self.policy.best_mode(self.roles, category)
        return mode

    def render(
        self,
        value: Any,
        category: PiiCategory,
        label: str,
        customer: str | None,
        *,
        quiet: bool = False,
        numeric: bool = False,
    ) -> Any:
        """The value as the caller may see it; `quiet` drops a denied value instead of failing
        (keys of a JSON map); masked and hashed values of `numeric` fields read null."""
        mode = self.mode(category)
        if mode is Mode.CLEAR:
            if customer is not None:
                self.reads.append((customer, label))
            return value
        if mode is Mode.MASKED:
            return None if numeric else mask(value)
        if mode is Mode.HASHED:
            return None if numeric else keyed_hash(self.hash_key, value)
        if quiet:
            return _DROPPED
        raise ApiError("FORBIDDEN_FIELD", f"your role may not read {label.split(':')[0]}")


def access_mode(info: Any, category: PiiCategory) -> Mode:
    """The caller's mode for a category of personal data."""
    return Access.of(info).mode(category)


def require_clear(info: Any, category: PiiCategory, what: str) -> None:
    """Refuse to use a value (look up, filter, explain) that the caller may not read clear.

    What a role may not read it may not use either, or lookups become an oracle.
    """
    if Access.of(info).mode(category) is not Mode.CLEAR:
        raise ApiError("FORBIDDEN", f"your role may not {what}")


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
