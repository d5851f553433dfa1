"""Errors of the identity graph: one base, a leaf per failure callers handle."""


class IdentityGraphError(Exception):
    """Base of every error raised by `identity_graph`."""

    code = "IDENTITY_GRAPH_ERROR"


class InvalidIdentifier(IdentityGraphError):
    """An identifier value that cannot be normalised for its kind."""

    code = "INVALID_IDENTIFIER"

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"invalid {kind}: {reason}")
        self.kind = kind
        self.reason = reason


class UnknownKind(IdentityGraphError):
    """An identifier kind that is neither built in nor declared in the rules file."""

    code = "UNKNOWN_KIND"

    def __init__(self, kind: str, known: list[str]) -> None:
        super().__init__(f"unknown identifier kind {kind!r}; known kinds: {', '.join(known)}")
        self.kind = kind


class MalformedObservation(IdentityGraphError):
    """An observation missing what the domain needs (message id, identifiers, ...)."""

    code = "MALFORMED_OBSERVATION"


class RulesError(IdentityGraphError):
    """A rules file that cannot be loaded; the message names the line at fault."""

    code = "BAD_RULES"


class NotFound(IdentityGraphError):
    """A profile, merge record or identifier that does not exist."""

    code = "NOT_FOUND"


class InvalidOperation(IdentityGraphError):
    """A well-formed request the current state does not allow (undo an undone merge, ...)."""

    code = "INVALID_OPERATION"


class StoreUnavailable(IdentityGraphError):
    """The store cannot be reached or failed; nothing of the failed write was kept."""

    code = "STORE_UNAVAILABLE"


class StoreFailed(IdentityGraphError):
    """The store rejected a request (a bug, not an outage); nothing of the failed write was kept.

    The message names only the store's error code, never its message, which can hold data.
    """

    code = "STORE_FAILED"
