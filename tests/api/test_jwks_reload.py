"""A JWKS file is re-read without a restart: when it changes, and (rate-limited) when a token
names a key it lacks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from graph_api.access.auth import JwksFile
from graph_api.errors import AuthError
from graph_api.settings import Settings
from tests.api.conftest import JWT_AUDIENCE, JWT_CLAIMS, JWT_ISSUER, serving

READ = "{ customers(first: 1) { totalCount } }"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_jwks(path: Path, **keys: rsa.RSAPrivateKey) -> None:
    """A JWKS of the keys' public halves under their kids (2048-bit RSA keys and kids of
    one length give files of one size)."""
    entries = [
        {**json.loads(RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "alg": "RS256"}
        for kid, k in keys.items()
    ]
    path.write_text(json.dumps({"keys": entries}))


def signed(key: rsa.RSAPrivateKey, kid: str) -> str:
    claims = {"sub": "dana", "roles": ["support"], "exp": int(time.time()) + 60, **JWT_CLAIMS}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def same_stamp(path: Path, stamp: os.stat_result) -> None:
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    one, two = new_key(), new_key()
    write_jwks(path, k1=one)
    jwks = JwksFile(path, clock=Clock())
    assert jwks.key_for("k1") is not None
    with pytest.raises(AuthError, match="no key in the JWKS"):
        jwks.key_for("k2")
    before = path.stat()
    write_jwks(path, k2=two)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert jwks.key_for("k2") is not None
    with pytest.raises(AuthError):
        jwks.key_for("k1")  # rotated out


def test_an_unknown_kid_rereads_the_file_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change the modification time does not show (same time, same size) is found when a
    token names the new kid, but made-up kids cannot make c360 read the file on every call."""
    path = tmp_path / "jwks.json"
    clock = Clock()
    write_jwks(path, k1=new_key())
    stamp = path.stat()
    jwks = JwksFile(path, retry_seconds=30, clock=clock)
    write_jwks(path, k1=new_key(), k2=new_key())
    write_jwks(path, k2=new_key())
    same_stamp(path, stamp)
    clock.now += 5
    with pytest.raises(AuthError):
        jwks.key_for("k2")  # read 5 s ago: not again yet
    clock.now += 30
    assert jwks.key_for("k2") is not None
    clock.now += 1
    reads = 0
    load = jwks._load

    def counted() -> list[jwt.PyJWK]:
        nonlocal reads
        reads += 1
        return load()

    monkeypatch.setattr(jwks, "_load", counted)
    for _ in range(100):
        with pytest.raises(AuthError):
            jwks.key_for("made-up")
    assert reads == 0
    clock.now += 30
    with pytest.raises(AuthError):
        jwks.key_for("made-up")
    assert reads == 1


def test_a_broken_file_keeps_the_keys_read_before(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, k1=new_key())
    jwks = JwksFile(path, clock=Clock())
    before = path.stat()
    path.write_text('{"keys": [')  # a writer caught half-way
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert jwks.key_for("k1") is not None


def jwks_settings(tmp_path: Path, jwks: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        jwt_jwks_file=jwks,
        jwt_audience=JWT_AUDIENCE,
        jwt_issuer=JWT_ISSUER,
    )


async def test_a_server_accepts_a_rotated_key_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    old, new = new_key(), new_key()
    write_jwks(path, k1=old)
    async with serving(jwks_settings(tmp_path, path)) as api:
        assert (await api(READ, key=signed(old, "k1")))["customers"]["totalCount"] == 0
        assert (await api.post(READ, key=signed(new, "k2"))).status_code == 401
        before = path.stat()
        write_jwks(path, k2=new)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
        assert (await api(READ, key=signed(new, "k2")))["customers"]["totalCount"] == 0
        assert (await api.post(READ, key=signed(old, "k1"))).status_code == 401


async def test_a_token_for_another_audience_or_issuer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    key = new_key()
    write_jwks(path, k1=key)
    base = {"sub": "erin", "roles": ["support"], "exp": int(time.time()) + 60}
    async with serving(jwks_settings(tmp_path, path)) as api:
        for claims in (
            {**base, "iss": JWT_ISSUER},
            {**base, "aud": JWT_AUDIENCE},
            {**base, **JWT_CLAIMS, "aud": "another-service"},
            {**base, **JWT_CLAIMS, "iss": "https://elsewhere/"},
        ):
            token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
            response = await api.post(READ, key=token)
            assert response.status_code == 401, claims
            assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
