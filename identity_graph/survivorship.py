"""Which observed value is a profile's current one: traits and consent.

>>> from datetime import datetime, timezone
>>> t1 = datetime(2024, 1, 1, tzinfo=timezone.utc)
>>> t2 = datetime(2024, 2, 1, tzinfo=timezone.utc)
>>> values = [TraitValue("plan", "pro", "crm", t1, "m1", "email:a@b.co"),
...           TraitValue("plan", "free", "web", t2, "m2", "email:a@b.co")]
>>> current_traits(values, Rules.default())["plan"].value
'free'
>>> crm_first = Rules.parse('[survivorship.traits.plan]\\nsources = ["crm"]')
>>> current_traits(values, crm_first)["plan"].value
'pro'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from identity_graph.model import ConsentRecord, ConsentStatus, TraitValue
from identity_graph.rules import Rules

_RESTRICTIVENESS = {ConsentStatus.GRANTED: 0, ConsentStatus.REVOKED: 1, ConsentStatus.DENIED: 2}


def current_traits(values: Iterable[TraitValue], rules: Rules) -> dict[str, TraitValue]:
    """The surviving value of each trait: newest, unless the rules rank its sources."""
    best: dict[str, TraitValue] = {}
    for value in values:
        held = best.get(value.name)
        if held is None or _rank(value, rules) > _rank(held, rules):
            best[value.name] = value
    return best


def _rank(value: TraitValue, rules: Rules) -> tuple[int, object, str]:
    sources = rules.trait_sources.get(value.name, ())
    source_rank = len(sources) - sources.index(value.source) if value.source in sources else 0
    return (source_rank, value.observed_at, value.message_id)


def effective_consent(records: Iterable[ConsentRecord]) -> dict[str, ConsentRecord]:
    """Per purpose, the most restrictive of each identifier's latest choice.

    An identifier's latest choice is the one c360 stored last (`seq`), whatever time it
    claims: a client's clock cannot outrank a choice received after it. A choice made on a
    profile is stored for every identifier it holds, so it supersedes everything before it;
    after a merge, the sides' latest choices meet and the most restrictive wins (ties: the
    newest claimed time, then the identifier key, so that every reader shows the same one).

    >>> from datetime import datetime, timezone
    >>> future = datetime(2099, 1, 1, tzinfo=timezone.utc)
    >>> now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    >>> records = [ConsentRecord("email:a@b.co", "ads", ConsentStatus.GRANTED, future, "web", 1),
    ...            ConsentRecord("email:a@b.co", "ads", ConsentStatus.REVOKED, now, "ops", 2)]
    >>> effective_consent(records)["ads"].status.value
    'REVOKED'
    """
    latest: dict[tuple[str, str], ConsentRecord] = {}
    for record in records:
        key = (record.purpose, record.identifier_key)
        held = latest.get(key)
        if held is None or (record.seq, record.at) >= (held.seq, held.at):
            latest[key] = record
    result: dict[str, ConsentRecord] = {}
    for (purpose, _), record in latest.items():
        held = result.get(purpose)
        if held is None or _outranks(record, held):
            result[purpose] = record
    return result


def _outranks(record: ConsentRecord, held: ConsentRecord) -> bool:
    return (_RESTRICTIVENESS[record.status], record.at, record.identifier_key) > (
        _RESTRICTIVENESS[held.status],
        held.at,
        held.identifier_key,
    )


ConsentState = Mapping[str, ConsentStatus]
"""A profile's effective consent status per purpose (purposes without a choice absent): what
the store keeps per profile, so that filters read the domain's decision."""


def consent_state(records: Iterable[ConsentRecord]) -> dict[str, ConsentStatus]:
    """The status `effective_consent` gives each purpose."""
    return {purpose: r.status for purpose, r in effective_consent(records).items()}


def joined_consent(*states: ConsentState) -> dict[str, ConsentStatus]:
    """The state of a profile made by merging profiles in these states: per purpose, the
    most restrictive status (each identifier keeps its latest choice, so this is
    `consent_state` of all their records together).

    >>> joined_consent({"ads": ConsentStatus.GRANTED}, {"ads": ConsentStatus.DENIED})
    {'ads': <ConsentStatus.DENIED: 'DENIED'>}
    """
    joined: dict[str, ConsentStatus] = {}
    for state in states:
        for purpose, status in state.items():
            held = joined.get(purpose)
            if held is None or _RESTRICTIVENESS[status] > _RESTRICTIVENESS[held]:
                joined[purpose] = status
    return joined
