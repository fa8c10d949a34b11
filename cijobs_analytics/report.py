"""One self-contained HTML report: headline figures, the plots and the tables of the reports.

The file needs nothing beside itself: styles are inline and every figure is a PNG data URI, so
it can be mailed, attached to a ticket or opened offline. Every value from the data is
HTML-escaped. The file is written to a temporary name and renamed into place, so a reader (or
a web server) never sees half a report.

Example::

    write_report("jobs_dataset/", "report.html", since="7d", tags=["Transcode"])
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from . import plots, reports
from ._times import TimeLike, resolve_since, to_utc, utc_now
from .errors import ConfigError
from .query import connect

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["choose_freq", "write_report"]

# The period of the time-series sections, by the length of the range: about 24 to 300 points.
_FREQ_BY_SPAN = (
    (timedelta(days=2), "1h"),
    (timedelta(days=21), "6h"),
    (timedelta(days=200), "1d"),
)

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem;
       color: #1d1d1f; max-width: 1200px; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
.headline { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1.5rem 0; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem 1.2rem; min-width: 10rem; }
.figure .value { font-size: 1.8rem; font-weight: 600; } .figure .label { color: #666; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f5f5f7; }
"""


def write_report(
    source: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tags: str | Sequence[str] | None = None,
    queue_ids: str | Sequence[str] | None = None,
) -> Path:
    """Write a self-contained HTML report of the jobs in a range.

    Args:
        source: a connection from :func:`cijobs_analytics.connect`, or a dataset directory or
            Parquet file to open (and close again).
        out_path: where to write the HTML file; missing parent directories are created.
        since, until, tags, queue_ids: the report filters (see :mod:`cijobs_analytics.reports`);
            a span ``since`` ("7d") is resolved once, so every section covers the same range.

    Returns:
        The path written.

    Raises:
        QueryError: the dataset cannot be read.
        ConfigError: a bad filter value, or the file cannot be written.
    """
    start = resolve_since(since) if since is not None else None
    end = to_utc(until, name="until") if until is not None else None

    def render() -> str:
        if isinstance(source, duckdb.DuckDBPyConnection):
            return _render(source, start, end, tags, queue_ids)
        with connect(source) as con:
            return _render(con, start, end, tags, queue_ids)

    return _write_atomically(Path(out_path), render)


def choose_freq(first: datetime | None, last: datetime | None) -> str:
    """The period for a report's time series: about 24 to 300 periods across the range.

    Args:
        first, last: the range; None (an empty range) gives ``"1h"``.

    Returns:
        A key of :data:`cijobs_analytics.reports.FREQS`.
    """
    if first is None or last is None:
        return "1h"
    span = last - first
    for limit, freq in _FREQ_BY_SPAN:
        if span <= limit:
            return freq
    return "1w"


def _render(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None,
    end: datetime | None,
    tags: str | Sequence[str] | None,
    queue_ids: str | Sequence[str] | None,
) -> str:
    """Run every report and assemble the page."""
    filters: dict[str, Any] = {"since": start, "until": end, "tags": tags, "queue_ids": queue_ids}
    head = reports.summary(con, **filters).iloc[0]
    first = start or _timestamp(head["first_created"])
    last = end or _timestamp(head["last_created"])
    freq = choose_freq(first, last)

    throughput = reports.throughput(con, freq=freq, by="tag", **filters)
    backlog = reports.backlog(con, freq=freq, **filters)
    by_tag = reports.failures(con, by="tag", **filters)
    by_queue = reports.failures(con, by="queue_id", **filters)
    latency = reports.latency(con, by="tag", **filters)
    errors = reports.errors(con, limit=20, **filters)
    media = reports.media(con, **filters)

    headline = [
        (_integer(head["jobs"]), "jobs"),
        (_percent(head["failure_rate"]), "failure rate (failed / finished)"),
        (_number(head["media_hours"], 1), "media hours"),
        (_duration(head["p90_processing_s"]), "p90 processing time"),
    ]
    sections = [
        _section("Throughput", _image(plots.throughput(throughput))),
        _section("Backlog", _image(plots.backlog(backlog))),
        _section(
            "Failures",
            _image(plots.failures(by_tag)) + _table(by_tag) + _table(by_queue),
        ),
        _section("Latency", _image(plots.latency(latency)) + _table(latency)),
        _section("Errors", _image(plots.errors(errors)) + _table(errors)),
        _section("Media", _image(plots.media(media)) + _table(media)),
    ]
    return _page(_describe(start, end, tags, queue_ids, freq), headline, sections)


def _describe(
    start: datetime | None,
    end: datetime | None,
    tags: str | Sequence[str] | None,
    queue_ids: str | Sequence[str] | None,
    freq: str,
) -> str:
    """One line saying what the report covers."""
    parts = [
        f"created from {_when(start) if start else 'the first job'} "
        f"to {_when(end) if end else 'the last job'}"
    ]
    for name, values in (("tags", tags), ("queues", queue_ids)):
        if values:
            listed = [values] if isinstance(values, str) else list(values)
            parts.append(f"{name}: {', '.join(listed)}")
    parts.append(f"periods of {freq}")
    parts.append(f"generated {_when(utc_now())}")
    return " · ".join(parts)


def _page(description: str, headline: list[tuple[str, str]], sections: list[str]) -> str:
    """The whole HTML document."""
    figures = "".join(
        f'<div class="figure"><div class="value">{html.escape(value)}</div>'
        f'<div class="label">{html.escape(label)}</div></div>'
        for value, label in headline
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>CI media jobs report</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        "<h1>CI media jobs report</h1>\n"
        f'<p class="meta">{html.escape(description)} (all times UTC)</p>\n'
        f'<div class="headline">{figures}</div>\n' + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def _section(title: str, body: str) -> str:
    return f"<section>\n<h2>{html.escape(title)}</h2>\n{body}\n</section>"


def _image(fig: Figure) -> str:
    """The figure as an <img> with a PNG data URI; its title doubles as the alt text."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()] or [fig.get_suptitle()]
    alt = html.escape(titles[0].replace("\\$", "$"), quote=True)
    return f'<p><img alt="{alt}" src="data:image/png;base64,{data}"></p>'


def _table(df: pd.DataFrame) -> str:
    """The frame as an HTML table; every cell escaped, numbers right-aligned."""
    if df.empty:
        return "<p><em>no jobs in range</em></p>"
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for record in df.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(df.columns, record, strict=True):
            text, numeric = _cell(str(column), value)
            css = ' class="num"' if numeric else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<tr>{header}</tr>\n" + "\n".join(rows) + "\n</table>"


def _cell(column: str, value: Any) -> tuple[str, bool]:
    """A table cell's text and whether it is a number."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "—", False
    if isinstance(value, pd.Timestamp | datetime):
        return _when(value), False
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, numbers.Integral):
        return _integer(value), True
    if isinstance(value, numbers.Real):
        if column == "failure_rate":
            return _percent(value), True
        return _number(value, 2), True
    return str(value), False


def _timestamp(value: Any) -> datetime | None:
    """A pandas cell as an aware datetime, or None for NaT."""
    if value is None or value is pd.NaT:
        return None
    stamp: datetime = pd.Timestamp(value).to_pydatetime()
    return stamp


def _when(value: datetime) -> str:
    return to_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _integer(value: Any) -> str:
    return f"{int(value):,}"


def _number(value: Any, digits: int) -> str:
    number = float(value)
    return "—" if math.isnan(number) else f"{number:,.{digits}f}"


def _percent(value: Any) -> str:
    number = float(value)
    return "—" if math.isnan(number) else f"{number * 100:.1f}%"


def _duration(value: Any) -> str:
    """Seconds as "42 s", "12.5 min" or "3.2 h"."""
    seconds = float(value)
    if math.isnan(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomically(path: Path, render: Callable[[], str]) -> Path:
    """Write ``render()`` to a temporary file beside ``path``, then rename it into place.

    The temporary file is created before rendering, so an unwritable destination fails fast.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {str(path)!r}: {exc.strerror}") from exc
    try:
        # mkstemp makes the file 0600 whatever the umask; a report is for sharing (a web
        # server's user may serve it), so give it the mode an ordinary new file would get.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {str(path)!r}: {exc.strerror}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
