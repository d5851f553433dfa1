"""Segment-spec messages (the tracking API, JSONL imports, the demo) read into `Message`s
for the one `Mapper`, which holds them to the rules (blocked values, message ids, traits
that identify, timestamps, event categories: see `mapper`).

What is Segment's own: `userId` -> `user_id`, `anonymousId` -> `anonymous_id`,
`context.device.id` -> `device_id`, each `context.externalIds[]` -> its `type` (a kind the
rules know). A message needs `userId` or `anonymousId`. An alias call's `previousId` is taken
as an `anonymous_id` (the usual anonymous-to-known alias); a group call's traits describe the
group (`groupId` is kept as their `id`). `context.traits` is the library's cached copy of the
user's traits. The time is `timestamp`, else `originalTimestamp` corrected for the client's
clock skew; the mapper stores a time later than the receipt as the receipt's. Consent comes
from `context.consent.categoryPreferences`.

Send a `messageId` (every Segment library does) to make retries safe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from graph_api.errors import SegmentError
from graph_api.tracking.mapper import Mapper, Message, Named, utc
from identity_graph.model import ConsentStatus, MessageType, Observation

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

CALLS = ("identify", "track", "page", "screen", "alias", "group")

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
    return utc(value)


class SegmentMapper(Mapper):
    """The mapper, reading Segment-spec JSON messages."""

    @property
    def entry(self) -> str:
        """The entry point the metrics name: a Segment mapper's source is chosen by c360."""
        return self.source

    def message(
        self,
        raw: object,
        *,
        index: int | None = None,
        call: str | None = None,
        received_at: datetime | None = None,
    ) -> Observation:
        """Validate one message; `call` is the endpoint's type (None for batch items)."""
        now = received_at or datetime.now(UTC)
        try:
            return self.observation(self.read(raw, call, received_at=now), received_at=now)
        except SegmentError as e:
            e.index = index
            raise

    def read(self, raw: object, call: str | None = None, *, received_at: datetime) -> Message:
        """A Segment message as a `Message`: the spec's shape checked, values as sent."""
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
        identifiers = self._identifiers(msg, kind, context)
        traits = _object(msg.get("traits"), "traits")
        if kind == "group":
            if msg.get("groupId") is None:
                raise SegmentError("MISSING_FIELD", "groupId is required", field="groupId")
            traits = {"id": _id(msg["groupId"], "groupId"), **traits}
        event, properties = _event(msg, kind)
        return Message(
            type=MessageType(kind),
            identifiers=identifiers,
            traits=traits,
            cached_traits=_object(context.get("traits"), "context.traits"),
            event=event,
            properties=properties,
            message_id=msg.get("messageId"),
            timestamp=_timestamp(msg, received_at),
            consent=_consent(context.get("consent")),
        )

    def _identifiers(
        self, msg: Mapping[str, Any], kind: str, context: Mapping[str, Any]
    ) -> list[Named]:
        found: list[Named] = []
        for name, kind_ in (("userId", "user_id"), ("anonymousId", "anonymous_id")):
            if msg.get(name) is not None:
                found.append(Named(kind_, _id(msg[name], name), name))
        if kind == "alias":
            for name in ("userId", "previousId"):
                if msg.get(name) is None:
                    raise SegmentError("MISSING_FIELD", f"{name} is required", field=name)
            found.append(Named("anonymous_id", _id(msg["previousId"], "previousId"), "previousId"))
        elif not found:
            raise SegmentError("MISSING_FIELD", "userId or anonymousId is required", field="userId")
        device = _object(context.get("device"), "context.device")
        if device.get("id") is not None:
            field = "context.device.id"
            found.append(Named("device_id", _id(device["id"], field), field))
        found.extend(self._external_ids(context.get("externalIds")))
        return found

    def _external_ids(self, raw: object) -> list[Named]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise SegmentError(
                "INVALID_FIELD", "context.externalIds must be an array", field="context.externalIds"
            )
        found: list[Named] = []
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
            found.append(Named(kind, _id(entry["id"], f"{where}.id"), f"{where}.id"))
        return found


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


def _string(msg: Mapping[str, Any], field: str) -> str | None:
    raw = msg.get(field)
    if raw is not None and not isinstance(raw, str):
        raise SegmentError("INVALID_FIELD", f"{field} must be a string", field=field)
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


def _event(msg: Mapping[str, Any], kind: str) -> tuple[str | None, dict[str, Any]]:
    """The event name (a track call's event, a page or screen name) and properties."""
    if kind not in ("track", "page", "screen"):
        return None, {}
    name = _string(msg, "event" if kind == "track" else "name")
    properties = _object(msg.get("properties"), "properties")
    if kind == "page" and msg.get("category") is not None:
        properties = {"category": _string(msg, "category"), **properties}
    return name, properties


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
