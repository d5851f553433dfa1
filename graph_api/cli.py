"""The `c360` command: serve, import, keys create|list|revoke, rehash, compact, export-schema;
`privacy export|erase` and `retention run` live in `privacy_cli`, `audiences export` in
`activation.export_cli`.

Settings come from the environment (`Settings.from_env`), then the options override them.
Errors print one line on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graph_api import documents_cli, privacy_cli
from graph_api.activation import export_cli
from graph_api.cli_options import DataDirOption, StoreOption
from graph_api.errors import C360Error, CliError
from graph_api.keys_client import KEYS_PAGE, RemoteKeys
from graph_api.services import Services, build_services, compact_data_dir, tune_runtime
from graph_api.settings import STORES, Settings
from graph_api.tracking.importer import (
    Importer,
    ImportReport,
    csv_rows,
    detect_format,
    jsonl_rows,
    parse_mapping,
)
from graph_api.tracking.segment import SegmentMapper
from identity_graph.errors import IdentityGraphError, StoreUnavailable
from identity_graph.records import ApiKey
from identity_graph.store import ProfileFilter

T = TypeVar("T")

app = typer.Typer(
    name="c360",
    help="Customer 360: an identity graph behind a GraphQL API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(documents_cli.app, name="documents")
app.add_typer(privacy_cli.privacy_app, name="privacy")
app.add_typer(privacy_cli.retention_app, name="retention")
app.add_typer(export_cli.audiences_app, name="audiences")

out = Console()
err = Console(stderr=True)


@contextmanager
def failures() -> Iterator[None]:
    try:
        yield
    except (C360Error, IdentityGraphError, ValueError, OSError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(1) from None


def settings_for(store: str | None, data_dir: Path | None) -> Settings:
    settings = Settings.from_env()
    if store is not None:
        if store not in STORES:
            raise CliError(f"--store must be one of {', '.join(STORES)}, got {store!r}")
        settings = dataclasses.replace(settings, store=store)
    if data_dir is not None:
        settings = dataclasses.replace(settings, data_dir=data_dir)
    return settings


def with_services(
    settings: Settings, work: Callable[[Services], Awaitable[T]], *, writes: bool = False
) -> T:
    """Open the store, run `work`, close the store. A command that `writes` customers runs
    the audience engine meanwhile, so that its writes move memberships as a server's do
    (it builds nothing: a server does that)."""

    async def run() -> T:
        services = build_services(settings)
        await services.store.open()
        try:
            if writes:
                await services.audiences.start(build=False)
            try:
                result = await work(services)
                if writes:
                    await services.audiences.settle()
                return result
            finally:
                if writes:
                    await services.audiences.stop()
        finally:
            await services.store.close()

    return asyncio.run(run())


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@app.command()
def serve(
    store: StoreOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Load the demo data set if the store is empty (implies --dev)."
        ),
    ] = False,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development: GraphiQL, introspection and /metrics without a token. Never"
            " on a server others can reach.",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="API processes over one Neo4j database (the neo4j store only: the embedded"
            " store is one process).",
        ),
    ] = 1,
) -> None:
    """Run the API server (GraphQL, Segment tracking API, metrics)."""
    import uvicorn

    from graph_api.app import create_app

    with failures():
        settings = settings_for(store, data_dir)
        if workers > 1 and settings.store != "neo4j":
            raise CliError(
                "--workers needs the neo4j store: the embedded store holds the identity graph"
                " in the memory of one process and locks its data directory, so it serves from"
                " one process (run several API processes over Neo4j instead)"
            )
        if demo or dev:
            settings = settings.development()
        if demo:
            tune_runtime()  # the app's lifespan sets it too, but the demo loads before the app runs
            key = with_services(settings, load_demo)
            out.print(f"GraphiQL: [bold]http://{host}:{port}/graphql[/bold]")
            out.print(f"Admin key (shown once): [bold]{key}[/bold]", highlight=False)
        if workers > 1:
            # each worker reads its settings from the environment: pass on what the options
            # changed, and seed the bootstrap key here once, not in several workers at once
            os.environ["C360_STORE"] = settings.store
            if demo or dev:
                os.environ.update(
                    C360_GRAPHIQL="1", C360_INTROSPECTION="1", C360_PUBLIC_METRICS="1"
                )
            with_services(settings, seed_bootstrap_key)
            uvicorn.run(
                "graph_api.app:create_app", factory=True, workers=workers, host=host, port=port
            )
            return
        application = create_app(settings)
    uvicorn.run(application, host=host, port=port)


async def seed_bootstrap_key(services: Services) -> None:
    key = services.settings.bootstrap_admin_key
    if key:
        await services.auth.seed_key(key.get(), "admin", "bootstrap admin key")


async def load_demo(services: Services) -> str:
    from graph_api.tracking import demo

    existing = await services.store.list_profiles(first=0, after=None, where=ProfileFilter())
    if not existing.more:
        with progress_bar() as bar:
            raw = demo.messages()
            task = bar.add_task("demo data", total=len(raw))
            mapper = SegmentMapper(services.rules, source="demo")
            report = await Importer(services.graph, source="demo").run(
                demo.demo_rows(mapper, raw), progress=lambda n: bar.advance(task, n)
            )
        out.print(f"Demo data loaded: {report.accepted} messages, {report.dropped} dropped.")
    else:
        out.print("The store already holds data; demo data not loaded.")
    key, _ = await services.auth.create_key("admin", "demo")
    return key


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="JSONL of Segment messages, or CSV.")],
    format: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from the suffix).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="CSV column=target: an identifier kind, trait[:name], message_id, timestamp,"
            " ignore.",
        ),
    ] = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
    batch_size: Annotated[int, typer.Option(min=1, max=5000)] = 500,
) -> None:
    """Import a file; bad rows are reported and skipped, good rows are ingested."""
    with failures():
        tune_runtime()
        fmt = detect_format(file, format)
        if not file.is_file():
            raise CliError(f"no such file: {file}")
        settings = settings_for(store, data_dir)
        report = with_services(
            settings,
            lambda services: run_import(services, file, fmt, mapping or [], batch_size),
            writes=True,
        )
    print_report(report)
    if report.rejected and not (report.accepted or report.duplicate or report.dropped):
        raise typer.Exit(1)


async def run_import(
    services: Services, file: Path, fmt: str, mapping: list[str], batch_size: int
) -> ImportReport:
    mapper = SegmentMapper(services.rules, source="import")
    with file.open(encoding="utf-8", newline="") as handle:
        total = sum(1 for _ in handle)
    with file.open(encoding="utf-8", newline="") as handle, progress_bar() as bar:
        if fmt == "csv":
            rows = csv_rows(handle, mapper, parse_mapping(mapping, services.rules.kinds))
            total -= 1
        else:
            rows = jsonl_rows(handle, mapper)
        task = bar.add_task(f"importing {file.name}", total=max(total, 0))
        importer = Importer(services.graph, batch_size=batch_size)
        return await importer.run(rows, progress=lambda n: bar.advance(task, n))


def print_report(report: ImportReport) -> None:
    out.print(
        f"accepted {report.accepted}, duplicate {report.duplicate}, "
        f"dropped (blocked ids) {report.dropped}, rejected {len(report.rejected)}"
    )
    for row in report.rejected[:50]:
        out.print(f"  line {row.line}: {row.reason}", highlight=False)
    if len(report.rejected) > 50:
        out.print(f"  ... and {len(report.rejected) - 50} more rejected rows")


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="C360_URL",
        help="A running c360 server (http://HOST:PORT) to manage keys through, with an admin"
        " key; needed while a server holds the embedded data directory.",
    ),
]
AdminKeyOption = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        envvar="C360_ADMIN_KEY",
        help="An admin API key for --url.",
        show_default=False,
    ),
]


@keys_app.command("create")
def create_key(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="Role of the key.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    expires_at: Annotated[
        str | None,
        typer.Option(
            "--expires-at",
            help="When the key stops working: ISO 8601 with a time zone, 2030-01-31T00:00Z.",
        ),
    ] = None,
) -> None:
    """Create an API key; the key is printed once and stored hashed."""
    with failures():
        expiry = parse_expiry(expires_at)
        key, record = keys_of(ctx).create(role, name, expiry)
    until = f", until {record.expires_at.isoformat()}" if record.expires_at else ""
    err.print(
        f"created key {record.id} with role {record.role}{until}; it is shown only once:",
        highlight=False,
    )
    out.print(key, highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """List API keys, oldest first, tab-separated (never the keys themselves)."""
    with failures():
        records = keys_of(ctx).list()
    typer.echo("\t".join(KEY_COLUMNS))
    for r in records:
        times = (stamp(r.created_at), stamp(r.expires_at), stamp(r.revoked_at))
        typer.echo("\t".join((r.id, r.role, r.name or "-", *times)))


@keys_app.command("revoke")
def revoke_key(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The id of the key (see keys list).")],
) -> None:
    """Revoke an API key by id; it stops working at once."""
    with failures():
        keys_of(ctx).revoke(key_id)
    out.print(f"revoked key {key_id}", highlight=False)


@dataclasses.dataclass(frozen=True)
class KeysTarget:
    """Whose keys `c360 keys` manages: a server's (`url`) or else the store's."""

    url: str | None
    admin_key: str | None
    store: str | None
    data_dir: Path | None


@keys_app.callback()
def keys_target(
    ctx: typer.Context,
    url: UrlOption = None,
    admin_key: AdminKeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Manage API keys: in the store (Neo4j, or an embedded data directory no server holds),
    or through a running server with --url and --admin-key (C360_URL, C360_ADMIN_KEY)."""
    ctx.obj = KeysTarget(url, admin_key, store, data_dir)


def keys_of(ctx: typer.Context) -> RemoteKeys | StoreKeys:
    """The keys of the server at `--url` (through its API) or else of the store itself."""
    target: KeysTarget = ctx.obj
    if target.url is not None:
        return RemoteKeys(target.url, target.admin_key)
    return StoreKeys(settings_for(target.store, target.data_dir))


class StoreKeys:
    """The key operations on the store itself: Neo4j, or an embedded data directory that no
    server holds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def create(
        self, role: str, name: str | None, expires_at: datetime | None
    ) -> tuple[str, ApiKey]:
        return self._run(lambda s: s.auth.create_key(role, name, expires_at=expires_at))

    def list(self) -> list[ApiKey]:
        return self._run(every_key)

    def revoke(self, key_id: str) -> None:
        if not self._run(lambda s: s.auth.revoke_key(key_id)):
            raise CliError(f"no API key {key_id!r} that is not revoked already")

    def _run(self, work: Callable[[Services], Awaitable[T]]) -> T:
        """`with_services`, saying what to do when a server holds the embedded data
        directory."""
        try:
            return with_services(self.settings, work)
        except StoreUnavailable as e:
            if self.settings.store != "embedded":
                raise
            raise CliError(
                f"{e}; while a server runs, manage keys through it: c360 keys --url"
                " http://HOST:PORT --admin-key KEY ... (or set C360_URL and C360_ADMIN_KEY)"
            ) from e


async def every_key(services: Services) -> list[ApiKey]:
    found: list[ApiKey] = []
    after = None
    while True:
        page = await services.auth.list_keys(first=KEYS_PAGE, after=after)
        found.extend(page.items)
        if page.cursor is None:
            return found
        after = page.cursor


def parse_expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--expires-at must be an ISO 8601 time, got {text!r}") from None
    if when.tzinfo is None:
        raise CliError(f"--expires-at needs a time zone (Z or +01:00), got {text!r}")
    return when


KEY_COLUMNS = ("id", "role", "name", "created", "expires", "revoked")
"""`keys list` prints these, tab-separated, `-` for none (so `cut -f1` gives the ids)"""


def stamp(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds") if when else "-"


@app.command("rehash")
def rehash(
    store: StoreOption = None,
    data_dir: DataDirOption = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
) -> None:
    """Store every identifier's digest under the current hash key (C360_HASH_KEY).

    Run it after changing the key, since lookups by digest find only digests made with
    the key in use. It also fills in identifiers stored before c360 kept digests. Safe to
    run again, and on Neo4j while the server ingests (an embedded data directory belongs to
    one process: stop the server first).
    """
    with failures():
        settings = settings_for(store, data_dir)
        done = with_services(settings, lambda s: run_rehash(s, batch_size))
    out.print(f"stored the digests of {done} identifiers")


async def run_rehash(services: Services, batch_size: int) -> int:
    with progress_bar() as bar:
        task = bar.add_task("re-hashing identifiers", total=None)
        return await services.graph.rehash(
            batch=batch_size, progress=lambda n: bar.advance(task, n)
        )


@app.command("compact")
def compact(data_dir: DataDirOption = None) -> None:
    """Rewrite the embedded store's files, with the server stopped.

    Gives back the space of deleted rows, and brings a data directory made by an older
    c360 to the current page sizes (16 KB tables, 64 KB journal; copying into the tables
    costs ~12% less CPU than with the 4 KB pages of before). While it runs it needs free
    disk space of up to twice the tables file (SQLite's VACUUM).
    """
    with failures():
        settings = settings_for("embedded", data_dir)
        with progress_bar() as bar:
            bar.add_task(f"compacting {settings.data_dir}", total=None)
            files = compact_data_dir(settings.data_dir)
    for f in files:
        out.print(
            f"{f.name}: {f.bytes_before / 2**20:,.1f} MB -> {f.bytes_after / 2**20:,.1f} MB,"
            f" pages of {f.page_size_before // 1024} KB -> {f.page_size_after // 1024} KB",
            highlight=False,
        )


@app.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from graph_api.schema import export_schema as export

    with failures():
        sdl = export()
    typer.echo(sdl, nl=not sdl.endswith("\n"))
