"""Settings, read once from the environment (or a mapping in tests), typed, with defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from graph_api.errors import ConfigError
from identity_graph.audiences.engine import MAX_DEFINITIONS


class Secret:
    """A string that never prints."""

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


STORES = ("embedded", "neo4j")
MIN_KEY_LENGTH = 32
MIN_KEY_DISTINCT = 8
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def weak_key_reason(key: str) -> str | None:
    """Why a key an operator chose is too weak to stand for an admin, or None.

    The rule is a floor, not a measure of entropy: at least 32 characters, at least 8 of
    them different (a random hex or base64 string of that length passes; a run of few
    characters, or a short word, does not).
    """
    if len(key) < MIN_KEY_LENGTH:
        return f"it has {len(key)} characters, at least {MIN_KEY_LENGTH} are needed"
    if len(set(key)) < MIN_KEY_DISTINCT:
        return (
            f"it uses {len(set(key))} distinct characters, at least {MIN_KEY_DISTINCT} are needed"
        )
    return None


@dataclass(frozen=True)
class Settings:
    store: str = "embedded"
    data_dir: Path = Path("data")
    rules_file: Path | None = None
    policy_file: Path | None = None
    retention_file: Path | None = None
    """how long each kind of record is kept (`C360_RETENTION_FILE`); unset: the defaults"""
    neo4j_uri: str = "bolt://localhost:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: Secret = field(default_factory=lambda: Secret(""))
    neo4j_database: str = "neo4j"
    bootstrap_admin_key: Secret = field(default_factory=lambda: Secret(""))
    jwt_secret: Secret = field(default_factory=lambda: Secret(""))
    jwt_jwks_file: Path | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_roles_claim: str = "roles"
    hash_key: Secret = field(default_factory=lambda: Secret(""))
    max_body_bytes: int = 1_000_000
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_page_size: int = 100
    max_definitions: int = MAX_DEFINITIONS
    """computed traits, and audiences, that may be defined (each): `C360_MAX_DEFINITIONS`"""
    graphiql: bool = False
    """serve GraphiQL on `GET /graphql` (development; `c360 serve --demo` or `--dev`)"""
    introspection: bool = False
    """answer introspection queries (GraphiQL needs them)"""
    metrics_token: Secret = field(default_factory=lambda: Secret(""))
    """`GET /metrics` requires `Authorization: Bearer <this>`; unset: /metrics is off"""
    public_metrics: bool = False
    """serve `/metrics` without a token (a scraper on a private network; development)"""
    cors_origins: tuple[str, ...] = ()
    """origins whose pages may call the API from a browser (`C360_CORS_ORIGINS`); none"""
    trusted_documents_file: Path | None = None
    """the registered GraphQL documents (`C360_TRUSTED_DOCUMENTS_FILE`, `c360 documents`)"""
    trusted_documents_roles: frozenset[str] = frozenset()
    """roles that may only run registered documents (`C360_TRUSTED_DOCUMENTS_ROLES`)"""
    webhook_allow_private: bool = False
    """destinations may be `http` and reach private, loopback and link-local addresses
    (`C360_WEBHOOK_ALLOW_PRIVATE`: tests, private networks); unset: https to public ones"""
    webhook_retry_hours: int = 72
    """how long a failing delivery is retried (`C360_WEBHOOK_RETRY_HOURS`)"""
    webhook_timeout_seconds: int = 15
    """the most a delivery's request may take, connecting included
    (`C360_WEBHOOK_TIMEOUT_SECONDS`)"""

    def check(self) -> None:
        """Refuse settings c360 must not start with (`ConfigError` names the variable): a
        weak bootstrap admin key, JWTs accepted without an audience and an issuer to check."""
        key = self.bootstrap_admin_key.get()
        weak = weak_key_reason(key) if key else None
        if weak:
            raise ConfigError(
                f"C360_BOOTSTRAP_ADMIN_KEY is too weak: {weak}; make one with {MAKE_A_KEY}"
            )
        if self.trusted_documents_roles and self.trusted_documents_file is None:
            raise ConfigError(
                "C360_TRUSTED_DOCUMENTS_ROLES needs C360_TRUSTED_DOCUMENTS_FILE: the documents"
                " those roles may run"
            )
        if self.jwt_secret or self.jwt_jwks_file is not None:
            missing = [
                name
                for name, value in (
                    ("C360_JWT_AUDIENCE", self.jwt_audience),
                    ("C360_JWT_ISSUER", self.jwt_issuer),
                )
                if not value
            ]
            if missing:
                raise ConfigError(
                    f"{' and '.join(missing)} must be set when JWTs are accepted"
                    " (C360_JWT_SECRET or C360_JWT_JWKS_FILE): a token is checked for the"
                    " audience (`aud`) and issuer (`iss`) it was made for"
                )

    def development(self) -> Settings:
        """The same settings with the developer's conveniences on: GraphiQL, introspection
        and open metrics. Never for a server reachable by others."""
        return replace(self, graphiql=True, introspection=True, public_metrics=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `C360_*` and `NEO4J_*` variables; `ConfigError` names the bad one."""
        env = os.environ if environ is None else environ

        def text(name: str, default: str) -> str:
            return env.get(name, default).strip() or default

        def number(name: str, default: int) -> int:
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                value = int(raw)
            except ValueError as e:
                raise ConfigError(f"{name} must be an integer, got {raw!r}") from e
            if value < 1:
                raise ConfigError(f"{name} must be positive, got {value}")
            return value

        def origins(name: str) -> tuple[str, ...]:
            found = tuple(o.strip().rstrip("/") for o in env.get(name, "").split(",") if o.strip())
            for origin in found:
                scheme, sep, host = origin.partition("://")
                if scheme not in ("http", "https") or not sep or not host or "/" in host:
                    raise ConfigError(
                        f"{name}: {origin!r} is not an origin (scheme://host[:port], no path)"
                    )
            return found

        def flag(name: str) -> bool:
            raw = env.get(name, "").strip().lower()
            if raw in ("", "0", "false", "no", "off"):
                return False
            if raw in ("1", "true", "yes", "on"):
                return True
            raise ConfigError(f"{name} must be true or false, got {raw!r}")

        def path(name: str) -> Path | None:
            raw = env.get(name, "").strip()
            return Path(raw) if raw else None

        store = text("C360_STORE", "embedded")
        if store not in STORES:
            raise ConfigError(f"C360_STORE must be one of {', '.join(STORES)}, got {store!r}")
        return cls(
            store=store,
            data_dir=Path(text("C360_DATA_DIR", "data")),
            rules_file=path("C360_RULES_FILE"),
            policy_file=path("C360_POLICY_FILE"),
            retention_file=path("C360_RETENTION_FILE"),
            neo4j_uri=text("NEO4J_URI", "bolt://localhost:7687"),
            neo4j_user=text("NEO4J_USER", "neo4j"),
            neo4j_password=Secret(env.get("NEO4J_PASSWORD", "")),
            neo4j_database=text("NEO4J_DATABASE", "neo4j"),
            bootstrap_admin_key=Secret(env.get("C360_BOOTSTRAP_ADMIN_KEY", "")),
            jwt_secret=Secret(env.get("C360_JWT_SECRET", "")),
            jwt_jwks_file=path("C360_JWT_JWKS_FILE"),
            jwt_audience=env.get("C360_JWT_AUDIENCE", "").strip() or None,
            jwt_issuer=env.get("C360_JWT_ISSUER", "").strip() or None,
            jwt_roles_claim=text("C360_JWT_ROLES_CLAIM", "roles"),
            hash_key=Secret(env.get("C360_HASH_KEY", "")),
            max_body_bytes=number("C360_MAX_BODY_BYTES", 1_000_000),
            max_depth=number("C360_MAX_DEPTH", 10),
            max_aliases=number("C360_MAX_ALIASES", 30),
            max_tokens=number("C360_MAX_TOKENS", 2_000),
            max_page_size=number("C360_MAX_PAGE_SIZE", 100),
            max_definitions=number("C360_MAX_DEFINITIONS", MAX_DEFINITIONS),
            graphiql=flag("C360_GRAPHIQL"),
            introspection=flag("C360_INTROSPECTION"),
            metrics_token=Secret(env.get("C360_METRICS_TOKEN", "")),
            public_metrics=flag("C360_PUBLIC_METRICS"),
            cors_origins=origins("C360_CORS_ORIGINS"),
            trusted_documents_file=path("C360_TRUSTED_DOCUMENTS_FILE"),
            trusted_documents_roles=frozenset(
                r.strip()
                for r in env.get("C360_TRUSTED_DOCUMENTS_ROLES", "").split(",")
                if r.strip()
            ),
            webhook_allow_private=flag("C360_WEBHOOK_ALLOW_PRIVATE"),
            webhook_retry_hours=number("C360_WEBHOOK_RETRY_HOURS", 72),
            webhook_timeout_seconds=number("C360_WEBHOOK_TIMEOUT_SECONDS", 15),
        )
