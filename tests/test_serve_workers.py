"""`c360 serve --workers N`: several API processes over one Neo4j database; the embedded
store refuses, saying why."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from stores import neo4j_uri
from typer.testing import CliRunner

from graph_api.cli import app

ADMIN_KEY = "workers-test-admin-key-0123456789abcdefXYZ"


def test_the_embedded_store_refuses_workers(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["serve", "--workers", "2", "--data-dir", str(tmp_path / "data")],
        env={"C360_STORE": "embedded"},
    )
    assert result.exit_code != 0
    assert "--workers needs the neo4j store" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.neo4j
def test_two_workers_serve_one_neo4j_database(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "C360_STORE": "neo4j",
        "NEO4J_URI": neo4j_uri(),
        "C360_HASH_KEY": "workers-test-hash-key",
        "C360_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
    }
    log = tmp_path / "server.log"
    out = log.open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from graph_api.cli import app; app()",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the workers did not become ready"
            time.sleep(0.3)
        assert len(_children(server.pid)) >= 2  # two workers (and uvicorn's helpers)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        query = {
            "query": 'mutation { identify(input: {messageId: "w1", userId: "w-user"}) { status } }'
        }
        write = httpx.post(f"{base}/graphql", json=query, headers=headers, timeout=10)
        assert write.status_code == 200, write.text
        lookup = {"query": '{ customer(identifier: {kind: "user_id", value: "w-user"}) { id } }'}
        # fresh connections spread over the workers: every one answers the same customer
        ids = set()
        for _ in range(12):
            response = httpx.post(f"{base}/graphql", json=lookup, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            ids.add(response.json()["data"]["customer"]["id"])
        assert len(ids) == 1 and None not in ids
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        out.close()
