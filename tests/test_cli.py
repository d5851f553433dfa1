from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from stores import OLD_PAGE_SIZE, older_page_sizes, page_size
from typer.testing import CliRunner

import graph_api.cli
from graph_api.access.auth import hash_key
from graph_api.access.masking import digest
from graph_api.cli import app
from graph_api.schema import export_schema
from identity_graph.adapters.embedded.journal import JOURNAL_FILE, TABLES_FILE
from identity_graph.adapters.embedded.store import GC_THRESHOLDS, EmbeddedStore

runner = CliRunner()


def env(tmp_path: Path) -> dict[str, str]:
    return {"C360_DATA_DIR": str(tmp_path / "data"), "C360_STORE": "embedded"}


def owners(data_dir: Path, keys: list[str]) -> dict[str, str]:
    async def read() -> dict[str, str]:
        store = EmbeddedStore(data_dir)
        await store.open()
        try:
            return await store.profile_ids(keys)
        finally:
            await store.close()

    return asyncio.run(read())


def test_import_jsonl_reports_bad_rows_and_keeps_good_ones(tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    messages = [
        {"type": "identify", "userId": "u1", "messageId": "1", "traits": {"email": "u1@x.io"}},
        {"type": "track", "userId": "u1", "messageId": "2", "event": "Order Completed"},
        {"type": "identify", "userId": "u2", "messageId": "3", "traits": {"email": "nope"}},
    ]
    file.write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    result = runner.invoke(app, ["import", str(file)], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "accepted 2" in result.output and "rejected 1" in result.output
    assert "line 3: traits.email: invalid email: not an email address" in result.output
    assert owners(tmp_path / "data", ["user_id:u1", "email:u1@x.io"]).keys() == {
        "user_id:u1",
        "email:u1@x.io",
    }


def test_import_csv_with_map_options(tmp_path: Path) -> None:
    file = tmp_path / "crm.csv"
    file.write_text("id,mail,tier\nc1,c1@x.io,gold\nc2,bad-mail,silver\nc3,c3@x.io,\n")
    args = ["import", str(file), "--map", "id=user_id", "--map", "mail=email"]
    result = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "other")], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "accepted 2" in result.output and "line 3: mail" in result.output
    assert len(owners(tmp_path / "other", ["user_id:c1", "user_id:c3", "user_id:c2"])) == 2


def test_import_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "missing.jsonl")], env=env(tmp_path))
    assert result.exit_code == 1
    assert "error: no such file" in result.output and "Traceback" not in result.output
    file = tmp_path / "crm.csv"
    file.write_text("id\n1\n")
    result = runner.invoke(app, ["import", str(file), "--map", "id=shoe"], env=env(tmp_path))
    assert result.exit_code == 1 and "unknown target 'shoe'" in result.output
    result = runner.invoke(app, ["import", str(file), "--store", "mongo"], env=env(tmp_path))
    assert result.exit_code == 1 and "--store must be one of" in result.output


def test_keys_create_prints_the_key_once_and_stores_its_hash(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["keys", "create", "--role", "ingest", "--name", "sdk"], env=env(tmp_path)
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]

    async def stored() -> str | None:
        store = EmbeddedStore(tmp_path / "data")
        await store.open()
        try:
            record = await store.records.api_key(hash_key(key))
            return None if record is None else record.role
        finally:
            await store.close()

    assert asyncio.run(stored()) == "ingest"
    bad = runner.invoke(app, ["keys", "create", "--role", "wizard"], env=env(tmp_path))
    assert bad.exit_code == 1 and "unknown role 'wizard'" in bad.output


def by_digest(data_dir: Path, key: str, value: str, kind: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        store = EmbeddedStore(data_dir)
        await store.open()
        try:
            return await store.profile_ids_by_digest([digest(key.encode(), value)], kind=kind)
        finally:
            await store.close()

    return asyncio.run(read())


def test_rehash_after_the_hash_key_changes(tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    message = {"type": "identify", "userId": "u1", "messageId": "1", "traits": {"email": "a@x.io"}}
    file.write_text(json.dumps(message) + "\n")
    old = {**env(tmp_path), "C360_HASH_KEY": "old-key-" + "x" * 24}
    assert runner.invoke(app, ["import", str(file)], env=old).exit_code == 0
    [pid] = owners(tmp_path / "data", ["email:a@x.io"]).values()
    assert by_digest(tmp_path / "data", "old-key-" + "x" * 24, "a@x.io", "email") != {}
    new = {**env(tmp_path), "C360_HASH_KEY": "new-key-" + "y" * 24}
    assert by_digest(tmp_path / "data", "new-key-" + "y" * 24, "a@x.io", "email") == {}
    result = runner.invoke(app, ["rehash", "--batch-size", "1"], env=new)
    assert result.exit_code == 0, result.output
    assert "stored the digests of 2 identifiers" in result.output
    found = by_digest(tmp_path / "data", "new-key-" + "y" * 24, "a@x.io", "email")
    assert list(found.values()) == [pid]
    assert by_digest(tmp_path / "data", "old-key-" + "x" * 24, "a@x.io", "email") == {}


def customer(data_dir: Path, key: str) -> tuple[set[str], dict[str, Any], list[str]]:
    """(identifiers, traits, event names) of the customer `key` belongs to."""

    async def read() -> tuple[set[str], dict[str, Any], list[str]]:
        store = EmbeddedStore(data_dir)
        await store.open()
        try:
            pid = (await store.profile_ids([key]))[key]
            [profile] = (await store.profiles([pid])).values()
            traits = (await store.traits([pid]))[pid]
            events = (await store.events([pid], first=10, after=None, types=None))[pid].items
            return (
                {r.identifier.key for r in profile.identifiers},
                {t.name: t.value for t in traits},
                [e.name for e in events if e.name is not None],
            )
        finally:
            await store.close()

    return asyncio.run(read())


def test_compact_brings_an_older_data_dir_to_the_current_page_sizes_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "events.jsonl"
    messages = [
        {"type": "identify", "userId": "u1", "messageId": "1", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "u1", "messageId": "2", "event": "Paid"},
        {"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "3"},
    ]
    file.write_text("".join(json.dumps(m) + "\n" for m in messages))
    data_dir = tmp_path / "data"
    with older_page_sizes(monkeypatch):
        assert runner.invoke(app, ["import", str(file)], env=env(tmp_path)).exit_code == 0
    before = customer(data_dir, "user_id:u1")
    assert before == ({"user_id:u1", "anonymous_id:a1"}, {"plan": "pro"}, ["Paid"])
    assert page_size(data_dir / TABLES_FILE) == page_size(data_dir / JOURNAL_FILE) == OLD_PAGE_SIZE

    result = runner.invoke(app, ["compact"], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "c360.sqlite3:" in result.output and "pages of 4 KB -> 16 KB" in result.output
    assert "journal.sqlite3:" in result.output and "pages of 4 KB -> 64 KB" in result.output
    assert page_size(data_dir / TABLES_FILE) == 16384
    assert page_size(data_dir / JOURNAL_FILE) == 65536
    assert customer(data_dir, "user_id:u1") == before


def test_compact_refuses_a_store_in_use_or_missing_in_one_line(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["compact"], env=env(tmp_path))
    assert missing.exit_code == 1
    said = " ".join(missing.output.split())  # the console wraps a long path
    assert said == f"error: no embedded store in {tmp_path / 'data'}"

    async def compact_while_open() -> Any:
        store = EmbeddedStore(tmp_path / "data")
        await store.open()
        try:
            return runner.invoke(app, ["compact"], env=env(tmp_path))
        finally:
            await store.close()

    busy = asyncio.run(compact_while_open())
    assert busy.exit_code == 1
    said = " ".join(busy.output.split())
    assert said == f"error: data directory {tmp_path / 'data'} is in use by another c360 process"


def test_export_schema_prints_the_sdl() -> None:
    result = runner.invoke(app, ["export-schema"])
    assert result.exit_code == 0
    assert result.stdout.strip() == export_schema().strip()


def test_serve_demo_loads_the_demo_with_the_servers_gc_settings_then_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpython_gc: None
) -> None:
    """The demo is loaded before the app (and its lifespan, which tunes the collector) runs."""
    loaded_with: list[tuple[int, ...]] = []
    load_demo = graph_api.cli.load_demo

    async def recording_load_demo(services: Any) -> str:
        loaded_with.append(gc.get_threshold())
        return await load_demo(services)

    served: list[tuple[object, str, int]] = []
    monkeypatch.setattr(graph_api.cli, "load_demo", recording_load_demo)
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: served.append((app, host, port)))
    result = runner.invoke(app, ["serve", "--demo", "--port", "8123"], env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert loaded_with == [GC_THRESHOLDS]
    assert "Demo data loaded" in result.output and "Admin key" in result.output
    assert [(host, port) for _, host, port in served] == [("127.0.0.1", 8123)]


ADMIN = "c360_cli-admin-key-Rz5Qw1Xv8Lm3Tk6Nb2Hc"


def one_line(result: Any) -> str:
    said = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 1 and said.startswith("error: "), result.output
    assert "Traceback" not in result.output
    return said


def test_keys_are_managed_through_a_running_server(tmp_path: Path) -> None:
    """The server holds the embedded data directory: the CLI says so and goes through the
    server's API with an admin key instead."""
    from graph_api.app import create_app
    from graph_api.settings import Secret, Settings
    from tests.api.servers import Server

    data_dir = tmp_path / "data"
    server = Server(create_app(Settings(data_dir=data_dir, bootstrap_admin_key=Secret(ADMIN))))
    server.start()
    try:
        blocked = runner.invoke(app, ["keys", "create", "--role", "support"], env=env(tmp_path))
        said = one_line(blocked)
        assert "is in use by another c360 process" in said and "--url" in said

        remote = ["--url", server.url, "--admin-key", ADMIN]
        made = runner.invoke(
            app,
            ["keys", *remote, "create", "--role", "support", "--name", "desk"],
            env=env(tmp_path),
        )
        assert made.exit_code == 0, made.output
        key = made.stdout.strip().splitlines()[-1]
        assert key.startswith("c360_") and "with role support" in made.stderr
        reply = httpx.post(
            f"{server.url}/graphql",
            json={"query": "{ customers(first: 1) { totalCount } }"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert reply.status_code == 200 and reply.json()["data"]["customers"]["totalCount"] == 0

        through_env = {**env(tmp_path), "C360_URL": server.url, "C360_ADMIN_KEY": ADMIN}
        listed = runner.invoke(app, ["keys", "list"], env=through_env)
        assert listed.exit_code == 0, listed.output
        [row] = [line.split("\t") for line in listed.stdout.splitlines() if "\tdesk\t" in line]
        key_id = row[0]
        assert row[1] == "support"
        assert key not in listed.stdout and hash_key(key) not in listed.stdout

        revoked = runner.invoke(app, ["keys", "revoke", key_id], env=through_env)
        assert revoked.exit_code == 0, revoked.output
        reply = httpx.post(
            f"{server.url}/graphql",
            json={"query": "{ customers(first: 1) { totalCount } }"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert reply.status_code == 401
        again = runner.invoke(app, ["keys", "revoke", key_id], env=through_env)
        assert one_line(again) == "error: the server refused: no API key with that id (NOT_FOUND)"

        wrong_key = ["--url", server.url, "--admin-key", "c360_nope"]
        wrong = runner.invoke(app, ["keys", *wrong_key, "list"], env=env(tmp_path))
        assert one_line(wrong) == (
            "error: the server refused: unknown, revoked or expired API key (INVALID_TOKEN)"
        )
        keyless = runner.invoke(app, ["keys", "--url", server.url, "list"], env=env(tmp_path))
        assert "--url needs an admin API key" in one_line(keyless)
    finally:
        server.stop()
    gone = runner.invoke(app, ["keys", *remote, "list"], env=env(tmp_path))
    assert one_line(gone).startswith(f"error: cannot reach the c360 server at {server.url}")


def test_keys_list_and_revoke_with_the_store_stopped(tmp_path: Path) -> None:
    expiring = ["--name", "app", "--expires-at", "2999-01-31T00:00Z"]
    made = runner.invoke(app, ["keys", "create", "--role", "ingest", *expiring], env=env(tmp_path))
    assert made.exit_code == 0, made.output
    assert "until 2999-01-31T00:00:00+00:00;" in " ".join(made.stderr.split())
    listed = runner.invoke(app, ["keys", "list"], env=env(tmp_path))
    assert listed.exit_code == 0, listed.output
    header, *rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert header == ["id", "role", "name", "created", "expires", "revoked"]
    [row] = rows
    assert row[1:3] == ["ingest", "app"]
    assert row[4:] == ["2999-01-31T00:00:00+00:00", "-"]
    revoked = runner.invoke(app, ["keys", "revoke", row[0]], env=env(tmp_path))
    assert revoked.exit_code == 0 and f"revoked key {row[0]}" in revoked.output
    listed = runner.invoke(app, ["keys", "list"], env=env(tmp_path))
    [row] = [line.split("\t") for line in listed.stdout.splitlines()[1:]]
    assert row[5] != "-"
    again = runner.invoke(app, ["keys", "revoke", row[0]], env=env(tmp_path))
    assert one_line(again) == f"error: no API key '{row[0]}' that is not revoked already"
    for bad, reason in (("tomorrow", "must be an ISO 8601 time"), ("2999-01-01", "time zone")):
        result = runner.invoke(
            app, ["keys", "create", "--role", "ingest", "--expires-at", bad], env=env(tmp_path)
        )
        assert reason in one_line(result)
