"""The ledgers of a dataset: the Delta tables ``_ledger/coverage`` and ``_ledger/runs``.

Coverage has one row per creation-time window that an export paged to the end for one
(bucket, region, queue, tag, states) key. ``queue`` null means every queue and ``states`` null
means every state; such a row also covers the narrower keys (one queue, some states). A window
is recorded only in a commit made after the one holding its rows in ``jobs``, so coverage never
claims a job that a crash lost. ``jobs`` and ``pages`` are what the window held when it was
read; the export uses them to price a re-read. To keep the ledger small and re-reads exact:

* a newer window replaces the part of an older one it overlaps (the older one is trimmed and
  its counts scaled to what is left, an estimate);
* adjacent windows of a key whose jobs together fit one page (100) are merged.

``min_jobs`` is what the window held for sure: the listing's count, less the jobs of the newer
windows that trimmed it (a job listed once stays listed, so a later read of the overlap holds
at least the old one's jobs there). ``cijobs status`` compares it with the data to tell when
rows were lost after the ledger claimed them.

Each update overwrites the coverage table in one commit (it is small), so no rename is needed
on any storage and earlier coverage can be read back with the table's time travel.

Runs has one row per export, appended in one commit: when it started and finished, its status
(``ok``/``failed``), the requests and retries it made, rows written, jobs new and updated,
partitions written, windows covered, open jobs, the ``jobs`` table version it left, what its
maintenance did, the error text of a failed run, and its arguments as JSON (no secret is ever
an argument).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from ._location import Location
from ._tables import WRITER, AsOf, create_table, open_table, query
from .errors import StoreError

__all__ = [
    "COVERAGE_SCHEMA",
    "COVERAGE_TABLE",
    "LEDGER_DIR",
    "PAGE_SIZE",
    "RUNS_SCHEMA",
    "RUNS_TABLE",
    "CoverageKey",
    "Window",
    "add_coverage",
    "append_run",
    "coverage_table",
    "covered_ranges",
    "ledger_tables",
    "missing_ranges",
    "read_coverage",
    "read_runs",
    "runs_table",
]

LEDGER_DIR = "_ledger"
COVERAGE_TABLE = f"{LEDGER_DIR}/coverage"
RUNS_TABLE = f"{LEDGER_DIR}/runs"
#: Jobs per page of a listing; a window of up to this many jobs costs one request to re-read.
PAGE_SIZE = 100

_TS = pa.timestamp("us", tz="UTC")

COVERAGE_SCHEMA = pa.schema(
    [
        pa.field("bucket", pa.string()),
        pa.field("region", pa.string()),
        pa.field("queue", pa.string()),  # null: every queue
        pa.field("tag", pa.string()),
        pa.field("states", pa.string()),  # null: every state; else sorted, comma-separated
        pa.field("window_start", _TS),
        pa.field("window_end", _TS),
        pa.field("jobs", pa.int64()),
        pa.field("pages", pa.int64()),
        pa.field("fetched_at", _TS),
        pa.field("min_jobs", pa.int64()),  # a lower bound of the jobs the window holds
    ],
)

RUNS_SCHEMA = pa.schema(
    [
        pa.field("started", _TS),
        pa.field("finished", _TS),
        pa.field("status", pa.string()),
        pa.field("requests", pa.int64()),
        pa.field("retries", pa.int64()),
        pa.field("rows", pa.int64()),
        pa.field("jobs_new", pa.int64()),
        pa.field("jobs_updated", pa.int64()),
        pa.field("partitions_rewritten", pa.int64()),
        pa.field("windows", pa.int64()),
        pa.field("open_jobs", pa.int64()),
        pa.field("version", pa.int64()),  # the jobs table version the run left
        pa.field("files_compacted", pa.int64()),
        pa.field("files_vacuumed", pa.int64()),
        pa.field("full_vacuum", pa.bool_()),
        pa.field("errors", pa.string()),
        pa.field("arguments", pa.string()),
    ],
)


class CoverageKey(NamedTuple):
    """What a coverage window is about: one listing filter."""

    bucket: str
    region: str
    tag: str
    queue: str | None
    states: str | None

    def covered_by(self, other: CoverageKey) -> bool:
        """Whether a window of ``other`` also covers this key (same or wider filter)."""
        return (
            (self.bucket, self.region, self.tag) == (other.bucket, other.region, other.tag)
            and other.queue in (None, self.queue)
            and other.states in (None, self.states)
        )


@dataclass(frozen=True)
class Window:
    """One covered creation-time window ``[start, end)`` of a key."""

    key: CoverageKey
    start: datetime
    end: datetime
    jobs: int
    pages: int
    fetched_at: datetime
    min_jobs: int | None = None

    def __post_init__(self) -> None:
        if self.min_jobs is None:  # a fresh listing: its count is exact
            object.__setattr__(self, "min_jobs", self.jobs)

    @property
    def cost(self) -> int:
        """Requests a re-read of this window is expected to take."""
        return max(1, math.ceil(self.jobs / PAGE_SIZE))


def read_coverage(location: Location, as_of: AsOf | None = None) -> list[Window]:
    """Every coverage window of the dataset (as it was at ``as_of``), by key and start.

    Raises:
        StoreError: the ledger is not ours or cannot be read.
    """
    table = _read(location, COVERAGE_TABLE, COVERAGE_SCHEMA, as_of)
    windows = [
        Window(
            CoverageKey(r["bucket"], r["region"], r["tag"], r["queue"], r["states"]),
            r["window_start"],
            r["window_end"],
            r["jobs"] or 0,
            r["pages"] or 0,
            r["fetched_at"],
            r["min_jobs"] or 0,
        )
        for r in table.to_pylist()
    ]
    return sorted(windows, key=_order)


def add_coverage(
    location: Location, existing: Sequence[Window], new: Iterable[Window]
) -> list[Window]:
    """Record newly covered windows on top of ``existing`` in one commit.

    Args:
        location: the dataset.
        existing: the ledger as last read or returned by this function.
        new: windows whose rows are already durable.

    Returns:
        The ledger as written (normalised: no overlaps, small neighbours merged).
    """
    added = list(new)
    if not added:
        return list(existing)
    by_key: dict[CoverageKey, list[Window]] = defaultdict(list)
    for window in existing:
        by_key[window.key].append(window)
    fresh: dict[CoverageKey, list[Window]] = defaultdict(list)
    for window in sorted(added, key=lambda w: (w.fetched_at, w.start)):
        fresh[window.key] = _overlay(sorted(fresh[window.key], key=_order), [window])
    for key, windows in fresh.items():
        by_key[key] = _merge_small(_overlay(sorted(by_key[key], key=_order), windows))
    ledger = sorted((w for ws in by_key.values() for w in ws), key=_order)
    rows = [
        {
            "bucket": w.key.bucket,
            "region": w.key.region,
            "queue": w.key.queue,
            "tag": w.key.tag,
            "states": w.key.states,
            "window_start": w.start,
            "window_end": w.end,
            "jobs": w.jobs,
            "pages": w.pages,
            "fetched_at": w.fetched_at,
            "min_jobs": w.min_jobs,
        }
        for w in ledger
    ]
    _write(location, COVERAGE_TABLE, pa.Table.from_pylist(rows, COVERAGE_SCHEMA), "overwrite")
    return ledger


def covered_ranges(ledger: Sequence[Window], key: CoverageKey) -> list[tuple[datetime, datetime]]:
    """The contiguous ranges covered for ``key`` (windows of wider keys count), in order."""
    spans = sorted((w.start, w.end) for w in ledger if key.covered_by(w.key))
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def missing_ranges(
    covered: Sequence[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The parts of ``[start, end)`` that the sorted, disjoint ``covered`` ranges leave out."""
    gaps: list[tuple[datetime, datetime]] = []
    cursor = start
    for lo, hi in covered:
        if hi <= cursor:
            continue
        if lo >= end:
            break
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def read_runs(location: Location, as_of: AsOf | None = None) -> list[dict[str, Any]]:
    """Every recorded export run, oldest first, as dicts of the ``RUNS_SCHEMA`` columns.

    Raises:
        StoreError: the ledger is not ours or cannot be read.
    """
    rows: list[dict[str, Any]] = runs_table(location, as_of).to_pylist()
    return rows


def append_run(location: Location, run: dict[str, Any]) -> None:
    """Append one run's row to the runs table in one commit.

    Args:
        location: the dataset.
        run: the ``RUNS_SCHEMA`` columns of the run (missing ones are null).
    """
    row = pa.Table.from_pylist([{name: run.get(name) for name in RUNS_SCHEMA.names}], RUNS_SCHEMA)
    _write(location, RUNS_TABLE, row, "append")


def coverage_table(location: Location, as_of: AsOf | None = None) -> pa.Table:
    """The coverage table's rows (``COVERAGE_SCHEMA``) as they were at ``as_of``."""
    return _read(location, COVERAGE_TABLE, COVERAGE_SCHEMA, as_of)


def runs_table(location: Location, as_of: AsOf | None = None) -> pa.Table:
    """The runs table's rows (``RUNS_SCHEMA``) as they were at ``as_of``, oldest first."""
    return _read(location, RUNS_TABLE, RUNS_SCHEMA, as_of).sort_by("started")


def ledger_tables(location: Location) -> list[DeltaTable]:
    """The ledger's Delta tables that exist (for maintenance)."""
    found = (open_table(location, name) for name in (COVERAGE_TABLE, RUNS_TABLE))
    return [table for table in found if table is not None]


def _order(window: Window) -> tuple[str, str, str, str, str, datetime]:
    k = window.key
    return (k.bucket, k.region, k.tag, k.queue or "", k.states or "", window.start)


def _overlay(old: Sequence[Window], new: Sequence[Window]) -> list[Window]:
    """``new`` windows plus what of the sorted, disjoint ``old`` ones they leave uncovered."""
    new_sorted = sorted(new, key=lambda w: w.start)
    starts = [w.start for w in new_sorted]
    out = list(new_sorted)
    for window in old:
        pieces = [(window.start, window.end)]
        # Only new windows starting before this one ends can overlap it.
        taken = 0
        for cut in new_sorted[: bisect.bisect_left(starts, window.end)]:
            if cut.end <= window.start:
                continue
            pieces = [p for lo, hi in pieces for p in _subtract(lo, hi, cut.start, cut.end)]
            taken += cut.jobs
        # One piece left keeps what the cuts cannot have taken; pieces on both sides of a cut
        # cannot tell how the rest divides between them.
        floor = max(0, (window.min_jobs or 0) - taken) if len(pieces) == 1 else 0
        out.extend(_scaled(window, lo, hi, floor) for lo, hi in pieces)
    return sorted(out, key=lambda w: w.start)


def _subtract(
    lo: datetime, hi: datetime, cut_lo: datetime, cut_hi: datetime
) -> list[tuple[datetime, datetime]]:
    if cut_hi <= lo or cut_lo >= hi:
        return [(lo, hi)]
    return [(a, b) for a, b in ((lo, cut_lo), (cut_hi, hi)) if a < b]


def _scaled(window: Window, start: datetime, end: datetime, floor: int) -> Window:
    """The part ``[start, end)`` of a window, its counts scaled up to stay an upper bound."""
    if (start, end) == (window.start, window.end):
        return window
    share = (end - start) / (window.end - window.start)
    return replace(
        window,
        start=start,
        end=end,
        jobs=math.ceil(window.jobs * share),
        pages=math.ceil(window.pages * share),
        min_jobs=floor,
    )


def _merge_small(windows: Sequence[Window]) -> list[Window]:
    """Merge adjacent windows whose jobs fit one page together: one re-read serves both."""
    out: list[Window] = []
    for window in windows:
        last = out[-1] if out else None
        if last and last.end == window.start and last.jobs + window.jobs <= PAGE_SIZE:
            out[-1] = replace(
                last,
                end=window.end,
                jobs=last.jobs + window.jobs,
                pages=last.pages + window.pages,
                fetched_at=min(last.fetched_at, window.fetched_at),
                min_jobs=(last.min_jobs or 0) + (window.min_jobs or 0),
            )
        else:
            out.append(window)
    return out


def _read(location: Location, name: str, schema: pa.Schema, as_of: AsOf | None) -> pa.Table:
    try:
        table = open_table(location, name, as_of)
    except StoreError:
        if as_of is None or open_table(location, name) is None:
            raise
        table = None  # the ledger table was created after ``as_of``: it was empty then
    if table is None:
        return schema.empty_table()
    found = query(table, "SELECT * FROM t")
    for field in found.schema:
        if field.name not in schema.names:
            raise StoreError(
                f"{location.display}/{name} has a column {field.name!r} this version does not "
                "expect; re-export into a new location"
            )
    arrays = [
        found[f.name].cast(f.type)
        if f.name in found.column_names
        else pa.nulls(found.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _write(
    location: Location, name: str, table: pa.Table, mode: Literal["append", "overwrite"]
) -> None:
    target = open_table(location, name) or create_table(location, name, table.schema)
    try:
        write_deltalake(target, table, mode=mode, writer_properties=WRITER)
    except (DeltaError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"cannot write {location.display}/{name}: {first}") from exc
