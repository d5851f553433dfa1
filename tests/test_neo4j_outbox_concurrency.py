"""The Neo4j outbox under several API processes: four drivers over one database, two senders
each, claiming, failing and finishing deliveries while another process resumes over and over.
No delivery is held by two senders at once, every one is delivered exactly once here (no
crash), and per customer they are delivered in the order of their changes."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import timedelta

import pytest
from stores import neo4j_uri
from streams import at

from identity_graph.activation.deliveries import Delivery, DeliveryStatus
from identity_graph.activation.destinations import Destination, DestinationFormat
from identity_graph.adapters.neo4j.store import Neo4jStore
from identity_graph.audiences.store import Audience, AudienceChange, ChangeKind, Status

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]
T = at(0)
CUSTOMERS = 40
ROUNDS = 4


async def test_senders_in_several_processes_never_share_a_delivery_nor_reorder_a_customer() -> None:
    stores = [Neo4jStore(neo4j_uri(), auth=None, max_retry_time=30) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await stores[0].wipe()
        box = stores[0].audiences
        await box.put_audience(Audience("a1", "aud", {}, None, Status.READY, T))
        await box.put_destination(
            Destination(
                "d1",
                "d1",
                "https://x.example.com",
                ("a1",),
                DestinationFormat.STANDARD,
                "marketing",
                (),
                T,
            )  # fmt: skip
        )
        n = 0
        for round_ in range(ROUNDS):  # each customer enters, exits, enters, exits
            kind = ChangeKind.ENTERED if round_ % 2 == 0 else ChangeKind.EXITED
            batch = []
            for c in range(CUSTOMERS):
                n += 1
                batch.append(AudienceChange(f"c{n:06d}", "a1", f"p{c:03d}", kind, T))
            assert await box.record(batch) == CUSTOMERS
        now = T + timedelta(days=1)
        held: set[str] = set()
        doubles: list[str] = []
        delivered: list[Delivery] = []
        rng = random.Random(5)
        resuming = True

        async def sender(s: Neo4jStore) -> None:
            idle = 0
            while idle < 8:
                got = await s.audiences.claim("d1", now=now, limit=rng.randint(1, 5))
                if not got:
                    idle += 1
                    await asyncio.sleep(0.01)
                    continue
                idle = 0
                doubles.extend(d.id for d in got if d.id in held)
                held.update(d.id for d in got)
                await asyncio.sleep(rng.random() * 0.005)
                done = []
                for d in got:
                    held.discard(d.id)
                    if rng.random() < 0.3:  # failed: due again at once
                        done.append(replace(d, attempts=d.attempts + 1))
                    else:
                        done.append(replace(d, status=DeliveryStatus.DELIVERED))
                        delivered.append(d)
                await s.audiences.finish(done)

        async def resumer(s: Neo4jStore) -> None:
            while resuming:
                await s.audiences.resume(now)
                await asyncio.sleep(0.003)

        running = asyncio.create_task(resumer(stores[3]))
        await asyncio.gather(*(sender(s) for s in stores for _ in range(2)))
        resuming = False
        await running
        assert doubles == []
        ids = [d.id for d in delivered]
        assert len(ids) == len(set(ids)) == n
        for c in range(CUSTOMERS):
            mine = [d.id for d in delivered if d.customer_id == f"p{c:03d}"]
            assert mine == sorted(mine), f"p{c:03d} delivered out of order: {mine}"
        left = await box.deliveries("d1", first=1, after=None, status=DeliveryStatus.PENDING)
        assert left.total == 0
    finally:
        for s in stores:
            await s.close()
