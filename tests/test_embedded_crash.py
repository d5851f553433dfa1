"""Kill a writer process mid-stream; the restarted store shows every acknowledged write
and nothing half-made.

Run as a script, this file is the writer: it ingests `stream()` in batches of two into the
data dir given and prints each message id once `ingest` returned.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from streams import check_invariants, observe, partition

from identity_graph.adapters.embedded import EmbeddedStore
from identity_graph.model import Observation
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph

ROOT = Path(__file__).resolve().parent.parent
BATCH = 2


def stream() -> list[Observation]:
    """400 messages about 60 people, never breaking a limit; every third a track call."""
    out = []
    for n in range(400):
        p = (n * 37) % 60
        keys = [f"anonymous_id:a{p}-{n % 3}", f"email:p{p}@x.io", f"user_id:u{p}"][: 1 + n % 3]
        out.append(
            observe(f"m{n}", *keys, t=n, event=f"E{n}" if n % 3 == 0 else None, traits={"n": n})
        )
    return out


async def write(data_dir: Path) -> None:
    store = EmbeddedStore(data_dir)
    await store.open()
    graph = IdentityGraph(store, Rules.default())
    messages = stream()
    for start in range(0, len(messages), BATCH):
        batch = messages[start : start + BATCH]
        await graph.ingest(batch)
        for obs in batch:
            print(obs.message_id, flush=True)
    await store.close()


def kill_after(data_dir: Path, acks: int) -> list[str]:
    """Start a writer, SIGKILL it once `acks` messages were acknowledged; return those."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen(
        [sys.executable, __file__, str(data_dir)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        text=True,
    )
    assert proc.stdout is not None
    acked = []
    try:
        for line in proc.stdout:
            acked.append(line.strip())
            if len(acked) >= acks:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"
    return acked


@pytest.mark.slow
@pytest.mark.parametrize("acks", [1, 25, 120])
async def test_a_killed_writer_loses_nothing_acknowledged(tmp_path: Path, acks: int) -> None:
    data_dir = tmp_path / "data"
    acked = kill_after(data_dir, acks)
    rules = Rules.default()
    store = EmbeddedStore(data_dir)
    await store.open()
    try:
        part = await partition(store)
        await check_invariants(store, rules, part)
        stored_keys = set().union(*part.values())
        pages = await store.events(list(part), first=1000, after=None, types=None)
        events = {e.message_id for page in pages.values() for e in page.items}
        traits = await store.traits(list(part))
        trait_messages = {t.message_id for values in traits.values() for t in values}

        graph = IdentityGraph(store, rules)
        present = []
        for obs in stream():
            [outcome] = await graph.ingest([obs])
            if outcome.status != "duplicate":
                break
            present.append(obs)
        names = [o.message_id for o in present]
        assert names[: len(acked)] == acked, "an acknowledged message is missing"
        assert len(names) % BATCH == 0, "half a batch was kept"
        for obs in present:
            assert {i.key for i in obs.identifiers} <= stored_keys
            assert obs.message_id in trait_messages
            assert (obs.event is not None) == (obs.message_id in events)
        assert events <= set(names) and trait_messages <= set(names)
        assert stored_keys == {i.key for o in present for i in o.identifiers}
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(write(Path(sys.argv[1])))
