"""Conversions shared by the adapters: times, JSON and cursors as stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_graph.model import Link

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys, so equal maps are equal text (trait filters rely on it)."""
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    return json.loads(text)


def link_to_json(link: Link) -> dict[str, Any]:
    """A link as stored inside a merge record."""
    return {
        "a": link.a,
        "b": link.b,
        "source": link.source,
        "message_id": link.message_id,
        "observed_at": to_micros(link.observed_at),
        "rule": link.rule,
    }


def link_from_json(data: dict[str, Any]) -> Link:
    return Link(
        data["a"],
        data["b"],
        data["source"],
        data["message_id"],
        from_micros(data["observed_at"]),
        data["rule"],
    )
