"""One store read for "who is this customer": the customer a query names, with the parts of
it the query selects (identifiers, trait values, the first page of events), fetched by
`IdentityStore.customer_context` and primed into the request's dataloaders, so the field
resolvers find them there. On Neo4j that is one Cypher statement where the fields would send
four, one after another (issue 19's sales-context query).

Only what the selection asks for at the customer's own level is fetched (through fragments
too); an `events` selection with `after` or `types`, or several different ones, is left to
its field's own load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode
from graphql.language import SelectionNode
from strawberry.types.nodes import convert_arguments

from graph_api import totals
from graph_api.context import Info
from graph_api.errors import ApiError
from graph_api.limits import page_size

TRAIT_FIELDS = frozenset({"traits", "traitHistory"})


def _fields(
    selections: Iterable[SelectionNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterable[FieldNode]:
    """The fields of one level of a selection, through fragments: not `info.selected_fields`,
    which converts the whole tree below (every event's fields) on every request."""
    for selection in selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set.selections, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set.selections, fragments)


async def prefetch_customer(
    info: Info, *, key: str | None = None, profile_id: str | None = None, default_events: int
) -> str | None:
    """The current customer holding identifier `key` or named by `profile_id`, its selected
    parts primed into the loaders; None if there is none."""
    raw = info._raw_info
    selected = [
        selection
        for node in raw.field_nodes[:1]
        if node.selection_set is not None
        for selection in node.selection_set.selections
    ]
    fields = list(_fields(selected, raw.fragments))
    names = {f.name.value for f in fields}
    events: int | None = None
    event_fields = [f for f in fields if f.name.value == "events"]
    if event_fields:
        wanted = {
            _events_size(info, convert_arguments(raw, f.arguments), default_events)
            for f in event_fields
        }
        if len(wanted) == 1 and None not in wanted:
            events = wanted.pop()
    loaders = info.context.loaders
    counted = totals.events_count_up_to(info)
    found = await info.context.services.store.customer_context(
        key=key,
        profile_id=profile_id,
        traits=bool(names & TRAIT_FIELDS),
        events=events,
        count_events=counted,
    )
    if found is None:
        return None
    pid = found.profile.id
    # who holds each of its identifiers (an identifier's clear read is audited against
    # its holder): this customer, as of this read
    for record in found.profile.identifiers:
        loaders.profile_of.prime(record.identifier.key, pid)
    if key is not None:
        loaders.profile_of.prime(key, pid)
    if profile_id is not None:
        loaders.resolve.prime(profile_id, pid)
    loaders.resolve.prime(pid, pid)
    loaders.profile.prime(pid, found.profile)
    if found.traits is not None:
        loaders.traits.prime(pid, found.traits)
    if found.events is not None and events is not None:
        loaders.events.prime((pid, events, None, None, counted), found.events)
    return pid


def _events_size(info: Info, arguments: dict[str, Any], default: int) -> int | None:
    """The page size an `events` selection loads with, if it is a plain first page."""
    if arguments.get("after") is not None or arguments.get("types"):
        return None
    first = arguments.get("first", default)
    if isinstance(first, str) and first.isascii() and first.isdigit():
        first = int(first)  # a literal in the document comes as its text; a variable, resolved
    if isinstance(first, bool) or not isinstance(first, int):
        return None
    try:
        return page_size(first, info.context.services.settings)
    except ApiError:  # a bad size: the field itself reports it
        return None
