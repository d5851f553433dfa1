"""How the API reports failures: GraphQL errors with a stable `extensions.code`.

One approach everywhere: an expected failure (bad input, not found, a forbidden operation)
is raised as an exception that carries a code, and `ErrorCodes` turns it into an error entry
`{"message": ..., "extensions": {"code": ...}}`. Anything else is a bug or an outage: the
client sees `internal error` with code `INTERNAL`, the log gets the stack trace.

Codes: BAD_REQUEST (the document does not parse or validate, a variable has the wrong type),
BAD_INPUT, INVALID_IDENTIFIER, UNKNOWN_KIND, NOT_FOUND, INVALID_OPERATION, UNAUTHENTICATED,
FORBIDDEN, STORE_UNAVAILABLE (also HTTP 503), INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from graph_api.access.auth import AuthError
from identity_graph.errors import (
    IdentityGraphError,
    InvalidIdentifier,
    InvalidOperation,
    MalformedObservation,
    NotFound,
    StoreUnavailable,
    UnknownKind,
)

log = logging.getLogger("c360.api")

INTERNAL_MESSAGE = "internal error"
_DOMAIN_CODES: dict[type[IdentityGraphError], str] = {
    InvalidIdentifier: "INVALID_IDENTIFIER",
    UnknownKind: "UNKNOWN_KIND",
    MalformedObservation: "BAD_INPUT",
    NotFound: "NOT_FOUND",
    InvalidOperation: "INVALID_OPERATION",
    StoreUnavailable: "STORE_UNAVAILABLE",
}


class ApiError(Exception):
    """An expected failure raised by a resolver; its message is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad_input(message: str) -> ApiError:
    return ApiError("BAD_INPUT", message)


def not_found(message: str) -> ApiError:
    return ApiError("NOT_FOUND", message)


def code_of(error: BaseException) -> str | None:
    """The public code of an expected error; None for an unexpected one."""
    if isinstance(error, ApiError | AuthError):
        return error.code
    for kind, code in _DOMAIN_CODES.items():
        if isinstance(error, kind):
            return code
    return None


def _public(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if original is None or (isinstance(original, GraphQLError) and error.path is None):
        # graphql-core's own: the document or a variable does not fit the schema
        code = (error.extensions or {}).get("code", "BAD_REQUEST")
        return _with_code(error, error.message, code)
    code = code_of(original)
    if code is not None:
        message = original.message if isinstance(original, ApiError | AuthError) else str(original)
        if code == "STORE_UNAVAILABLE":
            message = "the store is unavailable; try again later"
        return _with_code(error, message, code)
    where = ".".join(map(str, error.path)) if error.path else "the request"
    log.error("unexpected error in %s", where, exc_info=original)
    return _with_code(error, INTERNAL_MESSAGE, "INTERNAL")


def _with_code(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={**(error.extensions or {}), "code": code},
    )


class ErrorCodes(SchemaExtension):
    """Give every error a code, mask unexpected ones, answer 503 when the store is down."""

    def on_operation(self) -> Iterator[None]:
        yield
        result: Any = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        result.errors = [_public(e) for e in errors]
        found = {(e.extensions or {}).get("code") for e in result.errors}
        response = getattr(self.execution_context.context, "response", None)
        if response is None:
            return
        if "STORE_UNAVAILABLE" in found:
            response.status_code = 503
        elif "FORBIDDEN" in found:
            response.status_code = 403  # the role may not run this operation at all
