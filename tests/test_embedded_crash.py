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
import time
from pathlib import Path

import pytest
from streams import check_invariants, observe, partition

from identity_graph.adapters.embedded.store import EmbeddedStore
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


def kill_after(data_dir: Path, acks: int, *, group: bool = False) -> list[str]:
    """Start a writer, SIGKILL it once `acks` messages were acknowledged; return those.
    With `group`, the writer runs in its own session and its whole process group is killed,
    its journal copier with it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen(
        [sys.executable, __file__, str(data_dir)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        text=True,
        start_new_session=group,
    )
    assert proc.stdout is not None
    acked = []
    copiers: list[int] = []
    try:
        for line in proc.stdout:
            acked.append(line.strip())
            if len(acked) >= acks:
                break
        if group:
            # the copier started with the first write, in the writer's process group
            copiers = children(proc.pid)
            assert copiers, "the writer has no copier"
            assert all(os.getpgid(pid) == proc.pid for pid in copiers)
    finally:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"
    assert all(wait_gone(pid, timeout=5) for pid in copiers), "a copier outlived the kill"
    return acked


def state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return state, int(ppid)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` and that have not exited."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            seen = state_and_parent(int(entry.name))
            if seen is not None and seen[0] not in "ZX" and seen[1] == pid:
                found.append(int(entry.name))
    return found


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` exited (gone, or a zombie); False if it still runs at `timeout`."""
    deadline = time.monotonic() + timeout
    while (seen := state_and_parent(pid)) is not None and seen[0] not in "ZX":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.slow
@pytest.mark.parametrize("acks", [1, 25, 120])
async def test_a_killed_writer_loses_nothing_acknowledged(tmp_path: Path, acks: int) -> None:
    data_dir = tmp_path / "data"
    acked = kill_after(data_dir, acks)
    await check_restart(data_dir, acked)


@pytest.mark.slow
@pytest.mark.parametrize("acks", [1, 25, 120])
async def test_a_killed_writer_and_copier_lose_nothing_acknowledged(
    tmp_path: Path, acks: int
) -> None:
    data_dir = tmp_path / "data"
    acked = kill_after(data_dir, acks, group=True)
    await check_restart(data_dir, acked)


async def check_restart(data_dir: Path, acked: list[str]) -> None:
    """The restarted store shows every acknowledged write and nothing half-made."""
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
