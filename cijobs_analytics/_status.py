"""What ``cijobs status`` shows: coverage and gaps, open jobs, the last export run.

Reading the status takes no lock and changes nothing; it reads the ledgers, the footers of the
partition files and the state columns of the jobs.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import _partitions as parts
from ._ledger import LEDGER_DIR, CoverageKey, covered_ranges, read_coverage, read_runs
from ._lock import read_lock_holder
from .errors import StoreError
from .schema import OPEN_STATES

__all__ = ["CoverageStatus", "DatasetStatus", "read_status"]

_OPEN = pa.array(OPEN_STATES, pa.string())


@dataclass(frozen=True)
class CoverageStatus:
    """The coverage of one listing filter: its covered ranges and the gaps between them.

    Attributes:
        key: bucket, region, tag, queue (None: every queue) and states (None: every state).
        ranges: the covered ``[start, end)`` ranges, oldest first.
        gaps: the holes between them, which the next export fills.
        jobs: jobs the covered windows held when they were read.
    """

    key: CoverageKey
    ranges: tuple[tuple[datetime, datetime], ...]
    gaps: tuple[tuple[datetime, datetime], ...]
    jobs: int


@dataclass(frozen=True)
class DatasetStatus:
    """A dataset at a glance.

    Attributes:
        dataset: the directory.
        jobs: job rows stored (a job counts twice only while a rewrite is interrupted).
        partitions: partition directories holding files.
        files: partition files.
        coverage: one entry per listing filter ever exported.
        open_jobs: stored jobs per open state, not counting those marked not found.
        not_found: open jobs the service no longer knows.
        runs: export runs recorded.
        last_run: the last run's ledger row, or None.
        running: who holds the export lock right now, or None.
    """

    dataset: Path
    jobs: int
    partitions: int
    files: int
    coverage: tuple[CoverageStatus, ...]
    open_jobs: dict[str, int] = field(default_factory=dict)
    not_found: int = 0
    runs: int = 0
    last_run: dict[str, Any] | None = None
    running: dict[str, object] | None = None

    @property
    def gaps(self) -> int:
        """How many gaps the coverage has over all filters."""
        return sum(len(c.gaps) for c in self.coverage)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings) for monitoring."""
        return {
            "dataset": str(self.dataset),
            "jobs": self.jobs,
            "partitions": self.partitions,
            "files": self.files,
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
                }
                for c in self.coverage
            ],
            "gaps": self.gaps,
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
            f"dataset {self.dataset}: {self.jobs} jobs in {self.partitions} partitions "
            f"({self.files} files)"
        ]
        if self.running:
            lines.append(f"export running: {_holder(self.running)}")
        open_total = sum(self.open_jobs.values())
        detail = ", ".join(f"{n} {s}" for s, n in sorted(self.open_jobs.items()))
        lines.append(f"open jobs: {open_total}" + (f" ({detail})" if detail else ""))
        if self.not_found:
            lines.append(f"open jobs the service no longer knows: {self.not_found}")
        lines.append(f"coverage ({len(self.coverage)} filters, {self.gaps} gaps):")
        for c in self.coverage:
            queue = c.key.queue or "all queues"
            states = f" states {c.key.states}" if c.key.states else ""
            span = ", ".join(f"{_iso(a)} .. {_iso(b)}" for a, b in c.ranges)
            lines.append(f"  {c.key.tag} / {queue}{states}: {span} ({c.jobs} jobs)")
            lines.extend(f"    gap {_iso(a)} .. {_iso(b)}" for a, b in c.gaps)
        if self.last_run is None:
            lines.append("last run: none recorded")
        else:
            r = self.last_run
            lines.append(
                f"last run: {r['status']} {_iso(r['started'])} .. {_iso(r['finished'])}: "
                f"{r['requests']} requests ({r['retries']} retries), {r['rows']} rows written, "
                f"{r['jobs_new']} new, {r['jobs_updated']} updated"
            )
            if r.get("errors"):
                lines.append(f"  errors: {r['errors']}")
        lines.append(f"runs recorded: {self.runs}")
        return "\n".join(lines)


def read_status(dataset: str | Path) -> DatasetStatus:
    """Read the status of a dataset without changing it.

    Args:
        dataset: the dataset directory.

    Returns:
        A :class:`DatasetStatus`; ``str()`` of it is the text ``cijobs status`` prints.

    Raises:
        StoreError: the directory is missing, not a dataset, or holds foreign files.
    """
    root = Path(dataset)
    if not root.is_dir():
        raise StoreError(f"{root} is not a directory; export into it first (cijobs export)")
    if not (root / parts.JOBS_DIR).exists() and not (root / LEDGER_DIR).exists():
        raise StoreError(f"{root} is not a cijobs dataset (no jobs/ and no {LEDGER_DIR}/)")
    partitions = parts.list_partitions(root)
    jobs = 0
    states: Counter[str] = Counter()
    not_found = 0
    for files in partitions.values():
        for path in files:
            try:
                jobs += pq.ParquetFile(path).metadata.num_rows
            except (OSError, ValueError) as exc:
                raise StoreError(f"{path} cannot be read ({exc})") from exc
        table = parts.dedupe(
            parts.read_partition(files, ("job_id", "state", "fetched_at", "not_found_at"))
        )
        open_rows = table.filter(pc.fill_null(pc.is_in(table["state"], value_set=_OPEN), False))
        gone = pc.is_valid(open_rows["not_found_at"])
        not_found += pc.sum(pc.cast(gone, "int64")).as_py() or 0
        states.update(open_rows.filter(pc.invert(gone))["state"].to_pylist())
    ledger = read_coverage(root)
    keys: dict[CoverageKey, int] = defaultdict(int)
    for window in ledger:
        keys[window.key] += window.jobs
    coverage = []
    for key in sorted(
        keys, key=lambda k: (k.bucket, k.region, k.tag, k.queue or "", k.states or "")
    ):
        ranges = covered_ranges([w for w in ledger if w.key == key], key)
        gaps = tuple((a[1], b[0]) for a, b in itertools.pairwise(ranges))
        coverage.append(CoverageStatus(key, tuple(ranges), gaps, keys[key]))
    runs = read_runs(root)
    return DatasetStatus(
        dataset=root,
        jobs=jobs,
        partitions=len(partitions),
        files=sum(len(f) for f in partitions.values()),
        coverage=tuple(coverage),
        open_jobs=dict(states),
        not_found=int(not_found),
        runs=len(runs),
        last_run=runs[-1] if runs else None,
        running=read_lock_holder(root),
    )


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _holder(holder: dict[str, object]) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
