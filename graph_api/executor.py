"""The executor operations run with: Strawberry's, minus the reference cycles it leaves.

graphql-core 3.3's executor keeps helpers for resolvers bound to itself (`async_helpers`),
and a field error it collects holds, through its traceback, the executor's frames: either
made a reference cycle, and through the executor the request's context, loaders and all they
cached (~330 objects a request on the sales-context query; ~680 for a role with denied
fields) were freed by the cycle collector, not when the response was sent. With the
thresholds the embedded store sets for its large heap, that was one collection of ~200,000
objects every ~600 requests: a pause of 250-400 ms (the p99 of `bench/sales_context.py`),
and about 0.5 ms of CPU per request on average.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from typing import Any

from graphql import GraphQLOutputType, GraphQLResolveInfoHelpers
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph_api.errors import code_of


class Executor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor whose resolver helpers hold it weakly: it lives as long as the
    operation runs (its own frames hold it), and no longer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        executor = weakref.ref(self)

        def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
            return _running(executor).gather_async_work(values)

        def track(values: Sequence[Any]) -> None:
            _running(executor).track_async_work(values)

        self.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)

    def handle_field_error(
        self,
        raw_error: Exception,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> None:
        original = getattr(raw_error, "original_error", None) or raw_error
        if code_of(original) is not None:
            # an expected failure (a denied field, a bad input) is an answer: its traceback
            # is never logged (`ErrorCodes`), and would hold this executor's frames
            raw_error.__traceback__ = original.__traceback__ = None
        super().handle_field_error(raw_error, return_type, field_details_list, path)


def _running(executor: weakref.ref[Executor]) -> Executor:
    found = executor()
    if found is None:
        raise RuntimeError("the operation these helpers belong to has finished")
    return found
