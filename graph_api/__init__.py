"""The edge: the ASGI app, the GraphQL schema and its `types/`, settings, errors, metrics,
the CLI and the one composition root (`services`) that names concrete adapters.

Rooms: `access/` (who may see what), `tracking/` (messages in: Segment HTTP API, importer,
demo), `types/` (GraphQL types, thin converters from domain objects). May import the domain;
only `services` imports an adapter.
"""
