"""The domain service over the parametrised `store` fixture, with a clock tests can move."""

from __future__ import annotations

from datetime import datetime

import pytest
from streams import at

from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import IdentityStore


class Clock:
    def __init__(self) -> None:
        self.seconds = 1_000_000.0

    def __call__(self) -> datetime:
        self.seconds += 1
        return at(self.seconds)


@pytest.fixture
def graph(store: IdentityStore) -> IdentityGraph:
    return IdentityGraph(store, Rules.default(), clock=Clock())
