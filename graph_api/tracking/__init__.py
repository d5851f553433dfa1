"""Messages in: the Segment HTTP tracking API (`/v1/*`), the bulk importer and the demo data,
all turned into observations by one mapper (`segment`). May import the domain, `access` (for
the write key) and `graph_api.settings`/`errors`/`metrics`; never the GraphQL schema.
"""
