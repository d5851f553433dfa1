"""A customer (a profile of the identity graph); its fields load through the dataloaders."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import strawberry
from strawberry.scalars import JSON

from graph_api import described, totals
from graph_api.access.categories import PiiClassifier
from graph_api.access.pii import access_mode, pii_field
from graph_api.access.policy import Mode
from graph_api.context import Info
from graph_api.errors import ApiError, bad_input
from graph_api.limits import page_size
from graph_api.types.consent import Consent
from graph_api.types.event import EventConnection, EventType, domain_types
from graph_api.types.identifier import Identifier
from graph_api.types.link import Link
from graph_api.types.merge_conflict import MergeConflict
from graph_api.types.merge_record import MergeRecord
from graph_api.types.page_info import PageInfo
from graph_api.types.trait_value import TraitValue
from graph_api.types.traits import Traits
from identity_graph.survivorship import current_traits, effective_consent

if TYPE_CHECKING:
    from graph_api.types.audience_membership import AudienceMembership

DEFAULT_EVENTS = 20
DEFAULT_HISTORY = 20
DEFAULT_LINKS = 100
T = TypeVar("T")


def after_key(
    items: Sequence[T], after: str | None, first: int, *, key: str = "message_id"
) -> list[T]:
    """At most `first` items following the last one whose `key` is `after` (all from the
    start when `after` is None; none when no item has it: a stale cursor ends the walk)."""
    if after is None:
        return list(items[:first])
    last = max((i for i, item in enumerate(items) if getattr(item, key) == after), default=None)
    return [] if last is None else list(items[last + 1 : last + 1 + first])


def after_id(items: Sequence[T], after: str | None, first: int) -> list[T]:
    return after_key(items, None if after is None else str(after), first, key="id")


async def computed_values(root: Customer, info: Info) -> JSON:
    return JSON(await info.context.loaders.computed.load(str(root.id)))


@strawberry.type(description="A person: the identifiers that belong together, and what they did.")
class Customer:
    id: strawberry.ID = strawberry.field(description="Stable across merges: absorbed ids redirect.")

    @property
    def customer_id(self) -> str:
        """whose values the PII guard audits"""
        return str(self.id)

    @strawberry.field
    async def created_at(self, info: Info) -> datetime | None:
        profile = await info.context.loaders.profile.load(self.id)
        return profile.created_at if profile else None

    @strawberry.field
    async def identifiers(self, info: Info) -> list[Identifier]:
        profile = await info.context.loaders.profile.load(self.id)
        return [Identifier.from_domain(r) for r in profile.identifiers] if profile else []

    @strawberry.field
    async def traits(self, info: Info) -> Traits:
        values = await info.context.loaders.traits.load(self.id)
        current = current_traits(values, info.context.services.rules)
        return Traits.from_values({name: v.value for name, v in current.items()}, self.id)

    @described.field(
        "Observed values of one trait, oldest first, a page at a time: `after` is the"
        " `messageId` of the last value of the page before."
    )
    async def trait_history(
        self, info: Info, name: str, first: int = DEFAULT_HISTORY, after: str | None = None
    ) -> list[TraitValue] | None:
        category = info.context.services.policy.trait_category(name)
        if access_mode(info, category) is Mode.DENIED:
            # its times, sources and message ids would tell what the value hides
            raise ApiError("FORBIDDEN_FIELD", f"your role may not read trait {name!r}")
        size = page_size(first, info.context.services.settings)
        values = await info.context.loaders.traits.load(self.id)
        found = [v for v in values if v.name == name]
        return [TraitValue.from_domain(v, self.id) for v in after_key(found, after, size)]

    @described.field("Track, page and screen calls, newest first.")
    async def events(
        self,
        info: Info,
        first: int = DEFAULT_EVENTS,
        after: str | None = None,
        types: list[EventType] | None = None,
    ) -> EventConnection:
        size = page_size(first, info.context.services.settings)
        key = (self.id, size, after, domain_types(types), totals.count_up_to(info))
        return EventConnection.from_domain(await info.context.loaders.events.load(key), self.id)

    @described.field(
        "Merges, undos and splits involving this customer, oldest first, a page at a time:"
        " `after` is the id of the last record of the page before."
    )
    async def merge_history(
        self, info: Info, first: int = DEFAULT_HISTORY, after: strawberry.ID | None = None
    ) -> list[MergeRecord]:
        size = page_size(first, info.context.services.settings)
        records = await info.context.loaders.merge_history.load(self.id)
        return [MergeRecord.from_domain(r) for r in after_id(records, after, size)]

    @described.field(
        "Merge conflicts recorded against this customer, oldest first, a page at a time:"
        " `after` is the id of the last conflict of the page before."
    )
    async def conflicts(
        self, info: Info, first: int = DEFAULT_HISTORY, after: strawberry.ID | None = None
    ) -> list[MergeConflict]:
        size = page_size(first, info.context.services.settings)
        found = await info.context.loaders.conflicts.load(self.id)
        return [MergeConflict.from_domain(c) for c in after_id(found, after, size)]

    @described.field(
        "The links among this customer's identifiers, each with its evidence, ordered by"
        " their ends, a page at a time: `after` is how many links the pages before held."
    )
    async def links(
        self, info: Info, first: int = DEFAULT_LINKS, after: str | None = None
    ) -> list[Link]:
        size = page_size(first, info.context.services.settings)
        start = 0
        if after is not None:
            if not (after.isascii() and after.isdigit()):
                raise bad_input("after must be the number of links already read")
            start = int(after)
        links = (await info.context.loaders.links.load(self.id))[start : start + size]
        keys = [key for link in links for key in (link.a, link.b)]
        holders = await info.context.loaders.holders(keys, otherwise=self.id)
        return [Link.from_domain(link, holders) for link in links]

    @described.field("The effective choice per purpose (most restrictive recent).")
    async def consents(self, info: Info) -> list[Consent]:
        records = await info.context.loaders.consents.load(self.id)
        effective = effective_consent(records)
        return [Consent.from_domain(effective[p]) for p in sorted(effective)]

    computed_traits: JSON = pii_field(
        classified_by=PiiClassifier.COMPUTED_TRAIT,
        description="Every computed trait's value now, by name (null when no event gives one).",
        resolver=computed_values,
    )

    @described.field("The audiences this customer belongs to now, by audience name.")
    async def audiences(
        self, info: Info
    ) -> list[
        Annotated[AudienceMembership, strawberry.lazy("graph_api.types.audience_membership")]
    ]:
        from graph_api.types.audience import Audience  # they list their members: customers
        from graph_api.types.audience_membership import AudienceMembership

        loaders = info.context.loaders
        held = await loaders.memberships.load(str(self.id))
        found = await loaders.audience.load_many([m.audience_id for m in held])
        shown = [
            AudienceMembership(audience=Audience.from_domain(audience), since=m.since)
            for m, audience in zip(held, found, strict=True)
            if audience is not None
        ]
        return sorted(shown, key=lambda m: m.audience.name)


@strawberry.type
class CustomerEdge:
    node: Customer
    cursor: str


@strawberry.type
class CustomerConnection:
    edges: list[CustomerEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description=totals.DESCRIPTION)
