"""`c360 audiences export`: an audience's members as one role may see them, as JSON lines or
CSV (`export`), on the store itself (Neo4j, or an embedded data directory no server holds).

Values are rendered by the field policy for `--role` as the API renders them for that role,
and every clear read is audited as `cli:audiences export` with that role. `--out` writes a
new private file beside the target and renames it into place once complete.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer

from graph_api.activation import export
from graph_api.activation.export import Exported, Format
from graph_api.activation.views import reader_role
from graph_api.cli_options import DataDirOption, StoreOption
from graph_api.errors import CliError
from graph_api.services import Services
from identity_graph.audiences.store import Status

READER = "cli:audiences export"
"""who the audit names for an export (with the role it renders for)"""

audiences_app = typer.Typer(no_args_is_help=True, help="Audiences: export their members.")


@audiences_app.command("export")
def export_command(
    name: Annotated[str, typer.Argument(help="The audience's name.")],
    format: Annotated[Format, typer.Option("--format", help="jsonl or csv.")],
    role: Annotated[
        str, typer.Option("--role", help="Render values as this role reads them (not ingest).")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the export here (created 0600); default: stdout."),
    ] = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export an audience's members, streamed (any size), each value as ROLE may see it."""
    from graph_api.cli import failures, settings_for, with_services

    async def work(services: Services) -> Exported:
        await services.audiences.start(build=False)  # reads the computed traits' definitions
        try:
            audience = await services.audiences.find(name=name)
            if audience is None:
                known = ", ".join(a.name for a in await services.audiences.defined())
                raise CliError(f"no audience named {name!r} (defined: {known or 'none'})")
            if audience.status is Status.BUILDING:
                typer.echo(
                    f"warning: audience {name!r} is still being built"
                    f" ({audience.progress:.0%}); the export holds the members found so far",
                    err=True,
                )
            with written(out) as handle:
                return await run(services, audience.id, audience.size, handle)
        finally:
            await services.audiences.stop()

    async def run(services: Services, audience_id: str, size: int, handle: TextIO) -> Exported:
        if format is Format.JSONL:
            with progress("exporting", size) as step:
                return await export.export_jsonl(
                    services, audience_id, role, handle, reader=READER, progress=step
                )
        with progress("reading columns", size) as step:
            columns = await export.columns(services, audience_id, role, progress=step)
        with progress("exporting", size) as step:
            return await export.export_csv(
                services, audience_id, role, handle, columns, reader=READER, progress=step
            )

    with failures():
        reader_role(role)
        done = with_services(settings_for(store, data_dir), work)
    where = f" to {out}" if out is not None else ""
    typer.echo(f"exported {done.customers} customers of {name!r}{where}", err=True)
    if done.left_out:
        typer.echo(
            f"warning: {done.left_out} values arrived after the columns were chosen (customers"
            " who entered meanwhile) and were left out; export again, or use --format jsonl",
            err=True,
        )


@contextlib.contextmanager
def written(out: Path | None) -> Iterator[TextIO]:
    """stdout, or a new file only its owner reads, renamed to `out` once complete: never
    one found at that name (nor a link's target), and removed on failure, so no partial
    copy of personal data stays behind."""
    if out is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    descriptor, partial = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


@contextlib.contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A step function for a progress bar on stderr, drawn only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from graph_api.cli import progress_bar

    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
