"""A deterministic demo data set, as Segment messages, for `c360 serve --demo`.

Customers browse anonymously on one to three devices, most sign up (identify with email,
phone, name, address, company, plan), view and add products, some order and answer an NPS
survey. A few families share a device, so the second user on it hits the `user_id` limit
and leaves a merge conflict; some messages carry null-ish ids that the rules block.
The messages go through the same mapping as `/v1/batch`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from graph_api.errors import SegmentError
from graph_api.tracking.importer import Importer, ImportReport, Row
from graph_api.tracking.segment import SegmentMapper
from identity_graph.service import IdentityGraph

FIRST = tuple(
    "Ada Ben Chloe Dev Elena Farid Grace Hugo Ines Jonas Kira Liam Maya Noah Olga Pablo"
    " Quinn Rosa Sami Tara".split()
)
LAST = tuple(
    "Abbott Becker Costa Diaz Evans Fischer Garcia Haddad Ito Jensen Khan Larsen Moreau"
    " Nowak Okafor Patel Rossi Silva".split()
)
CITIES = (("Boston", "MA"), ("Austin", "TX"), ("Denver", "CO"), ("Seattle", "WA"),
          ("Chicago", "IL"), ("Miami", "FL"))  # fmt: skip
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", None)
PLANS = ("free", "pro", "team", "enterprise")
PRODUCTS: tuple[dict[str, Any], ...] = tuple(
    {"product_id": f"P{n:03}", "name": f"{adj} {noun}", "price": price}
    for n, (adj, noun, price) in enumerate(
        [("Trail", "Shoe", 89.0), ("Rain", "Jacket", 129.0), ("Wool", "Socks", 14.5),
         ("Camp", "Mug", 9.99), ("Day", "Pack", 59.0), ("Head", "Lamp", 24.0),
         ("Water", "Bottle", 19.0), ("Sun", "Hat", 22.0)]
    )
)  # fmt: skip
PAGES = ("/", "/shop", "/shop/shoes", "/shop/jackets", "/blog", "/pricing", "/help")
NULLISH = ("null", "undefined", "0")
START = datetime(2024, 1, 1, tzinfo=UTC)


def messages(customers: int = 3000, *, seed: int = 7) -> list[dict[str, Any]]:
    """Every demo message, oldest first; the same arguments give the same messages."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    shared: list[str] = []
    for n in range(customers):
        out.extend(_customer(n, rng, shared))
    out.sort(key=lambda m: (m["timestamp"], m["messageId"]))
    return out


def _customer(n: int, rng: random.Random, shared: list[str]) -> Iterator[dict[str, Any]]:
    ids = _Ids(n)
    at = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 150))
    devices = [f"dev-{n}-{d}" for d in range(rng.choice((1, 1, 2, 2, 3)))]
    if shared and rng.random() < 0.02:
        devices.append(shared.pop())
    elif rng.random() < 0.02:
        shared.append(devices[0])
    user_id = f"user-{n:05}" if rng.random() < 0.8 else None
    for session, device in enumerate(devices):
        anonymous = f"anon-{n}-{session}"
        at += timedelta(hours=rng.randrange(1, 96))
        for path in rng.sample(PAGES, rng.randrange(1, 5)):
            at += timedelta(seconds=rng.randrange(5, 300))
            yield ids.page(anonymous, device, path, at)
        for product in rng.sample(PRODUCTS, rng.randrange(0, 3)):
            at += timedelta(seconds=rng.randrange(5, 300))
            yield ids.track(anonymous, device, "Product Viewed", product, at)
            if rng.random() < 0.4:
                yield ids.track(anonymous, device, "Product Added", product, at)
        if user_id is None:
            continue
        at += timedelta(minutes=rng.randrange(1, 30))
        yield ids.identify(user_id, anonymous, device, _traits(n, rng), at, rng)
        if rng.random() < 0.45:
            items = rng.sample(PRODUCTS, rng.randrange(1, 4))
            revenue = round(sum(p["price"] for p in items), 2)
            order = {"order_id": f"O-{n}-{session}", "revenue": revenue, "products": items}
            yield ids.track(anonymous, device, "Checkout Started", {"revenue": revenue}, at)
            at += timedelta(minutes=rng.randrange(1, 20))
            yield ids.track(user_id, device, "Order Completed", order, at, known=True)
    if user_id is not None and rng.random() < 0.25:
        at += timedelta(days=rng.randrange(1, 20))
        answer = {"score": rng.choice((3, 6, 7, 8, 9, 9, 10, 10)), "survey": "nps-2024"}
        yield ids.track(user_id, None, "NPS Survey Answered", answer, at, known=True)
    if rng.random() < 0.05:
        at += timedelta(hours=1)
        nullish = {"userId": rng.choice(NULLISH), "anonymousId": rng.choice(NULLISH)}
        yield {**ids.page("x", None, "/", at), **nullish}


def _traits(n: int, rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, state = rng.choice(CITIES)
    traits: dict[str, Any] = {
        "name": f"{first} {last}",
        "firstName": first,
        "lastName": last,
        "email": f"{first}.{last}.{n}@example.com".lower(),
        "plan": rng.choice(PLANS),
        "address": {"street": f"{rng.randrange(1, 999)} Main St", "city": city, "state": state,
                    "postalCode": f"{rng.randrange(10000, 99999)}", "country": "US"},
    }  # fmt: skip
    if rng.random() < 0.7:
        traits["phone"] = f"+1 415 555 {n % 10000:04}"
    company = rng.choice(COMPANIES)
    if company:
        traits["company"] = {"name": company}
    return traits


class _Ids:
    """Builds one customer's messages with stable message ids."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0

    def _base(self, kind: str, at: datetime, device: str | None) -> dict[str, Any]:
        self.count += 1
        context: dict[str, Any] = {"library": {"name": "c360-demo"}}
        if device is not None:
            context["device"] = {"id": device}
        return {
            "type": kind,
            "messageId": f"demo-{self.n}-{self.count}",
            "timestamp": at.isoformat(),
            "context": context,
        }

    def page(self, anonymous: str, device: str | None, path: str, at: datetime) -> dict[str, Any]:
        props = {"path": path, "url": f"https://shop.example.com{path}"}
        return {**self._base("page", at, device), "anonymousId": anonymous, "name": path,
                "properties": props}  # fmt: skip

    def track(
        self,
        who: str,
        device: str | None,
        event: str,
        properties: dict[str, Any],
        at: datetime,
        *,
        known: bool = False,
    ) -> dict[str, Any]:
        key = "userId" if known else "anonymousId"
        return {**self._base("track", at, device), key: who, "event": event,
                "properties": properties}  # fmt: skip

    def identify(
        self,
        user_id: str,
        anonymous: str,
        device: str,
        traits: dict[str, Any],
        at: datetime,
        rng: random.Random,
    ) -> dict[str, Any]:
        message = {**self._base("identify", at, device), "userId": user_id,
                   "anonymousId": anonymous, "traits": traits}  # fmt: skip
        preferences = {"Analytics": rng.random() < 0.9, "Advertising": rng.random() < 0.5,
                       "Email Marketing": rng.random() < 0.6}  # fmt: skip
        message["context"]["consent"] = {"categoryPreferences": preferences}
        return message


def demo_rows(mapper: SegmentMapper, raw: list[dict[str, Any]]) -> Iterator[Row]:
    for number, message in enumerate(raw, start=1):
        try:
            yield number, mapper.message(message)
        except SegmentError as e:
            raise AssertionError(f"demo message {number} is invalid: {e.message}") from e


async def load(
    graph: IdentityGraph,
    *,
    customers: int = 3000,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Generate the demo messages and ingest them in batches of 500."""
    raw = messages(customers, seed=seed)
    mapper = SegmentMapper(graph.rules, source="demo")
    return await Importer(graph, source="demo").run(demo_rows(mapper, raw), progress=progress)
