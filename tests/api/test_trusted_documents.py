"""Trusted documents: a role named in C360_TRUSTED_DOCUMENTS_ROLES runs only documents
registered with `c360 documents add`, sent by id (`documentId`, or Apollo's
`extensions.persistedQuery.sha256Hash`) or as their exact text; other roles run what they
like, and may name registered documents too."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph_api.cli import app as cli
from graph_api.documents import TrustedDocuments, document_id
from graph_api.errors import ConfigError
from graph_api.settings import Settings
from tests.api.conftest import Api, codes, serving

PROFILE = "query Profile($id: ID!) { customer(id: $id) { id traits { name } } }\n"
OTHER = "query Other($id: ID!) { customer(id: $id) { id identifiers { kind } } }\n"
IDENTIFY = 'mutation { identify(input: {userId: "u-1", traits: {name: "Ada"}}) { customerId } }'

runner = CliRunner()


def register(manifest: Path, *documents: str) -> list[str]:
    """`c360 documents add` each document; the ids it printed."""
    files = []
    for n, text in enumerate(documents):
        source = manifest.parent / f"document-{n}-{len(text)}.graphql"
        source.write_text(text)
        files.append(str(source))
    result = runner.invoke(cli, ["documents", "add", *files, "--file", str(manifest)])
    assert result.exit_code == 0, result.output
    return [line.split("\t")[0] for line in result.output.splitlines()]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "documents.json"
    register(path, PROFILE)
    return path


@pytest.fixture
async def bound(settings: Settings, manifest: Path) -> AsyncIterator[tuple[Api, str, str]]:
    """An API whose `sales` role is bound to trusted documents; a sales key; a customer."""
    bound_settings = dataclasses.replace(
        settings, trusted_documents_file=manifest, trusted_documents_roles=frozenset({"sales"})
    )
    async with serving(bound_settings) as api:
        customer = (await api(IDENTIFY))["identify"]["customerId"]
        yield api, await api.key("sales"), customer


async def post(api: Api, body: dict[str, object], key: str) -> tuple[int, dict[str, object]]:
    response = await api.client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code, response.json()


async def test_a_bound_role_runs_a_registered_document_by_its_id(
    bound: tuple[Api, str, str],
) -> None:
    api, sales, customer = bound
    variables = {"id": customer}
    by_id = {"documentId": document_id(PROFILE), "variables": variables}
    apollo = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_id(PROFILE)[7:]}},
        "variables": variables,
    }
    by_text = {"query": PROFILE, "variables": variables}
    for body in (by_id, apollo, by_text):
        status, answer = await post(api, body, sales)
        assert status == 200, answer
        assert answer == {"data": {"customer": {"id": customer, "traits": {"name": "Ada"}}}}
    response = await api.client.get(
        "/graphql",
        params={"documentId": document_id(PROFILE), "variables": json.dumps(variables)},
        headers={"Authorization": f"Bearer {sales}", "Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["customer"]["id"] == customer


async def test_a_bound_role_may_not_run_a_document_off_the_list(
    bound: tuple[Api, str, str],
) -> None:
    api, sales, customer = bound
    status, answer = await post(api, {"query": OTHER, "variables": {"id": customer}}, sales)
    assert status == 403
    assert codes(answer["errors"]) == ["UNTRUSTED_DOCUMENT"]  # type: ignore[arg-type]
    assert "data" not in answer
    unknown = {"documentId": document_id(OTHER), "variables": {"id": customer}}
    status, answer = await post(api, unknown, sales)
    assert status == 400
    assert codes(answer["errors"]) == ["DOCUMENT_NOT_FOUND"]  # type: ignore[arg-type]


async def test_an_id_and_a_text_that_disagree_are_refused(bound: tuple[Api, str, str]) -> None:
    api, sales, customer = bound
    body = {"documentId": document_id(PROFILE), "query": OTHER, "variables": {"id": customer}}
    status, answer = await post(api, body, sales)
    assert status == 400
    assert codes(answer["errors"]) == ["BAD_REQUEST"]  # type: ignore[arg-type]


async def test_other_roles_run_any_document_and_may_name_registered_ones(
    bound: tuple[Api, str, str],
) -> None:
    api, _, customer = bound
    data = await api(OTHER, {"id": customer})
    assert data["customer"]["identifiers"] == [{"kind": "user_id"}]
    support = await api.key("support")
    status, answer = await post(
        api, {"documentId": document_id(PROFILE), "variables": {"id": customer}}, support
    )
    assert status == 200
    assert answer["data"] == {"customer": {"id": customer, "traits": {"name": "Ada"}}}


async def test_a_document_registered_while_the_server_runs_is_trusted_at_once(
    bound: tuple[Api, str, str], manifest: Path
) -> None:
    api, sales, customer = bound
    body = {"documentId": document_id(OTHER), "variables": {"id": customer}}
    status, _ = await post(api, body, sales)
    assert status == 400
    assert register(manifest, OTHER) == [document_id(OTHER)]
    status, answer = await post(api, body, sales)
    assert status == 200, answer


async def test_a_variable_named_document_id_stays_a_variable(
    bound: tuple[Api, str, str],
) -> None:
    api, _, customer = bound
    query = "query($documentId: ID!) { customer(id: $documentId) { id } }"
    data = await api(query, {"documentId": customer})
    assert data == {"customer": {"id": customer}}
    response = await api.client.get(
        "/graphql",
        params={"query": query, "variables": json.dumps({"documentId": customer})},
        headers={"Authorization": f"Bearer {await api.key('support')}"},
    )
    assert response.json() == {"data": {"customer": {"id": customer}}}


def test_the_cli_refuses_a_document_the_schema_cannot_run(tmp_path: Path) -> None:
    source = tmp_path / "wrong.graphql"
    source.write_text("{ customer(id: 1) { nickname } }")
    manifest = tmp_path / "documents.json"
    result = runner.invoke(cli, ["documents", "add", str(source), "--file", str(manifest)])
    assert result.exit_code == 1
    assert "nickname" in result.output
    assert not manifest.exists()


def test_the_cli_lists_and_removes_documents(manifest: Path) -> None:
    listed = runner.invoke(cli, ["documents", "list", "--file", str(manifest)])
    assert listed.output == f"{document_id(PROFILE)}\t{PROFILE.strip()}\n"
    removed = runner.invoke(
        cli, ["documents", "remove", document_id(PROFILE), "--file", str(manifest)]
    )
    assert removed.exit_code == 0, removed.output
    assert json.loads(manifest.read_text()) == {}


def test_settings_name_the_file_and_the_roles(tmp_path: Path) -> None:
    env = {
        "C360_TRUSTED_DOCUMENTS_FILE": str(tmp_path / "documents.json"),
        "C360_TRUSTED_DOCUMENTS_ROLES": "sales, marketing",
    }
    settings = Settings.from_env(env)
    assert settings.trusted_documents_file == tmp_path / "documents.json"
    assert settings.trusted_documents_roles == {"sales", "marketing"}
    with pytest.raises(ConfigError, match="C360_TRUSTED_DOCUMENTS_FILE"):
        Settings.from_env({"C360_TRUSTED_DOCUMENTS_ROLES": "sales"}).check()
    with pytest.raises(ConfigError, match="unknown role"):
        TrustedDocuments(tmp_path / "documents.json", frozenset({"salse"}))


def test_a_tampered_documents_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "documents.json"
    path.write_text(json.dumps({document_id(PROFILE): OTHER}))
    with pytest.raises(ConfigError, match="not the digest of its text"):
        TrustedDocuments(path, frozenset({"sales"}))
