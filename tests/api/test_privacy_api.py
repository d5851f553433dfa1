"""Privacy operations over HTTP, on both stores: the data-subject export, erasure,
suppressions and retention, who may run them, and their errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from graph_api.app import create_app
from graph_api.errors import ConfigError
from graph_api.privacy import export, retention
from graph_api.privacy.export import SECTIONS
from graph_api.services import build_services
from graph_api.settings import Settings
from tests.api.conftest import Api, codes, serving
from tests.api.people import OTHERS_VALUES, messages, send, settings_for, wipe

STORES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]
EXPORT = "query($id: ID!) { dataSubjectExport(customerId: $id) }"
ERASE = """mutation($id: ID!, $reason: String!, $suppress: Boolean! = true) {
  eraseCustomer(customerId: $id, reason: $reason, suppress: $suppress) {
    id customerId erasedAt identifiers events suppressed
  }
}"""
LOOKUP = "query($kind: String!, $value: String!) { customer(identifier: {kind: $kind, value: $value}) { id } }"  # noqa: E501
SUPPRESSIONS = """query($after: String) {
  suppressions(first: 2, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { hash kind erasureId at } }
  }
}"""
UNSUPPRESS = """mutation($kind: String!, $value: String!) {
  unsuppress(identifier: {kind: $kind, value: $value})
}"""
RETENTION = """mutation { applyRetention {
  ranAt events audit profiles identifiers messages conflicts
} }"""
AUDIT = """query($id: ID!) { auditLog(customerId: $id, first: 50) {
  edges { node { role fields } }
} }"""


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def api(store: str, tmp_path: Path) -> AsyncIterator[Api]:
    await wipe(store)
    async with serving(settings_for(store, tmp_path)) as client:
        await send(client.client, messages())
        yield client


async def customer(api: Api, kind: str, value: str) -> str | None:
    found = (await api(LOOKUP, {"kind": kind, "value": value}))["customer"]
    return found["id"] if found else None


async def ann(api: Api) -> str:
    found = await customer(api, "user_id", "ann-user-5521")
    assert found
    return found


async def test_the_export_holds_all_of_a_person_and_nothing_of_the_others(api: Api) -> None:
    ann_id = await ann(api)
    response = await api.post(EXPORT, {"id": ann_id})
    assert response.status_code == 200, response.text
    document = response.json()["data"]["dataSubjectExport"]
    assert list(document) == list(SECTIONS)
    assert document["customerId"] == ann_id
    identifiers = {(i["kind"], i["value"]) for i in document["identifiers"]}
    assert identifiers == {
        ("user_id", "ann-user-5521"),
        ("anonymous_id", "ann-anon-9c1f"),
        ("device_id", "ann-phone-device-77"),
        ("email", "annabel.erasable@example.com"),
        ("phone", "+14155550123"),
    }
    assert document["traits"]["name"] == "Annabel Erasable"
    assert document["traits"]["address"] == {"street": "Ann Street 9"}
    assert {t["name"] for t in document["traitHistory"]} >= {"email", "name", "phone"}
    events = document["events"]
    assert [e["id"] for e in events] == ["ann-4", "ann-3", "ann-1"]  # every one, newest first
    assert events[1]["properties"] == {"sku": "ann-sku-31337", "revenue": 42}
    assert [(c["purpose"], c["status"]) for c in document["consents"]["effective"]] == [
        ("advertising", "DENIED")
    ]
    assert [m["kind"] for m in document["mergeHistory"]] == ["MERGE"]
    [conflict] = document["conflicts"]
    assert conflict["dropped"] == [{"kind": "device_id"}]  # the tablet is Cy's
    # the export audits itself: its entry is the newest of the access log
    newest = document["accessLog"][0]
    assert newest["role"] == "admin" and newest["principal"]
    assert newest["fields"] == sorted(export.AUDITED_FIELDS)
    text = response.text
    assert [v for v in OTHERS_VALUES if v in text] == []
    assert "ann-sku-31337" in text and "/ann-private-path" in text


async def test_the_export_follows_an_absorbed_id_and_names_a_split_off_identifier_by_kind(
    api: Api,
) -> None:
    ann_id = await ann(api)
    document = (await api(EXPORT, {"id": ann_id}))["dataSubjectExport"]
    [merge] = document["mergeHistory"]
    absorbed = merge["absorbedId"] if merge["survivorId"] == ann_id else merge["survivorId"]
    assert absorbed and absorbed != ann_id
    via_absorbed = (await api(EXPORT, {"id": absorbed}))["dataSubjectExport"]
    assert via_absorbed["customerId"] == ann_id
    split = """mutation($id: ID!) { unmerge(customerId: $id,
      identifiers: [{kind: "device_id", value: "ann-phone-device-77"}]) { id } }"""
    await api(split, {"id": ann_id})
    after = (await api(EXPORT, {"id": ann_id}))["dataSubjectExport"]
    [record] = [m for m in after["mergeHistory"] if m["kind"] == "UNMERGE"]
    assert record["identifiers"] == [{"kind": "device_id"}]
    assert record["absorbedId"] is None  # the new profile is not Ann's any more
    assert "ann-phone-device-77" not in json.dumps(after)


async def test_support_may_export_and_sales_or_marketing_may_not(api: Api) -> None:
    ann_id = await ann(api)
    assert (await api(EXPORT, {"id": ann_id}, key=await api.key("support")))["dataSubjectExport"]
    for role in ("sales", "marketing", "analyst", "ingest"):
        response = await api.post(EXPORT, {"id": ann_id}, key=await api.key(role))
        assert response.status_code == 403, role
        assert codes(response.json()["errors"]) == ["FORBIDDEN"]
        assert "annabel" not in response.text.lower()


async def test_an_export_of_an_unknown_customer_or_too_many_events_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert codes(await api.errors(EXPORT, {"id": "no-such-customer"})) == ["NOT_FOUND"]
    monkeypatch.setattr(export, "GRAPHQL_MAX_EVENTS", 2)
    [error] = await api.errors(EXPORT, {"id": await ann(api)})
    assert error["extensions"]["code"] == "EXPORT_TOO_LARGE"
    assert "has 3 events" in error["message"] and "c360 privacy export" in error["message"]


async def test_erasure_leaves_no_lookup_and_is_audited(api: Api) -> None:
    ann_id = await ann(api)
    bob_id = await customer(api, "user_id", "bob-user-1")
    data = await api(ERASE, {"id": ann_id, "reason": "GDPR Art. 17 request #4411"})
    receipt = data["eraseCustomer"]
    assert receipt["customerId"] == ann_id
    assert (receipt["identifiers"], receipt["events"], receipt["suppressed"]) == (5, 3, 5)
    for kind, value in [
        ("user_id", "ann-user-5521"),
        ("email", "annabel.erasable@example.com"),
        ("anonymous_id", "ann-anon-9c1f"),
    ]:
        assert await customer(api, kind, value) is None
    gone = await api("query($id: ID!) { customer(id: $id) { id } }", {"id": ann_id})
    assert gone["customer"] is None
    assert await customer(api, "user_id", "bob-user-1") == bob_id
    [error] = await api.errors(EXPORT, {"id": ann_id})
    assert error["extensions"]["code"] == "NOT_FOUND" and "was erased" in error["message"]
    entries = (await api(AUDIT, {"id": ann_id}))["auditLog"]["edges"]
    assert {"role": "admin", "fields": ["eraseCustomer"]} in [e["node"] for e in entries]


async def test_erasure_errors_are_clear(api: Api) -> None:
    ann_id = await ann(api)
    unknown = await api.errors(ERASE, {"id": "no-such-customer", "reason": "request"})
    assert codes(unknown) == ["NOT_FOUND"]
    for reason in ("", "   ", "x" * 501):
        assert codes(await api.errors(ERASE, {"id": ann_id, "reason": reason})) == ["BAD_INPUT"]
    assert await customer(api, "user_id", "ann-user-5521") == ann_id  # refused: nothing gone
    receipt = (await api(ERASE, {"id": ann_id, "reason": "request"}))["eraseCustomer"]
    [again] = await api.errors(ERASE, {"id": ann_id, "reason": "request"})
    assert again["extensions"]["code"] == "INVALID_OPERATION"
    assert receipt["id"] in again["message"] and "was erased" in again["message"]
    sales = await api.post(ERASE, {"id": ann_id, "reason": "r"}, key=await api.key("support"))
    assert sales.status_code == 403


async def test_suppressions_are_listed_and_lifted(api: Api) -> None:
    ann_id = await ann(api)
    erased = (await api(ERASE, {"id": ann_id, "reason": "request"}))["eraseCustomer"]
    listed: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await api(SUPPRESSIONS, {"after": after}))["suppressions"]
        listed += [e["node"] for e in page["edges"]]
        assert page["totalCount"] == 5
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(s["kind"] for s in listed) == [
        "anonymous_id", "device_id", "email", "phone", "user_id"
    ]  # fmt: skip
    assert {s["erasureId"] for s in listed} == {erased["id"]}
    assert all(len(s["hash"]) == 64 and "ann" not in s["hash"] for s in listed)
    lift = {"kind": "email", "value": " Annabel.Erasable@Example.com "}
    assert (await api(UNSUPPRESS, lift))["unsuppress"] is True
    assert (await api(UNSUPPRESS, lift))["unsuppress"] is False
    page = (await api(SUPPRESSIONS, {"after": None}))["suppressions"]
    assert page["totalCount"] == 4
    await send(api.client, [{"type": "identify", "messageId": "new-1", "userId": "new-user",
                             "traits": {"email": "annabel.erasable@example.com"}}])  # fmt: skip
    assert await customer(api, "email", "annabel.erasable@example.com")
    assert codes(await api.errors(UNSUPPRESS, {"kind": "shoe", "value": "x"})) == ["UNKNOWN_KIND"]
    denied = await api.post(UNSUPPRESS, lift, key=await api.key("support"))
    assert denied.status_code == 403


async def test_unsuppress_is_audited(api: Api) -> None:
    await api(ERASE, {"id": await ann(api), "reason": "request"})
    await api(UNSUPPRESS, {"kind": "user_id", "value": "ann-user-5521"})
    found = await api("{ auditLog(first: 50) { edges { node { role fields } } } }")
    entries = [e["node"] for e in found["auditLog"]["edges"]]
    assert {"role": "admin", "fields": ["unsuppress:user_id"]} in entries


RETENTION_FILE = """\
[events]
days = 30
[events.by_category]
BEHAVIOURAL = 3650
"""


async def test_apply_retention_deletes_what_the_file_no_longer_keeps(
    store: str, tmp_path: Path
) -> None:
    policy = tmp_path / "retention.toml"
    policy.write_text(RETENTION_FILE)
    await wipe(store)
    async with serving(settings_for(store, tmp_path, retention_file=policy)) as api:
        old = {"type": "track", "userId": "old-user", "timestamp": "2020-01-01T00:00:00Z"}
        await send(api.client, [
            {**old, "messageId": "old-1", "event": "Page Viewed"},
            {**old, "messageId": "old-2", "event": "Order Completed"},
            {"type": "track", "userId": "old-user", "messageId": "new-1", "event": "Clicked"},
        ])  # fmt: skip
        events = """{ customer(identifier: {kind: "user_id", value: "old-user"})
          { events(first: 10) { edges { node { id } } } } }"""
        before = (await api(events))["customer"]["events"]["edges"]
        assert [e["node"]["id"] for e in before] == ["new-1", "old-2", "old-1"]
        report = (await api(RETENTION))["applyRetention"]
        assert report["events"] == 1
        assert set(report) == {
            "ranAt", "events", "audit", "profiles", "identifiers", "messages", "conflicts"
        }  # fmt: skip
        after = (await api(events))["customer"]["events"]["edges"]
        assert [e["node"]["id"] for e in after] == ["new-1", "old-2"]
        assert (await api(RETENTION))["applyRetention"]["events"] == 0
        support = await api.post(RETENTION, key=await api.key("support"))
        assert support.status_code == 403


async def test_the_server_runs_retention_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "retention.toml"
    policy.write_text("[events]\ndays = 30\n")
    monkeypatch.setattr(retention, "HOURLY", 0.05)
    async with serving(settings_for("embedded", tmp_path, retention_file=policy)) as api:
        old = {"userId": "u", "messageId": "old", "timestamp": "2020-01-01T00:00:00Z"}
        await send(api.client, [{"type": "track", "event": "Clicked", **old}])
        query = '{ customer(identifier: {kind: "user_id", value: "u"}) { events { totalCount } } }'
        for _ in range(200):
            if (await api(query))["customer"]["events"]["totalCount"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await api(query))["customer"]["events"]["totalCount"] == 0


async def test_a_failed_run_does_not_stop_the_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    services = build_services(Settings(data_dir=tmp_path / "data"))
    runs = 0

    async def flaky(_: object) -> Any:
        nonlocal runs
        runs += 1
        raise RuntimeError("store hiccup")

    monkeypatch.setattr(retention, "run_retention", flaky)
    async with retention.retention_schedule(services, every=0.01):
        for _ in range(200):
            if runs >= 3:
                break
            await asyncio.sleep(0.01)
    assert runs >= 3
    assert "retention run failed" in caplog.text


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("[events]\ndays = 0\n", "line 2: days must be a whole number of days"),
        ("[events]\nweeks = 3\n", "line 2: unknown setting events.weeks"),
        ("[events\n", "retention.toml"),
    ],
)
def test_a_bad_retention_file_stops_the_start(tmp_path: Path, text: str, found: str) -> None:
    policy = tmp_path / "retention.toml"
    policy.write_text(text)
    settings = Settings.from_env(
        {"C360_DATA_DIR": str(tmp_path / "data"), "C360_RETENTION_FILE": str(policy)}
    )
    assert settings.retention_file == policy
    with pytest.raises(ConfigError, match="C360_RETENTION_FILE") as raised:
        create_app(settings)
    assert found in str(raised.value)
    missing = Settings(data_dir=tmp_path / "data", retention_file=tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="none.toml"):
        build_services(missing)
