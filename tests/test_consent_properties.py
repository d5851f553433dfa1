"""Property tests of consent against a client's clock, on every adapter: whatever times
clients claim (past, equal, far future), a choice c360 received later is never outranked by
one received earlier, so a later REVOKED or DENIED never reads as GRANTED; and the consent
filter always agrees with the profile's own consents."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from streams import at
from test_resolver_properties import ADAPTERS, run

from graph_api.tracking.segment import SegmentMapper
from identity_graph.model import ConsentStatus
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore, ProfileFilter
from identity_graph.survivorship import effective_consent

KEYS = ("user_id:u0", "user_id:u1", "anonymous_id:a0", "anonymous_id:a1")
PURPOSE = "advertising"
RESTRICTIVENESS = {ConsentStatus.GRANTED: 0, ConsentStatus.REVOKED: 1, ConsentStatus.DENIED: 2}
CLAIMS = st.sampled_from([None, "same", -(10**6), -1, 0, 1, 10**6, 10**9])
"""a claimed time, as seconds from receipt: none, the previous message's, past, future"""

client_choices = st.tuples(
    st.just("client"), st.sampled_from(KEYS), st.booleans(), CLAIMS
)  # a Segment message with a consent preference
operator_choices = st.tuples(
    st.just("operator"), st.sampled_from(KEYS), st.sampled_from(list(ConsentStatus)), CLAIMS
)
links = st.tuples(st.just("link"), st.sampled_from(KEYS), st.sampled_from(KEYS), CLAIMS)
steps = st.lists(st.one_of(client_choices, operator_choices, links), min_size=1, max_size=12)


def segment_message(key: str, number: int, claimed: datetime | None) -> dict[str, Any]:
    kind, _, value = key.partition(":")
    field = "userId" if kind == "user_id" else "anonymousId"
    message: dict[str, Any] = {"type": "identify", field: value, "messageId": f"m{number}"}
    if claimed is not None:
        message["timestamp"] = claimed.isoformat()
    return message


@ADAPTERS
@settings(max_examples=40, deadline=None)
@given(script=steps)
def test_a_later_restrictive_choice_never_reads_as_granted(
    adapter: str, script: list[tuple[str, str, Any, Any]]
) -> None:
    async def body(store: IdentityStore) -> None:
        received = [at(10**6)]

        def clock() -> datetime:
            return received[0]

        graph = IdentityGraph(store, Rules.default(), clock=clock)
        mapper = SegmentMapper(graph.rules, source="segment")
        latest: dict[str, ConsentStatus] = {}
        """identifier -> the choice c360 received last for it (the model)"""
        previous = received[0]
        for number, (what, key, arg, offset) in enumerate(script):
            received[0] += timedelta(seconds=10)
            now = received[0]
            if offset == "same":
                claimed: datetime | None = previous
            elif offset is None:
                claimed = None
            else:
                claimed = now + timedelta(seconds=offset)
            previous = claimed or now
            if what == "link":
                message = segment_message(key, number, claimed)
                other_kind, _, other = arg.partition(":")
                message["userId" if other_kind == "user_id" else "anonymousId"] = other
                await graph.ingest([mapper.message(message, received_at=now)])
            elif what == "client":
                message = segment_message(key, number, claimed)
                preferences = {"Advertising": arg}
                message["context"] = {"consent": {"categoryPreferences": preferences}}
                obs = mapper.message(message, received_at=now)
                assert obs.timestamp <= now
                [outcome] = await graph.ingest([obs])
                members = await members_of(store, outcome.profile_id)
                status = ConsentStatus.GRANTED if arg else ConsentStatus.DENIED
                latest.update(dict.fromkeys(members, status))
            else:
                [outcome] = await graph.ingest(
                    [mapper.message(segment_message(key, number, None), received_at=now)]
                )
                pid = await graph.set_consent(
                    outcome.profile_id or "", {PURPOSE: arg}, source="ops", at=claimed
                )
                latest.update(dict.fromkeys(await members_of(store, pid), arg))
            await check(store, latest)

    run(adapter, body)


async def members_of(store: IdentityStore, pid: str | None) -> list[str]:
    assert pid is not None
    owners = await store.profile_ids(list(KEYS))
    return [key for key, owner in owners.items() if owner == pid]


async def check(store: IdentityStore, latest: dict[str, ConsentStatus]) -> None:
    """Each profile's consent is the most restrictive of its identifiers' last received
    choices, whatever times they claimed; and the filter says the same."""
    owners = await store.profile_ids(list(KEYS))
    profiles = sorted(set(owners.values()))
    records = await store.consents(profiles)
    granted = await store.list_profiles(
        first=100, after=None, where=ProfileFilter(consent_granted=PURPOSE)
    )
    for pid in profiles:
        held = [latest[k] for k, owner in owners.items() if owner == pid and k in latest]
        expected = max(held, key=RESTRICTIVENESS.__getitem__) if held else None
        shown = effective_consent(records[pid]).get(PURPOSE)
        assert (shown.status if shown else None) is expected
        assert (pid in granted.items) is (expected is ConsentStatus.GRANTED)
