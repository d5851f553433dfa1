"""An audience's members, as one role may see them (`views.CustomerView`), as JSON lines or
CSV: streamed a page of members at a time, so memory holds one page whatever the size.

JSON lines: one `CustomerView.as_json()` object per line, in one pass.

CSV needs its columns before its first row, so it makes two passes over the members. The
first reads only each page's identifiers and trait names (nothing is rendered, so nothing is
read clear) and collects the columns the role may see something of: `id`, then
`identifiers.KIND` for every identifier kind held (several values joined with `;`),
`traits.NAME` for every current trait, `computed.NAME` for every computed trait defined;
each group sorted. The second renders and writes the rows. Customers who enter the audience
between the passes are exported; should one bring a column the first pass did not see, its
value is left out and counted (`Exported.left_out`), never put under another column.

Cells: text as it is, other values as JSON, none empty. A cell that a spreadsheet would read
as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading
`'`: trait values come from tracking messages, which anyone holding the write key can send.
Phone numbers (`+1...`) and negative numbers in text get it too; numbers do not.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TextIO

from graph_api.access.audiences import sources
from graph_api.access.policy import Mode
from graph_api.activation.views import (
    CustomerView,
    access_for,
    computed_readable,
    customer_views,
    visible_traits,
)
from identity_graph.survivorship import current_traits

if TYPE_CHECKING:
    from graph_api.services import Services  # which builds the dispatcher, a user of views

PAGE = 500
"""members read, rendered and written per step"""
SEPARATOR = ";"
"""between the values of one identifier kind in a CSV cell"""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Progress = Callable[[int], None]


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


@dataclass
class Exported:
    customers: int = 0
    left_out: int = 0
    """CSV values whose column the first pass did not see (see the module docstring)"""


async def member_pages(services: Services, audience_id: str) -> AsyncIterator[list[str]]:
    """The audience's member ids, a page of `PAGE` at a time, in customer id order."""
    after: str | None = None
    while True:
        page = await services.audiences.audiences.members(audience_id, first=PAGE, after=after)
        if page.items:
            yield [m.customer_id for m in page.items]
        if not page.more or page.cursor is None:
            return
        after = page.cursor


async def export_jsonl(
    services: Services,
    audience_id: str,
    role: str,
    handle: TextIO,
    *,
    reader: str,
    progress: Progress = lambda n: None,
) -> Exported:
    """Write one JSON object per member (`CustomerView.as_json`), one line each."""
    done = Exported()
    async for ids in member_pages(services, audience_id):
        views = await customer_views(services, role, ids, reader=reader)
        handle.writelines(
            json.dumps(v.as_json(), ensure_ascii=False, default=str) + "\n" for v in views.values()
        )
        done.customers += len(views)
        progress(len(ids))
    return done


@dataclass
class Columns:
    """The CSV's columns after `id`, each group in order."""

    kinds: list[str] = field(default_factory=list)
    traits: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)

    def header(self) -> list[str]:
        return [
            "id",
            *(f"identifiers.{k}" for k in self.kinds),
            *(f"traits.{t}" for t in self.traits),
            *(f"computed.{c}" for c in self.computed),
        ]

    def row(self, view: CustomerView, done: Exported) -> list[str]:
        """The view's cells, counting in `done` the values that have no column."""
        values: dict[str, list[str]] = {}
        for identifier in view.identifiers:
            values.setdefault(identifier["kind"], []).append(identifier["value"])
        done.left_out += sum(len(v) for k, v in values.items() if k not in self.kinds)
        done.left_out += len(view.traits.keys() - set(self.traits))
        done.left_out += len(view.computed_traits.keys() - set(self.computed))
        return [
            cell(view.id),
            *(cell(SEPARATOR.join(values.get(k, []))) for k in self.kinds),
            *(cell(view.traits.get(t)) for t in self.traits),
            *(cell(view.computed_traits.get(c)) for c in self.computed),
        ]


async def columns(
    services: Services, audience_id: str, role: str, *, progress: Progress = lambda n: None
) -> Columns:
    """The first pass: the columns the role may see something of (module docstring)."""
    access = access_for(services, role)
    policy = services.policy
    kinds: set[str] = set()
    traits: set[str] = set()
    async for ids in member_pages(services, audience_id):
        profiles = await services.store.profiles(ids)
        values = await services.store.traits(list(profiles))
        for pid, profile in profiles.items():
            kinds.update(r.identifier.kind for r in profile.identifiers)
            current = current_traits(values.get(pid, []), services.rules)
            traits.update(visible_traits(access, {n: v.value for n, v in current.items()}))
        progress(len(ids))
    aggregates = sources(services.audiences.computed_traits())
    return Columns(
        kinds=sorted(k for k in kinds if access.mode(policy.kind_category(k)) is not Mode.DENIED),
        traits=sorted(traits),
        computed=sorted(n for n in aggregates if computed_readable(access, n, aggregates)),
    )


async def export_csv(
    services: Services,
    audience_id: str,
    role: str,
    handle: TextIO,
    chosen: Columns,
    *,
    reader: str,
    progress: Progress = lambda n: None,
) -> Exported:
    """The second pass: a header of `chosen` columns, then one row per member."""
    done = Exported()
    out = csv.writer(handle)
    out.writerow(cell(name) for name in chosen.header())
    async for ids in member_pages(services, audience_id):
        views = await customer_views(services, role, ids, reader=reader)
        out.writerows(chosen.row(v, done) for v in views.values())
        done.customers += len(views)
        progress(len(ids))
    return done


def cell(value: Any) -> str:
    """A value as a CSV cell: text guarded against formulas, anything else as JSON.

    >>> cell("=1+2"), cell("-3"), cell(-3), cell(None), cell({"a": [1]}), cell("ann")
    ("'=1+2", "'-3", '-3', '', '{"a": [1]}', 'ann')
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return guarded(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if isinstance(value, int | float) else guarded(text)


def guarded(text: str) -> str:
    """Text a spreadsheet will not run: a leading `'` before what would start a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
