"""Privacy operations' domain: erasure, suppression and retention (GDPR Art. 15/17/20, CCPA).

An erasure deletes everything the store holds of one person physically, within the call,
and (unless asked not to) puts keyed hashes of their identifiers and message ids on a
suppression list: a later message carrying a suppressed identifier loses it, as if it were
a blocked value, and a replayed message of theirs is dropped whole. Retention deletes what
is older than a policy's windows, in bounded batches, by the same physical deletion.

The use cases are `IdentityGraph.erase`, `export_events`, `unsuppress` and
`apply_retention`; this module holds their values and the retention file's parser.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from identity_graph.config_text import ConfigText, parse_toml, read_toml
from identity_graph.errors import IdentityGraphError
from identity_graph.model import EventCategory

MAX_REASON = 500
"""characters an erasure's reason may have"""


class RetentionError(IdentityGraphError):
    """A retention file that cannot be used: nothing is deleted by it."""


@dataclass(frozen=True, slots=True)
class Suppression:
    """An erased identifier (or message id), kept only as a keyed hash."""

    hash: str
    kind: str
    """the identifier's kind; `message` for a message id"""
    erasure_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ErasureScope:
    """Everything a store holds of one person, read inside the erasing transaction."""

    profile_id: str
    """the current profile"""
    profile_ids: tuple[str, ...]
    """the current profile and every absorbed profile id that redirects to it"""
    keys: tuple[str, ...]
    """the identifier keys it holds"""
    message_ids: tuple[str, ...]
    """every message id recorded for it: its events', its trait values' and the messages
    that landed on it"""
    events: int


@dataclass(frozen=True, slots=True)
class Erasure:
    """Physically delete everything of `scope` (identifiers, links, trait values, events,
    consent records and states, merge and conflict records, message-id entries, the profile
    and its redirects), and every merge or conflict record of other profiles that names one
    of its identifiers; store the suppressions and the receipt. Applied as part of a
    `ChangeSet`, so it is atomic with nothing else half-done."""

    id: str
    scope: ErasureScope
    at: datetime
    reason: str
    actor: str
    suppressions: tuple[Suppression, ...] = ()
    """identifiers and message ids; those of kind `message` are not listed by
    `suppressions` (they only stop replays)"""

    @property
    def receipt(self) -> ErasureReceipt:
        return ErasureReceipt(
            id=self.id,
            customer_id=self.scope.profile_id,
            erased_at=self.at,
            identifiers=len(self.scope.keys),
            events=self.scope.events,
            suppressed=sum(1 for s in self.suppressions if s.kind != MESSAGE_KIND),
            reason=self.reason,
            actor=self.actor,
        )


MESSAGE_KIND = "message"


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """What an erasure did: counts, never values."""

    id: str
    customer_id: str
    erased_at: datetime
    identifiers: int
    events: int
    suppressed: int
    reason: str
    actor: str


def suppression_hash(digest: Callable[[str], str] | None, what: str) -> str:
    """The keyed hash a suppression is stored as: `digest` (the deployment's keyed hash)
    of `what`, an identifier key or `message:<id>`. Without a key (tests, tools), a plain
    SHA-256: c360's services always configure one."""
    if digest is not None:
        return digest(what)
    return hashlib.sha256(what.encode("utf-8")).hexdigest()


CATEGORIES = {c.name: c for c in EventCategory}
"""the names a retention file gives categories (as GraphQL does), and their categories"""
DEFAULT_MESSAGE_DAYS = 90
"""how long a message id of a message that is not an event (an identify, a consent choice)
is remembered for deduplication; an event's message id lives as long as the event"""
DEFAULT_CONFLICT_DAYS = 365
"""how long a merge conflict record (an identifier dropped from a merge) is kept"""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each kind of record is kept; None keeps it forever."""

    event_days: int | None = None
    event_days_by_category: Mapping[EventCategory, int] = field(
        default_factory=lambda: MappingProxyType({})
    )
    audit_days: int | None = None
    inactive_profile_days: int | None = None
    message_days: int | None = DEFAULT_MESSAGE_DAYS
    conflict_days: int | None = DEFAULT_CONFLICT_DAYS

    @classmethod
    def load(cls, path: str | Path | None) -> RetentionPolicy:
        """The policy of the TOML file at `path` (`C360_RETENTION_FILE`); None: the
        built-in defaults, which keep events, the audit log and profiles forever."""
        if path is None:
            return cls()
        return cls.parse(read_toml(path, what="retention", error=RetentionError))

    @classmethod
    def from_text(cls, text: str, *, origin: str = "retention.toml") -> RetentionPolicy:
        return cls.parse(parse_toml(text, origin=origin, error=RetentionError))

    @classmethod
    def parse(cls, config: ConfigText[RetentionError]) -> RetentionPolicy:
        doc = config.data
        _only(config, doc, {"events", "audit", "profiles", "messages", "conflicts"}, "")
        events = config.table(doc, "events")
        _only(config, events, {"days", "by_category"}, "events.")
        by_category = config.table(events, "by_category")
        for name in by_category:
            if name not in CATEGORIES:
                raise config.fail(
                    name, f"unknown event category {name!r} (one of {', '.join(CATEGORIES)})"
                )
        audit = config.table(doc, "audit")
        _only(config, audit, {"days"}, "audit.")
        profiles = config.table(doc, "profiles")
        _only(config, profiles, {"inactive_days"}, "profiles.")
        messages = config.table(doc, "messages")
        _only(config, messages, {"days"}, "messages.")
        conflicts = config.table(doc, "conflicts")
        _only(config, conflicts, {"days"}, "conflicts.")
        return cls(
            event_days=_days(config, events, "days"),
            event_days_by_category=MappingProxyType(
                {CATEGORIES[name]: _days(config, by_category, name) for name in by_category}  # type: ignore[misc]
            ),
            audit_days=_days(config, audit, "days"),
            inactive_profile_days=_days(config, profiles, "inactive_days"),
            message_days=_days(config, messages, "days", DEFAULT_MESSAGE_DAYS),
            conflict_days=_days(config, conflicts, "days", DEFAULT_CONFLICT_DAYS),
        )

    def cutoffs(self, now: datetime) -> Cutoffs:
        """The times before which each kind of record goes, at `now`."""

        def before(days: int | None) -> datetime | None:
            return None if days is None else now - timedelta(days=days)

        return Cutoffs(
            events={
                category: before(self.event_days_by_category.get(category, self.event_days))
                for category in EventCategory
            },
            audit=before(self.audit_days),
            profiles=before(self.inactive_profile_days),
            messages=before(self.message_days),
            conflicts=before(self.conflict_days),
        )


def _only(
    config: ConfigText[RetentionError], table: dict[str, Any], known: set[str], at: str
) -> None:
    for key in table:
        if key not in known:
            raise config.fail(key, f"unknown setting {at}{key} (known: {', '.join(sorted(known))})")


def _days(
    config: ConfigText[RetentionError], table: dict[str, Any], key: str, default: int | None = None
) -> int | None:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise config.fail(key, f"{key} must be a whole number of days, at least 1")
    if value > 36_500:
        raise config.fail(key, f"{key} must be at most 36500 days")
    return value


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Records older than these times are deleted; None keeps that kind."""

    events: Mapping[EventCategory, datetime | None]
    """per event category (a `StrEnum`: equal to the category as stored)"""
    audit: datetime | None
    profiles: datetime | None
    """profiles with no sighting since are erased (without suppression)"""
    messages: datetime | None
    conflicts: datetime | None


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention run deleted, per kind of record."""

    ran_at: datetime
    events: int = 0
    audit: int = 0
    profiles: int = 0
    identifiers: int = 0
    messages: int = 0
    conflicts: int = 0
