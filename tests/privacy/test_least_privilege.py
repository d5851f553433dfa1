"""A write key writes and learns nothing (DESIGN §3, least privilege).

Write keys ship inside web and mobile apps, so anyone may hold one: what the `ingest` role
gets back must be the same whether the identifiers it sends are known or not, carry no
customer id, merge or conflict, and consent cannot be set (and read back) with it.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.api.conftest import ADMIN_KEY, Api, codes
from tests.privacy.conftest import Seeded

RESULT = "messageId status customerId merges conflict"
IDENTIFY = f"mutation($input: IdentifyInput!) {{ identify(input: $input) {{ {RESULT} }} }}"
TRACK = f"mutation($input: TrackInput!) {{ track(input: $input) {{ {RESULT} }} }}"
INGEST = f"mutation($messages: [MessageInput!]!) {{ ingest(messages: $messages) {{ {RESULT} }} }}"
SET_CONSENT = """mutation($id: ID!) {
  setConsent(customerId: $id, choices: [{purpose: "sale_of_data", status: GRANTED}]) {
    purpose status } }"""
CONSENTS = "query($id: ID!) { customer(id: $id) { consents { purpose status source } } }"


def identify(email: str, message_id: str) -> dict[str, Any]:
    return {
        "input": {
            "anonymousId": f"anon-{message_id}",
            "traits": {"email": email},
            "messageId": message_id,
        }
    }


async def test_an_ingest_result_tells_a_write_key_nothing_about_who_is_known(
    api: Api, keys: dict[str, str], seeded: Seeded
) -> None:
    """The same answer for a customer's email and an unknown one: status and message id."""
    known = await api(
        IDENTIFY, identify(seeded.identifiers["email"], "m-known"), key=keys["ingest"]
    )
    unknown = await api(IDENTIFY, identify("nobody@example.org", "m-unknown"), key=keys["ingest"])
    assert known["identify"] == {
        "messageId": "m-known",
        "status": "applied",
        "customerId": None,
        "merges": None,
        "conflict": None,
    }
    assert unknown["identify"] == {**known["identify"], "messageId": "m-unknown"}


async def test_track_and_ingest_results_carry_no_customer_for_a_write_key(
    api: Api, keys: dict[str, str], seeded: Seeded
) -> None:
    track = {"input": {"event": "Viewed", "userId": seeded.identifiers["user_id"]}}
    data = await api(TRACK, track, key=keys["ingest"])
    assert (data["track"]["customerId"], data["track"]["merges"]) == (None, None)
    messages = [
        {"type": "IDENTIFY", "userId": "u-new", "messageId": "b1"},
        {"type": "IDENTIFY", "userId": "u-new", "anonymousId": "a-new", "messageId": "b2"},
        {"type": "TRACK", "event": "Viewed", "userId": seeded.identifiers["user_id"]},
    ]
    data = await api(INGEST, {"messages": messages}, key=keys["ingest"])
    assert [(r["customerId"], r["merges"], r["conflict"]) for r in data["ingest"]] == [
        (None, None, None)
    ] * 3


async def test_an_admin_still_sees_what_a_message_did(
    api: Api, keys: dict[str, str], seeded: Seeded
) -> None:
    data = await api(IDENTIFY, identify(seeded.identifiers["email"], "m-admin"), key=ADMIN_KEY)
    assert data["identify"]["customerId"] == seeded.customer_id
    assert data["identify"]["merges"] == [] and data["identify"]["conflict"] is None


async def test_a_write_key_may_not_set_consent(
    api: Api, keys: dict[str, str], seeded: Seeded
) -> None:
    response = await api.post(SET_CONSENT, {"id": seeded.customer_id}, key=keys["ingest"])
    assert response.status_code == 403
    assert codes(response.json()["errors"]) == ["FORBIDDEN"]
    assert response.json()["data"] is None
    for role in ("admin", "support"):
        data = await api(SET_CONSENT, {"id": seeded.customer_id}, key=keys[role])
        assert data["setConsent"] == [{"purpose": "sale_of_data", "status": "GRANTED"}]
    for role in ("sales", "marketing", "analyst"):
        errors = await api.errors(SET_CONSENT, {"id": seeded.customer_id}, key=keys[role])
        assert codes(errors) == ["FORBIDDEN"]


async def test_a_write_key_cannot_attach_itself_to_a_victim_and_read_the_victim_back(
    api: Api, keys: dict[str, str], seeded: Seeded
) -> None:
    """The reported attack: the key's own anonymous id sent with the victim's email and a
    consent context. It writes (the person's consent arrives this way by design), but
    nothing comes back: no customer id, no way to set or read consent."""
    victim = seeded.identifiers["email"]
    data = await api(
        IDENTIFY,
        {"input": {"anonymousId": "attacker-anon", "traits": {"email": victim}}},
        key=keys["ingest"],
    )
    assert data["identify"]["customerId"] is None
    basic = base64.b64encode(f"{keys['ingest']}:".encode()).decode()
    response = await api.client.post(
        "/v1/identify",
        json={
            "anonymousId": "attacker-anon",
            "traits": {"email": victim},
            "context": {"consent": {"categoryPreferences": {"sale_of_data": True}}},
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200 and response.json() == {"success": True}
    for attempt in (
        await api.post(SET_CONSENT, {"id": seeded.customer_id}, key=keys["ingest"]),
        await api.post(CONSENTS, {"id": seeded.customer_id}, key=keys["ingest"]),
    ):
        assert attempt.status_code == 403
        assert not any((attempt.json()["data"] or {}).values())
    # the write did land: an operator sees the consent the message carried
    consents = (await api(CONSENTS, {"id": seeded.customer_id}))["customer"]["consents"]
    assert {"purpose": "sale_of_data", "status": "GRANTED", "source": "segment"} in consents
