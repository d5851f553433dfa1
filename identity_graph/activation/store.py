"""The outbox port: destinations and their deliveries.

Implemented by each adapter's audience store, over the same file or database, because
`AudienceStore.record` enqueues one delivery for each change it records and each enabled
destination of the change's audience, in the same transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timedelta

from identity_graph.activation.deliveries import Delivery, DeliveryStatus
from identity_graph.activation.destinations import Destination, DestinationStatus
from identity_graph.model import Page

LEASE = timedelta(seconds=60)
"""how long a claimed delivery is held by the process sending it (longer than any request
may take); a process that dies releases its claims when they expire"""


class Outbox(ABC):
    """Destinations and deliveries. Every method is safe to call concurrently, also from
    several processes over one database."""

    @abstractmethod
    async def put_destination(self, destination: Destination) -> None:
        """Store a destination, replacing the one with its id (`InvalidOperation` if another
        has its name)."""

    @abstractmethod
    async def delete_destination(self, destination_id: str) -> bool:
        """Delete a destination with its deliveries; False if there is none."""

    @abstractmethod
    async def destinations(self) -> list[Destination]:
        """Every destination, by name."""

    @abstractmethod
    async def set_status(
        self, destination_id: str, status: DestinationStatus, last_error: str | None
    ) -> None:
        """Set a destination's status and last error (the sender's verdict)."""

    @abstractmethod
    async def claim(
        self, destination_id: str, *, now: datetime, limit: int, lease: timedelta = LEASE
    ) -> list[Delivery]:
        """Up to `limit` deliveries of a destination that are due (PENDING, `next_attempt_at`
        passed, not claimed by anyone within their lease), in id order, and at most one per
        customer: the customer's earliest PENDING one, so that no change overtakes an earlier
        one of the same customer. Claims them until `now + lease`."""

    @abstractmethod
    async def finish(self, deliveries: Sequence[Delivery]) -> None:
        """Write back attempted deliveries (status, attempts, times, error) and release their
        claims, in one transaction. A delivery deleted meanwhile is ignored."""

    @abstractmethod
    async def deliveries(
        self,
        destination_id: str,
        *,
        first: int,
        after: str | None,
        status: DeliveryStatus | None = None,
    ) -> Page[Delivery]:
        """A destination's deliveries, newest first (by id), after the delivery id `after`;
        `total` counts those of the status asked for."""

    @abstractmethod
    async def delivery(self, delivery_id: str) -> Delivery | None: ...

    @abstractmethod
    async def redeliver(self, delivery_id: str, now: datetime) -> Delivery | None:
        """Make a delivery PENDING and due at `now` (its attempts kept, its claim released);
        None if there is no such delivery."""

    @abstractmethod
    async def resume(self, now: datetime) -> int:
        """A sender starts: every PENDING delivery of an enabled destination is due now
        (tried again right after a restart), and claims that no live process can hold are
        released (embedded: all, as one process owns the store; Neo4j: those expired).
        Returns how many were made due."""

    @abstractmethod
    async def next_due(self, destination_id: str) -> datetime | None:
        """When `claim` will next find a delivery of a destination (each customer's earliest
        PENDING one: its due time, or its claim's expiry if later); None: none pending."""
