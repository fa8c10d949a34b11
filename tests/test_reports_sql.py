"""The SQL the reports send, as DuckDB's query log records it: golden files and bound values.

A change to a report's SQL shows up as a diff of ``tests/golden/reports/<report>.sql``; review
it, then rewrite the files with ``CIJOBS_UPDATE_GOLDEN=1 pytest tests/test_reports_sql.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from job_datasets import sample_jobs, write_dataset

import cijobs_analytics as cj
from cijobs_analytics.query import read_rows

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("CIJOBS_UPDATE_GOLDEN") == "1"

FILTERS: dict[str, Any] = {
    "since": "2026-11-01T08:00:00+08:00",
    "until": "2026-11-03",
    "tags": ["Transcode", "Snapshot"],
    "queue_ids": ["q1"],
}

CASES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "throughput": (cj.reports.throughput, {"freq": "1h", "by": "tag"}),
    "throughput_overall": (cj.reports.throughput, {"freq": "1d", "by": None}),
    "failures": (cj.reports.failures, {"by": "queue_id"}),
    "latency": (cj.reports.latency, {"by": "tag"}),
    "latency_overall": (cj.reports.latency, {"by": None}),
    "errors": (cj.reports.errors, {"limit": 5}),
    "backlog": (cj.reports.backlog, {"freq": "6h"}),
    "media": (cj.reports.media, {}),
    "summary": (cj.reports.summary, {}),
}


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = write_dataset(tmp_path_factory.mktemp("sql") / "ds", sample_jobs(80))
    with cj.connect(root) as connection:
        read_rows(connection, "CALL enable_logging('QueryLog')")
        yield connection


def sent(con: Any, call: Callable[[], Any]) -> list[str]:
    """The statements DuckDB ran during ``call``."""
    read_rows(con, "CALL truncate_duckdb_logs()")
    call()
    rows = read_rows(
        con, "SELECT message FROM duckdb_logs WHERE type = 'QueryLog' ORDER BY timestamp"
    )
    return [str(message).strip() for (message,) in rows]


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_sql_matches_its_golden_file(con: Any, name: str) -> None:
    report, kwargs = CASES[name]
    text = "\n;\n".join(sent(con, lambda: report(con, **kwargs, **FILTERS))) + "\n"
    path = GOLDEN / f"{name}.sql"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text


ATTEMPT = "x') OR 1=1; DROP VIEW jobs; --"


@pytest.mark.parametrize("name", sorted(CASES))
def test_filter_values_never_reach_the_sql_text(con: Any, name: str) -> None:
    report, kwargs = CASES[name]
    queries = sent(
        con,
        lambda: report(
            con, **kwargs, since="2026-11-01T13:37:00Z", tags=[ATTEMPT], queue_ids=["qq-" + ATTEMPT]
        ),
    )
    assert queries
    for query in queries:
        assert "DROP VIEW" not in query
        assert "13:37" not in query
        assert "qq-" not in query
