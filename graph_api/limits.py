"""Limits on what one request may ask: depth, aliases, tokens, page size; plus the caches.

Aliases are counted by expanding fragment spreads, each time they are spread, so a
fragment cannot multiply aliases past the limit unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.query_depth_limiter import create_validator as create_depth_rule

from graph_api.errors import bad_input
from graph_api.settings import Settings

CACHE_SIZE = 512


def page_size(first: int, settings: Settings) -> int:
    """A requested page size, or `BAD_INPUT` when negative or above the maximum."""
    if first < 0:
        raise bad_input("first must not be negative")
    if first > settings.max_page_size:
        raise bad_input(f"first must be at most {settings.max_page_size}")
    return first


def count_aliases(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    expanding: frozenset[str] = frozenset(),
) -> int:
    """Aliased fields in a selection set, fragments expanded at every spread."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            total += selection.alias is not None
            total += count_aliases(selection.selection_set, fragments, expanding)
        elif isinstance(selection, InlineFragmentNode):
            total += count_aliases(selection.selection_set, fragments, expanding)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in expanding:
                total += count_aliases(fragment.selection_set, fragments, expanding | {name})
    return total


def alias_rule(limit: int) -> type[ValidationRule]:
    class MaxAliases(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            definitions = context.document.definitions
            fragments = {
                d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)
            }
            for operation in definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                found = count_aliases(operation.selection_set, fragments)
                if found > limit:
                    context.report_error(
                        GraphQLError(
                            f"{found} aliases in one operation; at most {limit} allowed",
                            operation,
                        )
                    )

    return MaxAliases


def _introspection(context: IgnoreContext) -> bool:
    return context.field_name.startswith("__")


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Extension factories for the limits and caches.

    The validation rules are made once, so the validation cache (keyed by the rule
    classes) hits across requests.
    """
    rules: list[type[ASTValidationRule]] = [
        create_depth_rule(settings.max_depth, _introspection),
        alias_rule(settings.max_aliases),
    ]
    return [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
    ]
