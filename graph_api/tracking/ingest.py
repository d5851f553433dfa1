"""Ingesting observations and counting what became of them, for every entry point."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from graph_api.metrics import count_ingest
from identity_graph.model import Observation
from identity_graph.resolver import Outcome
from identity_graph.service import IdentityGraph

OUTCOME_OF_STATUS = {"applied": "accepted", "duplicate": "duplicate", "dropped": "dropped"}
"""an `Outcome.status` -> the outcome the ingest metrics count it as"""


async def ingest_counted(
    graph: IdentityGraph, observations: Sequence[Observation], *, source: str
) -> list[Outcome]:
    """`graph.ingest`, then count every outcome in the ingest metrics under `source`.

    A failure counts nothing: the caller knows whether the messages were rejected (a
    malformed one fails the whole batch) or may be retried (the store is unavailable).
    """
    outcomes = await graph.ingest(observations)
    statuses = Counter(o.status for o in outcomes)
    for status, outcome in OUTCOME_OF_STATUS.items():
        count_ingest(outcome, source, statuses[status])
    return outcomes
