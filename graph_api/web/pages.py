"""The HTML of the browser pages, with the headers that keep them to c360's own origin."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from graph_api.web.assets import PREFIX, Assets, url

TEMPLATES = Path(__file__).parent / "templates"
ASSET = re.compile(r"\{\{ (\S+) \}\}")

POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # the one rule cytoscape 3.35 writes into a <style> element of its own
        "style-src 'self' 'sha256-pgvDUBa4IjFA2yuSJ2cqcyxmNYJMborsd0ORcRv9vw8='",
        # GraphiQL's fonts and icons are inlined in its stylesheet
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
"""nothing from another origin, no inline script, no inline style but cytoscape's one rule"""

HEADERS = {
    "Content-Security-Policy": POLICY,
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@cache
def render(name: str) -> str:
    """A page of templates/, each `{{ asset }}` replaced by the asset's URL."""
    return ASSET.sub(lambda m: url(m[1]), (TEMPLATES / name).read_text())


def page(name: str) -> Response:
    return HTMLResponse(render(name), headers=HEADERS)


def graphiql() -> Response:
    """c360's GraphiQL: the pinned bundle from c360 itself, an example query and a hint for
    the Authorization header."""
    return page("graphiql.html")


async def explore(request: Request) -> Response:
    return page("explore.html")


routes = [
    Route("/explore", explore, methods=["GET"]),
    Mount(PREFIX, app=Assets(), name="static"),
]
