"""What one operation asks for, counted before it runs; and the cost budget.

Fragments are measured once each, in dependency order, and a spread adds its fragment's
measure: work is linear in the document however often fragments spread each other (expanding
every spread is exponential in the nesting). Spreads that form a cycle, or name no fragment,
count nothing here: validation rejects those documents.

Cost: each selected field costs 1; a field taking `first` multiplies the cost of its
subtree by the page it asks for (the argument, a variable, or the schema's default; at most
the maximum page size, which resolvers enforce). A list without `first` multiplies by its
documented worst case (`LIST_BOUNDS`): a profile's identifiers are bounded by the resolution
rules' limits (their sum over the kinds), consents by the purposes, an explained path by
its hops, a batch by `MAX_BATCH`, audiences and computed traits by the most that may be
defined (`C360_MAX_DEFINITIONS`). A connection's `edges` count once: the `first` of the
field above them counted the page, and introspection's lists count once (they are as long as
the schema, whatever the data). Any other list counts as the maximum page size, and a
test holds every list field of the schema to one of these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)

from identity_graph.activation.destinations import MAX_AUDIENCES, MAX_DESTINATIONS, MAX_HEADERS
from identity_graph.model import PURPOSES
from identity_graph.rules import Rules
from identity_graph.service import MAX_EXPLAIN_HOPS

MAX_COST = 50_000
PAGE_ARGUMENT = "first"
SHOWN_UP_TO = 10**12
_META_FIELDS: dict[str, GraphQLField] = {
    "__typename": TypeNameMetaFieldDef,
    "__schema": SchemaMetaFieldDef,
    "__type": TypeMetaFieldDef,
}

MAX_BATCH = 500
"""messages in one `ingest` mutation"""
IDENTIFIERS = "identifiers"
DEFINITIONS = "definitions"
LIST_BOUNDS: Mapping[str, str | int] = {
    "Customer.identifiers": IDENTIFIERS,
    "MergeRecord.identifiers": IDENTIFIERS,
    "MergeRecord.links": IDENTIFIERS,
    "MergeConflict.dropped": IDENTIFIERS,
    "Customer.consents": len(PURPOSES),
    "Mutation.setConsent": len(PURPOSES),
    "LinkExplanation.path": MAX_EXPLAIN_HOPS,
    "Mutation.ingest": MAX_BATCH,
    "Query.audiences": DEFINITIONS,
    "Query.computedTraits": DEFINITIONS,
    "Customer.audiences": DEFINITIONS,
    "Query.destinations": MAX_DESTINATIONS,
    "Destination.audienceIds": MAX_AUDIENCES,
    "Destination.headerNames": MAX_HEADERS,
}
"""The worst case of each list field without `first`; `IDENTIFIERS`: the rules' bound;
`DEFINITIONS`: `Settings.max_definitions`."""

Measure = Callable[[FragmentDefinitionNode, Mapping[str, int]], int]


def identifier_bound(rules: Rules) -> int:
    """The most identifiers one profile can hold under the rules: each kind's limit, summed."""
    return sum(rules.limit(kind) for kind in rules.kinds)


def shown(amount: int) -> str:
    """An amount for a message: exact, unless absurdly large."""
    return str(amount) if amount <= SHOWN_UP_TO else f"over {SHOWN_UP_TO}"


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def spreads(selection_set: SelectionSetNode | None) -> Iterator[str]:
    """Names of the fragments a selection set spreads, directly or in nested fields."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            yield selection.name.value
        elif isinstance(selection, FieldNode | InlineFragmentNode):
            yield from spreads(selection.selection_set)


def dependency_order(fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after those it spreads; cycles broken, unknown names skipped.

    Iterative, so a long chain of fragments cannot exhaust the Python stack.
    """
    order: list[str] = []
    seen: set[str] = set()
    for root in fragments:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, spreads(fragments[root].selection_set))]
        while stack:
            name, pending = stack[-1]
            child = next((c for c in pending if c in fragments and c not in seen), None)
            if child is None:
                stack.pop()
                order.append(name)
            else:
                seen.add(child)
                stack.append((child, spreads(fragments[child].selection_set)))
    return order


def per_fragment(
    fragments: Mapping[str, FragmentDefinitionNode], measure: Measure
) -> dict[str, int]:
    """Each fragment measured once, given the measures of the fragments it spreads."""
    measured: dict[str, int] = {}
    for name in dependency_order(fragments):
        measured[name] = measure(fragments[name], measured)
    return measured


class Cost:
    """The cost of selection sets of one document, under one set of variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        max_page: int,
        identifiers: int,
        definitions: int,
    ) -> None:
        self.schema = schema
        self.max_page = max_page
        self.identifiers = identifiers
        self.definitions = definitions
        self.variables = dict(variables)
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and definition.default_value is not None:
                self.variables[name] = _literal(definition.default_value, max_page)

    def of_operation(self, document: DocumentNode, operation: OperationDefinitionNode) -> int:
        fragments = per_fragment(fragments_of(document), self._of_fragment)
        root = self.schema.get_root_type(operation.operation)
        return self.of(operation.selection_set, root, fragments)

    def _of_fragment(self, fragment: FragmentDefinitionNode, fragments: Mapping[str, int]) -> int:
        on = self.schema.get_type(fragment.type_condition.name.value)
        return self.of(fragment.selection_set, on, fragments)

    def of(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        fragments: Mapping[str, int],
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._of_field(selection, parent, fragments)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                total += self.of(selection.selection_set, on, fragments)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragments.get(selection.name.value, 0)
        return total

    def _of_field(
        self, node: FieldNode, parent: GraphQLNamedType | None, fragments: Mapping[str, int]
    ) -> int:
        definition = _field(parent, node.name.value)
        if definition is None:
            return 1 + self.of(node.selection_set, None, fragments)
        below = self.of(node.selection_set, get_named_type(definition.type), fragments)
        return 1 + self._page(node, definition, parent) * below

    def _page(
        self, node: FieldNode, definition: GraphQLField, parent: GraphQLNamedType | None
    ) -> int:
        argument = definition.args.get(PAGE_ARGUMENT)
        if argument is None:
            if not is_list_type(get_nullable_type(definition.type)):
                return 1
            return self._list_bound(f"{parent.name if parent else ''}.{node.name.value}")
        given = next((a.value for a in node.arguments or () if a.name.value == PAGE_ARGUMENT), None)
        if isinstance(given, VariableNode) and given.name.value in self.variables:
            value: object = self.variables[given.name.value]
        elif given is not None and not isinstance(given, VariableNode):
            value = _literal(given, self.max_page)
        else:
            value = argument.default_value
        return _bounded(value, self.max_page)

    def _list_bound(self, name: str) -> int:
        if name.endswith(".edges") or name.startswith("__"):
            return 1  # a page the field above counted; the schema's own size
        bound = LIST_BOUNDS.get(name, self.max_page)
        if bound == IDENTIFIERS:
            return self.identifiers
        return self.definitions if bound == DEFINITIONS else int(bound)


def _field(parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if name in _META_FIELDS:
        return _META_FIELDS[name]
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        found: GraphQLField | None = parent.fields.get(name)
        return found
    return None


def _literal(value: ValueNode, max_page: int) -> object:
    """An Int literal's value; anything else (or an absurdly long one) is not a page size."""
    if isinstance(value, IntValueNode) and len(value.value) <= len(str(max_page)) + 1:
        return int(value.value)
    return None


def _bounded(value: object, max_page: int) -> int:
    """A page size between 0 and the maximum; unknown values count as the maximum."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return max_page
    return max(0, min(value, max_page))


def too_costly(cost: int, budget: int) -> GraphQLError:
    return GraphQLError(
        f"query too costly: estimated cost {shown(cost)} exceeds the budget of {budget}",
        extensions={"code": "QUERY_TOO_COSTLY"},
    )
