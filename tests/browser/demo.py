"""The demo data set in a data directory, and a GraphQL client to a server that holds it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from graph_api.services import build_services
from graph_api.settings import Settings
from graph_api.tracking import demo

ADMIN_KEY = "c360_browser-admin-key-Hq4Lp8Zt2Wm6Rx9Vb3Kd"


def load_demo(settings: Settings) -> None:
    """Load `c360 serve --demo`'s data set into the settings' store, then close it."""

    async def load() -> None:
        services = build_services(settings)
        await services.store.open()
        try:
            await demo.load(services.graph)
        finally:
            await services.store.close()

    # in a thread of its own: Playwright's sync API may already run a loop in this one
    loader = threading.Thread(target=lambda: asyncio.run(load()))
    loader.start()
    loader.join()


class Api:
    """GraphQL over HTTP to the test server, to set up and check what the pages show."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str = ADMIN_KEY
    ) -> dict[str, Any]:
        """The whole answer (`data` and any `errors`)."""
        response = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body.get("data") is not None, body
        return body

    def key(self, role: str) -> str:
        body = self("mutation($r: String!) { createApiKey(role: $r) { key } }", {"r": role})
        key: str = body["data"]["createApiKey"]["key"]
        return key
