from pathlib import Path

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from graph_api.schema import build_schema, export_schema
from graph_api.settings import Settings
from graph_api.types.event import EventCategory, EventType
from identity_graph.model import EVENT_TYPES, MessageType
from identity_graph.model import EventCategory as DomainCategory

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == export_schema(), (
        "schema.graphql is out of date: regenerate it with `c360 export-schema > schema.graphql`"
    )


def test_every_operation_declares_the_roles_that_may_run_it() -> None:
    schema = build_schema(Settings())
    undeclared = [
        f"{root}.{field.python_name}"
        for root in ("Query", "Mutation")
        for field in _fields(schema, root)
        if not any(isinstance(e, PermissionExtension) for e in field.extensions)
    ]
    assert undeclared == [], "declare roles with graph_api.access.permissions.operation"


def _fields(schema: strawberry.Schema, name: str) -> list[StrawberryField]:
    definition = schema.get_type_by_name(name)
    assert isinstance(definition, StrawberryObjectDefinition)
    return definition.fields


def test_graphql_enums_listing_domain_values_list_them_all() -> None:
    """`EventType` and `EventCategory` are still their own classes (the ingest inputs use
    their members); until they are the domain's enums, they must not fall behind them."""
    assert [(t.name, t.value) for t in EventType] == [
        (t.name, t.value) for t in MessageType if t in EVENT_TYPES
    ]
    assert [(c.name, c.value) for c in EventCategory] == [(c.name, c.value) for c in DomainCategory]
