"""Merge records name no operator to customers' readers: the kind of actor for every role,
the key id for admins only, and nothing derived from a secret (before: `key:bootstrap-<first
16 hex of sha256(admin key)>` or `jwt:<sub>` in `messageId`, readable by every role)."""

from __future__ import annotations

import hashlib

from tests.api.conftest import ADMIN_KEY, Api

IDENTIFY = "mutation($input: IdentifyInput!) { identify(input: $input) { customerId merges } }"
HISTORY = """query($id: ID!) { customer(id: $id) {
    mergeHistory { kind actor messageId operatorId } } }"""


async def test_an_undo_records_an_operator_not_a_secret(api: Api) -> None:
    await api(IDENTIFY, {"input": {"anonymousId": "a-op", "messageId": "m1"}})
    await api(IDENTIFY, {"input": {"userId": "u-op", "messageId": "m2"}})
    joined = await api(
        IDENTIFY, {"input": {"anonymousId": "a-op", "userId": "u-op", "messageId": "m3"}}
    )
    merge_id = joined["identify"]["merges"][0]
    await api("mutation($id: ID!) { undoMerge(mergeId: $id) { id } }", {"id": merge_id})
    customer = joined["identify"]["customerId"]

    as_admin = (await api(HISTORY, {"id": customer}))["customer"]["mergeHistory"]
    assert [r["kind"] for r in as_admin] == ["MERGE", "UNDO"]
    merge, undo = as_admin
    assert merge == {"kind": "MERGE", "actor": "MESSAGE", "messageId": "m3", "operatorId": None}
    assert undo["actor"] == "OPERATOR" and undo["messageId"] is None
    assert undo["operatorId"].startswith("key:")
    secret_digest = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    assert secret_digest[:8] not in undo["operatorId"]

    support = await api.key("support")
    as_support = (await api(HISTORY, {"id": customer}, key=support))["customer"]["mergeHistory"]
    assert as_support[1] == {
        "kind": "UNDO",
        "actor": "OPERATOR",
        "messageId": None,
        "operatorId": None,
    }
