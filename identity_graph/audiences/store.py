"""The audience store port: definitions, memberships and the log of entries and exits.

Every adapter implements it in the same place as its identity store (the embedded store's
data directory; the Neo4j database) and exposes it as `store.audiences`. Adapters store and
fetch; which profile belongs to which audience is decided by `engine.AudienceEngine`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from identity_graph.model import Page


class Status(StrEnum):
    BUILDING = "BUILDING"
    READY = "READY"


class ChangeKind(StrEnum):
    ENTERED = "ENTERED"
    EXITED = "EXITED"


@dataclass(frozen=True, slots=True)
class ComputedTrait:
    name: str
    definition: Mapping[str, Any]
    """as given (JSON)"""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Audience:
    id: str
    name: str
    condition: Mapping[str, Any]
    """as given (JSON)"""
    purpose: str | None
    status: Status
    created_at: datetime
    built_at: datetime | None = None
    """when its last (re)build finished"""
    progress: float = 0.0
    """of the running build, 0 to 1 (1 when READY)"""
    size: int = 0
    """members now, kept up to date by `apply` (never counted on read)"""


@dataclass(frozen=True, slots=True)
class Membership:
    audience_id: str
    customer_id: str
    since: datetime


@dataclass(frozen=True, slots=True)
class AudienceChange:
    id: str
    """time-ordered: orders changes of the same `at`"""
    audience_id: str
    customer_id: str
    kind: ChangeKind
    at: datetime


class AudienceStore(ABC):
    """Definitions, memberships and changes. Every method is safe to call concurrently."""

    @abstractmethod
    async def put_computed_trait(self, trait: ComputedTrait) -> None:
        """Store a computed trait, replacing the one with its name."""

    @abstractmethod
    async def delete_computed_trait(self, name: str) -> bool:
        """Delete a computed trait; False if there is none of that name."""

    @abstractmethod
    async def computed_traits(self) -> list[ComputedTrait]:
        """Every computed trait, by name."""

    @abstractmethod
    async def put_audience(self, audience: Audience) -> None:
        """Store an audience, replacing the one with its id, keeping its `size` as the store
        counts it (the given `size` is ignored)."""

    @abstractmethod
    async def delete_audience(self, audience_id: str) -> bool:
        """Delete an audience with its memberships, changes and their deliveries; False if
        there is none."""

    @abstractmethod
    async def audiences(self) -> list[Audience]:
        """Every audience, by name, with its current size."""

    @abstractmethod
    async def record(self, changes: Sequence[AudienceChange]) -> int:
        """In one transaction, apply changes: ENTERED adds the membership (since `at`),
        EXITED deletes it; each change that changed a membership is appended to the log and
        counted in its audience's size, and enqueued for each enabled destination of its
        audience (`activation.store.Outbox`); the others (entering twice, exiting a
        non-member) are ignored. Returns how many changed something."""

    @abstractmethod
    async def memberships(self, customer_ids: Sequence[str]) -> dict[str, list[Membership]]:
        """Each customer's memberships, by audience id."""

    @abstractmethod
    async def members(self, audience_id: str, *, first: int, after: str | None) -> Page[Membership]:
        """An audience's members in customer id order after the customer id `after`; the
        cursor is the last customer id; `total` is the audience's size."""

    @abstractmethod
    async def changes(
        self, audience_id: str, *, first: int, after: str | None
    ) -> Page[AudienceChange]:
        """An audience's changes, oldest first by (`at`, `id`), after the change id `after`
        (`InvalidOperation` if there is no such change); the cursor is the last id."""
