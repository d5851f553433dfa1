from pathlib import Path

from graph_api.schema import export_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == export_schema(), (
        "schema.graphql is out of date: regenerate it with `c360 export-schema > schema.graphql`"
    )
