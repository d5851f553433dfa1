"""`c360 privacy export|erase` and `c360 retention run`, on an embedded data directory."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph_api.cli import app
from graph_api.privacy.export import SECTIONS
from tests.api.people import ANN_VALUES, OTHERS_VALUES, messages

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An embedded data directory holding the people of `tests.api.people`."""
    variables = {"C360_DATA_DIR": str(tmp_path / "data"), "C360_STORE": "embedded"}
    file = tmp_path / "people.jsonl"
    file.write_text("".join(json.dumps(m) + "\n" for m in messages()))
    result = runner.invoke(app, ["import", str(file)], env=variables)
    assert result.exit_code == 0 and "accepted 8" in result.output, result.output
    return variables


def test_export_streams_one_document_to_a_private_file(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "ann.json"
    args = ["privacy", "export", "--identifier", "email: Annabel.Erasable@Example.com "]
    result = runner.invoke(app, [*args, "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert f"exported to {out}" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not out.with_name("ann.json.partial").exists()
    document = json.loads(out.read_text())
    assert list(document) == list(SECTIONS)
    assert [e["id"] for e in document["events"]] == ["ann-4", "ann-3", "ann-1"]
    text = out.read_text()
    assert [v for v in ANN_VALUES if v not in text] == []
    assert [v for v in OTHERS_VALUES if v in text] == []


def test_export_to_stdout_is_audited_as_the_cli(env: dict[str, str]) -> None:
    args = ["privacy", "export", "--identifier", "user_id:ann-user-5521"]
    assert runner.invoke(app, args, env=env).exit_code == 0
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    [previous, *_] = [e for e in document["accessLog"] if e["principal"].startswith("cli:")][1:]
    assert previous["role"] == "admin" and "dataSubjectExport.events" in previous["fields"]


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        ("ann@example.com", "--identifier must be KIND:VALUE"),
        ("shoe:ann", "unknown identifier kind"),
        ("email:not-an-email", "invalid email"),
        ("email:nobody@example.com", "no customer holds email:nobody@example.com"),
    ],
)
def test_a_bad_identifier_is_one_line(env: dict[str, str], identifier: str, message: str) -> None:
    for command in (["export"], ["erase", "--reason", "request"]):
        result = runner.invoke(app, ["privacy", *command, "--identifier", identifier], env=env)
        assert result.exit_code == 1
        assert message in result.stderr and "Traceback" not in result.output


def test_erase_deletes_and_suppresses(env: dict[str, str]) -> None:
    args = ["privacy", "erase", "--identifier", "user_id:ann-user-5521"]
    refused = runner.invoke(app, [*args, "--reason", "  "], env=env)
    assert refused.exit_code == 1 and "reason" in refused.stderr
    result = runner.invoke(app, [*args, "--reason", "GDPR Art. 17 #9"], env=env)
    assert result.exit_code == 0, result.output
    assert "5 identifiers, 3 events, 5 suppressed" in result.stdout
    again = runner.invoke(app, [*args, "--reason", "again"], env=env)
    assert again.exit_code == 1 and "no customer holds user_id:ann-user-5521" in again.stderr
    bob = ["privacy", "erase", "--identifier", "user_id:bob-user-1", "--reason", "r"]
    kept = runner.invoke(app, [*bob, "--no-suppress"], env=env)
    assert kept.exit_code == 0 and "0 suppressed" in kept.stdout, kept.output
    export = ["privacy", "export", "--identifier", "email:annabel.erasable@example.com"]
    assert "no customer holds" in runner.invoke(app, export, env=env).stderr


def test_retention_run_reports_what_it_deleted(env: dict[str, str], tmp_path: Path) -> None:
    policy = tmp_path / "retention.toml"
    policy.write_text("[events]\ndays = 1\n")  # every event of the people is older
    with_file = {**env, "C360_RETENTION_FILE": str(policy)}
    export = ["privacy", "export", "--identifier", "user_id:ann-user-5521"]
    assert len(json.loads(runner.invoke(app, export, env=env).stdout)["events"]) == 3
    result = runner.invoke(app, ["retention", "run"], env=with_file)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deleted 5 events, 0 audit entries, 0 inactive profiles")
    assert json.loads(runner.invoke(app, export, env=env).stdout)["events"] == []
    policy.write_text("[events]\ndays = -1\n")
    bad = runner.invoke(app, ["retention", "run"], env=with_file)
    assert bad.exit_code == 1 and "line 2" in bad.stderr and "C360_RETENTION_FILE" in bad.stderr
