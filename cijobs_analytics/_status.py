"""What ``cijobs status`` shows: coverage and gaps, open jobs, the last export run.

Reading the status takes no lock and changes nothing; it reads the ledgers, the ``jobs``
table's log (its files and their row counts) and the state columns of the open jobs.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._ledger import (
    COVERAGE_TABLE,
    LEDGER_DIR,
    CoverageKey,
    Window,
    covered_ranges,
    read_coverage,
    read_runs,
)
from ._location import Location, resolve_location
from ._lock import read_holder
from ._tables import JOBS_TABLE, AsOf, commit_time, open_table, query, quote, superseded_at
from ._text import plural
from .errors import StoreError
from .schema import OPEN_STATES

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["CoverageStatus", "DatasetStatus", "check_layout", "read_status"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: What the plain-Parquet layout of cijobs_analytics 0.1 left in a dataset directory.
_OLD_LAYOUT = (f"{LEDGER_DIR}/coverage.parquet", f"{LEDGER_DIR}/runs.parquet")


@dataclass(frozen=True)
class CoverageStatus:
    """The coverage of one listing filter: its covered ranges and the gaps between them.

    Attributes:
        key: bucket, region, tag, queue (None: every queue) and states (None: every state).
        ranges: the covered ``[start, end)`` ranges, oldest first.
        gaps: the holes between them, which the next export fills.
        jobs: jobs of this filter the data holds within the covered ranges.
        lost: covered ``(start, end, listed, stored)`` windows whose data holds fewer jobs than
            their listings surely returned: rows lost after the ledger claimed them (deleted
            by hand, say). ``cijobs export --refetch START END`` lists them again.
    """

    key: CoverageKey
    ranges: tuple[tuple[datetime, datetime], ...]
    gaps: tuple[tuple[datetime, datetime], ...]
    jobs: int
    lost: tuple[tuple[datetime, datetime, int, int], ...] = ()


@dataclass(frozen=True)
class DatasetStatus:
    """A dataset at a glance.

    Attributes:
        dataset: the dataset, as given (a directory made absolute, or a URI).
        jobs: jobs stored (one row each).
        partitions: date partitions holding files.
        files: live data files.
        bytes: their size on storage.
        version: the ``jobs`` table version shown (None before the first commit).
        committed: when that version was committed.
        coverage: one entry per listing filter ever exported.
        open_jobs: stored jobs per open state, not counting those marked not found.
        not_found: open jobs the service no longer knows.
        runs: export runs recorded.
        last_run: the last run's ledger row, or None.
        running: who holds the export lock right now, or None.
    """

    dataset: str
    jobs: int
    partitions: int
    files: int
    coverage: tuple[CoverageStatus, ...]
    open_jobs: dict[str, int] = field(default_factory=dict)
    not_found: int = 0
    runs: int = 0
    last_run: dict[str, Any] | None = None
    running: dict[str, object] | None = None
    bytes: int = 0
    version: int | None = None
    committed: datetime | None = None

    @property
    def gaps(self) -> int:
        """How many gaps the coverage has over all filters."""
        return sum(len(c.gaps) for c in self.coverage)

    @property
    def lost(self) -> int:
        """How many covered windows hold fewer jobs than were listed (see CoverageStatus)."""
        return sum(len(c.lost) for c in self.coverage)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings) for monitoring."""
        return {
            "dataset": self.dataset,
            "jobs": self.jobs,
            "partitions": self.partitions,
            "files": self.files,
            "bytes": self.bytes,
            "version": self.version,
            "committed": _iso(self.committed),
            "coverage": [
                {
                    "bucket": c.key.bucket,
                    "region": c.key.region,
                    "tag": c.key.tag,
                    "queue": c.key.queue,
                    "states": c.key.states,
                    "jobs": c.jobs,
                    "ranges": [[_iso(a), _iso(b)] for a, b in c.ranges],
                    "gaps": [[_iso(a), _iso(b)] for a, b in c.gaps],
                    "lost": [
                        {"start": _iso(a), "end": _iso(b), "listed": n, "stored": m}
                        for a, b, n, m in c.lost
                    ],
                }
                for c in self.coverage
            ],
            "gaps": self.gaps,
            "lost": self.lost,
            "open_jobs": dict(self.open_jobs),
            "not_found": self.not_found,
            "runs": self.runs,
            "last_run": _jsonable(self.last_run),
            "running": self.running,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def __str__(self) -> str:
        lines = [
            f"dataset {self.dataset}: {plural(self.jobs, 'job')} in "
            f"{plural(self.partitions, 'partition')} ({plural(self.files, 'file')}, "
            f"{_size(self.bytes)})"
        ]
        if self.version is not None:
            lines.append(f"table version {self.version}, committed {_iso(self.committed)}")
        if self.running:
            lines.append(f"export running: {_holder(self.running)}")
        open_total = sum(self.open_jobs.values())
        detail = ", ".join(f"{n} {s}" for s, n in sorted(self.open_jobs.items()))
        lines.append(f"open jobs: {open_total}" + (f" ({detail})" if detail else ""))
        if self.not_found:
            lines.append(f"open jobs the service no longer knows: {self.not_found}")
        lines.append(
            f"coverage ({plural(len(self.coverage), 'filter')}, {plural(self.gaps, 'gap')}):"
        )
        for c in self.coverage:
            queue = c.key.queue or "all queues"
            states = f" states {c.key.states}" if c.key.states else ""
            span = ", ".join(f"{_iso(a)} .. {_iso(b)}" for a, b in c.ranges)
            lines.append(f"  {c.key.tag} / {queue}{states}: {span} ({plural(c.jobs, 'job')})")
            lines.extend(f"    gap {_iso(a)} .. {_iso(b)}" for a, b in c.gaps)
            lines.extend(
                f"    lost {_iso(a)} .. {_iso(b)}: {n} listed, {m} stored; list again with "
                f"cijobs export --refetch {_iso(a)} {_iso(b)}"
                for a, b, n, m in c.lost
            )
        if self.last_run is None:
            lines.append("last run: none recorded")
        else:
            r = self.last_run
            lines.append(
                f"last run: {r['status']} {_iso(r['started'])} .. {_iso(r['finished'])}: "
                f"{plural(r['requests'] or 0, 'request')} "
                f"({plural(r['retries'] or 0, 'retry', 'retries')}), "
                f"{plural(r['rows'] or 0, 'row')} written, "
                f"{r['jobs_new']} new, {r['jobs_updated']} updated"
            )
            if r.get("errors"):
                lines.append(f"  errors: {r['errors']}")
        lines.append(f"runs recorded: {self.runs}")
        return "\n".join(lines)


def read_status(
    dataset: str | os.PathLike[str] | Location,
    as_of: AsOf | None = None,
    *,
    storage_options: dict[str, str] | None = None,
) -> DatasetStatus:
    """Read the status of a dataset without changing it.

    Args:
        dataset: a local directory, ``s3://bucket/prefix`` or ``cos://bucket-appid/prefix``.
        as_of: show the dataset as it was at this ``jobs`` table version or time.
        storage_options: object-store options for a bucket dataset.

    Returns:
        A :class:`DatasetStatus`; ``str()`` of it is the text ``cijobs status`` prints.

    Raises:
        StoreError: the location is missing, not a dataset, in the old layout, or unreadable.
    """
    location = resolve_location(dataset, storage_options)
    check_layout(location)
    jobs_table = open_table(location, JOBS_TABLE, as_of)
    if jobs_table is None and open_table(location, COVERAGE_TABLE) is None:
        if location.is_local and not location.path.is_dir():
            raise StoreError(f"{location} is not a directory; export into it first (cijobs export)")
        parent = location.path.parent if location.is_local else None
        if parent is not None and (parent / JOBS_TABLE / "_delta_log").is_dir():
            raise StoreError(
                f"{location} is the dataset's {location.path.name} table; pass the dataset "
                f"itself: {parent}"
            )
        raise StoreError(f"{location} is not a cijobs dataset (no {JOBS_TABLE}/ Delta table)")
    committed = (
        commit_time(location, JOBS_TABLE, jobs_table.version()) if jobs_table is not None else None
    )
    # The ledgers as they were until the next commit to the jobs table after the shown one.
    ledger_as_of = None
    if as_of is not None and jobs_table is not None:
        ledger_as_of = superseded_at(location, JOBS_TABLE, jobs_table.version())
    jobs = files = size = 0
    partitions: set[object] = set()
    states: dict[str, int] = {}
    not_found = 0
    if jobs_table is not None:
        actions = pa.table(jobs_table.get_add_actions(flatten=True))
        jobs = int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0
        size = int(pc.sum(actions["size_bytes"]).as_py() or 0) if actions.num_rows else 0
        files = actions.num_rows
        partitions = set(actions["partition.date"].to_pylist()) if actions.num_rows else set()
        open_rows = query(
            jobs_table,
            "SELECT state, not_found_at IS NOT NULL AS gone, count(*) AS n FROM t "  # noqa: S608
            f"WHERE state IN ({', '.join(quote(s) for s in OPEN_STATES)}) GROUP BY 1, 2",
        )
        for row in open_rows.to_pylist():
            if row["gone"]:
                not_found += int(row["n"])
            else:
                states[str(row["state"])] = int(row["n"])
    ledger = read_coverage(location, ledger_as_of)
    counter = _StoredJobs(jobs_table) if ledger and jobs_table is not None else None
    by_key: dict[CoverageKey, list[Window]] = defaultdict(list)
    for window in ledger:
        by_key[window.key].append(window)
    coverage = []
    for key in sorted(
        by_key, key=lambda k: (k.bucket, k.region, k.tag, k.queue or "", k.states or "")
    ):
        windows = by_key[key]
        ranges = covered_ranges(windows, key)
        gaps = tuple((a[1], b[0]) for a, b in itertools.pairwise(ranges))
        stored = counter.count(key, ranges) if counter else [0] * len(ranges)
        lost: list[tuple[datetime, datetime, int, int]] = []
        if counter and key.states is None:
            # A state filter's jobs leave it as they finish; only unfiltered counts must hold.
            found = counter.count(key, [(w.start, w.end) for w in windows])
            lost = [
                (w.start, w.end, w.min_jobs or 0, n)
                for w, n in zip(windows, found, strict=True)
                if n < (w.min_jobs or 0)
            ]
        coverage.append(CoverageStatus(key, tuple(ranges), gaps, sum(stored), tuple(lost)))
    runs = read_runs(location, ledger_as_of)
    return DatasetStatus(
        dataset=location.display,
        jobs=jobs,
        partitions=len(partitions),
        files=files,
        coverage=tuple(coverage),
        open_jobs=dict(sorted(states.items())),
        not_found=not_found,
        runs=len(runs),
        last_run=runs[-1] if runs else None,
        running=read_holder(location) if as_of is None else None,
        bytes=size,
        version=jobs_table.version() if jobs_table is not None else None,
        committed=committed,
    )


class _StoredJobs:
    """Counts of stored jobs per listing filter and creation-time range, from one scan."""

    def __init__(self, table: DeltaTable) -> None:
        data = query(
            table,
            "SELECT tag, queue_id, state, creation_time FROM t WHERE creation_time IS NOT NULL",
        )
        self._tags = np.asarray(pc.cast(data["tag"], pa.string()).to_numpy(zero_copy_only=False))
        self._queues = np.asarray(
            pc.cast(data["queue_id"], pa.string()).to_numpy(zero_copy_only=False)
        )
        self._states = np.asarray(
            pc.cast(data["state"], pa.string()).to_numpy(zero_copy_only=False)
        )
        self._times = pc.cast(data["creation_time"], pa.int64()).to_numpy()
        self._sorted: dict[CoverageKey, np.ndarray] = {}

    def count(self, key: CoverageKey, spans: Sequence[tuple[datetime, datetime]]) -> list[int]:
        """Stored jobs of ``key``'s filter created in each ``[start, end)`` of ``spans``."""
        times = self._sorted.get(key)
        if times is None:
            mask = self._tags == key.tag
            if key.queue is not None:
                mask &= self._queues == key.queue
            if key.states is not None:
                mask &= np.isin(self._states, key.states.split(","))
            times = self._sorted[key] = np.sort(self._times[mask])
        bounds = np.array([[_micros(a), _micros(b)] for a, b in spans], dtype=np.int64).reshape(
            -1, 2
        )
        found = np.searchsorted(times, bounds[:, 1]) - np.searchsorted(times, bounds[:, 0])
        return [int(n) for n in found]


def _micros(moment: datetime) -> int:
    return int((moment - _EPOCH) / timedelta(microseconds=1))


def check_layout(location: Location) -> None:
    """Refuse a directory that holds the plain-Parquet layout of cijobs_analytics 0.1.

    Raises:
        StoreError: the location is a file, or holds the old layout; the message says what
            to do.
    """
    if not location.is_local:
        return
    root = location.path
    if root.exists() and not root.is_dir():
        raise StoreError(f"{location} is a file, not a dataset directory")
    old_jobs = (root / JOBS_TABLE).is_dir() and not (root / JOBS_TABLE / "_delta_log").is_dir()
    if old_jobs or any((root / name).exists() for name in _OLD_LAYOUT):
        raise StoreError(
            f"{location} holds a dataset in the plain-Parquet layout of cijobs_analytics 0.1, "
            "which this version neither reads nor changes; export into a new location "
            "(cijobs export --dataset NEW_DIR --since ...) and remove the old one when done "
            "(its Parquet files stay readable with DuckDB or pandas meanwhile)"
        )


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _holder(holder: dict[str, object]) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
