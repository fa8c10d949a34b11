"""The incremental export: keep a Delta Lake table of every job current.

The API filters on creation time only, and a job created on Monday can turn from Running to
Failed on Tuesday. So each run of :func:`export`

1. **discovers** what the coverage ledger lacks for each (tag, queue): the first run covers
   ``since`` to now; later runs go from the watermark (the end of the covered range) to now,
   starting ``overlap`` (10 minutes) behind it for jobs the service lists late, and fill any gap
   a failed run left;
2. **refreshes** the jobs still open in the dataset (Submitted, Running, Pause) at the least
   cost: by id through ``get_jobs`` (10 ids a request) or by re-reading only the covered windows
   that hold them, whichever takes fewer requests (window costs come from the ledger's counts);
   an open job the service no longer knows gets ``not_found_at`` and is kept, and is not looked
   up again (a later listing that returns it replaces the mark);
3. **upserts** the fetched rows into the ``jobs`` Delta table every ``batch_rows`` rows, in one
   MERGE commit each (see :func:`._tables.upsert` for which row wins: an unchanged row is not
   rewritten), then records the covered windows in the coverage ledger, in a later commit;
4. **maintains** the tables: partitions that reached ``MAX_PARTITION_FILES`` files are compacted
   (OPTIMIZE) and files removed more than ``RETENTION`` ago are deleted (VACUUM), so the file
   count and the bytes on storage stay bounded while time travel works within the retention.

A run holds the dataset's lock (:mod:`._lock`) throughout and records itself in the runs ledger
whether it succeeds or fails. A ``kill -9`` at any moment leaves the last committed version:
files a killed commit wrote are referenced by no version and are removed by a later vacuum, and
the ledger claims a window only once the commit holding its rows is made. The next run fetches
what the ledger does not yet hold.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ._ledger import (
    COVERAGE_TABLE,
    CoverageKey,
    Window,
    add_coverage,
    append_run,
    covered_ranges,
    ledger_tables,
    missing_ranges,
    read_coverage,
    read_runs,
)
from ._location import Location, resolve_location
from ._lock import open_lock
from ._merge import conform
from ._plan import (
    IDS_PER_REQUEST,
    OpenJob,
    Span,
    choose_windows,
    cross_products,
    in_plan,
    union,
    window_of,
)
from ._request_args import check_workers
from ._status import DatasetStatus, check_layout, read_status
from ._tables import (
    JOBS_TABLE,
    JOBS_TABLE_SCHEMA,
    Maintenance,
    create_table,
    maintain,
    open_table,
    query,
    quote,
    repair,
    upsert,
)
from ._text import plural
from ._times import MAX_SPAN, TimeLike, parse_span, resolve_since, to_utc, utc_now
from .errors import ConfigError, StoreError
from .fetch import SliceResult, iter_slices
from .ratelimit import TokenBucket
from .schema import JOBS_SCHEMA, OPEN_STATES, STATES, TAGS

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from .client import CIClient, ClientStats

__all__ = [
    "DEFAULT_OVERLAP",
    "MAX_PARTITION_FILES",
    "RETENTION",
    "DatasetStatus",
    "ExportResult",
    "export",
    "read_status",
]

logger = logging.getLogger(__name__)

#: How far behind the watermark each run re-reads, for jobs the service lists late.
DEFAULT_OVERLAP = timedelta(minutes=10)
#: Rows buffered before they are merged into the table; bounds the export's memory.
BATCH_ROWS = 20_000
#: Seconds between flushes when rows come slowly, so a long run's progress is kept.
FLUSH_SECONDS = 15.0
#: Covered windows pending before a flush, so a run over sparse ranges records its progress.
FLUSH_WINDOWS = 64
#: Files a partition may hold before the export compacts it (each commit adds about one).
MAX_PARTITION_FILES = 16
#: How long removed files are kept, so ``connect(..., as_of=...)`` can read back this far.
RETENTION = timedelta(days=7)
#: How often a vacuum also looks for files no commit refers to (it lists the whole table).
FULL_VACUUM_EVERY = timedelta(days=1)


@dataclass(frozen=True)
class ExportResult:
    """What one export run did.

    Attributes:
        dataset: the dataset, as given (a directory made absolute, or a URI).
        started: when the run started (UTC).
        finished: when it finished (UTC).
        requests: HTTP requests made, retries included.
        retries: requests that repeated a failed one.
        rows_written: rows in the data files the run's upserts wrote (new, changed, and
            unchanged rows copied from a rewritten file); compaction is counted apart.
        jobs_new: jobs the dataset did not hold before.
        jobs_updated: stored jobs whose row changed (a new state, or marked not found).
        partitions_rewritten: partitions the run's upserts wrote to, each counted once.
        open_jobs: jobs still open in the dataset after the run.
        windows_covered: coverage windows recorded (listing slices fully paged).
        version: the ``jobs`` table version the run left.
        files_compacted: small files merged by the run's compaction.
        rows_compacted: rows the compaction wrote again.
        files_vacuumed: files deleted from storage by the run's vacuum.
        errors: problems that did not stop the run (e.g. rows without a creation time).
    """

    dataset: str
    started: datetime
    finished: datetime
    requests: int
    retries: int
    rows_written: int
    jobs_new: int
    jobs_updated: int
    partitions_rewritten: int
    open_jobs: int
    windows_covered: int
    version: int = 0
    files_compacted: int = 0
    rows_compacted: int = 0
    files_vacuumed: int = 0
    errors: tuple[str, ...] = ()

    @property
    def elapsed_s(self) -> float:
        """Wall time of the run in seconds."""
        return (self.finished - self.started).total_seconds()

    def __str__(self) -> str:
        text = (
            f"export to {self.dataset}: {self.jobs_new} new and {self.jobs_updated} updated "
            "jobs, "
            f"{plural(self.rows_written, 'row')} written in "
            f"{plural(self.partitions_rewritten, 'partition')}, "
            f"{plural(self.windows_covered, 'window')} covered, "
            f"{plural(self.open_jobs, 'job')} still open; table version {self.version}; "
            f"{plural(self.requests, 'request')} ({plural(self.retries, 'retry', 'retries')}) "
            f"in {self.elapsed_s:.1f} s"
        )
        if self.files_compacted or self.files_vacuumed:
            text += (
                f"; maintenance: {plural(self.files_compacted, 'file')} compacted, "
                f"{self.files_vacuumed} removed"
            )
        if self.errors:
            text += "; " + "; ".join(self.errors)
        return text


@dataclass
class _Counters:
    rows_written: int = 0
    jobs_new: int = 0
    jobs_updated: int = 0
    days: set[date] = field(default_factory=set)
    windows: int = 0
    version: int = 0
    maintenance: Maintenance = field(default_factory=Maintenance)
    errors: list[str] = field(default_factory=list)

    @property
    def partitions(self) -> int:
        """Partitions written so far, each counted once."""
        return len(self.days)


def export(
    client: CIClient,
    dataset: str | os.PathLike[str],
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: Iterable[str] | None = None,
    queue_ids: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    workers: int = 8,
    qps: float | None = None,
    progress: bool = True,
    *,
    overlap: timedelta | str = DEFAULT_OVERLAP,
    batch_rows: int = BATCH_ROWS,
    storage_options: dict[str, str] | None = None,
    refetch: Sequence[tuple[TimeLike, TimeLike]] | None = None,
) -> ExportResult:
    """Bring a Delta Lake dataset of jobs up to date; safe to run from cron.

    Args:
        client: the client of the bucket and region to export.
        dataset: a local directory, ``s3://bucket/prefix`` or ``cos://bucket-appid/prefix``
            (created on the first run).
        since: where coverage starts: an ISO time or a span back from now (``7d``). Needed on
            the first run; later runs default to where the dataset's coverage starts.
        until: cap the range at this time (default: now).
        tags: job types; None means the 19 documented ones.
        queue_ids: queues to list one by one; None lists every queue at once.
        states: keep only jobs in these states. Coverage is then recorded for that filter only,
            and open jobs are refreshed by id.
        workers: requests in flight at once.
        qps: the most requests per second; None for no limit until the service throttles.
        progress: show progress bars while listing.
        overlap: how far behind the watermark to re-read (a span such as ``10min``).
        batch_rows: rows buffered before they are merged: fewer use less memory and save
            progress more often, more make fewer commits and files.
        storage_options: object-store options for a bucket dataset, on top of the ``AWS_*``
            environment (``s3://``) or the client's credentials and region (``cos://``).
        refetch: creation-time ranges ``(start, end)`` to list again whatever the coverage
            says, e.g. after rows were lost (``cijobs status`` names such ranges).

    Returns:
        An :class:`ExportResult` with the counts and the requests made.

    Raises:
        ConfigError: an argument is invalid, or the first run has no ``since``.
        StoreError: another export holds the lock, or the location holds something else.
        APIError: the service refused a request or kept failing (the run is recorded as
            failed; what was fetched before is kept).
        TransportError: the network kept failing.

    Example:
        >>> result = export(client, "jobs_dataset", since="7d")  # doctest: +SKIP
        >>> print(result)  # doctest: +SKIP
    """
    location = resolve_location(
        dataset, storage_options, region=client.region, credentials=client.credentials
    )
    started = utc_now()
    now = started.replace(microsecond=0)
    lower = _floor(resolve_since(since, now=now)) if since is not None else None
    upper = now + timedelta(seconds=1)
    if until is not None:
        upper = min(upper, _ceil(to_utc(until, name="until")))
    if lower is not None and lower >= upper:
        raise ConfigError(
            f"since ({lower.isoformat()}) is not before the end ({upper.isoformat()})"
        )
    again = _refetch_ranges(refetch, upper)
    lag = parse_span(overlap) if isinstance(overlap, str) else overlap
    if not isinstance(lag, timedelta) or not timedelta(0) <= lag <= MAX_SPAN:
        raise ConfigError(
            f"overlap must be a span such as 10min, at most {MAX_SPAN.days} days, got {overlap!r}"
        )
    tag_list = sorted(set(TAGS if tags is None else _names(tags, "tags")))
    queue_list = [None] if queue_ids is None else sorted(set(_names(queue_ids, "queue_ids")))
    state_list = None if states is None else sorted(set(_names(states, "states")))
    if state_list is not None and not set(state_list) <= set(STATES):
        raise ConfigError(f"states must be among {', '.join(STATES)}, got {state_list}")
    check_workers(workers)
    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise ConfigError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    check_layout(location)
    if lower is None and open_table(location, COVERAGE_TABLE) is None:
        raise ConfigError(
            f"{location} has no coverage yet: the first export needs since (e.g. --since 7d)"
        )
    arguments = {
        "since": None if since is None else str(since),
        "until": None if until is None else str(until),
        "tags": None if tags is None else tag_list,
        "queue_ids": None if queue_ids is None else queue_list,
        "states": state_list,
        "overlap_s": lag.total_seconds(),
        "workers": workers,
        "qps": qps,
        "refetch": [[a.isoformat(), b.isoformat()] for a, b in again] or None,
    }
    lock = open_lock(location)
    run = _Run(client, location, state_list, workers, qps, progress, batch_rows, lock.check)
    with lock:
        before = client.stats
        try:
            run.prepare()
            keys = [
                CoverageKey(client.bucket, client.region, tag, queue, run.states_key)
                for tag in tag_list
                for queue in queue_list
            ]
            lost = [(_day_start(d), _day_start(d) + timedelta(days=1)) for d in run.lost_days]
            plan = run.plan_discovery(keys, lower, upper, lag, [*again, *lost])
            open_jobs = run.scan_open(tag_list, queue_list)
            run.discover(plan)
            # A listing under a state filter cannot see a job that left those states, so then
            # every open job is refreshed, even one whose creation time this run lists.
            stale = [j for j in open_jobs if state_list is not None or not in_plan(j, plan)]
            run.refresh(stale, plan)
            run.flush()
            run.maintain()
            remaining = len(run.scan_open(tag_list, queue_list))
        except BaseException as exc:
            run.abort(exc, started, arguments, client.stats, before)
            raise
        after = client.stats
        counts = run.counts
        done = counts.maintenance
        result = ExportResult(
            dataset=location.display,
            started=started,
            finished=utc_now(),
            requests=after.requests - before.requests,
            retries=after.retries - before.retries,
            rows_written=counts.rows_written,
            jobs_new=counts.jobs_new,
            jobs_updated=counts.jobs_updated,
            partitions_rewritten=counts.partitions,
            open_jobs=remaining,
            windows_covered=counts.windows,
            version=counts.version,
            files_compacted=done.files_compacted,
            rows_compacted=done.rows_rewritten,
            files_vacuumed=done.files_vacuumed,
            errors=tuple(counts.errors),
        )
        lock.check()
        append_run(location, _run_row(result, done.full_vacuum, arguments))
    logger.info("%s", result)
    return result


class _Run:
    """The state of one export run while it holds the lock."""

    def __init__(
        self,
        client: CIClient,
        location: Location,
        states: list[str] | None,
        workers: int,
        qps: float | None,
        progress: bool,
        batch_rows: int,
        check_lock: Callable[[], None],
    ) -> None:
        self.client = client
        self.batch_rows = batch_rows
        self.location = location
        self.states = states
        self.states_key = ",".join(states) if states is not None else None
        self.workers = workers
        self.qps = qps
        self.progress = progress
        self.check_lock = check_lock
        self.counts = _Counters()
        self.ledger: list[Window] = []
        self.runs: list[dict[str, Any]] = []
        self._table: DeltaTable | None = None
        self.lost_days: list[date] = []
        self._rows: list[pa.Table] = []
        self._buffered = 0
        self._missing: dict[date, set[str]] = defaultdict(set)
        self._marked_at: datetime | None = None
        self._windows: list[Window] = []
        self._last_flush = time.monotonic()

    @property
    def table(self) -> DeltaTable:
        """The ``jobs`` table (opened by :meth:`prepare`)."""
        if self._table is None:
            raise StoreError("the export has not opened the jobs table")
        return self._table

    def prepare(self) -> None:
        """Open (or create) the jobs table, drop files gone from storage, read the ledgers."""
        self._table = open_table(self.location, JOBS_TABLE) or create_table(
            self.location, JOBS_TABLE, JOBS_TABLE_SCHEMA, partition_by=["date"]
        )
        self.lost_days = repair(self.table)
        if self.lost_days:
            logger.warning(
                "data files of %d days were missing from storage and are dropped from the "
                "table; their jobs are listed again: %s",
                len(self.lost_days),
                ", ".join(d.isoformat() for d in self.lost_days),
            )
        self.counts.version = self.table.version()
        self.ledger = read_coverage(self.location)
        self.runs = read_runs(self.location)

    def plan_discovery(
        self,
        keys: Sequence[CoverageKey],
        lower: datetime | None,
        upper: datetime,
        lag: timedelta,
        again: Sequence[tuple[datetime, datetime]] = (),
    ) -> dict[CoverageKey, list[tuple[datetime, datetime]]]:
        """The creation-time ranges each key must list this run (``again`` whatever is covered)."""
        if lower is None:
            starts = [w.start for w in self.ledger]
            if not starts:
                raise ConfigError(
                    f"{self.location} has no coverage yet: the first export needs since "
                    "(e.g. --since 7d)"
                )
            lower = min(starts)
        plan: dict[CoverageKey, list[tuple[datetime, datetime]]] = {}
        for key in keys:
            covered = covered_ranges(self.ledger, key)
            ranges = missing_ranges(covered, lower, upper)
            if covered and lag > timedelta(0):
                mark = min(covered[-1][1], upper)
                ranges.append((max(lower, mark - lag), mark))
            plan[key] = union(r for r in [*ranges, *again] if r[0] < r[1])
        return plan

    def scan_open(self, tags: Sequence[str], queues: Sequence[str | None]) -> list[OpenJob]:
        """The stored jobs of this run's tags and queues that are open and not marked gone."""
        where = [
            f"state IN ({', '.join(quote(s) for s in OPEN_STATES)})",
            "not_found_at IS NULL",
            f"tag IN ({', '.join(quote(t) for t in tags)})",
        ]
        if list(queues) != [None]:
            where.append(f"queue_id IN ({', '.join(quote(q) for q in queues if q)})")
        table = query(
            self.table,
            "SELECT job_id, tag, queue_id, creation_time FROM t WHERE "  # noqa: S608 - quoted
            + " AND ".join(where),
            JOBS_TABLE_SCHEMA,
        )
        return [
            OpenJob(row["job_id"], row["tag"], row["queue_id"], row["creation_time"])
            for row in table.to_pylist()
        ]

    def discover(self, plan: dict[CoverageKey, list[tuple[datetime, datetime]]]) -> None:
        """List every planned range, grouping keys that need the same ranges into one call."""
        groups: dict[tuple[tuple[datetime, datetime], ...], list[CoverageKey]] = defaultdict(list)
        for key, ranges in plan.items():
            if ranges:
                groups[tuple(ranges)].append(key)
        logger.info(
            "listing %d ranges over %d listing filters",
            sum(len(spans) * len(keys) for spans, keys in groups.items()),
            sum(len(keys) for keys in groups.values()),
        )
        for spans, keys in sorted(groups.items(), key=lambda item: item[0][0]):
            for tags, queues in cross_products(keys):
                for start, end in spans:
                    logger.debug("listing [%s, %s) for %s", start, end, ", ".join(tags))
                    self._consume(self._list(start, end, tags, queues, self.states))

    def refresh(
        self,
        jobs: Sequence[OpenJob],
        plan: dict[CoverageKey, list[tuple[datetime, datetime]]],
    ) -> None:
        """Bring the open jobs up to date, by id or by window, whichever costs fewer requests."""
        if not jobs:
            return
        by_window: dict[Span, list[OpenJob]] = defaultdict(list)
        costs: dict[Span, int] = {}
        loose: list[OpenJob] = []
        for job in jobs:
            key = CoverageKey(
                self.client.bucket,
                self.client.region,
                job.tag,
                None if self._queues(plan) == [None] else job.queue_id,
                self.states_key,
            )
            window = None if self.states is not None else window_of(self.ledger, key, job)
            if window is None:
                loose.append(job)
                continue
            span = (key, window.start, window.end)
            by_window[span].append(job)
            costs[span] = window.cost
        reread = choose_windows(by_window, costs, loose)
        by_id = loose + [job for span, js in by_window.items() if span not in reread for job in js]
        logger.info(
            "refreshing %d open jobs: %d by id, %d windows re-read",
            len(jobs),
            len(by_id),
            len(reread),
        )
        for key, start, end in sorted(reread, key=lambda s: (s[0].tag, s[1])):
            # Whatever of the window this run's discovery already lists needs no second read.
            for lo, hi in missing_ranges(plan.get(key, []), start, end):
                queues = None if key.queue is None else [key.queue]
                self._consume(self._list(lo, hi, [key.tag], queues, None))
        self._lookup(by_id)

    def flush(self) -> None:
        """Merge the buffered rows into the table, then record the covered windows."""
        if self._rows or self._missing:
            incoming = pa.concat_tables(self._rows) if self._rows else JOBS_SCHEMA.empty_table()
            logger.debug("flushing %d rows, then %d windows", incoming.num_rows, len(self._windows))
            outcome = upsert(
                self.table,
                incoming,
                not_found=dict(self._missing),
                marked_at=self._marked_at,
                before_commit=self.check_lock,
            )
            self._rows = []
            self._missing = defaultdict(set)
            self.counts.version = outcome.version
            self.counts.rows_written += outcome.rows_written
            self.counts.jobs_new += outcome.jobs_new
            self.counts.jobs_updated += outcome.jobs_updated
            self.counts.days.update(outcome.days)
            del incoming
            # Hand the batch's buffers back to the OS: the allocator would otherwise keep the
            # peak of every flush.
            pa.default_memory_pool().release_unused()
        self._buffered = 0
        if self._windows:
            self.check_lock()
            self.ledger = add_coverage(self.location, self.ledger, self._windows)
            self.counts.windows += len(self._windows)
            self._windows = []
        self._last_flush = time.monotonic()

    def maintain(self) -> None:
        """Compact partitions grown to many files and vacuum; the ledger tables too."""
        self.check_lock()
        last_full = max(
            (r["finished"] for r in self.runs if r.get("full_vacuum") and r.get("finished")),
            default=None,
        )
        full = last_full is None or utc_now() - last_full >= FULL_VACUUM_EVERY
        done = maintain(
            self.table, max_files=MAX_PARTITION_FILES, retention=RETENTION, full_vacuum=full
        )
        for table in ledger_tables(self.location):
            maintain(
                table,
                max_files=MAX_PARTITION_FILES,
                retention=RETENTION,
                full_vacuum=full,
                partitioned=False,
            )
        self.counts.maintenance = done
        self.counts.version = self.table.version()

    def abort(
        self,
        exc: BaseException,
        started: datetime,
        arguments: dict[str, Any],
        stats: ClientStats,
        before: ClientStats,
    ) -> None:
        """Keep what was fully fetched and record the run as failed; never raises."""
        try:
            if not isinstance(exc, StoreError) and self._table is not None:
                self.flush()
        except Exception:  # the original error is the one to report
            logger.exception("could not save the rows fetched before the failure")
        row = {
            "started": started,
            "finished": utc_now(),
            "status": "failed",
            "requests": stats.requests - before.requests,
            "retries": stats.retries - before.retries,
            "rows": self.counts.rows_written,
            "jobs_new": self.counts.jobs_new,
            "jobs_updated": self.counts.jobs_updated,
            "partitions_rewritten": self.counts.partitions,
            "windows": self.counts.windows,
            "open_jobs": None,
            "version": self.counts.version,
            "errors": f"{type(exc).__name__}: {exc}",
            "arguments": json.dumps(arguments, sort_keys=True),
        }
        try:
            self.check_lock()
            append_run(self.location, row)
        except Exception:  # same: keep the original error
            logger.exception("could not record the failed run")

    def _list(
        self,
        start: datetime,
        end: datetime,
        tags: Sequence[str],
        queues: Sequence[str | None] | None,
        states: Sequence[str] | None,
    ) -> Iterator[SliceResult]:
        return iter_slices(
            self.client,
            start,
            end,
            tags=tags,
            queue_ids=None if queues is None or list(queues) == [None] else list(queues),  # type: ignore[arg-type]
            states=states,
            workers=self.workers,
            qps=self.qps,
            progress=self.progress,
        )

    def _consume(self, results: Iterable[SliceResult]) -> None:
        for result in results:
            piece = result.slice
            self._add_rows(result.table)
            self._windows.append(
                Window(
                    CoverageKey(
                        self.client.bucket,
                        self.client.region,
                        piece.tag,
                        piece.queue_id,
                        self.states_key,
                    ),
                    piece.start,
                    piece.end,
                    result.table.num_rows,
                    result.pages,
                    utc_now(),
                )
            )
            if (
                self._buffered >= self.batch_rows
                or len(self._windows) >= FLUSH_WINDOWS
                or time.monotonic() - self._last_flush > FLUSH_SECONDS
            ):
                self.flush()

    def _lookup(self, jobs: Sequence[OpenJob]) -> None:
        by_tag: dict[str, list[OpenJob]] = defaultdict(list)
        for job in jobs:
            by_tag[job.tag].append(job)
        limiter = TokenBucket(self.qps)
        for tag in sorted(by_tag):
            group = by_tag[tag]
            # A request takes ids of one processing family only; one tag is one family.
            for i in range(0, len(group), IDS_PER_REQUEST * 100):
                chunk = group[i : i + IDS_PER_REQUEST * 100]
                lookup = self.client.get_jobs([job.job_id for job in chunk], limiter=limiter)
                self._add_rows(lookup.table)
                if lookup.missing:
                    self._marked_at = utc_now()
                    days = {job.job_id: job.creation_time.date() for job in chunk}
                    for job_id in lookup.missing:
                        if job_id in days:
                            self._missing[days[job_id]].add(job_id)
                if self._buffered >= self.batch_rows:
                    self.flush()

    def _add_rows(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        rows = conform(table)
        dated = pc.is_valid(rows["creation_time"])
        undated = rows.num_rows - int(pc.sum(pc.cast(dated, pa.int64())).as_py() or 0)
        if undated:
            self.counts.errors.append(f"{undated} jobs without a creation time were not stored")
            rows = rows.filter(dated)
        self._rows.append(rows)
        self._buffered += rows.num_rows

    def _queues(self, plan: dict[CoverageKey, list[tuple[datetime, datetime]]]) -> list[str | None]:
        return sorted({key.queue for key in plan}, key=lambda q: q or "") or [None]


def _names(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    out = list(values)
    if not out or not all(isinstance(v, str) and v.strip() for v in out):
        raise ConfigError(f"{what} must be non-empty strings, got {out!r}")
    return [v.strip() for v in out]


def _refetch_ranges(
    ranges: Sequence[tuple[TimeLike, TimeLike]] | None, upper: datetime
) -> list[tuple[datetime, datetime]]:
    """Check ``refetch`` ranges; whole seconds, capped at ``upper``."""
    out = []
    for item in ranges or ():
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ConfigError(f"refetch takes (start, end) pairs, got {item!r}")
        start = _floor(to_utc(item[0], name="refetch start"))
        end = min(_ceil(to_utc(item[1], name="refetch end")), upper)
        if start >= end:
            raise ConfigError(
                f"refetch range {start.isoformat()} .. {end.isoformat()} is empty: the start "
                "must be before the end (and before now)"
            )
        out.append((start, end))
    return out


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _floor(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _ceil(value: datetime) -> datetime:
    return _floor(value) + timedelta(seconds=1) if value.microsecond else value


def _run_row(result: ExportResult, full_vacuum: bool, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "started": result.started,
        "finished": result.finished,
        "status": "ok",
        "requests": result.requests,
        "retries": result.retries,
        "rows": result.rows_written,
        "jobs_new": result.jobs_new,
        "jobs_updated": result.jobs_updated,
        "partitions_rewritten": result.partitions_rewritten,
        "windows": result.windows_covered,
        "open_jobs": result.open_jobs,
        "version": result.version,
        "files_compacted": result.files_compacted,
        "files_vacuumed": result.files_vacuumed,
        "full_vacuum": full_vacuum,
        "errors": "; ".join(result.errors) or None,
        "arguments": json.dumps(arguments, sort_keys=True),
    }
