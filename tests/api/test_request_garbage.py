"""A request's objects are freed when it ends, none left for the cycle collector: a reference
cycle through the executor, a field error's traceback or the loaders kept each request's
context and all it cached (~330 objects on the sales-context query) until a collection of
~200,000 of them, a pause of hundreds of milliseconds in the middle of some later request."""

from __future__ import annotations

import gc
from typing import Any

from aiodataloader import DataLoader
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph_api.context import Context
from graph_api.loaders import Loaders
from tests.api.conftest import ADMIN_KEY, Api, codes

IDENTIFY = """mutation { identify(input: {userId: "u1", traits: {email: "u1@example.com"}})
  { status } }"""
READ = """{ customer(identifier: {kind: "email", value: "u1@example.com"}) {
  id traits { email } identifiers { kind value }
  events(first: 20) { totalCount edges { node { name properties } } } } }"""
REQUEST_OBJECTS = (Context, Loaders, DataLoader, StrawberryGraphQLCoreExecutionContext)


async def left_for_the_collector(api: Api, key: str) -> tuple[dict[str, Any], list[str]]:
    """The answer to READ, and the request objects it left in reference cycles."""
    await api.post(READ, key=key)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        body: dict[str, Any] = (await api.post(READ, key=key)).json()
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, REQUEST_OBJECTS)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return body, left


async def test_a_customer_read_leaves_no_cycle_to_collect(api: Api) -> None:
    await api(IDENTIFY)
    body, left = await left_for_the_collector(api, ADMIN_KEY)
    assert "errors" not in body
    assert body["data"]["customer"]["traits"]["email"] == "u1@example.com"
    assert left == []


async def test_a_read_with_denied_fields_leaves_no_cycle_to_collect(api: Api) -> None:
    await api(IDENTIFY)
    body, left = await left_for_the_collector(api, await api.key("sales"))
    assert codes(body["errors"]) == ["FORBIDDEN_FIELD"]  # the user id: DEVICE, denied to sales
    assert body["data"]["customer"]["traits"]["email"] == "u1@example.com"
    assert left == []
