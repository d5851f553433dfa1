"""The data-subject export (GDPR Art. 15 and 20): everything c360 holds of one person, as one
JSON document, and nothing of anyone else.

`Export.sections` reads the document a section at a time; `chunks` renders it as JSON text
with the events streamed a page at a time (`c360 privacy export` writes a million events
without holding them), `document` as one value (`dataSubjectExport`, which refuses a person
with more than `GRAPHQL_MAX_EVENTS` events). Values are in the clear, so starting an export
is audited as a clear read of every section, before anything is read.

Merge records and conflicts may name identifiers of other profiles (the other side of an
undone merge or a split, an identifier a conflict kept off this profile): those appear by
their kind only, and other profiles' ids as null. Enumerations read as GraphQL spells them
(`MERGE`, `TRACK`, `BEHAVIOURAL`, `GRANTED`), times as ISO 8601.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graph_api.access.audit import entries
from graph_api.access.auth import Principal
from graph_api.errors import ApiError, not_found
from graph_api.services import Services
from identity_graph.model import (
    ConsentRecord,
    Identifier,
    IdentifierRecord,
    Link,
    MergeConflict,
    MergeRecord,
    Profile,
    StoredEvent,
    TraitValue,
)
from identity_graph.survivorship import current_traits, effective_consent

SECTIONS = (
    "customerId",
    "exportedAt",
    "identifiers",
    "traits",
    "traitHistory",
    "events",
    "consents",
    "mergeHistory",
    "conflicts",
    "accessLog",
)
"""the document's top-level keys, in order"""
AUDITED_FIELDS = tuple(f"dataSubjectExport.{name}" for name in SECTIONS[2:])
"""the fields the audit entry of an export names"""
GRAPHQL_MAX_EVENTS = 100_000
"""`dataSubjectExport` answers in one response; beyond this, `c360 privacy export` streams"""
PAGE = 1000
"""audit entries read per store call"""
EVENTS_PAGE = 10_000
"""events read per store call: an export holds one page at a time. The embedded store sorts
what is left of a person's events for every page, so fewer, larger pages are much faster
for a person with very many events"""
OPERATOR = "operator:"


@dataclass(frozen=True)
class Export:
    """One person's export: their current profile, and the ids that redirect to it."""

    services: Services
    profile: Profile
    profile_ids: tuple[str, ...]
    """the current profile id first, then every absorbed id that redirects to it"""
    exported_at: datetime

    @property
    def customer_id(self) -> str:
        return self.profile.id

    async def sections(self) -> AsyncIterator[tuple[str, Any]]:
        """(key, value) in `SECTIONS` order; a long list's value is an async iterator."""
        store = self.services.store
        own = {r.identifier.key for r in self.profile.identifiers}
        values = (await store.traits([self.customer_id])).get(self.customer_id, [])
        yield "customerId", self.customer_id
        yield "exportedAt", self.exported_at
        yield "identifiers", [_identifier_record(r) for r in self.profile.identifiers]
        current = current_traits(values, self.services.rules)
        yield "traits", {name: v.value for name, v in sorted(current.items())}
        yield "traitHistory", [_trait_value(v) for v in values]
        yield "events", self._events()
        consents = (await store.consents([self.customer_id])).get(self.customer_id, [])
        yield "consents", _consents(consents)
        ids = set(self.profile_ids)
        yield "mergeHistory", [_merge(r, own, ids) for r in await self._merge_history()]
        yield "conflicts", [_conflict(c, own) for c in await self._conflicts()]
        yield "accessLog", self._access_log()

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        async for event in self.services.graph.export_events(self.customer_id, page=EVENTS_PAGE):
            yield _event(event)

    async def _merge_history(self) -> list[MergeRecord]:
        found = await self.services.store.merge_history(self.profile_ids)
        unique = {r.id: r for records in found.values() for r in records}
        return sorted(unique.values(), key=lambda r: (r.at, r.id))

    async def _conflicts(self) -> list[MergeConflict]:
        found = await self.services.store.conflicts(self.profile_ids)
        unique = {c.id: c for conflicts in found.values() for c in conflicts}
        return sorted(unique.values(), key=lambda c: (c.at, c.id))

    async def _access_log(self) -> AsyncIterator[dict[str, Any]]:
        """Newest first: the current id's entries, then each absorbed id's."""
        records = self.services.records
        for pid in self.profile_ids:
            after: str | None = None
            while True:
                page = await records.audit_log(first=PAGE, after=after, customer_id=pid)
                for entry in page.items:
                    yield {
                        "at": entry.at,
                        "principal": entry.principal,
                        "role": entry.role,
                        "fields": list(entry.fields),
                    }
                if page.cursor is None:
                    break
                after = page.cursor


async def start_export(
    services: Services,
    customer_id: str,
    principal: Principal,
    *,
    max_events: int | None = None,
) -> Export:
    """The export of the customer with this id (an absorbed id gives its survivor), once its
    clear read by `principal` is durably audited. `NOT_FOUND` for an unknown or erased
    customer; `EXPORT_TOO_LARGE` when the customer has more than `max_events` events."""
    store = services.store
    current = (await store.resolve_profiles([customer_id])).get(customer_id)
    profile = (await store.profiles([current])).get(current) if current else None
    if profile is None:
        erased = await store.erasure(customer_id)
        if erased is not None:
            raise not_found(
                f"customer {customer_id!r} was erased at {erased.erased_at.isoformat()}"
                f" (erasure {erased.id}): nothing of them is left to export"
            )
        raise not_found(f"no customer {customer_id!r}")
    if max_events is not None:
        pages = await store.events(
            [profile.id], first=0, after=None, types=None, count_up_to=max_events + 1
        )
        page = pages.get(profile.id)
        total = page.total if page else 0
        if total > max_events:
            raise ApiError(
                "EXPORT_TOO_LARGE",
                f"customer {profile.id!r} has {total} events, more than the {max_events} one"
                " GraphQL response may carry: stream the export with `c360 privacy export"
                " --identifier KIND:VALUE --out FILE`",
            )
    at = datetime.now(UTC)
    reads = [(profile.id, name) for name in AUDITED_FIELDS]
    await services.audit.write(entries(principal, reads, at))
    ids = await _redirecting_ids(services, profile.id)
    return Export(services, profile, ids, at)


async def _redirecting_ids(services: Services, current: str) -> tuple[str, ...]:
    """`current` and every profile id its merge history names that redirects to it."""
    store = services.store
    ids = [current]
    pending = [current]
    while pending:
        history = await store.merge_history(pending)
        named = {
            pid
            for records in history.values()
            for r in records
            for pid in (r.survivor, r.absorbed)
            if pid not in ids
        }
        resolved = await store.resolve_profiles(sorted(named))
        pending = sorted(pid for pid, now in resolved.items() if now == current)
        ids.extend(pending)
    return tuple(ids)


async def chunks(export: Export) -> AsyncIterator[str]:
    """The export as JSON text, a section or an element of a long list at a time."""
    yield "{"
    separator = "\n"
    async for name, value in export.sections():
        yield f"{separator}{_dumps(name)}: "
        separator = ",\n"
        if isinstance(value, AsyncIterator):
            opened = "["
            async for item in value:
                yield f"{opened}\n  {_dumps(item)}"
                opened = ","
            yield "[]" if opened == "[" else "\n]"
        else:
            yield _dumps(value)
    yield "\n}\n"


async def document(export: Export) -> dict[str, Any]:
    """The export as one JSON value (times as ISO 8601 text, as in `chunks`)."""
    found: dict[str, Any] = {}
    async for name, value in export.sections():
        if isinstance(value, AsyncIterator):
            value = [item async for item in value]
        found[name] = json.loads(_dumps(value))
    return found


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_time)


def _time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _identifier(key: str, own: Collection[str] | None = None) -> dict[str, str]:
    """An identifier as the export shows it: by kind and value if it is the person's (or
    `own` is None), by kind only if it is someone else's."""
    identifier = Identifier.from_key(key)
    if own is not None and key not in own:
        return {"kind": identifier.kind}
    return {"kind": identifier.kind, "value": identifier.value}


def _identifier_record(record: IdentifierRecord) -> dict[str, Any]:
    return {
        **_identifier(record.identifier.key),
        "firstSeen": record.first_seen,
        "lastSeen": record.last_seen,
        "sources": list(record.sources),
    }


def _trait_value(value: TraitValue) -> dict[str, Any]:
    return {
        "name": value.name,
        "value": value.value,
        "source": value.source,
        "observedAt": value.observed_at,
        "messageId": value.message_id,
        "identifier": _identifier(value.identifier_key),
    }


def _event(event: StoredEvent) -> dict[str, Any]:
    return {
        "id": event.message_id,
        "type": event.type.name,
        "name": event.name,
        "category": event.category.name,
        "timestamp": event.timestamp,
        "source": event.source,
        "properties": dict(event.properties),
        "identifier": _identifier(event.identifier_key),
    }


def _consents(records: Iterable[ConsentRecord]) -> dict[str, Any]:
    listed = list(records)
    effective = effective_consent(listed)
    return {
        "effective": [
            {"purpose": p, "status": r.status.name, "at": r.at, "source": r.source}
            for p, r in sorted(effective.items())
        ],
        "records": [
            {
                "purpose": r.purpose,
                "status": r.status.name,
                "at": r.at,
                "source": r.source,
                "identifier": _identifier(r.identifier_key),
            }
            for r in sorted(listed, key=lambda r: r.seq)
        ],
    }


def _merge(record: MergeRecord, own: Collection[str], ids: Collection[str]) -> dict[str, Any]:
    by_operator = (record.message_id or "").startswith(OPERATOR)
    return {
        "id": record.id,
        "at": record.at,
        "kind": record.kind.name,
        "survivorId": record.survivor if record.survivor in ids else None,
        "absorbedId": record.absorbed if record.absorbed in ids else None,
        "actor": "OPERATOR" if by_operator else "MESSAGE",
        "messageId": None if by_operator else record.message_id,
        "undoes": record.undoes,
        "undoneBy": record.undone_by,
        "links": [_link(link, own) for link in record.links],
        "identifiers": [_identifier(key, own) for key in record.identifiers],
    }


def _link(link: Link, own: Collection[str]) -> dict[str, Any]:
    return {
        "from": _identifier(link.a, own),
        "to": _identifier(link.b, own),
        "source": link.source,
        "messageId": link.message_id,
        "observedAt": link.observed_at,
        "rule": link.rule,
    }


def _conflict(conflict: MergeConflict, own: Collection[str]) -> dict[str, Any]:
    reason = conflict.reason
    for key in conflict.dropped:
        if key not in own:
            reason = reason.replace(key, Identifier.from_key(key).kind)
    return {
        "id": conflict.id,
        "at": conflict.at,
        "messageId": conflict.message_id,
        "reason": reason,
        "dropped": [_identifier(key, own) for key in conflict.dropped],
    }
