"""The embedded store: one process per data directory, nothing else to run.

A write is a row of a SQLite journal (group commit, fsynced) applied in memory when planned;
a copier process copies the journal into the query tables; memory holds the partition of
identifiers into profiles. May import the domain (`identity_graph`) and its own modules only.
"""
