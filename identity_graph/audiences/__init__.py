"""Computed traits and audiences: definitions (`definitions`), their evaluation against one
profile's facts (`evaluation`), and keeping memberships exact as the graph changes (`engine`).

Part of the domain: imports `identity_graph` and nothing of the edges or the adapters.
"""
