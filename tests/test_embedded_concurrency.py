"""Many concurrent writers on overlapping identities leave the embedded store consistent."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from stores import reopened
from streams import check_invariants, observe, partition

from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.model import ConsentStatus, Observation
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph

KEYS = (
    [f"user_id:u{i}" for i in range(6)]
    + [f"email:e{i}@x.io" for i in range(8)]
    + [f"device_id:d{i}" for i in range(5)]
    + [f"anonymous_id:a{i}" for i in range(20)]
)


def writer_batches(writers: int, size: int, seed: int) -> list[list[Observation]]:
    rng = random.Random(seed)
    return [
        [
            observe(
                f"w{w}-{n}",
                *rng.sample(KEYS, rng.randint(1, 3)),
                t=rng.randint(0, 1000),
                event="Clicked" if rng.random() < 0.7 else None,
            )
            for n in range(size)
        ]
        for w in range(writers)
    ]


async def test_concurrent_writers_keep_the_invariants(tmp_path: Path) -> None:
    rules = Rules.default()
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    graph = IdentityGraph(store, rules)
    work = writer_batches(writers=24, size=8, seed=11)
    replays = [work[0], work[5]]
    reads = [store.profile_ids(KEYS) for _ in range(10)]
    results = await asyncio.gather(
        *(graph.ingest(batch) for batch in [*work, *replays]),
        *reads,
        graph.set_consent("nobody", {"analytics": ConsentStatus.GRANTED}, source="web"),
        return_exceptions=True,
    )
    outcomes = [o for r in results[: len(work) + 2] if isinstance(r, list) for o in r]
    assert len(outcomes) == 24 * 8 + 16
    statuses = {}
    for o in outcomes:
        statuses.setdefault(o.message_id, []).append(o.status)
    assert all(s.count("applied") == 1 for s in statuses.values())
    assert sum(s.count("duplicate") for s in statuses.values()) == 16
    assert type(results[-1]).__name__ == "NotFound"

    part = await partition(store)
    await check_invariants(store, rules, part)
    tracked = {o.message_id for batch in work for o in batch if o.event is not None}
    pages = await store.events(list(part), first=1000, after=None, types=None)
    stored = [e.message_id for page in pages.values() for e in page.items]
    assert sorted(stored) == sorted(tracked)
    await store.close()

    async with reopened(tmp_path / "data") as restarted:
        assert await partition(restarted) == part


async def test_concurrent_merges_undos_and_splits(tmp_path: Path) -> None:
    rules = Rules.default()
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    graph = IdentityGraph(store, rules)
    first = [
        (await graph.ingest([observe(f"m{i}", f"anonymous_id:a{i}", f"device_id:d{i}", t=i)]))[0]
        for i in range(6)
    ]
    joins = [
        graph.ingest([observe(f"j{i}", f"anonymous_id:a{i}", f"anonymous_id:a{i + 1}", t=10 + i)])
        for i in range(5)
    ]
    joined = await asyncio.gather(*joins)
    merge_ids = [m for [o] in joined for m in o.merges]
    assert len(merge_ids) == 5
    survivor = first[0].profile_id
    assert survivor is not None
    results = await asyncio.gather(
        *(graph.undo_merge(m, actor="ops") for m in merge_ids[::2]),
        graph.unmerge(survivor, ["device_id:d0"], actor="ops"),
        graph.ingest([observe("late", "anonymous_id:a5", "email:late@x.io", t=50)]),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(type(e).__name__ in ("InvalidOperation", "NotFound") for e in errors), errors
    part = await partition(store)
    await check_invariants(store, rules, part)
    assert set().union(*part.values()) == {
        *(f"anonymous_id:a{i}" for i in range(6)),
        *(f"device_id:d{i}" for i in range(6)),
        "email:late@x.io",
    }
    await store.close()
    async with reopened(tmp_path / "data") as restarted:
        assert await partition(restarted) == part
