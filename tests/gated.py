"""The embedded store with a copier that tests can hold back."""

from __future__ import annotations

from pathlib import Path

from identity_graph.adapters.embedded import copier as embedded_copier
from identity_graph.adapters.embedded.store import EmbeddedStore


class GatedStore(EmbeddedStore):
    """The embedded store, its copier started only while `copier_allowed`."""

    copier_allowed = True

    def __init__(
        self, data_dir: Path, *, copier_idle_seconds: float = embedded_copier.COPIER_IDLE_SECONDS
    ) -> None:
        super().__init__(data_dir, copier_idle_seconds=copier_idle_seconds)
        start = self._copier.start

        def gated_start() -> None:
            if self.copier_allowed:
                start()

        self._copier.start = gated_start  # type: ignore[method-assign]

    def kill_copier(self) -> None:
        """Kill the running copier and start no other: writes from now on stay in the
        journal until `copier_allowed` again."""
        copier = self._copier.process
        assert copier is not None
        self.copier_allowed = False
        copier.kill()
        copier.wait()
