"""Per-request dataloaders: one store round trip per field shape, however many customers.

Built fresh for every request (`Loaders(store, engine)`), so no cached value outlives it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from functools import partial
from typing import TypeVar

from aiodataloader import DataLoader

from identity_graph.audiences.engine import AudienceEngine
from identity_graph.audiences.store import Audience, AudienceStore, Membership
from identity_graph.model import (
    JSON,
    ConsentRecord,
    Link,
    MergeConflict,
    MergeRecord,
    Page,
    Profile,
    StoredEvent,
    TraitValue,
)
from identity_graph.store import IdentityStore

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

EventsKey = tuple[str, int, str | None, tuple[str, ...] | None, int]
"""(profile id, first, after, types, count_up_to)"""


def _loader(
    fetch: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]], default: Callable[[], D]
) -> DataLoader[K, V | D]:
    async def batch(keys: list[K]) -> list[V | D]:
        found = await fetch(keys)
        return [found[k] if k in found else default() for k in keys]

    return DataLoader(batch)


def _none() -> None:
    return None


class Loaders:
    """A request's dataloaders. No batch function refers back to them: a request's loaders,
    and all they cached, are freed when it ends, not left for the cycle collector."""

    def __init__(self, store: IdentityStore, engine: AudienceEngine) -> None:
        self.profile_of: DataLoader[str, str | None] = _loader(store.profile_ids, _none)
        """identifier key -> current profile id"""
        self.resolve: DataLoader[str, str | None] = _loader(store.resolve_profiles, _none)
        """profile id, maybe absorbed -> current profile id"""
        self.profile: DataLoader[str, Profile | None] = _loader(store.profiles, _none)
        self.traits: DataLoader[str, list[TraitValue]] = _loader(store.traits, list)
        self.merge_history: DataLoader[str, list[MergeRecord]] = _loader(store.merge_history, list)
        self.conflicts: DataLoader[str, list[MergeConflict]] = _loader(store.conflicts, list)
        self.links: DataLoader[str, list[Link]] = _loader(store.links, list)
        self.consents: DataLoader[str, list[ConsentRecord]] = _loader(store.consents, list)
        self.events: DataLoader[EventsKey, Page[StoredEvent]] = DataLoader(partial(_events, store))
        self.memberships: DataLoader[str, list[Membership]] = _loader(
            engine.audiences.memberships, list
        )
        self.computed: DataLoader[str, dict[str, JSON]] = _loader(engine.computed_values_many, dict)
        """profile id -> each computed trait's value now"""
        self.audience: DataLoader[str, Audience | None] = DataLoader(
            partial(_audiences, engine.audiences)
        )
        """by id: every audience read once per request (a deployment has a bounded few)"""

    async def holders(self, keys: Sequence[str], *, otherwise: str) -> dict[str, str]:
        """Who holds each identifier now (one batched load for the list), so that a clear
        read of its value is audited against that customer. An identifier that no profile
        holds any more (dropped and never joined, or erased) is attributed to `otherwise`:
        the customer it was read from."""
        found = await self.profile_of.load_many(keys)
        return {key: pid or otherwise for key, pid in zip(keys, found, strict=True)}


async def _audiences(audiences: AudienceStore, ids: list[str]) -> list[Audience | None]:
    found = {a.id: a for a in await audiences.audiences()}
    return [found.get(i) for i in ids]


async def _events(store: IdentityStore, keys: list[EventsKey]) -> list[Page[StoredEvent]]:
    groups: dict[tuple[int, str | None, tuple[str, ...] | None, int], list[str]] = {}
    for pid, first, after, types, count in keys:
        groups.setdefault((first, after, types, count), []).append(pid)
    pages: dict[EventsKey, Page[StoredEvent]] = {}
    for (first, after, types, count), ids in groups.items():
        found = await store.events(ids, first=first, after=after, types=types, count_up_to=count)
        for pid in ids:
            pages[(pid, first, after, types, count)] = found.get(pid, Page((), 0, None, False))
    return [pages[k] for k in keys]
