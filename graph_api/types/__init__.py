"""GraphQL types: one per module, each a thin converter from a domain object (`from_domain`).
May import the domain and `graph_api.access` (for the `@pii` directive)."""
