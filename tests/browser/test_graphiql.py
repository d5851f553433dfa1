"""GraphiQL on `GET /graphql`: c360's own copy renders and runs a query in Chromium with no
request to any other origin (and none could leave: only 127.0.0.1 resolves)."""

from __future__ import annotations

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.api.servers import Server
from tests.browser.conftest import Recorded
from tests.browser.demo import ADMIN_KEY, Api

SET_HEADERS = """(key) => {
  const editors = [...document.querySelectorAll('.CodeMirror')].map((e) => e.CodeMirror);
  const headers = editors.find((cm) => cm.getValue().includes('Authorization'));
  headers.setValue(JSON.stringify({ Authorization: 'Bearer ' + key }, null, 2));
}"""


def test_graphiql_renders_and_runs_a_query_with_nothing_from_elsewhere(
    recorded: Recorded, c360: Server, api: Api
) -> None:
    page = recorded.page
    page.goto(f"{c360.url}/graphql")
    page.locator(".graphiql-container").wait_for()
    assert "customers(first: 5)" in page.locator(".graphiql-query-editor").inner_text()
    assert "<your API key>" in page.locator(".graphiql-editor-tool").inner_text()

    page.locator(".result-window").filter(has_text="Put your API key in the Headers tab").wait_for()

    page.evaluate(SET_HEADERS, ADMIN_KEY)
    page.click("button[aria-label='Show Documentation Explorer']")
    schema = page.locator(".graphiql-doc-explorer").filter(has_text="MergeRecord")
    for _ in range(3):  # the headers reach GraphiQL's state a render after the edit
        page.click("button[aria-label^='Re-fetch GraphQL schema']")
        try:
            schema.wait_for(timeout=3_000)
            break
        except PlaywrightTimeout:
            continue
    schema.wait_for()
    page.click(".graphiql-execute-button")
    total = api("{ customers(first: 1) { totalCount } }")["data"]["customers"]["totalCount"]
    page.locator(".result-window").filter(has_text=f'"totalCount": {total}').wait_for()
    assert '"errors"' not in page.locator(".result-window").inner_text()

    assert recorded.origins() == {c360.url}, recorded.requests
    assert any("/static/vendor/graphiql-3.9.0/graphiql.min.js" in u for u in recorded.requests)
    assert not [m for m in recorded.console if "Content Security Policy" in m]


def test_the_page_is_kept_to_its_own_origin_and_its_files_cached(api: Api) -> None:
    page = api.client.get("/graphql", headers={"Accept": "text/html"})
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy  # no other origin named
    bundle = api.client.get("/static/vendor/graphiql-3.9.0/graphiql.min.js")
    assert bundle.status_code == 200
    assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert b"sourceMappingURL" not in bundle.content
