"""Trusted documents: the GraphQL operations a deployment has registered, by the SHA-256 of
their text, and the roles that may run nothing else.

Public clients (a page or an app that ships a key) send `documentId: "sha256:<hex>"` (or
Apollo's `extensions.persistedQuery.sha256Hash`) instead of the query text; a role listed in
`C360_TRUSTED_DOCUMENTS_ROLES` may only run documents on the list, by id or by a text whose
digest is on it. The list is a JSON file (`C360_TRUSTED_DOCUMENTS_FILE`, `{"sha256:<hex>":
"<document>"}`, the shape GraphQL Code Generator's persisted documents take) that `c360
documents add` writes; the server reads it again when it changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from strawberry.http import GraphQLRequestData

from graph_api.access.auth import ROLES
from graph_api.errors import C360Error, ConfigError

PREFIX = "sha256:"
HEX = re.compile(r"[0-9a-f]{64}")


def document_id(text: str) -> str:
    """The id of a document: `sha256:` and the hex SHA-256 of its UTF-8 text, as sent.

    >>> document_id("{ __typename }")[:15]
    'sha256:7f56e67d'
    """
    return PREFIX + hashlib.sha256(text.encode()).hexdigest()


def normal_id(raw: object) -> str:
    """`sha256:<hex>` from an id given with or without its prefix; `C360Error` otherwise."""
    text = raw.strip().lower() if isinstance(raw, str) else ""
    digest = text.removeprefix(PREFIX)
    if not HEX.fullmatch(digest):
        raise C360Error("a document id is sha256: and 64 hex digits", code="BAD_REQUEST")
    return PREFIX + digest


class Manifest:
    """The registered documents, in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        """Every document by id; empty if the file does not exist yet."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ConfigError(f"trusted documents file {self.path}: {e}") from e
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ConfigError(f"trusted documents file {self.path}: not an object of strings")
        documents: dict[str, str] = {}
        for key, text in raw.items():
            try:
                wanted = normal_id(key)
            except C360Error as e:
                raise ConfigError(f"trusted documents file {self.path}: {key!r}: {e}") from e
            if document_id(text) != wanted:
                raise ConfigError(
                    f"trusted documents file {self.path}: {key} is not the digest of its text"
                )
            documents[wanted] = text
        return documents

    def write(self, documents: dict[str, str]) -> None:
        """Replace the file in one step, so a server never reads half of it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".documents-")
        with os.fdopen(fd, "w") as out:
            json.dump(dict(sorted(documents.items())), out, indent=2)
            out.write("\n")
        os.replace(temporary, self.path)


class TrustedDocuments:
    """Which document a request runs: the registered one it names, or its own text unless
    its role may only run registered ones."""

    def __init__(self, path: Path | None, roles: frozenset[str]) -> None:
        unknown = sorted(roles - ROLES)
        if unknown:
            raise ConfigError(
                f"C360_TRUSTED_DOCUMENTS_ROLES: unknown role(s) {', '.join(unknown)};"
                f" roles: {', '.join(sorted(ROLES))}"
            )
        self.manifest = Manifest(path) if path is not None else None
        self.roles = roles
        self._documents: dict[str, str] = {}
        self._seen: tuple[int, int] | None = None
        self._reload()

    def _reload(self) -> None:
        if self.manifest is None:
            return
        try:
            stat = self.manifest.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = (0, 0)
        if seen != self._seen:
            self._documents = self.manifest.read()
            self._seen = seen

    def lookup(self, wanted: str) -> str | None:
        """A registered document's text, reading the file again if it changed."""
        if wanted not in self._documents:
            self._reload()
        return self._documents.get(wanted)

    def resolve(self, data: GraphQLRequestData, roles: frozenset[str]) -> GraphQLRequestData:
        """The request with the text it may run; `C360Error` if it names an unknown
        document, or if a role bound to trusted documents sends one not on the list."""
        wanted = requested_id(data.extensions)
        bound = not self.roles.isdisjoint(roles)
        if wanted is None:
            if bound and data.query is not None and self.lookup(document_id(data.query)) is None:
                raise C360Error(
                    "your role may only run trusted documents: send the documentId of a"
                    " registered one (`c360 documents add`)",
                    code="UNTRUSTED_DOCUMENT",
                    status=403,
                )
            return data
        text = self.lookup(wanted)
        if text is None:
            raise C360Error(f"no trusted document {wanted}", code="DOCUMENT_NOT_FOUND")
        if data.query is not None and document_id(data.query) != wanted:
            raise C360Error("the query is not the document its id names", code="BAD_REQUEST")
        return replace(data, query=text)


def requested_id(extensions: dict[str, Any] | None) -> str | None:
    """The document id a request names, in `documentId` (lifted into the extensions by the
    view) or Apollo's `persistedQuery.sha256Hash`."""
    if not extensions:
        return None
    if "documentId" in extensions:
        return normal_id(extensions["documentId"])
    persisted = extensions.get("persistedQuery")
    if isinstance(persisted, dict) and "sha256Hash" in persisted:
        return normal_id(persisted["sha256Hash"])
    return None


def lift_document_id(data: Any) -> Any:
    """A request body (or GET parameters) with a top-level `documentId` moved into its
    extensions, where Strawberry keeps it for `TrustedDocuments.resolve`."""
    items = data if isinstance(data, list) else [data]
    for item in items:
        if isinstance(item, dict) and "documentId" in item:
            extensions = item.get("extensions")
            if not isinstance(extensions, dict):
                extensions = {}
            item["extensions"] = {**extensions, "documentId": item.pop("documentId")}
    return data
