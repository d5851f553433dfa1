"""The root Query and Mutation, and the schema built from them.

Each operation declares the roles that may run it (reads need any role but `ingest`; ingest
needs `ingest` or `admin`; consent and the data-subject export need `admin` or `support`;
audiences, their members and changes and `explainMembership` need `admin`, `marketing` or
`analyst`; merges, keys, erasure, suppressions, retention and defining computed traits and
audiences need `admin`), enforced and shown in the
SDL as `@requiresRole`; fields carrying personal data are the PII guard's. The ingest role
writes and learns nothing (see `IngestResult`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from graph_api import limits, totals
from graph_api.access.audit import AuditReads
from graph_api.access.auth import (
    ADMIN_ROLES,
    AUDIENCE_ROLES,
    CONSENT_ROLES,
    INGEST_ROLES,
    READ_ROLES,
)
from graph_api.access.categories import PiiClassifier
from graph_api.access.permissions import Roles, operation, personal_operation
from graph_api.access.pii import DeniedKeys, access_mode, require_clear
from graph_api.access.policy import Mode
from graph_api.activation import manage
from graph_api.context import Info
from graph_api.cost import MAX_BATCH
from graph_api.errors import ApiError, ErrorCodes, bad_input, not_found
from graph_api.executor import Executor
from graph_api.prefetch import prefetch_customer
from graph_api.privacy import erasure, export, retention
from graph_api.settings import Settings
from graph_api.tracking.ingest import ingest_counted
from graph_api.types.api_key import ApiKeyConnection, ApiKeyCreated
from graph_api.types.audience import Audience
from graph_api.types.audience_change import AudienceChangeConnection
from graph_api.types.audit_entry import AuditConnection
from graph_api.types.computed_trait import ComputedTrait
from graph_api.types.consent import Consent, ConsentInput
from graph_api.types.customer import (
    DEFAULT_EVENTS,
    Customer,
    CustomerConnection,
    CustomerEdge,
)
from graph_api.types.customer_filter import CustomerFilter
from graph_api.types.destination import Delivery, Destination, DestinationCreated
from graph_api.types.erasure_receipt import ErasureReceipt
from graph_api.types.identifier import IdentifierInput
from graph_api.types.link_explanation import LinkExplanation
from graph_api.types.merge_record import MergeRecord, operator
from graph_api.types.messages import IdentifyInput, IngestResult, MessageInput, TrackInput
from graph_api.types.page_info import PageInfo
from graph_api.types.retention_report import RetentionReport
from graph_api.types.suppression import SuppressionConnection
from identity_graph.activation.destinations import DestinationFormat
from identity_graph.model import Observation
from identity_graph.privacy import MAX_REASON
from identity_graph.store import ProfileFilter
from identity_graph.survivorship import effective_consent

DIGEST = re.compile(r"[0-9a-f]{64}")
DEFAULT_PAGE = 20
EXPORT_ROLES = ADMIN_ROLES | {"support"}


@strawberry.type
class Query:
    @operation(
        "One customer by id (an absorbed id gives its survivor) or by identifier. A role that"
        " sees a kind's values hashed looks customers up by the hashed value.",
        allow=Roles(READ_ROLES, "read customers"),
    )
    async def customer(
        self,
        info: Info,
        id: strawberry.ID | None = None,
        identifier: IdentifierInput | None = None,
    ) -> Customer | None:
        if (id is None) == (identifier is None):
            raise bad_input("give exactly one of id and identifier")
        if identifier is not None:
            found = await find_by_identifier(info, identifier, prefetch=True)
        else:
            found = await prefetch_customer(info, profile_id=str(id), default_events=DEFAULT_EVENTS)
        return Customer(id=strawberry.ID(found)) if found else None

    @operation(
        "Customers in id order, a page at a time.",
        allow=Roles(READ_ROLES, "read customers"),
    )
    async def customers(
        self,
        info: Info,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
        where: CustomerFilter | None = None,
    ) -> CustomerConnection:
        context = info.context
        services = context.services
        size = limits.page_size(first, services.settings)
        condition = where.to_domain(services.rules) if where else ProfileFilter()
        for key in condition.identifier_keys or ():
            guard_identifier(info, key.partition(":")[0], "filter customers")
        if condition.trait is not None:
            category = services.policy.trait_category(condition.trait[0])
            require_clear(info, category, f"filter customers by trait {condition.trait[0]!r}")
        page = await services.store.list_profiles(
            first=size, after=after, where=condition, count_up_to=totals.count_up_to(info)
        )
        edges = [
            CustomerEdge(node=Customer(id=strawberry.ID(pid)), cursor=pid) for pid in page.items
        ]
        return CustomerConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.more,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=page.total,
        )

    @operation(
        "Clear reads of personal data, newest first (admins only).",
        allow=Roles(ADMIN_ROLES, "read the audit log"),
    )
    async def audit_log(
        self,
        info: Info,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
        customer_id: strawberry.ID | None = None,
    ) -> AuditConnection:
        context = info.context
        size = limits.page_size(first, context.services.settings)
        page = await context.services.records.audit_log(
            first=size,
            after=after,
            customer_id=str(customer_id) if customer_id else None,
            count_up_to=totals.count_up_to(info),
        )
        return AuditConnection.from_domain(page)

    @operation(
        "Everything c360 holds of one person, as one JSON document (a data-subject export,"
        " GDPR Art. 15/20): identifiers, traits and their history, every event, consents,"
        " merge history, conflicts and who read their data. Values are clear, and the export"
        " is audited as a clear read. Nothing of other people: their identifiers appear by"
        f" kind only. Refused (EXPORT_TOO_LARGE) beyond {export.GRAPHQL_MAX_EVENTS:,} events:"
        " `c360 privacy export` streams any size.",
        allow=Roles(EXPORT_ROLES, "export a customer's data"),
    )
    async def data_subject_export(self, info: Info, customer_id: strawberry.ID) -> JSON:
        context = info.context
        started = await export.start_export(
            context.services,
            str(customer_id),
            context.principal,
            max_events=export.GRAPHQL_MAX_EVENTS,
        )
        return JSON(await export.document(started))

    @operation(
        "Erased identifiers that later messages lose (keyed hashes, never values), oldest"
        " first (admins only).",
        allow=Roles(ADMIN_ROLES, "list suppressions"),
    )
    async def suppressions(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> SuppressionConnection:
        services = info.context.services
        size = limits.page_size(first, services.settings)
        page = await services.store.suppressions(first=size, after=after)
        return SuppressionConnection.from_domain(page)

    @operation(
        "API keys, oldest first: who each is for and until when, never the key itself"
        " (admins only).",
        allow=Roles(ADMIN_ROLES, "list API keys"),
    )
    async def api_keys(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> ApiKeyConnection:
        context = info.context
        size = limits.page_size(first, context.services.settings)
        page = await context.services.auth.list_keys(first=size, after=after)
        return ApiKeyConnection.from_domain(page)

    @operation(
        "Why two identifiers belong to one customer, link by link.",
        allow=Roles(READ_ROLES, "explain links"),
    )
    async def explain_link(
        self, info: Info, a: IdentifierInput, b: IdentifierInput
    ) -> LinkExplanation | None:
        context = info.context
        rules = context.services.rules
        first, second = a.to_domain(rules), b.to_domain(rules)
        for identifier in (first, second):
            guard_identifier(info, identifier.kind, "explain links")
        explanation = await context.services.graph.explain_link(first, second)
        return LinkExplanation.from_domain(explanation)

    @operation(
        "Computed trait definitions, by name.",
        allow=Roles(READ_ROLES, "read computed traits"),
    )
    def computed_traits(self, info: Info) -> list[ComputedTrait]:
        traits = info.context.services.audiences.computed_traits()
        return [ComputedTrait.from_domain(t) for t in traits]

    @operation(
        "Audiences, by name, with their size and build state.",
        allow=Roles(AUDIENCE_ROLES, "read audiences"),
    )
    async def audiences(self, info: Info) -> list[Audience]:
        found = await info.context.services.audiences.defined()
        return [Audience.from_domain(a) for a in found]

    @operation(
        "One audience by id or by name; null if there is none.",
        allow=Roles(AUDIENCE_ROLES, "read audiences"),
    )
    async def audience(
        self, info: Info, id: strawberry.ID | None = None, name: str | None = None
    ) -> Audience | None:
        if (id is None) == (name is None):
            raise bad_input("give exactly one of id and name")
        engine = info.context.services.audiences
        found = await engine.find(id=None if id is None else str(id), name=name)
        return Audience.from_domain(found) if found else None

    @operation(
        "Destinations (webhooks and CRMs receiving audience changes), by name (admins only).",
        allow=Roles(ADMIN_ROLES, "read destinations"),
    )
    async def destinations(self, info: Info) -> list[Destination]:
        now = datetime.now(UTC)
        found = await manage.outbox(info.context.services).destinations()
        return [Destination.from_domain(d, now) for d in found]

    @operation(
        "An audience's entries and exits, oldest first, a page at a time.",
        allow=Roles(AUDIENCE_ROLES, "read audience changes"),
    )
    async def audience_changes(
        self,
        info: Info,
        audience_id: strawberry.ID,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> AudienceChangeConnection:
        services = info.context.services
        if await services.audiences.find(id=str(audience_id)) is None:
            raise not_found("no audience with that id")
        size = limits.page_size(first, services.settings)
        page = await services.audiences.audiences.changes(str(audience_id), first=size, after=after)
        return AudienceChangeConnection.from_domain(page)

    @personal_operation(
        "Why a customer is or is not a member of an audience: the condition tree with, at each"
        " node, whether it held and what it saw (`seen`: counts, trait and computed values),"
        " and the consent the audience's purpose needs. Values are shown as the caller's role"
        " reads them elsewhere: masked, hashed, or null and reported when denied.",
        allow=Roles(AUDIENCE_ROLES, "explain audience membership"),
        classified_by=PiiClassifier.MEMBERSHIP_EXPLANATION,
    )
    async def explain_membership(
        self, info: Info, customer_id: strawberry.ID, audience_id: strawberry.ID
    ) -> JSON:
        engine = info.context.services.audiences
        return JSON(await engine.explain(str(customer_id), str(audience_id)))


async def find_by_identifier(
    info: Info, identifier: IdentifierInput, *, prefetch: bool = False
) -> str | None:
    """The customer holding an identifier: by its value where the caller reads that kind
    clear, by its digest where the caller reads it hashed, refused otherwise. With
    `prefetch`, what the query selects of the customer comes in the same store read."""
    services = info.context.services
    kind = identifier.kind.strip().lower()
    if kind in services.rules.kinds:
        category = services.policy.kind_category(kind)
        if access_mode(info, category) is Mode.HASHED:
            digest = identifier.value.strip().lower()
            if not DIGEST.fullmatch(digest):
                raise bad_input(
                    f"your role sees {kind} values hashed: look up by the 64-hex hashed value"
                )
            found = await services.store.profile_ids_by_digest([digest], kind=kind)
            return found.get(digest)
    normalised = identifier.to_domain(services.rules)
    guard_identifier(info, normalised.kind, "look customers up")
    if prefetch:
        return await prefetch_customer(info, key=normalised.key, default_events=DEFAULT_EVENTS)
    return await info.context.loaders.profile_of.load(normalised.key)


def guard_identifier(info: Info, kind: str, action: str) -> None:
    """What a role may not read clear it may not use: lookups would become an oracle."""
    category = info.context.services.policy.kind_category(kind)
    require_clear(info, category, f"{action} by {kind}")


async def _ingest(info: Info, observations: Sequence[Observation]) -> list[IngestResult]:
    outcomes = await ingest_counted(info.context.services.graph, observations, source="graphql")
    return [IngestResult.from_domain(o) for o in outcomes]


@strawberry.type
class Mutation:
    @operation(
        "Record who a customer is and what traits they have.",
        allow=Roles(INGEST_ROLES, "ingest"),
    )
    async def identify(self, info: Info, input: IdentifyInput) -> IngestResult:
        observation = input.to_observation(info.context.services.rules)
        return (await _ingest(info, [observation]))[0]

    @operation(
        "Record an event (track, page or screen call).",
        allow=Roles(INGEST_ROLES, "ingest"),
    )
    async def track(self, info: Info, input: TrackInput) -> IngestResult:
        observation = input.to_observation(info.context.services.rules)
        return (await _ingest(info, [observation]))[0]

    @operation(
        f"Ingest a batch of at most {MAX_BATCH} messages atomically.",
        allow=Roles(INGEST_ROLES, "ingest"),
    )
    async def ingest(self, info: Info, messages: list[MessageInput]) -> list[IngestResult]:
        if len(messages) > MAX_BATCH:
            raise bad_input(f"at most {MAX_BATCH} messages per batch")
        rules = info.context.services.rules
        observations = []
        for index, message in enumerate(messages):
            try:
                observations.append(message.to_observation(rules))
            except ApiError as e:
                raise ApiError(e.code, f"messages[{index}]: {e.message}") from e
        return await _ingest(info, observations)

    @operation(
        "Undo a merge: split the two profiles again.",
        allow=Roles(ADMIN_ROLES, "undo merges"),
    )
    async def undo_merge(self, info: Info, merge_id: strawberry.ID) -> MergeRecord:
        principal = info.context.principal
        record = await info.context.services.graph.undo_merge(
            str(merge_id), actor=operator(principal)
        )
        return MergeRecord.from_domain(record)

    @operation(
        "Split identifiers off a customer into a new customer.",
        allow=Roles(ADMIN_ROLES, "split customers"),
    )
    async def unmerge(
        self, info: Info, customer_id: strawberry.ID, identifiers: list[IdentifierInput]
    ) -> MergeRecord:
        context = info.context
        keys = [i.to_domain(context.services.rules).key for i in identifiers]
        record = await context.services.graph.unmerge(
            str(customer_id), keys, actor=operator(context.principal)
        )
        return MergeRecord.from_domain(record)

    @operation(
        "Record a customer's consent choices, for every identifier the customer holds now.",
        allow=Roles(CONSENT_ROLES, "record consent"),
    )
    async def set_consent(
        self,
        info: Info,
        customer_id: strawberry.ID,
        choices: list[ConsentInput],
        # not named `source` in Python: field extensions take `source` (the parent) themselves
        origin: Annotated[str, strawberry.argument(name="source")] = "api",
    ) -> list[Consent]:
        context = info.context
        if not choices:
            raise bad_input("give at least one consent choice")
        decided = {c.purpose: c.status for c in choices}
        current = await context.services.graph.set_consent(str(customer_id), decided, source=origin)
        records = (await context.services.store.consents([current]))[current]
        effective = effective_consent(records)
        return [Consent.from_domain(effective[p]) for p in sorted(effective)]

    @operation(
        "Erase a customer (GDPR Art. 17): every record of them is physically deleted when"
        " this returns, and with `suppress` (the default) their identifiers and message ids"
        " are suppressed, so no later or replayed message brings them back. An absorbed id"
        " erases its survivor. Audited with the reason; admins only.",
        allow=Roles(ADMIN_ROLES, "erase customers"),
    )
    async def erase_customer(
        self, info: Info, customer_id: strawberry.ID, reason: str, suppress: bool = True
    ) -> ErasureReceipt:
        if not reason.strip() or len(reason.strip()) > MAX_REASON:
            raise bad_input(f"give a reason of 1 to {MAX_REASON} characters")
        context = info.context
        receipt = await erasure.erase(
            context.services, str(customer_id), context.principal, reason=reason, suppress=suppress
        )
        return ErasureReceipt.from_domain(receipt)

    @operation(
        "Lift an identifier's suppression, so that messages carrying it are taken again;"
        " false if it was not suppressed. Audited; admins only.",
        allow=Roles(ADMIN_ROLES, "lift suppressions"),
    )
    async def unsuppress(self, info: Info, identifier: IdentifierInput) -> bool:
        context = info.context
        found = identifier.to_domain(context.services.rules)
        return await erasure.unsuppress(context.services, found, context.principal)

    @operation(
        "Run the retention policy (C360_RETENTION_FILE) now, as the server does every hour;"
        " says what it deleted (admins only).",
        allow=Roles(ADMIN_ROLES, "apply retention"),
    )
    async def apply_retention(self, info: Info) -> RetentionReport:
        report = await retention.run_retention(info.context.services)
        return RetentionReport.from_domain(report)

    @operation(
        "Define a computed trait (or redefine the one of that name): a value computed from"
        ' each customer\'s events, e.g. `{kind: "sum", event: "Order Completed",'
        ' property: "revenue", within_days: 90}`. Audiences that read it are rebuilt.'
        " INVALID_DEFINITION names the path of a bad part. Admins only.",
        allow=Roles(ADMIN_ROLES, "define computed traits"),
    )
    async def define_computed_trait(self, info: Info, name: str, definition: JSON) -> ComputedTrait:
        engine = info.context.services.audiences
        return ComputedTrait.from_domain(await engine.define_computed_trait(name, definition))

    @operation(
        "Delete a computed trait that no audience reads (admins only).",
        allow=Roles(ADMIN_ROLES, "delete computed traits"),
    )
    async def delete_computed_trait(self, info: Info, name: str) -> bool:
        if not await info.context.services.audiences.delete_computed_trait(name):
            raise not_found("no computed trait with that name")
        return True

    @operation(
        "Define an audience (or redefine the one of that name): the customers `condition`"
        " selects and, with a `purpose`, who granted consent for it. It is built in the"
        " background (status BUILDING, then READY) and kept up to date. INVALID_DEFINITION"
        " names the path of a bad part. Admins only.",
        allow=Roles(ADMIN_ROLES, "define audiences"),
    )
    async def define_audience(
        self, info: Info, name: str, condition: JSON, purpose: str | None = None
    ) -> Audience:
        engine = info.context.services.audiences
        return Audience.from_domain(await engine.define_audience(name, condition, purpose))

    @operation(
        "Delete an audience with its memberships and changes (admins only).",
        allow=Roles(ADMIN_ROLES, "delete audiences"),
    )
    async def delete_audience(self, info: Info, id: strawberry.ID) -> bool:
        if not await info.context.services.audiences.delete_audience(str(id)):
            raise not_found("no audience with that id")
        return True

    @operation(
        "Create a destination: every entry into and exit from its audiences is POSTed to `url`"
        " (Standard Webhooks headers, signed with the secret returned here, once), with the"
        " customer as `role` may read them. `https` and public addresses only, unless"
        " C360_WEBHOOK_ALLOW_PRIVATE. `mapping` maps CRM properties (HUBSPOT, SALESFORCE);"
        " `headers` are sent with every request (a CRM's Authorization). Admins only.",
        allow=Roles(ADMIN_ROLES, "create destinations"),
    )
    async def create_destination(
        self,
        info: Info,
        name: str,
        url: str,
        audience_ids: list[strawberry.ID],
        format: DestinationFormat = DestinationFormat.STANDARD,
        role: str = "marketing",
        mapping: JSON | None = None,
        headers: JSON | None = None,
    ) -> DestinationCreated:
        destination, secret = await manage.create(
            info.context.services,
            name=name,
            url=url,
            audience_ids=[str(a) for a in audience_ids],
            format=format,
            role=role,
            mapping=json_object(mapping, "mapping"),
            headers=json_object(headers, "headers"),
        )
        return DestinationCreated(
            destination=Destination.from_domain(destination, datetime.now(UTC)), secret=secret
        )

    @operation(
        "Change a destination; what is not given is kept. `enabled: true` enables a disabled"
        " one (its pending deliveries are sent at once). Admins only.",
        allow=Roles(ADMIN_ROLES, "change destinations"),
    )
    async def update_destination(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = None,
        url: str | None = None,
        audience_ids: list[strawberry.ID] | None = None,
        role: str | None = None,
        enabled: bool | None = None,
        mapping: JSON | None = None,
        headers: JSON | None = None,
    ) -> Destination:
        destination = await manage.update(
            info.context.services,
            str(id),
            name=name,
            url=url,
            audience_ids=None if audience_ids is None else [str(a) for a in audience_ids],
            role=role,
            enabled=enabled,
            mapping=json_object(mapping, "mapping"),
            headers=json_object(headers, "headers"),
        )
        return Destination.from_domain(destination, datetime.now(UTC))

    @operation(
        "A new signing secret for a destination, shown once; the old one goes on signing"
        " (a second signature) for `graceHours`, so the receiver can switch. Admins only.",
        allow=Roles(ADMIN_ROLES, "rotate destination secrets"),
    )
    async def rotate_destination_secret(
        self, info: Info, id: strawberry.ID, grace_hours: int = 24
    ) -> DestinationCreated:
        destination, secret = await manage.rotate(info.context.services, str(id), grace_hours)
        return DestinationCreated(
            destination=Destination.from_domain(destination, datetime.now(UTC)), secret=secret
        )

    @operation(
        "Delete a destination with its deliveries (admins only).",
        allow=Roles(ADMIN_ROLES, "delete destinations"),
    )
    async def delete_destination(self, info: Info, id: strawberry.ID) -> bool:
        if not await manage.delete(info.context.services, str(id)):
            raise not_found("no destination with that id")
        return True

    @operation(
        "Send a delivery again (a FAILED, SKIPPED or even DELIVERED one), with the same"
        " webhook-id, now (admins only).",
        allow=Roles(ADMIN_ROLES, "redeliver"),
    )
    async def redeliver(self, info: Info, delivery_id: strawberry.ID) -> Delivery:
        return Delivery.from_domain(await manage.redeliver(info.context.services, str(delivery_id)))

    @operation(
        "Create an API key for a role, optionally expiring; the key is shown once.",
        allow=Roles(ADMIN_ROLES, "create API keys"),
    )
    async def create_api_key(
        self,
        info: Info,
        role: str,
        name: str | None = None,
        expires_at: Annotated[
            datetime | None,
            strawberry.argument(description="From then on the key is refused (a time to come)."),
        ] = None,
    ) -> ApiKeyCreated:
        try:
            auth = info.context.services.auth
            key, record = await auth.create_key(role, name, expires_at=expires_at)
        except ValueError as e:
            raise bad_input(str(e)) from e
        return ApiKeyCreated.made(key, record)

    @operation(
        "Revoke an API key by id; it stops working at once.",
        allow=Roles(ADMIN_ROLES, "revoke API keys"),
    )
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> bool:
        if not await info.context.services.auth.revoke_key(str(id)):
            raise not_found("no API key with that id")
        return True


def json_object(value: object, name: str) -> dict[str, object] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_input(f"{name}: an object")
    return value


class Schema(strawberry.Schema):
    """Strawberry's schema, minus its logging of every error: expected failures (a denied
    field, a bad input) are answers, not incidents; `ErrorCodes` logs the unexpected ones."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema(settings: Settings) -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        # few extensions: Strawberry builds each, and wraps each of its hooks, per request
        extensions=[ErrorCodes, DeniedKeys, AuditReads, *limits.extensions(settings)],
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=Executor,  # a request's garbage freed when it ends
    )


def export_schema() -> str:
    """The SDL of the schema, as `schema.graphql` holds it."""
    return build_schema(Settings()).as_str() + "\n"
