"""Bulk import: JSONL of Segment messages, or CSV rows with a column mapping.

Every row is validated on its own; bad rows are reported with their line and reason and
never stop the good ones. Valid rows are ingested in batches. CSV rows without a message id
column get one derived from their content, so importing the same file twice is idempotent.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from graph_api.errors import SegmentError
from graph_api.metrics import count_ingest
from graph_api.tracking.ingest import ingest_counted
from graph_api.tracking.mapper import Mapper, Message, Named
from graph_api.tracking.segment import SegmentMapper, parse_time
from identity_graph.errors import IdentityGraphError, StoreUnavailable
from identity_graph.model import MessageType, Observation
from identity_graph.service import IdentityGraph

SOURCE = "import"
FORMATS = ("jsonl", "csv")
SPECIAL_COLUMNS = ("message_id", "timestamp", "trait", "ignore")


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    reason: str


@dataclass
class ImportReport:
    accepted: int = 0
    duplicate: int = 0
    dropped: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicate + self.dropped + len(self.rejected)


Row = tuple[int, Observation | Rejected]


def detect_format(path: Path, given: str | None) -> str:
    fmt = (given or path.suffix.lstrip(".")).lower()
    if fmt in ("json", "ndjson"):
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise ValueError(f"cannot tell the format of {path.name}; pass --format jsonl or csv")
    return fmt


def parse_mapping(pairs: Iterable[str], kinds: Iterable[str]) -> dict[str, str]:
    """`column=target` pairs; a target is an identifier kind, `trait`, `trait:NAME`,
    `message_id`, `timestamp` or `ignore`."""
    known = set(kinds)
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column or not target:
            raise ValueError(f"--map {pair!r}: expected COLUMN=KIND")
        name = target.partition(":")[0]
        if target not in known and name not in SPECIAL_COLUMNS:
            choices = ", ".join([*sorted(known), *SPECIAL_COLUMNS])
            raise ValueError(f"--map {pair!r}: unknown target {target!r}; use one of {choices}")
        mapping[column] = target
    return mapping


def jsonl_rows(lines: Iterable[str], mapper: SegmentMapper) -> Iterator[Row]:
    """Each non-blank line a Segment message; `type` defaults to `track` if absent."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            yield number, Rejected(number, "not valid JSON")
            continue
        try:
            yield number, mapper.message(raw)
        except SegmentError as e:
            yield number, Rejected(number, e.message)


def csv_rows(lines: Iterable[str], mapper: Mapper, mapping: Mapping[str, str]) -> Iterator[Row]:
    """Each row one observation. Unmapped columns named like a kind are identifiers, the
    rest traits; empty cells are skipped."""
    reader = csv.DictReader(lines)
    columns = reader.fieldnames or []
    targets = {
        c: mapping.get(c) or (c if c in mapper.rules.kinds else f"trait:{c}") for c in columns
    }
    if not any(t in mapper.rules.kinds for t in targets.values()):
        raise ValueError("no column maps to an identifier kind; use --map COLUMN=KIND")
    for row in reader:
        number = reader.line_num
        try:
            yield number, _csv_observation(row, targets, mapper)
        except SegmentError as e:
            yield number, Rejected(number, e.message)


def _csv_observation(
    row: Mapping[str, Any], targets: Mapping[str, str], mapper: Mapper
) -> Observation:
    if None in row:
        raise SegmentError("INVALID_FIELD", "more cells than columns")
    identifiers: list[Named] = []
    traits: dict[str, Any] = {}
    message_id: str | None = None
    timestamp: datetime | None = None
    for column, target in targets.items():
        value = (row.get(column) or "").strip()
        if not value or target == "ignore":
            continue
        if target == "message_id":
            message_id = value
        elif target == "timestamp":
            timestamp = parse_time(value, column)
        elif target.startswith("trait"):
            traits[target.partition(":")[2] or column] = value
        else:
            identifiers.append(Named(target, value, column))
    if message_id is None:
        digest = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()
        message_id = f"csv-{digest[:32]}"
    message = Message(
        type=MessageType.IMPORT,
        identifiers=identifiers,
        traits=traits,
        message_id=message_id,
        timestamp=timestamp,
    )
    return mapper.observation(message)


class Importer:
    """Ingest validated rows in batches and tally what became of each."""

    def __init__(
        self, graph: IdentityGraph, *, batch_size: int = 500, source: str = SOURCE
    ) -> None:
        self.graph = graph
        self.batch_size = batch_size
        self.source = source
        """the `source` label of the ingest metrics"""

    async def run(
        self, rows: Iterable[Row], *, progress: Callable[[int], None] | None = None
    ) -> ImportReport:
        """Ingest every valid row; `progress` is called with the number of rows done."""
        report = ImportReport()
        batch: list[tuple[int, Observation]] = []
        for number, row in rows:
            if isinstance(row, Rejected):
                self._reject(report, row)
                if progress is not None:
                    progress(1)
                continue
            batch.append((number, row))
            if len(batch) >= self.batch_size:
                await self._flush(batch, report)
                if progress is not None:
                    progress(len(batch))
                batch = []
        await self._flush(batch, report)
        if progress is not None and batch:
            progress(len(batch))
        return report

    async def _flush(self, batch: list[tuple[int, Observation]], report: ImportReport) -> None:
        if not batch:
            return
        try:
            outcomes = await ingest_counted(self.graph, [o for _, o in batch], source=self.source)
        except StoreUnavailable:
            raise
        except IdentityGraphError as e:
            if len(batch) == 1:
                self._reject(report, Rejected(batch[0][0], str(e)))
            else:
                for one in batch:
                    await self._flush([one], report)
            return
        for outcome in outcomes:
            if outcome.status == "duplicate":
                report.duplicate += 1
            elif outcome.status == "dropped":
                report.dropped += 1
            else:
                report.accepted += 1

    def _reject(self, report: ImportReport, row: Rejected) -> None:
        report.rejected.append(row)
        count_ingest("rejected", self.source)
