"""The policy: the issue's default table, files that override it, and bad input that must
stop start-up or the request, never fall back to allowing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from graph_api.access.auth import hash_key
from graph_api.access.categories import PiiCategory
from graph_api.access.policy import Mode, Policy
from graph_api.app import create_app
from graph_api.errors import PolicyError
from graph_api.services import build_services
from identity_graph.records import ApiKey
from tests.api.conftest import Api, codes
from tests.privacy.conftest import TRAITS, Seeded, make_settings, seed, token

C, M, H, D = Mode.CLEAR, Mode.MASKED, Mode.HASHED, Mode.DENIED
CONTACT, IDENTITY, LOCATION, DEVICE, FINANCIAL, UNCLASSIFIED = (
    PiiCategory.CONTACT,
    PiiCategory.IDENTITY,
    PiiCategory.LOCATION,
    PiiCategory.DEVICE,
    PiiCategory.FINANCIAL,
    PiiCategory.UNCLASSIFIED,
)
READ = "query($id: ID!) { customer(id: $id) { traits { email firstName } } }"


def test_default_table_meets_the_issue() -> None:
    policy = Policy.default()

    def mode(role: str, category: PiiCategory) -> Mode:
        return policy.mode(role, category)

    assert all(mode("admin", c) is C for c in PiiCategory)
    assert mode("support", CONTACT) is C and mode("support", IDENTITY) is C
    assert mode("sales", CONTACT) is C and mode("sales", LOCATION) is M
    assert mode("marketing", CONTACT) is M and mode("marketing", FINANCIAL) is D
    assert mode("analyst", CONTACT) is H and mode("analyst", DEVICE) is H
    assert all(mode("analyst", c) is not C for c in PiiCategory)
    assert all(mode("ingest", c) is D for c in PiiCategory)
    assert all(mode("overlord", c) is D for c in PiiCategory)
    assert policy.kind_category("email") is CONTACT
    assert policy.kind_category("device_id") is DEVICE
    assert policy.kind_category("crm_id") is UNCLASSIFIED
    assert policy.property_category("revenue") is FINANCIAL
    assert policy.trait_category("favourite_colour") is UNCLASSIFIED


def test_a_file_overrides_roles_and_classifies_keys() -> None:
    policy = Policy.parse(
        """
        [roles.marketing]
        CONTACT = "hashed"
        LOCATION = "masked"

        [classification.kinds]
        crm_id = "IDENTITY"

        [classification.event_properties]
        coupon = "FINANCIAL"
        """
    )
    assert policy.mode("marketing", CONTACT) is H
    assert policy.mode("marketing", LOCATION) is M
    assert policy.mode("marketing", IDENTITY) is D, "a category left out is denied"
    assert policy.mode("support", CONTACT) is C, "other roles keep their defaults"
    assert policy.kind_category("crm_id") is IDENTITY
    assert policy.property_category("coupon") is FINANCIAL
    assert policy.best_mode(frozenset({"marketing", "support"}), CONTACT) is C


BAD_FILES = [
    ('[roles.overlord]\nCONTACT = "clear"\n', 1, "unknown role 'overlord'"),
    ('[roles.support]\nCONTACT = "clear"\nSECRETS = "clear"\n', 3, "unknown category 'SECRETS'"),
    ('[roles.sales]\n\nCONTACT = "allow"\n', 3, "unknown mode 'allow'"),
    ('[roles.sales]\nCONTACT = "Clear"\n', 2, "unknown mode 'Clear'"),
    ('\n[classification.traits]\nplan = "SECRET"\n', 3, "unknown category 'SECRET'"),
    ('[classification.kinds]\ncrm_id = "contact"\n', 2, "unknown category 'contact'"),
    ('[classifications.traits]\nplan = "CONTACT"\n', 1, "unknown section"),
    ('[classification.properties]\nplan = "CONTACT"\n', 1, "unknown table 'properties'"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_a_bad_policy_file_names_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.parse(text, origin="policy.toml")
    assert f"policy.toml, line {line}:" in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES[:3])
def test_a_bad_policy_file_stops_start_up(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    settings = make_settings(tmp_path)
    assert settings.policy_file is not None
    settings.policy_file.write_text(text, encoding="utf-8")
    for build in (build_services, create_app):
        with pytest.raises(PolicyError, match=rf"line {line}: .*{message}"):
            build(settings)


def test_a_policy_file_that_is_not_toml_or_missing_stops_start_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.policy_file is not None
    settings.policy_file.write_text('[roles.sales\nCONTACT = "clear"\n', encoding="utf-8")
    with pytest.raises(PolicyError, match="line 1"):
        create_app(settings)
    settings.policy_file.unlink()
    with pytest.raises(PolicyError, match="cannot read policy file"):
        create_app(settings)


async def test_a_policy_file_is_enforced(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.policy_file is not None
    settings.policy_file.write_text(
        '[roles.support]\nCONTACT = "clear"\nIDENTITY = "hashed"\n'
        '[roles.marketing]\nCONTACT = "denied"\n',
        encoding="utf-8",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client)
            seeded = await seed(api)
            support = await api(READ, {"id": seeded.customer_id}, key=token("support"))
            assert support["customer"]["traits"]["email"] == TRAITS["email"]
            assert len(support["customer"]["traits"]["firstName"]) == 64
            response = await api.post(READ, {"id": seeded.customer_id}, key=token("marketing"))
            body = response.json()
            assert body["data"]["customer"]["traits"]["email"] is None
            assert codes(body["errors"]) == ["FORBIDDEN_FIELD"] * 2
            assert sorted(e["path"][-1] for e in body["errors"]) == ["email", "firstName"]
            assert TRAITS["email"] not in response.text
            assert TRAITS["firstName"] not in response.text


@pytest.mark.parametrize("roles", [[], ["overlord"], ["support", "overlord"], [""]])
async def test_a_token_without_a_known_role_gets_403(
    api: Api, seeded: Seeded, roles: list[str]
) -> None:
    response = await api.post(READ, {"id": seeded.customer_id}, key=token(*roles))
    assert response.status_code == 403
    assert codes(response.json()["errors"]) == ["FORBIDDEN"]
    assert TRAITS["email"] not in response.text


@pytest.mark.parametrize("role", ["", "overlord"])
async def test_an_api_key_without_a_known_role_gets_403(
    api: Api, app: Starlette, seeded: Seeded, role: str
) -> None:
    key = f"c360_no-role-key-{role}"
    record = ApiKey(f"k-{role}", hash_key(key), role, "broken", datetime.now(UTC))
    await app.state.services.records.put_api_key(record)
    response = await api.post(READ, {"id": seeded.customer_id}, key=key)
    assert response.status_code == 403
    assert codes(response.json()["errors"]) == ["FORBIDDEN"]
    assert TRAITS["email"] not in response.text


async def test_keys_for_unknown_roles_cannot_be_made(api: Api) -> None:
    query = 'mutation { createApiKey(role: "overlord") { key } }'
    assert codes(await api.errors(query)) == ["BAD_INPUT"]
