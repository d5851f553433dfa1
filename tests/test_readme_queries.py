"""Every GraphQL block of the README runs against the demo data (`c360 serve --demo`) without
an error, and answers something.

The README's examples name Ada, a person the demo data does not hold: each example value
below is replaced by the matching value of a demo customer (one with an email, a device, an
order and a merge) before the query is sent, and nothing else of the query is changed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph_api.app import create_app
from graph_api.settings import Secret, Settings
from tests.api.servers import Server
from tests.browser.demo import ADMIN_KEY, Api, load_demo

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)
CANDIDATES = """query($after: String) {
  customers(first: 20, after: $after) {
    edges { node { id identifiers { kind value }
      mergeHistory(first: 5) { id kind undoneBy }
      events(first: 10, types: [TRACK]) { totalCount } } }
    pageInfo { endCursor hasNextPage }
  }
}"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("readme") / "data", bootstrap_admin_key=Secret(ADMIN_KEY)
    ).development()
    load_demo(settings)
    server = Server(create_app(settings))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield Api(client)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def examples(api: Api) -> dict[str, str]:
    """The README's example values, and the demo values the test sends in their place."""
    after = None
    while True:
        page = api(CANDIDATES, {"after": after})["data"]["customers"]
        for edge in page["edges"]:
            node = edge["node"]
            values = {i["kind"]: i["value"] for i in node["identifiers"]}
            live = [r for r in node["mergeHistory"] if r["kind"] == "MERGE" and not r["undoneBy"]]
            if live and "email" in values and "device_id" in values:
                if node["events"]["totalCount"]:
                    email = values["email"]
                    return {
                        '"ada@example.com"': f'"{email}"',
                        '" Ada.Lovelace@Example.com "': f'" {email.title()} "',
                        '"ipad-7"': f'"{values["device_id"]}"',
                        '"…from mergeHistory…"': f'"{live[0]["id"]}"',
                        "$id": node["id"],
                    }
        assert page["pageInfo"]["hasNextPage"], "no demo customer fits the README's examples"
        after = page["pageInfo"]["endCursor"]


def test_the_readme_shows_graphql() -> None:
    assert len(BLOCKS) >= 4
    assert sum(block.lstrip().startswith("mutation") for block in BLOCKS) >= 1


def order(block: str) -> int:
    """Queries of the demo data first, then the mutations (they change what those queries
    read), then the queries of what only the mutations make (destinations)."""
    if block.lstrip().startswith("mutation"):
        return 1
    return 2 if "destinations" in block else 0


@pytest.mark.parametrize(
    "block",
    sorted(BLOCKS, key=order),
    ids=lambda block: " ".join(block.split())[:48],
)
def test_a_readme_query_runs_against_the_demo_data(
    api: Api, examples: dict[str, str], block: str
) -> None:
    query = block
    for example, value in examples.items():
        if example.startswith('"'):
            query = query.replace(example, value)
    if '"…id of valuableShoppers…"' in query:  # defined by a block before this one
        found = api('{ audience(name: "valuableShoppers") { id } }', {}, key=ADMIN_KEY)
        query = query.replace('"…id of valuableShoppers…"', f'"{found["data"]["audience"]["id"]}"')
    variables = {"id": examples["$id"]} if "$id" in query else {}
    body = api(query, variables, key=ADMIN_KEY)
    assert "errors" not in body, body["errors"]
    answers: dict[str, Any] = body["data"]
    assert answers and all(answer for answer in answers.values()), answers
    if "explainLink" in answers:
        assert answers["explainLink"]["linked"] and answers["explainLink"]["path"]
    if "customer" in answers and "events" in answers["customer"]:
        events = answers["customer"]["events"]
        assert events["edges"], "the example customer has events to show"
