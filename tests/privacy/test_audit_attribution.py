"""A clear read of an identifier is audited against the customer who holds it now: not the
merge record's survivor (after an undo or a split the identifier may be someone else's), nor
a conflict's profile (its dropped identifiers went elsewhere, or nowhere)."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.privacy.conftest import IDENTIFY
from tests.privacy.test_audit import audit_log

USER = {"kind": "user_id", "value": "u-attr-1"}
ANON = {"kind": "anonymous_id", "value": "anon-attr-2"}
DEVICE = {"kind": "device_id", "value": "dev-attr-3"}
CRM = {"kind": "crm_id", "value": "crm-attr-4"}
CRM_HELD = {"kind": "crm_id", "value": "crm-attr-0"}
REF = "{ kind value }"
LINKS = f"links {{ from {REF} to {REF} }} identifiers {REF}"


async def identify(api: Api, *identifiers: dict[str, str], at: str) -> str:
    variables = {"input": {"identifiers": list(identifiers), "timestamp": at}}
    customer: str = (await api(IDENTIFY, variables))["identify"]["customerId"]
    return customer


async def holder(api: Api, identifier: dict[str, str]) -> str:
    query = "query($i: IdentifierInput!) { customer(identifier: $i) { id } }"
    customer: str = (await api(query, {"i": identifier}))["customer"]["id"]
    return customer


async def fields_read(api: Api, customer: str) -> set[str]:
    """Every field the audit log says was read clear of this customer."""
    log = await audit_log(api, customer)
    return {f for edge in log["edges"] for f in edge["node"]["fields"]}


async def merged(api: Api) -> tuple[str, str]:
    """One customer made of two (user id; anonymous and device id): it and its merge's id."""
    await identify(api, USER, at="2024-03-01T09:00:00Z")
    await identify(api, ANON, DEVICE, at="2024-03-02T09:00:00Z")
    customer = await identify(api, USER, ANON, at="2024-03-03T09:00:00Z")
    query = "query($id: ID!) { customer(id: $id) { mergeHistory { id kind } } }"
    [record] = (await api(query, {"id": customer}))["customer"]["mergeHistory"]
    assert record["kind"] == "MERGE"
    return customer, str(record["id"])


async def test_an_undo_records_identifiers_are_audited_against_their_holders(api: Api) -> None:
    _, merge_id = await merged(api)
    undo = f"mutation($id: ID!) {{ undoMerge(mergeId: $id) {{ survivorId {LINKS} }} }}"
    record = (await api(undo, {"id": merge_id}))["undoMerge"]
    assert {record["links"][0]["from"]["value"], record["links"][0]["to"]["value"]} == {
        USER["value"],
        ANON["value"],
    }
    user_holder, anon_holder = await holder(api, USER), await holder(api, ANON)
    assert user_holder != anon_holder
    assert "IdentifierRef.value:anonymous_id" in await fields_read(api, anon_holder)
    assert "IdentifierRef.value:user_id" not in await fields_read(api, anon_holder)
    assert "IdentifierRef.value:user_id" in await fields_read(api, user_holder)
    assert "IdentifierRef.value:anonymous_id" not in await fields_read(api, user_holder)


async def test_history_read_later_is_audited_against_todays_holders(api: Api) -> None:
    _, merge_id = await merged(api)
    await api("mutation($id: ID!) { undoMerge(mergeId: $id) { id } }", {"id": merge_id})
    user_holder, anon_holder = await holder(api, USER), await holder(api, ANON)
    history = f"query($id: ID!) {{ customer(id: $id) {{ mergeHistory {{ kind {LINKS} }} }} }}"
    for reader in (user_holder, anon_holder):
        records = (await api(history, {"id": reader}))["customer"]["mergeHistory"]
        assert "UNDO" in [r["kind"] for r in records]
    anon_fields = await fields_read(api, anon_holder)
    user_fields = await fields_read(api, user_holder)
    assert {"IdentifierRef.value:anonymous_id", "IdentifierRef.value:device_id"} <= anon_fields
    assert "IdentifierRef.value:user_id" not in anon_fields
    assert "IdentifierRef.value:user_id" in user_fields
    assert not {"IdentifierRef.value:anonymous_id", "IdentifierRef.value:device_id"} & user_fields


async def test_a_splits_identifiers_are_audited_against_the_new_customer(api: Api) -> None:
    customer, _ = await merged(api)
    split = """mutation($id: ID!, $ids: [IdentifierInput!]!) {
      unmerge(customerId: $id, identifiers: $ids) { survivorId absorbedId identifiers %s } }"""
    record = (await api(split % REF, {"id": customer, "ids": [DEVICE]}))["unmerge"]
    assert record["identifiers"] == [DEVICE]
    split_off = await holder(api, DEVICE)
    assert split_off == record["absorbedId"] != customer
    assert "IdentifierRef.value:device_id" in await fields_read(api, split_off)
    assert "IdentifierRef.value:device_id" not in await fields_read(api, customer)


@pytest.mark.parametrize("held", [True, False], ids=["held-elsewhere", "held-by-no-one"])
async def test_a_conflicts_dropped_identifiers_are_audited_against_their_holder(
    api: Api, held: bool
) -> None:
    customer = await identify(api, USER, CRM_HELD, at="2024-03-01T09:00:00Z")
    if held:
        await identify(api, ANON, CRM, at="2024-03-01T10:00:00Z")
    # crm_id has a limit of one: the customer's second one is dropped
    assert await identify(api, USER, CRM, at="2024-03-03T09:00:00Z") == customer
    query = f"query($id: ID!) {{ customer(id: $id) {{ conflicts {{ dropped {REF} }} }} }}"
    [conflict] = (await api(query, {"id": customer}))["customer"]["conflicts"]
    assert conflict["dropped"] == [CRM]
    read = "IdentifierRef.value:crm_id"
    if held:
        crm_holder = await holder(api, CRM)
        assert crm_holder != customer
        assert read in await fields_read(api, crm_holder)
        assert read not in await fields_read(api, customer)
    else:
        # a dropped identifier no profile holds: attributed to the conflict's customer
        assert read in await fields_read(api, customer)


async def test_an_explained_path_is_audited_against_its_holder(api: Api) -> None:
    customer, _ = await merged(api)
    explain = """query($a: IdentifierInput!, $b: IdentifierInput!) {
      explainLink(a: $a, b: $b) { linked path { from { kind value } to { kind value } } } }"""
    found = (await api(explain, {"a": USER, "b": DEVICE}))["explainLink"]
    assert found["linked"] and len(found["path"]) == 2
    assert {"IdentifierRef.value:user_id", "IdentifierRef.value:device_id"} <= await fields_read(
        api, customer
    )
