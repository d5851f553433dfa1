"""Test helpers: build observations tersely and read the partition back from any store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_graph.model import (
    Event,
    EventCategory,
    Identifier,
    Link,
    MessageType,
    Observation,
)
from identity_graph.rules import Rules
from identity_graph.store import IdentityStore, ProfileFilter, WriteTx

T0 = datetime(2024, 1, 1, tzinfo=UTC)

Partition = dict[str, frozenset[str]]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def observe(
    message_id: str,
    *keys: str,
    t: float = 0,
    type: MessageType = MessageType.IDENTIFY,
    source: str = "web",
    traits: Mapping[str, Any] | None = None,
    event: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Observation:
    """An observation of identifiers given as `kind:value` keys; `event` names a track call."""
    if event is not None and type is MessageType.IDENTIFY:
        type = MessageType.TRACK
    return Observation(
        message_id=message_id,
        timestamp=at(t),
        source=source,
        type=type,
        identifiers=tuple(Identifier.from_key(k) for k in keys),
        traits=dict(traits or {}),
        event=(
            Event(type, event, dict(properties or {}), EventCategory.ENGAGEMENT)
            if event is not None
            else None
        ),
    )


async def partition(store: IdentityStore) -> Partition:
    """Every current profile id -> its identifier keys, read through the port."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list_profiles(first=500, after=cursor, where=ProfileFilter())
        ids.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            break
    found = await store.profiles(ids)
    return {pid: frozenset(r.identifier.key for r in p.identifiers) for pid, p in found.items()}


def groups(part: Partition) -> set[frozenset[str]]:
    """The partition without profile ids: which identifiers belong together."""
    return set(part.values())


def restrict(part: Partition, keys: Iterable[str]) -> set[frozenset[str]]:
    """The groups of the partition restricted to `keys`, empty groups left out."""
    wanted = set(keys)
    return {g & wanted for g in part.values() if g & wanted}


async def profile_links(store: IdentityStore, pid: str) -> tuple[Link, ...]:
    """The links the store holds for a current profile (its graph, as undo and split see it)."""

    async def read(tx: WriteTx) -> tuple[Link, ...]:
        graph = await tx.profile_graph(pid)
        assert graph is not None, f"no current profile {pid}"
        return graph.links

    return await store.write(read)


async def check_invariants(store: IdentityStore, rules: Rules, part: Partition) -> None:
    """Every identifier in exactly one current profile; limits held; nothing blocked stored;
    every link joins two identifiers of one profile (the embedded store looks for a link path
    within one profile only)."""
    owners: Counter[str] = Counter(k for keys in part.values() for k in keys)
    assert all(n == 1 for n in owners.values()), [k for k, n in owners.items() if n > 1]
    assert all(part.values()), "a current profile without identifiers"
    where = await store.profile_ids(list(owners))
    assert where == {k: pid for pid, keys in part.items() for k in keys}
    for pid, keys in part.items():
        counts = Counter(Identifier.from_key(k).kind for k in keys)
        for kind, n in counts.items():
            assert n <= rules.limit(kind), f"{pid} holds {n} {kind} (limit {rules.limit(kind)})"
        blocked = [k for k in keys if rules.is_blocked(Identifier.from_key(k).value)]
        assert not blocked, blocked
        across = [x for x in await profile_links(store, pid) if not {x.a, x.b} <= keys]
        assert not across, f"links of {pid} leave it: {across}"
