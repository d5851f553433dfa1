"""Who may call: API keys, JWTs (HS256 and JWKS), 401 without credentials, 403 without role."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from graph_api.app import create_app
from graph_api.settings import Settings
from tests.api.conftest import JWT_AUDIENCE, JWT_CLAIMS, JWT_ISSUER, JWT_SECRET, Api, codes

READ = "{ customers(first: 1) { totalCount } }"
BOOT_KEY = "c360_boot-Hk2Lq8Ws4Zx6Nc1Vb3Mp7Rt"


def token(roles: Any = ("support",), secret: str = JWT_SECRET, **claims: Any) -> str:
    payload = {
        "sub": "alice",
        "roles": list(roles),
        "exp": int(time.time()) + 600,
        **JWT_CLAIMS,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


async def test_no_credentials_is_401(api: Api) -> None:
    response = await api.post(READ, key=None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert codes(response.json()["errors"]) == ["UNAUTHENTICATED"]


async def test_bad_credentials_are_401(api: Api, client: httpx.AsyncClient) -> None:
    for key in ("c360_not-a-key", "a.b.c", token(secret="x" * 40), token(exp=1)):
        response = await api.post(READ, key=key)
        assert response.status_code == 401, key
        assert codes(response.json()["errors"]) == ["INVALID_TOKEN"]
    response = await client.post(
        "/graphql", json={"query": READ}, headers={"Authorization": "Basic dXNlcjo="}
    )
    assert response.status_code == 401


async def test_ingest_role_cannot_read_customers(api: Api) -> None:
    ingest = await api.key("ingest")
    response = await api.post(READ, key=ingest)
    assert response.status_code == 403
    assert codes(response.json()["errors"]) == ["FORBIDDEN"]
    data = await api('mutation { identify(input: {userId: "u1"}) { status } }', key=ingest)
    assert data["identify"]["status"] == "applied"


async def test_every_reader_role_can_read(api: Api) -> None:
    for role in ("admin", "support", "sales", "marketing", "analyst"):
        assert (await api(READ, key=await api.key(role)))["customers"]["totalCount"] == 0


async def test_jwt_hs256_carries_roles(api: Api) -> None:
    assert (await api(READ, key=token()))["customers"]["totalCount"] == 0
    assert codes(await api.errors(READ, key=token(roles=["ingest"]))) == ["FORBIDDEN"]
    spaced = jwt.encode(
        {"sub": "bob", "roles": "ingest admin", "exp": int(time.time()) + 60, **JWT_CLAIMS},
        JWT_SECRET,
        algorithm="HS256",
    )
    assert (await api(READ, key=spaced))["customers"]["totalCount"] == 0


async def test_jwt_without_known_role_is_403(api: Api) -> None:
    for roles in ([], ["overlord"]):
        response = await api.post(READ, key=token(roles=roles))
        assert response.status_code == 403
        assert codes(response.json()["errors"]) == ["FORBIDDEN"]


async def test_jwt_from_jwks_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    app = create_app(
        Settings(
            data_dir=tmp_path / "data",
            jwt_jwks_file=jwks,
            jwt_audience=JWT_AUDIENCE,
            jwt_issuer=JWT_ISSUER,
        )
    )
    claims = {"sub": "carol", "roles": ["sales"], "exp": int(time.time()) + 60, **JWT_CLAIMS}
    good = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client)
            assert (await api(READ, key=good))["customers"]["totalCount"] == 0
            assert (await api.post(READ, key=forged)).status_code == 401


async def test_bootstrap_key_is_seeded_once(tmp_path: Path) -> None:
    from graph_api.settings import Secret

    settings = Settings(data_dir=tmp_path / "data", bootstrap_admin_key=Secret(BOOT_KEY))
    for _ in range(2):
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                data = await Api(client)(READ, key=BOOT_KEY)
                assert data["customers"]["totalCount"] == 0


async def test_graphiql_page_needs_no_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    response = await client.get("/graphql", params={"query": READ})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "operation", "action"),
    [
        ("ingest", '{ customer(id: "p1") { id } }', "read customers"),
        ("support", "{ auditLog { totalCount } }", "read the audit log"),
        ("analyst", 'mutation { undoMerge(mergeId: "m1") { id } }', "undo merges"),
        ("sales", 'mutation { revokeApiKey(id: "k1") }', "revoke API keys"),
        (
            "marketing",
            'mutation { setConsent(customerId: "p1", choices: []) { purpose } }',
            "record consent",
        ),
        ("support", 'mutation { identify(input: {userId: "u1"}) { status } }', "ingest"),
    ],
)
async def test_a_role_outside_an_operations_roles_is_403(
    api: Api, role: str, operation: str, action: str
) -> None:
    response = await api.post(operation, key=await api.key(role))
    assert response.status_code == 403
    assert [(e["message"], e["extensions"]["code"]) for e in response.json()["errors"]] == [
        (f"your role may not {action}", "FORBIDDEN")
    ]
