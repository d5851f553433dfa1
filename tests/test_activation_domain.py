"""The activation domain: retry schedule, secrets and their rotation, URL and mapping checks,
signatures (checked against the `standardwebhooks` package), and the send-time address guard."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from streams import at

from graph_api.activation.sender import NotPublic, PublicOnly, Sender, retry_after
from identity_graph.activation import signing
from identity_graph.activation.deliveries import SCHEDULE, Delivery, next_attempt
from identity_graph.activation.destinations import (
    Destination,
    DestinationFormat,
    check_headers,
    check_mapping,
    check_url,
    new_secret,
)
from identity_graph.audiences.store import ChangeKind
from identity_graph.errors import InvalidOperation

T = at(0)


def delivery(attempts: int) -> Delivery:
    return Delivery("c1.d1", "d1", "a1", "p1", ChangeKind.ENTERED, T, T, attempts=attempts)


def test_retries_follow_the_standard_webhooks_schedule_with_jitter_until_the_window() -> None:
    rng = random.Random(7)
    delays = []
    for n in range(1, 8):
        when = next_attempt(delivery(n), T, rng=rng)
        assert when is not None
        delays.append(when - T)
    expected = [SCHEDULE[min(n, len(SCHEDULE) - 1)] for n in range(1, 8)]
    for got, want in zip(delays, expected, strict=True):
        assert want * 0.8 <= got <= want  # jitter draws from [0.8, 1] of the delay
    assert expected[:3] == [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30)]
    # the window is counted from the delivery's creation: past it, no more attempts
    late = T + timedelta(days=3) - timedelta(hours=1)
    assert next_attempt(delivery(9), late, rng=rng) is None
    assert next_attempt(delivery(1), late, rng=rng) is not None  # 5 s still fits
    short = next_attempt(delivery(9), T, window=timedelta(hours=1), rng=rng)
    assert short is None


def test_retry_after_is_honoured_up_to_a_day() -> None:
    asked = next_attempt(delivery(1), T, retry_after=timedelta(minutes=10))
    assert asked == T + timedelta(minutes=10)
    capped = next_attempt(delivery(1), T, retry_after=timedelta(days=30), window=timedelta(days=9))
    assert capped == T + timedelta(hours=24)
    assert retry_after("120") == timedelta(seconds=120)
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == timedelta(0)  # in the past
    assert retry_after("soon") is None and retry_after(None) is None


def test_signatures_verify_with_an_independent_implementation_through_a_rotation() -> None:
    now = datetime.now(UTC)  # the verifier refuses timestamps five minutes away from its clock
    old = new_secret()
    assert old.value.startswith("whsec_") and len(old.key()) == 24
    d = Destination("d1", "n", "https://x.example/h", ("a1",), DestinationFormat.STANDARD,
                    "marketing", (old,), now)  # fmt: skip
    rotated, fresh = d.rotated(now, timedelta(hours=2))
    assert rotated.secrets[0] == fresh
    assert rotated.secrets[1].expires_at == now + timedelta(hours=2)
    body = b'{"type":"audience.entered"}'
    headers = signing.headers(rotated.signing_keys(now), "msg_1", int(now.timestamp()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old.value, fresh.value):
        verifier = Webhook(secret)
        assert verifier.verify(body, headers) == {"type": "audience.entered"}
    tampered = dict(headers, **{"webhook-id": "msg_2"})
    with pytest.raises(Exception):  # noqa: B017 - the package raises its own error type
        verifier.verify(body, tampered)
    # past the grace period the old secret no longer signs
    later = now + timedelta(hours=3)
    assert rotated.signing_keys(later) == [fresh.key()]
    again, _ = rotated.rotated(later, timedelta(hours=1))
    assert len(again.secrets) == 2  # the expired one is dropped


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/h",
        "https://127.0.0.1/h",
        "https://10.0.0.8/h",
        "https://192.168.1.1/h",
        "https://169.254.169.254/latest",
        "https://[::1]/h",
        "https://[fe80::1]/h",
        "https://[::ffff:127.0.0.1]/h",
        "https://100.64.0.1/h",
        "https://0.0.0.0/h",
        "https://localhost/h",
        "https://printer.local/h",
        "https://a:b@example.com/h",
        "https://example.com/h#frag",
        "https:///h",
        "https://example.com:99999/h",
    ],
)
def test_urls_that_are_not_public_https_are_refused(url: str) -> None:
    with pytest.raises(InvalidOperation):
        check_url(url, allow_private=False)


def test_private_urls_are_allowed_when_configured() -> None:
    assert check_url("http://127.0.0.1:8080/h", allow_private=True)
    assert check_url("https://hooks.example.com/h?token=1", allow_private=False)
    with pytest.raises(InvalidOperation):
        check_url("ftp://127.0.0.1/h", allow_private=True)


def test_mappings_and_headers_are_checked() -> None:
    hub = DestinationFormat.HUBSPOT
    assert check_mapping({"tier": "traits.plan", "lastname": ""}, hub) == {
        "tier": "traits.plan",
        "lastname": "",
    }
    for bad in ({"x": "plan"}, {"x": "traits."}, {"$other": "y"}, {"x": 3}, {"": "id"}):
        with pytest.raises(InvalidOperation):
            check_mapping(bad, hub)
    with pytest.raises(InvalidOperation):
        check_mapping({"x": "id"}, DestinationFormat.STANDARD)
    assert check_headers({"Authorization": "Bearer t"}) == {"Authorization": "Bearer t"}
    for bad_headers in ({"Host": "x"}, {"webhook-id": "x"}, {"X": "a\nb"}, {"a b": "x"}):
        with pytest.raises(InvalidOperation):
            check_headers(bad_headers)


async def test_names_that_resolve_to_private_addresses_are_refused_when_sending() -> None:
    with pytest.raises(NotPublic):
        await PublicOnly().resolve("localhost", 443)
    sender = Sender(timeout=2, allow_private=False)
    try:
        refused = await sender.send("POST", "https://localhost:9/h", {}, b"{}")
        assert refused.status is None and refused.error is not None
        assert "public" in refused.error
        literal = await sender.send("POST", "https://127.0.0.1:9/h", {}, b"{}")
        assert literal.status is None and "public" in (literal.error or "")
    finally:
        await sender.close()
