"""Reading customers: by id, by identifier, in pages, with traits, events and history."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, codes

IDENTIFY = """mutation($input: IdentifyInput!) { identify(input: $input) {
  customerId status merges } }"""
TRACK = """mutation($input: TrackInput!) { track(input: $input) { customerId status } }"""


async def identify(api: Api, **fields: Any) -> dict[str, Any]:
    data = await api(IDENTIFY, {"input": fields})
    result: dict[str, Any] = data["identify"]
    return result


async def test_profile_query(api: Api) -> None:
    created = await identify(
        api,
        userId="u1",
        anonymousId="a1",
        traits={
            "email": "jane@example.com",
            "firstName": "Jane",
            "age": 41,
            "company": {"name": "Acme"},
            "address": {"city": "Leeds", "postalCode": "LS1"},
            "plan": "pro",
        },
        timestamp="2024-01-01T10:00:00Z",
        source="crm",
    )
    await api(
        TRACK,
        {
            "input": {
                "userId": "u1",
                "event": "Order Completed",
                "properties": {"total": 12.5},
                "category": "BEHAVIOURAL",
                "messageId": "m-order",
                "timestamp": "2024-01-02T10:00:00Z",
            }
        },
    )
    await api(
        TRACK,
        {
            "input": {
                "anonymousId": "a1",
                "event": "Home",
                "type": "PAGE",
                "timestamp": "2024-01-03T10:00:00Z",
            }
        },
    )
    data = await api(
        """query($id: ID!) { customer(id: $id) {
          id createdAt
          identifiers { kind value firstSeen lastSeen sources }
          traits { firstName email age company createdAt address { city postalCode } custom }
          traitHistory(name: "firstName") { value source observedAt }
          events { totalCount edges { cursor node { id type name category properties } } }
          mergeHistory { id } conflicts { id } consents { purpose }
        } }""",
        {"id": created["customerId"]},
    )
    customer = data["customer"]
    assert customer["id"] == created["customerId"]
    assert {(i["kind"], i["value"]) for i in customer["identifiers"]} == {
        ("user_id", "u1"),
        ("anonymous_id", "a1"),
        ("email", "jane@example.com"),
    }
    assert customer["identifiers"][0]["sources"] in (["crm"], ["crm", "graphql"])
    assert customer["traits"] == {
        "firstName": "Jane",
        "email": "jane@example.com",
        "age": 41,
        "company": "Acme",
        "createdAt": None,
        "address": {"city": "Leeds", "postalCode": "LS1"},
        "custom": {"plan": "pro"},
    }
    assert customer["traitHistory"] == [
        {"value": "Jane", "source": "crm", "observedAt": "2024-01-01T10:00:00+00:00"}
    ]
    events = customer["events"]
    assert events["totalCount"] == 2
    assert [e["node"]["type"] for e in events["edges"]] == ["PAGE", "TRACK"]
    order = events["edges"][1]["node"]
    assert order == {
        "id": "m-order",
        "type": "TRACK",
        "name": "Order Completed",
        "category": "BEHAVIOURAL",
        "properties": {"total": 12.5},
    }
    assert customer["mergeHistory"] == [] and customer["conflicts"] == []


async def test_events_page_newest_first_with_cursor_and_types(api: Api) -> None:
    for day in range(1, 6):
        await api(
            TRACK,
            {
                "input": {
                    "userId": "u1",
                    "event": f"e{day}",
                    "timestamp": f"2024-01-0{day}T00:00:00Z",
                }
            },
        )
    await api(
        TRACK,
        {
            "input": {
                "userId": "u1",
                "event": "p",
                "type": "PAGE",
                "timestamp": "2024-01-09T00:00:00Z",
            }
        },
    )
    query = """query($after: String, $types: [EventType!]) {
      customer(identifier: {kind: "user_id", value: "u1"}) {
        events(first: 2, after: $after, types: $types) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } } }"""
    first = (await api(query, {"types": ["TRACK"]}))["customer"]["events"]
    assert first["totalCount"] == 5
    assert [e["node"]["name"] for e in first["edges"]] == ["e5", "e4"]
    assert first["pageInfo"]["hasNextPage"] is True
    after = first["pageInfo"]["endCursor"]
    second = (await api(query, {"types": ["TRACK"], "after": after}))["customer"]["events"]
    assert [e["node"]["name"] for e in second["edges"]] == ["e3", "e2"]
    everything = (await api(query))["customer"]["events"]
    assert [e["node"]["name"] for e in everything["edges"]] == ["p", "e5"]
    counted = (
        await api(
            """{ customer(identifier: {kind: "user_id", value: "u1"}) {
              events(first: 0) { totalCount pageInfo { hasNextPage endCursor } edges { cursor } }
            } }"""
        )
    )["customer"]["events"]
    assert counted == {
        "totalCount": 6,
        "pageInfo": {"hasNextPage": True, "endCursor": None},
        "edges": [],
    }


async def test_lookup_by_email_is_normalised(api: Api) -> None:
    created = await identify(api, userId="u1", traits={"email": "Jane.Doe@Example.COM"})
    for value in ("jane.doe@example.com", "  JANE.DOE@example.com "):
        data = await api(
            """query($v: String!) { customer(identifier: {kind: "email", value: $v}) { id } }""",
            {"v": value},
        )
        assert data["customer"] == {"id": created["customerId"]}


async def test_lookup_by_phone_is_normalised(api: Api) -> None:
    created = await identify(api, userId="u1", traits={"phone": "(415) 555-0134"})
    data = await api('{ customer(identifier: {kind: "phone", value: "+1 415 555 0134"}) { id } }')
    assert data["customer"] == {"id": created["customerId"]}


async def test_unknown_customer_is_null(api: Api) -> None:
    data = await api(
        '{ a: customer(id: "nope") { id } '
        'b: customer(identifier: {kind: "email", value: "x@y.zz"}) { id } }'
    )
    assert data == {"a": None, "b": None}


async def test_absorbed_id_resolves_to_survivor(api: Api) -> None:
    older = await identify(api, userId="u1", anonymousId="a1", timestamp="2024-01-01T00:00:00Z")
    newer = await identify(
        api, anonymousId="a2", traits={"email": "j@example.com"}, timestamp="2024-01-02T00:00:00Z"
    )
    joined = await identify(api, anonymousId="a2", userId="u1", timestamp="2024-01-03T00:00:00Z")
    assert joined["customerId"] == older["customerId"]
    assert len(joined["merges"]) == 1
    data = await api(
        """query($id: ID!) { customer(id: $id) { id
        identifiers { value } mergeHistory { kind survivorId absorbedId
        links { from { kind value } to { kind value } rule } } } }""",
        {"id": newer["customerId"]},
    )
    customer = data["customer"]
    assert customer["id"] == older["customerId"]
    assert len(customer["identifiers"]) == 4
    [merge] = customer["mergeHistory"]
    assert merge["kind"] == "MERGE"
    assert (merge["survivorId"], merge["absorbedId"]) == (older["customerId"], newer["customerId"])
    assert merge["links"][0]["rule"] == "co-observed:identify"


async def test_explain_link(api: Api) -> None:
    await identify(api, userId="u1", anonymousId="a1", messageId="m1", source="web")
    await identify(api, anonymousId="a1", traits={"email": "j@example.com"}, messageId="m2")
    await identify(api, userId="u2")
    query = """query($a: IdentifierInput!, $b: IdentifierInput!) { explainLink(a: $a, b: $b) {
        linked customerId path { from { kind value } to { kind value } source messageId
        observedAt rule } } }"""
    data = await api(
        query,
        {"a": {"kind": "user_id", "value": "u1"}, "b": {"kind": "email", "value": "J@Example.com"}},
    )
    explanation = data["explainLink"]
    assert explanation["linked"] is True and explanation["customerId"]
    assert [p["messageId"] for p in explanation["path"]] == ["m1", "m2"]
    assert explanation["path"][0]["source"] == "web"
    unlinked = await api(
        query, {"a": {"kind": "user_id", "value": "u1"}, "b": {"kind": "user_id", "value": "u2"}}
    )
    assert unlinked["explainLink"] == {"linked": False, "customerId": None, "path": []}
    missing = await api.errors(
        query,
        {"a": {"kind": "user_id", "value": "u1"}, "b": {"kind": "user_id", "value": "nobody"}},
    )
    assert codes(missing) == ["NOT_FOUND"]


async def test_customers_connection_pages_and_filters(api: Api) -> None:
    ids = set()
    for n in range(5):
        traits = {"plan": "pro" if n % 2 else "free"}
        if n < 2:
            traits["email"] = f"p{n}@example.com"
        ids.add((await identify(api, userId=f"u{n}", traits=traits))["customerId"])
    query = """query($first: Int, $after: String, $where: CustomerFilter) {
      customers(first: $first, after: $after, where: $where) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await api(query, {"first": 2, "after": after}))["customers"]
        assert page["totalCount"] == 5
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(ids)
    emails = (await api(query, {"where": {"hasKind": "email"}}))["customers"]
    assert emails["totalCount"] == 2
    pro = (await api(query, {"where": {"trait": {"name": "plan", "value": "pro"}}}))["customers"]
    assert pro["totalCount"] == 2
    one = await api(query, {"where": {"identifier": {"kind": "email", "value": "P1@example.com"}}})
    assert one["customers"]["totalCount"] == 1


async def test_page_size_cap(api: Api) -> None:
    errors = await api.errors("{ customers(first: 101) { totalCount } }")
    assert codes(errors) == ["BAD_INPUT"] and "at most 100" in errors[0]["message"]
    errors = await api.errors("{ customers(first: -1) { totalCount } }")
    assert codes(errors) == ["BAD_INPUT"]
    await identify(api, userId="u1")
    errors = await api.errors(
        '{ customer(identifier: {kind: "user_id", value: "u1"}) { events(first: 500) '
        "{ totalCount } } }"
    )
    assert codes(errors) == ["BAD_INPUT"]


async def test_bad_lookups_have_codes(api: Api) -> None:
    cases = {
        '{ customer(identifier: {kind: "shoe_size", value: "9"}) { id } }': "UNKNOWN_KIND",
        '{ customer(identifier: {kind: "email", value: "bad"}) { id } }': "INVALID_IDENTIFIER",
        "{ customer { id } }": "BAD_INPUT",
        '{ customer(id: "x", identifier: {kind: "user_id", value: "u"}) { id } }': "BAD_INPUT",
        '{ customers(where: {hasKind: "shoe_size"}) { totalCount } }': "UNKNOWN_KIND",
        '{ customers(where: {consentGranted: "spam"}) { totalCount } }': "BAD_INPUT",
        "{ customer(id: 5) { nope } }": "BAD_REQUEST",
    }
    for query, code in cases.items():
        errors = await api.errors(query)
        assert codes(errors) == [code], query
    errors = await api.errors('{ customer(identifier: {kind: "shoe_size", value: "9"}) { id } }')
    assert "known kinds" in errors[0]["message"]
