"""Limits on what one request may ask: depth, aliases, tokens, cost, page size; plus caches.

Depth and aliases count through fragments: each fragment is counted once and a spread adds
its count, so a fragment cannot multiply aliases past the limit unseen, and fragments
spreading each other cannot make the counting itself exponential.

All of them are one schema extension, `Limits`: Strawberry builds every extension and wraps
each of its hooks anew for every request, so six (token limit, validation rules, parser and
validation caches, cost, no introspection) cost more than the checks themselves. A document
text is parsed and validated once, and its cost computed once per operation and values of
its page-size variables (the only variables the cost reads).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from graphql import (
    ArgumentNode,
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    Visitor,
    parse,
    specified_rules,
    visit,
)
from graphql.utilities import get_operation_ast
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from graph_api.cost import (
    MAX_COST,
    PAGE_ARGUMENT,
    Cost,
    fragments_of,
    identifier_bound,
    per_fragment,
    shown,
    too_costly,
)
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


class _PageVariables(Visitor):
    """Names of the variables given as a page size (`first`) anywhere in a document."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        if node.name.value == PAGE_ARGUMENT and isinstance(node.value, VariableNode):
            self.names.add(node.value.name.value)


class Checks:
    """What the limits decide about a document text, decided once per text (an LRU of
    `CACHE_SIZE` texts) for one schema's settings."""

    def __init__(self, settings: Settings, *, identifiers: int, budget: int = MAX_COST) -> None:
        self.settings = settings
        self.identifiers = identifiers
        """the most identifiers a profile can hold (`identifier_bound` of the rules)"""
        self.budget = budget
        extra: list[type[ASTValidationRule]] = [
            depth_rule(settings.max_depth),
            alias_rule(settings.max_aliases),
        ]
        # GraphiQL cannot work without introspection: enabling it enables both
        if not (settings.introspection or settings.graphiql):
            extra.append(NoSchemaIntrospectionCustomRule)
        self.rules = (*specified_rules, *extra)
        self.parse = lru_cache(maxsize=CACHE_SIZE)(self._parse)
        self.validate = lru_cache(maxsize=CACHE_SIZE)(self._validate)
        self.page_variables = lru_cache(maxsize=CACHE_SIZE)(self._page_variables)
        self._cost = lru_cache(maxsize=CACHE_SIZE)(self._uncached_cost)

    def _parse(self, text: str) -> DocumentNode:
        return parse(text, max_tokens=self.settings.max_tokens)

    def _validate(self, schema: GraphQLSchema, text: str) -> list[GraphQLError]:
        return validate_document(schema, self.parse(text), self.rules)

    def _page_variables(self, text: str) -> tuple[str, ...]:
        found = _PageVariables()
        visit(self.parse(text), found)
        return tuple(sorted(found.names))

    def cost(
        self,
        schema: GraphQLSchema,
        text: str,
        operation_name: str | None,
        variables: Mapping[str, Any],
    ) -> int | None:
        """The operation's cost (`graph_api.cost.Cost`); None if the document has no such
        operation."""
        pages: tuple[Hashable, ...] = tuple(
            (name, type(variables[name]), variables[name]) if name in variables else (name,)
            for name in self.page_variables(text)
        )
        try:
            return self._cost(schema, text, operation_name, pages)
        except TypeError:  # a page size given as a list or an object: not hashable
            return self._uncached_cost(schema, text, operation_name, pages)

    def _uncached_cost(
        self,
        schema: GraphQLSchema,
        text: str,
        operation_name: str | None,
        pages: tuple[Hashable, ...],
    ) -> int | None:
        document = self.parse(text)
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return None
        given = {p[0]: p[2] for p in pages if isinstance(p, tuple) and len(p) == 3}
        settings = self.settings
        cost = Cost(
            schema,
            operation,
            given,
            settings.max_page_size,
            self.identifiers,
            settings.max_definitions,
        )
        return cost.of_operation(document, operation)


class Limits(SchemaExtension):
    """Parse with the token limit, validate with the depth and alias rules (and without
    introspection unless enabled), and refuse before execution an operation whose cost is
    above the budget; documents come from the `Checks` caches."""

    def __init__(self, checks: Checks) -> None:
        self.checks = checks

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.graphql_document = self.checks.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.query is not None  # on_parse parsed it
        context.validation_rules = self.checks.rules
        context.pre_execution_errors = self.checks.validate(context.schema._schema, context.query)
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.result is None:
            checks = self.checks
            found = checks.cost(
                context.schema._schema,
                context.query,
                context.operation_name,
                context.variables or {},
            )
            if found is not None and found > checks.budget:
                context.result = ExecutionResult(None, [too_costly(found, checks.budget)])
        yield


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The extension factory for the limits and caches, which live as long as the schema."""
    checks = Checks(settings, identifiers=identifier_bound(Rules.load(settings.rules_file)))
    return [lambda: Limits(checks)]
