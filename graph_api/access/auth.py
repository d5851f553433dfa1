"""Who is calling: API keys (stored hashed) and JWTs (HS256 secret or a JWKS file).

`Authorization: Bearer <api key or JWT>` for the API, HTTP Basic with the key as user name
for the Segment tracking endpoint. Roles gate operations; fields are the PII policy's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.requests import HTTPConnection

from graph_api.errors import forbidden, invalid_token, unauthenticated
from graph_api.settings import Settings
from identity_graph.records import AccessRecords, ApiKey

ROLES = frozenset({"admin", "support", "sales", "marketing", "analyst", "ingest"})
READ_ROLES = ROLES - {"ingest"}
INGEST_ROLES = frozenset({"ingest", "admin"})
ADMIN_ROLES = frozenset({"admin"})
CONSENT_ROLES = frozenset({"admin", "support", "ingest"})
KEY_PREFIX = "c360_"
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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known roles: {', '.join(sorted(ROLES))}")
    return role


class Authenticator:
    def __init__(self, settings: Settings, records: AccessRecords) -> None:
        self.settings = settings
        self.records = records
        self._jwks: jwt.PyJWKSet | None = None

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

    async def create_key(self, role: str, name: str | None) -> tuple[str, ApiKey]:
        """Make a key for a role; the clear key is returned once and never stored."""
        check_role(role)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(uuid.uuid4().hex, hash_key(key), role, name, datetime.now(UTC))
        await self.records.put_api_key(record)
        return key, record

    async def seed_key(self, key: str, role: str, name: str) -> None:
        """Store a key chosen by the operator (`C360_BOOTSTRAP_ADMIN_KEY`), once."""
        digest = hash_key(key)
        if await self.records.api_key(digest) is None:
            key_id = "bootstrap-" + uuid.uuid4().hex[:16]  # nothing derived from the secret
            await self.records.put_api_key(ApiKey(key_id, digest, role, name, datetime.now(UTC)))

    async def revoke_key(self, key_id: str) -> bool:
        return await self.records.revoke_api_key(key_id, at=datetime.now(UTC))

    async def _from_key(self, key: str) -> Principal:
        record = await self.records.api_key(hash_key(key))
        if record is None or record.revoked_at is not None:
            raise invalid_token("unknown or revoked API key")
        if record.role not in ROLES:
            raise forbidden("the API key carries no known role")
        return Principal(f"key:{record.id}", frozenset({record.role}), "api_key")

    def _from_jwt(self, token: str) -> Principal:
        try:
            if self.settings.jwt_secret:
                claims = jwt.decode(
                    token,
                    self.settings.jwt_secret.get(),
                    algorithms=["HS256"],
                    audience=self.settings.jwt_audience,
                    issuer=self.settings.jwt_issuer,
                    options={"require": ["exp", "sub"]},
                )
            elif self.settings.jwt_jwks_file is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                claims = jwt.decode(
                    token,
                    self._signing_key(kid),
                    algorithms=_JWT_ALGORITHMS,
                    audience=self.settings.jwt_audience,
                    issuer=self.settings.jwt_issuer,
                    options={"require": ["exp", "sub"]},
                )
            else:
                raise invalid_token("JWTs are not accepted by this server")
        except jwt.PyJWTError as e:
            raise invalid_token(f"invalid token: {e}") from e
        roles = _roles(claims.get(self.settings.jwt_roles_claim))
        unknown = roles - ROLES
        if unknown:
            raise forbidden(f"unknown role(s) in token: {', '.join(sorted(unknown))}")
        if not roles:
            raise forbidden(f"the token carries no role (claim {self.settings.jwt_roles_claim!r})")
        return Principal(f"jwt:{claims['sub']}", frozenset(roles), "jwt")

    def _signing_key(self, kid: object) -> Any:
        if self._jwks is None:
            assert self.settings.jwt_jwks_file is not None
            data = json.loads(self.settings.jwt_jwks_file.read_text(encoding="utf-8"))
            self._jwks = jwt.PyJWKSet.from_dict(data)
        keys = self._jwks.keys
        for key in keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise invalid_token("no key in the JWKS matches the token's kid")


def _roles(claim: object) -> frozenset[str]:
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list) and all(isinstance(r, str) for r in claim):
        return frozenset(claim)
    return frozenset()
