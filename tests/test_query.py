"""connect(): the jobs/streams/outputs views over a dataset directory or a single Parquet file."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from job_datasets import T0, job, sample_jobs, stale_versions, write_dataset

from cijobs_analytics import QueryError, StoreError
from cijobs_analytics._ledger import CoverageKey, Window, add_coverage, append_run
from cijobs_analytics._location import resolve_location
from cijobs_analytics._tables import JOBS_TABLE, JOBS_TABLE_SCHEMA, create_table
from cijobs_analytics.query import check_read_only, connect, read_arrow, read_frame, read_rows
from cijobs_analytics.schema import JOBS_SCHEMA, OUTPUTS_SCHEMA, STREAMS_SCHEMA


@pytest.fixture
def rows() -> list[dict[str, object]]:
    return sample_jobs(60)


@pytest.fixture
def dataset(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    return write_dataset(tmp_path / "ds", rows, stale=stale_versions(rows))


def test_jobs_view_has_one_row_per_job_and_the_newest_fetch_wins(
    dataset: Path, rows: list[dict[str, object]]
) -> None:
    with connect(dataset) as con:
        frame = read_frame(con, "SELECT job_id, state, fetched_at FROM jobs ORDER BY job_id")
    assert frame["job_id"].tolist() == sorted(str(r["job_id"]) for r in rows)
    expected = {str(r["job_id"]): r["state"] for r in rows}
    assert dict(zip(frame["job_id"], frame["state"], strict=True)) == expected
    # The stale copies were fetched a day earlier; none of them may surface.
    assert (frame["fetched_at"] == rows[0]["fetched_at"]).all()


def test_jobs_view_columns_are_those_of_jobs_schema_without_the_partition_column(
    dataset: Path,
) -> None:
    with connect(dataset) as con:
        table = read_arrow(con, "SELECT * FROM jobs LIMIT 1")
    assert table.schema.names == JOBS_SCHEMA.names
    assert "date" not in table.schema.names
    assert table.schema.field("creation_time").type == pa.timestamp("us", tz="UTC")


def test_timestamps_arrive_in_pandas_as_utc(dataset: Path) -> None:
    with connect(dataset) as con:
        frame = read_frame(con, "SELECT min(creation_time) AS first FROM jobs")
    assert str(frame["first"].dtype) == "datetime64[us, UTC]"


def test_streams_and_outputs_views_unnest_every_element_with_its_job_id(
    dataset: Path, rows: list[dict[str, object]]
) -> None:
    with connect(dataset) as con:
        streams = read_frame(con, "SELECT * FROM streams ORDER BY job_id, index")
        outputs = read_frame(con, "SELECT * FROM outputs ORDER BY job_id, object_name")
    assert list(streams.columns) == STREAMS_SCHEMA.names
    assert list(outputs.columns) == OUTPUTS_SCHEMA.names
    assert len(streams) == sum(len(r["streams"]) for r in rows)  # type: ignore[arg-type]
    assert len(outputs) == sum(len(r["output_files"]) for r in rows)  # type: ignore[arg-type]
    multi = next(r for r in rows if len(r["output_files"]) == 3)  # type: ignore[arg-type]
    mine = outputs[outputs["job_id"] == multi["job_id"]]["object_name"].tolist()
    assert mine == [f"{multi['job_id']}/{i}.mp4" for i in range(3)]


def test_a_single_parquet_file_is_a_dataset_too(tmp_path: Path) -> None:
    older = job("dup", T0, state="Running", fetched_at=T0 + timedelta(hours=1))
    newer = job("dup", T0, state="Success", fetched_at=T0 + timedelta(hours=2))
    path = tmp_path / "one.parquet"
    pq.write_table(pa.Table.from_pylist([newer, older, job("other", T0)], schema=JOBS_SCHEMA), path)
    with connect(path) as con:
        frame = read_frame(con, "SELECT job_id, state FROM jobs ORDER BY job_id")
    assert frame.to_dict("records") == [
        {"job_id": "dup", "state": "Success"},
        {"job_id": "other", "state": "Success"},
    ]


def test_a_dataset_whose_table_has_no_files_yet_has_empty_typed_views(tmp_path: Path) -> None:
    location = resolve_location(tmp_path / "empty")
    create_table(location, JOBS_TABLE, JOBS_TABLE_SCHEMA, partition_by=["date"])
    with connect(location.uri) as con:
        jobs = read_arrow(con, "SELECT * FROM jobs")
        streams = read_frame(con, "SELECT * FROM streams")
    assert jobs.num_rows == 0
    assert jobs.schema.names == JOBS_SCHEMA.names
    assert jobs.schema.field("creation_time").type == pa.timestamp("us", tz="UTC")
    assert streams.empty
    assert list(streams.columns) == STREAMS_SCHEMA.names


@pytest.mark.parametrize("where", ["empty", "parent", "root"])
def test_a_directory_that_is_no_dataset_is_refused_not_read_as_empty(
    tmp_path: Path, dataset: Path, where: str
) -> None:
    target = {"empty": tmp_path / "empty", "parent": dataset.parent, "root": Path("/")}[where]
    target.mkdir(exist_ok=True)
    with pytest.raises(QueryError, match="not a cijobs dataset"):
        connect(target)


def test_the_jobs_table_itself_is_refused_naming_the_dataset(dataset: Path) -> None:
    with pytest.raises(QueryError, match=f"pass the dataset itself: '{dataset}'"):
        connect(dataset / "jobs")


def test_a_missing_path_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="no-such-dataset"):
        connect(tmp_path / "no-such-dataset")


def test_a_path_with_glob_characters_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data[1]"
    root.mkdir()
    with pytest.raises(QueryError, match="holds a glob character"):
        connect(root)


def test_a_path_with_a_quote_is_read_safely(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "o'brien", [job("a", T0)])
    with connect(root) as con:
        assert read_frame(con, "SELECT count(*) AS n FROM jobs")["n"].tolist() == [1]


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_text("not parquet")
    with pytest.raises(QueryError, match="query failed"):
        connect(path)


def test_a_parquet_file_without_job_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    with pytest.raises(QueryError, match="job_id"):
        connect(path)


def test_failed_sql_becomes_a_query_error_with_the_cause_chained(dataset: Path) -> None:
    with connect(dataset) as con, pytest.raises(QueryError, match="query failed") as info:
        read_frame(con, "SELECT no_such_column FROM jobs")
    assert info.value.__cause__ is not None


def test_read_frame_refuses_something_that_is_not_a_connection() -> None:
    with pytest.raises(QueryError, match="DuckDB connection"):
        read_frame("jobs_dataset/", "SELECT 1")  # type: ignore[arg-type]


def test_ledger_views_hold_the_coverage_and_runs_tables(dataset: Path) -> None:
    location = resolve_location(dataset)
    with connect(dataset) as con:
        assert read_frame(con, "SELECT count(*) AS n FROM coverage")["n"].tolist() == [0]
    key = CoverageKey("b-1250000000", "ap-guangzhou", "Transcode", None, None)
    add_coverage(location, [], [Window(key, T0, T0 + timedelta(hours=1), 3, 1, T0)])
    append_run(location, {"started": T0, "finished": T0, "status": "ok", "requests": 7})
    with connect(dataset) as con:
        assert read_frame(con, "SELECT tag, jobs FROM coverage").to_dict("records") == [
            {"tag": "Transcode", "jobs": 3}
        ]
        assert read_frame(con, "SELECT status, requests FROM runs").to_dict("records") == [
            {"status": "ok", "requests": 7}
        ]


def test_a_connection_shows_its_version_and_as_of_shows_an_older_one(
    dataset: Path, rows: list[dict[str, object]]
) -> None:
    count = "SELECT count(*) AS n FROM jobs"
    with connect(dataset) as con:
        write_dataset(dataset, [job("late", T0 + timedelta(days=5))])
        assert read_frame(con, count)["n"].tolist() == [len(rows)]
    with connect(dataset) as con:
        assert read_frame(con, count)["n"].tolist() == [len(rows) + 1]
    # Version 1 is write_dataset's first commit: the stale rows of every fifth job.
    with connect(dataset, as_of=1) as con:
        states = read_frame(con, "SELECT job_id, state FROM jobs ORDER BY job_id")
    assert len(states) == len(rows)
    stale_ids = {r["job_id"] for r in rows[::5]}
    assert set(states[states.job_id.isin(stale_ids)].state) == {"Running"}
    with pytest.raises(StoreError, match="no version"):
        connect(dataset, as_of=99)


def test_an_old_plain_parquet_dataset_is_refused_with_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "old"
    (root / "jobs" / "date=2026-11-01").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([job("a", T0)], schema=JOBS_SCHEMA),
        root / "jobs" / "date=2026-11-01" / "part-0.parquet",
    )
    with pytest.raises(StoreError, match=r"plain-Parquet layout .* export into a new location"):
        connect(root)


def test_a_read_only_connection_reads_the_dataset_and_nothing_else(
    dataset: Path, tmp_path: Path, rows: list[dict[str, object]]
) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with connect(dataset, read_only=True) as con:
        assert read_frame(con, "SELECT count(*) AS n FROM jobs")["n"].tolist() == [len(rows)]
        assert len(read_frame(con, "SELECT * FROM streams")) > 0
        for sql in (
            f"SELECT * FROM read_csv('{outside}')",  # noqa: S608 - a test path
            f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
            f"ATTACH '{tmp_path / 'other.db'}'",
            "SET enable_external_access = true",
            "INSTALL httpfs",
        ):
            with pytest.raises(QueryError):
                read_rows(con, sql)
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "other.db").exists()
    # An ordinary connection is the user's own: it may read what they ask.
    with connect(dataset) as con:
        query = f"SELECT a FROM read_csv('{outside}')"  # noqa: S608 - a test path
        assert read_frame(con, query)["a"].tolist() == [1]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "FROM jobs",
        "DESCRIBE jobs",
        "EXPLAIN SELECT * FROM jobs",
        "SELECT 1;",
    ],
)
def test_queries_pass_the_read_only_check(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("", "no SQL given"),
        ("   \n\t ", "no SQL given"),
        (";", "no SQL given"),
        ("SELECT 1; SELECT 2", "one query at a time"),
        ("COPY (SELECT 1) TO 'x.csv'", "COPY statements are refused"),
        ("ATTACH 'x.db'", "ATTACH statements are refused"),
        ("CREATE TABLE t AS SELECT 1", "CREATE statements are refused"),
        ("INSTALL httpfs", "LOAD statements are refused"),
        ("SET threads = 1", "SET statements are refused"),
        ("SELEC 1", "query failed"),
    ],
)
def test_anything_but_one_query_is_refused_with_the_way_out(sql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        check_read_only(sql)


@pytest.mark.parametrize("where", ["parent", "jobs", "empty"])
@pytest.mark.parametrize("command", ["sql", "report", "status"])
def test_the_cli_readers_refuse_a_folder_that_is_no_dataset(
    dataset: Path, tmp_path: Path, where: str, command: str
) -> None:
    """A wrong folder is an error naming the fix (exit 1), never an empty answer (exit 0)."""
    (tmp_path / "empty").mkdir()
    target = {"parent": dataset.parent, "jobs": dataset / "jobs", "empty": tmp_path / "empty"}
    args = {
        "sql": ["SELECT count(*) FROM jobs"],
        "report": ["--out", str(tmp_path / "r.html")],
        "status": [],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", command, "--dataset", str(target[where]), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    if where == "jobs":
        assert "pass the dataset itself: " in done.stderr
        assert done.stderr.rstrip().endswith((f"'{dataset}'", str(dataset)))
    else:
        assert "not a cijobs dataset" in done.stderr
    assert not (tmp_path / "r.html").exists()
