"""What one retention run deleted, per kind of record."""

from __future__ import annotations

from datetime import datetime

import strawberry

from identity_graph.privacy import RetentionReport as DomainRetentionReport


@strawberry.type(description="What one retention run deleted, per kind of record.")
class RetentionReport:
    ran_at: datetime
    events: int
    audit: int = strawberry.field(description="Audit log entries.")
    profiles: int = strawberry.field(description="Inactive profiles erased (not suppressed).")
    identifiers: int = strawberry.field(description="Identifiers of those profiles.")
    messages: int = strawberry.field(
        description="Message ids forgotten (of messages that are not events: identify, consent)."
    )
    conflicts: int = strawberry.field(description="Merge conflict records.")

    @classmethod
    def from_domain(cls, report: DomainRetentionReport) -> RetentionReport:
        return cls(
            ran_at=report.ran_at,
            events=report.events,
            audit=report.audit,
            profiles=report.profiles,
            identifiers=report.identifiers,
            messages=report.messages,
            conflicts=report.conflicts,
        )
