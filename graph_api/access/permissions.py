"""Which roles may run an operation, declared on its field.

Every root field is declared with `operation(description, allow=Roles(roles, action))`: the
roles go into the SDL as `@requiresRole(roles: [...])`, and Strawberry's `PermissionExtension`
checks them before the resolver runs. A caller holding none of them gets `FORBIDDEN` ("your
role may not <action>") and the whole response answers 403 (`graph_api.errors.ErrorCodes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import strawberry
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location

from graph_api.access.categories import PiiClassifier
from graph_api.access.pii import Pii, PiiGuard
from graph_api.errors import forbidden

F = TypeVar("F", bound=Callable[..., Any])


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description="Only callers holding one of these roles may run this operation.",
)
class RequiresRole:
    roles: list[str]


class Roles(BasePermission):
    """Allow callers holding any of `roles`; refuse the others the `action`."""

    message: str

    def __init__(self, roles: Iterable[str], action: str) -> None:
        self.roles = frozenset(roles)
        self.message = f"your role may not {action}"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return not principal.roles.isdisjoint(self.roles)

    def on_unauthorized(self) -> None:
        raise forbidden(self.message)

    @property
    def schema_directive(self) -> object:
        return RequiresRole(roles=sorted(self.roles))


def operation(description: str, *, allow: Roles) -> Callable[[F], F]:
    """A root field, query or mutation, that only callers holding one of `allow`'s roles
    may run (typed: Strawberry's own factory returns `Any`)."""
    return cast(
        Callable[[F], F],
        strawberry.field(description=description, extensions=[PermissionExtension([allow])]),
    )


def personal_operation(
    description: str, *, allow: Roles, classified_by: PiiClassifier
) -> Callable[[F], F]:
    """A root field like `operation` whose JSON answer carries personal data: declared with
    `@pii` and rendered for the caller by the PII guard, as any other personal field is."""
    return cast(
        Callable[[F], F],
        strawberry.field(
            description=description,
            directives=[Pii(classified_by=classified_by)],
            extensions=[PermissionExtension([allow]), PiiGuard()],
        ),
    )
