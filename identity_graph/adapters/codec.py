"""Conversions shared by the adapters: times, JSON and cursors as stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

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


def event_cursor(micros: int, message_id: str) -> str:
    return f"{micros}|{message_id}"


def parse_event_cursor(cursor: str | None) -> tuple[int, str] | None:
    """Decode a cursor made by `event_cursor`; a malformed one is a `ValueError`."""
    if cursor is None:
        return None
    micros, sep, message_id = cursor.partition("|")
    if not sep:
        raise ValueError("malformed cursor")
    return int(micros), message_id
