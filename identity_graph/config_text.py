"""Naming the line of a configuration file that a setting stands on, for error messages.

>>> locate("rules.toml", ["[kinds.email]", "limit = 0"], "limit")
'rules.toml, line 2'
>>> locate("rules.toml", ["[kinds.email]"], "priority")
'rules.toml'
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def locate(origin: str, lines: Sequence[str], needle: str) -> str:
    """`origin, line N` for the first line where `needle` stands as a key, table name or
    value; just `origin` when no line does."""
    token = re.compile(rf"(^|[\s.\[\"]){re.escape(needle)}([\s=\]\".]|$)")
    for number, line in enumerate(lines, start=1):
        if token.search(line):
            return f"{origin}, line {number}"
    return origin
