"""TOML configuration files (the rules, the field policy): reading and parsing one, and
errors that name the line a setting stands on.

Each file reports failures as its own error type, which the caller passes in:

>>> config = parse_toml("[kinds.email]\\nlimit = 0\\n", origin="rules.toml", error=ValueError)
>>> config.data
{'kinds': {'email': {'limit': 0}}}
>>> config.fail("limit", "limit must be a positive integer")
ValueError('rules.toml, line 2: limit must be a positive integer')
>>> locate("rules.toml", ["[kinds.email]"], "priority")
'rules.toml'
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

E = TypeVar("E", bound=Exception)


@dataclass(frozen=True)
class ConfigText(Generic[E]):
    """A parsed configuration file: its data, and errors of type `E` located in its text."""

    data: dict[str, Any]
    origin: str
    lines: Sequence[str]
    error: Callable[[str], E]

    def fail(self, needle: str, message: str) -> E:
        """An error `origin, line N: message` for the line where `needle` stands."""
        return self.error(f"{locate(self.origin, self.lines, needle)}: {message}")

    def table(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        """`doc[key]` (empty when missing), refused unless it is a table."""
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"{key} must be a table")
        return value


def read_toml(path: str | Path, *, what: str, error: Callable[[str], E]) -> ConfigText[E]:
    """Read and parse the `what` file at `path`; failures raise `error(message)`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read {what} file: {e.strerror}") from e
    return parse_toml(text, origin=str(path), error=error)


def parse_toml(text: str, *, origin: str, error: Callable[[str], E]) -> ConfigText[E]:
    """Parse TOML text read from `origin`; a syntax error raises `error(message)`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{origin}: {e}") from e
    return ConfigText(data, origin, text.splitlines(), error)


def locate(origin: str, lines: Sequence[str], needle: str) -> str:
    """`origin, line N` for the first line where `needle` stands as a key, table name or
    value; just `origin` when no line does."""
    token = re.compile(rf"(^|[\s.\[\"]){re.escape(needle)}([\s=\]\".]|$)")
    for number, line in enumerate(lines, start=1):
        if token.search(line):
            return f"{origin}, line {number}"
    return origin
