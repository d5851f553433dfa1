"""A destination: where audience changes are delivered, in which shape, signed with which
secrets, and as which role (so that it receives no more than that role may read)."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from identity_graph.errors import InvalidOperation

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
"""Standard Webhooks: a secret of 24 to 64 random bytes, base64, after `whsec_`"""
MAX_URL = 2_000
MAX_NAME = 200
MAX_AUDIENCES = 100
MAX_DESTINATIONS = 50
"""destinations a deployment may have: each runs a worker and holds connections"""
MAX_MAPPING = 100
MAX_HEADERS = 20
FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
    | {"webhook-id", "webhook-timestamp", "webhook-signature"}
)
"""headers a destination may not set: the transport's and the signature's own"""


class DestinationFormat(StrEnum):
    STANDARD = "STANDARD"
    """Standard Webhooks: `audience.entered` / `audience.exited` events"""
    HUBSPOT = "HUBSPOT"
    """HubSpot CRM v3 contacts batch upsert by email"""
    SALESFORCE = "SALESFORCE"
    """Salesforce sObject Collections upsert of Contacts by an external id field"""


class DestinationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    FAILING = "FAILING"
    """its last attempt failed; deliveries are retried with backoff"""
    DISABLED = "DISABLED"
    """by an admin, or by the receiver answering `410 Gone`: nothing is sent or enqueued"""


DEFAULT_MAPPINGS: dict[DestinationFormat, dict[str, str]] = {
    DestinationFormat.STANDARD: {},
    DestinationFormat.HUBSPOT: {
        "firstname": "traits.firstName",
        "lastname": "traits.lastName",
        "phone": "identifiers.phone",
        "company": "traits.company",
        "city": "traits.city",
        "country": "traits.country",
    },
    DestinationFormat.SALESFORCE: {
        "Email": "identifiers.email",
        "FirstName": "traits.firstName",
        "LastName": "traits.lastName",
        "Phone": "identifiers.phone",
        "Title": "traits.title",
    },
}
"""where each CRM property comes from (`traits.NAME`, `computed.NAME`, `identifiers.KIND`,
`id`), unless the destination maps its own"""

SOURCE_PREFIXES = ("traits.", "computed.", "identifiers.")

DEFAULT_OPTIONS: dict[DestinationFormat, dict[str, str]] = {
    DestinationFormat.STANDARD: {},
    DestinationFormat.HUBSPOT: {"membershipProperty": "c360_audiences"},
    DestinationFormat.SALESFORCE: {
        "externalIdField": "C360_Id__c",
        "membershipField": "C360_Audiences__c",
    },
}
"""format options a destination may override in its mapping (`$option` keys): the CRM
property holding the customer's audience names (a `;`-separated list, as HubSpot and
Salesforce multi-select picklists read), and Salesforce's external id field"""


@dataclass(frozen=True, slots=True)
class SigningSecret:
    value: str
    """`whsec_` + base64 of the key bytes"""
    expires_at: datetime | None = None
    """an old secret still signs until then, so receivers can roll over"""

    def key(self) -> bytes:
        return base64.b64decode(self.value.removeprefix(SECRET_PREFIX))


def new_secret() -> SigningSecret:
    return SigningSecret(
        SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    )


@dataclass(frozen=True, slots=True)
class Destination:
    id: str
    name: str
    url: str
    audience_ids: tuple[str, ...]
    format: DestinationFormat
    role: str
    """what of a profile it receives: that role's view under the field policy"""
    secrets: tuple[SigningSecret, ...]
    """newest first; every one not expired signs"""
    created_at: datetime
    status: DestinationStatus = DestinationStatus.ACTIVE
    last_error: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    """CRM property -> source, over the format's defaults; `$option` keys set options"""
    headers: Mapping[str, str] = field(default_factory=dict)
    """sent with every request (a CRM's `Authorization`); never shown back"""
    updated_at: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self.status is not DestinationStatus.DISABLED

    def signing_keys(self, now: datetime) -> list[bytes]:
        return [s.key() for s in self.secrets if s.expires_at is None or s.expires_at > now]

    def rotated(self, now: datetime, grace: timedelta) -> tuple[Destination, SigningSecret]:
        """A new secret; the current ones sign on for `grace` (or less, if they expire
        sooner)."""
        fresh = new_secret()
        until = now + grace
        kept = tuple(
            replace(s, expires_at=until if s.expires_at is None else min(s.expires_at, until))
            for s in self.secrets
            if s.expires_at is None or s.expires_at > now
        )
        return replace(self, secrets=(fresh, *kept), updated_at=now), fresh

    def properties(self) -> dict[str, str]:
        """CRM property -> source: the format's defaults, then the destination's own."""
        mapped = dict(DEFAULT_MAPPINGS[self.format])
        for prop, source in self.mapping.items():
            if not prop.startswith("$"):
                mapped[prop] = source
        return {p: s for p, s in mapped.items() if s}

    def option(self, name: str) -> str:
        return self.mapping.get("$" + name) or DEFAULT_OPTIONS[self.format][name]


def check_name(name: str) -> str:
    if not name or not name.strip() or len(name) > MAX_NAME:
        raise InvalidOperation(f"name: a destination's name is 1 to {MAX_NAME} characters")
    return name


def check_url(url: str, *, allow_private: bool) -> str:
    """A URL a destination may have: `https` (or `http` where private addresses are
    allowed), a host, no credentials, no fragment; an IP address must be public unless
    private addresses are allowed. Names are resolved (and checked) when sending."""
    if len(url) > MAX_URL:
        raise InvalidOperation(f"url: at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidOperation(f"url: not a URL ({e})") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise InvalidOperation(
            "url: must be https"
            + ("" if allow_private else " (C360_WEBHOOK_ALLOW_PRIVATE=1 allows http)")
        )
    if not parts.hostname:
        raise InvalidOperation("url: has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidOperation("url: may not carry credentials (use headers)")
    if parts.fragment:
        raise InvalidOperation("url: may not have a fragment")
    if port == 0:
        raise InvalidOperation("url: port 0")
    if not allow_private:
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            address = None
        if address is not None and not public(address):
            raise InvalidOperation(
                f"url: {address} is not a public address (C360_WEBHOOK_ALLOW_PRIVATE=1 allows it)"
            )
        if parts.hostname.lower() in ("localhost",) or parts.hostname.lower().endswith(
            (".localhost", ".local", ".internal")
        ):
            raise InvalidOperation(f"url: {parts.hostname} is not a public host")
    return url


def public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is one a webhook may reach without C360_WEBHOOK_ALLOW_PRIVATE:
    globally routable (not loopback, private, link-local such as cloud metadata at
    169.254.169.254, shared, reserved or multicast), IPv4 inside IPv6 judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return public(mapped)
    return address.is_global and not address.is_multicast


def check_mapping(mapping: Mapping[str, object], fmt: DestinationFormat) -> dict[str, str]:
    """CRM property -> source, or `$option` -> value; an empty source unmaps a default."""
    if not isinstance(mapping, Mapping):
        raise InvalidOperation("mapping: an object of CRM property -> source")
    if len(mapping) > MAX_MAPPING:
        raise InvalidOperation(f"mapping: at most {MAX_MAPPING} entries")
    if mapping and fmt is DestinationFormat.STANDARD:
        raise InvalidOperation("mapping: STANDARD destinations send every field; map CRM formats")
    checked: dict[str, str] = {}
    for prop, source in mapping.items():
        if not isinstance(prop, str) or not prop or len(prop) > 200:
            raise InvalidOperation("mapping: a property name is 1 to 200 characters")
        if not isinstance(source, str):
            raise InvalidOperation(f"mapping.{prop}: a string")
        if prop.startswith("$"):
            if prop[1:] not in DEFAULT_OPTIONS[fmt]:
                known = ", ".join("$" + o for o in DEFAULT_OPTIONS[fmt]) or "none"
                raise InvalidOperation(f"mapping.{prop}: unknown option (known: {known})")
            if not source:
                raise InvalidOperation(f"mapping.{prop}: may not be empty")
        elif (
            source
            and source != "id"
            and not (source.startswith(SOURCE_PREFIXES) and source.split(".", 1)[1])
        ):
            raise InvalidOperation(
                f"mapping.{prop}: {source!r} is not a source (traits.NAME, computed.NAME,"
                " identifiers.KIND or id)"
            )
        checked[prop] = source
    return checked


def check_headers(headers: Mapping[str, object]) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise InvalidOperation("headers: an object of header name -> value")
    if len(headers) > MAX_HEADERS:
        raise InvalidOperation(f"headers: at most {MAX_HEADERS}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if (
            not isinstance(name, str)
            or not name
            or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
        ):
            raise InvalidOperation(f"headers: {name!r} is not a header name")
        if name.lower() in FORBIDDEN_HEADERS:
            raise InvalidOperation(f"headers.{name}: set by c360 itself")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0") or len(value) > 4000:
            raise InvalidOperation(f"headers.{name}: a one-line string of at most 4000 characters")
        checked[name] = value
    return checked
