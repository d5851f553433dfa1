"""`c360 audiences export` and the role-scoped customer views it renders, on an embedded
data directory filled through the real ingest and audience engine.

People: Ann ordered (revenue 42, sku-31337), denied advertising and holds traits that look
like spreadsheet formulas; Bob ordered (no revenue); Cy only watched a video. The audience
`buyers` is who ordered: Ann and Bob.
"""

from __future__ import annotations

import asyncio
import csv
import doctest
import io
import json
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from typer.testing import CliRunner

from graph_api.access.masking import keyed_hash, mask
from graph_api.activation import export
from graph_api.activation.views import customer_views
from graph_api.app import create_app
from graph_api.cli import app
from graph_api.services import Services, build_services
from graph_api.settings import Secret, Settings
from graph_api.tracking.importer import Importer, jsonl_rows
from graph_api.tracking.segment import SegmentMapper
from identity_graph.audiences.store import Status
from identity_graph.errors import StoreUnavailable
from tests.api.conftest import ADMIN_KEY, Api

runner = CliRunner()
T = TypeVar("T")
HASH_KEY = "audience-export-test-key"
TRAITS = {
    "orders": {"kind": "event_count", "event": "Order Completed"},
    "spend": {"kind": "sum", "event": "Order Completed", "property": "revenue"},
    "lastSku": {"kind": "last", "event": "Order Completed", "property": "sku"},
}
BUYERS = {"computed": {"name": "orders", "op": "gte", "value": 1}}
FORMULAS = {"nickname": '=HYPERLINK("http://evil.example","x")', "note": "@SUM(A1)"}
ANN_TRAITS = {
    "email": "Ann.Smith@Example.com",
    "name": "Annabel Smith",
    "phone": "+14155550123",
    "address": {"street": "Ann Street 9", "city": "Paris"},
    "plan": "pro",
    "billing": {"card_number": "4111 1111 1111 1111"},
    "prefs": {"colour": "turquoise", "iban": "DE89370400440532013000"},
    **FORMULAS,
}


def message(mid: str, kind: str, user: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": mid, "userId": user, **fields}


PEOPLE = [
    message(
        "a1",
        "identify",
        "ann-1",
        traits=ANN_TRAITS,
        context={"consent": {"categoryPreferences": {"advertising": False}}},
    ),
    message(
        "a2",
        "track",
        "ann-1",
        event="Order Completed",
        properties={"revenue": 42, "sku": "sku-31337"},
    ),
    message("b1", "identify", "bob-1", traits={"email": "bob.jones@example.com", "plan": "-1+2"}),
    message("b2", "track", "bob-1", event="Order Completed"),
    message("c1", "identify", "cy-1", traits={"email": "cy@example.com"}),
    message("c2", "track", "cy-1", event="Video Played"),
]


def settings_of(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        store="embedded",
        hash_key=Secret(HASH_KEY),
        bootstrap_admin_key=Secret(ADMIN_KEY),
    )


@asynccontextmanager
async def opened(data_dir: Path) -> AsyncIterator[Services]:
    """The services of the data directory, its store open and its engine started."""
    services = build_services(settings_of(data_dir))
    await services.store.open()
    try:
        await services.audiences.start()
        try:
            # the engine rebuilds every audience at start: done before the test reads
            await asyncio.wait_for(services.audiences.settle(), 30)
            yield services
        finally:
            await services.audiences.stop()
    finally:
        await services.store.close()


async def ingest(services: Services, messages: list[dict[str, Any]]) -> None:
    mapper = SegmentMapper(services.rules, source="test")
    lines = [json.dumps(m) for m in messages]
    report = await Importer(services.graph).run(jsonl_rows(lines, mapper))
    assert report.accepted == len(messages), report.rejected
    await asyncio.wait_for(services.audiences.settle(), 30)


async def fill(services: Services, messages: list[dict[str, Any]]) -> None:
    for name, definition in TRAITS.items():
        await services.audiences.define_computed_trait(name, definition)
    await services.audiences.define_audience("buyers", BUYERS, None)
    await ingest(services, messages)


def within(data_dir: Path, work: Callable[[Services], Awaitable[T]]) -> T:
    async def run() -> T:
        async with opened(data_dir) as services:
            return await work(services)

    return asyncio.run(run())


async def user(services: Services, user_id: str) -> str:
    found = (await services.store.profile_ids([f"user_id:{user_id}"])).get(f"user_id:{user_id}")
    assert found is not None
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An embedded data directory holding `PEOPLE`, the computed traits and `buyers`."""
    path = tmp_path / "data"
    within(path, lambda services: fill(services, PEOPLE))
    return path


def env(data_dir: Path) -> dict[str, str]:
    return {"C360_DATA_DIR": str(data_dir), "C360_STORE": "embedded", "C360_HASH_KEY": HASH_KEY}


def invoke(data_dir: Path, *args: str) -> Any:
    return runner.invoke(app, ["audiences", "export", *args], env=env(data_dir))


def exported(data_dir: Path, role: str) -> dict[str, dict[str, Any]]:
    """The jsonl export of `buyers` for `role`, by the customer's user id."""
    result = invoke(data_dir, "buyers", "--format", "jsonl", "--role", role)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {user_of(row): row for row in rows}


def user_of(row: dict[str, Any]) -> str:
    users = [i["value"] for i in row["identifiers"] if i["kind"] == "user_id"]
    known = {keyed_hash(HASH_KEY.encode(), u): u for u in ("ann-1", "bob-1", "cy-1")}
    return known.get(users[0], users[0]) if users else row["id"]


# --- the export --------------------------------------------------------------------------


def test_admin_reads_everything_clear(data_dir: Path) -> None:
    rows = exported(data_dir, "admin")
    assert sorted(rows) == ["ann-1", "bob-1"]
    ann = rows["ann-1"]
    assert list(ann) == ["id", "identifiers", "traits", "computedTraits"]
    assert ann["identifiers"] == [
        {"kind": "email", "value": "ann.smith@example.com"},
        {"kind": "phone", "value": "+14155550123"},
        {"kind": "user_id", "value": "ann-1"},
    ]
    assert ann["traits"] == ANN_TRAITS
    assert ann["computedTraits"] == {"lastSku": "sku-31337", "orders": 1, "spend": 42}
    assert rows["bob-1"]["computedTraits"] == {"lastSku": None, "orders": 1, "spend": 0}


def test_marketing_reads_masked_values_and_nothing_denied(data_dir: Path) -> None:
    ann = exported(data_dir, "marketing")["ann-1"]
    device = keyed_hash(HASH_KEY.encode(), "ann-1")
    assert ann["identifiers"] == [
        {"kind": "email", "value": mask("ann.smith@example.com")},
        {"kind": "phone", "value": mask("+14155550123")},
        {"kind": "user_id", "value": device},
    ]
    traits = ann["traits"]
    assert traits["email"] == mask("Ann.Smith@Example.com") == "A***@E***.com"
    assert traits["name"] == "A***" and traits["address"] == {"street": "A***", "city": "***"}
    assert "billing" not in traits  # its one value is FINANCIAL: denied, so the map is too
    assert traits["prefs"] == {"colour": "t***"}  # the iban is left out, not null
    assert ann["computedTraits"] == {"lastSku": "s***", "orders": 1}  # spend is FINANCIAL


def test_analyst_reads_hashes_and_no_location(data_dir: Path) -> None:
    ann = exported(data_dir, "analyst")["ann-1"]
    hashed = lambda v: keyed_hash(HASH_KEY.encode(), v)  # noqa: E731
    assert ann["identifiers"] == sorted(
        [
            {"kind": "email", "value": hashed("ann.smith@example.com")},
            {"kind": "phone", "value": hashed("+14155550123")},
            {"kind": "user_id", "value": hashed("ann-1")},
        ],
        key=lambda i: (i["kind"], i["value"]),
    )
    traits = ann["traits"]
    assert traits["email"] == hashed("Ann.Smith@Example.com")
    assert traits["plan"] == "***"  # few values: a hash of one would be reversed, so masked
    assert "address" not in traits and "billing" not in traits
    assert ann["computedTraits"] == {"lastSku": hashed("sku-31337"), "orders": 1}


@pytest.mark.parametrize("role", ["admin", "support", "sales", "marketing", "analyst"])
def test_the_export_renders_as_the_graphql_api_does(data_dir: Path, role: str) -> None:
    rows = exported(data_dir, role)
    query = """query($id: ID!) { customer(id: $id) {
      identifiers { kind value }
      traits { email name phone address { street city } custom }
      computedTraits
    } }"""

    async def ask() -> dict[str, dict[str, Any]]:
        application = create_app(settings_of(data_dir).development())
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                api = Api(client)
                key = await api.key(role)
                found = {}
                for name, row in rows.items():
                    body = (await api.post(query, {"id": row["id"]}, key=key)).json()
                    found[name] = body["data"]["customer"]
                return found

    answers = asyncio.run(ask())
    for name, row in rows.items():
        graphql = answers[name]
        given = {(i["kind"], i["value"]) for i in graphql["identifiers"] if i["value"] is not None}
        assert {(i["kind"], i["value"]) for i in row["identifiers"]} == given
        traits = row["traits"]
        for field in ("email", "name", "phone"):
            assert traits.get(field) == graphql["traits"][field], (role, field)
        assert visible(traits.get("address", {})) == visible(graphql["traits"]["address"] or {})
        custom = {k: v for k, v in traits.items() if k not in ("email", "name", "phone", "address")}
        assert custom and visible(custom) == visible(graphql["traits"]["custom"]), role
        assert visible(row["computedTraits"]) == visible(graphql["computedTraits"]), role


def visible(value: Any) -> Any:
    """A value less its nulls, and less the maps and lists left empty by that: what the API
    shows as null (denied, or no value) a view leaves out."""
    if isinstance(value, dict):
        kept = {k: visible(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [v for v in map(visible, value) if v not in (None, {}, [])]
    return value


def test_csv_has_a_header_a_row_per_member_and_no_formulas(data_dir: Path) -> None:
    result = invoke(data_dir, "buyers", "--format", "csv", "--role", "admin")
    assert result.exit_code == 0, result.output
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert header == [
        "id",
        "identifiers.email",
        "identifiers.phone",
        "identifiers.user_id",
        *(f"traits.{t}" for t in sorted({*ANN_TRAITS})),
        "computed.lastSku",
        "computed.orders",
        "computed.spend",
    ]
    assert len(rows) == 2 and all(len(r) == len(header) for r in rows)
    ann, bob = sorted((dict(zip(header, r, strict=True)) for r in rows), key=lambda r: r["id"])
    if ann["identifiers.user_id"] != "ann-1":
        ann, bob = bob, ann
    assert ann["traits.nickname"] == "'" + FORMULAS["nickname"]
    assert ann["traits.note"] == "'@SUM(A1)"
    assert ann["traits.phone"] == "'+14155550123"
    assert json.loads(ann["traits.address"]) == ANN_TRAITS["address"]
    assert ann["computed.spend"] == "42" and ann["computed.lastSku"] == "sku-31337"
    assert bob["traits.plan"] == "'-1+2" and bob["traits.name"] == ""
    assert bob["computed.lastSku"] == "" and bob["computed.spend"] == "0"


def test_csv_columns_are_those_the_role_may_read(data_dir: Path) -> None:
    result = invoke(data_dir, "buyers", "--format", "csv", "--role", "sales")
    assert result.exit_code == 0, result.output
    header = next(csv.reader(io.StringIO(result.stdout)))
    # sales is denied DEVICE (user ids) and FINANCIAL (billing, spend)
    assert "identifiers.user_id" not in header and "traits.billing" not in header
    assert "computed.spend" not in header and "computed.orders" in header
    assert "traits.prefs" in header and "identifiers.email" in header


def test_out_writes_a_private_file_in_one_step(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "buyers.csv"
    out.parent.mkdir()
    args = ["buyers", "--format", "csv", "--role", "admin"]
    result = invoke(data_dir, *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"exported 2 customers of 'buyers' to {out}" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["buyers.csv"]
    assert out.read_text(encoding="utf-8") == invoke(data_dir, *args).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--role", "admin"], "no audience named 'nobody' (defined: buyers)"),
        (["buyers", "--role", "boss"], "unknown role 'boss'"),
        (["buyers", "--role", "ingest"], "the ingest role reads no customers"),
    ],
)
def test_a_bad_audience_or_role_is_one_line(
    data_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "never.jsonl"
    result = invoke(data_dir, *args, "--format", "jsonl", "--out", str(out))
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.glob("*never*")) == []


def test_an_audience_still_building_exports_what_it_has(data_dir: Path) -> None:
    async def unfinished(services: Services) -> None:
        [audience] = await services.audiences.defined()
        building = replace(audience, status=Status.BUILDING, progress=0.5)
        await services.audiences.audiences.put_audience(building)

    within(data_dir, unfinished)
    result = invoke(data_dir, "buyers", "--format", "jsonl", "--role", "admin")
    assert result.exit_code == 0, result.output
    assert "warning: audience 'buyers' is still being built (50%)" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_the_clear_reads_of_an_export_are_audited(data_dir: Path) -> None:
    assert invoke(data_dir, "buyers", "--format", "jsonl", "--role", "marketing").exit_code == 0
    assert invoke(data_dir, "buyers", "--format", "csv", "--role", "admin").exit_code == 0

    async def audit(services: Services) -> tuple[list[Any], set[str]]:
        page = await services.records.audit_log(first=100, after=None, customer_id=None)
        buyers = {await user(services, "ann-1"), await user(services, "bob-1")}
        return list(page.items), buyers

    entries, buyers = within(data_dir, audit)
    # marketing reads nothing clear (masked, hashed, counts): only the admin export is there
    assert {(e.principal, e.role) for e in entries} == {("cli:audiences export", "admin")}
    assert {e.customer_id for e in entries} == buyers
    ann = next(e for e in entries if "Traits.address" in e.fields)
    assert {
        "Identifier.value:email",
        "Identifier.value:user_id",
        "Traits.email",
        "Traits.nickname",
        "Customer.computedTraits.spend",
    } <= set(ann.fields)


def test_an_export_whose_audit_fails_leaves_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from identity_graph.adapters.embedded.records import EmbeddedRecords

    async def down(self: Any, entries: Any) -> None:
        raise StoreUnavailable("the audit store is down")

    monkeypatch.setattr(EmbeddedRecords, "append_audit", down)
    out = tmp_path / "buyers.jsonl"
    result = invoke(data_dir, "buyers", "--format", "jsonl", "--role", "admin", "--out", str(out))
    assert result.exit_code == 1 and "the audit store is down" in result.stderr
    assert list(tmp_path.glob("*buyers*")) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_members_are_read_a_page_at_a_time(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    within(data_dir, lambda services: ingest(services, more_buyers(3)))
    monkeypatch.setattr(export, "PAGE", 2)
    pages: list[int] = []
    members = export.member_pages

    async def counted(services: Services, audience_id: str) -> AsyncIterator[list[str]]:
        async for ids in members(services, audience_id):
            assert len(ids) <= 2
            pages.append(len(ids))
            yield ids

    monkeypatch.setattr(export, "member_pages", counted)
    result = invoke(data_dir, "buyers", "--format", fmt, "--role", "admin")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = lines if fmt == "jsonl" else lines[1:]
    ids = [json.loads(r)["id"] if fmt == "jsonl" else r.split(",")[0] for r in rows]
    assert len(ids) == 5 and len(set(ids)) == 5 and ids == sorted(ids)
    assert pages == [2, 2, 1] * (1 if fmt == "jsonl" else 2)  # csv: columns, then rows


def more_buyers(n: int) -> list[dict[str, Any]]:
    return [
        message(f"m{i}", "track", f"buyer-{i}", event="Order Completed", properties={"sku": "x"})
        for i in range(n)
    ]


def test_an_audience_of_more_than_a_page(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    within(data_dir, lambda services: fill(services, more_buyers(export.PAGE + 20)))
    result = invoke(data_dir, "buyers", "--format", "jsonl", "--role", "support")
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    assert len(set(ids)) == len(ids) == export.PAGE + 20


def test_cells_doctest() -> None:
    result = doctest.testmod(export)
    assert result.attempted > 0 and result.failed == 0


# --- the views ---------------------------------------------------------------------------


def test_views_hold_consent_and_audiences_and_batch_their_reads(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def work(services: Services) -> None:
        ann, bob = await user(services, "ann-1"), await user(services, "bob-1")
        cy = await user(services, "cy-1")
        [buyers] = await services.audiences.defined()
        calls: dict[str, int] = {}
        for target, name in [
            (services.store, "profiles"),
            (services.store, "traits"),
            (services.store, "consents"),
            (services.store, "events_of"),
            (services.audiences, "computed_values_many"),
            (services.audiences.audiences, "memberships"),
        ]:
            monkeypatch.setattr(target, name, counting(getattr(target, name), name, calls))
        views = await customer_views(
            services, "support", [cy, ann, "no-such-id", bob, ann], reader="test"
        )
        assert list(views) == [cy, ann, bob]
        assert calls == dict.fromkeys(calls, 1) and len(calls) == 6
        assert views[ann].consent == {"advertising": "DENIED"}
        assert views[ann].audience_ids == [buyers.id] and views[cy].audience_ids == []
        assert views[ann].as_json()["traits"]["address"] == {"street": "A***", "city": "***"}
        assert "consent" not in views[ann].as_json()

    within(data_dir, work)


def counting(method: Any, name: str, calls: dict[str, int]) -> Any:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] = calls.get(name, 0) + 1
        return await method(*args, **kwargs)

    return counted


def test_views_leave_out_absorbed_ids(tmp_path: Path) -> None:
    async def work(services: Services) -> None:
        await ingest(services, [{"type": "page", "messageId": "p1", "anonymousId": "anon-7"}])
        anonymous = (await services.store.profile_ids(["anonymous_id:anon-7"]))[
            "anonymous_id:anon-7"
        ]
        await ingest(services, [message("i1", "identify", "dee-1", anonymousId="anon-7")])
        dee = await user(services, "dee-1")
        absorbed = anonymous if anonymous != dee else None
        assert (await services.store.resolve_profiles([anonymous]))[anonymous] == dee
        views = await customer_views(services, "admin", [anonymous, dee], reader="test")
        assert list(views) == [dee]
        assert absorbed is None or absorbed not in views

    within(tmp_path / "data", work)


@pytest.mark.parametrize(
    ("role", "message"),
    [("ingest", "the ingest role reads no customers"), ("root", "unknown role 'root'")],
)
def test_views_refuse_a_role_that_reads_no_customers(
    data_dir: Path, role: str, message: str
) -> None:
    async def work(services: Services) -> None:
        with pytest.raises(ValueError, match=message):
            await customer_views(services, role, [await user(services, "ann-1")], reader="test")

    within(data_dir, work)


def test_views_raise_when_the_audit_cannot_be_written(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def work(services: Services) -> None:
        async def down(entries: Any) -> None:
            raise StoreUnavailable("the audit store is down")

        monkeypatch.setattr(services.audit.records, "append_audit", down)
        ann = await user(services, "ann-1")
        with pytest.raises(StoreUnavailable):
            await customer_views(services, "admin", [ann], reader="test")
        # a role that reads nothing clear writes no audit, so it is not stopped by one
        views = await customer_views(services, "marketing", [ann], reader="test")
        assert list(views) == [ann]

    within(data_dir, work)
