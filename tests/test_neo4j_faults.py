"""Neo4j unreachable at start and lost under load: clear errors, no partial writes, recovery.

The restart test stops and restarts the shared test server (same port, same data), so it
leaves the server at the URI it found.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from neo4j import AsyncGraphDatabase
from streams import observe

from identity_graph.adapters.neo4j.store import Neo4jStore
from identity_graph.errors import StoreUnavailable
from identity_graph.model import Observation
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph

pytestmark = pytest.mark.neo4j

SERVER = Path(__file__).parent / "neo4j" / "server"


def neo4j_uri() -> str:
    uri = os.environ.get("NEO4J_TEST_URI")
    if not uri:
        pytest.fail("NEO4J_TEST_URI is not set: start tests/neo4j/server first")
    return uri


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def server(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVER),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 0, f"server {' '.join(args)} failed: {err.decode()[-2000:]}"


async def answers(uri: str) -> bool:
    try:
        async with AsyncGraphDatabase.driver(uri, auth=None, connection_timeout=2) as driver:
            await driver.verify_connectivity()
    except Exception:
        return False
    return True


async def test_open_fails_clearly_when_neo4j_is_unreachable() -> None:
    uri = f"bolt://127.0.0.1:{closed_port()}"
    store = Neo4jStore(uri, auth=None, max_retry_time=1.0, connection_timeout=1.0)
    with pytest.raises(StoreUnavailable, match="unavailable") as raised:
        await store.open()
    assert uri in str(raised.value)
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.ping()


@pytest.fixture
async def store() -> AsyncIterator[Neo4jStore]:
    uri = neo4j_uri()
    port = str(urlparse(uri).port)
    s = Neo4jStore(uri, auth=None, max_retry_time=2.0, connection_timeout=1.0)
    await s.open()
    await s.wipe()
    try:
        yield s
    finally:
        await s.close()
        if not await answers(uri):
            await server("start", "--port", port, "--keep-data")


def batch(n: int) -> list[Observation]:
    return [
        observe(
            f"m{n}-{i}",
            f"user_id:u{n}-{i}",
            f"anonymous_id:a{n}-{i}",
            f"email:shared{i}@example.com",
            t=n,
            traits={"plan": "pro"},
            event="Clicked",
        )
        for i in range(5)
    ]


@pytest.mark.slow
async def test_writes_fail_cleanly_while_neo4j_is_down_and_recover(store: Neo4jStore) -> None:
    graph = IdentityGraph(store, Rules.default())
    port = str(urlparse(store.uri).port)
    acknowledged: list[int] = []
    failed: list[int] = []
    warmed_up = asyncio.Event()
    restarted = asyncio.Event()
    recovered = asyncio.Event()

    async def writer(first: int) -> None:
        n = first
        while not recovered.is_set():
            n += 1000
            try:
                await graph.ingest(batch(n))
            except StoreUnavailable:
                failed.append(n)
                continue
            acknowledged.append(n)
            if len(acknowledged) >= 8:
                warmed_up.set()
            if restarted.is_set():
                recovered.set()

    writers = [asyncio.create_task(writer(w)) for w in range(4)]
    try:
        await asyncio.wait_for(warmed_up.wait(), timeout=60)
        await server("stop", "--keep-data")
        with pytest.raises(StoreUnavailable):
            await store.ping()
        await server("start", "--port", port, "--keep-data")
        restarted.set()
        await asyncio.wait_for(recovered.wait(), timeout=120)
    finally:
        restarted.set()
        recovered.set()
        await asyncio.gather(*writers)

    assert failed, "no write was running while Neo4j was down"
    await store.ping()
    await graph.ingest(batch(1))

    async with AsyncGraphDatabase.driver(store.uri, auth=None) as driver:
        records, _, _ = await driver.execute_query(
            "MATCH (m:Message) WHERE m.profile_id IS NOT NULL RETURN collect(m.id) AS ids"
        )
        messages = set(records[0]["ids"])
        records, _, _ = await driver.execute_query(
            "MATCH (e:Event) RETURN collect(e.message_id) AS ids"
        )
        events = set(records[0]["ids"])
        records, _, _ = await driver.execute_query(
            "MATCH (t:Trait) RETURN collect(t.message_id) AS ids"
        )
        traits = set(records[0]["ids"])

    assert messages == events == traits
    for n in [1, *acknowledged]:
        assert {m.message_id for m in batch(n)} <= messages, f"acknowledged batch {n} lost"
    for n in failed:
        ids = {m.message_id for m in batch(n)}
        assert ids <= messages or not ids & messages, f"batch {n} half-written"
