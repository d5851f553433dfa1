"""Settings c360 refuses to start with: a weak bootstrap admin key, JWTs accepted without
an audience and an issuer to check them against."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from graph_api.app import create_app
from graph_api.errors import ConfigError
from graph_api.settings import Secret, Settings, weak_key_reason

STRONG = "Zq3-vL9xRk2_Tw7mNb4Hs8Pd1Cf6Yj5Ge0"


@pytest.mark.parametrize(
    "key",
    [
        "c360_test-admin-key",  # what the tests used: 19 characters
        "admin",
        "a" * 64,
        "abababababababababababababababab1234",  # 36 characters, 6 distinct
    ],
)
def test_a_weak_bootstrap_key_stops_the_start(tmp_path: Path, key: str) -> None:
    env = {"C360_DATA_DIR": str(tmp_path / "data"), "C360_BOOTSTRAP_ADMIN_KEY": key}
    with pytest.raises(ConfigError) as raised:
        create_app(Settings.from_env(env))
    message = str(raised.value)
    assert message.startswith("C360_BOOTSTRAP_ADMIN_KEY is too weak: ")
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in message
    assert key not in message  # a secret, even a weak one, is not echoed


def test_strong_keys_pass(tmp_path: Path) -> None:
    import secrets

    for key in (STRONG, secrets.token_urlsafe(32), secrets.token_hex(16), secrets.token_hex(24)):
        assert weak_key_reason(key) is None, key
    create_app(Settings(data_dir=tmp_path / "data", bootstrap_admin_key=Secret(STRONG)))
    create_app(Settings(data_dir=tmp_path / "data"))  # no bootstrap key: nothing to check


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({}, "C360_JWT_AUDIENCE and C360_JWT_ISSUER must be set"),
        ({"C360_JWT_AUDIENCE": "c360"}, "C360_JWT_ISSUER must be set"),
        ({"C360_JWT_ISSUER": "https://idp/", "C360_JWT_AUDIENCE": " "}, "C360_JWT_AUDIENCE must"),
    ],
)
@pytest.mark.parametrize("source", ["C360_JWT_SECRET", "C360_JWT_JWKS_FILE"])
def test_jwts_need_an_audience_and_an_issuer(
    tmp_path: Path, given: dict[str, str], missing: str, source: str
) -> None:
    jwks = tmp_path / "jwks.json"
    public = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048).public_key())
    jwks.write_text(f'{{"keys": [{public}]}}')
    value = str(jwks) if source == "C360_JWT_JWKS_FILE" else "s" * 40
    env = {"C360_DATA_DIR": str(tmp_path / "data"), source: value, **given}
    with pytest.raises(ConfigError, match=missing):
        create_app(Settings.from_env(env))
    complete = {**env, "C360_JWT_AUDIENCE": "c360", "C360_JWT_ISSUER": "https://idp/"}
    create_app(Settings.from_env(complete))


def test_an_unusable_jwks_file_stops_the_start(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("not json")
    settings = Settings(
        data_dir=tmp_path / "data", jwt_jwks_file=jwks, jwt_audience="a", jwt_issuer="i"
    )
    with pytest.raises(ConfigError, match="C360_JWT_JWKS_FILE .*jwks.json: not a usable JWKS"):
        create_app(settings)
