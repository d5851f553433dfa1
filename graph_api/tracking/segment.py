"""Segment-spec messages to observations: validation and mapping, shared by every edge.

Identifiers: `userId` -> `user_id`, `anonymousId` -> `anonymous_id`, `traits.email` ->
`email`, `traits.phone` -> `phone`, `context.device.id` -> `device_id`, each
`context.externalIds[]` -> its `type` (a kind the rules know). An alias call's `previousId`
is taken as an `anonymous_id` (the usual anonymous-to-known alias); a group call's traits
describe the group, so they are kept under the `group` trait and give no identifiers.

Values the rules block (`"null"`, `"0"`, ...) pass through unnormalised: the resolver drops
them, they are not errors.

A message without `messageId` gets a fresh one, so a client retrying it is *not*
idempotent; send a `messageId` (every Segment library does) to make retries safe.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graph_api.errors import SegmentError
from identity_graph.errors import InvalidIdentifier, UnknownKind
from identity_graph.model import (
    ConsentStatus,
    Event,
    EventCategory,
    Identifier,
    MessageType,
    Observation,
)
from identity_graph.normalize import normalize
from identity_graph.rules import Rules

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_ID = 200

CALLS = ("identify", "track", "page", "screen", "alias", "group")

ECOMMERCE_EVENTS = frozenset(
    name.lower()
    for name in (
        "Products Searched", "Product List Viewed", "Product List Filtered",
        "Promotion Viewed", "Promotion Clicked", "Product Clicked", "Product Viewed",
        "Product Added", "Product Removed", "Cart Viewed", "Checkout Started",
        "Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered",
        "Order Updated", "Order Completed", "Order Refunded", "Order Cancelled",
        "Coupon Entered", "Coupon Applied", "Coupon Denied", "Coupon Removed",
        "Product Added to Wishlist", "Product Removed from Wishlist",
        "Wishlist Product Added to Cart", "Product Shared", "Cart Shared", "Product Reviewed",
    )
)  # fmt: skip
_ATTITUDINAL = re.compile(
    r"\b(survey|nps|net promoter|feedback|questionnaire|poll|csat|rating|rated)\b", re.I
)

CONSENT_CATEGORIES: Mapping[str, str] = {
    "analytics": "analytics",
    "performance": "analytics",
    "statistics": "analytics",
    "email_marketing": "email_marketing",
    "email": "email_marketing",
    "advertising": "advertising",
    "ads": "advertising",
    "targeting": "advertising",
    "personalization": "personalization",
    "personalisation": "personalization",
    "functional": "personalization",
    "sale_of_data": "sale_of_data",
    "data_sale": "sale_of_data",
    "data_sharing": "sale_of_data",
}
"""Segment `context.consent.categoryPreferences` names (lower-cased, spaces and hyphens as
underscores) -> c360 purposes. Categories not listed are ignored."""


def event_category(call: str, name: str | None) -> EventCategory:
    """E-commerce spec events are behavioural, survey-like ones attitudinal, the rest
    engagement.

    >>> event_category("track", "Order Completed").value
    'behavioural'
    >>> event_category("track", "NPS Survey Answered").value
    'attitudinal'
    """
    if call != "track" or not name:
        return EventCategory.ENGAGEMENT
    if name.strip().lower() in ECOMMERCE_EVENTS:
        return EventCategory.BEHAVIOURAL
    if _ATTITUDINAL.search(name):
        return EventCategory.ATTITUDINAL
    return EventCategory.ENGAGEMENT


def parse_time(raw: object, field: str) -> datetime:
    """An ISO 8601 string to an aware UTC datetime; naive times are taken as UTC."""
    if not isinstance(raw, str):
        raise SegmentError("INVALID_FIELD", f"{field} must be an ISO 8601 string", field=field)
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError as e:
        raise SegmentError(
            "INVALID_FIELD", f"{field} is not an ISO 8601 timestamp", field=field
        ) from e
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class SegmentMapper:
    """Turns Segment messages into observations for the rules in force."""

    rules: Rules
    source: str = "segment"

    def message(
        self,
        raw: object,
        *,
        index: int | None = None,
        call: str | None = None,
        received_at: datetime | None = None,
    ) -> Observation:
        """Validate one message; `call` is the endpoint's type (None for batch items)."""
        try:
            return self._message(raw, call, received_at or datetime.now(UTC))
        except SegmentError as e:
            e.index = index
            raise

    def _message(self, raw: object, call: str | None, now: datetime) -> Observation:
        msg = _object(raw, "message")
        kind = msg.get("type", call)
        if kind is None:
            raise SegmentError("MISSING_FIELD", "type is required", field="type")
        if not isinstance(kind, str) or kind not in CALLS:
            raise SegmentError(
                "INVALID_FIELD", f"type must be one of {', '.join(CALLS)}", field="type"
            )
        if call is not None and kind != call:
            raise SegmentError("INVALID_FIELD", f"type {kind!r} sent to /v1/{call}", field="type")
        context = _object(msg.get("context"), "context")
        _object(msg.get("integrations"), "integrations")
        # context.traits is the library's cached copy: it may identify, it is not news
        traits = dict(_object(context.get("traits"), "context.traits"))
        own_traits = _object(msg.get("traits"), "traits")
        observed: dict[str, Any] = dict(own_traits) if kind == "identify" else {}
        found: list[tuple[str, object, str]] = []
        for name, kind_ in (("userId", "user_id"), ("anonymousId", "anonymous_id")):
            if msg.get(name) is not None:
                found.append((kind_, _id(msg[name], name), name))
        if kind == "alias":
            for name in ("userId", "previousId"):
                if msg.get(name) is None:
                    raise SegmentError("MISSING_FIELD", f"{name} is required", field=name)
            found.append(("anonymous_id", _id(msg["previousId"], "previousId"), "previousId"))
        elif not found:
            raise SegmentError("MISSING_FIELD", "userId or anonymousId is required", field="userId")
        if kind == "group":
            if msg.get("groupId") is None:
                raise SegmentError("MISSING_FIELD", "groupId is required", field="groupId")
            traits["group"] = observed["group"] = {
                "id": _id(msg["groupId"], "groupId"),
                **own_traits,
            }
        else:
            traits.update(own_traits)
        where = "traits" if kind != "group" else "context.traits"
        for trait, kind_ in (("email", "email"), ("phone", "phone")):
            if traits.get(trait) is not None:
                found.append((kind_, traits[trait], f"{where}.{trait}"))
        device = _object(context.get("device"), "context.device")
        if device.get("id") is not None:
            found.append(("device_id", _id(device["id"], "context.device.id"), "context.device.id"))
        found.extend(self._external_ids(context.get("externalIds")))
        return Observation(
            message_id=self._message_id(msg.get("messageId")),
            timestamp=_timestamp(msg, now),
            source=self.source,
            type=MessageType(kind),
            identifiers=tuple(self.identifier(k, v, f) for k, v, f in found),
            traits=observed,
            event=_event(msg, kind),
            consent=_consent(context.get("consent")),
        )

    def _external_ids(self, raw: object) -> list[tuple[str, object, str]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise SegmentError(
                "INVALID_FIELD", "context.externalIds must be an array", field="context.externalIds"
            )
        found: list[tuple[str, object, str]] = []
        for i, item in enumerate(raw):
            where = f"context.externalIds[{i}]"
            entry = _object(item, where)
            kind = entry.get("type")
            if not isinstance(kind, str) or not kind.strip():
                raise SegmentError(
                    "MISSING_FIELD", f"{where}.type is required", field=f"{where}.type"
                )
            if kind.strip().lower() not in self.rules.kinds:
                known = ", ".join(sorted(self.rules.kinds))
                raise SegmentError(
                    "UNKNOWN_KIND",
                    f"{where}.type {kind!r} is not a known identifier kind ({known})",
                    field=f"{where}.type",
                )
            if entry.get("id") is None:
                raise SegmentError("MISSING_FIELD", f"{where}.id is required", field=f"{where}.id")
            found.append((kind.strip().lower(), _id(entry["id"], f"{where}.id"), f"{where}.id"))
        return found

    def identifier(self, kind: str, raw: object, field: str) -> Identifier:
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            text = str(raw).strip()
            if self.rules.is_blocked(text, kind.strip().lower()):
                return Identifier(kind, text)
        try:
            return normalize(kind, raw, self.rules)
        except (InvalidIdentifier, UnknownKind) as e:
            raise SegmentError(e.code, f"{field}: {e}", field=field) from e

    def _message_id(self, raw: object) -> str:
        if raw is None:
            return str(uuid.uuid4())
        if not isinstance(raw, str) or not 0 < len(raw) <= MAX_MESSAGE_ID:
            raise SegmentError(
                "INVALID_FIELD",
                f"messageId must be a string of 1 to {MAX_MESSAGE_ID} characters",
                field="messageId",
            )
        return raw


def encoded_size(raw: object) -> int:
    """Bytes of a message as compact JSON, for the per-message size limit."""
    return len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())


def _object(raw: object, field: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SegmentError("INVALID_FIELD", f"{field} must be an object", field=field)
    return raw


def _id(raw: object, field: str) -> str | int:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise SegmentError("INVALID_FIELD", f"{field} must be a string", field=field)
    return raw


def _string(msg: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    raw = msg.get(field)
    if raw is None:
        if required:
            raise SegmentError("MISSING_FIELD", f"{field} is required", field=field)
        return None
    if not isinstance(raw, str) or (required and not raw.strip()):
        raise SegmentError("INVALID_FIELD", f"{field} must be a non-empty string", field=field)
    return raw


def _timestamp(msg: Mapping[str, Any], now: datetime) -> datetime:
    """Segment's rule: `timestamp` if given, else `originalTimestamp` corrected for the
    client's clock skew (`receivedAt - (sentAt - originalTimestamp)`), else now."""
    times = {
        name: parse_time(msg[name], name)
        for name in ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
        if msg.get(name) is not None
    }
    if "timestamp" in times:
        return times["timestamp"]
    if "originalTimestamp" in times:
        if "sentAt" in times:
            return times.get("receivedAt", now) - (times["sentAt"] - times["originalTimestamp"])
        return times["originalTimestamp"]
    return times.get("receivedAt", now)


def _event(msg: Mapping[str, Any], kind: str) -> Event | None:
    if kind == "track":
        name = _string(msg, "event", required=True)
    elif kind in ("page", "screen"):
        name = _string(msg, "name")
    else:
        return None
    properties = _object(msg.get("properties"), "properties")
    if kind == "page" and msg.get("category") is not None:
        properties = {"category": _string(msg, "category"), **properties}
    return Event(MessageType(kind), name, properties, event_category(kind, name))


def _consent(raw: object) -> dict[str, ConsentStatus]:
    consent = _object(raw, "context.consent")
    field = "context.consent.categoryPreferences"
    preferences = _object(consent.get("categoryPreferences"), field)
    choices: dict[str, ConsentStatus] = {}
    for category, allowed in preferences.items():
        if not isinstance(allowed, bool):
            raise SegmentError(
                "INVALID_FIELD",
                f"{field}.{category} must be true or false",
                field=f"{field}.{category}",
            )
        purpose = CONSENT_CATEGORIES.get(re.sub(r"[\s-]+", "_", category.strip().lower()))
        if purpose is not None and choices.get(purpose) is not ConsentStatus.DENIED:
            choices[purpose] = ConsentStatus.GRANTED if allowed else ConsentStatus.DENIED
    return choices
