"""The static files of the browser pages: c360's own scripts and styles, and the vendored
bundles, served from the package with long cache headers. A URL names what it serves
exactly (the vendored ones by version, c360's own by a digest of their content), so a cached
copy is never stale."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
PREFIX = "/static"
CACHE = "public, max-age=31536000, immutable"

VENDOR = {
    "graphiql.js": "vendor/graphiql-3.9.0/graphiql.min.js",
    "graphiql.css": "vendor/graphiql-3.9.0/graphiql.min.css",
    "react.js": "vendor/react-18.3.1/react.production.min.js",
    "react-dom.js": "vendor/react-dom-18.3.1/react-dom.production.min.js",
    "cytoscape.js": "vendor/cytoscape-3.35.0/cytoscape.min.js",
}
"""the pinned bundles the pages load, by the name the pages use"""


@cache
def url(name: str) -> str:
    """The URL of a static file by its page name (`graphiql.js`) or its path under static/
    (`explore.js`, with `?v=` and a digest of its content)."""
    if name in VENDOR:
        return f"{PREFIX}/{VENDOR[name]}"
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"{PREFIX}/{name}?v={digest}"


class Assets(StaticFiles):
    """The package's static files, cached for a year; no directory listings."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC)

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
        status_code: int = 200,
    ) -> Response:  # fmt: skip
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = CACHE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
