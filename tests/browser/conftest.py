"""A c360 server with the demo data, two static page servers on other ports (one listed in
C360_CORS_ORIGINS, one not), and Debian's Chromium driven by Playwright.

Chromium starts with every host name but 127.0.0.1 unresolvable, as on a machine with no
route but loopback, and each test's page records every request it makes: the network log
the tests assert on."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from graph_api.app import create_app
from graph_api.settings import Settings
from tests.api.servers import Server, free_port
from tests.browser.demo import ADMIN_KEY, Api, load_demo

CHROMIUM = Path("/usr/bin/chromium")
PAGES = Path(__file__).parent / "pages"
OFFLINE = [
    # no route but loopback: any other host name fails to resolve
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-sandbox",
]


class PageServer:
    """Static files of tests/browser/pages on a free port: a site on another origin."""

    def __init__(self) -> None:
        handler = functools.partial(Quiet, directory=str(PAGES))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def listed_site() -> Iterator[PageServer]:
    site = PageServer()
    site.start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def unlisted_site() -> Iterator[PageServer]:
    site = PageServer()
    site.start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def documents_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("documents") / "documents.json"


@pytest.fixture(scope="session")
def c360(
    tmp_path_factory: pytest.TempPathFactory, listed_site: PageServer, documents_file: Path
) -> Iterator[Server]:
    """`c360 serve --demo` as a deployment would configure it: the demo data, GraphiQL on,
    one listed origin, the `sales` role bound to trusted documents."""
    settings = Settings.from_env(
        {
            "C360_DATA_DIR": str(tmp_path_factory.mktemp("c360") / "data"),
            "C360_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
            "C360_CORS_ORIGINS": listed_site.origin,
            "C360_TRUSTED_DOCUMENTS_FILE": str(documents_file),
            "C360_TRUSTED_DOCUMENTS_ROLES": "sales",
        }
    ).development()
    load_demo(settings)
    server = Server(create_app(settings))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api(c360: Server) -> Iterator[Api]:
    with httpx.Client(base_url=c360.url, timeout=30) as client:
        yield Api(client)


# per module: while Playwright's sync API runs, this thread looks as if it ran an event loop,
# and the async tests that follow in the suite could not start theirs
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: tests/run installs Debian's chromium package")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=OFFLINE)
    yield browser
    browser.close()


class Recorded:
    """What one page did: every request's URL, and the console's errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.console: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console.append(message.text)

    def origins(self) -> set[str]:
        return {origin_of(url) for url in self.requests}


def origin_of(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


@pytest.fixture
def recorded(browser: Browser) -> Iterator[Recorded]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield Recorded(page)
    context.close()
