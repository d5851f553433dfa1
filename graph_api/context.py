"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from starlette.requests import Request
from starlette.responses import Response

from graph_api.access.auth import Principal
from graph_api.access.pii import Access
from graph_api.loaders import Loaders
from graph_api.services import Services


@dataclass
class Context:
    request: Request
    response: Response
    """the sub-response: resolvers and extensions may set its status or headers"""
    principal: Principal
    services: Services
    loaders: Loaders
    audit: list[tuple[str, str]] = field(default_factory=list)
    """clear reads of personal data (customer id, field), filled by the PII guard and
    written after the request"""
    access: Access | None = None
    """the caller's view of personal data, worked out once per request by the PII guard"""


Info: TypeAlias = strawberry.Info[Context, None]
