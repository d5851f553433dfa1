"""`c360 documents add|list|remove`: the trusted documents a deployment runs for the roles
named in `C360_TRUSTED_DOCUMENTS_ROLES` (see `graph_api.documents`). A document is checked
against the schema before it is registered; its id is printed for the client to send."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from graphql import GraphQLError, parse, validate

from graph_api.documents import Manifest, document_id, normal_id
from graph_api.errors import C360Error, CliError
from graph_api.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    help="Trusted documents: the operations roles bound to them may run.",
)

FileOption = Annotated[
    Path | None,
    typer.Option("--file", help="The documents file (JSON); default: C360_TRUSTED_DOCUMENTS_FILE."),
]


def manifest_of(file: Path | None) -> Manifest:
    path = file or Settings.from_env().trusted_documents_file
    if path is None:
        raise CliError("name the documents file: --file, or C360_TRUSTED_DOCUMENTS_FILE")
    return Manifest(path)


def problems(text: str) -> list[str]:
    """Why a document cannot run against c360's schema; empty if it can."""
    from graph_api.schema import build_schema

    try:
        document = parse(text)
    except GraphQLError as e:
        return [e.message]
    schema = build_schema(Settings())._schema
    return [error.message for error in validate(schema, document)]


def fail(error: C360Error) -> typer.Exit:
    typer.echo(f"error: {error.message}", err=True)
    return typer.Exit(1)


@app.command()
def add(
    files: Annotated[list[Path], typer.Argument(help="GraphQL documents, one per file.")],
    file: FileOption = None,
) -> None:
    """Register documents; prints each one's id (`sha256:<hex>`), which clients send as
    `documentId`."""
    try:
        manifest = manifest_of(file)
        documents = manifest.read()
        added: list[tuple[str, Path]] = []
        for source in files:
            text = source.read_text()
            wrong = problems(text)
            if wrong:
                raise CliError(f"{source}: {'; '.join(wrong)}")
            documents[document_id(text)] = text
            added.append((document_id(text), source))
        manifest.write(documents)
    except C360Error as e:
        raise fail(e) from None
    except OSError as e:
        raise fail(CliError(str(e))) from None
    for key, source in added:
        typer.echo(f"{key}\t{source}")


@app.command("list")
def list_documents(file: FileOption = None) -> None:
    """Every registered document: its id and its first line."""
    try:
        documents = manifest_of(file).read()
    except C360Error as e:
        raise fail(e) from None
    for key, text in documents.items():
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        typer.echo(f"{key}\t{first}")


@app.command()
def remove(
    document: Annotated[str, typer.Argument(help="The id of the document.")],
    file: FileOption = None,
) -> None:
    """Unregister a document: clients bound to trusted documents can no longer run it."""
    try:
        manifest = manifest_of(file)
        documents = manifest.read()
        key = normal_id(document)
        if key not in documents:
            raise CliError(f"no document {key}")
        del documents[key]
        manifest.write(documents)
    except C360Error as e:
        raise fail(e) from None
    typer.echo(f"removed {key}")
