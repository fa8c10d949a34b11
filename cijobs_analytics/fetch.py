"""The fetch engine: every job of a time range, fast, complete and de-duplicated.

One DescribeMediaJobs query returns at most 100 jobs, pages sequentially with ``nextToken``,
filters only by creation time (exclusive bounds, whole seconds) and may be throttled. So the
engine splits the work the API cannot page in parallel:

1. One :class:`~cijobs_analytics.windows.Slice` per (tag, queue) covers the whole range; coarse
   slices cost one request when they turn out empty.
2. A worker pages a slice in ascending creation order. When a full page shows that the rest of
   the slice is busy, the worker keeps what it has read (everything before the second of the
   page's last row), and hands the rest to the pool as smaller sub-slices
   (:func:`~cijobs_analytics.windows.plan_split`). Busy sub-slices split again in their turn.
3. Every request of the run, retries included, passes one shared
   :class:`~cijobs_analytics.ratelimit.TokenBucket`: a ``SlowDown`` answer cuts its rate, which
   then climbs back and probes slowly, so a run not told the service's limit settles just
   under it. The client retries throttled requests until throttling has persisted for its
   ``throttle_timeout`` (300 s by default), so throttling slows a run down, never ends it.
4. Each finished slice is filtered back to its exact ``[start, end)`` (the wire bounds are
   widened by a second because the service's bounds are exclusive) and streamed out;
   :func:`iter_jobs` drops any job already seen.

Memory stays flat: a slice holds a few pages of rows at most, at most ``2 * workers`` slices are
in flight, and results stream to the caller as slices finish (in no particular order).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._pool import DaemonPool
from ._progress import ProgressBar
from ._request_args import check_states, check_workers
from ._text import plural
from ._times import TimeLike
from .errors import CIJobsError, ResponseParseError, StoreError
from .ratelimit import TokenBucket
from .schema import JOBS_SCHEMA
from .windows import Slice, check_names, check_range, plan_split, seed_slices, wire_bounds

if TYPE_CHECKING:
    from .client import CIClient, Page

__all__ = [
    "PAGE_SIZE",
    "FetchStats",
    "SliceResult",
    "TokenBucket",
    "fetch_jobs",
    "fetch_to_parquet",
    "iter_jobs",
    "iter_slices",
]

log = logging.getLogger(__name__)

#: Rows asked for per page: the API's maximum.
PAGE_SIZE = 100
#: Pages one slice should need; a busier rest is handed on. Smaller means more parallelism
#: but more half-empty last pages (each leaf slice wastes about half a page).
TARGET_PAGES = 6

#: Rows per Parquet row group written by :func:`fetch_to_parquet`.
ROW_GROUP_ROWS = 10_000

_UTC_US = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class SliceResult:
    """The jobs of one fully paged slice.

    Attributes:
        slice: the (tag, queue, ``[start, end)``) covered; every job of it is in ``table``.
        table: the jobs created in ``[slice.start, slice.end)``, in ``JOBS_SCHEMA``, each
            ``job_id`` once.
        pages: pages read for this slice.
        requests: HTTP requests made for them, retries included.
        retries: requests beyond the first per page.
        recovered_pages: pages that parsed only after the stray-``</Message>`` repair.
    """

    slice: Slice
    table: pa.Table
    pages: int
    requests: int
    retries: int
    recovered_pages: int


@dataclass
class FetchStats:
    """Running totals of one fetch, updated as slices finish.

    Attributes:
        jobs: distinct jobs delivered.
        pages: pages read.
        requests: HTTP requests made, retries included.
        retries: requests that repeated an earlier one.
        throttled: ``SlowDown`` (or 429/503) answers received.
        recovered_pages: pages repaired from the stray-``</Message>`` typo.
        slices: slices fully paged.
        elapsed_s: wall time of the run so far.
    """

    jobs: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    recovered_pages: int = 0
    slices: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """One line for a log or a terminal."""
        rate = self.jobs / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return (
            f"{plural(self.jobs, 'job')} in {self.elapsed_s:.1f} s ({rate:.0f} jobs/s): "
            f"{plural(self.requests, 'request')} for {plural(self.pages, 'page')} over "
            f"{plural(self.slices, 'slice')}, {plural(self.retries, 'retry', 'retries')}, "
            f"{self.throttled} throttled, {plural(self.recovered_pages, 'recovered page')}"
        )


class _CancelledError(CIJobsError):
    """Raised inside a worker once the run has been stopped; never leaves the engine."""


class _RunLimiter:
    """The run's rate limiter, which also stops a worker before its next request on cancel."""

    def __init__(self, bucket: TokenBucket, stop: threading.Event) -> None:
        self.bucket = bucket
        self.stop = stop

    def acquire(self) -> None:
        if self.stop.is_set():
            raise _CancelledError("the fetch was stopped")
        self.bucket.acquire()
        if self.stop.is_set():
            raise _CancelledError("the fetch was stopped")

    def throttled(self, retry_after: float | None = None) -> None:
        self.bucket.throttled(retry_after)


@dataclass(frozen=True)
class _Outcome:
    result: SliceResult
    handoff: tuple[Slice, ...]


def iter_slices(
    client: CIClient,
    start: TimeLike,
    end: TimeLike,
    *,
    tags: Iterable[str] | None = None,
    queue_ids: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    workers: int = 8,
    qps: float | None = None,
    progress: bool = False,
    stats: FetchStats | None = None,
) -> Iterator[SliceResult]:
    """Fetch ``[start, end)`` slice by slice; yield each slice as soon as it is fully paged.

    For each (tag, queue) the yielded slices partition ``[start, end)`` exactly, empty ones
    included, so a caller can record what was covered. Slices arrive in completion order.

    Args:
        client: the client to send requests with; shared by the worker threads.
        start: the inclusive lower bound of creation time (aware datetime or ISO string).
        end: the exclusive upper bound of creation time.
        tags: job types to fetch; None means the 19 documented ones. Other strings are sent
            as given, for types the service adds later.
        queue_ids: queues to fetch one by one; None means no queue filter.
        states: job states to keep (``Success``, ``Failed``, ...) as a list or one
            comma-separated string, checked like ``CIClient.list_jobs``'s; None means all.
        workers: how many requests may be in flight at once.
        qps: the most requests per second for the whole run; None for no limit until the
            service throttles. Either way the run slows down when the service answers
            ``SlowDown`` and settles at the rate it allows; how long throttling may persist
            before the run fails is the client's ``throttle_timeout``.
        progress: show a progress bar (on a terminal or in Jupyter, and not when ``CI`` is set).
        stats: totals to update as the run goes (the caller reads them afterwards).

    Returns:
        An iterator of :class:`SliceResult`; arguments are checked before it is returned.

    Raises:
        ConfigError: an argument is invalid (raised at once, before any request).
        APIError: the service refused a request (auth, argument) or kept failing after the
            client's retries; the remaining work is cancelled first. A
            :class:`~cijobs_analytics.errors.ThrottledError` means no request got through for
            the client's ``throttle_timeout`` seconds.
        TransportError: the network kept failing after the client's retries.
        ResponseParseError: the service's paging made no progress: it handed back a
            ``NextToken`` a slice had already used, or a full page of jobs the slice had
            already read. Paging such a service on would never end, so the run stops.
    """
    seeds = seed_slices(start, end, tags, queue_ids)
    state_list = check_states(states)
    check_workers(workers)
    bucket = TokenBucket(qps)
    return _run(client, seeds, state_list, workers, bucket, progress, stats or FetchStats())


def iter_jobs(
    client: CIClient,
    start: TimeLike,
    end: TimeLike,
    tags: Iterable[str] | None = None,
    queue_ids: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    workers: int = 8,
    qps: float | None = None,
    progress: bool = True,
    *,
    stats: FetchStats | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the jobs created in ``[start, end)`` as record batches, each job once.

    Batches arrive as slices finish, in no particular order; each is in ``JOBS_SCHEMA``.
    Arguments are those of :func:`iter_slices`.

    Returns:
        An iterator of non-empty ``pyarrow.RecordBatch`` objects.

    Raises:
        ConfigError: an argument is invalid (raised at once).
        APIError: see :func:`iter_slices`.
        TransportError: see :func:`iter_slices`.
        ResponseParseError: see :func:`iter_slices`.

    Example:
        >>> for batch in iter_jobs(client, "2026-11-02", "2026-11-07"):  # doctest: +SKIP
        ...     writer.write_batch(batch)
    """
    run_stats = stats if stats is not None else FetchStats()
    results = iter_slices(
        client,
        start,
        end,
        tags=tags,
        queue_ids=queue_ids,
        states=states,
        workers=workers,
        qps=qps,
        progress=progress,
        stats=run_stats,
    )
    return _distinct_batches(results, run_stats)


def fetch_jobs(
    client: CIClient,
    start: TimeLike,
    end: TimeLike,
    tags: Iterable[str] | None = None,
    queue_ids: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    workers: int = 8,
    qps: float | None = None,
    progress: bool = True,
    *,
    stats: FetchStats | None = None,
) -> pa.Table:
    """Fetch every job created in ``[start, end)`` into one table, each job once.

    A job created exactly at ``start`` is in, one created exactly at ``end`` is out. Rows are
    sorted by creation time, then job id. Arguments are those of :func:`iter_slices`.

    Returns:
        A ``pyarrow.Table`` in ``JOBS_SCHEMA``.

    Raises:
        ConfigError: an argument is invalid.
        APIError: see :func:`iter_slices`.
        TransportError: see :func:`iter_slices`.
        ResponseParseError: see :func:`iter_slices`.

    Example:
        >>> table = fetch_jobs(client, "2026-11-02T00:00:00Z", "2026-11-07T00:00:00Z",
        ...                    tags=["Transcode"], qps=20)  # doctest: +SKIP
    """
    batches = list(
        iter_jobs(client, start, end, tags, queue_ids, states, workers, qps, progress, stats=stats)
    )
    table = pa.Table.from_batches(batches, schema=JOBS_SCHEMA)
    if table.num_rows == 0:
        return table
    return table.sort_by([("creation_time", "ascending"), ("job_id", "ascending")])


def fetch_to_parquet(
    client: CIClient,
    path: str | os.PathLike[str],
    start: TimeLike,
    end: TimeLike,
    tags: Iterable[str] | None = None,
    queue_ids: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    workers: int = 8,
    qps: float | None = None,
    progress: bool = True,
    *,
    stats: FetchStats | None = None,
) -> FetchStats:
    """Fetch ``[start, end)`` into one zstd Parquet file, streaming, replaced atomically.

    Batches go to ``<path>.tmp`` as they arrive (rows are in no particular order) and the file
    is renamed over ``path`` only when the fetch completed; on any error the temporary file is
    removed and ``path`` is left as it was. The schema metadata records what was asked for.
    Other arguments are those of :func:`iter_slices`.

    Returns:
        The run's totals (``stats`` if given); ``jobs`` is the number of rows written.

    Raises:
        ConfigError: an argument is invalid (before any request or file).
        StoreError: the file cannot be written.
        APIError: see :func:`iter_slices`.
        TransportError: see :func:`iter_slices`.
        ResponseParseError: see :func:`iter_slices`.
    """
    target = Path(path)
    run_stats = stats if stats is not None else FetchStats()
    batches = iter_jobs(
        client, start, end, tags, queue_ids, states, workers, qps, progress, stats=run_stats
    )
    lower, upper = check_range(start, end)
    request = {
        "bucket": getattr(client, "bucket", None),
        "region": getattr(client, "region", None),
        "start": lower.isoformat(),
        "end": upper.isoformat(),
        "tags": None if tags is None else check_names(tags, "tags"),
        "queue_ids": None if queue_ids is None else check_names(queue_ids, "queue_ids"),
        "states": check_states(states),
    }
    metadata = dict(JOBS_SCHEMA.metadata or {})
    metadata[b"cijobs_analytics.fetch"] = json.dumps(request, sort_keys=True).encode()
    schema = JOBS_SCHEMA.with_metadata(metadata)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            # Slices are small; gathering them into row groups of ROW_GROUP_ROWS keeps the
            # file readable fast and the writer's per-call cost low, at bounded memory.
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in batches:
                pending.append(batch)
                rows += batch.num_rows
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, schema=schema))
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, schema=schema))
        os.replace(tmp, target)
    except CIJobsError:
        # TransportError is an OSError too; it is the fetch's failure, not the file's.
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return run_stats


# -- the run --------------------------------------------------------------------------------


def _run(
    client: CIClient,
    seeds: list[Slice],
    states: list[str] | None,
    workers: int,
    bucket: TokenBucket,
    progress: bool,
    stats: FetchStats,
) -> Iterator[SliceResult]:
    """Drive the worker pool; the generator behind :func:`iter_slices`."""
    stop = threading.Event()
    limiter = _RunLimiter(bucket, stop)
    todo: deque[Slice] = deque(seeds)
    running: dict[Future[_Outcome], Slice] = {}
    max_parts = max(2, workers)
    bar = ProgressBar(progress)
    # Totals add up when one FetchStats is passed to several runs.
    base_throttled, base_elapsed = stats.throttled, stats.elapsed_s
    started = time.perf_counter() - base_elapsed
    pool = DaemonPool(workers, name="cijobs-fetch")
    finished = False
    try:
        while todo or running:
            # Twice the workers in flight keeps every thread busy while the caller consumes.
            while todo and len(running) < 2 * workers:
                piece = todo.popleft()
                task = pool.submit(_fetch_slice, client, piece, states, limiter, max_parts)
                running[task] = piece
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for task in done:
                del running[task]
                outcome = task.result()
                todo.extend(outcome.handoff)
                _account(stats, outcome.result)
                stats.throttled = base_throttled + bucket.throttle_count
                stats.elapsed_s = time.perf_counter() - started
                bar.update(
                    outcome.result.table.num_rows,
                    pages=stats.pages,
                    retries=stats.retries,
                    requests=stats.requests,
                    elapsed_s=stats.elapsed_s,
                )
                yield outcome.result
        finished = True
    finally:
        stop.set()
        bucket.close()
        for task in running:
            task.cancel()
        pool.shutdown()
        stats.throttled = base_throttled + bucket.throttle_count
        stats.elapsed_s = time.perf_counter() - started
        bar.close()
        if finished:
            log.info("fetch finished: %s", stats.summary())


def _account(stats: FetchStats, result: SliceResult) -> None:
    stats.jobs += result.table.num_rows
    stats.pages += result.pages
    stats.requests += result.requests
    stats.retries += result.retries
    stats.recovered_pages += result.recovered_pages
    stats.slices += 1


def _fetch_slice(
    client: CIClient,
    piece: Slice,
    states: list[str] | None,
    limiter: _RunLimiter,
    max_parts: int,
) -> _Outcome:
    """Page one slice in a worker thread; hand its busy rest on when a page shows one."""
    wire_start, wire_end = wire_bounds(piece.start, piece.end)
    end = piece.end
    handoff: tuple[Slice, ...] = ()
    tables: list[pa.Table] = []
    rows_seen = pages = requests = recovered = 0
    token: str | None = None
    # Cutting and stopping early both trust ascending order; a page out of order (a service
    # that ignores orderByTime) turns them off and the slice is simply paged to its end.
    ordered = True
    previous: datetime | None = None
    # A service that hands back a used token, or the same full page again, would be paged
    # forever (an unordered page turns off the early stop), so the slice checks progress.
    used_tokens: set[str] = set()
    seen_ids: set[str] = set()
    while True:
        page = client.list_jobs(
            piece.tag,
            queue_id=piece.queue_id,
            states=states,
            start=wire_start,
            end=wire_end,
            order="Asc",
            size=PAGE_SIZE,
            next_token=token,
            limiter=limiter,
        )
        pages += 1
        requests += page.attempts
        recovered += int(page.recovered)
        inside = _within(page.table, piece.start, piece.end)
        tables.append(inside)
        rows_seen += inside.num_rows
        token = page.next_token
        if not token or page.table.num_rows == 0:
            break
        _check_progress(piece, page, used_tokens, seen_ids)
        created = page.table.column("creation_time")
        if ordered and not _ascending(created, previous):
            ordered = False
            log.warning(
                "page %d of %s %s..%s is not in ascending creation order; paging it whole",
                pages,
                piece.tag,
                piece.start.isoformat(),
                piece.end.isoformat(),
            )
        latest = pc.max(created).as_py()
        previous = latest if latest is not None else previous
        if not ordered or latest is None:
            continue
        if latest >= piece.end:
            # Ascending order: nothing the slice wants can follow a row past its end.
            break
        plan = plan_split(
            piece,
            rows_seen=rows_seen,
            last_creation=latest,
            page_size=PAGE_SIZE,
            target_pages=TARGET_PAGES,
            max_parts=max_parts,
        )
        if plan is not None:
            end, handoff = plan.cut, plan.parts
            break
    leaf = piece.with_bounds(piece.start, end)
    table = _distinct(_within(_concat(tables), leaf.start, leaf.end), set())
    result = SliceResult(
        slice=leaf,
        table=table,
        pages=pages,
        requests=requests,
        retries=requests - pages,
        recovered_pages=recovered,
    )
    return _Outcome(result=result, handoff=handoff)


def _check_progress(piece: Slice, page: Page, tokens: set[str], ids: set[str]) -> None:
    """Refuse a page that leads nowhere new; ``tokens`` and ``ids`` (the slice's so far) grow.

    Raises:
        ResponseParseError: the page's ``NextToken`` was already used in this slice, or the
            page is full and holds no job the slice has not read yet.
    """
    page_ids = page.table.column("job_id").to_pylist()
    known = len(ids)
    ids.update(page_ids)
    where = f"{piece.tag} {piece.start.isoformat()}..{piece.end.isoformat()}"
    if page.next_token in tokens:
        problem = f"the service repeated NextToken {page.next_token!r} while paging {where}"
    elif len(page_ids) >= PAGE_SIZE and len(ids) == known:
        problem = f"a full page of {where} (NextToken {page.next_token!r}) held only known jobs"
    else:
        tokens.add(page.next_token or "")
        return
    raise ResponseParseError(
        f"{problem}; paging stopped as it would never end", None, page.request_id
    )


# -- tables ---------------------------------------------------------------------------------


def _concat(tables: Sequence[pa.Table]) -> pa.Table:
    if not tables:
        return JOBS_SCHEMA.empty_table()
    return pa.concat_tables(tables).combine_chunks()


def _ascending(created: pa.ChunkedArray, floor: datetime | None) -> bool:
    """Whether creation times never decrease, from ``floor`` (the previous page's last) on."""
    values = created.drop_null().combine_chunks()
    if len(values) == 0:
        return True
    if floor is not None and values[0].as_py() < floor:
        return False
    if len(values) < 2:
        return True
    return bool(pc.all(pc.greater_equal(values[1:], values[:-1])).as_py())


def _within(table: pa.Table, start: datetime, end: datetime) -> pa.Table:
    """The rows created in ``[start, end)``; rows without a creation time cannot be placed."""
    created = table.column("creation_time")
    low = pa.scalar(start, type=_UTC_US)
    high = pa.scalar(end, type=_UTC_US)
    return table.filter(pc.and_(pc.greater_equal(created, low), pc.less(created, high)))


def _distinct(table: pa.Table, seen: set[str]) -> pa.Table:
    """The rows whose ``job_id`` is not in ``seen`` yet (first one wins); ``seen`` grows."""
    keep: list[int] = []
    for i, job_id in enumerate(table.column("job_id").to_pylist()):
        if job_id not in seen:
            seen.add(job_id)
            keep.append(i)
    if len(keep) == table.num_rows:
        return table
    return table.take(pa.array(keep, type=pa.int64()))


def _distinct_batches(
    results: Iterator[SliceResult], stats: FetchStats
) -> Iterator[pa.RecordBatch]:
    """Drop jobs an earlier slice delivered; keep ``stats.jobs`` a count of distinct jobs."""
    seen: set[str] = set()
    for result in results:
        table = _distinct(result.table, seen)
        stats.jobs -= result.table.num_rows - table.num_rows
        for batch in table.combine_chunks().to_batches():
            if batch.num_rows:
                yield batch
