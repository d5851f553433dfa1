"""Who may see which category of personal data, and how: role -> category -> mode.

Loaded from a TOML file over built-in defaults. A role's table names modes per category;
a category a role's table leaves out is `denied`. Nothing ever falls back to `clear`.
The roles are the built-in ones (an unknown role in the file fails start-up).

    [roles.support]
    CONTACT = "clear"
    LOCATION = "masked"

    [classification.kinds]     # identifier kinds beyond the built-in ones
    crm_id = "IDENTITY"

    [classification.traits]    # custom trait keys
    plan = "UNCLASSIFIED"
    tax_id = "IDENTITY"

    [classification.event_properties]
    revenue = "FINANCIAL"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from graph_api.access.categories import PiiCategory
from graph_api.errors import PolicyError
from identity_graph.config_text import ConfigText, parse_toml, read_toml


class Mode(StrEnum):
    CLEAR = "clear"
    MASKED = "masked"
    HASHED = "hashed"
    DENIED = "denied"


C, M, H, D = Mode.CLEAR, Mode.MASKED, Mode.HASHED, Mode.DENIED
_ORDER = ("CONTACT", "IDENTITY", "LOCATION", "DEVICE", "FINANCIAL", "UNCLASSIFIED")

DEFAULT_ROLES: dict[str, tuple[Mode, ...]] = {
    #            CONTACT IDENTITY LOCATION DEVICE FINANCIAL UNCLASSIFIED
    "admin": (C, C, C, C, C, C),
    "support": (C, C, M, C, M, M),
    "sales": (C, C, M, D, D, M),
    "marketing": (M, M, M, H, D, M),
    "analyst": (H, H, D, H, D, H),
    "ingest": (D, D, D, D, D, D),
}

DEFAULT_KINDS = {
    "email": PiiCategory.CONTACT,
    "phone": PiiCategory.CONTACT,
    "user_id": PiiCategory.DEVICE,
    "anonymous_id": PiiCategory.DEVICE,
    "device_id": PiiCategory.DEVICE,
}


def _keys(category: PiiCategory, names: str) -> dict[str, PiiCategory]:
    return dict.fromkeys((normal_key(n) for n in names.split()), category)


@lru_cache(maxsize=4096)
def normal_key(key: str) -> str:
    """A key as classification compares it: case and separators ignored, so `cardNumber`,
    `card_number`, `Card-Number` and `CARDNUMBER` are one key. Memoised: every value of a
    JSON map is classified by its key, and a deployment's keys are few.

    >>> normal_key("Card_Number") == normal_key("cardNumber") == "cardnumber"
    True
    """
    return _SEPARATORS.sub("", key).lower()


_SEPARATORS = re.compile(r"[\s_.\-]+")

DEFAULT_KEYS = {
    **_keys(
        PiiCategory.CONTACT,
        "email email_address phone phone_number mobile telephone fax contact recipient",
    ),
    **_keys(
        PiiCategory.IDENTITY,
        "name firstName lastName full_name middle_name maiden_name birthday dob date_of_birth"
        " age gender ssn tax_id national_id passport passport_number driver_license username",
    ),
    **_keys(
        PiiCategory.LOCATION,
        "ip ip_address address street street_address city postalCode postcode zip zipcode"
        " state region country latitude longitude location geo coordinates",
    ),
    **_keys(
        PiiCategory.FINANCIAL,
        # Segment's e-commerce spec amounts, and what cards, banks and pay slips carry
        "revenue total price value subtotal tax shipping discount amount cost coupon"
        " payment_method card card_number card_last4 last4 pan cvv cvc expiry"
        " expiration_date iban bic swift account_number routing_number sort_code income"
        " salary balance credit_limit credit_score",
    ),
}
"""Built-in classification of trait and event-property keys, compared by `normal_key`."""

LOW_CARDINALITY = frozenset(
    normal_key(n)
    for n in (
        "gender age birthday dob date_of_birth country state region city postalCode zip"
        " plan tier title status language locale timezone currency industry employees"
        " rating quantity"
    ).split()
)
"""Keys whose values are few: a keyed hash of one is reversed by hashing the values of known
customers, so the `hashed` mode shows them masked."""

DEFAULT_TRAITS = {
    **DEFAULT_KEYS,
    **_keys(PiiCategory.IDENTITY, "username title company avatar"),
    **_keys(PiiCategory.CONTACT, "website"),
}
"""Trait keys: Segment's reserved traits as their typed fields classify them, so that
`traitHistory(name:)` shows a value no more openly than `Traits` does."""


ROLE_SETS = 256
"""how many sets of roles a policy remembers the modes of (the built-in roles make 64)"""


@dataclass(frozen=True)
class Policy:
    roles: Mapping[str, Mapping[PiiCategory, Mode]]
    kinds: Mapping[str, PiiCategory]
    traits: Mapping[str, PiiCategory]
    event_properties: Mapping[str, PiiCategory]
    _modes: dict[frozenset[str], Mapping[PiiCategory, Mode]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def default(cls) -> Policy:
        return cls(
            roles={
                role: {PiiCategory(c): m for c, m in zip(_ORDER, modes, strict=True)}
                for role, modes in DEFAULT_ROLES.items()
            },
            kinds=dict(DEFAULT_KINDS),
            traits=dict(DEFAULT_TRAITS),
            event_properties=dict(DEFAULT_KEYS),
        )

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        if path is None:
            return cls.default()
        return _Builder(read_toml(path, what="policy", error=PolicyError)).build()

    @classmethod
    def parse(cls, text: str, *, origin: str = "<policy>") -> Policy:
        return _Builder(parse_toml(text, origin=origin, error=PolicyError)).build()

    def mode(self, role: str, category: PiiCategory) -> Mode:
        """The mode of a role for a category; unknown roles and categories are denied."""
        return self.roles.get(role, {}).get(category, Mode.DENIED)

    def best_mode(self, roles: frozenset[str], category: PiiCategory) -> Mode:
        """The most open mode any of the caller's roles grants."""
        ranks = (Mode.DENIED, Mode.HASHED, Mode.MASKED, Mode.CLEAR)
        best = Mode.DENIED
        for role in roles:
            mode = self.mode(role, category)
            if ranks.index(mode) > ranks.index(best):
                best = mode
        return best

    def modes_of(self, roles: frozenset[str]) -> Mapping[PiiCategory, Mode]:
        """Every category's `best_mode` for a set of roles, worked out once per set."""
        modes = self._modes.get(roles)
        if modes is None:
            modes = {category: self.best_mode(roles, category) for category in PiiCategory}
            if len(self._modes) < ROLE_SETS:
                self._modes[roles] = modes
        return modes

    def kind_category(self, kind: str) -> PiiCategory:
        return self.kinds.get(kind, PiiCategory.UNCLASSIFIED)

    def trait_category(self, key: str) -> PiiCategory:
        """A trait key's category (case and separators ignored); unknown keys UNCLASSIFIED."""
        return self.traits.get(normal_key(key), PiiCategory.UNCLASSIFIED)

    def property_category(self, key: str) -> PiiCategory:
        """An event property key's category, compared like trait keys."""
        return self.event_properties.get(normal_key(key), PiiCategory.UNCLASSIFIED)

    def hashable_key(self, key: str) -> bool:
        """Whether a value under this key may be served as a keyed hash (`LOW_CARDINALITY`)."""
        return normal_key(key) not in LOW_CARDINALITY


class _Builder:
    def __init__(self, config: ConfigText[PolicyError]) -> None:
        self.config = config
        self.fail = config.fail
        self.table = config.table

    def category(self, where: str, value: Any) -> PiiCategory:
        try:
            return PiiCategory(value)
        except ValueError:
            raise self.fail(
                str(value), f"{where}: unknown category {value!r}; expected one of {list(_ORDER)}"
            ) from None

    def build(self) -> Policy:
        doc = self.config.data
        for key in doc:
            if key not in ("roles", "classification"):
                raise self.fail(key, f"unknown section {key!r}; expected roles, classification")
        base = Policy.default()
        roles = {role: dict(modes) for role, modes in base.roles.items()}
        for role, table in self.table(doc, "roles").items():
            if role not in DEFAULT_ROLES:
                raise self.fail(
                    role, f"unknown role {role!r}; roles are {', '.join(sorted(DEFAULT_ROLES))}"
                )
            if not isinstance(table, dict):
                raise self.fail(role, f"roles.{role} must be a table")
            modes = {category: Mode.DENIED for category in PiiCategory}
            for name, mode in table.items():
                category = self.category(f"roles.{role}", name)
                try:
                    modes[category] = Mode(mode)
                except ValueError:
                    raise self.fail(
                        name,
                        f"roles.{role}.{name}: unknown mode {mode!r};"
                        f" expected one of {[m.value for m in Mode]}",
                    ) from None
            roles[role] = modes
        classification = self.table(doc, "classification")
        for key in classification:
            if key not in ("kinds", "traits", "event_properties"):
                raise self.fail(key, f"classification: unknown table {key!r}")
        maps = []
        for name, default in (
            ("kinds", base.kinds),
            ("traits", base.traits),
            ("event_properties", base.event_properties),
        ):
            merged = dict(default)
            for key, value in self.table(classification, name).items():
                where = normal_key(key) if name != "kinds" else key
                merged[where] = self.category(f"classification.{name}.{key}", value)
            maps.append(merged)
        return Policy(roles=roles, kinds=maps[0], traits=maps[1], event_properties=maps[2])
