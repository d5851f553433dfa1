"""Per-kind normalisation of identifier values.

>>> from identity_graph.rules import Rules
>>> normalize("email", "  Jane@Example.COM ", Rules.default()).value
'jane@example.com'
>>> normalize("phone", "(415) 555-0134", Rules.default()).value
'+14155550134'
"""

from __future__ import annotations

import re

import phonenumbers

from identity_graph.errors import InvalidIdentifier, UnknownKind
from identity_graph.model import Identifier
from identity_graph.rules import Rules

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_VALUE_LENGTH = 256


def normalize(kind: str, raw: object, rules: Rules) -> Identifier:
    """Return the normalised identifier, or raise `InvalidIdentifier` / `UnknownKind`."""
    kind = kind.strip().lower() if isinstance(kind, str) else kind
    if kind not in rules.kinds:
        raise UnknownKind(str(kind), sorted(rules.kinds))
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidIdentifier(kind, f"expected a string, got {type(raw).__name__}")
    value = str(raw).strip()
    if not value:
        raise InvalidIdentifier(kind, "empty value")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidIdentifier(kind, f"longer than {MAX_VALUE_LENGTH} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidIdentifier(kind, "contains control characters")
    if kind == "email":
        value = value.lower()
        if not _EMAIL.match(value):
            raise InvalidIdentifier(kind, "not an email address")
    elif kind == "phone":
        value = _e164(value, rules.default_region)
    return Identifier(kind, value)


def _e164(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as e:
        raise InvalidIdentifier("phone", "not a phone number") from e
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier("phone", "not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
