"""Every clear read of personal data is recorded: once per request, not once per field."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from strawberry.extensions import SchemaExtension

from identity_graph.model import AuditEntry


def entries(principal: Any, reads: list[tuple[str, str]], at: datetime) -> list[AuditEntry]:
    """One entry per customer read, naming the fields read clear."""
    fields: dict[str, set[str]] = {}
    for customer, field in reads:
        fields.setdefault(customer, set()).add(field)
    role = ",".join(sorted(principal.roles))
    return [
        AuditEntry(uuid.uuid4().hex, at, principal.id, role, customer, tuple(sorted(names)))
        for customer, names in sorted(fields.items())
    ]


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
        await context.services.store.append_audit(batch)
