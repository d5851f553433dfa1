"""The embedded store keeps each profile's consent state, decided by the domain; a data
directory from before it had them gets them decided from its records at start."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from stores import reopened
from streams import observe

from identity_graph.adapters.embedded.journal import TABLES_FILE
from identity_graph.model import ConsentStatus
from identity_graph.rules import Rules
from identity_graph.service import IdentityGraph
from identity_graph.store import ProfileFilter

GRANTED = ProfileFilter(consent_granted="analytics")


async def test_states_are_decided_for_a_data_directory_without_them(tmp_path: Path) -> None:
    async with reopened(tmp_path) as store:
        graph = IdentityGraph(store, Rules.default())
        [a, b] = await graph.ingest(
            [observe("m1", "anonymous_id:a1"), observe("m2", "anonymous_id:b1")]
        )
        assert a.profile_id and b.profile_id
        await graph.set_consent(a.profile_id, {"analytics": ConsentStatus.GRANTED}, source="t")
        await graph.set_consent(b.profile_id, {"analytics": ConsentStatus.DENIED}, source="t")
    with closing(sqlite3.connect(tmp_path / TABLES_FILE)) as db:
        db.execute("DROP TABLE profile_consents")
        db.commit()
    async with reopened(tmp_path) as store:
        page = await store.list_profiles(first=10, after=None, where=GRANTED)
        assert page.items == (a.profile_id,)
        graph = IdentityGraph(store, Rules.default())
        [m] = await graph.ingest([observe("m3", "anonymous_id:a1", "anonymous_id:b1")])
        assert m.profile_id in (a.profile_id, b.profile_id)
        # the merge joined the states read at start: the DENIED side's holds
        page = await store.list_profiles(first=10, after=None, where=GRANTED)
        assert page.items == ()
