"""The stores behind the ports: `embedded/` (SQLite journal and tables, the default) and
`neo4j/` (the official async driver). They store and fetch; the domain decides. An adapter
may import the domain, never the other adapter nor `graph_api`; only the composition root
(`graph_api.services`) names one.
"""
