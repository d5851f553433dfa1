"""The embedded store reads a batch of customers' traits and consent in a statement per
900 identifiers, however many customers the batch holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streams import observe

from identity_graph.adapters.embedded import readers
from identity_graph.adapters.embedded.journal import connect
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph


async def test_traits_and_consents_of_many_customers_take_one_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []

    def traced(path: Path) -> sqlite3.Connection:
        db = connect(path)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(readers, "connect", traced)
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        graph = IdentityGraph(store, Rules.default())
        outcomes = await graph.ingest(
            [
                observe(f"m{n}", f"user_id:u{n}", f"email:p{n}@x.io", traits={"plan": "pro"})
                for n in range(50)
            ]
        )
        ids = [o.profile_id for o in outcomes if o.profile_id]
        for wanted in (ids[:1], ids):
            statements.clear()
            traits = await store.traits(wanted)
            consents = await store.consents(wanted)
            assert len([s for s in statements if s.startswith("SELECT")]) == 2
            assert all(len(traits[pid]) == 1 for pid in wanted)
            assert all(consents[pid] == [] for pid in wanted)
    finally:
        await store.close()
