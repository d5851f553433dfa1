"""Limits on what one request may ask: depth, aliases, tokens, cost, page size; plus caches.

Depth and aliases count through fragments: each fragment is counted once and a spread adds
its count, so a fragment cannot multiply aliases past the limit unseen, and fragments
spreading each other cannot make the counting itself exponential.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from graphql import (
    ASTValidationRule,
    FieldNode,
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

from graph_api.cost import CostLimit, fragments_of, identifier_bound, per_fragment, shown
from graph_api.errors import bad_input
from graph_api.settings import Settings
from identity_graph.rules import Rules

CACHE_SIZE = 512


def page_size(first: int, settings: Settings) -> int:
    """A requested page size, or `BAD_INPUT` when negative or above the maximum."""
    if first < 0:
        raise bad_input("first must not be negative")
    if first > settings.max_page_size:
        raise bad_input(f"first must be at most {settings.max_page_size}")
    return first


def count_aliases(selection_set: SelectionSetNode | None, fragments: Mapping[str, int]) -> int:
    """Aliased fields in a selection set; a spread adds its fragment's count."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            total += selection.alias is not None
            total += count_aliases(selection.selection_set, fragments)
        elif isinstance(selection, InlineFragmentNode):
            total += count_aliases(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            total += fragments.get(selection.name.value, 0)
    return total


def depth(selection_set: SelectionSetNode | None, fragments: Mapping[str, int]) -> int:
    """Nesting of fields with selections below a selection set; a spread adds nothing itself.

    As Strawberry's QueryDepthLimiter counts (a leaf is 0, introspection fields are not
    counted), but each fragment measured once: that limiter expands every spread.
    """
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            below = selection.selection_set
            if below is not None and not selection.name.value.startswith("__"):
                deepest = max(deepest, 1 + depth(below, fragments))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, depth(selection.selection_set, fragments))
        elif isinstance(selection, FragmentSpreadNode):
            deepest = max(deepest, fragments.get(selection.name.value, 0))
    return deepest


Count = Callable[[SelectionSetNode | None, Mapping[str, int]], int]


def _operations(
    context: ValidationContext, count: Count
) -> Iterator[tuple[OperationDefinitionNode, int]]:
    """Each operation of the document with its count, fragments counted once each."""
    definitions = context.document.definitions
    fragments = per_fragment(
        fragments_of(context.document), lambda f, counted: count(f.selection_set, counted)
    )
    for operation in definitions:
        if isinstance(operation, OperationDefinitionNode):
            yield operation, count(operation.selection_set, fragments)


def alias_rule(limit: int) -> type[ValidationRule]:
    class MaxAliases(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for operation, found in _operations(context, count_aliases):
                if found > limit:
                    message = f"{shown(found)} aliases in one operation; at most {limit} allowed"
                    context.report_error(GraphQLError(message, operation))

    return MaxAliases


def depth_rule(limit: int) -> type[ValidationRule]:
    class MaxDepth(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for operation, found in _operations(context, depth):
                if found > limit:
                    name = operation.name.value if operation.name else "anonymous"
                    message = f"'{name}' exceeds maximum operation depth of {limit}"
                    context.report_error(GraphQLError(message, operation))

    return MaxDepth


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Extension factories for the limits and caches.

    The validation rules are made once, so the validation cache (keyed by the rule
    classes) hits across requests.
    """
    rules: list[type[ASTValidationRule]] = [
        depth_rule(settings.max_depth),
        alias_rule(settings.max_aliases),
    ]
    identifiers = identifier_bound(Rules.load(settings.rules_file))
    return [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        lambda: CostLimit(settings, identifiers=identifiers),
    ]
