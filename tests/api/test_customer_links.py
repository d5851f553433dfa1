"""`Customer.links`: the links among a customer's identifiers, with their evidence, paged,
and their ends shown as the caller's role may see them."""

from __future__ import annotations

from tests.api.conftest import Api

QUERY = """query($id: ID!, $after: String) {
  customer(id: $id) { links(first: 2, after: $after) {
    from { kind value } to { kind value } messageId rule } }
}"""


async def test_links_are_paged_with_their_evidence(api: Api) -> None:
    data = await api(
        "mutation($m: [MessageInput!]!) { ingest(messages: $m) { customerId } }",
        {
            "m": [
                {"type": "IDENTIFY", "messageId": "k1", "userId": "lnk", "anonymousId": "a-1"},
                {"type": "IDENTIFY", "messageId": "k2", "userId": "lnk", "anonymousId": "a-2"},
                {
                    "type": "IDENTIFY",
                    "messageId": "k3",
                    "userId": "lnk",
                    "traits": {"email": "links@example.com"},
                },
            ]
        },
    )
    pid = data["ingest"][0]["customerId"]
    first = (await api(QUERY, {"id": pid}))["customer"]["links"]
    rest = (await api(QUERY, {"id": pid, "after": "2"}))["customer"]["links"]
    assert len(first) == 2 and len(rest) == 1
    ends = {(x["from"]["value"], x["to"]["value"]) for x in first + rest}
    assert ends == {("a-1", "lnk"), ("a-2", "lnk"), ("links@example.com", "lnk")}
    assert {x["messageId"] for x in first + rest} == {"k1", "k2", "k3"}
    for after in ("x", "²", "-1"):
        bad = await api.post(QUERY, {"id": pid, "after": after})
        assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT", after
