"""A delivery: one audience change on its way to one destination, and when to try again.

Deliveries are the outbox: they are committed in the transaction that records the change
(`AudienceStore.record`), so a change is never recorded without its deliveries, and are
marked delivered only once the receiver answered 2xx. Their id is the webhook id a receiver
deduplicates by: the same on every attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from identity_graph.audiences.store import ChangeKind

SCHEDULE = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
"""Standard Webhooks' schedule: the delay before attempt n+1 after n attempts (the last
repeats until the window closes)"""
WINDOW = timedelta(days=3)
"""how long a delivery is retried, from its first attempt's due time, unless configured"""
JITTER = 0.2
"""each delay is drawn from [1 - JITTER, 1] of the schedule's, so that receivers that come
back are not hit by every sender at once"""
MAX_RETRY_AFTER = timedelta(hours=24)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    """to be sent (or sent again) at `next_attempt_at`"""
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    """retried until the window closed; `redeliver` tries again"""
    SKIPPED = "SKIPPED"
    """not sent, by design: the customer withdrew the audience's consent, or is gone"""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    """`<change id>.<destination id>`: the webhook id, ordered as the changes are"""
    destination_id: str
    audience_id: str
    customer_id: str
    kind: ChangeKind
    changed_at: datetime
    """when the customer entered or left the audience"""
    created_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    """due time while PENDING"""
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    response_status: int | None = None
    delivered_at: datetime | None = None

    @property
    def webhook_id(self) -> str:
        return "msg_" + self.id


def delivery_id(change_id: str, destination_id: str) -> str:
    return f"{change_id}.{destination_id}"


def next_attempt(
    delivery: Delivery,
    now: datetime,
    *,
    window: timedelta = WINDOW,
    retry_after: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try a delivery again after its `attempts`-th attempt failed at `now`, or None
    when the window (from its creation) has closed. A receiver's `Retry-After` is honoured
    (at most a day) when it asks for longer than the schedule."""
    n = max(delivery.attempts, 1)
    delay = SCHEDULE[min(n, len(SCHEDULE) - 1)]
    delay = delay * (1 - JITTER * (rng or random).random())
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    when = now + delay
    if when > delivery.created_at + window:
        return None
    return when
