"""A customer's membership of an audience."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph_api.types.audience import Audience


@strawberry.type(description="An audience a customer belongs to, and since when.")
class AudienceMembership:
    audience: Audience
    since: datetime
