"""A deterministic synthetic stream of observations for benchmarks and load tests.

About one person per three observations, each with ~3 identifiers over their life: one or two
anonymous sessions, often a device, sometimes an email, a phone or a user id. A few devices
are shared within households (so some people merge and some conflicts arise), and a few
messages carry blocked values such as `anonymous_id: "null"`. Most messages are track or page
calls with an event; identify calls carry traits.

    >>> stream = list(synthetic_stream(1000, seed=7))
    >>> len(stream), len({o.message_id for o in stream})
    (1000, 1000)
    >>> stream == list(synthetic_stream(1000, seed=7))
    True
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from identity_graph.model import (
    Event,
    EventCategory,
    Identifier,
    MessageType,
    Observation,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
PAGES = ("/", "/pricing", "/docs", "/blog", "/checkout")
TRACKS = (
    ("Product Viewed", EventCategory.BEHAVIOURAL),
    ("Product Added", EventCategory.BEHAVIOURAL),
    ("Order Completed", EventCategory.BEHAVIOURAL),
    ("Video Played", EventCategory.ENGAGEMENT),
    ("Survey Answered", EventCategory.ATTITUDINAL),
)
PLANS = ("free", "pro", "team", "enterprise")


def _person(i: int) -> list[Identifier]:
    """Person i's identifiers, derived from i alone so the stream needs no state per person."""
    rng = random.Random(i * 7919 + 17)
    ids = [Identifier("anonymous_id", f"anon-{i:x}-0")]
    if rng.random() < 0.5:
        ids.append(Identifier("anonymous_id", f"anon-{i:x}-1"))
    if rng.random() < 0.6:
        ids.append(Identifier("device_id", f"dev-{i:x}"))
    if rng.random() < 0.55:
        ids.append(Identifier("email", f"person{i}@example{i % 97}.com"))
    if rng.random() < 0.15:
        ids.append(Identifier("phone", f"+1415{i % 10_000_000:07d}"))
    if rng.random() < 0.45:
        ids.append(Identifier("user_id", f"user-{i}"))
    return ids


def synthetic_stream(n_observations: int, *, seed: int) -> Iterator[Observation]:
    """`n_observations` observations of about `n_observations / 3` people, in time order."""
    rng = random.Random(seed)
    people = max(1, n_observations // 3)
    households = max(1, people // 100)
    for n in range(n_observations):
        person = rng.randrange(people)
        ids = _person(person)
        anonymous = [i for i in ids if i.kind == "anonymous_id"]
        seen = [rng.choice(anonymous)]
        known = [i for i in ids if i.kind != "anonymous_id"]
        if known and rng.random() < 0.75:
            seen.extend(rng.sample(known, rng.randint(1, len(known))))
        roll = rng.random()
        if roll < 0.01:
            seen.append(Identifier("device_id", f"household-{rng.randrange(households):x}"))
        elif roll < 0.015:
            seen.append(Identifier("anonymous_id", "null"))
        timestamp = START + timedelta(milliseconds=100 * n)
        message_id = f"msg-{seed}-{n}"
        kind = rng.random()
        if kind < 0.2:
            yield Observation(
                message_id,
                timestamp,
                "web",
                MessageType.IDENTIFY,
                tuple(seen),
                traits={"plan": rng.choice(PLANS), "visits": rng.randint(1, 500)},
            )
        elif kind < 0.55:
            path = rng.choice(PAGES)
            event = Event(MessageType.PAGE, path, {"path": path, "referrer": "google"})
            yield Observation(
                message_id, timestamp, "web", MessageType.PAGE, tuple(seen), event=event
            )
        else:
            name, category = rng.choice(TRACKS)
            props = {"product_id": f"sku-{rng.randrange(5000)}", "price": rng.randint(1, 300)}
            event = Event(MessageType.TRACK, name, props, category)
            yield Observation(
                message_id, timestamp, "ios", MessageType.TRACK, tuple(seen), event=event
            )
