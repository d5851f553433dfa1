"""Webhook activation against issue 21's targets: deliveries/s to a local receiver, latency
from the causing write to arrival, a receiver that fails for a while, and what a hanging
receiver costs a healthy one. Prints figures; asserts nothing.

    python bench/webhooks.py [--deliveries 20000] [--rounds 3] [--rate 100] [--seconds 20]
                             [--outage 3] [--customers 500] [--timeout 5] [--only PHASE ...]
                             [--loop asyncio]

c360 runs in this process as `c360 serve` runs it (the app `create_app` builds, its lifespan
entered, uvloop), on an embedded store in a temporary data directory. Writes are identify
calls to its tracking API (`/v1/batch`, called in process); each makes a new customer with
`plan: pro` enter an audience that STANDARD destinations (role marketing) receive. The
receivers are bench/_webhook_receiver.py, each a uvicorn process of its own. Every request
that arrived is then checked with the `standardwebhooks` package.

1. Throughput, `--deliveries` per run. The baseline of the same run: as many signed POSTs of
   a c360 body, sent by a bare aiohttp client with c360's concurrency (its connection limit)
   to the same receiver: the transport's ceiling. c360 draining its outbox: the customers are
   written and their changes recorded while the dispatcher is stopped; from its start to the
   last arrival. c360 end to end (once): from the first write, as fast as the API takes them
   in batches of 500, to the last arrival.
2. Latency: one customer per call at a steady `--rate` for `--seconds`; from each call's
   return to its delivery's arrival, split at the audience change's time (when the engine
   evaluated the customer).
3. Outage: the receiver answers 500 for `--outage` seconds, while `--customers` customers
   enter (first half) and then leave (second half); then it recovers. Each change must
   arrive, under one webhook id, each customer's in order. Retries follow the real schedule
   (at once, 5 s, 5 min, each less up to 20% jitter): after an outage longer than about 4 s
   the last deliveries wait for the 5-minute retry; `--outage 60` is the issue's minute.
4. Isolation: the drain of (1), `--rounds` times alone and with a second destination of the
   same audience whose receiver never answers (`--timeout`, C360_WEBHOOK_TIMEOUT_SECONDS),
   in turns; the healthy destination's rate with it as a ratio to without.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import httpx
from standardwebhooks import Webhook, WebhookVerificationError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from graph_api.activation.sender import CONNECTIONS  # noqa: E402
from graph_api.app import create_app  # noqa: E402
from graph_api.services import Services  # noqa: E402
from graph_api.settings import Secret, Settings  # noqa: E402

PHASES = ("throughput", "latency", "outage")
KEY = "c360_bench-webhooks-admin-key-4f9Kq2Zr7Wx"
BATCH = 500
"""messages per `/v1/batch` call"""
WARM_UP = 500
ROLE = "marketing"
DEFINE = """mutation($condition: JSON!) {
  defineAudience(name: "pros", condition: $condition) { id }
}"""
CREATE = """mutation($name: String!, $url: String!, $audience: ID!, $role: String!) {
  createDestination(name: $name, url: $url, audienceIds: [$audience], role: $role) {
    secret destination { id }
  }
}"""
ENABLE = """mutation($id: ID!, $enabled: Boolean!) {
  updateDestination(id: $id, enabled: $enabled) { status }
}"""
GIVE_UP = 900.0
"""seconds after the outage the bench stops waiting for what has not arrived"""
PRO = {"trait": {"name": "plan", "op": "eq", "value": "pro"}}
message_ids = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def identify(user: str, plan: str) -> dict[str, Any]:
    traits = {"plan": plan, "email": f"{user}@example.com", "name": f"Customer {user}"}
    return {"type": "identify", "messageId": f"m{next(message_ids)}", "userId": user,
            "traits": traits}  # fmt: skip


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def spread(ms: Sequence[float]) -> str:
    ordered = sorted(ms)
    parts = [f"p{q} {percentile(ordered, q / 100):,.0f}" for q in (50, 90, 99)]
    return ", ".join(parts) + f", max {ordered[-1]:,.0f} ms"


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


# --- the receivers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float
    """`time.monotonic()` in the receiver's process"""
    status: int
    webhook_id: str
    timestamp: str
    signature: str
    body: str

    def headers(self) -> dict[str, str]:
        return {"webhook-id": self.webhook_id, "webhook-timestamp": self.timestamp,
                "webhook-signature": self.signature}  # fmt: skip


class Receiver:
    """bench/_webhook_receiver.py in a uvicorn process of its own; `start` it, `stop` it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.checked: dict[str, int] = defaultdict(int)
        """path -> requests whose signatures `check` verified"""

    def start(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "_webhook_receiver:app", "--app-dir",
                   str(HERE), "--workers", "1", "--host", "127.0.0.1", "--port", str(self.port),
                   "--lifespan", "off", "--log-level", "warning", "--no-access-log"]  # fmt: skip
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit(f"the receiver on port {self.port} did not start") from None
                time.sleep(0.05)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def _client(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self.session

    async def _get(self, route: str, **query: str | int | float) -> Any:
        params = {k: str(v) for k, v in query.items()}
        async with self._client().get(self.url + route, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def wait(self, path: str, n: int, within: float = 600) -> tuple[int, float | None]:
        """(requests on `path` answered 2xx, the arrival of the n-th or None) once there are
        `n`, or after `within` seconds."""
        got = await self._get("/_wait", path=path, n=n, timeout=within)
        return int(got["count"]), got["at"]

    async def arrived(self, path: str, n: int, within: float = 600) -> float:
        """When the n-th request on `path` answered 2xx arrived; SystemExit after `within`
        seconds."""
        count, at = await self.wait(path, n, within)
        if at is None:
            raise SystemExit(f"{count:,} of {n:,} deliveries arrived on {path} in {within:g} s")
        return float(at)

    async def count(self, path: str) -> int:
        return (await self.wait(path, 0, 0))[0]

    async def dump(self, path: str, start: int = 0) -> list[Arrival]:
        return [Arrival(*r) for r in await self._get("/_dump", path=path, start=start)]

    async def fail_until(self, moment: float) -> None:
        async with self._client().post(self.url + "/_control", json={"fail_until": moment}) as r:
            r.raise_for_status()

    async def check(self, path: str, secret: str) -> tuple[int, int]:
        """Verify, with the `standardwebhooks` package, each request on `path` not verified
        yet (the package refuses a timestamp 5 minutes old: check often); (good, checked)."""
        new = await self.dump(path, self.checked[path])
        self.checked[path] += len(new)
        hook = Webhook(secret)
        good = 0
        for arrival in new:
            try:
                hook.verify(arrival.body, arrival.headers())
                good += 1
            except WebhookVerificationError:
                pass
        return good, len(new)


@dataclass
class Signatures:
    good: int = 0
    checked: int = 0

    def add(self, found: tuple[int, int]) -> None:
        self.good += found[0]
        self.checked += found[1]


# --- c360 --------------------------------------------------------------------------------


class C360:
    """The app on an embedded store in `data_dir`, its lifespan entered, called in process."""

    def __init__(self, data_dir: Path, timeout: int) -> None:
        self.settings = Settings(
            data_dir=data_dir,
            bootstrap_admin_key=Secret(KEY),
            webhook_allow_private=True,
            webhook_timeout_seconds=timeout,
        )
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> C360:
        app = create_app(self.settings)
        await self._stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        self.client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://c360", timeout=60)
        )
        self.services: Services = app.state.services
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        answer = response.json()
        if answer.get("errors"):
            raise SystemExit(f"GraphQL: {answer['errors']}")
        data: dict[str, Any] = answer["data"]
        return data

    async def audience(self) -> str:
        made = await self.graphql(DEFINE, condition=PRO)
        await self.settle()
        return str(made["defineAudience"]["id"])

    async def destination(self, name: str, url: str, audience: str) -> tuple[str, str]:
        """(id, signing secret) of a new STANDARD destination of `audience`."""
        made = await self.graphql(CREATE, name=name, url=url, audience=audience, role=ROLE)
        created = made["createDestination"]
        return str(created["destination"]["id"]), str(created["secret"])

    async def enable(self, destination: str, enabled: bool) -> None:
        await self.graphql(ENABLE, id=destination, enabled=enabled)

    async def write(self, users: Sequence[str], plan: str) -> None:
        """Identify calls setting `plan` for each user, in batches."""
        for i in range(0, len(users), BATCH):
            batch = [identify(u, plan) for u in users[i : i + BATCH]]
            response = await self.client.post("/v1/batch", json={"batch": batch}, auth=(KEY, ""))
            if response.status_code != 200:
                raise SystemExit(f"/v1/batch: {response.status_code} {response.text}")

    async def settle(self) -> None:
        """Every write evaluated, its audience changes recorded with their deliveries."""
        await self.services.audiences.settle()


def users(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


# --- 1 and 4: throughput and isolation -----------------------------------------------------


async def bare_client(url: str, body: bytes, n: int, secret: str, tag: str) -> None:
    """`n` POSTs of `body`, each signed as c360 signs, over `CONNECTIONS` connections."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    todo = iter(range(n))

    async def send(session: aiohttp.ClientSession) -> None:
        for i in todo:
            webhook_id, timestamp = f"msg_{tag}{i}", str(int(time.time()))
            signed = f"{webhook_id}.{timestamp}.".encode() + body
            digest = hmac.new(key, signed, hashlib.sha256).digest()
            headers = {"content-type": "application/json", "webhook-id": webhook_id,
                       "webhook-timestamp": timestamp,
                       "webhook-signature": "v1," + base64.b64encode(digest).decode()}  # fmt: skip
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 204:
                    raise SystemExit(f"the bare client got {response.status}")

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        await asyncio.gather(*(send(session) for _ in range(CONNECTIONS)))


@dataclass(frozen=True)
class Run:
    deliveries: int
    start: float
    seconds: float
    cpu: float
    """CPU seconds of this process, every thread, meanwhile"""

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds

    @property
    def cpu_us(self) -> float:
        """per delivery"""
        return self.cpu / self.deliveries * 1e6


async def bare_run(
    receiver: Receiver, path: str, body: bytes, n: int, secret: str, tag: str
) -> Run:
    before = await receiver.count(path)
    start, cpu = time.monotonic(), time.process_time()
    await bare_client(receiver.url + path, body, n, secret, tag)
    arrived = await receiver.arrived(path, before + n)
    return Run(n, start, arrived - start, time.process_time() - cpu)


async def drain(c360: C360, receiver: Receiver, path: str, customers: list[str]) -> Run:
    """An outbox holding one delivery per customer for `path`, sent."""
    dispatcher = c360.services.dispatcher
    await dispatcher.stop()
    await c360.write(customers, "pro")
    await c360.settle()
    before = await receiver.count(path)
    start, cpu = time.monotonic(), time.process_time()
    await dispatcher.start()
    arrived = await receiver.arrived(path, before + len(customers))
    return Run(len(customers), start, arrived - start, time.process_time() - cpu)


async def throughput(
    args: argparse.Namespace, ok: Receiver, hang: Receiver, tmp: Path, signatures: Signatures
) -> None:
    n = args.deliveries
    path, bare_path, hang_path = "/ok/throughput", "/ok/bare", "/hang/isolation"
    async with C360(tmp / "throughput", args.timeout) as c360:
        audience = await c360.audience()
        _, secret = await c360.destination("healthy", ok.url + path, audience)
        hanging, _ = await c360.destination("hanging", hang.url + hang_path, audience)
        await c360.enable(hanging, False)
        await c360.write(users("warm", WARM_UP), "pro")
        await ok.arrived(path, WARM_UP)
        body = (await ok.dump(path, WARM_UP - 1))[0].body.encode()
        signatures.add(await ok.check(path, secret))

        start, cpu = time.monotonic(), time.process_time()
        await c360.write(users("e2e", n), "pro")
        written = time.monotonic() - start
        await c360.settle()
        recorded = time.monotonic() - start
        last = await ok.arrived(path, WARM_UP + n)
        end_to_end = Run(n, start, last - start, time.process_time() - cpu)
        signatures.add(await ok.check(path, secret))

        runs: dict[str, list[Run]] = defaultdict(list)
        for r in range(args.rounds):
            for kind in ("bare", "alone", "with")[:: 1 if r % 2 == 0 else -1]:
                if kind == "bare":
                    runs[kind].append(await bare_run(ok, bare_path, body, n, secret, f"r{r}-"))
                    signatures.add(await ok.check(bare_path, secret))
                    continue
                await c360.enable(hanging, kind == "with")
                runs[kind].append(await drain(c360, ok, path, users(f"r{r}-{kind}", n)))
                signatures.add(await ok.check(path, secret))
        held = [a.at for a in await hang.dump(hang_path)]
    bare, alone, with_hang = (
        statistics.median(run.rate for run in runs[kind]) for kind in ("bare", "alone", "with")
    )

    def listed(kind: str) -> str:
        rates = ", ".join(f"{run.rate:,.0f}" for run in runs[kind])
        cpu = statistics.median(run.cpu_us for run in runs[kind])
        return f"{rates}/s, {cpu:,.0f} us CPU each"

    print(f"1. throughput, {n:,} deliveries per run ({CONNECTIONS} connections), runs in turns:")
    print(f"  bare aiohttp client, signed POSTs of a c360 body: {listed('bare')}")
    print(
        f"  c360 draining its outbox: {listed('alone')}; median {alone:,.0f}/s ="
        f" {alone / bare:.2f}x the bare client's {bare:,.0f}/s (target >= 1,000/s)"
    )
    print(
        f"  c360 end to end: {n:,} customers written in {written:.1f} s"
        f" ({n / written:,.0f}/s), their changes recorded by {recorded:.1f} s, the last"
        f" delivery at {end_to_end.seconds:.1f} s: {end_to_end.rate:,.0f} deliveries/s ="
        f" {end_to_end.rate / bare:.2f}x the bare client's; {end_to_end.cpu_us:,.0f} us CPU"
        " per customer written and delivered"
    )
    ratios = [w.rate / a.rate for w, a in zip(runs["with"], runs["alone"], strict=True)]
    cpu_ratio = statistics.median(r.cpu for r in runs["with"]) / statistics.median(
        r.cpu for r in runs["alone"]
    )
    sent = sum(r.start <= at <= r.start + r.seconds for r in runs["with"] for at in held)
    lasting = statistics.median(r.seconds for r in runs["with"])
    print("4. isolation, the drain of 1 with a second destination that never answers:")
    print(f"  healthy destination alone {listed('alone')}; with the hanging one {listed('with')}")
    print(
        f"  ratio with/alone round by round {', '.join(f'{r:.2f}' for r in ratios)} (median"
        f" {statistics.median(ratios):.2f}); of the medians {with_hang / alone:.2f} (target >="
        f" 0.90); CPU per healthy delivery with/alone {cpu_ratio:.2f}"
    )
    print(
        f"  the hanging receiver was sent {sent:,} requests during the drains with it (timeout"
        f" {args.timeout} s; a drain lasts {lasting:.1f} s)"
    )


# --- 2: latency ------------------------------------------------------------------------------


async def latency(
    args: argparse.Namespace, ok: Receiver, tmp: Path, signatures: Signatures
) -> None:
    path = "/ok/latency"
    n = int(args.rate * args.seconds)
    async with C360(tmp / "latency", args.timeout) as c360:
        audience = await c360.audience()
        _, secret = await c360.destination("latency", ok.url + path, audience)
        await c360.write(users("warm", 50), "pro")
        await ok.arrived(path, 50)
        returned: dict[str, float] = {}

        async def one(user: str) -> None:
            await c360.write([user], "pro")
            returned[user] = time.monotonic()

        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i, user in enumerate(users("lat", n)):
            await sleep_until(start + i / args.rate)
            tasks.append(asyncio.create_task(one(user)))
        await asyncio.gather(*tasks)
        pace = n / (time.monotonic() - start)
        await ok.arrived(path, 50 + n)
        arrivals = await ok.dump(path, 50)
        signatures.add(await ok.check(path, secret))
        keys = {f"user_id:{user}": at for user, at in returned.items()}
        profiles = await c360.services.store.profile_ids(list(keys))
    written = {profiles[k]: at for k, at in keys.items()}
    wall = time.time() - time.monotonic()
    total, engine, dispatch = [], [], []
    for arrival in arrivals:
        event = json.loads(arrival.body)
        at = written[event["data"]["customer"]["id"]]
        changed = datetime.fromisoformat(event["timestamp"]).timestamp() - wall
        total.append((arrival.at - at) * 1000)
        engine.append((changed - at) * 1000)
        dispatch.append((arrival.at - changed) * 1000)
    print(f"2. latency, {n:,} writes of one customer each at {pace:,.0f}/s:")
    print(f"  write returned -> delivery arrived: {spread(total)} (target p50 100, p99 1,000)")
    print(f"  of which write returned -> audience change made: {spread(engine)}")
    print(f"  and audience change made -> delivery arrived: {spread(dispatch)}")


# --- 3: outage ------------------------------------------------------------------------------


async def outage(
    args: argparse.Namespace, flaky: Receiver, tmp: Path, signatures: Signatures
) -> None:
    path = "/flaky/outage"
    customers = users("out", args.customers)
    slices = 5
    part = -(-len(customers) // slices)
    async with C360(tmp / "outage", args.timeout) as c360:
        audience = await c360.audience()
        _, secret = await c360.destination("flaky", flaky.url + path, audience)
        start = time.monotonic()
        recovery = start + args.outage
        await flaky.fail_until(recovery)
        for plan, offset in (("pro", 0.0), ("free", args.outage / 2)):
            for k in range(slices):
                await sleep_until(start + offset + k * args.outage / 2 / slices)
                await c360.write(customers[k * part : (k + 1) * part], plan)
            await c360.settle()
        written = time.monotonic()
        want = 2 * len(customers)
        while True:
            signatures.add(await flaky.check(path, secret))
            arrivals = await flaky.dump(path)
            taken = [a.webhook_id for a in arrivals if a.status < 300]
            missing = want - len(set(taken))
            if missing <= 0 or time.monotonic() > recovery + GIVE_UP:
                break
            await flaky.wait(path, len(taken) + missing, 30)
    accepted = [a for a in arrivals if a.status < 300]
    refused = [a for a in arrivals if a.status >= 300]
    arrived = [a.at - recovery for a in accepted] or [float("nan")]
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    sequence: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for a in accepted:
        event = json.loads(a.body)
        customer = event["data"]["customer"]["id"]
        ids[customer, event["type"]].add(a.webhook_id)
        if a.webhook_id not in seen:
            seen.add(a.webhook_id)
            sequence[customer].append(event["type"])
    in_order = sum(s == ["audience.entered", "audience.exited"] for s in sequence.values())
    attempts: dict[str, int] = defaultdict(int)
    for a in arrivals:
        attempts[a.webhook_id] += 1
    print(
        f"3. outage: the receiver answered 500 for {args.outage:g} s while {len(customers):,}"
        f" customers entered then left (written by {written - start:.1f} s):"
    )
    print(
        f"  {len(seen):,} of {want:,} changes arrived; first after recovery at"
        f" {min(arrived):+.1f} s, last at {max(arrived):+.1f} s; {len(refused):,} requests"
        f" refused, at most {max(attempts.values(), default=0)} attempts for one change"
    )
    print(
        f"  customers whose entry arrived before their exit: {in_order:,} of {len(customers):,};"
        f" duplicates (one webhook id accepted again): {len(accepted) - len(seen):,}; changes"
        f" sent under more than one webhook id: {sum(len(v) > 1 for v in ids.values()):,}"
    )


# --- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    ok, hang, flaky = Receiver(), Receiver(), Receiver()
    receivers = [ok, hang, flaky]
    signatures = Signatures()
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"c360 in this process ({loop} loop, embedded store, destinations of role {ROLE});"
        f" receivers: uvicorn, one worker each, processes of their own; {os.cpu_count()} cores"
    )
    phases: dict[str, Callable[[Path], Coroutine[Any, Any, None]]] = {
        "throughput": lambda tmp: throughput(args, ok, hang, tmp, signatures),
        "latency": lambda tmp: latency(args, ok, tmp, signatures),
        "outage": lambda tmp: outage(args, flaky, tmp, signatures),
    }
    try:
        for receiver in receivers:
            receiver.start()
        with tempfile.TemporaryDirectory(prefix="c360-webhooks-") as tmp:
            for name in args.only:
                await phases[name](Path(tmp))
    finally:
        for receiver in receivers:
            await receiver.stop()
    print(
        f"signatures verified with standardwebhooks: {signatures.good:,} of"
        f" {signatures.checked:,} requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0, help="writes/s for the latency")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--outage", type=float, default=3.0, help="seconds of 500s")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--timeout", type=int, default=5, help="C360_WEBHOOK_TIMEOUT_SECONDS")
    parser.add_argument("--only", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
