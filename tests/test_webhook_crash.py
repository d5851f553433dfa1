"""Issue 21's promise, against a real `c360 serve` on the embedded store: a kill -9 at any
point loses no delivery and a restart resumes; at-least-once, with the same webhook-id on
every retry; per customer and destination, an exit never overtakes its entry.

Customers enter an audience (plan "pro"), a third of them leave it and some of those come
back, through the Segment API, while the server is killed with SIGKILL again and again:
right after an audience change commits (random moments would almost never fall between
two transactions), while the receiver holds a delivery, and at random moments. The
receiver is slow (one request at a time), refuses a share of requests with 500 until the
last kill, and records every request in order of arrival, duplicates and refusals included.
After the last restart the outbox must drain on its own, within less than a claim's lease,
and match one to one the changes the store recorded and what the receiver accepted.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from identity_graph.activation.store import LEASE
from identity_graph.adapters.embedded.audiences import AUDIENCES_FILE
from tests.api.servers import Server
from tests.serve_process import ServeProcess

ADMIN_KEY = "webhook-crash-admin-key-7Hq2Zx9Lm4Rt6Vb1"
CUSTOMERS = 300
LAG = 10
"""messages from a customer's entry to their exit, and from the exit to their return: soon
enough that an entry refused (and so retried seconds later) is often still pending"""
BATCH = 5
PACE = 0.06
"""seconds between two batches: the writes go on through most of the kills"""
KILLS = ("commit", "arrival", "commit", "timer", "commit", "arrival", "timer", "arrival")
"""what triggers each kill: an audience change committed, the receiver holding a delivery,
or a random moment"""
TAIL = 20
"""the last messages wait until the last kill is armed: it finds a delivery in flight, so
the final start must release the dead run's claims and resume on its own"""
REFUSED = 0.2
"""share of requests the receiver answers with 500 until the last kill"""
DRAIN_SECONDS = LEASE.total_seconds() / 2
"""the final run delivers everything within this: a start that left the dead run's claims
in place would wait out their lease"""

DEFINE = """mutation($condition: JSON!) {
  defineAudience(name: "pros", condition: $condition) { id } }"""
CREATE = """mutation($url: String!, $audience: ID!) {
  createDestination(name: "crash-hooks", url: $url, audienceIds: [$audience]) {
    secret destination { id } } }"""
PROGRESS = """query($audience: ID!) {
  audience(id: $audience) { status size }
  destinations { deliveries(status: PENDING) { totalCount } } }"""
PAGE = "pageInfo { hasNextPage endCursor } edges { node {"
# page sizes kept under the query cost budget
DELIVERIES = f"""query($after: String) {{ destinations {{ deliveries(first: 50, after: $after) {{
  {PAGE} id webhookId customerId kind status }} }} }} }} }}"""
CHANGES = f"""query($audience: ID!, $after: String) {{
  audienceChanges(audienceId: $audience, first: 100, after: $after) {{
    {PAGE} id customerId kind }} }} }} }}"""
MEMBERS = f"""query($audience: ID!, $after: String) {{ audience(id: $audience) {{
  members(first: 100, after: $after) {{ {PAGE} id }} }} }} }} }}"""
USER_IDS = f"""query($after: String) {{ customers(first: 20, after: $after) {{
  {PAGE} id identifiers {{ kind value }} }} }} }} }}"""


@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    event: tuple[str, str, str, str]
    """type, audience id, customer id and time of the change, as the body says"""
    verified: bool
    status: int


class Recorder:
    """A webhook receiver that takes one request at a time, a few milliseconds each, checks
    its signature with `standardwebhooks`, records it and answers 204, or 500 a share
    `refused` of the time. `arm` has it call an action while it holds a request."""

    def __init__(self, seed: int) -> None:
        self.secret = ""
        self.refused = REFUSED
        self.last_arrival = time.monotonic()
        self._arrivals: list[Arrival] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._one_at_a_time = asyncio.Lock()
        self._countdown = 0
        self._action: Callable[[], None] | None = None

    def arm(self, arrivals: int, action: Callable[[], None]) -> None:
        """Call `action` while holding the `arrivals`-th request from now, before answering."""
        with self._lock:
            self._countdown, self._action = arrivals, action

    def disarm(self) -> None:
        with self._lock:
            self._action = None

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def quiet_for(self) -> float:
        with self._lock:
            return time.monotonic() - self.last_arrival

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        data = json.loads(body)
        event = (
            data["type"],
            data["data"]["audience"]["id"],
            data["data"]["customer"]["id"],
            data["timestamp"],
        )
        async with self._one_at_a_time:
            await asyncio.sleep(self._random.uniform(0.002, 0.01))
            action = None
            with self._lock:
                status = 500 if self._random.random() < self.refused else 204
                self._arrivals.append(
                    Arrival(headers.get("webhook-id", ""), event, verified, status)
                )
                self.last_arrival = time.monotonic()
                if self._action is not None:
                    self._countdown -= 1
                    if self._countdown <= 0:
                        action, self._action = self._action, None
            if action is not None:
                action()  # the sender dies before it reads the answer
        return Response(status_code=status)


def user(n: int) -> str:
    return f"crash-user-{n:03d}"


def stream() -> list[tuple[str, str]]:
    """(user id, plan) in the order sent: every customer turns pro; every third turns free
    `LAG` messages later, and every third of those pro again `LAG` messages after that."""
    timed = []
    for n in range(CUSTOMERS):
        timed.append((n, 0, user(n), "pro"))
        if n % 3 == 0:
            timed.append((n + LAG, 1, user(n), "free"))
        if n % 9 == 0:
            timed.append((n + 2 * LAG, 2, user(n), "pro"))
    return [(u, plan) for _, _, u, plan in sorted(timed)]


def batches(changes: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    """The changes as Segment identify calls in batches of `BATCH`, the last `TAIL` in a
    batch of their own."""
    base = time.time() - 3600
    calls = [
        {
            "type": "identify",
            "messageId": f"crash-{i}",
            "userId": u,
            "traits": {"plan": plan},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i)),
        }
        for i, (u, plan) in enumerate(changes)
    ]
    head, tail = calls[:-TAIL], calls[-TAIL:]
    return [*(head[i : i + BATCH] for i in range(0, len(head), BATCH)), tail]


def write(
    url: str, batches: list[list[dict[str, Any]]], tail: threading.Event, halt: threading.Event
) -> int:
    """Send each batch until it is accepted (message ids make a resend harmless), the last
    once `tail` is set; give up at `halt`. Returns how many sends failed."""
    failed = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        for n, batch in enumerate(batches):
            if n == len(batches) - 1:
                tail.wait()
            while True:
                assert not halt.is_set(), "halted"
                try:
                    sent = client.post("/v1/batch", json={"batch": batch}, auth=(ADMIN_KEY, ""))
                except httpx.TransportError:
                    sent = None
                if sent is not None and sent.status_code == 200:
                    break
                assert sent is None or sent.status_code >= 500, sent.text
                failed += 1
                time.sleep(0.05)
            time.sleep(PACE)
    return failed


def graphql(client: httpx.Client, query: str, **variables: Any) -> Any:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def every(
    client: httpx.Client, query: str, connection: Callable[[Any], Any], **variables: Any
) -> Iterator[Any]:
    """Every node of a paged connection."""
    after = None
    while True:
        page = connection(graphql(client, query, after=after, **variables))
        yield from (edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return
        after = page["pageInfo"]["endCursor"]


@pytest.mark.slow
def test_killed_servers_lose_no_delivery_and_keep_each_customers_order(tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    chance = random.Random(seed)
    receiver = Recorder(seed)
    receiving = Server(Starlette(routes=[Route("/hooks", receiver.handle, methods=["POST"])]))
    serve = ServeProcess(
        tmp_path, {"C360_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, "C360_WEBHOOK_ALLOW_PRIVATE": "1"}
    )
    receiving.start()
    try:
        serve.start()
        with httpx.Client(
            base_url=serve.url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            condition = {"trait": {"name": "plan", "op": "eq", "value": "pro"}}
            audience = graphql(client, DEFINE, condition=condition)["defineAudience"]["id"]
            made = graphql(client, CREATE, url=receiving.url + "/hooks", audience=audience)
            receiver.secret = made["createDestination"]["secret"]
            destination = made["createDestination"]["destination"]["id"]
            changes = stream()
            tail, halt = threading.Event(), threading.Event()
            with ThreadPoolExecutor(1) as pool:
                writing = pool.submit(write, serve.url, batches(changes), tail, halt)
                try:
                    landed = crash_repeatedly(serve, receiver, chance, tail)
                except BaseException:
                    halt.set()
                    tail.set()
                    raise
                refused_writes = writing.result()
            assert refused_writes > 0, "no kill happened during the writes"
            assert landed["commit"] > 0, "no kill followed the commit of an audience change"
            members = sorted(u for u, plan in dict(changes).items() if plan == "pro")
            drain(client, receiver, audience, len(members))
            users = {
                c["id"]: next(i["value"] for i in c["identifiers"] if i["kind"] == "user_id")
                for c in every(client, USER_IDS, lambda d: d["customers"])
            }
            found = every(client, MEMBERS, lambda d: d["audience"]["members"], audience=audience)
            assert sorted(users[c["id"]] for c in found) == members
            deliveries = check_outbox(client, audience, destination)
        arrivals = receiver.arrivals()
        check_arrivals(arrivals, deliveries, audience, held=landed["arrival"])
        check_order(arrivals, deliveries, users, members)
    finally:
        serve.stop()
        receiving.stop()


def crash_repeatedly(
    serve: ServeProcess, receiver: Recorder, chance: random.Random, tail: threading.Event
) -> Counter[str]:
    """Kill the server once per `KILLS` (alone or with its process group) and start it again
    each time; `tail` is set once the last kill is armed. Returns how many kills of each
    trigger found their moment (the others fell back to a random one)."""
    landed: Counter[str] = Counter()
    for n, trigger in enumerate(KILLS):
        last = n == len(KILLS) - 1
        process = serve.process
        group = chance.random() < 0.5

        def kill(process: subprocess.Popen[bytes] = process, group: bool = group) -> None:
            serve.kill(process, group=group)

        if trigger == "arrival":
            receiver.arm(chance.randint(1, 5 if last else 25), kill)
            if last:
                tail.set()
            try:
                process.wait(timeout=10 if last else 5)
                landed[trigger] += 1
            except subprocess.TimeoutExpired:
                assert not last, "the last writes sent nothing to the receiver"
            receiver.disarm()
        elif trigger == "commit":
            landed[trigger] += at_next_change(serve.data_dir / AUDIENCES_FILE, kill, timeout=5)
        else:
            time.sleep(chance.uniform(0.1, 1.2))
            landed[trigger] += 1
        kill()
        if last:
            receiver.refused = 0.0
        serve.start()
    return landed


def at_next_change(path: Path, action: Callable[[], None], *, timeout: float) -> bool:
    """Call `action` as soon as an audience change or a delivery is committed, watching the
    audiences file read-only: the moment at which one written without the other, in a
    transaction of its own, would be lost or left over. False if none came in `timeout`."""
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    newest = (
        "SELECT (SELECT coalesce(max(rowid), 0) FROM changes),"
        " (SELECT coalesce(max(rowid), 0) FROM deliveries)"
    )
    try:
        seen = db.execute(newest).fetchone()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if db.execute(newest).fetchone() != seen:
                action()
                return True
            time.sleep(0.0002)
        return False
    finally:
        db.close()


def drain(client: httpx.Client, receiver: Recorder, audience: str, members: int) -> None:
    """Wait until the audience is built with its final members, nothing is pending and the
    receiver has been quiet for a second."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        seen = graphql(client, PROGRESS, audience=audience)
        [destination] = seen["destinations"]
        pending = destination["deliveries"]["totalCount"]
        state = (seen["audience"]["status"], seen["audience"]["size"], pending)
        if state == ("READY", members, 0) and receiver.quiet_for() > 1.0:
            return
        assert time.monotonic() < deadline, (
            f"not drained {DRAIN_SECONDS:.0f} s after the last restart: (status, size,"
            f" pending) = {state}, {members} members expected"
        )
        time.sleep(0.2)


def check_outbox(client: httpx.Client, audience: str, destination: str) -> dict[str, Any]:
    """The deliveries match the recorded changes one to one, and every one was delivered.
    Returns them by webhook id."""
    recorded = every(client, CHANGES, lambda d: d["audienceChanges"], audience=audience)
    changed = {f"{c['id']}.{destination}" for c in recorded}  # a delivery's id
    deliveries = {
        d["webhookId"]: d
        for d in every(client, DELIVERIES, lambda d: d["destinations"][0]["deliveries"])
    }
    listed = {d["id"] for d in deliveries.values()}
    assert sorted(changed - listed) == [], "changes recorded without their deliveries"
    assert sorted(listed - changed) == [], "deliveries of changes never recorded"
    assert {d["status"] for d in deliveries.values()} == {"DELIVERED"}
    return deliveries


def check_arrivals(
    arrivals: list[Arrival], deliveries: dict[str, Any], audience: str, *, held: int
) -> None:
    """Every request was signed; the webhook ids accepted are those DELIVERED; every copy of
    one is the same event; each of the `held` kills made a copy."""
    assert [a.webhook_id for a in arrivals if not a.verified] == [], "bad signatures"
    accepted = {a.webhook_id for a in arrivals if a.status == 204}
    assert sorted(accepted ^ set(deliveries)) == [], "accepted and DELIVERED differ"
    assert sorted({a.webhook_id for a in arrivals} - accepted) == [], "never accepted"
    copies: dict[str, set[tuple[str, str, str, str]]] = defaultdict(set)
    for a in arrivals:
        copies[a.webhook_id].add(a.event)
    for wid, events in copies.items():
        [(kind, audience_id, customer, _)] = events
        delivery = deliveries[wid]
        assert kind == "audience." + delivery["kind"].lower(), wid
        assert (audience_id, customer) == (audience, delivery["customerId"]), wid
    # each held delivery arrives again later: at least one repeat per such kill
    assert len(arrivals) - len(copies) >= held, "a delivery held at a kill was not sent again"


def check_order(
    arrivals: list[Arrival], deliveries: dict[str, Any], users: dict[str, str], members: list[str]
) -> None:
    """Per customer, in the order of first arrival: entries and exits alternate from an
    entry and end as the customer's membership does, in id order, and each is first tried
    only after the one before it was accepted."""
    first_tried: dict[str, int] = {}
    first_accepted: dict[str, int] = {}
    for at, a in enumerate(arrivals):
        first_tried.setdefault(a.webhook_id, at)
        if a.status == 204:
            first_accepted.setdefault(a.webhook_id, at)
    by_customer: dict[str, list[str]] = defaultdict(list)
    for wid in sorted(deliveries, key=first_tried.__getitem__):
        by_customer[deliveries[wid]["customerId"]].append(wid)
    exits = 0
    for customer, wids in by_customer.items():
        who = users[customer]
        kinds = [deliveries[w]["kind"] for w in wids]
        alternating = ["ENTERED", "EXITED"] * len(kinds)
        assert kinds == alternating[: len(kinds)], f"{who} received {kinds}"
        assert (kinds[-1] == "ENTERED") == (who in members), f"{who} received {kinds}"
        assert wids == sorted(wids), f"{who}'s deliveries went out of id order"
        for before, after in zip(wids, wids[1:], strict=False):
            assert first_accepted[before] < first_tried[after], (
                f"{who}: {deliveries[after]['kind']} was sent before"
                f" {deliveries[before]['kind']} was accepted"
            )
        exits += kinds.count("EXITED")
    assert {users[c] for c in by_customer} >= set(members), "a member never got its entry"
    assert exits >= CUSTOMERS // 6, "too few exits for the test to tell anything"
