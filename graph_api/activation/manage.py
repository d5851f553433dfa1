"""Creating, changing and deleting destinations, and redelivering: the checks an admin's
input passes before it is stored, and telling the dispatcher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graph_api.access.auth import ROLES
from graph_api.errors import bad_input, not_found
from identity_graph.activation.deliveries import Delivery
from identity_graph.activation.destinations import (
    MAX_AUDIENCES,
    MAX_DESTINATIONS,
    Destination,
    DestinationFormat,
    DestinationStatus,
    check_headers,
    check_mapping,
    check_name,
    check_url,
    new_secret,
)
from identity_graph.activation.store import Outbox
from identity_graph.errors import InvalidOperation
from identity_graph.resolver import new_id

if TYPE_CHECKING:
    from graph_api.services import Services

DESTINATION_ROLES = ROLES - {"ingest"}
MAX_GRACE_HOURS = 24 * 30


def outbox(services: Services) -> Outbox:
    found = services.audiences.audiences
    assert isinstance(found, Outbox)
    return found


async def find(services: Services, destination_id: str) -> Destination:
    for destination in await outbox(services).destinations():
        if destination.id == destination_id:
            return destination
    raise not_found("no destination with that id")


async def checked(services: Services, destination: Destination) -> Destination:
    """The destination if every part of it may be stored; `bad_input` naming the part."""
    try:
        check_name(destination.name)
        check_url(destination.url, allow_private=services.settings.webhook_allow_private)
        mapping = check_mapping(destination.mapping, destination.format)
        headers = check_headers(destination.headers)
    except InvalidOperation as e:
        raise bad_input(str(e)) from None
    if destination.role not in DESTINATION_ROLES:
        raise bad_input(
            f"role: {destination.role!r} is not a role a destination may have"
            f" (one of {', '.join(sorted(DESTINATION_ROLES))})"
        )
    if not destination.audience_ids or len(destination.audience_ids) > MAX_AUDIENCES:
        raise bad_input(f"audienceIds: 1 to {MAX_AUDIENCES} audiences")
    known = {a.id for a in await services.audiences.defined()}
    unknown = [a for a in destination.audience_ids if a not in known]
    if unknown:
        raise bad_input(f"audienceIds: no audience with id {', '.join(map(repr, unknown))}")
    if destination.format is DestinationFormat.SALESFORCE:
        field = destination.option("externalIdField")
        path = urlsplit(destination.url).path.rstrip("/")
        if not path.endswith(f"/composite/sobjects/Contact/{field}"):
            raise bad_input(
                "url: a SALESFORCE destination's URL is the sObject Collections upsert of"
                f" Contact by its external id field, ending /composite/sobjects/Contact/{field}"
            )
    return replace(
        destination,
        audience_ids=tuple(dict.fromkeys(destination.audience_ids)),
        mapping=mapping,
        headers=headers,
    )


async def create(
    services: Services,
    *,
    name: str,
    url: str,
    audience_ids: Sequence[str],
    format: DestinationFormat,
    role: str,
    mapping: Mapping[str, Any] | None,
    headers: Mapping[str, Any] | None,
) -> tuple[Destination, str]:
    if len(await outbox(services).destinations()) >= MAX_DESTINATIONS:
        raise bad_input(f"at most {MAX_DESTINATIONS} destinations may be defined")
    now = datetime.now(UTC)
    secret = new_secret()
    destination = await checked(
        services,
        Destination(
            id=new_id(),
            name=name,
            url=url,
            audience_ids=tuple(audience_ids),
            format=format,
            role=role,
            secrets=(secret,),
            created_at=now,
            mapping=dict(mapping or {}),
            headers=dict(headers or {}),
            updated_at=now,
        ),
    )
    await store(services, destination)
    return destination, secret.value


async def update(
    services: Services,
    destination_id: str,
    *,
    name: str | None = None,
    url: str | None = None,
    audience_ids: Sequence[str] | None = None,
    role: str | None = None,
    enabled: bool | None = None,
    mapping: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
) -> Destination:
    """Change what is given; `enabled: true` enables a disabled destination (its pending
    deliveries are sent at once), `false` disables it (nothing is enqueued for it meanwhile)."""
    old = await find(services, destination_id)
    status = old.status
    if enabled is True and old.status is DestinationStatus.DISABLED:
        status = DestinationStatus.ACTIVE
    elif enabled is False:
        status = DestinationStatus.DISABLED
    changed = replace(
        old,
        name=old.name if name is None else name,
        url=old.url if url is None else url,
        audience_ids=old.audience_ids if audience_ids is None else tuple(audience_ids),
        role=old.role if role is None else role,
        status=status,
        last_error=old.last_error if status is old.status else None,
        mapping=old.mapping if mapping is None else dict(mapping),
        headers=old.headers if headers is None else dict(headers),
        updated_at=datetime.now(UTC),
    )
    destination = await checked(services, changed)
    await store(services, destination)
    if old.status is DestinationStatus.DISABLED and destination.enabled:
        await outbox(services).resume(datetime.now(UTC))
        await services.dispatcher.refresh()
    return destination


async def rotate(
    services: Services, destination_id: str, grace_hours: int
) -> tuple[Destination, str]:
    if not 0 <= grace_hours <= MAX_GRACE_HOURS:
        raise bad_input(f"graceHours: 0 to {MAX_GRACE_HOURS}")
    old = await find(services, destination_id)
    destination, secret = old.rotated(datetime.now(UTC), timedelta(hours=grace_hours))
    await store(services, destination)
    return destination, secret.value


async def delete(services: Services, destination_id: str) -> bool:
    deleted = await outbox(services).delete_destination(destination_id)
    await services.dispatcher.refresh()
    return deleted


async def redeliver(services: Services, delivery_id: str) -> Delivery:
    found = await outbox(services).redeliver(delivery_id, datetime.now(UTC))
    if found is None:
        raise not_found("no delivery with that id")
    services.dispatcher.wake()
    return found


async def store(services: Services, destination: Destination) -> None:
    try:
        await outbox(services).put_destination(destination)
    except InvalidOperation as e:
        raise bad_input(f"name: {e}") from None
    await services.dispatcher.refresh()
