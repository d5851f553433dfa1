"""Erasure and suppression as an operator runs them: the domain's use cases, audited.

The audit entry names the principal, its role, the customer and the operation; the reason
of an erasure is on the receipt the store keeps. An erasure is audited before it runs, so
that no erasure is ever unrecorded (an erasure that then fails leaves its entry: it was
attempted); an unsuppress once it has lifted a suppression.
"""

from __future__ import annotations

from datetime import UTC, datetime

from graph_api.access.audit import entries
from graph_api.access.auth import Principal
from graph_api.services import Services
from identity_graph.model import Identifier
from identity_graph.privacy import ErasureReceipt, suppression_hash

ERASE_FIELDS = ("eraseCustomer",)
UNSUPPRESS_FIELD = "unsuppress"
OPERATOR = "operator:"


def operator(principal: Principal) -> str:
    """What an erasure records as its actor (as undos and splits do)."""
    return OPERATOR + principal.id


async def erase(
    services: Services,
    customer_id: str,
    principal: Principal,
    *,
    reason: str,
    suppress: bool = True,
) -> ErasureReceipt:
    """Erase a customer (an absorbed id erases its survivor): everything of them is
    physically deleted when this returns and, with `suppress`, their identifiers and
    message ids are suppressed. Raises the domain's `NotFound` for an unknown customer and
    `InvalidOperation` for an erased one or a missing reason."""
    current = (await services.store.resolve_profiles([customer_id])).get(customer_id)
    if current is not None and reason.strip():
        reads = [(current, name) for name in ERASE_FIELDS]
        await services.audit.write(entries(principal, reads, datetime.now(UTC)))
    return await services.graph.erase(
        customer_id, reason=reason, actor=operator(principal), suppress=suppress
    )


async def unsuppress(services: Services, identifier: Identifier, principal: Principal) -> bool:
    """Lift an identifier's suppression; False if it was not suppressed. Audited against
    the suppression's hash (the erased customer's id is not kept with it)."""
    lifted = await services.graph.unsuppress(identifier)
    if lifted:
        hashed = suppression_hash(services.graph.digest, identifier.key)
        reads = [(hashed, f"{UNSUPPRESS_FIELD}:{identifier.kind}")]
        await services.audit.write(entries(principal, reads, datetime.now(UTC)))
    return lifted
