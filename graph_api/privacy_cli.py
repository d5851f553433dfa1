"""`c360 privacy export|erase` and `c360 retention run`: the privacy operations from the
command line, on the store itself (Neo4j, or an embedded data directory no server holds).

They do what `dataSubjectExport`, `eraseCustomer` and `applyRetention` do (the same modules
in `graph_api.privacy`), audited as an admin named `cli:<user>`; the export has no size
limit: it is streamed to the file (or stdout) a page of events at a time.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, TextIO

import typer

from graph_api.access.auth import Principal
from graph_api.cli_options import DataDirOption, StoreOption
from graph_api.errors import CliError
from graph_api.privacy import erasure, export, retention
from graph_api.services import Services
from identity_graph.normalize import normalize
from identity_graph.privacy import ErasureReceipt

privacy_app = typer.Typer(
    no_args_is_help=True,
    help="Data-subject export and erasure (GDPR Art. 15, 17, 20).",
)
retention_app = typer.Typer(no_args_is_help=True, help="Retention (C360_RETENTION_FILE).")

IdentifierOption = Annotated[
    str,
    typer.Option(
        "--identifier",
        help="An identifier of the customer, KIND:VALUE (email:ada@example.com); normalised"
        " like ingested ones.",
    ),
]


def operator() -> Principal:
    """Who the audit names for a command run from this shell."""
    return Principal(f"cli:{getpass.getuser()}", frozenset({"admin"}), "cli")


async def customer_of(services: Services, identifier: str) -> str:
    kind, sep, value = identifier.partition(":")
    if not sep or not kind.strip() or not value.strip():
        raise CliError(f"--identifier must be KIND:VALUE, got {identifier!r}")
    key = normalize(kind.strip().lower(), value, services.rules).key
    found = (await services.store.profile_ids([key])).get(key)
    if found is None:
        raise CliError(f"no customer holds {key} (never seen, or erased)")
    return found


@privacy_app.command("export")
def export_command(
    identifier: IdentifierOption,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the JSON here (created 0600); default: stdout."),
    ] = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export everything held of one customer as one JSON document, streamed (any size)."""
    from graph_api.cli import failures, settings_for, with_services

    async def work(services: Services) -> None:
        started = await export.start_export(
            services, await customer_of(services, identifier), operator()
        )
        if out is None:
            await write(export.chunks(started), sys.stdout)
            return
        # a new file only its owner reads, never one found at that name (nor a link's
        # target); on failure it is removed: no partial copy of personal data stays behind
        descriptor, partial = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                await write(export.chunks(started), handle)
            os.replace(partial, out)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise

    with failures():
        with_services(settings_for(store, data_dir), work)
    if out is not None:
        typer.echo(f"exported to {out}", err=True)


async def write(chunks: AsyncIterator[str], handle: TextIO) -> None:
    async for chunk in chunks:
        handle.write(chunk)


@privacy_app.command("erase")
def erase_command(
    identifier: IdentifierOption,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (a request's reference): kept on the receipt.")
    ],
    suppress: Annotated[
        bool,
        typer.Option(
            "--suppress/--no-suppress",
            help="Suppress the identifiers and message ids, so no message brings them back.",
        ),
    ] = True,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Erase a customer: every record of them is physically deleted when this returns."""
    from graph_api.cli import failures, settings_for, with_services

    async def work(services: Services) -> ErasureReceipt:
        customer = await customer_of(services, identifier)
        return await erasure.erase(services, customer, operator(), reason=reason, suppress=suppress)

    with failures():
        receipt = with_services(settings_for(store, data_dir), work, writes=True)
    typer.echo(
        f"erased customer {receipt.customer_id} (erasure {receipt.id}):"
        f" {receipt.identifiers} identifiers, {receipt.events} events,"
        f" {receipt.suppressed} suppressed"
    )


@retention_app.command("run")
def run_command(store: StoreOption = None, data_dir: DataDirOption = None) -> None:
    """Delete what the retention policy no longer keeps, now (the server does it hourly)."""
    from graph_api.cli import failures, settings_for, with_services

    with failures():
        report = with_services(settings_for(store, data_dir), retention.run_retention, writes=True)
    typer.echo(
        f"deleted {report.events} events, {report.audit} audit entries, {report.profiles}"
        f" inactive profiles ({report.identifiers} identifiers), {report.messages} message"
        f" ids, {report.conflicts} conflicts"
    )
