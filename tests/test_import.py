from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from graph_api.tracking.importer import Importer, csv_rows, detect_format, jsonl_rows, parse_mapping
from graph_api.tracking.segment import SegmentMapper
from identity_graph.adapters.embedded.store import EmbeddedStore
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph

RULES = Rules.parse("[kinds.crm_id]\nlimit = 1\n")


@pytest.fixture
async def graph(tmp_path: Path) -> AsyncIterator[IdentityGraph]:
    store = EmbeddedStore(tmp_path / "data")
    await store.open()
    try:
        yield IdentityGraph(store, RULES)
    finally:
        await store.close()


async def test_jsonl_bad_rows_are_reported_and_good_rows_ingested(graph: IdentityGraph) -> None:
    lines = [
        json.dumps(
            {"type": "identify", "userId": "u1", "messageId": "1", "traits": {"email": "a@b.co"}}
        ),
        "{broken",
        "",
        json.dumps({"type": "track", "userId": "u1", "messageId": "2"}),
        json.dumps({"type": "track", "userId": "null", "event": "X", "messageId": "3"}),
        json.dumps({"type": "track", "userId": "u2", "event": "X", "messageId": "4"}),
    ]
    mapper = SegmentMapper(RULES, source="import")
    report = await Importer(graph, batch_size=2).run(jsonl_rows(lines, mapper))
    assert (report.accepted, report.dropped) == (2, 1)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, "not valid JSON"),
        (4, "event is required"),
    ]
    owners = await graph.store.profile_ids(["user_id:u1", "email:a@b.co", "user_id:u2"])
    assert owners["user_id:u1"] == owners["email:a@b.co"] != owners["user_id:u2"]
    again = await Importer(graph).run(jsonl_rows(lines, mapper))
    assert (again.accepted, again.duplicate, again.dropped) == (0, 2, 1)


async def test_csv_with_a_column_mapping(graph: IdentityGraph) -> None:
    lines = [
        "Customer,E-mail,Phone number,crm_id,plan,when\n",
        "c1,Jane@Example.com,(415) 555-0134,CRM-1,pro,2024-01-02T03:04:05Z\n",
        "c2,not-an-email,,CRM-2,free,\n",
        ",,,,free,\n",
        "c3,c3@example.com,,CRM-3,team,\n",
    ]
    mapping = parse_mapping(
        ["Customer=user_id", "E-mail=email", "Phone number=phone", "when=timestamp"], RULES.kinds
    )
    mapper = SegmentMapper(RULES, source="crm")
    report = await Importer(graph).run(csv_rows(lines, mapper, mapping))
    assert report.accepted == 2
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (3, "E-mail"),
        (4, "no identifier in the message"),
    ]
    owners = await graph.store.profile_ids(["user_id:c1", "phone:+14155550134", "crm_id:CRM-1"])
    assert len(set(owners.values())) == 1 and len(owners) == 3
    profile = owners["user_id:c1"]
    traits = (await graph.store.traits([profile]))[profile]
    assert [(t.name, t.value, t.source) for t in traits] == [("plan", "pro", "crm")]
    again = await Importer(graph).run(csv_rows(lines, mapper, mapping))
    assert again.duplicate == 2


def test_mapping_and_format_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown target 'shoe'"):
        parse_mapping(["a=shoe"], RULES.kinds)
    with pytest.raises(ValueError, match="expected COLUMN=KIND"):
        parse_mapping(["a"], RULES.kinds)
    assert detect_format(Path("x.ndjson"), None) == "jsonl"
    with pytest.raises(ValueError, match="--format"):
        detect_format(Path("x.parquet"), None)
    with pytest.raises(ValueError, match="no column maps"):
        list(csv_rows(["a,b\n", "1,2\n"], SegmentMapper(RULES, source="import"), {}))


async def test_demo_data_is_deterministic_and_exercises_the_rules(graph: IdentityGraph) -> None:
    from graph_api.tracking import demo

    raw = demo.messages(300, seed=3)
    assert raw == demo.messages(300, seed=3)
    devices: dict[str, set[str]] = {}
    for m in raw:
        if m.get("userId") and "device" in m["context"]:
            devices.setdefault(m["context"]["device"]["id"], set()).add(m["userId"])
    assert any(len(users) > 1 for users in devices.values())
    report = await demo.load(graph, customers=300, seed=3)
    assert report.accepted > 2000 and report.dropped > 0 and not report.rejected
