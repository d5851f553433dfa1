"""The Neo4j store: constraints at start, one `UNWIND` statement per change set, managed and
retried transactions, driver errors translated to the domain's. May import the domain
(`identity_graph`) and its own modules only.
"""
