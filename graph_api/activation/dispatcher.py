"""Delivering the outbox: one worker per enabled destination claims its due deliveries,
renders each customer as the destination's role may see it, signs and sends, and writes back
what happened (delivered, retried later, failed for good, skipped).

Destinations are isolated: each has its own worker, connection pool and claims, so a slow or
dead receiver delays only its own deliveries. Per customer, deliveries go out in the order of
their changes (the outbox's `claim` gives each customer's earliest pending one only). Every
process serving the API runs a dispatcher; over one Neo4j database their claims keep them from
sending a delivery twice at once, and a dead process's claims expire (`LEASE`).

At-least-once: a delivery is marked delivered only after a 2xx, so a crash between the
receiver's answer and the write-back sends it again, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from graph_api import metrics
from graph_api.activation import payloads
from graph_api.activation.sender import CONNECTIONS, Response, Sender
from graph_api.activation.views import CustomerView, customer_views
from identity_graph.activation import signing
from identity_graph.activation.deliveries import Delivery, DeliveryStatus, next_attempt
from identity_graph.activation.destinations import (
    Destination,
    DestinationFormat,
    DestinationStatus,
)
from identity_graph.activation.store import Outbox
from identity_graph.audiences.store import ChangeKind

if TYPE_CHECKING:
    from graph_api.services import Services

log = logging.getLogger("c360.activation")

BATCH = 200
"""deliveries a worker claims at once"""
POLL_SECONDS = 1.0
"""how often an idle worker looks for deliveries enqueued by another process"""
REFRESH_SECONDS = 2.0
"""how often the destinations are read again (changes made through another process)"""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        services: Services,
        *,
        clock: Callable[[], datetime] = utcnow,
        poll: float = POLL_SECONDS,
        refresh: float = REFRESH_SECONDS,
    ) -> None:
        self.services = services
        outbox = services.audiences.audiences
        assert isinstance(outbox, Outbox)
        self.outbox: Outbox = outbox
        self.clock = clock
        self.poll = poll
        self.refresh_every = refresh
        settings = services.settings
        self.window = timedelta(hours=settings.webhook_retry_hours)
        self.timeout = float(settings.webhook_timeout_seconds)
        self.allow_private = settings.webhook_allow_private
        self.lease = timedelta(seconds=self.timeout * math.ceil(BATCH / CONNECTIONS) + 30)
        """a batch sends CONNECTIONS at a time, each within the timeout: its claims outlast
        the slowest batch, so no other process takes them up meanwhile"""
        self._destinations: dict[str, Destination] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._senders: dict[str, Sender] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self._refreshed = asyncio.Event()

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Make every pending delivery due (a restart retries at once) and start sending."""
        resumed = await self.outbox.resume(self.clock())
        if resumed:
            log.info("resuming %d pending deliveries", resumed)
        await self.refresh()
        self._task = asyncio.create_task(self._supervise(), name="c360-activation")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._workers.values()) if t is not None]
        self._task = None
        self._workers.clear()
        for task in tasks:
            task.cancel()
        for event in self._wakes.values():
            event.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in self._senders.values()), return_exceptions=True)
        self._senders.clear()

    def wake(self) -> None:
        """Deliveries were enqueued: every worker looks now."""
        for event in self._wakes.values():
            event.set()

    async def refresh(self) -> None:
        """Read the destinations: start a worker for each enabled one, stop the others'."""
        found = {d.id: d for d in await self.outbox.destinations()}
        self._destinations = found
        for did in list(self._workers):
            if did not in found or not found[did].enabled or self._workers[did].done():
                await self._stop_worker(did)
        for did, destination in found.items():
            if destination.enabled and did not in self._workers and self._task is not None:
                self._start_worker(did)
            elif did in self._wakes:
                self._wakes[did].set()

    def _start_worker(self, did: str) -> None:
        self._wakes[did] = asyncio.Event()
        self._senders[did] = Sender(timeout=self.timeout, allow_private=self.allow_private)
        self._workers[did] = asyncio.create_task(self._work(did), name=f"c360-destination-{did}")

    async def _stop_worker(self, did: str) -> None:
        task = self._workers.pop(did)
        if task is not asyncio.current_task():
            task.cancel()
            self._wakes[did].set()
            await asyncio.gather(task, return_exceptions=True)
        self._wakes.pop(did, None)
        sender = self._senders.pop(did, None)
        if sender is not None:
            await sender.close()

    async def _supervise(self) -> None:
        for did, destination in self._destinations.items():
            if destination.enabled and did not in self._workers:
                self._start_worker(did)
        while True:
            await asyncio.sleep(self.refresh_every)
            try:
                await self.refresh()
            except Exception:
                log.exception("reading the destinations failed; retrying")

    # --- one destination --------------------------------------------------------------------

    async def _work(self, did: str) -> None:
        wake = self._wakes[did]
        # until stopped: on Python 3.11 `asyncio.wait_for` can swallow a cancellation that
        # arrives as the event it waits for is set, so the loop checks that it is still the
        # destination's worker
        while self._workers.get(did) is asyncio.current_task():
            destination = self._destinations.get(did)
            if destination is None or not destination.enabled:
                return
            try:
                claimed = await self.outbox.claim(
                    did, now=self.clock(), limit=BATCH, lease=self.lease
                )
                if claimed:
                    await self._deliver(destination, claimed)
                    continue
                due = await self.outbox.next_due(did)
            except asyncio.CancelledError:
                raise
            except Exception:  # a store outage: claims expire, nothing is lost
                log.exception("delivering to destination %s failed; retrying", did)
                due = None
            timeout = self.poll
            if due is not None:
                timeout = min(timeout, max((due - self.clock()).total_seconds(), 0.0))
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                pass
            wake.clear()

    async def _deliver(self, destination: Destination, claimed: Sequence[Delivery]) -> None:
        services = self.services
        audiences = {a.id: a for a in await services.audiences.defined()}
        names = {aid: a.name for aid, a in audiences.items()}
        views = await customer_views(
            services,
            destination.role,
            sorted({d.customer_id for d in claimed}),
            reader=f"destination:{destination.id}",
        )
        now = self.clock()
        timestamp = int(now.timestamp())
        keys = destination.signing_keys(now)
        sender = self._senders[destination.id]

        async def one(delivery: Delivery) -> tuple[Delivery, Response | None]:
            view = views.get(delivery.customer_id)
            audience = audiences.get(delivery.audience_id)
            if delivery.kind is ChangeKind.ENTERED:
                if view is None:
                    return self._skipped(delivery, now, "the customer was merged or erased"), None
                purpose = audience.purpose if audience is not None else None
                if purpose is not None and view.consent.get(purpose) != "GRANTED":
                    reason = f"consent for {purpose} is no longer granted"
                    return self._skipped(delivery, now, reason), None
            request = payloads.build(delivery, destination, names, view)
            if isinstance(request, payloads.Skip):
                return self._skipped(delivery, now, request.reason), None
            headers = {
                **destination.headers,
                **signing.headers(keys, delivery.webhook_id, timestamp, request.body),
            }
            response = await sender.send(request.method, destination.url, headers, request.body)
            # the attempt's time is its answer's: a batch may have waited on a slow receiver
            return self._attempted(delivery, destination, response, self.clock()), response

        results = await asyncio.gather(*(one(d) for d in claimed))
        await self.outbox.finish([d for d, _ in results])
        for delivery, _ in results:
            metrics.WEBHOOK_DELIVERIES.labels(delivery.status.value).inc()
        await self._judge(destination, [r for _, r in results if r is not None])

    def _skipped(self, delivery: Delivery, now: datetime, reason: str) -> Delivery:
        return replace(
            delivery,
            status=DeliveryStatus.SKIPPED,
            last_attempt_at=now,
            last_error=reason,
            next_attempt_at=None,
        )

    def _attempted(
        self, delivery: Delivery, destination: Destination, response: Response, now: datetime
    ) -> Delivery:
        attempts = delivery.attempts + 1
        error = response.error or crm_error(destination, response)
        if error is None:
            return replace(
                delivery,
                status=DeliveryStatus.DELIVERED,
                attempts=attempts,
                last_attempt_at=now,
                delivered_at=now,
                next_attempt_at=None,
                response_status=response.status,
                last_error=None,
            )
        tried = replace(delivery, attempts=attempts)
        again = next_attempt(tried, now, window=self.window, retry_after=response.retry_after)
        return replace(
            tried,
            status=DeliveryStatus.PENDING if again is not None else DeliveryStatus.FAILED,
            next_attempt_at=again,
            last_attempt_at=now,
            last_error=error[:1000],
            response_status=response.status,
        )

    async def _judge(self, destination: Destination, responses: Sequence[Response]) -> None:
        """A destination answering `410 Gone` is disabled; one whose requests all failed is
        FAILING; one that answered is ACTIVE again."""
        if not responses:
            return
        status, error = destination.status, destination.last_error
        gone = next((r for r in responses if r.status == 410), None)
        failed = [r for r in responses if r.error is not None]
        if gone is not None:
            status, error = DestinationStatus.DISABLED, "the receiver answered 410 Gone"
        elif len(failed) == len(responses):
            status, error = DestinationStatus.FAILING, failed[-1].error
        elif destination.status is DestinationStatus.FAILING:
            status, error = DestinationStatus.ACTIVE, None
        if (status, error) != (destination.status, destination.last_error):
            await self.outbox.set_status(destination.id, status, error)
            self._destinations[destination.id] = replace(
                destination, status=status, last_error=error
            )
            if status is DestinationStatus.DISABLED:
                log.warning("destination %s disabled: %s", destination.name, error)


def crm_error(destination: Destination, response: Response) -> str | None:
    """A CRM answers 2xx and still refuses a record: HubSpot with `207 Multi-Status`,
    Salesforce with `success: false` in its per-record results."""
    if destination.format is DestinationFormat.HUBSPOT and response.status == 207:
        return f"HTTP 207: {response.body[:300].decode('utf-8', 'replace')}"
    if destination.format is DestinationFormat.SALESFORCE:
        try:
            results = orjson.loads(response.body) if response.body else []
        except orjson.JSONDecodeError:
            return None
        if isinstance(results, list):
            for result in results:
                if isinstance(result, dict) and result.get("success") is False:
                    errors = result.get("errors") or [{}]
                    first = errors[0] if isinstance(errors, list) and errors else {}
                    message = first.get("message") if isinstance(first, dict) else None
                    return f"Salesforce refused the record: {message or 'no reason given'}"
    return None


__all__ = ["Dispatcher", "CustomerView"]
