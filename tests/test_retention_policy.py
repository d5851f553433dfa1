"""The retention file: what it keeps, and the errors that name its line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from identity_graph.model import EventCategory
from identity_graph.privacy import (
    DEFAULT_CONFLICT_DAYS,
    DEFAULT_MESSAGE_DAYS,
    RetentionError,
    RetentionPolicy,
)

NOW = datetime(2026, 12, 3, tzinfo=UTC)
FILE = """\
[events]
days = 730                 # every event older than this is deleted
[events.by_category]
ENGAGEMENT = 365
[audit]
days = 730
[profiles]
inactive_days = 1095
"""


def test_the_issue_example_parses_into_cutoffs() -> None:
    policy = RetentionPolicy.from_text(FILE)
    cutoffs = policy.cutoffs(NOW)
    assert cutoffs.events == {
        EventCategory.ENGAGEMENT: NOW - timedelta(days=365),
        EventCategory.BEHAVIOURAL: NOW - timedelta(days=730),
        EventCategory.ATTITUDINAL: NOW - timedelta(days=730),
    }
    assert cutoffs.audit == NOW - timedelta(days=730)
    assert cutoffs.profiles == NOW - timedelta(days=1095)
    assert cutoffs.messages == NOW - timedelta(days=DEFAULT_MESSAGE_DAYS)
    assert cutoffs.conflicts == NOW - timedelta(days=DEFAULT_CONFLICT_DAYS)


def test_the_defaults_keep_events_audit_and_profiles() -> None:
    cutoffs = RetentionPolicy.load(None).cutoffs(NOW)
    assert set(cutoffs.events.values()) == {None}
    assert (cutoffs.audit, cutoffs.profiles) == (None, None)
    assert cutoffs.messages is not None and cutoffs.conflicts is not None


def test_a_category_without_a_window_keeps_its_events_unless_events_have_one() -> None:
    cutoffs = RetentionPolicy.from_text("[events.by_category]\nBEHAVIOURAL = 10\n").cutoffs(NOW)
    assert cutoffs.events[EventCategory.BEHAVIOURAL] == NOW - timedelta(days=10)
    assert cutoffs.events[EventCategory.ENGAGEMENT] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[events]\ndays = -1\n", "line 2: days must be a whole number of days, at least 1"),
        ("[events]\ndays = 0\n", "line 2: days must be a whole number"),
        ("[events]\ndays = 1.5\n", "line 2: days must be a whole number"),
        ("[events]\ndays = true\n", "line 2: days must be a whole number"),
        ("[events]\ndays = 99999\n", "at most 36500"),
        ("[events]\nweeks = 3\n", "line 2: unknown setting events.weeks"),
        ("[event]\ndays = 3\n", "line 1: unknown setting event"),
        ("[events.by_category]\nSHOPPING = 3\n", "line 2: unknown event category 'SHOPPING'"),
        ("[profiles]\ninactive = 3\n", "unknown setting profiles.inactive"),
        ("events = 3\n", "events must be a table"),
        ("[events\n", "retention.toml"),
    ],
)
def test_bad_files_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(RetentionError, match=message.replace(".", r"\.").replace("(", r"\(")):
        RetentionPolicy.from_text(text)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RetentionError, match="cannot read retention file"):
        RetentionPolicy.load(tmp_path / "absent.toml")
