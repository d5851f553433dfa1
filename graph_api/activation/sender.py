"""Sending one delivery's request: bounded in time, never following a redirect, and (unless
`C360_WEBHOOK_ALLOW_PRIVATE`) only to public addresses, checked on the addresses the
connection actually uses (a name that resolves to a private address, at any time, is
refused: no DNS rebinding around the check made when the destination was created)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from identity_graph.activation.destinations import public

MAX_RESPONSE = 64 * 1024
"""bytes of a response read (a CRM's per-record result); the rest is discarded"""
CONNECTIONS = 32
"""requests in flight to one destination at most"""


class NotPublic(OSError):
    """A destination's host resolved to an address it may not reach."""


class PublicOnly(AbstractResolver):
    """Resolves names as the system does, keeping only public addresses."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if public(ipaddress.ip_address(r["host"]))]
        if not kept:
            raise NotPublic(f"{host} resolves to no public address")
        return kept

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Response:
    status: int | None
    """None: no response (connection refused, timed out, refused address)"""
    body: bytes = b""
    retry_after: timedelta | None = None
    error: str | None = None


class Sender:
    """One destination's HTTP client: its own connection pool, so a slow receiver holds only
    its own connections."""

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0))
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(CONNECTIONS)
        """taken before a request's time starts: waiting for a free connection is not the
        receiver's slowness, and must not count as a failed attempt"""

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=CONNECTIONS,
                resolver=None if self.allow_private else PublicOnly(),
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False
            )
        return self._session

    async def send(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Response:
        if not self.allow_private:
            host = urlsplit(url).hostname or ""
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                literal = None
            if literal is not None and not public(literal):
                return Response(None, error=f"{literal} is not a public address")
        async with self._slots:
            return await self._send(method, url, headers, body)

    async def _send(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Response:
        try:
            async with self._client().request(
                method,
                url,
                data=body,
                headers={"content-type": "application/json", **headers},
                allow_redirects=False,
            ) as response:
                content = await response.content.read(MAX_RESPONSE)
                return Response(
                    response.status,
                    content,
                    retry_after(response.headers.get("retry-after")),
                    None if 200 <= response.status < 300 else describe(response.status, content),
                )
        except NotPublic as e:
            return Response(None, error=str(e))
        except TimeoutError:
            return Response(None, error=f"no answer within {self._timeout.total:g} s")
        except aiohttp.ClientError as e:
            cause = getattr(e, "os_error", None)
            if isinstance(cause, NotPublic):
                return Response(None, error=str(cause))
            return Response(None, error=f"{type(e).__name__}: {e}"[:500])
        except OSError as e:
            return Response(None, error=f"{type(e).__name__}: {e}"[:500])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def describe(status: int, content: bytes) -> str:
    text = content[:300].decode("utf-8", "replace").strip()
    redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
    return f"HTTP {status}{redirect}" + (f": {text}" if text else "")


def retry_after(value: str | None) -> timedelta | None:
    """A `Retry-After` header: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - datetime.now(UTC), timedelta(0))


async def close_all(senders: list[Sender]) -> None:
    await asyncio.gather(*(s.close() for s in senders), return_exceptions=True)
