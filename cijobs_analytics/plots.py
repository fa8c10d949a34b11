"""matplotlib figures from the report frames: one function per report, each returns a Figure.

The figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so they
hold no global state, render with the Agg canvas in a thread or a server, and are freed when
dropped. matplotlib is imported on the first call, not with the package.

Every figure labels its axes with units, notes that times are UTC, stays readable with many
groups (the largest groups and an "other" band, legends outside the plot, horizontal bars that
grow with the row count) and says "no jobs in range" when its frame is empty.

Example::

    fig = cj.plots.failures(cj.reports.failures(con, by="queue_id"))
    fig.savefig("failures.png")
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import QueryError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["EMPTY_TEXT", "backlog", "errors", "failures", "latency", "media", "throughput"]

#: What a figure says when its frame holds no rows.
EMPTY_TEXT = "no jobs in range"

_TIME_AXIS = "period start (UTC)"
_OTHER = "other"
_WIDTH = 11.0
_MAX_LABEL = 60
_REPORT_COLUMNS = {
    "throughput": ("period", "jobs", "succeeded", "failed", "media_minutes"),
    "failures": ("jobs", "finished", "failed", "failure_rate", "top_code"),
    "latency": (
        "p50_queue_wait_s",
        "p90_queue_wait_s",
        "p50_processing_s",
        "p90_processing_s",
        "p99_processing_s",
        "median_speed_x",
    ),
    "errors": ("code", "message", "jobs", "example_job_id"),
    "backlog": ("period", "created", "finished", "open"),
    "media": ("resolution", "video_codec", "jobs", "media_minutes"),
}


def throughput(df: pd.DataFrame, *, top: int = 10) -> Figure:
    """Jobs per period, stacked by group, above the succeeded and failed counts.

    Args:
        df: a frame from :func:`cijobs_analytics.reports.throughput`.
        top: how many of the largest groups get their own band; the rest share "other".

    Returns:
        A Figure with two axes sharing the time axis.

    Raises:
        QueryError: ``df`` lacks the report's columns, or ``top`` is not positive.
    """
    by = _group_column(df, "throughput")
    _check_top(top, "throughput")
    fig = _figure(_WIDTH, 6.5)
    upper, lower = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    step = _period_label(df["period"]) if len(df) else "period"
    upper.set_title(_text(f"Jobs created per {step}" + (f" by {by}" if by else "")))
    upper.set_ylabel(f"jobs per {step}")
    lower.set_ylabel(f"jobs per {step}")
    lower.set_xlabel(_TIME_AXIS)
    if df.empty:
        _say_empty(upper)
        _say_empty(lower)
        return fig
    if by:
        wide = df.pivot_table(
            index="period", columns=by, values="jobs", aggfunc="sum", dropna=False
        ).fillna(0)
        wide.columns = [_label(c) for c in wide.columns]
        wide = _top_columns(wide, top)
        colors = _colors(len(wide.columns), other=_OTHER in wide.columns)
        upper.stackplot(
            _steps(wide.index),
            [_hold(wide[c]) for c in wide.columns],
            labels=[_text(c) for c in wide.columns],
            colors=colors,
            step="post",
        )
        upper.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), title=_text(by), fontsize="small"
        )
    else:
        upper.step(_steps(df["period"]), _hold(df["jobs"]), where="post", label="jobs")
    totals = df.groupby("period", sort=True)[["succeeded", "failed"]].sum()
    times = _steps(totals.index)
    lower.step(
        times, _hold(totals["succeeded"]), where="post", color="tab:green", label="succeeded"
    )
    lower.step(times, _hold(totals["failed"]), where="post", color="tab:red", label="failed")
    lower.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    _time_axis(lower)
    return fig


def failures(df: pd.DataFrame, *, top: int = 30) -> Figure:
    """Failure rate per group as horizontal bars, annotated with failed / finished.

    Args:
        df: a frame from :func:`cijobs_analytics.reports.failures`.
        top: how many groups to draw (the report's order: most failed first).

    Returns:
        A Figure with one axes.

    Raises:
        QueryError: ``df`` lacks the report's columns, or ``top`` is not positive.
    """
    by = _group_column(df, "failures")
    _check_top(top, "failures")
    shown = df.head(top)
    fig = _figure(_WIDTH, _bar_height(len(shown)))
    ax = fig.subplots()
    ax.set_title(_text("Failure rate" + (f" by {by}" if by else "") + _more(df, shown)))
    ax.set_xlabel("failure rate (% of finished jobs)")
    ax.set_ylabel(_text(by or "jobs"))
    if shown.empty:
        _say_empty(ax)
        return fig
    labels = [_label(v) for v in shown[by]] if by else ["all jobs"]
    rates = (shown["failure_rate"].astype(float) * 100).fillna(0).to_numpy()
    positions = list(range(len(shown)))
    ax.barh(positions, rates, color="tab:red")
    ax.set_yticks(positions, labels=labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(100.0, float(rates.max()) if len(rates) else 0.0) * 1.15)
    for pos, rate, failed, finished in zip(
        positions, rates, shown["failed"], shown["finished"], strict=True
    ):
        ax.annotate(
            f"{int(failed)}/{int(finished)}",
            (rate, pos),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
        )
    return fig


def latency(df: pd.DataFrame, *, top: int = 30) -> Figure:
    """Processing-time and queue-wait percentiles per group as horizontal bars.

    Args:
        df: a frame from :func:`cijobs_analytics.reports.latency`.
        top: how many groups to draw.

    Returns:
        A Figure with two axes: processing time (p50, p90, p99) and queue wait (p50, p90).

    Raises:
        QueryError: ``df`` lacks the report's columns, or ``top`` is not positive.
    """
    by = _group_column(df, "latency")
    _check_top(top, "latency")
    shown = df.head(top)
    fig = _figure(_WIDTH, _bar_height(len(shown)))
    left, right = fig.subplots(1, 2, sharey=True)
    fig.suptitle(_text("Latency" + (f" by {by}" if by else "") + _more(df, shown)))
    left.set_xlabel("processing time (s)")
    right.set_xlabel("queue wait (s)")
    left.set_ylabel(_text(by or "jobs"))
    if shown.empty:
        _say_empty(left)
        _say_empty(right)
        return fig
    labels = [_label(v) for v in shown[by]] if by else ["all jobs"]
    for ax, series in (
        (left, ("p50_processing_s", "p90_processing_s", "p99_processing_s")),
        (right, ("p50_queue_wait_s", "p90_queue_wait_s")),
    ):
        height = 0.8 / len(series)
        for i, column in enumerate(series):
            positions = [p + (i - (len(series) - 1) / 2) * height for p in range(len(shown))]
            values = shown[column].astype(float).fillna(0).to_numpy()
            ax.barh(positions, values, height=height, label=column.split("_")[0])
        _log_scale_if_wide(ax, shown[list(series)])
        ax.legend(
            loc="lower left",
            bbox_to_anchor=(0.0, 1.0),
            ncols=len(series),
            fontsize="small",
            frameon=False,
        )
    left.set_yticks(list(range(len(shown))), labels=labels)
    left.invert_yaxis()
    return fig


def _log_scale_if_wide(ax: Axes, values: pd.DataFrame) -> None:
    """Use a log x axis when the positive values span more than two decades.

    Processing times run from a second (MediaInfo) to hours (SuperResolution); on a linear
    axis every short job type is an invisible sliver next to the slowest one.
    """
    positive = values.astype(float).to_numpy().ravel()
    positive = positive[positive > 0]
    if positive.size and positive.max() / positive.min() > 100:
        ax.set_xscale("log")
        ax.set_xlabel(f"{ax.get_xlabel()}, log scale")


def errors(df: pd.DataFrame) -> Figure:
    """Failed jobs per (code, message) as horizontal bars, most frequent first.

    Args:
        df: a frame from :func:`cijobs_analytics.reports.errors`.

    Returns:
        A Figure with one axes.

    Raises:
        QueryError: ``df`` lacks the report's columns.
    """
    _check(df, "errors")
    return _ranked_bars(
        df,
        "jobs",
        lambda row: f"{_plain(row.code)}: {_plain(row.message)}",
        title="Most frequent errors of failed jobs",
        xlabel="failed jobs",
        ylabel="code: message",
        color="tab:red",
    )


def backlog(df: pd.DataFrame) -> Figure:
    """Jobs open at each period's end, with jobs created and finished per period.

    Args:
        df: a frame from :func:`cijobs_analytics.reports.backlog`.

    Returns:
        A Figure with one axes.

    Raises:
        QueryError: ``df`` lacks the report's columns.
    """
    _check(df, "backlog")
    fig = _figure(_WIDTH, 4.5)
    ax = fig.subplots()
    step = _period_label(df["period"]) if len(df) else "period"
    ax.set_title("Backlog: jobs open at the end of each period")
    ax.set_xlabel(_TIME_AXIS)
    ax.set_ylabel(f"jobs (created / finished per {step})")
    if df.empty:
        _say_empty(ax)
        return fig
    x = _steps(df["period"])
    ax.step(x, _hold(df["created"]), where="post", color="tab:blue", label="created")
    ax.step(x, _hold(df["finished"]), where="post", color="tab:green", label="finished")
    ax.step(x, _hold(df["open"]), where="post", color="black", linewidth=2, label="open at end")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    _time_axis(ax)
    return fig


def media(df: pd.DataFrame) -> Figure:
    """Media minutes per resolution class and video codec as horizontal bars.

    Args:
        df: a frame from :func:`cijobs_analytics.reports.media`.

    Returns:
        A Figure with one axes.

    Raises:
        QueryError: ``df`` lacks the report's columns.
    """
    _check(df, "media")
    return _ranked_bars(
        df,
        "media_minutes",
        lambda row: f"{row.resolution} / {_plain(row.video_codec)}",
        title="Media processed by resolution class and video codec",
        xlabel="media minutes",
        ylabel="resolution / codec",
        color="tab:purple",
    )


def _ranked_bars(
    df: pd.DataFrame,
    value: str,
    label: Callable[[Any], str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    color: str,
) -> Figure:
    """One horizontal bar per row of ``df``, in the frame's order, top to bottom."""
    fig = _figure(_WIDTH, _bar_height(len(df)))
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if df.empty:
        _say_empty(ax)
        return fig
    positions = list(range(len(df)))
    ax.barh(positions, df[value].to_numpy(), color=color)
    ax.set_yticks(positions, labels=[_label(label(row)) for row in df.itertuples(index=False)])
    ax.invert_yaxis()
    return fig


def _figure(width: float, height: float) -> Figure:
    """A new Figure with constrained layout, not registered with pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _check(df: pd.DataFrame, report: str) -> None:
    """Refuse a frame that is not what ``reports.<report>`` returns."""
    if not isinstance(df, pd.DataFrame):
        raise QueryError(f"plots.{report} takes a DataFrame, got {type(df).__name__}")
    missing = [c for c in _REPORT_COLUMNS[report] if c not in df.columns]
    if missing:
        raise QueryError(
            f"plots.{report} needs a frame from reports.{report}; "
            f"it lacks the column(s) {', '.join(missing)}"
        )


def _check_top(top: int, report: str) -> None:
    """Refuse a ``top`` that is not a positive integer."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise QueryError(f"plots.{report}: top must be a positive integer, got {top!r}")


def _group_column(df: pd.DataFrame, report: str) -> str | None:
    """The ``by`` column of a report frame, or None when the report was not grouped."""
    _check(df, report)
    known = set(_REPORT_COLUMNS[report])
    extra = [c for c in df.columns if c not in known]
    return str(extra[0]) if extra else None


def _say_empty(ax: Axes) -> None:
    """Write the empty-range notice in the middle of ``ax``."""
    ax.text(
        0.5,
        0.5,
        EMPTY_TEXT,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize="large",
        color="gray",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _time_axis(ax: Axes) -> None:
    """Concise UTC date ticks on ``ax``'s x axis."""
    from datetime import UTC

    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    # matplotlib.dates ships without annotations for these two constructors.
    locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]


def _periods(values: pd.Series) -> list[Any]:
    """Periods as UTC datetimes matplotlib's date axis takes."""
    return [pd.Timestamp(v).tz_convert("UTC").to_pydatetime() for v in values]


def _steps(periods: pd.Series | pd.Index) -> list[Any]:
    """Period starts as UTC datetimes, plus the end of the last period.

    A post-step line drawn through period starts would stop where the last period begins;
    the extra point gives the last period its width.
    """
    times = _periods(pd.Series(periods))
    unique = sorted(set(times))
    step = min((b - a for a, b in pairwise(unique)), default=timedelta(hours=1))
    return [*times, times[-1] + step] if times else times


def _hold(values: pd.Series) -> list[float]:
    """Series values with the last repeated, to pair with :func:`_steps`."""
    numbers = [float(v) for v in values]
    return [*numbers, numbers[-1]] if numbers else numbers


def _period_label(periods: pd.Series) -> str:
    """A name for the spacing of a period column ("1h", "1d"), from its smallest step."""
    unique = pd.Series(sorted(set(periods)))
    if len(unique) < 2:
        return "period"
    step = pd.Timedelta(unique.diff().dropna().min()).to_pytimedelta()
    for unit, length in (("w", timedelta(weeks=1)), ("d", timedelta(days=1))):
        if step % length == timedelta(0):
            return f"{step // length}{unit}"
    if step % timedelta(hours=1) == timedelta(0):
        return f"{step // timedelta(hours=1)}h"
    return f"{max(1, step // timedelta(minutes=1))}min"


def _top_columns(wide: pd.DataFrame, top: int) -> pd.DataFrame:
    """Keep the ``top`` largest columns (by total) and sum the rest into "other"."""
    order = wide.sum().sort_values(ascending=False, kind="stable").index
    if len(order) <= top:
        return wide[list(order)]
    kept = wide[list(order[:top])].copy()
    kept[_OTHER] = wide[list(order[top:])].sum(axis=1)
    return kept


def _colors(n: int, *, other: bool) -> list[Any]:
    """Distinct colours for ``n`` bands; the "other" band, when present, is grey."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 10 else "tab20"]
    colors: list[Any] = [palette(i % palette.N) for i in range(n)]
    if other:
        colors[-1] = "lightgray"
    return colors


def _bar_height(rows: int) -> float:
    """A figure height that gives each horizontal bar room for its label."""
    return max(3.0, 1.6 + 0.32 * rows)


def _more(df: pd.DataFrame, shown: pd.DataFrame) -> str:
    """A title suffix saying how many rows were left out."""
    hidden = len(df) - len(shown)
    return f" (top {len(shown)}; {hidden} more not shown)" if hidden > 0 else ""


def _plain(value: object) -> str:
    """A cell value as text; nulls become "(none)"."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):  # type: ignore[call-overload]
        return "(none)"
    return str(value)


def _label(value: object) -> str:
    """A category label: text, shortened, drawable (see :func:`_text`)."""
    text = _plain(value)
    if len(text) > _MAX_LABEL:
        text = text[: _MAX_LABEL - 1] + "…"
    return _text(text)


def _text(value: str) -> str:
    """Make ``value`` safe to draw: ``$`` literal (no mathtext), missing glyphs as ``?``.

    Error messages of the service are often Chinese; the default font has no CJK glyphs and
    matplotlib would warn once per character. The HTML report keeps the full text.
    """
    glyphs = _font_glyphs()
    drawable = "".join(ch if ord(ch) in glyphs or ch in "\n\t" else "?" for ch in value)
    return drawable.replace("$", r"\$")


@functools.cache
def _font_glyphs() -> frozenset[int]:
    """The code points the default sans-serif font can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))
    return frozenset(FT2Font(path).get_charmap())
