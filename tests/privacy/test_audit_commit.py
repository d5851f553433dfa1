"""A clear read is answered only once its audit entry is committed (ordering, not timing): the
embedded store's audit write is held in its thread, and the answer waits for it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from graph_api.settings import Settings
from identity_graph.adapters.embedded.sql import AUDIT_FILE
from tests.api.conftest import Api
from tests.privacy.conftest import Seeded, token
from tests.privacy.test_audit import READ


def committed_entries(path: Path, customer: str) -> int:
    """Entries for `customer` that another connection sees: committed ones only."""
    with closing(sqlite3.connect(path)) as other:
        [(count,)] = other.execute("SELECT count(*) FROM audit WHERE customer_id = ?", (customer,))
        return int(count)


class HeldWriter:
    """The audit file's writer, holding each audit append until released, and noting
    whether the append was committed when the writer returned from it."""

    def __init__(self, db: sqlite3.Connection, path: Path, customer: str) -> None:
        self.db, self.path, self.customer = db, path, customer
        self.before = committed_entries(path, customer)
        self.loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self.release = threading.Event()
        self.events: list[str] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if not sql.startswith("INSERT INTO audit"):
            return self.db.execute(sql, params)
        self.loop.call_soon_threadsafe(self.entered.set)
        self.release.wait()
        cursor = self.db.execute(sql, params)
        committed = committed_entries(self.path, self.customer) == self.before + 1
        self.events.append("committed" if committed else "returned uncommitted")
        return cursor


async def test_a_read_is_answered_only_after_its_entry_is_committed(
    api: Api, app: Starlette, settings: Settings, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings.data_dir / AUDIT_FILE
    side_file = app.state.services.records._file
    held = HeldWriter(side_file._writer, path, seeded.customer_id)
    monkeypatch.setattr(side_file, "_writer", held)

    async def answered() -> Any:
        response = await api.post(
            READ % "traits { email }", {"id": seeded.customer_id}, key=token("support")
        )
        held.events.append("answered")
        return response

    request = asyncio.create_task(answered())
    try:
        await held.entered.wait()
        for _ in range(50):  # everything else the request does is the event loop's to run
            await asyncio.sleep(0)
        assert not request.done()
        assert committed_entries(path, seeded.customer_id) == held.before
    finally:
        held.release.set()
    response = await request
    assert response.json()["data"]["customer"]["traits"]["email"] is not None
    assert held.events == ["committed", "answered"]
