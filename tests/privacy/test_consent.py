"""Consent per purpose: set by mutation or from Segment's consent context, exposed as
Customer.consents, merged by 'the most restrictive of the latest choices wins'."""

from __future__ import annotations

from typing import Any

import pytest

from graph_api.metrics import REGISTRY
from tests.api.conftest import Api, codes
from tests.privacy.conftest import IDENTIFY, TRACK, token

SET = """mutation($id: ID!, $choices: [ConsentInput!]!, $source: String!) {
  setConsent(customerId: $id, choices: $choices, source: $source) { purpose status source } }"""
CONSENTS = "query($id: ID!) { customer(id: $id) { id consents { purpose status at source } } }"
GRANTED_TO = """query($purpose: String!) {
  customers(where: {consentGranted: $purpose}, first: 100) { edges { node { id } } } }"""
NAME = "query($id: ID!) { customer(id: $id) { traits { name } } }"


async def customer(api: Api, user_id: str, at: str = "2024-01-01T00:00:00Z") -> str:
    data = await api(IDENTIFY, {"input": {"userId": user_id, "timestamp": at}})
    found: str = data["identify"]["customerId"]
    return found


async def set_consent(
    api: Api, customer_id: str, source: str = "preference-centre", **choices: str
) -> list[dict[str, Any]]:
    listed = [{"purpose": p, "status": s} for p, s in choices.items()]
    data = await api(SET, {"id": customer_id, "choices": listed, "source": source})
    result: list[dict[str, Any]] = data["setConsent"]
    return result


async def consents(api: Api, customer_id: str) -> dict[str, str]:
    data = await api(CONSENTS, {"id": customer_id})
    return {c["purpose"]: c["status"] for c in data["customer"]["consents"]}


async def test_set_consent_then_read_it(api: Api) -> None:
    jane = await customer(api, "u-consent-1")
    assert await consents(api, jane) == {}
    result = await set_consent(api, jane, analytics="GRANTED", email_marketing="DENIED")
    assert {(c["purpose"], c["status"], c["source"]) for c in result} == {
        ("analytics", "GRANTED", "preference-centre"),
        ("email_marketing", "DENIED", "preference-centre"),
    }
    assert await consents(api, jane) == {"analytics": "GRANTED", "email_marketing": "DENIED"}
    data = await api(CONSENTS, {"id": jane}, key=token("marketing"))
    assert {c["source"] for c in data["customer"]["consents"]} == {"preference-centre"}


async def test_a_later_choice_supersedes(api: Api) -> None:
    jane = await customer(api, "u-consent-2")
    await set_consent(api, jane, advertising="DENIED", analytics="GRANTED")
    await set_consent(api, jane, advertising="GRANTED")
    await set_consent(api, jane, analytics="REVOKED")
    assert await consents(api, jane) == {"advertising": "GRANTED", "analytics": "REVOKED"}


async def test_segment_consent_context_is_recorded(api: Api) -> None:
    write_key = await api.key("ingest")
    message = {
        "userId": "u-segment-1",
        "event": "Page Viewed",
        "messageId": "m-consent-1",
        "timestamp": "2024-03-01T00:00:00Z",
        "context": {
            "consent": {
                "categoryPreferences": {
                    "Analytics": True,
                    "Advertising": False,
                    "Email": True,
                    "Some Vendor Category": False,
                }
            }
        },
    }
    response = await api.client.post("/v1/track", json=message, auth=(write_key, ""))
    assert response.status_code == 200, response.text
    jane = await customer(api, "u-segment-1", at="2024-02-01T00:00:00Z")
    data = await api(CONSENTS, {"id": jane})
    found = {c["purpose"]: (c["status"], c["at"][:10]) for c in data["customer"]["consents"]}
    assert found == {
        "analytics": ("GRANTED", "2024-03-01"),
        "advertising": ("DENIED", "2024-03-01"),
        "email_marketing": ("GRANTED", "2024-03-01"),
    }


async def test_after_a_merge_the_most_restrictive_latest_choice_wins(api: Api) -> None:
    web = await customer(api, "u-merge-a", at="2024-01-01T00:00:00Z")
    app = await api(
        IDENTIFY,
        {"input": {"anonymousId": "anon-merge-b", "timestamp": "2024-01-01T00:00:00Z"}},
    )
    mobile = app["identify"]["customerId"]
    await set_consent(api, mobile, email_marketing="DENIED")
    await set_consent(api, web, analytics="DENIED", advertising="GRANTED")
    await set_consent(api, web, email_marketing="GRANTED")
    await set_consent(api, web, analytics="GRANTED")
    await set_consent(api, mobile, analytics="GRANTED", advertising="REVOKED")
    await set_consent(api, mobile, personalization="GRANTED")
    merged = await api(
        TRACK,
        {"input": {"event": "Login", "userId": "u-merge-a", "anonymousId": "anon-merge-b"}},
    )
    assert merged["track"]["customerId"] in (web, mobile)
    survivor = merged["track"]["customerId"]
    assert await consents(api, survivor) == {
        "analytics": "GRANTED",  # the web side's earlier DENIED was superseded on that side
        "advertising": "REVOKED",
        "email_marketing": "DENIED",  # older, but more restrictive than the web side's
        "personalization": "GRANTED",
    }
    absorbed = mobile if survivor == web else web
    assert await consents(api, absorbed) == await consents(api, survivor)
    await set_consent(api, survivor, advertising="GRANTED")
    assert (await consents(api, survivor))["advertising"] == "GRANTED"


@pytest.mark.parametrize("role", ["sales", "marketing", "analyst"])
async def test_only_some_roles_record_consent(api: Api, role: str) -> None:
    jane = await customer(api, "u-consent-3")
    choices = [{"purpose": "analytics", "status": "GRANTED"}]
    response = await api.post(SET, {"id": jane, "choices": choices, "source": "x"}, key=token(role))
    assert codes(response.json()["errors"]) == ["FORBIDDEN"]
    data = await api(SET, {"id": jane, "choices": choices, "source": "x"}, key=token("support"))
    assert data["setConsent"][0]["status"] == "GRANTED"


async def test_bad_consent_input_is_refused(api: Api) -> None:
    jane = await customer(api, "u-consent-4")
    for choices in ([{"purpose": "mind_reading", "status": "GRANTED"}], []):
        response = await api.post(SET, {"id": jane, "choices": choices, "source": "x"})
        assert codes(response.json()["errors"]) == ["BAD_INPUT"]
    missing = [{"purpose": "analytics", "status": "GRANTED"}]
    response = await api.post(SET, {"id": "no-such-customer", "choices": missing, "source": "x"})
    assert codes(response.json()["errors"]) == ["NOT_FOUND"]
    assert await consents(api, jane) == {}


async def granted_to(api: Api, purpose: str) -> list[str]:
    data = await api(GRANTED_TO, {"purpose": purpose})
    return [edge["node"]["id"] for edge in data["customers"]["edges"]]


def clamped(source: str = "segment") -> float:
    return REGISTRY.get_sample_value("c360_clamped_timestamps_total", {"source": source}) or 0.0


async def test_a_choice_claiming_a_future_time_does_not_outrank_an_operator(api: Api) -> None:
    """The finding: an identify dated 2099 granting advertising, then an admin's REVOKED."""
    write_key = await api.key("ingest")
    before = clamped()
    message = {
        "userId": "u-from-2099",
        "messageId": "m-2099-grant",
        "timestamp": "2099-01-01T00:00:00Z",
        "context": {"consent": {"categoryPreferences": {"Advertising": True}}},
    }
    response = await api.client.post("/v1/identify", json=message, auth=(write_key, ""))
    assert response.status_code == 200, response.text
    assert clamped() == before + 1
    jane = await customer(api, "u-from-2099")
    data = await api(CONSENTS, {"id": jane})
    [granted] = data["customer"]["consents"]
    assert granted["status"] == "GRANTED" and not granted["at"].startswith("2099")
    assert jane in await granted_to(api, "advertising")
    await set_consent(api, jane, source="admin", advertising="REVOKED")
    assert await consents(api, jane) == {"advertising": "REVOKED"}
    assert jane not in await granted_to(api, "advertising")


async def test_a_trait_claiming_a_future_time_does_not_outlive_a_later_value(api: Api) -> None:
    write_key = await api.key("ingest")
    for message_id, name, at in (
        ("m-ada", "Ada", "2099-01-01T00:00:00Z"),
        ("m-grace", "Grace", None),
    ):
        message = {"userId": "u-named", "messageId": message_id, "traits": {"name": name}}
        if at is not None:
            message["timestamp"] = at
        response = await api.client.post("/v1/identify", json=message, auth=(write_key, ""))
        assert response.status_code == 200, response.text
    jane = await customer(api, "u-named")
    data = await api(NAME, {"id": jane})
    assert data["customer"]["traits"]["name"] == "Grace"
