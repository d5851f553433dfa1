"""The service objects one app instance shares; the store is chosen here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field

from graph_api.audit import AuditWriter
from graph_api.auth import Authenticator
from graph_api.policy import Policy
from graph_api.settings import Settings
from identity_graph.adapters.embedded import EmbeddedStore
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore


@dataclass
class Services:
    settings: Settings
    rules: Rules
    store: IdentityStore
    graph: IdentityGraph
    auth: Authenticator
    policy: Policy = field(default_factory=Policy.default)
    """who may read which category of personal data, and how"""
    audit: AuditWriter = field(init=False)
    """records clear reads of personal data, one store write per group of requests"""

    def __post_init__(self) -> None:
        self.audit = AuditWriter(self.store)


def build_store(settings: Settings) -> IdentityStore:
    if settings.store == "neo4j":
        from identity_graph.adapters.neo4j import Neo4jStore

        password = settings.neo4j_password.get()
        return Neo4jStore(
            settings.neo4j_uri,
            auth=(settings.neo4j_user, password) if password else None,
            database=settings.neo4j_database,
        )
    return EmbeddedStore(settings.data_dir)


def build_services(settings: Settings) -> Services:
    """Load the rules and build the store, the identity graph and the authenticator."""
    rules = Rules.load(settings.rules_file)
    store = build_store(settings)
    return Services(
        settings=settings,
        rules=rules,
        store=store,
        graph=IdentityGraph(store, rules),
        auth=Authenticator(settings, store),
        policy=Policy.load(settings.policy_file),
    )
