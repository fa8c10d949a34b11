"""Canned reports over the ``jobs`` view: how many jobs ran, how fast, what failed and why.

Every function takes a connection from :func:`cijobs_analytics.connect` and the same filters:

* ``since`` / ``until``: creation time in ``[since, until)``; aware datetimes, ISO strings, or
  for ``since`` a span counted back from now (``"7d"``, ``"12h"``).
* ``tags`` / ``queue_ids``: keep only jobs of these tags / queues (a string is one value; None
  or an empty list keeps all).

Every filter value is a bound parameter; the grouping column (``by``) and the period (``freq``)
are looked up in allow-lists (:data:`BY_COLUMNS`, :data:`FREQS`), never pasted from the caller.
Each function returns a pandas DataFrame with a fixed column order and sorted rows; times are
UTC. A range without jobs gives an empty frame with the same columns (``summary`` excepted: it
always has one row).

Example::

    con = cj.connect("jobs_dataset/")
    cj.reports.failures(con, by="queue_id", since="7d", tags=["Transcode"])
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from ._times import TimeLike, resolve_since, to_utc
from .errors import ConfigError, QueryError
from .query import read_frame, read_rows

__all__ = [
    "BY_COLUMNS",
    "FREQS",
    "MAX_PERIODS",
    "RESOLUTION_CLASSES",
    "backlog",
    "errors",
    "failures",
    "latency",
    "media",
    "summary",
    "throughput",
]

#: Columns a report may group by (``by=``); any other value is refused.
BY_COLUMNS: tuple[str, ...] = (
    "audio_codec",
    "bucket",
    "code",
    "format_name",
    "input_bucket",
    "job_level",
    "output_bucket",
    "queue_id",
    "queue_type",
    "region",
    "state",
    "sub_tag",
    "tag",
    "template_id",
    "template_name",
    "video_codec",
    "workflow_id",
    "workflow_name",
)

#: Period lengths a time-series report accepts (``freq=``).
FREQS: dict[str, timedelta] = {
    "1min": timedelta(minutes=1),
    "5min": timedelta(minutes=5),
    "15min": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}

#: A time series longer than this is refused: a coarser ``freq`` says the same in fewer rows.
MAX_PERIODS = 100_000

#: Resolution classes of :func:`media`, by the short side of the first video stream (pixels),
#: so portrait video is classed like its landscape twin. Jobs without video are "audio/none".
RESOLUTION_CLASSES: tuple[tuple[str, int | None], ...] = (
    ("SD", 480),
    ("HD", 720),
    ("FHD", 1080),
    ("QHD", 1440),
    ("4K+", None),
    ("audio/none", None),
)

_FINISHED = "('Success', 'Failed')"
_FINAL = "('Success', 'Failed', 'Cancel')"

# When a job left the backlog. end_time when the service gave one; else the moment an export
# found the open job gone (not_found_at); else, for a final job without times (failed before it
# started, cancelled while queued), the last time known of it. Clamped to creation_time so a
# clock skew never makes a job finish before it exists.
_FINISH_TIME = f"""CASE
        WHEN end_time IS NOT NULL THEN greatest(end_time, creation_time)
        WHEN not_found_at IS NOT NULL THEN greatest(not_found_at, creation_time)
        WHEN state IN {_FINAL} THEN greatest(creation_time, start_time)
    END"""


def throughput(
    con: duckdb.DuckDBPyConnection,
    freq: str = "1h",
    by: str | None = "tag",
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Jobs created per period (and per ``by`` group), with outcomes and media minutes.

    Periods are UTC buckets of ``freq`` (weeks start on Monday) from the first to the last
    period holding a job; every group gets a row in every period, zeros included, so the
    frame plots and rolls as a regular time series.

    Args:
        con: a connection from :func:`cijobs_analytics.connect`.
        freq: one of :data:`FREQS` (``1min`` ... ``1w``).
        by: a column of :data:`BY_COLUMNS`, or None for one series.
        since, until, tags, queue_ids: the filters described in the module docstring.

    Returns:
        Columns ``period`` (UTC), the ``by`` column (when given), ``jobs``, ``succeeded``,
        ``failed``, ``media_minutes`` (sum of ``duration_s`` / 60); sorted by period, group.

    Raises:
        QueryError: an unknown ``by`` or ``freq``, too many periods, or failed SQL.
        ConfigError: a filter value that is not a time, tag or queue id.
    """
    width = _freq(freq)
    group = _group(by)
    where, params = _where(since, until, tags, queue_ids, timed=True)
    lo, hi = _bounds(
        con,
        f"SELECT {_bucket('min(creation_time)', width)}, "  # noqa: S608 - values are bound
        f"{_bucket('max(creation_time)', width)} FROM jobs WHERE {where}",
        params,
        width,
    )
    by_col = f", g.g AS {_ident(by)}" if by else ""
    sql = f"""
WITH j AS (
    SELECT {_bucket("creation_time", width)} AS period, {group} AS g, state, duration_s
    FROM jobs WHERE {where}
), agg AS (
    SELECT period, g, count(*) AS jobs,
        count(*) FILTER (WHERE state = 'Success') AS succeeded,
        count(*) FILTER (WHERE state = 'Failed') AS failed,
        coalesce(sum(duration_s), 0) / 60 AS media_minutes
    FROM j GROUP BY period, g
), periods AS (
    SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?)) AS period
), groups AS (
    SELECT DISTINCT g FROM agg
)
SELECT p.period{by_col},
    coalesce(a.jobs, 0)::BIGINT AS jobs,
    coalesce(a.succeeded, 0)::BIGINT AS succeeded,
    coalesce(a.failed, 0)::BIGINT AS failed,
    coalesce(a.media_minutes, 0)::DOUBLE AS media_minutes
FROM periods AS p CROSS JOIN groups AS g
LEFT JOIN agg AS a ON a.period = p.period AND a.g IS NOT DISTINCT FROM g.g
ORDER BY p.period, g.g NULLS LAST"""  # noqa: S608 - interpolates allow-listed identifiers only; values are bound
    return _frame(con, sql, [*params, lo, hi, width])


def failures(
    con: duckdb.DuckDBPyConnection,
    by: str | None = "tag",
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Failure counts and rates per group, with each group's most frequent failure code.

    Args:
        con: a connection from :func:`cijobs_analytics.connect`.
        by: a column of :data:`BY_COLUMNS`, or None for one overall row.
        since, until, tags, queue_ids: the filters described in the module docstring.

    Returns:
        Columns: the ``by`` column (when given), ``jobs``, ``finished`` (Success + Failed),
        ``failed``, ``failure_rate`` (failed / finished; NaN when nothing finished),
        ``top_code`` (the commonest code of the failed jobs, ties to the smallest; None when
        none failed). Sorted by failed, then jobs (both descending), then group.

    Raises:
        QueryError: an unknown ``by`` or failed SQL.
        ConfigError: a bad filter value.
    """
    group = _group(by)
    where, params = _where(since, until, tags, queue_ids)
    by_col = f"a.g AS {_ident(by)}, " if by else ""
    sql = f"""
WITH j AS (
    SELECT {group} AS g, state, code FROM jobs WHERE {where}
), agg AS (
    SELECT g, count(*) AS jobs,
        count(*) FILTER (WHERE state IN {_FINISHED}) AS finished,
        count(*) FILTER (WHERE state = 'Failed') AS failed
    FROM j GROUP BY g
), top AS (
    SELECT g, code FROM (
        SELECT g, code, count(*) AS n FROM j
        WHERE state = 'Failed' AND code IS NOT NULL GROUP BY g, code
    )
    QUALIFY row_number() OVER (PARTITION BY g ORDER BY n DESC, code) = 1
)
SELECT {by_col}a.jobs::BIGINT AS jobs, a.finished::BIGINT AS finished, a.failed::BIGINT AS failed,
    CASE WHEN a.finished > 0 THEN a.failed / a.finished END::DOUBLE AS failure_rate,
    t.code AS top_code
FROM agg AS a LEFT JOIN top AS t ON a.g IS NOT DISTINCT FROM t.g
ORDER BY a.failed DESC, a.jobs DESC, a.g NULLS LAST"""  # noqa: S608 - interpolates allow-listed identifiers only; values are bound
    return _frame(con, sql, params)


def latency(
    con: duckdb.DuckDBPyConnection,
    by: str | None = "tag",
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Queue-wait and processing-time percentiles and the median speed per group.

    Percentiles interpolate linearly (``quantile_cont``, pandas' default). Jobs without the
    times a measure needs (not started, not finished) are left out of that measure only.

    Args:
        con: a connection from :func:`cijobs_analytics.connect`.
        by: a column of :data:`BY_COLUMNS`, or None for one overall row.
        since, until, tags, queue_ids: the filters described in the module docstring.

    Returns:
        Columns: the ``by`` column (when given), ``p50_queue_wait_s``, ``p90_queue_wait_s``,
        ``p50_processing_s``, ``p90_processing_s``, ``p99_processing_s``, ``median_speed_x``
        (media seconds per processing second); sorted by group.

    Raises:
        QueryError: an unknown ``by`` or failed SQL.
        ConfigError: a bad filter value.
    """
    group = _group(by)
    where, params = _where(since, until, tags, queue_ids)
    by_col = f"{group} AS {_ident(by)}, " if by else ""
    # One overall row has no group to order by; HAVING keeps an empty range an empty frame.
    grouping = f"GROUP BY {group} ORDER BY {group} NULLS LAST" if by else "HAVING count(*) > 0"
    sql = f"""
SELECT {by_col}
    quantile_cont(queue_wait_s, 0.5)::DOUBLE AS p50_queue_wait_s,
    quantile_cont(queue_wait_s, 0.9)::DOUBLE AS p90_queue_wait_s,
    quantile_cont(processing_s, 0.5)::DOUBLE AS p50_processing_s,
    quantile_cont(processing_s, 0.9)::DOUBLE AS p90_processing_s,
    quantile_cont(processing_s, 0.99)::DOUBLE AS p99_processing_s,
    quantile_cont(speed_x, 0.5)::DOUBLE AS median_speed_x
FROM jobs WHERE {where}
{grouping}"""  # noqa: S608 - interpolates allow-listed identifiers only; values are bound
    return _frame(con, sql, params)


def errors(
    con: duckdb.DuckDBPyConnection,
    limit: int = 20,
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """The commonest (code, message) pairs of failed jobs.

    Args:
        con: a connection from :func:`cijobs_analytics.connect`.
        limit: how many pairs to return (a positive integer).
        since, until, tags, queue_ids: the filters described in the module docstring.

    Returns:
        Columns ``code``, ``message``, ``jobs``, ``example_job_id`` (the newest failed job with
        that pair); sorted by jobs (descending), code, message.

    Raises:
        QueryError: a bad ``limit`` or failed SQL.
        ConfigError: a bad filter value.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueryError(f"limit must be a positive integer, got {limit!r}")
    where, params = _where(since, until, tags, queue_ids)
    sql = f"""
SELECT code, message, count(*)::BIGINT AS jobs,
    first(job_id ORDER BY creation_time DESC NULLS LAST, job_id DESC) AS example_job_id
FROM jobs WHERE state = 'Failed' AND {where}
GROUP BY code, message
ORDER BY jobs DESC, code NULLS LAST, message NULLS LAST
LIMIT ?"""  # noqa: S608 - interpolates allow-listed identifiers only; values are bound
    return _frame(con, sql, [*params, limit])


def backlog(
    con: duckdb.DuckDBPyConnection,
    freq: str = "1h",
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Jobs created and finished per period, and how many were open at each period's end.

    ``since``/``until`` choose the periods (the buckets covering ``[since, until)``; without
    them, the first to the last period with an event), not the jobs: a job created before
    ``since`` and still running counts as open. A job is finished at its ``end_time``; failing
    that, when an export found it gone (``not_found_at``); a final job (Success, Failed,
    Cancel) without an end time is finished at its last known time. Any other job is open.

    Args:
        con: a connection from :func:`cijobs_analytics.connect`.
        freq: one of :data:`FREQS`.
        since, until: the periods to report (see above).
        tags, queue_ids: keep only jobs of these tags / queues.

    Returns:
        Columns ``period`` (UTC), ``created``, ``finished``, ``open``; sorted by period. Empty
        when no job matches ``tags``/``queue_ids``.

    Raises:
        QueryError: an unknown ``freq``, too many periods, or failed SQL.
        ConfigError: a bad filter value.
    """
    width = _freq(freq)
    start, end = _range(since, until)
    where, params = _where(None, None, tags, queue_ids, timed=True)
    jobs_cte = f"SELECT creation_time AS c, {_FINISH_TIME} AS f FROM jobs WHERE {where}"  # noqa: S608 - fixed SQL and bound values
    # The last period is the one holding until's last instant, hence the microsecond.
    last = end - timedelta(microseconds=1) if end is not None else None
    lo, hi = _bounds(
        con,
        f"WITH j AS ({jobs_cte}) "  # noqa: S608 - fixed SQL and bound values
        f"SELECT {_bucket('coalesce(?::TIMESTAMPTZ, min(c))', width)}, "
        f"{_bucket('coalesce(?::TIMESTAMPTZ, max(coalesce(f, c)))', width)} "
        "FROM j HAVING count(*) > 0",
        [*params, start, last],
        width,
    )
    sql = f"""
WITH j AS ({jobs_cte}
), ev AS (
    SELECT {_bucket("c", width)} AS b, 1 AS dc, 0 AS df FROM j
    UNION ALL
    SELECT {_bucket("f", width)} AS b, 0 AS dc, 1 AS df FROM j WHERE f IS NOT NULL
), per AS (
    SELECT b, sum(dc) AS created, sum(df) AS finished FROM ev GROUP BY b
), periods AS (
    SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?)) AS period
), carried AS (
    SELECT coalesce(sum(created - finished), 0) AS n FROM per WHERE b < ?::TIMESTAMPTZ
)
SELECT p.period,
    coalesce(per.created, 0)::BIGINT AS created,
    coalesce(per.finished, 0)::BIGINT AS finished,
    (c.n + sum(coalesce(per.created, 0) - coalesce(per.finished, 0))
        OVER (ORDER BY p.period))::BIGINT AS open
FROM periods AS p CROSS JOIN carried AS c LEFT JOIN per ON per.b = p.period
ORDER BY p.period"""  # noqa: S608 - interpolates allow-listed identifiers only; values are bound
    return _frame(con, sql, [*params, lo, hi, width, lo])


def media(
    con: duckdb.DuckDBPyConnection,
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Jobs and media minutes by resolution class and video codec.

    The class comes from the short side of the first video stream (``RESOLUTION_CLASSES``):
    up to 480 px SD, 720 HD, 1080 FHD, 1440 QHD, above 4K+; no video is "audio/none".

    Args:
        con: a connection from :func:`cijobs_analytics.connect`.
        since, until, tags, queue_ids: the filters described in the module docstring.

    Returns:
        Columns ``resolution``, ``video_codec``, ``jobs``, ``media_minutes``; sorted by class
        (SD first), jobs (descending), codec.

    Raises:
        QueryError: failed SQL.
        ConfigError: a bad filter value.
    """
    where, params = _where(since, until, tags, queue_ids)
    cases = []
    for rank, (_name, limit) in enumerate(RESOLUTION_CLASSES[:-2]):
        cases.append(f"WHEN short_side <= {limit} THEN {rank}")
    rank_4k = len(RESOLUTION_CLASSES) - 2
    names = ", ".join(f"'{name}'" for name, _ in RESOLUTION_CLASSES)
    sql = f"""
WITH j AS (
    SELECT nullif(least(video_width, video_height), 0) AS short_side, video_codec, duration_s
    FROM jobs WHERE {where}
), ranked AS (
    SELECT CASE WHEN short_side IS NULL THEN {rank_4k + 1} {" ".join(cases)}
        ELSE {rank_4k} END AS rank, video_codec, duration_s
    FROM j
)
SELECT ([{names}])[rank + 1] AS resolution, video_codec, count(*)::BIGINT AS jobs,
    (coalesce(sum(duration_s), 0) / 60)::DOUBLE AS media_minutes
FROM ranked GROUP BY rank, video_codec
ORDER BY rank, jobs DESC, video_codec NULLS LAST"""  # noqa: S608 - interpolates allow-listed identifiers only; values are bound
    return _frame(con, sql, params)


def summary(
    con: duckdb.DuckDBPyConnection,
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """The headline figures of a range, as one row (zeros when it holds no job).

    Args:
        con: a connection from :func:`cijobs_analytics.connect`.
        since, until, tags, queue_ids: the filters described in the module docstring.

    Returns:
        One row: ``jobs``, ``finished``, ``failed``, ``failure_rate`` (NaN when nothing
        finished), ``media_hours`` (sum of ``duration_s`` / 3600), ``p90_processing_s``,
        ``first_created``, ``last_created`` (UTC; NaT when empty).

    Raises:
        QueryError: failed SQL.
        ConfigError: a bad filter value.
    """
    where, params = _where(since, until, tags, queue_ids)
    sql = f"""
SELECT count(*)::BIGINT AS jobs,
    count(*) FILTER (WHERE state IN {_FINISHED})::BIGINT AS finished,
    count(*) FILTER (WHERE state = 'Failed')::BIGINT AS failed,
    CASE WHEN finished > 0 THEN failed / finished END::DOUBLE AS failure_rate,
    (coalesce(sum(duration_s), 0) / 3600)::DOUBLE AS media_hours,
    quantile_cont(processing_s, 0.9)::DOUBLE AS p90_processing_s,
    min(creation_time) AS first_created,
    max(creation_time) AS last_created
FROM jobs WHERE {where}"""  # noqa: S608 - interpolates allow-listed identifiers only; values are bound
    return _frame(con, sql, params)


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pd.DataFrame:
    """Run a report query; text columns come back as pandas' ``str`` dtype even when all null.

    DuckDB hands an all-null VARCHAR column to pandas as ``object``; one dtype per column,
    whatever the rows, keeps concatenation and comparison of reports predictable.
    """
    frame = read_frame(con, sql, params)
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and all(v is None or isinstance(v, str) for v in values):
            frame[column] = values.astype("str")
    return frame


#: Where period buckets start (a Monday, as DuckDB's ``time_bucket`` counts weeks), in µs.
_BUCKET_ORIGIN_US = 946_857_600_000_000  # 2000-01-03T00:00:00Z


def _bucket(expr: str, width: timedelta) -> str:
    """SQL for the UTC period of ``width`` holding the TIMESTAMPTZ ``expr``.

    Every period is a whole number of minutes, so it is plain arithmetic on epoch
    microseconds: the same buckets as ``time_bucket(width, expr, 'UTC')`` without its time-zone
    lookups, which made the time-series reports 14x slower over millions of jobs. Only
    integers from :data:`FREQS` are pasted into the text.
    """
    step = int(width / timedelta(microseconds=1))
    origin = _BUCKET_ORIGIN_US
    return (
        f"to_timestamp((floor((epoch_us({expr}) - {origin}) / {step}) * {step} + {origin}) / 1e6)"
    )


def _freq(freq: str) -> timedelta:
    """The period length of an allowed ``freq``."""
    if not isinstance(freq, str) or freq not in FREQS:
        raise QueryError(f"freq must be one of {', '.join(FREQS)}; got {freq!r}")
    return FREQS[freq]


def _group(by: str | None) -> str:
    """The SQL expression to group by: an allowed column, or a constant for one group."""
    if by is None:
        return "NULL"
    return _ident(by)


def _ident(by: str | None) -> str:
    """Quote an allowed grouping column as an identifier."""
    if not isinstance(by, str) or by not in BY_COLUMNS:
        raise QueryError(f"by must be None or one of {', '.join(BY_COLUMNS)}; got {by!r}")
    return f'"{by}"'


def _range(
    since: TimeLike | None, until: TimeLike | None
) -> tuple[datetime | None, datetime | None]:
    """Resolve ``since``/``until`` to aware UTC datetimes; ``since`` must come first."""
    start = resolve_since(since) if since is not None else None
    end = to_utc(until, name="until") if until is not None else None
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    return start, end


def _values(values: str | Sequence[str] | None, name: str) -> list[str] | None:
    """Normalise a tags / queue_ids filter to a list of strings (None: no filter)."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{name} must be strings, got {type(item).__name__} {item!r}")
    return items or None


def _where(
    since: TimeLike | None,
    until: TimeLike | None,
    tags: str | Sequence[str] | None,
    queue_ids: str | Sequence[str] | None,
    *,
    timed: bool = False,
) -> tuple[str, list[Any]]:
    """A WHERE condition over ``jobs`` with ``?`` placeholders, and the values they bind.

    Args:
        timed: also drop jobs without a creation time (time series need one).
    """
    start, end = _range(since, until)
    clauses = ["TRUE"]
    params: list[Any] = []
    if timed:
        clauses.append("creation_time IS NOT NULL")
    if start is not None:
        clauses.append("creation_time >= ?")
        params.append(start)
    if end is not None:
        clauses.append("creation_time < ?")
        params.append(end)
    for column, values in (("tag", tags), ("queue_id", queue_ids)):
        items = _values(values, column + "s")
        if items is not None:
            clauses.append(f"list_contains(?::VARCHAR[], {column})")
            params.append(items)
    return " AND ".join(clauses), params


def _bounds(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any], width: timedelta
) -> tuple[datetime | None, datetime | None]:
    """Run a query for the first and last period of a series and check the series' length."""
    rows = read_rows(con, sql, params)
    if not rows or rows[0][0] is None or rows[0][1] is None:
        return None, None
    lo, hi = rows[0][0], rows[0][1]
    if hi < lo:
        return None, None
    periods = (hi - lo) // width + 1
    if periods > MAX_PERIODS:
        raise QueryError(
            f"{periods} periods of {width} are more than {MAX_PERIODS}; "
            "use a coarser freq or a narrower since/until"
        )
    return lo, hi
