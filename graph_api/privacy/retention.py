"""Retention as the server runs it: now (`applyRetention`, `c360 retention run`), and by
itself every hour while the app runs (`retention_schedule`, entered by the app's lifespan).

The policy is the one `build_services` loaded from `C360_RETENTION_FILE` at start (a bad
file stops c360 from starting); without a file, the built-in defaults keep events, the audit
log and profiles forever and forget message ids after 90 days and conflicts after a year.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from graph_api.services import Services
from identity_graph.privacy import RetentionReport

log = logging.getLogger("c360.retention")

HOURLY = 3600.0
"""seconds between the server's own retention runs"""


async def run_retention(services: Services) -> RetentionReport:
    """Delete physically what the retention policy no longer keeps, now."""
    return await services.graph.apply_retention(services.retention, records=services.records)


@contextlib.asynccontextmanager
async def retention_schedule(
    services: Services, *, every: float | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Run retention every `every` seconds (default `HOURLY`; the first run one interval
    after start) in a background task, stopped on exit. A failed run is logged and the next
    one comes on time."""
    task = asyncio.create_task(_every(services, HOURLY if every is None else every))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _every(services: Services, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            report = await run_retention(services)
        except Exception:
            log.exception("retention run failed; the next one runs in %.0f s", seconds)
            continue
        log.info(
            "retention: deleted %d events, %d audit entries, %d profiles (%d identifiers),"
            " %d message ids, %d conflicts",
            report.events,
            report.audit,
            report.profiles,
            report.identifiers,
            report.messages,
            report.conflicts,
        )
