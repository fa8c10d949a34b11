"""plots: one Figure per report, labelled, readable with many groups, sane on empty frames."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from job_datasets import T0, job, sample_jobs, write_dataset
from matplotlib.figure import Figure

import cijobs_analytics as cj
from cijobs_analytics import QueryError
from cijobs_analytics.query import connect

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # 24 tags, so every grouped figure has to cope with more groups than colours.
    rows = sample_jobs(400, tags=24)
    rows.append(
        job(
            "weird",
            T0,
            tag="Tag00",
            state="Failed",
            code="Err$",
            message="价格 $5 per $minute " + "x" * 200,
        )
    )
    root = write_dataset(tmp_path_factory.mktemp("plots") / "ds", rows)
    with connect(root) as connection:
        yield connection


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = write_dataset(tmp_path_factory.mktemp("empty") / "ds", [])
    with connect(root) as connection:
        yield connection


def render(fig: Figure) -> bytes:
    """Render to PNG with every warning an error (the suite's setting, made explicit here)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    assert data.startswith(PNG_MAGIC)
    return data


def texts(fig: Figure) -> list[str]:
    """Every text drawn on the figure: titles, axis labels, tick labels, legends, notes."""
    found = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    return [t for t in found if t]


REPORTS: list[tuple[str, Callable[..., pd.DataFrame], dict[str, Any]]] = [
    ("throughput", cj.reports.throughput, {"freq": "6h"}),
    ("failures", cj.reports.failures, {}),
    ("latency", cj.reports.latency, {}),
    ("errors", cj.reports.errors, {}),
    ("backlog", cj.reports.backlog, {"freq": "1h"}),
    ("media", cj.reports.media, {}),
]


@pytest.mark.parametrize(("name", "report", "kwargs"), REPORTS)
def test_every_plot_renders_without_warnings_and_labels_its_axes(
    con: Any, name: str, report: Callable[..., pd.DataFrame], kwargs: dict[str, Any]
) -> None:
    fig = getattr(cj.plots, name)(report(con, **kwargs))
    assert isinstance(fig, Figure)
    render(fig)
    for ax in fig.axes:
        assert ax.get_xlabel() or ax.get_ylabel()
    assert any(ax.get_title() for ax in fig.axes) or fig.get_suptitle()


@pytest.mark.parametrize(("name", "report", "kwargs"), REPORTS)
def test_every_plot_says_no_jobs_on_an_empty_frame(
    empty: Any, name: str, report: Callable[..., pd.DataFrame], kwargs: dict[str, Any]
) -> None:
    fig = getattr(cj.plots, name)(report(empty, **kwargs))
    render(fig)
    assert cj.plots.EMPTY_TEXT in texts(fig)


def test_time_axes_say_utc_and_units(con: Any) -> None:
    tp = cj.plots.throughput(cj.reports.throughput(con, freq="6h"))
    assert tp.axes[1].get_xlabel() == "period start (UTC)"
    assert tp.axes[0].get_ylabel() == "jobs per 6h"
    assert tp.axes[0].get_title() == "Jobs created per 6h by tag"
    bl = cj.plots.backlog(cj.reports.backlog(con, freq="1d"))
    assert bl.axes[0].get_xlabel() == "period start (UTC)"
    assert "per 1d" in bl.axes[0].get_ylabel()
    lat = cj.plots.latency(cj.reports.latency(con))
    assert [ax.get_xlabel() for ax in lat.axes] == ["processing time (s)", "queue wait (s)"]


def test_throughput_with_24_tags_shows_the_top_ten_and_other(con: Any) -> None:
    df = cj.reports.throughput(con, freq="6h")
    assert df["tag"].nunique() == 24
    fig = cj.plots.throughput(df)
    render(fig)
    legend = fig.axes[0].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == 11
    assert labels[-1] == "other"
    totals = df.groupby("tag")["jobs"].sum().sort_values(ascending=False, kind="stable")
    assert labels[:10] == list(totals.index[:10])
    # Legend sits outside the axes, to the right.
    assert legend.get_bbox_to_anchor().x0 > fig.axes[0].get_window_extent().x1 - 1


def test_throughput_without_groups_draws_one_series(con: Any) -> None:
    fig = cj.plots.throughput(cj.reports.throughput(con, freq="1d", by=None))
    render(fig)
    assert len(fig.axes[0].get_lines()) == 1
    assert fig.axes[0].get_title() == "Jobs created per 1d"


def test_failures_bars_one_per_group_up_to_top_and_say_how_many_are_hidden(con: Any) -> None:
    df = cj.reports.failures(con)
    fig = cj.plots.failures(df, top=20)
    render(fig)
    ax = fig.axes[0]
    assert len(ax.patches) == 20
    assert ax.get_title() == "Failure rate by tag (top 20; 4 more not shown)"
    assert ax.get_xlabel() == "failure rate (% of finished jobs)"
    first = df.iloc[0]
    assert ax.patches[0].get_width() == pytest.approx(first["failure_rate"] * 100)
    assert [t.get_text() for t in ax.get_yticklabels()][:3] == list(df["tag"][:3])
    # Taller with more bars, so labels never overlap.
    assert fig.get_figheight() > 7


def test_latency_draws_three_processing_and_two_queue_bars_per_group(con: Any) -> None:
    df = cj.reports.latency(con)
    fig = cj.plots.latency(df)
    render(fig)
    assert len(fig.axes[0].patches) == 3 * len(df)
    assert len(fig.axes[1].patches) == 2 * len(df)


def test_latency_uses_a_log_axis_only_when_times_span_more_than_two_decades() -> None:
    """A one-second job type must stay visible beside a three-hour one."""
    wide = pd.DataFrame(
        {
            "tag": ["MediaInfo", "SuperResolution"],
            "p50_queue_wait_s": [2.0, 3.0],
            "p90_queue_wait_s": [5.0, 9.0],
            "p50_processing_s": [1.0, 900.0],
            "p90_processing_s": [2.0, 4000.0],
            "p99_processing_s": [3.0, 11000.0],
            "median_speed_x": [100.0, 0.5],
        }
    )
    fig = cj.plots.latency(wide)
    render(fig)
    assert fig.axes[0].get_xscale() == "log"
    assert fig.axes[0].get_xlabel() == "processing time (s), log scale"
    assert fig.axes[1].get_xscale() == "linear"
    narrow = wide.assign(p50_processing_s=[10.0, 20.0], p90_processing_s=[30.0, 40.0])
    narrow = narrow.assign(p99_processing_s=[50.0, 60.0])
    assert cj.plots.latency(narrow).axes[0].get_xscale() == "linear"


def test_errors_plot_keeps_dollar_signs_literal_and_swaps_missing_glyphs(con: Any) -> None:
    df = cj.reports.errors(con, limit=50)
    fig = cj.plots.errors(df)
    render(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(fig.axes[0].patches) == len(df)
    weird = next(label for label in labels if label.startswith("Err"))
    assert weird.startswith(r"Err\$: ?? \$5 per \$minute")
    assert len(weird) < 80
    assert any("?" in label for label in labels)  # the Chinese sample message


def test_backlog_draws_created_finished_and_open(con: Any) -> None:
    df = cj.reports.backlog(con, freq="6h")
    fig = cj.plots.backlog(df)
    render(fig)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["created", "finished", "open at end"]
    # The last value is held once more, to give the last period its width.
    assert list(lines[2].get_ydata()) == [*df["open"].tolist(), df["open"].iat[-1]]


def test_media_plot_has_a_bar_per_class_and_codec(con: Any) -> None:
    df = cj.reports.media(con)
    fig = cj.plots.media(df)
    render(fig)
    assert len(fig.axes[0].patches) == len(df)
    assert fig.axes[0].get_xlabel() == "media minutes"


def test_a_frame_from_another_report_is_refused(con: Any) -> None:
    with pytest.raises(QueryError, match=r"reports\.backlog"):
        cj.plots.backlog(cj.reports.failures(con))
    with pytest.raises(QueryError, match="DataFrame"):
        cj.plots.errors([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("top", [0, -3, True, 2.5])
def test_a_top_that_is_not_a_positive_integer_is_refused(con: Any, top: Any) -> None:
    with pytest.raises(QueryError, match="top must be"):
        cj.plots.failures(cj.reports.failures(con), top=top)


def test_a_single_job_plots_cleanly(tmp_path: Path) -> None:
    with connect(write_dataset(tmp_path / "ds", [job("solo", T0)])) as con:
        for name, report, kwargs in REPORTS:
            render(getattr(cj.plots, name)(report(con, **kwargs)))


def test_importing_the_package_does_not_import_matplotlib_or_duckdb() -> None:
    code = (
        "import sys, cijobs_analytics as cj\n"
        "heavy = [m for m in ('matplotlib', 'duckdb') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "cj.reports\n"
        "assert 'duckdb' in sys.modules and 'matplotlib' not in sys.modules\n"
        "cj.plots\n"
        "assert 'matplotlib' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
