"""CORS in a real browser: a page served from another port reads a profile from c360 with a
key and a trusted document when C360_CORS_ORIGINS lists its origin; Chromium refuses the
same page from an unlisted origin."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

from typer.testing import CliRunner

from graph_api.cli import app as cli
from tests.api.servers import Server
from tests.browser.conftest import PageServer, Recorded
from tests.browser.demo import Api

PROFILE = "query Profile($id: ID!) { customer(id: $id) { id traits { name } } }\n"
FIRST = "{ customers(first: 1) { edges { node { id } } } }"


def page_url(site: PageServer, c360: Server, api: Api, documents_file: Path) -> tuple[str, str]:
    source = documents_file.parent / "profile.graphql"
    source.write_text(PROFILE)
    added = CliRunner().invoke(
        cli, ["documents", "add", str(source), "--file", str(documents_file)]
    )
    assert added.exit_code == 0, added.output
    document = added.output.split("\t")[0]
    customer = api(FIRST)["data"]["customers"]["edges"][0]["node"]["id"]
    fragment = urlencode(
        {"api": c360.url, "key": api.key("sales"), "document": document, "id": customer}
    )
    return f"{site.origin}/cross-origin.html#{fragment}", customer


def test_a_page_on_a_listed_origin_reads_a_profile(
    recorded: Recorded, c360: Server, api: Api, listed_site: PageServer, documents_file: Path
) -> None:
    url, customer = page_url(listed_site, c360, api, documents_file)
    recorded.page.goto(url)
    result = recorded.page.locator("#result[data-done]")
    result.wait_for()
    answer = json.loads(result.inner_text())
    assert answer["data"]["customer"]["id"] == customer
    assert recorded.origins() == {listed_site.origin, c360.url}


def test_a_page_on_an_unlisted_origin_is_refused_by_the_browser(
    recorded: Recorded, c360: Server, api: Api, unlisted_site: PageServer, documents_file: Path
) -> None:
    url, _ = page_url(unlisted_site, c360, api, documents_file)
    recorded.page.goto(url)
    result = recorded.page.locator("#result[data-done]")
    result.wait_for()
    assert result.inner_text().startswith("refused: TypeError")
    assert any("blocked by CORS policy" in m for m in recorded.console), recorded.console
