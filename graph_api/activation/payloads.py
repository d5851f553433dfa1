"""What a delivery sends, by destination format: the body (and method) of its request, or
why it is not sent.

- STANDARD (Standard Webhooks): `{"type": "audience.entered"|"audience.exited",
  "timestamp", "data": {"audience": {"id", "name"}, "customer": {"id", "identifiers",
  "traits", "computedTraits"}}}`; a customer merged away or erased since leaves with its id
  alone.
- HUBSPOT: a CRM v3 contacts batch upsert (`POST /crm/v3/objects/contacts/batch/upsert`),
  one input keyed by email (`idProperty: email`), the mapped properties and the customer's
  audiences of this destination as a `;`-separated list (a multi-checkbox property).
- SALESFORCE: an sObject Collections upsert of one Contact by an external id field
  (`PATCH /services/data/vXX.X/composite/sobjects/Contact/<field>`), the field holding the
  c360 customer id, with the mapped fields and the audience list.

The customer is read when the delivery is sent, as the destination's role sees it now: a
value changed since the change is sent as it is now (an upsert wants the latest), a value
erased since is not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from graph_api.activation.views import CustomerView
from identity_graph.activation.deliveries import Delivery
from identity_graph.activation.destinations import Destination, DestinationFormat
from identity_graph.audiences.store import ChangeKind


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


def build(
    delivery: Delivery,
    destination: Destination,
    audience_names: Mapping[str, str],
    view: CustomerView | None,
) -> Request | Skip:
    """The request for one delivery; `audience_names` by id (every audience now), `view` the
    customer as the destination's role sees it (None: merged away or erased)."""
    name = audience_names.get(delivery.audience_id)
    if name is None:
        return Skip("the audience was deleted")
    if destination.format is DestinationFormat.STANDARD:
        return Request("POST", standard(delivery, name, view))
    if view is None:
        return Skip("the customer was merged into another or erased: nothing to upsert")
    listed = ";".join(
        sorted(
            audience_names[a]
            for a in view.audience_ids
            if a in destination.audience_ids and a in audience_names
        )
    )
    if destination.format is DestinationFormat.HUBSPOT:
        email = first_identifier(view, "email")
        if email is None:
            return Skip("the customer has no email this destination's role may read")
        props = properties(destination, view)
        props[destination.option("membershipProperty")] = listed
        body = {"inputs": [{"id": email, "idProperty": "email", "properties": props}]}
        return Request("POST", orjson.dumps(body))
    fields: dict[str, Any] = {"attributes": {"type": "Contact"}}
    fields.update(properties(destination, view))
    fields[destination.option("membershipField")] = listed
    fields[destination.option("externalIdField")] = view.id
    return Request("PATCH", orjson.dumps({"allOrNone": True, "records": [fields]}))


def standard(delivery: Delivery, audience_name: str, view: CustomerView | None) -> bytes:
    kind = "audience.entered" if delivery.kind is ChangeKind.ENTERED else "audience.exited"
    customer = (
        view.as_json()
        if view is not None
        else {"id": delivery.customer_id, "identifiers": [], "traits": {}, "computedTraits": {}}
    )
    return orjson.dumps(
        {
            "type": kind,
            "timestamp": delivery.changed_at.isoformat().replace("+00:00", "Z"),
            "data": {
                "audience": {"id": delivery.audience_id, "name": audience_name},
                "customer": customer,
            },
        }
    )


def first_identifier(view: CustomerView, kind: str) -> str | None:
    return next((i["value"] for i in view.identifiers if i["kind"] == kind), None)


def properties(destination: Destination, view: CustomerView) -> dict[str, Any]:
    """The mapped CRM properties that have a value the role may read (others are left out,
    so that an upsert never blanks a CRM field c360 does not know or may not show)."""
    found: dict[str, Any] = {}
    for prop, source in destination.properties().items():
        value = source_value(view, source)
        if value is not None:
            found[prop] = (
                value
                if isinstance(value, str | int | float | bool)
                else orjson.dumps(value).decode()
            )
    return found


def source_value(view: CustomerView, source: str) -> Any:
    if source == "id":
        return view.id
    kind, _, name = source.partition(".")
    if kind == "traits":
        return view.traits.get(name)
    if kind == "computed":
        return view.computed_traits.get(name)
    if kind == "identifiers":
        return first_identifier(view, name)
    return None
