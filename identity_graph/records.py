"""The access-records port: API keys and the audit log of clear reads.

Not identity: who called and what they read. Kept apart from `IdentityStore` so that each
port says one thing; every adapter implements both, in the same place (the embedded store's
data directory, in a file of their own; the Neo4j database), and exposes its records as
`store.records` (opened and closed with the store).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from identity_graph.model import Page


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One clear read: who (principal, role), when, whose data and which fields."""

    id: str
    """unique; made time-ordered (`resolver.new_id`), it orders entries of the same `at`"""
    at: datetime
    principal: str
    role: str
    customer_id: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record; the key itself is never stored, only its hash."""

    id: str
    key_hash: str
    role: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    """from then on the key is refused; None: it does not expire"""

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now`."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class AccessRecords(ABC):
    """API keys and audit entries. Every method is safe to call concurrently."""

    @abstractmethod
    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Durably record audit entries, once each: an entry whose id is recorded already
        is left as it is, so a retried append adds nothing. Entries are ordered by their
        own (`at`, `id`), not numbered from a shared counter that every append (of every
        process) would queue on."""

    @abstractmethod
    async def audit_log(
        self,
        *,
        first: int,
        after: str | None,
        customer_id: str | None,
        count_up_to: int | None = 0,
    ) -> Page[AuditEntry]:
        """Audit entries, newest first by (`at`, `id`), optionally for one customer;
        `after` is the id of the entry the page continues after (`InvalidOperation` if no
        entry has that id). The page's cursor is the id of its last entry if there are
        more. `Page.total` counts the entries (all of them, not only those after the
        cursor) up to `count_up_to`: 0, the default, counts nothing; None, all."""

    @abstractmethod
    async def expire_audit(self, before: datetime, *, batch: int) -> int:
        """Physically delete the audit entries older than `before`, `batch` per transaction;
        return how many."""

    @abstractmethod
    async def put_api_key(self, key: ApiKey) -> None:
        """Store an API key record (its hash only, and its expiry if it has one)."""

    @abstractmethod
    async def api_key(self, key_hash: str) -> ApiKey | None:
        """The API key record with this hash, revoked or not."""

    @abstractmethod
    async def api_keys(self, *, first: int, after: str | None) -> Page[ApiKey]:
        """Every API key record (revoked and expired ones too), oldest first by
        (`created_at`, `id`); `after` is the id of the key the page continues after
        (`InvalidOperation` if no key has that id). The page's cursor is the id of its last
        key if there are more."""

    @abstractmethod
    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        """Revoke a key by id; False if there is no such key."""
