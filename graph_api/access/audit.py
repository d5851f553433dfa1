"""Every clear read of personal data is recorded: once per request, not once per field."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from identity_graph.errors import StoreUnavailable
from identity_graph.records import AccessRecords, AuditEntry
from identity_graph.resolver import new_id

log = logging.getLogger("c360.audit")


def entries(principal: Any, reads: list[tuple[str, str]], at: datetime) -> list[AuditEntry]:
    """One entry per customer read, naming the fields read clear."""
    fields: dict[str, set[str]] = {}
    for customer, field in reads:
        fields.setdefault(customer, set()).add(field)
    role = ",".join(sorted(principal.roles))
    return [
        AuditEntry(new_id(), at, principal.id, role, customer, tuple(sorted(names)))
        for customer, names in sorted(fields.items())
    ]


class AuditWriter:
    """Group commit of audit entries: the requests that finish while one write is under way
    share the next write. Each request returns only once the write holding its entries is
    durable, so the audit costs one store write per group, not one per request.
    """

    def __init__(self, records: AccessRecords) -> None:
        self.records = records
        self._pending: list[AuditEntry] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, entries: Sequence[AuditEntry]) -> None:
        """Durably record the entries; raises what the store raised if it could not."""
        waiter = asyncio.get_running_loop().create_future()
        self._pending.extend(entries)
        self._waiters.append(waiter)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())
        await waiter

    async def _flush(self) -> None:
        while self._pending:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            try:
                await self.records.append_audit(batch)
            except BaseException as e:
                failure = e if isinstance(e, Exception) else StoreUnavailable("audit write stopped")
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(failure)
                if not isinstance(e, Exception):
                    for waiter in self._waiters:
                        if not waiter.done():
                            waiter.set_exception(failure)
                    raise
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)


class AuditReads(SchemaExtension):
    """Writes the request's clear reads to the store after execution.

    If the audit cannot be written the response is withheld: a clear read that is not
    audited must not reach the caller.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        reads = getattr(context, "audit", None)
        if not reads:
            return
        batch = entries(context.principal, reads, datetime.now(UTC))
        reads.clear()
        try:
            await context.services.audit.write(batch)
        except Exception as e:
            log.error("audit write failed; response withheld", exc_info=e)
            self.withhold(e)

    def withhold(self, error: Exception) -> None:
        """Replace the result (data and all) by one error, coded like any store outage."""
        result: Any = self.execution_context.result
        code = "STORE_UNAVAILABLE" if isinstance(error, StoreUnavailable) else "INTERNAL"
        message = "the audit log could not be written; the response was withheld"
        result.data = None
        result.errors = [GraphQLError(message, extensions={"code": code})]
