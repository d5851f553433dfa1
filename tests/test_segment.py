from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from graph_api.errors import SegmentError
from graph_api.tracking.mapper import Mapper, Message, Named, event_category
from graph_api.tracking.segment import SegmentMapper
from identity_graph.model import ConsentStatus, EventCategory, Identifier, MessageType
from identity_graph.rules import Rules

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RULES = Rules.parse("[kinds.crm_id]\nlimit = 1\n")


def mapper() -> SegmentMapper:
    return SegmentMapper(RULES, source="segment")


def parse(msg: dict[str, Any], call: str | None = None) -> Any:
    return mapper().message(msg, call=call, received_at=NOW)


def test_identify_maps_every_identifier_and_trait() -> None:
    obs = parse(
        {
            "type": "identify",
            "messageId": "m1",
            "userId": " u-1 ",
            "anonymousId": "a-1",
            "timestamp": "2024-04-01T10:00:00+02:00",
            "traits": {"email": " Jane@Example.COM", "phone": "(415) 555-0134", "plan": "pro"},
            "context": {
                "device": {"id": "dev-9"},
                "externalIds": [
                    {"id": "C-7", "type": "crm_id", "collection": "users", "encoding": "none"}
                ],
                "traits": {"plan": "free", "firstName": "Jane"},
            },
            "integrations": {"All": True},
        }
    )
    assert obs.type is MessageType.IDENTIFY
    assert obs.message_id == "m1"
    assert obs.timestamp == datetime(2024, 4, 1, 8, 0, tzinfo=UTC)
    assert set(obs.identifiers) == {
        Identifier("user_id", "u-1"),
        Identifier("anonymous_id", "a-1"),
        Identifier("email", "jane@example.com"),
        Identifier("phone", "+14155550134"),
        Identifier("device_id", "dev-9"),
        Identifier("crm_id", "C-7"),
    }
    assert obs.traits == {"email": " Jane@Example.COM", "phone": "(415) 555-0134", "plan": "pro"}
    assert obs.event is None


def test_context_traits_identify_but_are_not_recorded_as_fresh_values() -> None:
    obs = parse(
        {
            "type": "track",
            "messageId": "m2",
            "userId": "u-1",
            "event": "Clicked",
            "context": {"traits": {"email": "jane@example.com", "plan": "free"}},
        }
    )
    assert Identifier("email", "jane@example.com") in obs.identifiers
    assert obs.traits == {}


def test_track_page_screen_become_categorised_events() -> None:
    order = parse(
        {"userId": "u", "event": "Order Completed", "properties": {"revenue": 9.5}}, "track"
    )
    assert order.event is not None
    assert order.event.category is EventCategory.BEHAVIOURAL
    assert order.event.properties == {"revenue": 9.5}
    nps = parse({"userId": "u", "event": "NPS Survey Answered"}, "track")
    assert nps.event is not None and nps.event.category is EventCategory.ATTITUDINAL
    page = parse({"anonymousId": "a", "name": "Home", "category": "Docs"}, "page")
    assert page.event is not None
    assert (page.event.type, page.event.name) == (MessageType.PAGE, "Home")
    assert page.event.category is EventCategory.ENGAGEMENT
    assert page.event.properties == {"category": "Docs"}
    screen = parse({"anonymousId": "a", "name": "Cart"}, "screen")
    assert screen.event is not None and screen.event.type is MessageType.SCREEN
    assert event_category("track", "Video Played") is EventCategory.ENGAGEMENT


def test_alias_joins_previous_id_and_group_keeps_group_traits_apart() -> None:
    alias = parse({"type": "alias", "userId": "u-1", "previousId": "anon-1"})
    assert set(alias.identifiers) == {
        Identifier("user_id", "u-1"),
        Identifier("anonymous_id", "anon-1"),
    }
    group = parse(
        {"userId": "u-1", "groupId": "g-1", "traits": {"name": "Acme", "email": "ops@acme.com"}},
        "group",
    )
    assert group.identifiers == (Identifier("user_id", "u-1"),)
    assert group.traits["group"] == {"id": "g-1", "name": "Acme", "email": "ops@acme.com"}


def test_consent_preferences_map_to_purposes_and_denial_wins() -> None:
    obs = parse(
        {
            "userId": "u",
            "context": {
                "consent": {
                    "categoryPreferences": {
                        "Analytics": True,
                        "Advertising": True,
                        "Targeting": False,
                        "Email Marketing": False,
                        "Strictly Necessary": True,
                    }
                }
            },
        },
        "identify",
    )
    assert obs.consent == {
        "analytics": ConsentStatus.GRANTED,
        "advertising": ConsentStatus.DENIED,
        "email_marketing": ConsentStatus.DENIED,
    }


def test_blocked_values_pass_through_for_the_resolver_to_drop() -> None:
    obs = parse(
        {"userId": "null", "anonymousId": "0", "traits": {"email": "undefined"}}, "identify"
    )
    assert all(RULES.is_blocked(i.value) for i in obs.identifiers)
    assert len(obs.identifiers) == 3


def test_missing_message_id_is_generated_and_times_fall_back() -> None:
    a = parse({"userId": "u", "event": "X"}, "track")
    b = parse({"userId": "u", "event": "X"}, "track")
    assert a.message_id != b.message_id
    assert a.timestamp == NOW
    skewed = parse(
        {
            "userId": "u",
            "event": "X",
            "originalTimestamp": "2024-05-01T11:00:00Z",
            "sentAt": "2024-05-01T11:00:10Z",
        },
        "track",
    )
    assert skewed.timestamp == datetime(2024, 5, 1, 11, 59, 50, tzinfo=UTC)
    naive = parse({"userId": "u", "event": "X", "timestamp": "2024-01-01T00:00:00"}, "track")
    assert naive.timestamp.tzinfo is not None


@pytest.mark.parametrize(
    ("msg", "call", "code", "field"),
    [
        ([], "track", "INVALID_FIELD", "message"),
        ({"event": "X"}, "track", "MISSING_FIELD", "userId"),
        ({"userId": "u"}, "track", "MISSING_FIELD", "event"),
        ({"userId": 5.5, "event": "X"}, "track", "INVALID_FIELD", "userId"),
        ({"userId": True, "event": "X"}, "track", "INVALID_FIELD", "userId"),
        ({"userId": "u", "event": 3}, "track", "INVALID_FIELD", "event"),
        ({"userId": "u", "traits": "x"}, "identify", "INVALID_FIELD", "traits"),
        (
            {"userId": "u", "traits": {"email": "nope"}},
            "identify",
            "INVALID_IDENTIFIER",
            "traits.email",
        ),
        ({"userId": "u", "timestamp": "yesterday"}, "identify", "INVALID_FIELD", "timestamp"),
        ({"userId": "u", "messageId": 7}, "identify", "INVALID_FIELD", "messageId"),
        ({"type": "fly", "userId": "u"}, None, "INVALID_FIELD", "type"),
        ({"userId": "u"}, None, "MISSING_FIELD", "type"),
        ({"type": "track", "userId": "u", "event": "X"}, "identify", "INVALID_FIELD", "type"),
        ({"userId": "u"}, "alias", "MISSING_FIELD", "previousId"),
        ({"userId": "u"}, "group", "MISSING_FIELD", "groupId"),
        (
            {"userId": "u", "context": {"externalIds": [{"id": "1", "type": "shoe_size"}]}},
            "identify",
            "UNKNOWN_KIND",
            "context.externalIds[0].type",
        ),
        (
            {"userId": "u", "context": {"consent": {"categoryPreferences": {"Ads": "yes"}}}},
            "identify",
            "INVALID_FIELD",
            "context.consent.categoryPreferences.Ads",
        ),
    ],
)
def test_malformed_messages_name_the_field(
    msg: Any, call: str | None, code: str, field: str | None
) -> None:
    with pytest.raises(SegmentError) as info:
        mapper().message(msg, call=call, index=3, received_at=NOW)
    assert (info.value.code, info.value.field, info.value.index) == (code, field, 3)
    assert info.value.to_json()["message"].startswith("message 3: ")


def test_the_mapper_holds_a_message_of_any_wire_format_to_the_same_rules() -> None:
    rules = Mapper(RULES, source="graphql")
    track = rules.observation(
        Message(
            MessageType.TRACK,
            [Named("Email", "NULL", "identifiers[0].value"), Named("user_id", "u", "userId")],
            traits={"email": "j@example.com", "plan": "pro"},
            event="Order Completed",
            timestamp=datetime(2024, 1, 1, 12, 0),
        ),
        received_at=NOW,
    )
    assert track.identifiers == (
        Identifier("email", "NULL"),
        Identifier("email", "j@example.com"),
        Identifier("user_id", "u"),
    )
    assert track.traits == {}  # a track call's traits identify, they are not news
    assert track.timestamp == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert track.event is not None and track.event.category is EventCategory.BEHAVIOURAL
    assert str(uuid.UUID(track.message_id)) == track.message_id
    told = rules.observation(
        Message(
            MessageType.TRACK,
            [Named("user_id", "u", "userId")],
            event="Order Completed",
            category=EventCategory.ATTITUDINAL,
        )
    )
    assert told.event is not None and told.event.category is EventCategory.ATTITUDINAL
    group = rules.observation(
        Message(
            MessageType.GROUP,
            [Named("user_id", "u", "userId")],
            traits={"email": "ops@acme.com"},
        )
    )
    assert group.identifiers == (Identifier("user_id", "u"),)
    assert group.traits == {"group": {"email": "ops@acme.com"}}


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        (Message(MessageType.IDENTIFY), "MISSING_FIELD", None),
        (Message(MessageType.TRACK, [Named("user_id", "u", "userId")]), "MISSING_FIELD", "event"),
        (Message(MessageType.IDENTIFY, [Named("shoe", "null", "k")]), "UNKNOWN_KIND", "k"),
        (Message(MessageType.IDENTIFY, [Named("email", "x", "e")]), "INVALID_IDENTIFIER", "e"),
        (
            Message(MessageType.IDENTIFY, [Named("user_id", "u", "userId")], message_id=""),
            "INVALID_FIELD",
            "messageId",
        ),
    ],
)
def test_the_mapper_names_the_field_it_cannot_map(
    message: Message, code: str, field: str | None
) -> None:
    with pytest.raises(SegmentError) as info:
        Mapper(RULES, source="test").observation(message)
    assert (info.value.code, info.value.field) == (code, field)
