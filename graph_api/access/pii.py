"""The `@pii` schema directive: which fields carry personal data, and of what category.

Every field that can carry personal data is declared with `pii_field(...)`, which puts the
directive in the SDL (so `schema.graphql` documents what is personal) and attaches
`PiiGuard`, the one field extension that enforces the access policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.schema_directive import Location

from graph_api.access.audiences import (
    render_computed,
    render_condition,
    render_explanation,
    sources,
)
from graph_api.access.categories import PiiCategory, PiiClassifier
from graph_api.access.masking import HIDDEN, keyed_hash, mask
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
    `FORBIDDEN_FIELD` error). JSON maps classified by key are rendered value by value at
    every depth; a denied value in them reads null and is reported (`DeniedKeys`). Computed
    trait values and membership explanations are rendered by `graph_api.access.audiences`.
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
        raw = info._raw_info
        label = f"{raw.parent_type.name}.{raw.field_name}"
        customer = getattr(source, "customer_id", None)
        if self.classified_by is None:
            assert self.category is not None
            return access.render(
                value, self.category, label, customer, numeric=self.numeric, key=raw.field_name
            )
        if self.classified_by is PiiClassifier.IDENTIFIER_KIND:
            kind = str(getattr(source, "kind", ""))
            category = access.policy.kind_category(kind)
            return access.render(value, category, f"{label}:{kind}", customer)
        if self.classified_by is PiiClassifier.TRAIT_NAME:
            name = str(getattr(source, "name", ""))
            category = access.policy.trait_category(name)
            return access.render(value, category, f"{label}:{name}", customer, key=name)
        if not isinstance(value, dict):
            return None
        where = tuple(raw.path.as_list())
        if self.classified_by in (
            PiiClassifier.COMPUTED_TRAIT,
            PiiClassifier.MEMBERSHIP_EXPLANATION,
            PiiClassifier.AUDIENCE_CONDITION,
        ):
            aggregates = sources(info.context.services.audiences.computed_traits())
            if self.classified_by is PiiClassifier.COMPUTED_TRAIT:
                return render_computed(access, value, aggregates, label, customer, where)
            if self.classified_by is PiiClassifier.AUDIENCE_CONDITION:
                return render_condition(access, value, aggregates, label, where)
            return render_explanation(access, value, aggregates, label, where)
        classify = (
            access.policy.trait_category
            if self.classified_by is PiiClassifier.TRAIT_KEY
            else access.policy.property_category
        )
        return access.render_tree(value, classify, label, customer, where)


@dataclass(frozen=True, slots=True)
class Denied:
    """A value inside a JSON map that the caller may not read: reported, not dropped."""

    path: tuple[str | int, ...]
    """the response path of the JSON field"""
    key: str
    """where in the map: `products[0].price`"""
    label: str


@dataclass
class Access:
    """The caller's view: roles, policy and hash key; collects clear reads for the audit."""

    roles: frozenset[str]
    policy: Policy
    hash_key: bytes
    reads: list[tuple[str, str]]
    denied: list[Denied] = field(default_factory=list)
    """denied values inside JSON maps, reported as `FORBIDDEN_FIELD` errors by `DeniedKeys`"""
    modes: Mapping[PiiCategory, Mode] = field(init=False, repr=False)
    """the caller's mode per category, as the policy worked it out once for these roles"""
    all_clear: bool = field(init=False, repr=False)
    """whether the caller reads every category clear (JSON maps then need no walk per key)"""

    def __post_init__(self) -> None:
        self.modes = self.policy.modes_of(self.roles)
        self.all_clear = all(mode is Mode.CLEAR for mode in self.modes.values())

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
        return self.modes[category]

    def stricter(self, a: PiiCategory, b: PiiCategory) -> PiiCategory:
        """Of two categories, the one the caller sees less of."""
        return a if _RANK[self.modes[a]] <= _RANK[self.modes[b]] else b

    def render(
        self,
        value: Any,
        category: PiiCategory,
        label: str,
        customer: str | None,
        *,
        numeric: bool = False,
        key: str | None = None,
    ) -> Any:
        """The value as the caller may see it. Masked and hashed values of `numeric` fields
        read null. `key` names the trait or property the value is of (None: an identifier's
        value, always hashable); where the mode says hashed, a value whose keyed hash would be
        reversible by comparing with known customers (`hashable`) is masked instead."""
        mode = self.modes[category]
        if mode is Mode.CLEAR:
            if customer is not None:
                self.reads.append((customer, label))
            return value
        if mode is Mode.HASHED and (key is None or self.hashable(key, value)):
            return None if numeric else keyed_hash(self.hash_key, value)
        if mode in (Mode.MASKED, Mode.HASHED):
            return None if numeric else mask(value)
        raise ApiError("FORBIDDEN_FIELD", f"your role may not read {label.split(':')[0]}")

    def render_tree(
        self,
        value: Any,
        classify: Callable[[str], PiiCategory],
        label: str,
        customer: str | None,
        where: tuple[str | int, ...],
        *,
        key: str = "",
        category: PiiCategory | None = None,
    ) -> Any:
        """A JSON map rendered value by value, at every depth. A value's category is the
        stricter of its own key's and the enclosing keys' (`address.line3` is LOCATION); a
        denied value reads null and is reported in `denied`. A clear value is audited under
        its top-level key (`Event.properties.products`)."""
        if self.all_clear:
            # every value reads as it is: only the audit needs the keys that hold one
            if customer is not None:
                self.reads.extend((customer, f"{label}.{top}") for top in _audited(value, key))
            return value
        return self._tree(value, classify, label, customer, where, key, category)

    def _tree(
        self,
        value: Any,
        classify: Callable[[str], PiiCategory],
        label: str,
        customer: str | None,
        where: tuple[str | int, ...],
        key: str,
        category: PiiCategory | None,
    ) -> Any:
        if isinstance(value, dict):
            shown: dict[str, Any] = {}
            for name, item in value.items():
                own = classify(str(name))
                inner = own if category is None else self.stricter(own, category)
                path = f"{key}.{name}" if key else str(name)
                shown[name] = self._tree(item, classify, label, customer, where, path, inner)
            return shown
        if isinstance(value, list):
            return [
                self._tree(item, classify, label, customer, where, f"{key}[{i}]", category)
                for i, item in enumerate(value)
            ]
        category = category or PiiCategory.UNCLASSIFIED
        if self.modes[category] is Mode.DENIED:  # reported even where null: no oracle
            self.denied.append(Denied(where, key, f"{label}.{key}"))
            return None
        if value is None:
            return None
        top = _top(key)
        return self.render(value, category, f"{label}.{top}", customer, key=top)

    def deny(self, where: tuple[str | int, ...], key: str, label: str) -> None:
        """Withhold a value inside a JSON field: it reads null and `DeniedKeys` reports it."""
        self.denied.append(Denied(where, key, label))

    def hashable(self, key: str, value: Any) -> bool:
        """A keyed hash is served only for texts long enough not to be guessed, under keys
        with many values (numbers, yes/no, short codes, genders and countries are masked)."""
        return isinstance(value, str) and mask(value) != HIDDEN and self.policy.hashable_key(key)


def _top(key: str) -> str:
    """The top-level key of a path in a JSON map: `products` of `products[0].price`."""
    return key.split(".")[0].split("[")[0]


def _audited(value: Any, key: str) -> Iterator[str]:
    """The top-level keys of the values a clear read of a JSON value reveals, as the walk of
    `Access.render_tree` audits them (it skips nulls, empty maps and empty lists)."""
    if key:
        if _holds_value(value):
            yield _top(key)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _audited(item, str(name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _audited(item, f"[{i}]")
    elif value is not None:
        yield ""


def _holds_value(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_value(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_value(item) for item in value)
    return value is not None


_RANK = {Mode.DENIED: 0, Mode.HASHED: 1, Mode.MASKED: 2, Mode.CLEAR: 3}


class DeniedKeys(SchemaExtension):
    """Reports the values the PII guard withheld inside JSON maps as `FORBIDDEN_FIELD` error
    entries (the field's path, and the key inside the map), so a denial is never silent."""

    def on_operation(self) -> Iterator[None]:
        yield
        access = getattr(self.execution_context.context, "access", None)
        result: Any = self.execution_context.result
        if access is None or not access.denied or result is None:
            return
        errors = list(result.errors or ())
        for denied in access.denied:
            errors.append(
                GraphQLError(
                    f"your role may not read {denied.label}",
                    path=list(denied.path),
                    extensions={"code": "FORBIDDEN_FIELD", "key": denied.key},
                )
            )
        result.errors = errors


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
