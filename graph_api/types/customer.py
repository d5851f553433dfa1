"""A customer (a profile of the identity graph); its fields load through the dataloaders."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api import described
from graph_api.context import Info
from graph_api.limits import page_size
from graph_api.types.consent import Consent
from graph_api.types.event import EventConnection, EventType, domain_types
from graph_api.types.identifier import Identifier
from graph_api.types.merge_conflict import MergeConflict
from graph_api.types.merge_record import MergeRecord
from graph_api.types.page_info import PageInfo
from graph_api.types.trait_value import TraitValue
from graph_api.types.traits import Traits
from identity_graph.survivorship import current_traits, effective_consent

DEFAULT_EVENTS = 20


@strawberry.type(description="A person: the identifiers that belong together, and what they did.")
class Customer:
    id: strawberry.ID = strawberry.field(description="Stable across merges: absorbed ids redirect.")

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

    @described.field("Every observed value of one trait, oldest first.")
    async def trait_history(self, info: Info, name: str) -> list[TraitValue]:
        values = await info.context.loaders.traits.load(self.id)
        return [TraitValue.from_domain(v, self.id) for v in values if v.name == name]

    @described.field("Track, page and screen calls, newest first.")
    async def events(
        self,
        info: Info,
        first: int = DEFAULT_EVENTS,
        after: str | None = None,
        types: list[EventType] | None = None,
    ) -> EventConnection:
        size = page_size(first, info.context.services.settings)
        page = await info.context.loaders.events.load((self.id, size, after, domain_types(types)))
        return EventConnection.from_domain(page, self.id)

    @described.field("Merges, undos and splits involving this customer, oldest first.")
    async def merge_history(self, info: Info) -> list[MergeRecord]:
        records = await info.context.loaders.merge_history.load(self.id)
        return [MergeRecord.from_domain(r) for r in records]

    @strawberry.field
    async def conflicts(self, info: Info) -> list[MergeConflict]:
        found = await info.context.loaders.conflicts.load(self.id)
        return [MergeConflict.from_domain(c) for c in found]

    @described.field("The effective choice per purpose (most restrictive recent).")
    async def consents(self, info: Info) -> list[Consent]:
        records = await info.context.loaders.consents.load(self.id)
        effective = effective_consent(records)
        return [Consent.from_domain(effective[p]) for p in sorted(effective)]


@strawberry.type
class CustomerEdge:
    node: Customer
    cursor: str


@strawberry.type
class CustomerConnection:
    edges: list[CustomerEdge]
    page_info: PageInfo
    total_count: int
