"""Messages in: the Segment HTTP tracking API (`/v1/*`), the bulk importer and the demo data.
Every entry point, the GraphQL mutations too, turns messages into observations by one mapper
with one set of rules (`mapper`; `segment` reads Segment JSON for it) and ingests them through
`ingest.ingest_counted`. May import the domain, `access` (for the write key) and
`graph_api.settings`/`errors`/`metrics`; never the GraphQL schema.
"""
