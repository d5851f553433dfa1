"""Keeping computed traits and audience memberships exact as the identity graph changes.

`IdentityGraph` tells the engine which profiles each write touched (`touched`); one
background task re-evaluates them, usually within milliseconds, and records every entry and
exit. A profile absorbed by a merge or erased leaves its audiences; the profile it went to is
evaluated afresh. Time windows lapse by themselves: after each evaluation the engine notes
when the oldest counted event of a windowed condition leaves its window and evaluates the
profile again then (so membership follows within a second of the lapse, with no write).
Defining an audience builds it for every profile in the background (`BUILDING` with its
progress, then `READY`) while ingest goes on; a changed computed trait rebuilds only the
audiences that read it.

All evaluation runs in the one task, so a build and a live update never race within a
process. What is in memory is found again at start, where every audience is rebuilt once
(a READY one stays READY meanwhile): the next lapse of each profile, and the profiles a
write touched that were not evaluated yet when the process died (their writes are durable,
their memberships, changes and deliveries follow on this pass). With several API processes over one
Neo4j database each runs an engine; their evaluations read the same facts and record the same
changes (a membership entered twice is recorded once), but the work is repeated.

A touched profile is evaluated only against the definitions that read what its write changed
(`affects`); one the write made held nothing before, so it is also evaluated against those
the empty profile is a member of, and judged from what its writes gave it, not read back.
Conditions are compiled once (`compile_condition`); a profile's evaluation filters each event
match and computes each computed trait once, for all its definitions (`Evaluator`).

Computed trait values are computed when read, from the profile's events, so they are always
exact; conditions that read them use the same computation.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from identity_graph.audiences.definitions import (
    ComputedTraitDefinition,
    Condition,
    DefinitionError,
    EventMatch,
    Reads,
    computed_names,
    condition_reads,
    parse_computed_trait,
    parse_condition,
    trait_reads,
    windows,
)
from identity_graph.audiences.evaluation import (
    CompiledTrait,
    Evaluator,
    Facts,
    compile_condition,
    compute,
    explain,
    match_key,
)
from identity_graph.audiences.store import (
    Audience,
    AudienceChange,
    AudienceStore,
    ChangeKind,
    ComputedTrait,
    Status,
)
from identity_graph.errors import NotFound
from identity_graph.model import JSON, PURPOSES, ConsentStatus, MessageType
from identity_graph.resolver import MonotonicIds, NewId, new_id
from identity_graph.rules import Rules
from identity_graph.service import WHOLE, Given, ProfileChange
from identity_graph.store import IdentityStore, ProfileFilter
from identity_graph.survivorship import consent_state, current_traits

log = logging.getLogger("c360.audiences")

MAX_DEFINITIONS = 100
"""computed traits, and audiences, a deployment may define (each), unless configured"""
BATCH = 200
"""profiles evaluated per step"""
BUILD_PAGE = 500
"""profiles a build reads per step"""
EVERY_EVENT = frozenset((kind, None) for kind in MessageType)
"""selectors of every event, whatever its type and name"""
KNOWN_RECORDS = 250_000
"""events and trait values of recently evaluated profiles the engine keeps (`_known`), so
that their next write is judged from them and what it gave, not by reading their history
(about 100 MB); the least recently evaluated go first"""
KNOWN_PER_PROFILE = 1_000
"""events and trait values one profile holds at most to be kept so"""
REFRESH_SECONDS = 5.0
"""how often an engine reads the definitions again: one defined, changed or deleted through
another API process over the same database is followed within this bound"""
TICK_SECONDS = 1.0
"""how often the task looks for lapses when nothing wakes it"""


def utcnow() -> datetime:
    return datetime.now(UTC)


EMPTY = Facts("", {}, (), frozenset(), {})
"""a profile that holds nothing: what a profile a write made held before it"""


def affects(reads: Reads, change: ProfileChange) -> bool:
    """Whether a change of a profile may change what definitions with these `reads` see.
    (One that does not leaves a profile the write made as it was before: empty.)"""
    return (
        change.whole
        or (change.identifiers and reads.kinds)
        or (change.consent and reads.consent)
        or bool(change.traits & reads.traits)
        or any(
            (kind, name) in reads.events or (kind, None) in reads.events
            for kind, name in change.events
        )
    )


class _Definition:
    """An audience with its parsed condition, compiled, and what it reads."""

    def __init__(self, audience: Audience, condition: Condition) -> None:
        self.audience = audience
        self.condition = condition
        self.computed = computed_names(condition)
        self.reads = condition_reads(condition) | Reads(consent=audience.purpose is not None)
        """what it reads directly (the computed traits it names read theirs)"""
        condition_holds = compile_condition(condition)
        purpose = audience.purpose
        self.member: Callable[[Evaluator], bool] = (
            condition_holds
            if purpose is None
            else lambda v: (
                v.facts.consent.get(purpose) is ConsentStatus.GRANTED and condition_holds(v)
            )
        )
        """whether a profile is a member: consent to the purpose, if any, then the condition"""


class AudienceEngine:
    """Definitions, live membership, builds and explanations."""

    def __init__(
        self,
        store: IdentityStore,
        audiences: AudienceStore,
        rules: Rules,
        *,
        clock: Callable[[], datetime] = utcnow,
        make_id: NewId = new_id,
        make_change_id: NewId | None = None,
        max_definitions: int = MAX_DEFINITIONS,
        tick: float = TICK_SECONDS,
        refresh: float = REFRESH_SECONDS,
    ) -> None:
        self.store = store
        self.audiences = audiences
        self.rules = rules
        self.clock = clock
        self.make_id = make_id
        self.make_change_id = make_change_id or MonotonicIds()
        """change ids: one customer's changes sort in the order they were made (their
        deliveries are sent in that order)"""
        self.max_definitions = max_definitions
        self.tick = tick
        self.refresh = refresh
        self._refreshed_at = time.monotonic()
        self._traits: dict[str, ComputedTraitDefinition] = {}
        self._compiled: dict[str, CompiledTrait] = {}
        """`_traits`, as evaluations read them (`_keep_trait` and `_drop_trait` keep both)"""
        self._trait_records: dict[str, ComputedTrait] = {}
        self._defs: dict[str, _Definition] = {}
        self._dirty: dict[str, ProfileChange] = {}
        """profiles to evaluate again, with what changed of them since they were last"""
        self._lapses: list[tuple[datetime, str]] = []
        self._pending: dict[str, datetime] = {}
        """profile id -> its earliest lapse in `_lapses` (a heap entry not here is stale)"""
        self._builds: dict[str, str | None] = {}
        """audience id -> the profile id its build continues after (None: from the start)"""
        self._build_total: dict[str, int] = {}
        self._build_done: dict[str, int] = {}
        self._reconcile = False
        """events expired: evaluate again everyone, for the audiences that count events"""
        self._known: OrderedDict[str, Given] = OrderedDict()
        """what recently evaluated profiles hold, as their writes gave it (their whole
        content: each was made since, and every write to it told): a store no other
        process writes only (`IdentityStore.sole_writer`), most recently evaluated last"""
        self._known_records = 0
        """events and trait values in `_known`"""
        self._known_epoch = 0
        """counts `_forget_all`: content taken before one is not kept after it"""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        """held while definitions change or profiles are evaluated"""
        self.recorded: list[Callable[[], None]] = []
        """called after changes were recorded (and their deliveries enqueued with them)"""

    # --- life cycle -------------------------------------------------------------------------

    async def start(self, *, build: bool = True) -> None:
        """Read the definitions and start the background task; every audience is built again
        (the reconciling pass after a restart), unless not to `build`: a command that only
        follows its own writes."""
        for trait in await self.audiences.computed_traits():
            self._keep_trait(parse_computed_trait(trait.name, trait.definition))
            self._trait_records[trait.name] = trait
        for audience in await self.audiences.audiences():
            definition = _Definition(audience, parse_condition(audience.condition))
            self._defs[audience.id] = definition
            if build:
                self._builds[audience.id] = None
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="c360-audiences")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()  # should it miss the cancellation, it sees it is stopped
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def touched(self, profiles: Iterable[str] | Mapping[str, ProfileChange]) -> None:
        """Profiles a write changed (or absorbed, or erased), with what changed of each
        (plain ids: anything may have): evaluated again shortly against the definitions
        that read what changed."""
        if not self._defs:
            # not followed: what is kept of a profile would miss this write
            self._forget_all()
            return
        changes = profiles if isinstance(profiles, Mapping) else dict.fromkeys(profiles, WHOLE)
        for pid, change in changes.items():
            held = self._dirty.get(pid)
            self._dirty[pid] = change if held is None else held | change
        self._idle.clear()
        self._wake.set()

    def events_expired(self) -> None:
        """Events were deleted (retention) from profiles no write names: every audience
        that counts events is evaluated again for everyone (staying READY meanwhile)."""
        self._reconcile = True
        self._forget_all()
        self._idle.clear()
        self._wake.set()

    async def settle(self) -> None:
        """Wait until every touched profile is evaluated and every build finished (tests and
        benchmarks)."""
        while True:
            # an evaluation under way has taken its profiles out of `_dirty`: only the
            # task, finding nothing left to do, says when all is done
            self._idle.clear()
            self._wake.set()
            await self._idle.wait()
            if not self._dirty and not self._builds and not self._reconcile:
                return

    # --- definitions ------------------------------------------------------------------------

    async def define_computed_trait(self, name: str, definition: Any) -> ComputedTrait:
        parsed = parse_computed_trait(name, definition)
        async with self._lock:
            if name not in self._traits and len(self._traits) >= self.max_definitions:
                raise DefinitionError(
                    f"at most {self.max_definitions} computed traits may be defined"
                )
            now = self.clock()
            old = self._trait_records.get(name)
            record = ComputedTrait(name, dict(definition), old.created_at if old else now, now)
            await self.audiences.put_computed_trait(record)
            self._keep_trait(parsed)
            self._trait_records[name] = record
            for d in self._defs.values():
                if name in d.computed:
                    await self._rebuild(d)
        return record

    async def delete_computed_trait(self, name: str) -> bool:
        async with self._lock:
            users = sorted(d.audience.name for d in self._defs.values() if name in d.computed)
            if users:
                raise DefinitionError(
                    f"computed trait {name!r} is used by audience(s) {', '.join(users)}:"
                    " delete or change them first"
                )
            deleted = await self.audiences.delete_computed_trait(name)
            self._drop_trait(name)
            self._trait_records.pop(name, None)
        return deleted

    def _keep_trait(self, trait: ComputedTraitDefinition) -> None:
        self._traits[trait.name] = trait
        self._compiled[trait.name] = CompiledTrait.of(trait)

    def _drop_trait(self, name: str) -> None:
        self._traits.pop(name, None)
        self._compiled.pop(name, None)

    def computed_traits(self) -> list[ComputedTrait]:
        return [self._trait_records[name] for name in sorted(self._trait_records)]

    async def define_audience(self, name: str, condition: Any, purpose: str | None) -> Audience:
        """Define (or, by name, redefine) an audience; it is built in the background."""
        if not name or not name.strip() or len(name) > 200:
            raise DefinitionError("name: an audience's name is 1 to 200 characters")
        parsed = parse_condition(condition)
        if purpose is not None and purpose not in PURPOSES:
            raise DefinitionError(
                f"purpose: unknown consent purpose {purpose!r} (one of {', '.join(PURPOSES)})"
            )
        async with self._lock:  # a computed trait is not deleted between the check and the use
            unknown = sorted(computed_names(parsed) - set(self._traits))
            if unknown:
                raise DefinitionError(
                    f"condition: unknown computed trait(s) {', '.join(map(repr, unknown))}"
                )
            existing = next((d for d in self._defs.values() if d.audience.name == name), None)
            if existing is None and len(self._defs) >= self.max_definitions:
                raise DefinitionError(f"at most {self.max_definitions} audiences may be defined")
            now = self.clock()
            audience = Audience(
                id=existing.audience.id if existing else self.make_id(),
                name=name,
                condition=condition,
                purpose=purpose,
                status=Status.BUILDING,
                created_at=existing.audience.created_at if existing else now,
                size=existing.audience.size if existing else 0,
            )
            definition = _Definition(audience, parsed)
            self._defs[audience.id] = definition
            await self._rebuild(definition)
        return audience

    async def delete_audience(self, audience_id: str) -> bool:
        async with self._lock:
            self._defs.pop(audience_id, None)
            self._builds.pop(audience_id, None)
            return await self.audiences.delete_audience(audience_id)

    async def _rebuild(self, definition: _Definition) -> None:
        audience = replace(definition.audience, status=Status.BUILDING, progress=0.0)
        definition.audience = audience
        await self.audiences.put_audience(audience)
        self._builds[audience.id] = None
        self._build_done[audience.id] = 0
        self._idle.clear()
        self._wake.set()

    # --- reads ------------------------------------------------------------------------------

    async def defined(self) -> list[Audience]:
        """Every audience with its size and build state."""
        return await self.audiences.audiences()

    async def find(self, *, id: str | None = None, name: str | None = None) -> Audience | None:
        for audience in await self.audiences.audiences():
            if (id is not None and audience.id == id) or (
                name is not None and audience.name == name
            ):
                return audience
        return None

    async def computed_values(self, profile_id: str) -> dict[str, JSON]:
        """Every computed trait's value for a profile now (empty for an unknown one)."""
        if not self._traits:
            return {}
        current = (await self.store.resolve_profiles([profile_id])).get(profile_id)
        if current != profile_id:
            return {}
        return (await self.computed_values_many([profile_id]))[profile_id]

    async def computed_values_many(self, profile_ids: Sequence[str]) -> dict[str, dict[str, JSON]]:
        """`computed_values` of several current profiles, their events read in one batch (and
        a page at a time only for profiles with more than a page of them)."""
        if not self._traits or not profile_ids:
            return {pid: {} for pid in profile_ids}
        ids = list(dict.fromkeys(profile_ids))
        traits = sorted(self._traits.items())
        reads = Reads()
        for _, trait in traits:
            reads = reads | trait_reads(trait)
        events = await self.store.events_of(ids, reads.events)
        now = self.clock()
        values: dict[str, dict[str, JSON]] = {}
        for pid in ids:
            facts = Facts(pid, {}, tuple(events[pid]), frozenset(), {})  # traits read events only
            values[pid] = {name: compute(d, facts, now) for name, d in traits}
        return values

    async def explain(self, profile_id: str, audience_id: str) -> dict[str, Any]:
        """Why a customer is or is not a member: the condition tree with what each node saw."""
        definition = self._defs.get(audience_id)
        if definition is None:
            raise NotFound(f"no audience {audience_id!r}")
        current = (await self.store.resolve_profiles([profile_id])).get(profile_id)
        facts = None
        if current is not None:
            facts = (await self.facts_many([current], self._reads([definition]))).get(current)
        if facts is None:
            raise NotFound(f"no customer {profile_id!r}")
        now = self.clock()
        computed = self._computed(definition, facts, now)
        tree = explain(definition.condition, facts, computed, now)
        purpose = definition.audience.purpose
        consent_ok = purpose is None or facts.consent.get(purpose) is ConsentStatus.GRANTED
        audience = definition.audience
        return {
            "audience": {"id": audience.id, "name": audience.name},
            "customerId": facts.profile_id,
            "evaluatedAt": now.isoformat(),
            "member": bool(tree["holds"]) and consent_ok,
            "consent": {
                "purpose": purpose,
                "status": None
                if purpose is None or purpose not in facts.consent
                else facts.consent[purpose].value,
                "holds": consent_ok,
            },
            "condition": tree,
        }

    async def facts(self, profile_id: str) -> Facts | None:
        """Everything a current profile holds now, as conditions read it (None if not
        current): every record, read whole, whatever the definitions read."""
        return (await self.facts_many([profile_id])).get(profile_id)

    async def facts_many(
        self, profile_ids: Sequence[str], reads: Reads | None = None
    ) -> dict[str, Facts]:
        """`facts` of several profiles, each kind of record read for all of them at once: a
        batch of touched profiles costs the same few store reads as one. With `reads`, only
        what it names is read (the rest of the facts is empty): what definitions look at,
        not the profiles' whole history. Ids that are not current profiles are left out."""
        ids = list(dict.fromkeys(profile_ids))
        resolved = await self.store.resolve_profiles(ids)
        return await self._facts([pid for pid in ids if resolved.get(pid) == pid], reads)

    async def _facts(self, ids: Sequence[str], reads: Reads | None) -> dict[str, Facts]:
        """`facts_many` of profiles known to be current."""
        if not ids:
            return {}
        store = self.store
        if reads is None:
            profiles = await store.profiles(ids)
            ids = [pid for pid in ids if pid in profiles]
            kinds = {
                pid: frozenset(r.identifier.kind for r in profiles[pid].identifiers) for pid in ids
            }
            values = await store.traits(ids)
            consents = await store.consents(ids)
            # the port's own read of every event, page by page, not an adapter's filtered
            # one: what a full read finds stays independent of what `reads` fetch
            events = await IdentityStore.events_of(store, ids, EVERY_EVENT)
        else:
            kinds = await store.identifier_kinds(ids) if reads.kinds else {}
            values = await store.traits_named(ids, reads.traits) if reads.traits else {}
            consents = await store.consents(ids) if reads.consent else {}
            events = await store.events_of(ids, reads.events)
        return {
            pid: Facts(
                pid,
                {
                    name: v.value
                    for name, v in current_traits(values.get(pid, []), self.rules).items()
                },
                tuple(events.get(pid, ())),
                kinds.get(pid, frozenset()),
                consent_state(consents.get(pid, [])),
            )
            for pid in ids
        }

    def _contents(self, batch: Mapping[str, ProfileChange]) -> dict[str, Given]:
        """Everything each profile of the batch holds, where writes told it all: it was
        made since it was last evaluated, or what it held then is known and its writes
        since told what they gave it. (With another process writing too, a write it made
        would be missed: then every profile is read.)"""
        if not self.store.sole_writer:
            return {}
        found: dict[str, Given] = {}
        for pid, change in batch.items():
            held = None if change.made else self._known.get(pid)
            if change.given is not None and (change.made or held is not None):
                found[pid] = change.given if held is None else held + change.given
            else:
                self._forget(pid)
        return found

    def _remember(self, contents: Mapping[str, Given]) -> None:
        """Keep what the profiles just evaluated hold (but a profile's beyond
        `KNOWN_PER_PROFILE` records), forgetting the least recently evaluated beyond
        `KNOWN_RECORDS` in all."""
        known = self._known
        for pid, content in contents.items():
            self._forget(pid)
            size = len(content.events) + len(content.traits)
            if size <= KNOWN_PER_PROFILE:
                known[pid] = content
                self._known_records += size
        while self._known_records > KNOWN_RECORDS:
            self._forget(next(iter(known)))

    def _forget_all(self) -> None:
        """Trust nothing kept or told of anyone's content: what is queued is read back,
        and a step under way does not keep what it took before this."""
        self._known.clear()
        self._known_records = 0
        self._known_epoch += 1
        for pid, change in self._dirty.items():
            if change.given is not None:
                self._dirty[pid] = replace(change, given=None)

    def _forget(self, pid: str) -> None:
        content = self._known.pop(pid, None)
        if content is not None:
            self._known_records -= len(content.events) + len(content.traits)

    def _given(self, pid: str, given: Given, reads: Reads) -> Facts:
        """The facts of a profile that holds just what writes gave it, its events those
        `reads` counts (as a read would fetch them)."""
        current = current_traits(given.traits, self.rules)
        counted = reads.events
        return Facts(
            pid,
            {name: v.value for name, v in current.items()},
            tuple(
                e for e in given.events if (e.type, e.name) in counted or (e.type, None) in counted
            ),
            frozenset(key.partition(":")[0] for key in given.keys),
            {},
        )

    def _reads(self, defs: Iterable[_Definition]) -> Reads:
        """What evaluating `defs` reads, with the computed traits they name."""
        found = Reads()
        for d in defs:
            found = found | d.reads
            for name in d.computed:
                trait = self._traits.get(name)
                if trait is not None:
                    found = found | trait_reads(trait)
        return found

    def _computed(self, d: _Definition, facts: Facts, now: datetime) -> dict[str, JSON]:
        """The computed traits `d` reads (one deleted meanwhile by another process reads
        as no value)."""
        traits = {name: self._traits.get(name) for name in d.computed}
        return {
            name: None if trait is None else compute(trait, facts, now)
            for name, trait in traits.items()
        }

    def _windows(self, d: _Definition) -> list[EventMatch]:
        found = windows(d.condition)
        for name in d.computed:
            trait = self._traits.get(name)
            if trait is not None and trait.match.within_days is not None:
                found.append(trait.match)
        return found

    def member(self, d: _Definition, view: Evaluator) -> bool:
        """Whether the profile `view` reads is a member of `d`'s audience."""
        return d.member(view)

    # --- the task ---------------------------------------------------------------------------

    async def _run(self) -> None:
        # until `stop`: on Python 3.11 `asyncio.wait_for` can swallow a cancellation that
        # arrives as the event it waits for is set, so the loop checks its own task
        while self._task is asyncio.current_task():
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store outage: log, wait, go on; nothing is lost
                log.exception("audience evaluation failed; retrying")
                await asyncio.sleep(self.tick)

    async def _step(self) -> None:
        if not self._dirty and not self._builds and not self._reconcile:
            self._idle.set()
            timeout = self.tick
            if self._lapses:
                wait = (self._lapses[0][0] - self.clock()).total_seconds()
                timeout = max(0.0, min(timeout, wait))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
        self._wake.clear()
        if time.monotonic() - self._refreshed_at >= self.refresh:
            await self._refresh()
        now = self.clock()
        while self._lapses and self._lapses[0][0] <= now:
            when, pid = heapq.heappop(self._lapses)
            if self._pending.get(pid) == when:
                del self._pending[pid]
            self._dirty[pid] = WHOLE  # (unchanged, but `_known` no longer holds it)
        if self._dirty:
            batch = dict(itertools.islice(self._dirty.items(), BATCH))
            for pid in batch:
                del self._dirty[pid]
            try:
                async with self._lock:
                    defs = list(self._defs.values())
                    reads = {d.audience.id: self._reads([d]) for d in defs}
                    # a profile a write made held nothing before it: for an audience that
                    # reads nothing the write gave it, it is still the empty profile, a
                    # member only if the empty profile is one
                    empty = Evaluator(EMPTY, now, self._compiled)
                    on_empty = {d.audience.id: d.member(empty) for d in defs}
                    # profiles often change alike (one event name, one trait): each kind of
                    # change is matched against the definitions once
                    alike: dict[tuple[Any, ...], list[_Definition]] = {}

                    def evaluated(change: ProfileChange) -> list[_Definition]:
                        kind = (change.events, change.traits, change.identifiers,
                                change.consent, change.whole, change.made)  # fmt: skip
                        found = alike.get(kind)
                        if found is None:
                            found = alike[kind] = [
                                d
                                for d in defs
                                if affects(reads[d.audience.id], change)
                                or (change.made and on_empty[d.audience.id])
                            ]
                        return found

                    epoch = self._known_epoch
                    contents = self._contents(batch)
                    await self._evaluate(
                        {pid: evaluated(change) for pid, change in batch.items()}, contents
                    )
                    if epoch == self._known_epoch:
                        self._remember(contents)
            except BaseException:  # evaluated again on the next step
                self.touched(batch)
                raise
        if self._reconcile:
            async with self._lock:  # no build is half-way through a page
                self._reconcile = False
                for d in self._defs.values():
                    if self._reads([d]).events:
                        self._builds[d.audience.id] = None
                        self._build_done[d.audience.id] = 0
        if self._builds:  # a page each step, so that steady ingest never starves a build
            async with self._lock:
                await self._build_step()

    async def _refresh(self) -> None:
        """Follow definitions made, changed or deleted by another process: new and changed
        ones are evaluated live from now on (the process that defined one builds it), and
        deleted ones are dropped."""
        self._refreshed_at = time.monotonic()
        async with self._lock:  # read under it: a definition made meanwhile is not lost
            traits = {t.name: t for t in await self.audiences.computed_traits()}
            stored = {a.id: a for a in await self.audiences.audiences()}
            for name, trait in traits.items():
                known = self._trait_records.get(name)
                if known is None or known.updated_at != trait.updated_at:
                    self._keep_trait(parse_computed_trait(name, trait.definition))
                    self._trait_records[name] = trait
            for name in set(self._trait_records) - set(traits):
                del self._trait_records[name]
                self._drop_trait(name)
            for aid, audience in stored.items():
                known_def = self._defs.get(aid)
                if known_def is None or (
                    (known_def.audience.condition, known_def.audience.purpose)
                    != (audience.condition, audience.purpose)
                ):
                    definition = _Definition(audience, parse_condition(audience.condition))
                    if definition.computed <= set(self._traits):
                        self._defs[aid] = definition
                elif aid not in self._builds:
                    known_def.audience = audience
            for aid in set(self._defs) - set(stored):
                del self._defs[aid]
                self._builds.pop(aid, None)

    async def _evaluate(
        self, plan: Mapping[str, Sequence[_Definition]], given: Mapping[str, Given] | None = None
    ) -> None:
        """Evaluate each profile against its definitions and record what changed. A
        profile absorbed or erased leaves them; one absorbed is evaluated as its survivor.
        A profile still current that holds just what its writes `given` it (it was made
        since it was last evaluated) is not read back."""
        ids = [pid for pid, defs in plan.items() if defs]
        if not ids:
            return
        resolved = await self.store.resolve_profiles(ids)
        gone = [pid for pid in ids if resolved.get(pid) != pid]
        wanted: dict[str, dict[str, _Definition]] = {}
        for pid in ids:
            if pid in resolved:
                wanted.setdefault(resolved[pid], {}).update((d.audience.id, d) for d in plan[pid])
        held = await self.audiences.memberships([*gone, *wanted])
        now = self.clock()
        changes: list[AudienceChange] = []
        for pid in gone:
            left = {d.audience.id for d in plan[pid]}
            for m in held.get(pid, []):
                if m.audience_id in left:
                    changes.append(self._change(m.audience_id, pid, ChangeKind.EXITED, now))
        # one read of every profile's facts, for what any of their definitions reads: a
        # read per group of profiles with the same definitions cost more in round trips
        # than it saved in rows
        every = {aid: d for by_id in wanted.values() for aid, d in by_id.items()}
        given = given or {}
        reads = self._reads(every.values())
        known = {pid: self._given(pid, given[pid], reads) for pid in wanted if pid in given}
        unread = [pid for pid in wanted if pid not in known]
        if unread:
            known.update(await self._facts(unread, reads))
        windows_of = {
            aid: [(match_key(match), match) for match in self._windows(d)]
            for aid, d in every.items()
        }
        for pid, by_id in wanted.items():
            facts = known.get(pid)
            if facts is None:
                continue
            defs = list(by_id.values())
            windowed = [match for aid in by_id for match in windows_of[aid]]
            was = {m.audience_id for m in held.get(pid, [])}
            mine: list[AudienceChange] = []
            # each event match filtered, and each computed trait computed, once per customer
            view = Evaluator(facts, now, self._compiled)
            try:
                for d in defs:
                    is_member = self.member(d, view)
                    if is_member != (d.audience.id in was):
                        kind = ChangeKind.ENTERED if is_member else ChangeKind.EXITED
                        mine.append(self._change(d.audience.id, pid, kind, now))
                lapse = view.next_lapse(windowed)
            except Exception:  # a bug met by one profile's data must not stop the others'
                log.exception("evaluating customer %s failed; its memberships are kept", pid)
                continue
            changes.extend(mine)
            pending = self._pending.get(pid)
            if lapse is not None and (pending is None or lapse < pending):
                self._pending[pid] = lapse
                heapq.heappush(self._lapses, (lapse, pid))
        if changes and await self.audiences.record(changes):
            for listener in self.recorded:
                listener()

    def _change(self, audience_id: str, pid: str, kind: ChangeKind, at: datetime) -> AudienceChange:
        return AudienceChange(self.make_change_id(), audience_id, pid, kind, at)

    async def _build_step(self) -> None:
        """Evaluate the next page of profiles for the audiences being built."""
        audience_id, after = next(iter(self._builds.items()))
        building = [
            self._defs[a]
            for a, cursor in self._builds.items()
            if cursor == after and a in self._defs
        ]
        # profiles are counted once, on a build's first page: its progress is a fraction of
        # the profiles there were when it started
        page = await self.store.list_profiles(
            first=BUILD_PAGE,
            after=after,
            where=ProfileFilter(),
            count_up_to=None if after is None else 0,
        )
        await self._evaluate(dict.fromkeys(page.items, building))
        for d in building:
            aid = d.audience.id
            if after is None:
                self._build_total[aid] = page.total
            done = self._build_done.get(aid, 0) + len(page.items)
            self._build_done[aid] = done
            total = max(self._build_total.get(aid, 0), done, 1)
            if page.more and page.cursor is not None:
                self._builds[aid] = page.cursor
                d.audience = replace(d.audience, progress=min(done / total, 0.99))
            else:
                del self._builds[aid]
                self._build_done.pop(aid, None)
                self._build_total.pop(aid, None)
                d.audience = replace(
                    d.audience, status=Status.READY, progress=1.0, built_at=self.clock()
                )
            await self.audiences.put_audience(d.audience)
        if audience_id in self._builds and audience_id not in self._defs:
            del self._builds[audience_id]
