"""The explorer on `/explore`, in Chromium against the demo data: it finds a customer, draws
one node per identifier the API returns, explains a link, shows a marketing key masked
values, and an undo through the page changes the graph. Every request goes to c360."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.api.servers import Server
from tests.browser.conftest import Recorded
from tests.browser.demo import ADMIN_KEY, Api

MERGED = """query($after: String) {
  customers(first: 20, after: $after) {
    edges { node { id identifiers { kind value }
      mergeHistory(first: 5) { kind undoneBy }
      events(first: 10, types: [TRACK]) { edges { node { name } } } } }
    pageInfo { endCursor hasNextPage }
  }
}"""
COUNT = "query($id: ID) { customer(id: $id) { identifiers { kind } } }"
NODES = "() => window.c360Explorer.cy.nodes('.identifier').map((n) => n.data('label'))"
POSITION = """(id) => {
  const p = window.c360Explorer.cy.getElementById(id).renderedPosition();
  return [p.x, p.y];
}"""


@pytest.fixture(scope="session")
def merged(api: Api) -> list[dict[str, Any]]:
    """Demo customers that absorbed another (a live merge), with an email and an order."""
    found: list[dict[str, Any]] = []
    after = None
    while len(found) < 3:
        page = api(MERGED, {"after": after})["data"]["customers"]
        for edge in page["edges"]:
            node = edge["node"]
            live = [r for r in node["mergeHistory"] if r["kind"] == "MERGE" and not r["undoneBy"]]
            kinds = {i["kind"] for i in node["identifiers"]}
            events = {e["node"]["name"] for e in node["events"]["edges"]}
            if live and "email" in kinds and "Checkout Started" in events:
                found.append(node)
        assert page["pageInfo"]["hasNextPage"], "the demo data has too few merged customers"
        after = page["pageInfo"]["endCursor"]
    return found


def open_explorer(page: Page, c360: Server, key: str) -> None:
    page.goto(f"{c360.url}/explore")
    page.fill("#key", key)
    page.click("#key-form button[type=submit]")
    page.locator("#customer-list li").first.wait_for()


def find(page: Page, text: str, customer_id: str) -> None:
    page.fill("#value", text)
    page.click("#search button[type=submit]")
    page.locator("#status").filter(has_text=f"Customer {customer_id}").wait_for()


def drawn(page: Page) -> list[str]:
    labels: list[str] = page.evaluate(NODES)
    return labels


def test_the_explorer_finds_a_customer_draws_every_identifier_and_explains_a_link(
    recorded: Recorded, c360: Server, merged: list[dict[str, Any]]
) -> None:
    page = recorded.page
    customer = merged[0]
    email = next(i["value"] for i in customer["identifiers"] if i["kind"] == "email")
    open_explorer(page, c360, ADMIN_KEY)
    find(page, email, customer["id"])

    assert len(drawn(page)) == len(customer["identifiers"])
    assert page.get_attribute("#graph", "data-identifiers") == str(len(customer["identifiers"]))
    assert int(page.get_attribute("#graph", "data-links") or 0) >= len(customer["identifiers"]) - 1
    email_trait = page.locator("#profile dt:text-is('email') + dd").inner_text()
    assert re.fullmatch(r"[a-z.0-9]+@example\.com", email_trait)  # admin reads it clear

    box = page.locator("#graph").bounding_box()
    assert box is not None
    for node in ("n0", f"n{len(customer['identifiers']) - 1}"):
        x, y = page.evaluate(POSITION, node)
        page.mouse.click(box["x"] + x, box["y"] + y)
    page.click("#explain")
    page.locator("#details").filter(has_text="Why these two are one customer").wait_for()
    assert page.evaluate("() => window.c360Explorer.cy.edges('.path').length") >= 1

    assert recorded.origins() == {c360.url}, recorded.requests
    assert not [m for m in recorded.console if "Content Security Policy" in m]


def test_a_marketing_key_sees_masked_values_in_the_picture_too(
    recorded: Recorded, c360: Server, api: Api, merged: list[dict[str, Any]]
) -> None:
    page = recorded.page
    customer = merged[1]
    open_explorer(page, c360, api.key("marketing"))
    find(page, customer["id"], customer["id"])

    labels = drawn(page)
    assert len(labels) == len(customer["identifiers"])
    emails = [label for label in labels if label.startswith("email\n")]
    assert emails and all(re.search(r"\*\*\*@", label) for label in emails)
    clear = {i["value"] for i in customer["identifiers"]}
    assert not [label for label in labels if label.split("\n")[1] in clear]
    email_trait = page.locator("#profile dt:text-is('email') + dd").inner_text()
    assert "***" in email_trait
    # revenue is FINANCIAL: denied to marketing, and shown as denied
    assert page.locator("#profile .timeline .badge.denied").count() >= 1
    assert recorded.origins() == {c360.url}, recorded.requests


def test_an_undo_through_the_page_changes_the_graph(
    recorded: Recorded, c360: Server, api: Api, merged: list[dict[str, Any]]
) -> None:
    page = recorded.page
    customer = merged[2]
    before = len(customer["identifiers"])
    open_explorer(page, c360, ADMIN_KEY)
    find(page, customer["id"], customer["id"])
    assert len(drawn(page)) == before

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#profile button.undo").first.click()
    page.locator("#status").filter(has_text="undone").wait_for()

    after = len(api(COUNT, {"id": customer["id"]})["data"]["customer"]["identifiers"])
    assert after < before
    assert len(drawn(page)) == after
    assert page.get_attribute("#graph", "data-identifiers") == str(after)
    assert page.locator("#profile .badge.undone").count() == 1
    assert recorded.origins() == {c360.url}, recorded.requests
