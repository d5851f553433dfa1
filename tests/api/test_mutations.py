"""Writing through the API: ingest batches, undo and split merges, API keys."""

from __future__ import annotations

from tests.api.conftest import ADMIN_KEY, Api, codes

INGEST = """mutation($messages: [MessageInput!]!) { ingest(messages: $messages) {
  messageId status customerId merges conflict } }"""
PROFILE = """query($id: ID!) { customer(id: $id) { id identifiers { kind value } } }"""


async def test_ingest_batch_is_idempotent(api: Api) -> None:
    messages = [
        {
            "type": "IDENTIFY",
            "userId": "u1",
            "anonymousId": "a1",
            "messageId": "m1",
            "traits": {"email": "j@example.com"},
        },
        {"type": "TRACK", "anonymousId": "a1", "event": "Signed Up", "messageId": "m2"},
        {"type": "PAGE", "anonymousId": "a1", "event": "Pricing"},
        {"type": "IDENTIFY", "userId": "null"},
    ]
    results = (await api(INGEST, {"messages": messages}))["ingest"]
    assert [r["status"] for r in results] == ["applied", "applied", "applied", "dropped"]
    assert len({r["customerId"] for r in results[:3]}) == 1
    assert results[2]["messageId"]
    again = (await api(INGEST, {"messages": messages[:2]}))["ingest"]
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    data = await api(PROFILE, {"id": results[0]["customerId"]})
    assert len(data["customer"]["identifiers"]) == 3


async def test_bad_message_names_its_index_and_writes_nothing(api: Api) -> None:
    messages = [
        {"type": "IDENTIFY", "userId": "u1"},
        {"type": "IDENTIFY", "identifiers": [{"kind": "email", "value": "nope"}]},
    ]
    errors = await api.errors(INGEST, {"messages": messages})
    assert codes(errors) == ["INVALID_IDENTIFIER"]
    assert errors[0]["message"].startswith("messages[1]: identifiers[0].value: invalid email")
    data = await api("{ customers { totalCount } }")
    assert data["customers"]["totalCount"] == 0
    cases = [
        ({"type": "TRACK", "userId": "u1"}, "BAD_INPUT"),
        ({"type": "IDENTIFY"}, "BAD_INPUT"),
        ({"type": "IDENTIFY", "userId": "u1", "traits": [1]}, "BAD_INPUT"),
        ({"type": "IDENTIFY", "identifiers": [{"kind": "shoe", "value": "9"}]}, "UNKNOWN_KIND"),
        ({"type": "IDENTIFY", "userId": "u1", "messageId": "x" * 300}, "BAD_INPUT"),
    ]
    for message, code in cases:
        assert codes(await api.errors(INGEST, {"messages": [message]})) == [code], message


async def test_blocked_values_are_dropped_not_errors(api: Api) -> None:
    messages = [
        {"type": "IDENTIFY", "identifiers": [{"kind": "email", "value": "null"}]},
        {"type": "IDENTIFY", "userId": "0", "traits": {"email": "undefined", "phone": "none"}},
        {"type": "TRACK", "anonymousId": "[object Object]", "event": "Order Completed"},
    ]
    results = (await api(INGEST, {"messages": messages}))["ingest"]
    assert [r["status"] for r in results] == ["dropped"] * 3
    track = 'mutation { track(input: {userId: "undefined", event: "X"}) { status } }'
    assert (await api(track))["track"]["status"] == "dropped"
    data = await api("{ customers { totalCount } }")
    assert data["customers"]["totalCount"] == 0


async def test_undo_merge_and_unmerge(api: Api) -> None:
    first = (
        await api(
            INGEST,
            {
                "messages": [
                    {"type": "IDENTIFY", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"},
                    {"type": "IDENTIFY", "anonymousId": "a2", "timestamp": "2024-01-02T00:00:00Z"},
                    {
                        "type": "IDENTIFY",
                        "userId": "u1",
                        "anonymousId": "a2",
                        "timestamp": "2024-01-03T00:00:00Z",
                    },
                ]
            },
        )
    )["ingest"]
    survivor, absorbed = first[0]["customerId"], first[1]["customerId"]
    [merge_id] = first[2]["merges"]
    undo = """mutation($id: ID!) {
      undoMerge(mergeId: $id) { kind undoes survivorId absorbedId } }"""
    record = (await api(undo, {"id": merge_id}))["undoMerge"]
    assert record["kind"] == "UNDO" and record["undoes"] == merge_id
    assert (await api(PROFILE, {"id": absorbed}))["customer"]["id"] == absorbed
    assert codes(await api.errors(undo, {"id": merge_id})) == ["INVALID_OPERATION"]
    assert codes(await api.errors(undo, {"id": "no-such-merge"})) == ["NOT_FOUND"]

    await api(
        INGEST,
        {
            "messages": [
                {
                    "type": "IDENTIFY",
                    "userId": "u1",
                    "anonymousId": "a9",
                    "traits": {"email": "j@example.com"},
                }
            ]
        },
    )
    split = """mutation($id: ID!, $ids: [IdentifierInput!]!) {
      unmerge(customerId: $id, identifiers: $ids) { kind survivorId absorbedId
      identifiers { kind value } } }"""
    record = (
        await api(split, {"id": survivor, "ids": [{"kind": "email", "value": "J@example.com"}]})
    )["unmerge"]
    assert record["kind"] == "UNMERGE" and record["survivorId"] == survivor
    moved = (await api(PROFILE, {"id": record["absorbedId"]}))["customer"]["identifiers"]
    assert moved == [{"kind": "email", "value": "j@example.com"}]
    errors = await api.errors(split, {"id": survivor, "ids": [{"kind": "user_id", "value": "zz"}]})
    assert codes(errors) == ["INVALID_OPERATION"]
    errors = await api.errors(split, {"id": "nobody", "ids": [{"kind": "user_id", "value": "u1"}]})
    assert codes(errors) == ["NOT_FOUND"]


async def test_create_and_revoke_api_key(api: Api) -> None:
    created = (
        await api(
            'mutation { createApiKey(role: "support", name: "helpdesk")'
            " { id key role name createdAt } }"
        )
    )["createApiKey"]
    assert created["key"].startswith("c360_") and len(created["key"]) > 40
    assert (created["role"], created["name"]) == ("support", "helpdesk")
    data = await api("{ customers { totalCount } }", key=created["key"])
    assert data["customers"]["totalCount"] == 0
    revoke = "mutation($id: ID!) { revokeApiKey(id: $id) }"
    assert (await api(revoke, {"id": created["id"]}))["revokeApiKey"] is True
    response = await api.post("{ customers { totalCount } }", key=created["key"])
    assert response.status_code == 401
    assert codes(await api.errors(revoke, {"id": "no-such-key"})) == ["NOT_FOUND"]
    errors = await api.errors('mutation { createApiKey(role: "overlord") { key } }')
    assert codes(errors) == ["BAD_INPUT"] and "unknown role" in errors[0]["message"]


async def test_admin_only_mutations_forbidden_to_others(api: Api) -> None:
    support = await api.key("support")
    for mutation in (
        'mutation { createApiKey(role: "admin") { key } }',
        'mutation { revokeApiKey(id: "x") }',
        'mutation { undoMerge(mergeId: "x") { id } }',
        'mutation { unmerge(customerId: "x", identifiers: []) { id } }',
        'mutation { identify(input: {userId: "u1"}) { status } }',
    ):
        errors = await api.errors(mutation, key=support)
        assert codes(errors) == ["FORBIDDEN"], mutation
    assert ADMIN_KEY
