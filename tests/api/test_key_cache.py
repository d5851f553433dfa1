"""API key records are cached for a few seconds: the store is read once for many requests, a
revocation here is seen at once, one made elsewhere within the cache's time to live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette

from graph_api.access.auth import KEY_CACHE_SECONDS, Authenticator, KeyCache
from graph_api.errors import AuthError
from graph_api.settings import Settings
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.model import Page
from identity_graph.records import AccessRecords, ApiKey, AuditEntry
from tests.api.conftest import Api, codes

READ = "{ customers(first: 1) { totalCount } }"
START = datetime(2030, 1, 1, tzinfo=UTC)


class CountingRecords(AccessRecords):
    """The records of a real store, counting the key lookups. With `hold` set, a lookup
    sets `read` once it has the record and returns it only when `hold` is set."""

    def __init__(self, records: AccessRecords) -> None:
        self.inner = records
        self.lookups = 0
        self.hold: asyncio.Event | None = None
        self.read = asyncio.Event()

    async def api_key(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        record = await self.inner.api_key(key_hash)
        hold = self.hold
        if hold is not None:
            self.hold = None
            self.read.set()
            await hold.wait()
        return record

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        await self.inner.append_audit(entries)

    async def audit_log(
        self,
        *,
        first: int,
        after: str | None,
        customer_id: str | None,
        count_up_to: int | None = 0,
    ) -> Page[AuditEntry]:
        return await self.inner.audit_log(
            first=first, after=after, customer_id=customer_id, count_up_to=count_up_to
        )

    async def expire_audit(self, before: datetime, *, batch: int) -> int:
        return await self.inner.expire_audit(before, batch=batch)

    async def put_api_key(self, key: ApiKey) -> None:
        await self.inner.put_api_key(key)

    async def api_keys(self, *, first: int, after: str | None) -> Page[ApiKey]:
        return await self.inner.api_keys(first=first, after=after)

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        return await self.inner.revoke_api_key(key_id, at=at)


class Clocks:
    """The wall clock (key expiry) and the monotonic one (cache age), moved by hand."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wall(self) -> datetime:
        return START + timedelta(seconds=self.seconds)

    def monotonic(self) -> float:
        return self.seconds


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[CountingRecords]:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        yield CountingRecords(store.records)
    finally:
        await store.close()


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def authenticator(records: AccessRecords, clocks: Clocks, **cache: int) -> Authenticator:
    keys = KeyCache(clock=clocks.monotonic, **cache)
    return Authenticator(Settings(), records, clock=clocks.wall, keys=keys)


async def refused(auth: Authenticator, key: str) -> bool:
    try:
        await auth.from_write_key(key)
    except AuthError:
        return True
    return False


async def test_the_store_is_read_once_for_many_requests(
    records: CountingRecords, clocks: Clocks
) -> None:
    auth = authenticator(records, clocks)
    key, record = await auth.create_key("sales", "crm")
    for _ in range(50):
        principal = await auth.from_write_key(key)
        assert principal.id == f"key:{record.id}"
        assert principal.roles == {"sales"}
    assert records.lookups == 1

    clocks.seconds += KEY_CACHE_SECONDS
    await auth.from_write_key(key)
    assert records.lookups == 2


async def test_a_key_revoked_by_another_process_is_refused_once_the_ttl_has_passed(
    records: CountingRecords, clocks: Clocks
) -> None:
    auth = authenticator(records, clocks)
    key, record = await auth.create_key("support", None)
    await auth.from_write_key(key)

    # another worker revokes it: straight in the shared records, this process is not told
    assert await records.inner.revoke_api_key(record.id, at=clocks.wall())
    clocks.seconds += KEY_CACHE_SECONDS - 0.5
    assert not await refused(auth, key)  # the bound: at most KEY_CACHE_SECONDS still accepted
    clocks.seconds += 0.5
    assert await refused(auth, key)
    assert await refused(auth, key)


async def test_a_revocation_here_is_seen_at_once(records: CountingRecords, clocks: Clocks) -> None:
    auth = authenticator(records, clocks)
    key, record = await auth.create_key("support", None)
    other, _ = await auth.create_key("analyst", None)
    await auth.from_write_key(key)
    await auth.from_write_key(other)

    assert await auth.revoke_key(record.id)
    assert await refused(auth, key)
    assert not await refused(auth, other)


async def test_a_read_under_way_during_a_revocation_is_not_kept(
    records: CountingRecords, clocks: Clocks
) -> None:
    auth = authenticator(records, clocks)
    key, record = await auth.create_key("support", None)
    hold = records.hold = asyncio.Event()
    reading = asyncio.create_task(auth.from_write_key(key))
    await records.read.wait()  # it has read the record as it was before the revocation
    await auth.revoke_key(record.id)
    hold.set()
    await reading  # it began before the revocation: let through, but not remembered
    assert await refused(auth, key)
    assert records.lookups == 2


async def test_expiry_is_checked_on_every_request_against_the_cached_record(
    records: CountingRecords, clocks: Clocks
) -> None:
    auth = authenticator(records, clocks)
    key, _ = await auth.create_key("sales", None, expires_at=START + timedelta(seconds=1))
    await auth.from_write_key(key)
    clocks.seconds += 1  # well within the cache's time to live
    assert await refused(auth, key)
    assert records.lookups == 1


async def test_unknown_keys_are_not_remembered(records: CountingRecords, clocks: Clocks) -> None:
    auth = authenticator(records, clocks)
    for n in range(20):
        assert await refused(auth, f"c360_made-up-{n}")
    assert records.lookups == 20
    assert len(auth.keys) == 0

    # a key another process creates after a miss works at once
    elsewhere = authenticator(records, clocks)
    key, _ = await elsewhere.create_key("ingest", None)
    assert await refused(auth, key + "x")
    assert not await refused(auth, key)


async def test_the_cache_keeps_at_most_size_records(
    records: CountingRecords, clocks: Clocks
) -> None:
    auth = authenticator(records, clocks, size=2)
    keys = [(await auth.create_key("analyst", None))[0] for _ in range(3)]
    for key in keys:
        await auth.from_write_key(key)
    assert len(auth.keys) == 2
    await auth.from_write_key(keys[2])
    await auth.from_write_key(keys[1])
    assert records.lookups == 3
    await auth.from_write_key(keys[0])  # the least recently used was dropped
    assert records.lookups == 4


async def test_a_key_revoked_through_the_api_is_refused_on_the_next_request(
    api: Api, app: Starlette
) -> None:
    made = (await api('mutation { createApiKey(role: "sales") { id key } }'))["createApiKey"]
    assert (await api(READ, key=made["key"]))["customers"]["totalCount"] == 0
    auth: Authenticator = app.state.services.auth
    assert len(auth.keys) == 2  # the admin key and this one

    assert await api(f'mutation {{ revokeApiKey(id: "{made["id"]}") }}')
    response = await api.post(READ, key=made["key"])
    assert response.status_code == 401
    assert codes(response.json()["errors"]) == ["INVALID_TOKEN"]
