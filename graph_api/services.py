"""The composition root: the service objects one app instance shares.

The only module that names a concrete adapter: the store is chosen here, and what the app
and the CLI need of the embedded adapter itself (tuning the collector, compacting a data
directory) is reached through here.
"""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from graph_api.access.audit import AuditWriter
from graph_api.access.auth import Authenticator
from graph_api.access.masking import digest
from graph_api.access.policy import Policy
from graph_api.activation.dispatcher import Dispatcher
from graph_api.errors import ConfigError
from graph_api.settings import Settings
from identity_graph.adapters.embedded.store import Compacted, EmbeddedStore, compact, tune_gc
from identity_graph.audiences.engine import AudienceEngine
from identity_graph.audiences.store import AudienceStore
from identity_graph.privacy import RetentionError, RetentionPolicy
from identity_graph.records import AccessRecords
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore


@dataclass
class Services:
    settings: Settings
    rules: Rules
    store: IdentityStore
    records: AccessRecords
    """API keys and the audit log: the store's `records`, over the same database"""
    graph: IdentityGraph
    auth: Authenticator
    audiences: AudienceEngine
    """computed traits and audiences: started and stopped by the server's lifespan, and by
    the CLI's commands that write customers, without builds (`with_services(writes=True)`);
    an engine not started ignores the writes it is told of"""
    policy: Policy = field(default_factory=Policy.default)
    """who may read which category of personal data, and how"""
    hash_key: bytes = b""
    """the key of `hashed` values; see `hash_key_for`"""
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    """how long each kind of record is kept (`C360_RETENTION_FILE`)"""
    audit: AuditWriter = field(init=False)
    """records clear reads of personal data, one store write per group of requests"""
    dispatcher: Dispatcher = field(init=False)
    """delivers the outbox to the destinations: started and stopped by the server's
    lifespan; woken by the audience engine when it records changes"""

    def __post_init__(self) -> None:
        self.audit = AuditWriter(self.records)
        self.dispatcher = Dispatcher(self)
        self.audiences.recorded.append(self.dispatcher.wake)
        if not self.hash_key:
            self.hash_key = self.settings.hash_key.get().encode("utf-8")


def build_stores(settings: Settings) -> tuple[IdentityStore, AccessRecords, AudienceStore]:
    """The identity store the settings name, its access records and its audience store (same
    database; they open and close with the store)."""
    if settings.store == "neo4j":
        from identity_graph.adapters.neo4j.store import Neo4jStore

        password = settings.neo4j_password.get()
        neo4j = Neo4jStore(
            settings.neo4j_uri,
            auth=(settings.neo4j_user, password) if password else None,
            database=settings.neo4j_database,
        )
        return neo4j, neo4j.records, neo4j.audiences
    embedded = EmbeddedStore(settings.data_dir)
    return embedded, embedded.records, embedded.audiences


def hash_key_for(settings: Settings) -> bytes:
    """`C360_HASH_KEY`, or for the embedded store a random key kept in its data directory.

    Without a key, `hashed` would be a plain hash that a list of emails reverses. Several
    processes sharing Neo4j must hash alike, so there the key must be set.
    """
    if settings.hash_key:
        return settings.hash_key.get().encode("utf-8")
    if settings.store != "embedded":
        raise ConfigError(
            "C360_HASH_KEY must be set for the neo4j store, so that every API process hashes"
            " personal values alike"
        )
    path = settings.data_dir / "hash.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode("utf-8")


def build_services(settings: Settings) -> Services:
    """Check the settings, load the rules and build the store, the identity graph and the
    authenticator."""
    settings.check()
    rules = Rules.load(settings.rules_file)
    policy = Policy.load(settings.policy_file)
    try:
        retention = RetentionPolicy.load(settings.retention_file)
    except RetentionError as e:
        raise ConfigError(f"C360_RETENTION_FILE: {e}") from e
    hash_key = hash_key_for(settings)
    store, records, audience_store = build_stores(settings)
    graph = IdentityGraph(store, rules, digest=functools.partial(digest, hash_key))
    audiences = AudienceEngine(
        store, audience_store, rules, max_definitions=settings.max_definitions
    )
    graph.listeners.append(audiences.touched)
    graph.expired.append(audiences.events_expired)

    return Services(
        settings=settings,
        rules=rules,
        store=store,
        records=records,
        graph=graph,
        auth=Authenticator(settings, records),
        audiences=audiences,
        policy=policy,
        hash_key=hash_key,
        retention=retention,
    )


def tune_runtime() -> None:
    """Tune the garbage collector for a process that holds a large store in memory."""
    tune_gc()


def compact_data_dir(data_dir: Path) -> list[Compacted]:
    """Rewrite an embedded data directory's files (server stopped); see `c360 compact`."""
    return compact(data_dir)
