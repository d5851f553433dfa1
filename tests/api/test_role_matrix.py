"""Every role against every operation, over HTTP, as the schema declares it.

The operations are read from the exported SDL, so a new Query or Mutation field joins the
matrix by itself: it fails until it declares `@requiresRole` and has an entry in
`ARGUMENTS`. Each case sends a minimal valid document (the arguments from `ARGUMENTS`,
filled in with a seeded customer, merge and key; the selection built from the field's type)
and checks the answer against the declared roles: allowed, HTTP 200 and no FORBIDDEN;
denied, 403 FORBIDDEN (401 UNAUTHENTICATED without credentials) and no data.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import Any

import graphql
import jwt
import pytest

from graph_api.access.auth import ROLES
from graph_api.schema import export_schema
from tests.api.conftest import ADMIN_KEY, JWT_CLAIMS, JWT_SECRET, Api, codes

ARGUMENTS = {
    "customer": 'id: "{customer}"',
    "customers": "first: 1",
    "auditLog": "first: 1",
    "apiKeys": "first: 1",
    "explainLink": 'a: {{kind: "email", value: "{email}"}}, b: {{kind: "phone", value: "{phone}"}}',
    "identify": 'input: {{userId: "u-matrix", traits: {{plan: "pro"}}}}',
    "track": 'input: {{event: "Viewed", userId: "u-matrix"}}',
    "ingest": 'messages: [{{type: IDENTIFY, userId: "u-matrix"}}]',
    "undoMerge": 'mergeId: "{merge}"',
    "unmerge": 'customerId: "{customer}",'
    ' identifiers: [{{kind: "anonymous_id", value: "{anonymous_id}"}}]',
    "setConsent": 'customerId: "{customer}", choices: [{{purpose: "analytics", status: GRANTED}}]',
    "createApiKey": 'role: "support", expiresAt: "2999-01-01T00:00:00Z"',
    "revokeApiKey": 'id: "{key}"',
    "dataSubjectExport": 'customerId: "{customer}"',
    "suppressions": "first: 1",
    "eraseCustomer": 'customerId: "{customer}", reason: "role matrix"',
    "unsuppress": 'identifier: {{kind: "email", value: "{email}"}}',
    "applyRetention": "",
    "computedTraits": "",
    "audiences": "",
    "audience": 'id: "{audience}"',
    "audienceChanges": 'audienceId: "{audience}", first: 1',
    "explainMembership": 'customerId: "{customer}", audienceId: "{audience}"',
    "defineComputedTrait": 'name: "orders", definition: {{kind: "event_count", event: "Ordered"}}',
    "deleteComputedTrait": 'name: "{computed_trait}"',
    "defineAudience": 'name: "pro", condition: {{trait: {{name: "plan", op: "eq", value: "x"}}}}',
    "deleteAudience": 'id: "{audience}"',
    "destinations": "",
    "createDestination": 'name: "crm", url: "https://hooks.example.com/c360",'
    ' audienceIds: ["{audience}"]',
    "updateDestination": 'id: "{destination}", enabled: false',
    "rotateDestinationSecret": 'id: "{destination}"',
    "deleteDestination": 'id: "{destination}"',
    "redeliver": 'deliveryId: "{delivery}"',
}
"""the arguments of each operation, as GraphQL text; `{name}` is filled in from the seed"""

REFUSED_BY_KIND = {"explainLink": {"marketing", "analyst"}}
"""operations a role may run that the PII guard then refuses for every identifier kind the
role does not read clear (no kind, for these roles under the default policy): 403 FORBIDDEN
naming the kind, never the operation"""

NO_ROLE_JWTS = {"jwt without a known role": ["overlord"], "jwt without roles": []}
CALLERS = (*sorted(ROLES), *NO_ROLE_JWTS, "no credentials")


@dataclass(frozen=True)
class Operation:
    kind: str
    """`query` or `mutation`"""
    name: str
    field: graphql.GraphQLField
    roles: frozenset[str] | None
    """from `@requiresRole`; None if the field declares none"""

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}"


@functools.cache
def sdl() -> graphql.GraphQLSchema:
    return graphql.build_schema(export_schema())


def declared_roles(field: graphql.GraphQLField) -> frozenset[str] | None:
    assert field.ast_node is not None
    for directive in field.ast_node.directives or ():
        if directive.name.value == "requiresRole":
            [argument] = directive.arguments
            assert isinstance(argument.value, graphql.ListValueNode)
            return frozenset(
                v.value for v in argument.value.values if isinstance(v, graphql.StringValueNode)
            )
    return None


def operations() -> list[Operation]:
    schema = sdl()
    found = []
    for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            found.append(Operation(kind, name, field, declared_roles(field)))
    return found


def selection(field: graphql.GraphQLField) -> str:
    named = graphql.get_named_type(field.type)
    return "" if graphql.is_leaf_type(named) else " { __typename }"


def document(operation: Operation, seed: dict[str, str]) -> str:
    """The operation with its arguments from `ARGUMENTS`; fails for an operation without an
    entry, or with one the schema does not accept."""
    if operation.name not in ARGUMENTS:
        pytest.fail(f"{operation} has no entry in ARGUMENTS: add its argument values")
    arguments = ARGUMENTS[operation.name].format(**seed)
    text = f"{operation.kind} {{ {operation.name}"
    text += f"({arguments})" if arguments else ""
    text += selection(operation.field) + " }"
    problems = graphql.validate(sdl(), graphql.parse(text))
    assert not problems, f"{operation}: ARGUMENTS gives an invalid document: {problems}"
    return text


async def seed(api: Api) -> dict[str, str]:
    """A customer made of two merged profiles (a merge to undo, an identifier to split off),
    an API key to revoke, a computed trait, an audience and a destination, made by the
    admin."""
    first = "mutation($input: IdentifyInput!) { identify(input: $input) { customerId } }"
    contact = {"email": "seed@example.com", "phone": "+14155550100"}
    await api(first, {"input": {"userId": "u-seed", "traits": contact}})
    await api(first, {"input": {"anonymousId": "a-seed"}})
    merged = await api(first, {"input": {"userId": "u-seed", "anonymousId": "a-seed"}})
    customer = merged["identify"]["customerId"]
    history = await api(
        "query($id: ID!) { customer(id: $id) { mergeHistory { id kind } } }", {"id": customer}
    )
    [merge] = [r["id"] for r in history["customer"]["mergeHistory"] if r["kind"] == "MERGE"]
    made = await api('mutation { createApiKey(role: "analyst", name: "to revoke") { id } }')
    trait = 'defineComputedTrait(name: "seen", definition: {kind: "event_count"}) { name }'
    await api(f"mutation {{ {trait} }}")
    emailed = 'defineAudience(name: "emailed", condition: {identifier: {kind: "email"}}) { id }'
    audience = await api(f"mutation {{ {emailed} }}")
    aid = audience["defineAudience"]["id"]
    hooks = f'name: "seed", url: "https://hooks.example.com/seed", audienceIds: ["{aid}"]'
    destination = await api(f"mutation {{ createDestination({hooks}) {{ destination {{ id }} }} }}")
    await api(first, {"input": {"userId": "u-seed-2", "traits": {"email": "two@example.com"}}})
    delivery = await first_delivery(api)
    return {
        "delivery": delivery,
        "destination": destination["createDestination"]["destination"]["id"],
        "customer": customer,
        "merge": merge,
        "key": made["createApiKey"]["id"],
        "audience": audience["defineAudience"]["id"],
        "computed_trait": "seen",
        "anonymous_id": "a-seed",
        **contact,
    }


async def first_delivery(api: Api) -> str:
    """The id of the seed destination's first delivery, once the audience engine made it."""
    query = "{ destinations { deliveries(first: 1) { edges { node { id } } } } }"
    for _ in range(200):
        [destination] = (await api(query))["destinations"]
        edges = destination["deliveries"]["edges"]
        if edges:
            return str(edges[0]["node"]["id"])
        await asyncio.sleep(0.05)
    pytest.fail("the seed destination got no delivery within 10 s")


async def credentials(api: Api, caller: str) -> str | None:
    if caller == "admin":
        return ADMIN_KEY
    if caller in ROLES:
        return await api.key(caller)
    if caller in NO_ROLE_JWTS:
        claims = {"sub": "matrix", "roles": NO_ROLE_JWTS[caller], "exp": int(time.time()) + 600}
        return jwt.encode({**claims, **JWT_CLAIMS}, JWT_SECRET, algorithm="HS256")
    return None


def test_every_operation_declares_its_roles() -> None:
    """A root field without `@requiresRole` fails here, as well as in each of its cases."""
    undeclared = [str(o) for o in operations() if o.roles is None]
    assert undeclared == []
    assert {o.name for o in operations()} == set(ARGUMENTS), "ARGUMENTS names no such field"


@pytest.mark.parametrize("operation", operations(), ids=str)
async def test_a_caller_may_run_an_operation_only_if_its_role_is_declared(
    api: Api, operation: Operation
) -> None:
    """Every caller in turn, on one seed: the admin last, since its calls may undo the
    seeded merge or revoke the seeded key. All mismatches are reported together."""
    if operation.roles is None:
        pytest.fail(f"{operation} declares no @requiresRole")
    text = document(operation, await seed(api))
    wrong = []
    for caller in sorted(CALLERS, key=lambda c: c == "admin"):
        response = await api.post(text, key=await credentials(api, caller))
        problem = mismatch(operation, caller, response.status_code, response.json())
        if problem:
            wrong.append(f"{caller}: {problem}")
    assert wrong == [], f"{text}\n" + "\n".join(wrong)


def mismatch(operation: Operation, caller: str, status: int, body: dict[str, Any]) -> str | None:
    """What is wrong with a caller's answer, or None."""
    assert operation.roles is not None
    found = codes(body.get("errors") or [])
    data = (body.get("data") or {}).get(operation.name)
    if caller in REFUSED_BY_KIND.get(operation.name, ()):
        refused = status == 403 and found == ["FORBIDDEN"]
        if refused and body["errors"][0]["message"].endswith(" by email"):
            return None
        return f"expected the PII guard's 403 naming the kind, got {status} {body}"
    if caller in operation.roles:
        if status != 200 or {"FORBIDDEN", "UNAUTHENTICATED", "INVALID_TOKEN"} & set(found):
            return f"allowed, got {status} {body}"
        if caller == "admin" and found:
            return f"an admin's call must succeed (are the ARGUMENTS right?): {body}"
        return None
    expected = (401, ["UNAUTHENTICATED"]) if caller == "no credentials" else (403, ["FORBIDDEN"])
    if (status, found) != expected or data:
        return f"denied, expected {expected}, got {status} {body}"
    return None
