"""Every failure the edge reports: one tree, and the one place that maps it to HTTP and GraphQL.

    Exception
     +-- C360Error                an expected failure: a stable `code`, a `message` safe to
     |    |                       show, and the HTTP `status` it answers with
     |    +-- ApiError            raised by a resolver: BAD_INPUT, NOT_FOUND, FORBIDDEN_FIELD, ...
     |    +-- AuthError           missing or bad credentials (401 UNAUTHENTICATED, INVALID_TOKEN)
     |    |                       or a role that may not (403 FORBIDDEN)
     |    +-- SegmentError        a tracking message c360 cannot accept (400; 413 when too large);
     |    |                       says which message and which field
     |    +-- PayloadTooLarge     a request body over its limit (413 PAYLOAD_TOO_LARGE)
     |    +-- ConfigError         a setting or file c360 cannot start with
     |    |    +-- PolicyError    the field policy file
     |    +-- CliError            a command line the user can fix
     +-- identity_graph.errors.IdentityGraphError
                                  the domain's own tree; `code_of` and `status_of` map it too

`code_of` and `status_of` are the only mapping from an exception to a public code and an
HTTP status; `ErrorCodes` applies them to GraphQL results. In GraphQL an expected failure
becomes an error entry `{"message": ..., "extensions": {"code": ...}}`; anything else is a
bug or an outage: the client sees `internal error` with code `INTERNAL`, the log gets the
stack trace.

GraphQL codes: BAD_REQUEST (the document does not parse or validate, a variable has the wrong
type), BAD_INPUT, INVALID_IDENTIFIER, UNKNOWN_KIND, INVALID_DEFINITION (a computed trait or
an audience condition that cannot be used: the message names the path of the bad part),
NOT_FOUND, INVALID_OPERATION,
UNAUTHENTICATED, INVALID_TOKEN, FORBIDDEN, FORBIDDEN_FIELD, QUERY_TOO_COSTLY,
EXPORT_TOO_LARGE (a data-subject export too large for one response: the CLI streams it),
STORE_UNAVAILABLE (also HTTP 503), INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from identity_graph.audiences.definitions import DefinitionError
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
    DefinitionError: "INVALID_DEFINITION",
    MalformedObservation: "BAD_INPUT",
    NotFound: "NOT_FOUND",
    InvalidOperation: "INVALID_OPERATION",
    StoreUnavailable: "STORE_UNAVAILABLE",
}


class C360Error(Exception):
    """An expected failure at the edge; `message` is safe to show."""

    code = "BAD_INPUT"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ApiError(C360Error):
    """An expected failure raised by a resolver."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class AuthError(C360Error):
    """Missing or bad credentials (401) or a principal without the needed role (403)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code, status=status)


def unauthenticated(message: str = "missing credentials") -> AuthError:
    return AuthError(401, "UNAUTHENTICATED", message)


def invalid_token(message: str) -> AuthError:
    return AuthError(401, "INVALID_TOKEN", message)


def forbidden(message: str) -> AuthError:
    return AuthError(403, "FORBIDDEN", message)


class SegmentError(C360Error):
    """A tracking message that cannot be accepted; `field` names where, `index` which one."""

    def __init__(
        self, code: str, message: str, *, field: str | None = None, index: int | None = None
    ) -> None:
        super().__init__(message, code=code, status=413 if code == "MESSAGE_TOO_LARGE" else 400)
        self.field = field
        self.index = index

    def to_json(self) -> dict[str, Any]:
        where = "" if self.index is None else f"message {self.index}: "
        error: dict[str, Any] = {"code": self.code, "message": where + self.message}
        if self.index is not None:
            error["message_index"] = self.index
        if self.field is not None:
            error["field"] = self.field
        return error


class PayloadTooLarge(C360Error):
    """A request body over its limit."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class ConfigError(C360Error):
    """A setting or a configuration file c360 cannot start with."""

    code = "CONFIG"


class PolicyError(ConfigError):
    """A field policy file c360 cannot use; the message names the file and line."""


class CliError(C360Error):
    """A command line the user can fix; printed as one line."""


def bad_input(message: str) -> ApiError:
    return ApiError("BAD_INPUT", message)


def not_found(message: str) -> ApiError:
    return ApiError("NOT_FOUND", message)


def code_of(error: BaseException) -> str | None:
    """The public code of an expected error; None for an unexpected one."""
    if isinstance(error, C360Error):
        return error.code
    for kind, code in _DOMAIN_CODES.items():
        if isinstance(error, kind):
            return code
    return None


def status_of(error: BaseException) -> int:
    """The HTTP status an error answers with when it fails a whole request."""
    if isinstance(error, C360Error):
        return error.status
    if isinstance(error, StoreUnavailable):
        return 503
    return 400 if isinstance(error, IdentityGraphError) else 500


def public_message(error: BaseException) -> str:
    """What a client may read of an expected error."""
    if isinstance(error, StoreUnavailable):
        return "the store is unavailable; try again later"
    return error.message if isinstance(error, C360Error) else str(error)


def _public(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    extensions = error.extensions or {}
    if original is None and "code" in extensions:
        return error  # made here: a denied key, a refused cost, a withheld response
    if original is None or (isinstance(original, GraphQLError) and error.path is None):
        # graphql-core's own: the document or a variable does not fit the schema (validation
        # errors are cached, shared by requests: copied, never changed)
        return _with_code(error, error.message, extensions.get("code", "BAD_REQUEST"))
    code = code_of(original)
    if code is not None:
        message = public_message(original)
        if message != error.message:
            return _with_code(error, message, code)
        # a field error of this request's own: coded in place, not copied
        error.extensions = {**extensions, "code": code}
        error.original_error = None
        return error
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
