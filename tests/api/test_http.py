"""The HTTP surface: bad bodies, size limit, health, readiness, error masking."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graph_api.app import create_app
from graph_api.services import Services
from graph_api.settings import Secret, Settings
from identity_graph.adapters.embedded.store import GC_THRESHOLDS
from identity_graph.errors import StoreUnavailable
from identity_graph.model import TraitValue
from tests.api.conftest import ADMIN_KEY, Api, codes

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def services(app: Starlette) -> Services:
    found: Services = app.state.services
    return found


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=b'{"query": ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert codes(response.json()["errors"]) == ["BAD_REQUEST"]


async def test_wrong_shapes_are_400(client: httpx.AsyncClient) -> None:
    for body in (b"[1, 2]", b'{"query": 5}', b'"text"', b"{}"):
        response = await client.post(
            "/graphql", content=body, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_syntax_error_and_wrong_variable_type(api: Api) -> None:
    response = await api.post("{ customers { ")
    assert codes(response.json()["errors"]) == ["BAD_REQUEST"]
    errors = await api.errors(
        "query($n: Int) { customers(first: $n) { totalCount } }", {"n": "many"}
    )
    assert codes(errors) == ["BAD_REQUEST"]


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = b'{"query": "{ customers { totalCount } }", "x": "' + b"a" * 1_000_001 + b'"}'
    response = await client.post("/graphql", content=big, headers=AUTH)
    assert response.status_code == 413
    assert codes(response.json()["errors"]) == ["PAYLOAD_TOO_LARGE"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"a" * 100_000

    response = await client.post(
        "/graphql", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_the_app_tunes_the_garbage_collector_however_it_is_started(
    settings: Settings, cpython_gc: None
) -> None:
    """Plain `uvicorn --factory` runs only the app's lifespan, not `c360 serve`."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        assert gc.get_threshold() == GC_THRESHOLDS


async def test_health_and_readiness(
    client: httpx.AsyncClient, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"status": "ready"}

    async def down() -> None:
        raise StoreUnavailable("connection refused to 10.0.0.7")

    monkeypatch.setattr(services(app).store, "ping", down)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "10.0.0.7" not in response.text
    assert (await client.get("/healthz")).status_code == 200


async def test_metrics_endpoint(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "c360_http_requests" in response.text


async def test_unexpected_errors_are_masked(
    api: Api, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api('mutation { identify(input: {userId: "u1"}) { status } }')

    async def broken(*args: object, **options: object) -> dict[str, list[TraitValue]]:
        raise RuntimeError("secret table traits_v2 at /srv/db")

    # the embedded store reads the customer's traits in its `customer_context`, not through
    # `traits`
    monkeypatch.setattr(services(app).store, "traits", broken)
    monkeypatch.setattr(services(app).store, "customer_context", broken)
    response = await api.post(
        '{ customer(identifier: {kind: "user_id", value: "u1"}) { id traits { email } } }'
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"customer": None} or body["data"]["customer"]["traits"] is None
    # the traits come with the customer's one store read (graph_api.prefetch), so the
    # failure surfaces at the customer
    [error] = body["errors"]
    assert error["message"] == "internal error"
    assert error["extensions"] == {"code": "INTERNAL"}
    assert error["path"][0] == "customer"
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_store_unavailable_is_503(
    api: Api, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(keys: Sequence[str]) -> dict[str, str]:
        raise StoreUnavailable("bolt://db:7687 refused")

    monkeypatch.setattr(services(app).store, "profile_ids", down)
    response = await api.post('{ customer(identifier: {kind: "user_id", value: "u"}) { id } }')
    assert response.status_code == 503
    assert codes(response.json()["errors"]) == ["STORE_UNAVAILABLE"]
    assert "7687" not in response.text


async def test_mutation_over_get_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": 'mutation { revokeApiKey(id: "x") }'}, headers=AUTH
    )
    assert response.status_code in (400, 405)


async def production(tmp_path: Path, **overrides: Any) -> Starlette:
    """An app on the production defaults (no development conveniences)."""
    return create_app(Settings(data_dir=tmp_path / "prod", **overrides))


async def test_production_defaults_close_graphiql_introspection_and_metrics(
    tmp_path: Path,
) -> None:
    app = await production(tmp_path, bootstrap_admin_key=Secret(ADMIN_KEY))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as client:
            page = await client.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code in (401, 404, 405) and "graphiql" not in page.text.lower()
            body = {"query": "{ __schema { types { name } } }"}
            auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
            answer = (await client.post("/graphql", json=body, headers=auth)).json()
            assert answer.get("data") is None and answer["errors"]
            assert (await client.get("/metrics")).status_code == 404


async def test_metrics_behind_a_bearer_token(tmp_path: Path) -> None:
    app = await production(tmp_path, metrics_token=Secret("scrape-me-0123456789"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c360.test") as client:
            assert (await client.get("/metrics")).status_code == 401
            wrong = {"Authorization": "Bearer scrape-me"}
            assert (await client.get("/metrics", headers=wrong)).status_code == 401
            right = {"Authorization": "Bearer scrape-me-0123456789"}
            response = await client.get("/metrics", headers=right)
            assert response.status_code == 200 and "c360_http_requests" in response.text
