"""The options every store-opening command of `c360` takes, declared once for the CLI's
modules (which `graph_api.cli` imports, so they cannot import them from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graph_api.settings import STORES

StoreOption = Annotated[
    str | None, typer.Option("--store", help=f"Store adapter: {' or '.join(STORES)}.")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory of the embedded store.")
]
