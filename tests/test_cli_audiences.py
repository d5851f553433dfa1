"""The CLI's writes move audience memberships as a server's do: `c360 import` and
`c360 privacy erase` run the audience engine over the customers they touch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from graph_api.cli import app
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.audiences.engine import AudienceEngine
from identity_graph.rules import Rules

runner = CliRunner()
BUYERS = {"event": {"name": "Order Completed", "count": {"op": "gte", "value": 1}}}


def members(data_dir: Path, define: bool = False) -> dict[str, int]:
    """Each audience's size (defining `buyers` first if asked), read through the store."""

    async def run() -> dict[str, int]:
        store = EmbeddedStore(data_dir)
        await store.open()
        try:
            if define:
                engine = AudienceEngine(store, store.audiences, Rules.default())
                await engine.start()
                await engine.define_audience("buyers", BUYERS, None)
                await engine.settle()
                await engine.stop()
            return {a.name: a.size for a in await store.audiences.audiences()}
        finally:
            await store.close()

    return asyncio.run(run())


def test_an_import_and_an_erasure_move_memberships(tmp_path: Path) -> None:
    env = {
        "C360_DATA_DIR": str(tmp_path / "data"),
        "C360_STORE": "embedded",
        "C360_HASH_KEY": "cli-audiences-test-key",
    }
    assert members(tmp_path / "data", define=True) == {"buyers": 0}
    file = tmp_path / "orders.jsonl"
    messages = [
        {"type": "identify", "userId": "b1", "messageId": "1", "traits": {"email": "b1@x.io"}},
        {"type": "track", "userId": "b1", "messageId": "2", "event": "Order Completed"},
        {"type": "track", "userId": "b2", "messageId": "3", "event": "Order Completed"},
        {"type": "track", "userId": "b3", "messageId": "4", "event": "Product Viewed"},
    ]
    file.write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    result = runner.invoke(app, ["import", str(file)], env=env)
    assert result.exit_code == 0, result.output
    assert members(tmp_path / "data") == {"buyers": 2}
    erase = ["privacy", "erase", "--identifier", "user_id:b1", "--reason", "Art. 17 request"]
    result = runner.invoke(app, erase, env=env)
    assert result.exit_code == 0, result.output
    assert members(tmp_path / "data") == {"buyers": 1}
