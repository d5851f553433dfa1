"""The explorer on `/explore`, in Chromium against the demo data: it finds a customer, draws
one node per identifier and one edge per link the API returns (read a page at a time through
`Customer.links`), explains a link, shows a marketing key masked values and the links it can
place, says which links it cannot (masked values alike), an undo and a split through the page
change the graph, and 1,010 identifiers are drawn with no node over another. Every request
goes to c360."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, Request
from playwright.sync_api import TimeoutError as PlaywrightTimeout

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
MEMBERSHIPS = "query($id: ID) { customer(id: $id) { audiences { audience { name } } } }"
BUILT = """{ audience(name: "enterpriseAccounts") {
  status members(first: 1) { edges { node { id } } } } }"""
COUNT_BY = """query($identifier: IdentifierInput) {
  customer(identifier: $identifier) { id identifiers { kind } }
}"""
LINKS = """query($id: ID, $after: String) {
  customer(id: $id) { links(first: 100, after: $after) { from { kind value } to { kind value } } }
}"""
NODES = "() => window.c360Explorer.cy.nodes('.identifier').map((n) => n.data('label'))"
POSITION_OF = """(label) => {
  const nodes = window.c360Explorer.cy.nodes('.identifier');
  const node = nodes.filter((n) => n.data('label') === label)[0];
  const p = node.renderedPosition();
  return [p.x, p.y];
}"""
CLOSEST = """() => {
  const points = window.c360Explorer.cy.nodes('.identifier').map((n) => n.position());
  let closest = Infinity;
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const d = Math.hypot(points[i].x - points[j].x, points[i].y - points[j].y);
      closest = Math.min(closest, d);
    }
  }
  return closest;
}"""
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


def all_links(api: Api, customer_id: str, key: str = ADMIN_KEY) -> list[dict[str, Any]]:
    """The customer's links as the key's role sees them, read 100 at a time."""
    links: list[dict[str, Any]] = []
    while True:
        after = str(len(links)) if links else None
        page = api(LINKS, {"id": customer_id, "after": after}, key=key)["data"]["customer"]["links"]
        links += page
        if len(page) < 100:
            return links


class Queries:
    """The GraphQL documents a page posts, with their variables."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        page.on("request", self._request)

    def _request(self, request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/graphql") and request.post_data:
            self.sent.append(json.loads(request.post_data))

    def naming(self, field: str) -> list[dict[str, Any]]:
        """The documents that ask for a field."""
        return [body for body in self.sent if f"{field}(" in body.get("query", "")]

    def named(self, operation: str) -> list[dict[str, Any]]:
        """The documents of an operation, by its name."""
        start = f"query {operation}("
        return [body for body in self.sent if body.get("query", "").startswith(start)]


def edges(page: Page) -> int:
    count: int = page.evaluate("() => window.c360Explorer.cy.edges('.link').length")
    return count


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
    recorded: Recorded, c360: Server, api: Api, merged: list[dict[str, Any]]
) -> None:
    page = recorded.page
    queries = Queries(page)
    customer = merged[0]
    email = next(i["value"] for i in customer["identifiers"] if i["kind"] == "email")
    open_explorer(page, c360, ADMIN_KEY)
    find(page, email, customer["id"])

    assert len(drawn(page)) == len(customer["identifiers"])
    assert page.get_attribute("#graph", "data-identifiers") == str(len(customer["identifiers"]))
    assert int(page.get_attribute("#graph", "data-links") or 0) >= len(customer["identifiers"]) - 1
    assert edges(page) == len(all_links(api, customer["id"]))
    assert page.evaluate("() => window.c360Explorer.cy.edges('.merge').length") >= 1  # a live merge
    kept = "() => [localStorage.length, sessionStorage.getItem('c360.explore.key')]"
    assert page.evaluate(kept) == [0, ADMIN_KEY]  # the key stays in the tab
    email_trait = page.locator("#profile dt:text-is('email') + dd").inner_text()
    assert re.fullmatch(r"[a-z.0-9]+@example\.com", email_trait)  # admin reads it clear

    box = page.locator("#graph").bounding_box()
    assert box is not None
    for node in ("n0", f"n{len(customer['identifiers']) - 1}"):
        x, y = page.evaluate(POSITION, node)
        page.mouse.click(box["x"] + x, box["y"] + y)
    assert not queries.naming("explainLink")  # the edges came from Customer.links
    page.click("#explain")
    page.locator("#details").filter(has_text="Why these two are one customer").wait_for()
    assert page.evaluate("() => window.c360Explorer.cy.edges('.path').length") >= 1
    assert len(queries.naming("explainLink")) == 1  # only for the path between the two picked

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
    # ids are hashed to marketing, one hash a value: their links are drawn; a link with an end
    # masked like another identifier of the customer is not, and is counted
    links = len(all_links(api, customer["id"]))
    assert page.get_attribute("#graph", "data-api-links") == str(links)
    unmatched = int(page.get_attribute("#graph", "data-unmatched") or 0)
    assert edges(page) >= 1
    assert edges(page) + unmatched == links
    assert recorded.origins() == {c360.url}, recorded.requests


def test_links_whose_masked_ends_look_alike_are_counted_not_guessed(
    recorded: Recorded, c360: Server, api: Api
) -> None:
    # two emails a marketing key sees alike (j***@e***.com), and one it does not
    emails = ["jane.alike@example.com", "jim.alike@elsewhere.com", "kim.alike@example.org"]
    batch = [
        {
            "type": "identify",
            "userId": "alike-masks",
            "messageId": f"alike-masks-{n}",
            "timestamp": "2024-03-01T00:00:00Z",
            "traits": {"email": email},
        }
        for n, email in enumerate(emails)
    ]
    sent = api.client.post("/v1/batch", json={"batch": batch}, auth=(api.key("ingest"), ""))
    assert sent.status_code == 200, sent.text
    customer = api(COUNT_BY, {"identifier": {"kind": "user_id", "value": "alike-masks"}})
    customer_id = customer["data"]["customer"]["id"]
    links = all_links(api, customer_id)
    assert len(links) == 3  # each email to the user id

    page = recorded.page
    open_explorer(page, c360, api.key("marketing"))
    find(page, customer_id, customer_id)
    assert len(drawn(page)) == 4
    assert edges(page) == 1  # kim's: the one email shown as no other
    assert page.get_attribute("#graph", "data-unmatched") == "2"
    note = page.locator("#notes").inner_text()
    assert "2 of 3 link(s) not drawn" in note and "j***@e***.com (×2)" in note

    open_explorer(page, c360, ADMIN_KEY)
    find(page, customer_id, customer_id)
    assert edges(page) == 3
    assert page.get_attribute("#graph", "data-unmatched") == "0"
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


def test_a_split_through_the_page_moves_the_picked_identifiers_out(
    recorded: Recorded, c360: Server, api: Api, merged: list[dict[str, Any]]
) -> None:
    page = recorded.page
    customer = merged[0]
    anonymous = [i for i in customer["identifiers"] if i["kind"] == "anonymous_id"]
    before = len(customer["identifiers"])
    open_explorer(page, c360, ADMIN_KEY)
    find(page, customer["id"], customer["id"])
    picked = f"anonymous_id\n{anonymous[0]['value']}"
    x, y = page.evaluate(POSITION_OF, picked)
    box = page.locator("#graph").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + x, box["y"] + y)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#split")
    page.locator("#status").filter(has_text="Split off into customer").wait_for()

    assert len(drawn(page)) == before - 1
    assert picked not in drawn(page)
    moved = api(COUNT_BY, {"identifier": anonymous[0]})["data"]["customer"]
    assert moved["id"] != customer["id"]


def test_hundreds_of_identifiers_are_drawn_apart(
    recorded: Recorded, c360: Server, api: Api
) -> None:
    count = 1000  # a big profile: its links take 11 pages of 100
    batch = [
        {
            "type": "identify",
            "userId": "many-ids",
            "anonymousId": f"many-ids-anon-{n}",
            "messageId": f"many-ids-{n}",
            "timestamp": "2024-03-01T00:00:00Z",
            "context": {"device": {"id": f"many-ids-device-{n % 9}"}},
        }
        for n in range(count)
    ]
    sent = api.client.post("/v1/batch", json={"batch": batch}, auth=(api.key("ingest"), ""))
    assert sent.status_code == 200, sent.text
    customer = api(COUNT_BY, {"identifier": {"kind": "user_id", "value": "many-ids"}})
    identifiers = len(customer["data"]["customer"]["identifiers"])
    assert identifiers == count + 9 + 1

    customer_id = customer["data"]["customer"]["id"]
    links = len(all_links(api, customer_id))
    assert links >= identifiers - 1

    page = recorded.page
    queries = Queries(page)
    open_explorer(page, c360, ADMIN_KEY)
    started = time.monotonic()
    find(page, "user_id:many-ids", customer_id)
    took = time.monotonic() - started
    assert len(drawn(page)) == identifiers
    assert edges(page) == links
    pages = [body["variables"] for body in queries.named("Links")]
    assert len(pages) == links // 100 + 1  # a page of 100 per request, the last one short
    assert [p["after"] for p in pages] == [None] + [str(100 * n) for n in range(1, len(pages))]
    assert {p["first"] for p in pages} == {100}
    assert not queries.naming("explainLink")
    assert took < 20, f"{identifiers} identifiers took {took:.1f} s to draw"
    closest = page.evaluate(CLOSEST)
    assert closest >= 10  # the nodes' diameter: none drawn over another


def test_a_refused_key_is_said_so_and_not_kept(recorded: Recorded, c360: Server) -> None:
    page = recorded.page
    page.goto(f"{c360.url}/explore")
    page.fill("#key", "c360_not-a-key-of-this-server-at-all")
    page.click("#key-form button[type=submit]")
    page.locator("#status.error").filter(has_text="INVALID_TOKEN").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_the_profile_lists_the_customers_audiences(
    recorded: Recorded, c360: Server, api: Api
) -> None:
    define = """mutation { defineAudience(name: "enterpriseAccounts",
      condition: {trait: {name: "plan", op: "eq", value: "enterprise"}}) { id } }"""
    api(define)
    # a member by its current plan: the customers filter matches any plan a customer ever
    # had (the demo's customers may change plans between sessions)
    deadline = time.monotonic() + 120  # built in the background, a few seconds when idle
    while (built := api(BUILT)["data"]["audience"])["status"] != "READY":
        assert time.monotonic() < deadline, "the audience was not built in two minutes"
        time.sleep(0.2)
    member = built["members"]["edges"][0]["node"]["id"]
    assert "enterpriseAccounts" in str(api(MEMBERSHIPS, {"id": member})["data"])

    page = recorded.page
    open_explorer(page, c360, ADMIN_KEY)
    find(page, member, member)
    audiences = page.locator("#audiences")
    try:
        audiences.filter(has_text="enterpriseAccounts").wait_for()
    except PlaywrightTimeout:
        pytest.fail(f"the profile's audiences read {audiences.inner_text()!r}")
