"""Query limits: depth, aliases (fragments counted once, at every spread), tokens, cost."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import graphql
import pytest

from graph_api.cost import LIST_BOUNDS, MAX_COST
from graph_api.schema import export_schema
from graph_api.settings import Settings
from tests.api.conftest import Api, codes, serving

DEEP = "{ customers { edges { node { mergeHistory { links { from { kind } } } } } } }"
SHALLOW = "{ customers { edges { node { id } } } }"


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Api]:
    small = dataclasses.replace(settings, max_depth=5, max_aliases=4, max_tokens=60)
    async with serving(small) as api:
        yield api


async def test_depth_limit(limited: Api) -> None:
    await limited(SHALLOW)
    errors = await limited.errors(DEEP)
    assert codes(errors) == ["BAD_REQUEST"]
    assert "exceeds maximum operation depth of 5" in errors[0]["message"]


async def test_depth_counts_through_fragments(limited: Api) -> None:
    query = "fragment L on Link { from { kind } } fragment C on Customer { mergeHistory"
    query += " { links { ...L } } } { customers { edges { node { ...C } } } }"
    assert codes(await limited.errors(query)) == ["BAD_REQUEST"]


async def test_introspection_is_not_depth_limited(limited: Api) -> None:
    query = "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }"
    data = await limited(query)
    assert data["__schema"]["types"]


async def test_alias_limit(limited: Api) -> None:
    await limited("{ a: customers { n: totalCount } b: customers { totalCount } }")
    errors = await limited.errors(
        "{ a: customers { totalCount } b: customers { totalCount } c: customers { totalCount }"
        " d: customers { totalCount } e: customers { totalCount } }"
    )
    assert codes(errors) == ["BAD_REQUEST"]
    assert errors[0]["message"] == "5 aliases in one operation; at most 4 allowed"


async def test_alias_limit_counts_each_fragment_spread(limited: Api) -> None:
    fragment = "fragment F on CustomerConnection { x: totalCount y: totalCount }"
    await limited(fragment + " { customers { ...F } }")
    errors = await limited.errors(fragment + " { customers { ...F } other: customers { ...F } }")
    assert errors[0]["message"] == "5 aliases in one operation; at most 4 allowed"
    nested = "fragment F on CustomerConnection { x: totalCount ...G } "
    nested += "fragment G on CustomerConnection { y: totalCount z: totalCount } "
    errors = await limited.errors(nested + "{ customers { ...F ...G } }")
    assert errors[0]["message"] == "5 aliases in one operation; at most 4 allowed"


async def test_token_limit(limited: Api) -> None:
    errors = await limited.errors("{ customers { " + "totalCount " * 80 + "} }")
    assert codes(errors) == ["BAD_REQUEST"]
    assert "more than 60 tokens" in errors[0]["message"]


async def test_default_limits_allow_a_profile_page(api: Api) -> None:
    await api(
        "{ customers(first: 1) { edges { node { mergeHistory { links { from { kind } } } } } } }"
    )


def nested_fragments(levels: int, leaf: str) -> str:
    """Fragments each spreading the next twice: 2**levels leaves in a few hundred tokens.

    Expanding every spread (as the old alias count and Strawberry's depth limiter did) takes
    days at 40 levels: a regression hangs this test rather than slowing it a little.
    """
    parts = [f"fragment F0 on CustomerConnection {{ {leaf} }}"]
    parts += [
        f"fragment F{n} on CustomerConnection {{ ...F{n - 1} ...F{n - 1} }}"
        for n in range(1, levels + 1)
    ]
    return " ".join(parts) + f" {{ customers {{ ...F{levels} }} }}"


async def test_nested_fragments_are_counted_once_each(api: Api) -> None:
    errors = await api.errors(nested_fragments(40, "x: totalCount"))
    assert codes(errors) == ["BAD_REQUEST"]
    assert errors[0]["message"] == "over 1000000000000 aliases in one operation; at most 30 allowed"


async def test_nested_fragments_pass_depth_and_aliases_then_cost(api: Api) -> None:
    """Without aliases the document validates (depth counted once per fragment too)."""
    errors = await api.errors(nested_fragments(40, "totalCount"))
    assert codes(errors) == ["QUERY_TOO_COSTLY"]


async def test_depth_counts_through_nested_fragments(limited: Api) -> None:
    query = "fragment A on Link { from { kind } } fragment B on Link { ...A ...A }"
    query += " fragment C on MergeRecord { links { ...B ...B } }"
    query += " { customers { edges { node { mergeHistory { ...C } } } } }"
    errors = await limited.errors(query)
    assert codes(errors) == ["BAD_REQUEST"]
    assert errors[0]["message"] == "'anonymous' exceeds maximum operation depth of 5"


SALES = """query($id: ID!) { customer(id: $id) {
  id createdAt traits { email firstName }
  identifiers { kind value }
  consents { purpose status }
  events(first: 10) { totalCount edges { node { type name timestamp } } }
} }"""

PAGE = "customers(first: 100) { edges { node { events(first: 100) { edges { node { id } } } } } }"
PAGE_COST = 1 + 100 * (1 + 1 + (1 + 100 * (1 + 1 + 1)))


async def test_a_sales_context_query_is_within_budget(api: Api) -> None:
    created = await api(
        'mutation { identify(input: {userId: "u1", traits: {email: "j@example.com"}}) '
        "{ customerId } }"
    )
    customer = created["identify"]["customerId"]
    data = await api(SALES, {"id": customer})
    assert data["customer"]["traits"]["email"] == "j@example.com"
    await api("{ " + PAGE + " }")


async def test_too_costly_query_is_refused_before_execution(api: Api) -> None:
    query = "{ " + " ".join(f"a{n}: {PAGE}" for n in range(30)) + " }"
    response = await api.post(query)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert codes(body["errors"]) == ["QUERY_TOO_COSTLY"]
    assert body["errors"][0]["message"] == (
        f"query too costly: estimated cost {30 * PAGE_COST} exceeds the budget of {MAX_COST}"
    )


COSTED = """query($n: Int!, $e: Int = 100) {
  a: customers(first: $n) { ...C } b: customers { ...C } c: customers(first: $n) { ...C } }
fragment C on CustomerConnection { edges { node { ...E } } }
fragment E on Customer { events(first: $e) { edges { node { id } } } }"""


def costed(customers: int, events: int) -> int:
    """COSTED's cost: `b` takes the default page (20) of customers."""
    each = 1 + 1 + (1 + events * 3)
    return 2 * (1 + customers * each) + (1 + 20 * each)


async def test_cost_counts_through_fragments_and_variables(api: Api) -> None:
    await api(COSTED, {"n": 10, "e": 10})
    errors = await api.errors(COSTED, {"n": 100})
    assert codes(errors) == ["QUERY_TOO_COSTLY"]
    assert f"estimated cost {costed(100, 100)} " in errors[0]["message"]
    errors = await api.errors(COSTED, {"n": 100, "e": 90})
    assert f"estimated cost {costed(100, 90)} " in errors[0]["message"]


async def test_page_sizes_above_the_maximum_are_bad_input_not_cost(api: Api) -> None:
    errors = await api.errors("{ customers(first: 100000) { totalCount } }")
    assert codes(errors) == ["BAD_INPUT"]


def test_every_list_field_has_a_bound() -> None:
    """A list of objects is paginated (`first`), a connection's `edges`, or has a documented
    worst case in `LIST_BOUNDS`; a new unbounded list fails here until it says which."""
    schema = graphql.build_schema(export_schema())
    unbounded = []
    for type_ in schema.type_map.values():
        if not isinstance(type_, graphql.GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            listed = graphql.is_list_type(graphql.get_nullable_type(field.type))
            leaf = graphql.is_leaf_type(graphql.get_named_type(field.type))
            if not listed or leaf or "first" in field.args or name == "edges":
                continue
            if f"{type_.name}.{name}" not in LIST_BOUNDS:
                unbounded.append(f"{type_.name}.{name}")
    assert not unbounded, f"list fields with no bound: {unbounded}"
