"""Privacy operations at the edge: the data-subject export, audited erasure and suppression,
and the server's retention runs. One implementation for GraphQL and the CLI (`privacy_cli`).
May import the domain, `access` (principals, the audit) and `graph_api.services`/`settings`/
`errors`; never the schema, its types, the app or the CLI.
"""
