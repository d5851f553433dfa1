"""Who is calling: API keys (stored hashed, optionally expiring, their records cached for a
few seconds) and JWTs (HS256 secret or a JWKS file, re-read when it changes; audience and
issuer always checked).

`Authorization: Bearer <api key or JWT>` for the API, HTTP Basic with the key as user name
for the Segment tracking endpoint. Roles gate operations; fields are the PII policy's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from starlette.requests import HTTPConnection

from graph_api.errors import ConfigError, forbidden, invalid_token, unauthenticated
from graph_api.settings import Settings
from identity_graph.model import Page
from identity_graph.records import AccessRecords, ApiKey

log = logging.getLogger("c360.auth")

ROLES = frozenset({"admin", "support", "sales", "marketing", "analyst", "ingest"})
READ_ROLES = ROLES - {"ingest"}
INGEST_ROLES = frozenset({"ingest", "admin"})
ADMIN_ROLES = frozenset({"admin"})
CONSENT_ROLES = frozenset({"admin", "support"})
"""who may record consent through the API; the person's own choices arrive with their
tracking messages (`context.consent`), which the ingest role sends"""
AUDIENCE_ROLES = frozenset({"admin", "marketing", "analyst"})
"""who may read audiences, their members and changes, and explain a membership: those who
segment (marketing) and measure (analyst); every reader of a customer sees its audiences"""
KEY_PREFIX = "c360_"
REQUIRED_CLAIMS = ["exp", "sub", "aud", "iss"]
"""audience and issuer are required settings whenever JWTs are on (`Settings.check`)"""
_JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str]
    kind: str
    """`api_key` or `jwt`"""


def require(principal: Principal, allowed: Iterable[str], action: str) -> None:
    """Raise a 403 `AuthError` unless the principal holds one of the allowed roles."""
    if principal.roles.isdisjoint(allowed):
        raise forbidden(f"your role may not {action}")


def now() -> datetime:
    return datetime.now(UTC)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known roles: {', '.join(sorted(ROLES))}")
    return role


KEY_CACHE_SECONDS = 5.0
"""How long a key record read from the store is trusted: the longest a key revoked by another
process (another API worker on the same Neo4j database) is still accepted here. A revocation
through this process takes effect at once."""


class KeyCache:
    """API key records read from the store, by key hash, for `ttl` seconds of `clock`.

    Only records the store returned are kept (revoked and expiring ones too: whether a key is
    usable is decided on every request against the record). An unknown key is looked up
    every time: caching misses would let random tokens push good keys out and would refuse,
    for a while, a key another process has just created. At most `size` records are kept,
    the least recently used dropped first.
    """

    def __init__(
        self,
        *,
        ttl: float = KEY_CACHE_SECONDS,
        size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._generation = 0

    def __len__(self) -> int:
        return len(self._records)

    async def get(self, digest: str, records: AccessRecords) -> ApiKey | None:
        """The record of this key hash: the cached one if fresh, else the store's."""
        held = self._records.get(digest)
        if held is not None and self._clock() - held[0] < self.ttl:
            self._records.move_to_end(digest)
            return held[1]
        generation, read_at = self._generation, self._clock()
        record = await records.api_key(digest)
        if record is None:
            self._records.pop(digest, None)
        elif generation == self._generation:  # no revocation while the store was read
            self._records[digest] = (read_at, record)
            self._records.move_to_end(digest)
            while len(self._records) > self.size:
                self._records.popitem(last=False)
        return record

    def clear(self) -> None:
        """Forget every record, and any read under way: it may predate a revocation."""
        self._records.clear()
        self._generation += 1


class JwksFile:
    """The signing keys of a JWKS file, re-read without a restart: when the file's
    modification time or size changes, and when a token names a `kid` the keys lack (at
    most once per `retry_seconds`, so tokens with made-up kids cannot make c360 re-read the
    file on every request). A file that no longer parses keeps the keys read before."""

    def __init__(
        self,
        path: Path,
        *,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._stamp: tuple[int, int] | None = None
        self._read_at = 0.0
        self._keys = self._load()  # at start-up, a file c360 cannot use is a ConfigError

    def key_for(self, kid: object) -> Any:
        """The key a token's `kid` names (any key when it names none)."""
        if self._stat() != self._stamp:
            self._reload()
        key = self._find(kid)
        if key is None and self._clock() - self._read_at >= self.retry_seconds:
            self._reload()
            key = self._find(kid)
        if key is None:
            raise invalid_token("no key in the JWKS matches the token's kid")
        return key

    def _find(self, kid: object) -> Any:
        for key in self._keys:
            if kid is None or key.key_id == kid:
                return key.key
        return None

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _load(self) -> list[jwt.PyJWK]:
        self._read_at = self._clock()
        self._stamp = self._stat()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return list(jwt.PyJWKSet.from_dict(data).keys)
        except (OSError, ValueError, jwt.PyJWTError) as e:
            raise ConfigError(f"C360_JWT_JWKS_FILE {self.path}: not a usable JWKS: {e}") from e

    def _reload(self) -> None:
        try:
            self._keys = self._load()
        except ConfigError as e:
            log.warning("%s; keeping the keys read before", e)


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        records: AccessRecords,
        *,
        clock: Callable[[], datetime] = now,
        keys: KeyCache | None = None,
    ) -> None:
        self.settings = settings
        self.records = records
        self._clock = clock
        self.keys = keys if keys is not None else KeyCache()
        self._jwks = JwksFile(settings.jwt_jwks_file) if settings.jwt_jwks_file else None

    async def from_bearer(self, request: HTTPConnection) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise unauthenticated("missing Authorization: Bearer credentials")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise invalid_token("expected Authorization: Bearer <token>")
        if token.count(".") == 2 and not token.startswith(KEY_PREFIX):
            return self._from_jwt(token)
        return await self._from_key(token)

    async def from_basic(self, request: HTTPConnection) -> Principal:
        """A Segment write key sent as the HTTP Basic user name (the password is empty)."""
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if not header:
            raise unauthenticated("missing Authorization: Basic credentials (the write key)")
        if scheme.lower() != "basic":
            raise invalid_token("expected Authorization: Basic <write key>")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise invalid_token("malformed Basic credentials") from e
        user, _, _ = decoded.partition(":")
        return await self.from_write_key(user)

    async def from_write_key(self, key: str) -> Principal:
        """A Segment write key: an API key, sent as the Basic user name or a body's
        `writeKey`."""
        if not key:
            raise unauthenticated("the write key is empty")
        return await self._from_key(key)

    async def create_key(
        self, role: str, name: str | None, *, expires_at: datetime | None = None
    ) -> tuple[str, ApiKey]:
        """Make a key for a role, valid until `expires_at` (a time to come) if given; the
        clear key is returned once and never stored."""
        check_role(role)
        created = self._clock()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise ValueError("the expiry must carry a time zone")
            if expires_at <= created:
                raise ValueError("the expiry must be in the future")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(uuid.uuid4().hex, hash_key(key), role, name, created, expires_at=expires_at)
        await self.records.put_api_key(record)
        return key, record

    async def list_keys(self, *, first: int, after: str | None) -> Page[ApiKey]:
        """API key records (never a key), oldest first."""
        return await self.records.api_keys(first=first, after=after)

    async def seed_key(self, key: str, role: str, name: str) -> None:
        """Store a key chosen by the operator (`C360_BOOTSTRAP_ADMIN_KEY`), once."""
        digest = hash_key(key)
        if await self.records.api_key(digest) is None:
            key_id = "bootstrap-" + uuid.uuid4().hex[:16]  # nothing derived from the secret
            await self.records.put_api_key(ApiKey(key_id, digest, role, name, self._clock()))

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke a key by id, refused from the next request on; False if there is none."""
        try:
            return await self.records.revoke_api_key(key_id, at=self._clock())
        finally:
            self.keys.clear()  # all of it: it is keyed by hash, and revocations are rare

    async def _from_key(self, key: str) -> Principal:
        record = await self.keys.get(hash_key(key), self.records)
        if record is None or not record.usable(self._clock()):
            raise invalid_token("unknown, revoked or expired API key")
        if record.role not in ROLES:
            raise forbidden("the API key carries no known role")
        return Principal(f"key:{record.id}", frozenset({record.role}), "api_key")

    def _from_jwt(self, token: str) -> Principal:
        try:
            if self.settings.jwt_secret:
                key, algorithms = self.settings.jwt_secret.get(), ["HS256"]
            elif self._jwks is not None:
                key = self._jwks.key_for(jwt.get_unverified_header(token).get("kid"))
                algorithms = _JWT_ALGORITHMS
            else:
                raise invalid_token("JWTs are not accepted by this server")
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as e:
            raise invalid_token(f"invalid token: {e}") from e
        roles = _roles(claims.get(self.settings.jwt_roles_claim))
        unknown = roles - ROLES
        if unknown:
            raise forbidden(f"unknown role(s) in token: {', '.join(sorted(unknown))}")
        if not roles:
            raise forbidden(f"the token carries no role (claim {self.settings.jwt_roles_claim!r})")
        return Principal(f"jwt:{claims['sub']}", frozenset(roles), "jwt")


def _roles(claim: object) -> frozenset[str]:
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list) and all(isinstance(r, str) for r in claim):
        return frozenset(claim)
    return frozenset()
