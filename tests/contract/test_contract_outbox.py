"""The outbox on every adapter: destinations, and the deliveries `AudienceStore.record`
enqueues in the transaction that records the changes (`store.audiences` is also the
`Outbox`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import count

import pytest
from streams import at

from identity_graph.activation.deliveries import DeliveryStatus
from identity_graph.activation.destinations import (
    Destination,
    DestinationFormat,
    DestinationStatus,
    SigningSecret,
)
from identity_graph.activation.store import Outbox
from identity_graph.audiences.store import (
    Audience,
    AudienceChange,
    AudienceStore,
    ChangeKind,
    Status,
)
from identity_graph.errors import InvalidOperation
from identity_graph.store import IdentityStore

T = at(0)
ENTERED, EXITED = ChangeKind.ENTERED, ChangeKind.EXITED
PENDING, DELIVERED, FAILED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED


def outbox_of(store: IdentityStore) -> tuple[AudienceStore, Outbox]:
    found = store.audiences  # type: ignore[attr-defined]
    assert isinstance(found, AudienceStore) and isinstance(found, Outbox)
    return found, found


def destination(did: str, name: str, audiences: tuple[str, ...], **kw: object) -> Destination:
    return Destination(
        id=did,
        name=name,
        url=f"https://hooks.example.com/{did}",
        audience_ids=audiences,
        format=DestinationFormat.STANDARD,
        role="marketing",
        secrets=(SigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),),
        created_at=T,
        **kw,  # type: ignore[arg-type]
    )


class Changes:
    def __init__(self) -> None:
        self.n = count()

    def __call__(self, aid: str, cid: str, kind: ChangeKind) -> AudienceChange:
        n = next(self.n)
        return AudienceChange(f"c{n:04d}", aid, cid, kind, T + timedelta(seconds=n))


async def with_audiences(aud: AudienceStore, *ids: str) -> None:
    for aid in ids:
        condition = {"identifier": {"kind": "email"}}
        await aud.put_audience(Audience(aid, f"aud-{aid}", condition, None, Status.READY, T))


async def test_destinations_are_stored_replaced_listed_and_deleted(store: IdentityStore) -> None:
    _, box = outbox_of(store)
    assert await box.destinations() == []
    crm = destination(
        "d2",
        "crm",
        ("a1", "a2"),
        mapping={"firstname": "traits.firstName", "$membershipProperty": "lists"},
        headers={"Authorization": "Bearer t0k"},
    )
    crm = replace(crm, format=DestinationFormat.HUBSPOT)
    hooks = destination("d1", "hooks", ("a1",))
    await box.put_destination(crm)
    await box.put_destination(hooks)
    assert await box.destinations() == [crm, hooks]
    rotated = replace(
        hooks,
        secrets=(
            SigningSecret("whsec_bmV3bmV3bmV3bmV3bmV3bmV3"),
            SigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", T + timedelta(days=1)),
        ),
        status=DestinationStatus.FAILING,
        last_error="HTTP 503",
        updated_at=T + timedelta(hours=1),
    )
    await box.put_destination(rotated)
    assert await box.destinations() == [crm, rotated]
    with pytest.raises(InvalidOperation):
        await box.put_destination(destination("d3", "crm", ("a1",)))
    await box.set_status("d1", DestinationStatus.DISABLED, "HTTP 410 Gone")
    [_, disabled] = await box.destinations()
    assert (disabled.status, disabled.last_error) == (DestinationStatus.DISABLED, "HTTP 410 Gone")
    assert await box.delete_destination("d2")
    assert not await box.delete_destination("d2")
    assert [d.id for d in await box.destinations()] == ["d1"]


async def test_record_enqueues_one_delivery_per_effective_change_and_enabled_destination(
    store: IdentityStore,
) -> None:
    aud, box = outbox_of(store)
    await with_audiences(aud, "a1", "a2")
    await box.put_destination(destination("d1", "one", ("a1",)))
    await box.put_destination(destination("d2", "both", ("a1", "a2")))
    await box.put_destination(destination("d3", "off", ("a1",), status=DestinationStatus.DISABLED))
    change = Changes()
    batch = [
        change("a1", "p1", ENTERED),
        change("a2", "p1", ENTERED),
        change("a1", "p1", ENTERED),  # not effective: no delivery
        change("a2", "p9", EXITED),  # not effective
    ]
    assert await aud.record(batch) == 2
    one = await box.deliveries("d1", first=10, after=None)
    both = await box.deliveries("d2", first=10, after=None)
    off = await box.deliveries("d3", first=10, after=None)
    assert [(d.audience_id, d.customer_id, d.kind) for d in one.items] == [("a1", "p1", ENTERED)]
    assert sorted((d.audience_id, d.kind) for d in both.items) == [
        ("a1", ENTERED),
        ("a2", ENTERED),
    ]
    assert off.items == () and off.total == 0
    [d] = one.items
    assert d.id == "c0000.d1" and d.webhook_id == "msg_c0000.d1"
    assert (d.status, d.attempts, d.changed_at) == (PENDING, 0, batch[0].at)
    assert d.next_attempt_at is not None and d == await box.delivery(d.id)
    assert await box.delivery("nope") is None


async def test_claim_takes_due_deliveries_in_order_one_per_customer_and_leases_them(
    store: IdentityStore,
) -> None:
    aud, box = outbox_of(store)
    await with_audiences(aud, "a1")
    await box.put_destination(destination("d1", "one", ("a1",)))
    change = Changes()
    await aud.record([change("a1", "p1", ENTERED), change("a1", "p2", ENTERED)])
    await aud.record([change("a1", "p1", EXITED), change("a1", "p3", ENTERED)])
    now = T + timedelta(days=400)  # later than any enqueue time
    claimed = await box.claim("d1", now=now, limit=10, lease=timedelta(minutes=30))
    # p1's exit waits for its entry; p3 after p2
    assert [(d.customer_id, d.kind) for d in claimed] == [
        ("p1", ENTERED),
        ("p2", ENTERED),
        ("p3", ENTERED),
    ]
    assert await box.claim("d1", now=now, limit=10) == []  # leased
    [p1_in, p2_in, p3_in] = claimed
    # p1's entry fails and waits a minute; p2's is delivered; p3's stays leased
    retry = replace(
        p1_in,
        attempts=1,
        last_attempt_at=now,
        next_attempt_at=now + timedelta(minutes=1),
        last_error="HTTP 500",
        response_status=500,
    )
    done = replace(
        p2_in,
        status=DELIVERED,
        attempts=1,
        last_attempt_at=now,
        delivered_at=now,
        response_status=204,
    )
    await box.finish([retry, done])
    assert await box.claim("d1", now=now, limit=10) == []  # p1's exit still waits
    assert await box.next_due("d1") == now + timedelta(minutes=1)
    later = now + timedelta(minutes=2)
    [again] = await box.claim("d1", now=later, limit=10)
    assert (again.customer_id, again.kind, again.attempts, again.last_error) == (
        "p1",
        ENTERED,
        1,
        "HTTP 500",
    )
    await box.finish([replace(again, status=DELIVERED, attempts=2, delivered_at=later)])
    [exit_] = await box.claim("d1", now=later, limit=10)
    assert (exit_.customer_id, exit_.kind) == ("p1", EXITED)
    # the leases of p3's entry and p1's exit run out: they are claimed again, in order
    expired = now + timedelta(hours=1)
    again_later = await box.claim("d1", now=expired, limit=10)
    assert [(d.customer_id, d.kind) for d in again_later] == [("p1", EXITED), ("p3", ENTERED)]
    assert await box.delivery(p2_in.id) == done


async def test_deliveries_page_newest_first_by_status_and_redeliver(store: IdentityStore) -> None:
    aud, box = outbox_of(store)
    await with_audiences(aud, "a1")
    await box.put_destination(destination("d1", "one", ("a1",)))
    change = Changes()
    await aud.record([change("a1", f"p{i}", ENTERED) for i in range(5)])
    now = T + timedelta(days=400)
    claimed = await box.claim("d1", now=now, limit=2)
    await box.finish(
        [
            replace(claimed[0], status=DELIVERED, attempts=1, delivered_at=now),
            replace(claimed[1], status=FAILED, attempts=9, last_error="gave up"),
        ]
    )
    first = await box.deliveries("d1", first=2, after=None)
    assert [d.customer_id for d in first.items] == ["p4", "p3"]
    assert first.total == 5 and first.more and first.cursor == first.items[-1].id
    rest = await box.deliveries("d1", first=10, after=first.cursor)
    assert [d.customer_id for d in rest.items] == ["p2", "p1", "p0"] and not rest.more
    failed = await box.deliveries("d1", first=10, after=None, status=FAILED)
    assert [d.customer_id for d in failed.items] == ["p1"] and failed.total == 1
    pending = await box.deliveries("d1", first=10, after=None, status=PENDING)
    assert pending.total == 3
    again = await box.redeliver(claimed[1].id, now)
    assert again is not None
    assert (again.status, again.attempts, again.next_attempt_at) == (PENDING, 9, now)
    assert await box.redeliver("nope", now) is None
    assert {d.customer_id for d in await box.claim("d1", now=now, limit=10)} == {
        "p1",
        "p2",
        "p3",
        "p4",
    }


async def test_resume_makes_pending_due_and_releases_expired_claims(store: IdentityStore) -> None:
    aud, box = outbox_of(store)
    await with_audiences(aud, "a1")
    await box.put_destination(destination("d1", "one", ("a1",)))
    change = Changes()
    await aud.record([change("a1", "p1", ENTERED), change("a1", "p2", ENTERED)])
    now = T + timedelta(days=400)
    [p1, p2] = await box.claim("d1", now=now, limit=10)
    await box.finish([replace(p1, attempts=3, next_attempt_at=now + timedelta(hours=5))])
    restart = now + timedelta(hours=1)  # p2's claim has expired
    assert await box.resume(restart) == 2
    due = await box.next_due("d1")
    assert due is not None and due <= restart
    assert {d.customer_id for d in await box.claim("d1", now=restart, limit=10)} == {"p1", "p2"}


async def test_deleting_a_destination_or_audience_deletes_their_deliveries(
    store: IdentityStore,
) -> None:
    aud, box = outbox_of(store)
    await with_audiences(aud, "a1", "a2")
    await box.put_destination(destination("d1", "one", ("a1", "a2")))
    change = Changes()
    await aud.record([change("a1", "p1", ENTERED), change("a2", "p1", ENTERED)])
    assert await aud.delete_audience("a2")
    left = await box.deliveries("d1", first=10, after=None)
    assert [d.audience_id for d in left.items] == ["a1"]
    [d] = left.items
    assert await box.delete_destination("d1")
    assert await box.delivery(d.id) is None
    assert await box.next_due("d1") is None
    # a destination deleted meanwhile: finishing its deliveries changes nothing
    await box.finish([replace(d, status=DELIVERED)])
    assert await box.delivery(d.id) is None
