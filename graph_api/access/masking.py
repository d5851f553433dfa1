"""How a personal value looks in each mode: masked for people, hashed for joins.

>>> mask("jane.doe@example.com")
'j***@e***.com'
>>> mask("+14155550134")
'+1 *** *** **34'
>>> mask("+44 (20) 7946-0958")
'+44 *** *** **58'
>>> mask("Jane Doe")
'J***'
>>> mask("Bob"), mask(9000), mask("4111 1111 1111 1111"), mask({"city": "Paris"})
('***', '***', '***', '***')
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
_NUMBERISH = re.compile(r"[\d\s.,:/+()$€£%-]*")
"""a text of digits and separators: an amount, a card number, a date, a code"""
HIDDEN = "***"
SHORT = 6
"""texts shorter than this are hidden whole: one letter of a short value is most of it"""


def mask(value: Any) -> str | None:
    """A masked rendering that keeps a hint for people and loses the value.

    Only an email address, a phone number and a text of `SHORT` or more letters keep a hint
    (the first letter, the domain's first letter, the last two digits); numbers, numeric
    texts, short texts, lists and objects are hidden whole.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        return HIDDEN
    text = value.strip()
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
    if len(text) < SHORT or _NUMBERISH.fullmatch(text):
        return HIDDEN
    return f"{text[:1]}{HIDDEN}"


def keyed_hash(key: bytes, value: Any) -> str | None:
    """HMAC-SHA256 of the value in lower-case hex: joinable, not reversible without the key."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return digest(key, text)


def digest(key: bytes, text: str) -> str:
    """HMAC-SHA256 of a text in lower-case hex."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
