"""`totalCount` of the listings that could be long (customers, a customer's events, the audit
log): counted only when the query selects it, and then only up to `COUNT_LIMIT`, so that a
page costs what it returns whatever the store holds. A store counts up to what it is asked
(`count_up_to`); the fields here ask for one more than the limit, so that a total beyond it
shows as `COUNT_LIMIT + 1`.

Selections are read from the query's own nodes (through fragments), not from
`info.selected_fields`, which converts the whole tree below the field (every edge) each time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode
from graphql.language import SelectionSetNode

if TYPE_CHECKING:  # the types' modules import this one for its description
    from graph_api.context import Info

COUNT_LIMIT = 1_000
COUNTED = COUNT_LIMIT + 1
"""what a store is asked to count up to when `totalCount` is selected"""

DESCRIPTION = (
    f"How many there are in all (not only after the cursor), counted only when selected and"
    f" only up to {COUNT_LIMIT:,}: more than that reads as {COUNTED:,}."
)


def fields(
    selection_set: SelectionSetNode | None,
    name: str,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> Iterable[FieldNode]:
    """The fields named `name` in one level of a selection, through fragments."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value == name:
                yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from fields(selection.selection_set, name, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from fields(fragment.selection_set, name, fragments)


def count_up_to(info: Info) -> int:
    """What the store read of a connection field counts up to: `COUNTED` if the field's
    selection names `totalCount`, else 0 (nothing)."""
    raw = info._raw_info
    for node in raw.field_nodes:
        if any(fields(node.selection_set, "totalCount", raw.fragments)):
            return COUNTED
    return 0


def events_count_up_to(info: Info) -> int:
    """`count_up_to` of the `events` fields that a customer field's selection names."""
    raw = info._raw_info
    for node in raw.field_nodes:
        for events in fields(node.selection_set, "events", raw.fragments):
            if any(fields(events.selection_set, "totalCount", raw.fragments)):
                return COUNTED
    return 0
