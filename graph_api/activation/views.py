"""Customers as one role may see them, outside GraphQL: for destinations and exports.

Values are rendered by the field policy exactly as the GraphQL API renders them for that role
(`graph_api.access.pii.Access`): identifiers like `Identifier.value`, current traits like the
traits JSON map, computed traits like `Customer.computedTraits`. What the role is denied is
left out rather than shown as null (a destination has no error list to read the difference
from), and so is a map or list whose every value is denied. Every clear read is audited
before the views are returned: a caller never holds clear values that are not audited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graph_api.access.audiences import category_of, render_computed, sources
from graph_api.access.audit import entries
from graph_api.access.auth import READ_ROLES, ROLES, Principal
from graph_api.access.categories import PiiCategory
from graph_api.access.pii import Access
from graph_api.access.policy import Mode
from graph_api.errors import ApiError
from identity_graph.model import Profile
from identity_graph.survivorship import consent_state, current_traits

if TYPE_CHECKING:
    from graph_api.services import Services  # which builds the dispatcher, a user of views

PRINCIPAL_KIND = "activation"
"""the `Principal.kind` of the views' reader (the audit records its id and role)"""
TRAITS_LABEL = "Traits"
"""audited field names read like the API's: `Traits.email`, `Identifier.value:email`,
`Customer.computedTraits.spend`"""
IDENTIFIER_LABEL = "Identifier.value"
COMPUTED_LABEL = "Customer.computedTraits"


@dataclass(frozen=True, slots=True)
class CustomerView:
    """A current customer as one role may see it."""

    id: str
    identifiers: list[dict[str, str]]
    """`{"kind", "value"}` as the role sees the value, sorted by (kind, value); kinds the role
    is denied are left out"""
    traits: dict[str, Any]
    """current traits (survivorship); denied values left out"""
    computed_traits: dict[str, Any]
    """every computed trait the engine knows, by name; denied ones left out"""
    consent: dict[str, str]
    """purpose -> effective status (`GRANTED`, `DENIED`, `REVOKED`); purposes without a
    choice absent"""
    audience_ids: list[str]
    """the audiences it is a member of now, sorted"""

    def as_json(self) -> dict[str, Any]:
        """The personal part, as exports and payloads show it (not consent nor audiences)."""
        return {
            "id": self.id,
            "identifiers": self.identifiers,
            "traits": self.traits,
            "computedTraits": self.computed_traits,
        }


def reader_role(role: str) -> str:
    """`role` if it reads customers (a known role other than `ingest`); ValueError if not."""
    if role not in READ_ROLES:
        readers = ", ".join(sorted(READ_ROLES))
        what = "the ingest role reads no customers" if role in ROLES else f"unknown role {role!r}"
        raise ValueError(f"{what}; roles that read customers: {readers}")
    return role


def access_for(services: Services, role: str) -> Access:
    """The field policy's view for one role, collecting its clear reads."""
    return Access(
        roles=frozenset({reader_role(role)}),
        policy=services.policy,
        hash_key=services.hash_key,
        reads=[],
    )


async def customer_views(
    services: Services, role: str, profile_ids: Sequence[str], *, reader: str
) -> dict[str, CustomerView]:
    """The views of the ids that are current profiles (absorbed, erased and unknown ids are
    left out; none is resolved), in the order given.

    Reads in one batch per kind of record, whatever the number of ids: profiles, traits,
    consents, computed values (only if a computed trait is defined: those the engine has
    read, so it must be started) and memberships. Then writes one audit entry per customer
    read clear, naming `reader` with `role`; raises what the audit write raised, so that
    no clear value leaves unaudited. ValueError for a role that does not read customers.
    """
    access = access_for(services, role)
    store = services.store
    asked = list(dict.fromkeys(profile_ids))
    profiles = await store.profiles(asked) if asked else {}
    ids = [pid for pid in asked if pid in profiles]
    if not ids:
        return {}
    values = await store.traits(ids)
    consents = await store.consents(ids)
    defined = services.audiences.computed_traits()
    computed = await services.audiences.computed_values_many(ids) if defined else {}
    held = await services.audiences.audiences.memberships(ids)
    aggregates = sources(defined)
    views: dict[str, CustomerView] = {}
    for pid in ids:
        current = current_traits(values.get(pid, []), services.rules)
        shown = visible_traits(access, {name: v.value for name, v in current.items()})
        readable = visible_computed(access, computed.get(pid, {}), aggregates)
        views[pid] = CustomerView(
            id=pid,
            identifiers=_identifiers(access, profiles[pid]),
            traits=access.render_tree(shown, services.policy.trait_category, TRAITS_LABEL, pid, ()),
            computed_traits=render_computed(access, readable, aggregates, COMPUTED_LABEL, pid, ()),
            consent={p: s.value for p, s in sorted(consent_state(consents.get(pid, [])).items())},
            audience_ids=sorted(m.audience_id for m in held.get(pid, [])),
        )
    if access.reads:
        principal = Principal(id=reader, roles=access.roles, kind=PRINCIPAL_KIND)
        await services.audit.write(entries(principal, access.reads, datetime.now(UTC)))
    return views


def _identifiers(access: Access, profile: Profile) -> list[dict[str, str]]:
    shown: list[dict[str, str]] = []
    for record in profile.identifiers:
        kind = record.identifier.kind
        category = access.policy.kind_category(kind)
        try:
            value = access.render(
                record.identifier.value, category, f"{IDENTIFIER_LABEL}:{kind}", profile.id
            )
        except ApiError as e:
            if e.code != "FORBIDDEN_FIELD":
                raise
            continue
        shown.append({"kind": kind, "value": str(value)})
    return sorted(shown, key=lambda i: (i["kind"], i["value"]))


_GONE = object()
"""what `_readable` leaves of a value the role may read nothing of"""


def visible_traits(access: Access, traits: Mapping[str, Any]) -> dict[str, Any]:
    """Trait values (still clear) less what the role is denied: the traits `CustomerView`
    shows, before rendering. A value's category is the stricter of its key's and the
    enclosing keys', as in `Access.render_tree`."""
    classify = access.policy.trait_category
    kept: dict[str, Any] = {}
    for name, value in traits.items():
        shown = _readable(access, value, classify, classify(name))
        if shown is not _GONE:
            kept[name] = shown
    return kept


def visible_computed(
    access: Access, values: Mapping[str, Any], aggregates: Mapping[str, str | None]
) -> dict[str, Any]:
    """Computed values (still clear) less what the role is denied, classified as
    `render_computed` classifies them (a name not in `aggregates` is UNCLASSIFIED)."""
    return {
        name: shown
        for name, value in values.items()
        if (shown := _computed_value(access, name, value, aggregates)) is not _GONE
    }


def computed_readable(access: Access, name: str, aggregates: Mapping[str, str | None]) -> bool:
    """Whether the role may read some value of the computed trait `name`."""
    prop = aggregates.get(name, "")
    if prop is None:
        return True
    category = category_of(access, access.policy.property_category, prop)
    return access.mode(category) is not Mode.DENIED


def _computed_value(
    access: Access, name: str, value: Any, aggregates: Mapping[str, str | None]
) -> Any:
    prop = aggregates.get(name, "")
    if prop is None:
        return value
    if not computed_readable(access, name, aggregates):
        return _GONE
    classify = access.policy.property_category
    return _readable(access, value, classify, category_of(access, classify, prop))


def _readable(
    access: Access, value: Any, classify: Callable[[str], PiiCategory], category: PiiCategory
) -> Any:
    """`value` less its denied parts: a map or list left empty by them is gone too (an
    empty one stays), and a denied null is gone like any denied value."""
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            inner = access.stricter(classify(str(key)), category)
            shown = _readable(access, item, classify, inner)
            if shown is not _GONE:
                kept[key] = shown
        return kept if kept or not value else _GONE
    if isinstance(value, list):
        items = [_readable(access, item, classify, category) for item in value]
        found = [item for item in items if item is not _GONE]
        return found if found or not value else _GONE
    return _GONE if access.mode(category) is Mode.DENIED else value
