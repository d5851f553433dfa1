"""Who may import whom: the domain knows no edge and no adapter, an adapter knows no other
adapter and no edge, only the composition root (`graph_api.services`) names an adapter, and
the rooms of the edge that the CLI shares (`access`, `tracking`, `privacy`) never import the
schema, its types, the app or the CLI.

Imports are read with `ast`, anywhere in a module (inside functions too), relative ones
resolved; `from x import y` counts as importing `x.y`, so a rule on `x` covers it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("identity_graph", "graph_api")
ADAPTERS = "identity_graph.adapters"
COMPOSITION_ROOT = "graph_api.services"
NOT_IN_THE_DOMAIN = ("graph_api", "strawberry", "starlette", "uvicorn", "typer", "neo4j")

# Known violations someone is fixing now, as exact (module, imported name) pairs, so that any
# other import still fails. Empty: the app's and the CLI's imports of the embedded adapter
# (tune_gc, compact) went through the composition root in 4611612.
KNOWN_OFFENDERS_BEING_FIXED: frozenset[tuple[str, str]] = frozenset()


def within(name: str, package: str) -> bool:
    """Whether the dotted `name` is `package` or lies inside it."""
    return name == package or name.startswith(package + ".")


def imports_of(module: str, source: str, *, is_package: bool = False) -> set[str]:
    """The dotted names `module`'s source imports.

    >>> sorted(imports_of("a.b", "from .c import d\\nimport e"))
    ['a.c.d', 'e']
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            found |= {
                origin if alias.name == "*" else f"{origin}.{alias.name}" for alias in node.names
            }
    return found


ROOMS_WITHOUT_THE_SCHEMA = ("graph_api.access", "graph_api.tracking", "graph_api.privacy")
"""rooms of the edge that the CLI uses too: they never import GraphQL's side of it"""
THE_SCHEMA_SIDE = ("graph_api.schema", "graph_api.types", "graph_api.app", "graph_api.cli")


def broken_rule(module: str, imported: str) -> str | None:
    """Why `module` may not import `imported`, or None if it may."""
    if any(within(module, room) for room in ROOMS_WITHOUT_THE_SCHEMA) and any(
        within(imported, side) for side in THE_SCHEMA_SIDE
    ):
        return "a room of the edge imports the schema, its types, the app or the CLI"
    if within(module, ADAPTERS):
        if within(imported, "graph_api"):
            return "an adapter imports the edge"
        own, other = module.split(".")[2:3], imported.split(".")[2:3]
        if within(imported, ADAPTERS) and other and own != other:
            return "an adapter imports another adapter"
        return None
    if within(module, "identity_graph"):
        if any(within(imported, edge) for edge in (*NOT_IN_THE_DOMAIN, ADAPTERS)):
            return "the domain imports the edge, a driver or an adapter"
        return None
    if within(imported, ADAPTERS) and module != COMPOSITION_ROOT:
        return "an adapter is named outside the composition root"
    return None


def wrong_imports(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """`module`'s imports that break a rule, with the rule, less the known offenders."""
    return sorted(
        f"{module} imports {imported}: {reason}"
        for imported in imports_of(module, source, is_package=is_package)
        if (reason := broken_rule(module, imported))
        and (module, imported) not in KNOWN_OFFENDERS_BEING_FIXED
    )


def test_the_layers_hold() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            module = ".".join(parts[:-1] if is_package else parts)
            found += wrong_imports(module, path.read_text(), is_package=is_package)
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("identity_graph.model", "from graph_api.schema import schema"),
        ("identity_graph.service", "def late():\n    import neo4j"),
        ("identity_graph.rules", "from .adapters.embedded import store"),
        ("identity_graph.adapters.embedded.store", "from ..neo4j.cypher import APPLY"),
        ("identity_graph.adapters.neo4j.store", "from graph_api import settings"),
        ("graph_api.schema", "from identity_graph.adapters.neo4j.store import Neo4jStore"),
        ("graph_api.app", "from identity_graph.adapters.embedded.store import compact"),
        ("graph_api.privacy.export", "from graph_api.types.customer import Customer"),
        ("graph_api.tracking.importer", "from graph_api import schema"),
    ],
)
def test_the_checker_catches_a_wrong_import(module: str, source: str) -> None:
    assert wrong_imports(module, source)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("identity_graph.model", "from identity_graph.codec import dumps"),
        ("identity_graph.adapters.neo4j.store", "import neo4j\nfrom .cypher import APPLY"),
        ("identity_graph.adapters.embedded.store", "from identity_graph.store import WriteTx"),
        ("graph_api.services", "from identity_graph.adapters.neo4j.store import Neo4jStore"),
        ("graph_api.schema", "import strawberry\nfrom identity_graph.service import IdentityGraph"),
        ("graph_api.privacy.export", "from graph_api.services import Services"),
        ("graph_api.schema", "from graph_api.privacy import export"),
    ],
)
def test_the_checker_allows_a_right_import(module: str, source: str) -> None:
    assert wrong_imports(module, source) == []
