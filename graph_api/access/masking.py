"""How a personal value looks in each mode: masked for people, hashed for joins.

>>> mask("jane.doe@example.com")
'j***@e***.com'
>>> mask("+14155550134")
'+1 *** *** **34'
>>> mask("+44 (20) 7946-0958")
'+44 *** *** **58'
>>> mask("Jane")
'J***'
>>> keyed_hash(b"k", "jane.doe@example.com") == keyed_hash(b"k", "jane.doe@example.com")
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import phonenumbers

_PHONE = re.compile(r"\+[\d\s().-]+")
"""a phone number in international form, as people write it"""


def mask(value: Any) -> str | None:
    """A masked rendering that keeps a hint for people and loses the value."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if "@" in text and text.count("@") == 1:
        local, domain = text.split("@")
        label, _, tld = domain.rpartition(".")
        if label and tld:
            return f"{local[:1]}***@{label[:1]}***.{tld}"
    if _PHONE.fullmatch(text):
        digits = "+" + re.sub(r"\D", "", text)
        try:
            number = phonenumbers.parse(digits)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None:
            return f"+{number.country_code} *** *** **{digits[-2:]}"
    if len(text) <= 1:
        return "***"
    return f"{text[:1]}***"


def keyed_hash(key: bytes, value: Any) -> str | None:
    """HMAC-SHA256 of the value in lower-case hex: joinable, not reversible without the key."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return digest(key, text)


def digest(key: bytes, text: str) -> str:
    """HMAC-SHA256 of a text in lower-case hex."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
