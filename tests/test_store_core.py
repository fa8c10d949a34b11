"""The storage core of the export: row rules, Delta upserts, maintenance, ledgers, lock, status.

Everything runs against real Delta tables under ``tmp_path`` (delta-rs writes and reads them);
nothing is mocked. A second writer is a second ``DeltaTable`` on the same directory.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from cijobs_analytics._ledger import (
    COVERAGE_SCHEMA,
    COVERAGE_TABLE,
    RUNS_SCHEMA,
    RUNS_TABLE,
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
from cijobs_analytics._location import Location, resolve_location
from cijobs_analytics._lock import DatasetLock, read_lock_holder
from cijobs_analytics._merge import (
    DATE_COLUMN,
    UpsertPlan,
    conform,
    dedupe,
    plan_upsert,
)
from cijobs_analytics._status import check_layout, read_status
from cijobs_analytics._tables import (
    DESCRIPTION,
    JOBS_TABLE,
    JOBS_TABLE_SCHEMA,
    Maintenance,
    UpsertResult,
    create_table,
    maintain,
    open_table,
    query,
    resolve_as_of,
    stored_rows,
    upsert,
)
from cijobs_analytics.errors import ConfigError, StoreError
from cijobs_analytics.schema import JOBS_SCHEMA

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
DAY0 = date(2026, 11, 1)


def rows(*specs: dict[str, Any]) -> pa.Table:
    """JOBS_SCHEMA rows from partial dicts (job_id, state, creation_time, fetched_at, ...)."""
    full = []
    for spec in specs:
        row: dict[str, Any] = dict.fromkeys(JOBS_SCHEMA.names)
        row.update({"tag": "Transcode", "bucket": "b-1", "region": "ap-guangzhou"})
        row.update(spec)
        full.append(row)
    return pa.Table.from_pylist(full, schema=JOBS_SCHEMA)


def job(
    job_id: str, state: str, minutes: float = 0, fetched: float = 0, **extra: Any
) -> dict[str, Any]:
    """A job created ``minutes`` after T0 and fetched an hour and ``fetched`` minutes after."""
    return {
        "job_id": job_id,
        "state": state,
        "creation_time": T0 + timedelta(minutes=minutes),
        "fetched_at": T0 + timedelta(hours=1, minutes=fetched),
        **extra,
    }


DAY = 24 * 60  # minutes: job(..., minutes=n * DAY) is created n days after DAY0


def new_jobs_table(root: Path) -> tuple[Location, DeltaTable]:
    location = resolve_location(root)
    return location, create_table(location, JOBS_TABLE, JOBS_TABLE_SCHEMA, [DATE_COLUMN])


def table_rows(table: DeltaTable, *, latest: bool = True) -> dict[str, dict[str, Any]]:
    """Every stored row by job id (of the newest version unless not ``latest``).

    Fails if a job is stored twice.
    """
    if latest:
        table.update_incremental()
    found = query(table, "SELECT * FROM t", JOBS_TABLE_SCHEMA).to_pylist()
    ids = [r["job_id"] for r in found]
    assert len(ids) == len(set(ids)), f"a job is stored twice: {sorted(ids)}"
    return {r["job_id"]: r for r in found}


def live_files(table: DeltaTable) -> dict[str, date]:
    """The table's live data files (relative paths) and their partitions."""
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    return {a["path"]: a[f"partition.{DATE_COLUMN}"] for a in actions}


def disk_files(root: Path, day: date) -> set[str]:
    """The Parquet files on disk in a partition directory of the jobs table."""
    folder = root / JOBS_TABLE / f"{DATE_COLUMN}={day.isoformat()}"
    return {p.name for p in folder.glob("*.parquet")}


def file_ids(root: Path, relative: str) -> list[str]:
    """The job ids in one data file of the jobs table, sorted."""
    ids = pq.ParquetFile(root / JOBS_TABLE / relative).read(["job_id"])["job_id"]
    return sorted(ids.to_pylist())


# --- the row rules, planned and merged into a Delta table ---------------------------------


@dataclass(frozen=True)
class Merged:
    plan: UpsertPlan
    result: UpsertResult
    rows: dict[str, dict[str, Any]]
    committed: bool


def _merge(
    root: Path,
    stored: pa.Table,
    incoming: pa.Table,
    *,
    not_found: frozenset[str] = frozenset(),
    marked_at: datetime | None = None,
) -> Merged:
    """Store ``stored`` in a fresh jobs table, then upsert ``incoming`` into it.

    Also checks that the MERGE's own counts agree with what :func:`plan_upsert` planned.
    """
    case = root / f"case-{len(list(root.glob('case-*')))}"
    _, table = new_jobs_table(case)
    if stored.num_rows:
        upsert(table, stored)
    before = table.version()
    plan = plan_upsert(stored, incoming, not_found=not_found, marked_at=marked_at)
    missing: dict[date, set[str]] = {}
    for row in stored.to_pylist():
        if row["job_id"] in not_found:
            missing.setdefault(row["creation_time"].date(), set()).add(row["job_id"])
    result = upsert(table, incoming, not_found=missing, marked_at=marked_at)
    assert (result.jobs_new, result.jobs_updated) == (plan.jobs_new, plan.jobs_updated)
    return Merged(plan, result, table_rows(table), result.version != before)


def test_new_jobs_are_inserted_and_planned_sorted_with_their_date(tmp_path: Path) -> None:
    out = _merge(
        tmp_path, rows(job("b", "Success", 5)), rows(job("d", "Running", 9), job("a", "Running", 1))
    )
    # Only the new rows are written, sorted by creation time, with the partition column.
    assert out.plan.rows["job_id"].to_pylist() == ["a", "d"]
    assert out.plan.rows[DATE_COLUMN].to_pylist() == [DAY0, DAY0]
    assert sorted(out.rows) == ["a", "b", "d"]
    assert (out.result.jobs_new, out.result.jobs_updated, out.committed) == (2, 0, True)


def test_newest_fetched_at_wins_for_open_jobs(tmp_path: Path) -> None:
    stored = rows(job("a", "Running", fetched=0, progress=10))
    newer = _merge(tmp_path, stored, rows(job("a", "Running", fetched=5, progress=50)))
    assert newer.rows["a"]["progress"] == 50
    assert newer.result.jobs_updated == 1
    older = _merge(tmp_path, stored, rows(job("a", "Submitted", fetched=-5)))
    assert older.rows["a"]["state"] == "Running"
    assert older.plan.rows.num_rows == 0
    assert not older.committed


def test_a_finished_row_is_final(tmp_path: Path) -> None:
    stored = rows(job("a", "Failed", fetched=0, code="E1"))
    out = _merge(tmp_path, stored, rows(job("a", "Running", fetched=30)))
    assert (out.rows["a"]["state"], out.rows["a"]["code"]) == ("Failed", "E1")
    assert not out.committed
    # An open stored row gives way to a finished one even if that one was fetched earlier.
    out = _merge(
        tmp_path, rows(job("a", "Running", fetched=9)), rows(job("a", "Success", fetched=1))
    )
    assert out.rows["a"]["state"] == "Success"
    assert out.result.jobs_updated == 1


def test_same_content_fetched_later_changes_nothing(tmp_path: Path) -> None:
    nested: dict[str, Any] = {"watermark_template_ids": ["t1"], "extra": [("k", "v")]}
    stored = rows(job("a", "Running", **nested))
    out = _merge(tmp_path, stored, rows(job("a", "Running", fetched=60, **nested)))
    assert (out.committed, out.result.jobs_new, out.result.jobs_updated) == (False, 0, 0)
    assert out.rows["a"]["fetched_at"] == T0 + timedelta(hours=1)
    changed = rows(job("a", "Running", fetched=60, watermark_template_ids=["t2"]))
    out = _merge(tmp_path, stored, changed)
    assert out.result.jobs_updated == 1
    assert out.rows["a"]["watermark_template_ids"] == ["t2"]


def test_duplicates_in_a_fetch_resolve_to_the_finished_then_the_newest_row(
    tmp_path: Path,
) -> None:
    fetched = rows(
        job("a", "Running", fetched=20),
        job("a", "Success", fetched=10),
        job("b", "Submitted", fetched=0),
        job("b", "Running", fetched=5),
    )
    assert {r["job_id"]: r["state"] for r in dedupe(fetched).to_pylist()} == {
        "a": "Success",
        "b": "Running",
    }
    out = _merge(tmp_path, JOBS_SCHEMA.empty_table(), fetched)
    assert {k: r["state"] for k, r in out.rows.items()} == {"a": "Success", "b": "Running"}
    assert out.result.jobs_new == 2


def test_open_jobs_not_found_are_marked_once_and_kept(tmp_path: Path) -> None:
    stored = rows(job("a", "Running"), job("b", "Success"))
    seen = T0 + timedelta(days=1)
    out = _merge(
        tmp_path, stored, JOBS_SCHEMA.empty_table(), not_found=frozenset({"a", "b"}), marked_at=seen
    )
    assert out.rows["a"]["not_found_at"] == seen
    assert out.rows["a"]["fetched_at"] == seen
    assert out.rows["a"]["state"] == "Running"
    assert out.rows["b"]["not_found_at"] is None  # a finished row is final
    assert out.result.jobs_updated == 1
    # Asked again later: the mark stays as it was and nothing is committed.
    marked = rows(out.rows["a"], out.rows["b"])
    again = _merge(
        tmp_path,
        marked,
        JOBS_SCHEMA.empty_table(),
        not_found=frozenset({"a"}),
        marked_at=seen + timedelta(days=1),
    )
    assert not again.committed
    assert again.rows["a"]["not_found_at"] == seen


def test_a_not_found_mark_is_replaced_when_the_job_is_listed_again(tmp_path: Path) -> None:
    seen = T0 + timedelta(days=1)
    stored = rows(job("a", "Running", not_found_at=seen, fetched_at=seen))
    listed = rows(job("a", "Running", fetched=2 * DAY))
    out = _merge(tmp_path, stored, listed)
    assert out.rows["a"]["not_found_at"] is None
    assert out.rows["a"]["fetched_at"] == T0 + timedelta(hours=1, minutes=2 * DAY)
    assert out.result.jobs_updated == 1


def test_marking_not_found_without_the_time_asked_is_refused() -> None:
    with pytest.raises(StoreError, match="needs the time the service was asked"):
        plan_upsert(
            rows(job("a", "Running")), JOBS_SCHEMA.empty_table(), not_found=frozenset({"a"})
        )


def test_conform_names_missing_columns_and_refuses_bad_types() -> None:
    with pytest.raises(StoreError, match=r"lack the columns .*job_id"):
        conform(rows(job("a", "Running")).drop(["job_id", "state"]))
    bad = rows(job("a", "Running")).drop(["progress"]).append_column("progress", pa.array(["x"]))
    with pytest.raises(StoreError, match="do not fit JOBS_SCHEMA"):
        conform(bad)
    shuffled = rows(job("a", "Running")).select(list(reversed(JOBS_SCHEMA.names)))
    assert conform(shuffled).schema == JOBS_SCHEMA


# --- upsert on Delta: what is written -----------------------------------------------------


def test_a_repeat_of_stored_rows_commits_nothing(tmp_path: Path) -> None:
    _, table = new_jobs_table(tmp_path)
    first = rows(job("a", "Running", 0), job("b", "Success", DAY))
    written = upsert(table, first)
    assert written == UpsertResult(
        version=1,
        rows_written=2,
        jobs_new=2,
        jobs_updated=0,
        files_added=2,
        files_removed=0,
        days=frozenset({DAY0, date(2026, 11, 2)}),
    )
    files = live_files(table)
    repeat = rows(job("a", "Running", 0, fetched=30), job("b", "Success", DAY, fetched=30))
    assert upsert(table, repeat) == UpsertResult(version=1)
    assert table.version() == 1
    assert live_files(table) == files
    assert table_rows(table)["a"]["fetched_at"] == T0 + timedelta(hours=1)


def test_an_update_rewrites_only_the_file_holding_the_job(tmp_path: Path) -> None:
    _, table = new_jobs_table(tmp_path)
    upsert(table, rows(job("a", "Running", 0), job("b", "Running", 1), job("z", "Running", DAY)))
    upsert(table, rows(job("c", "Running", 2)))  # a second file in DAY0
    before = live_files(table)
    (holding_a,) = [p for p in before if "a" in file_ids(tmp_path, p)]
    result = upsert(table, rows(job("a", "Success", 0, fetched=5), job("n", "Running", 3)))
    # "a" updated, "n" inserted, "b" copied from a's old file into the new one.
    assert (result.jobs_new, result.jobs_updated, result.rows_written) == (1, 1, 3)
    assert (result.files_added, result.files_removed, result.days) == (1, 1, frozenset({DAY0}))
    after = live_files(table)
    assert set(before) - set(after) == {holding_a}
    (added,) = set(after) - set(before)
    assert after[added] == DAY0
    assert file_ids(tmp_path, added) == ["a", "b", "n"]
    stored = table_rows(table)
    assert {k: r["state"] for k, r in stored.items()} == {
        "a": "Success",
        "b": "Running",
        "c": "Running",
        "n": "Running",
        "z": "Running",
    }


def test_an_upsert_scans_only_the_partitions_it_touches(tmp_path: Path) -> None:
    _, table = new_jobs_table(tmp_path)
    upsert(table, rows(*(job(f"j{i}", "Running", i * DAY) for i in range(10))))
    upsert(table, rows(job("j3", "Success", 3 * DAY, fetched=5)))
    metrics = table.history(1)[0]["operationMetrics"]
    assert metrics["num_target_files_removed"] == 1
    assert metrics["num_target_files_scanned"] == 1


def test_stored_rows_reads_only_the_asked_ids_of_the_asked_days(tmp_path: Path) -> None:
    _, table = new_jobs_table(tmp_path)
    upsert(table, rows(job("a", "Running", 0), job("b", "Running", 1), job("c", "Running", DAY)))
    found = stored_rows(table, ["a", "c", "x"], [DAY0])
    assert found.schema == JOBS_SCHEMA
    assert found["job_id"].to_pylist() == ["a"]
    assert stored_rows(table, [], [DAY0]).num_rows == 0


# --- two writers --------------------------------------------------------------------------


def test_an_upsert_that_loses_a_commit_race_plans_again(tmp_path: Path) -> None:
    location, table = new_jobs_table(tmp_path)
    upsert(table, rows(job("s", "Running", 0), job("f", "Running", 3 * DAY)))
    first, second = open_table(location, JOBS_TABLE), open_table(location, JOBS_TABLE)
    assert first is not None
    assert second is not None
    assert first.version() == second.version() == 1
    won: list[UpsertResult] = []
    calls: list[int] = []

    def other_writer_commits_first() -> None:
        calls.append(second.version())
        if not won:
            won.append(
                upsert(
                    first,
                    rows(
                        job("x", "Running", 0, fetched=1),
                        job("s", "Running", 0, fetched=2, progress=10),
                        job("a1", "Running", DAY),
                    ),
                )
            )

    lost = upsert(
        second,
        rows(
            job("x", "Success", 0, fetched=0),
            job("s", "Running", 0, fetched=1, progress=5),
            job("b1", "Running", DAY),
        ),
        before_commit=other_writer_commits_first,
    )
    # The first commit of `second` lost; planned again at version 2, "x" became an update.
    assert calls == [1, 2]
    assert won[0].version == 2
    assert (won[0].jobs_new, won[0].jobs_updated) == (2, 1)
    assert (lost.version, lost.jobs_new, lost.jobs_updated) == (3, 1, 1)
    stored = table_rows(table)
    assert sorted(stored) == ["a1", "b1", "f", "s", "x"]
    assert stored["x"]["state"] == "Success"  # finished beats a newer open row
    assert stored["s"]["progress"] == 10  # the newest fetch of an open job


def test_two_writers_started_together_leave_one_row_per_job(tmp_path: Path) -> None:
    location, table = new_jobs_table(tmp_path)
    upsert(table, rows(job("s", "Running", 0)))
    writers = [open_table(location, JOBS_TABLE) for _ in range(2)]
    assert [w.version() if w is not None else None for w in writers] == [1, 1]
    batches = [
        rows(
            job("n", "Running", 5, fetched=9), job("s", "Pause", 0, fetched=9), job("a", "Running")
        ),
        rows(
            job("n", "Success", 5, fetched=0),
            job("s", "Running", 0, fetched=1),
            job("b", "Running"),
        ),
    ]
    start = threading.Barrier(2)
    results: list[UpsertResult] = []
    errors: list[BaseException] = []

    def write(writer: DeltaTable | None, batch: pa.Table) -> None:
        start.wait()
        try:
            assert writer is not None
            results.append(upsert(writer, batch))
        except BaseException as exc:  # handed to the main thread by `errors`
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=pair) for pair in zip(writers, batches, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.version for r in results) == [2, 3]
    stored = table_rows(table)
    assert {k: r["state"] for k, r in stored.items()} == {
        "a": "Running",
        "b": "Running",
        "n": "Success",
        "s": "Pause",
    }


# --- maintenance --------------------------------------------------------------------------


def _partition_of_files(tmp_path: Path, per_day: dict[int, int]) -> DeltaTable:
    """A jobs table whose partition ``DAY0 + d`` holds ``n`` files (one job each)."""
    _, table = new_jobs_table(tmp_path)
    for d, n in per_day.items():
        for i in range(n):
            upsert(table, rows(job(f"d{d}-{i}", "Running", d * DAY + i)))
    return table


def test_maintain_compacts_a_full_partition_and_vacuums_its_old_files(tmp_path: Path) -> None:
    table = _partition_of_files(tmp_path, {0: 4, 1: 2})
    day1 = date(2026, 11, 2)
    before_rows = table_rows(table)
    before = live_files(table)
    assert len(disk_files(tmp_path, DAY0)) == 4
    untouched = {p for p, d in before.items() if d == day1}
    done = maintain(table, max_files=4, retention=timedelta(0), full_vacuum=False)
    assert done == Maintenance(
        partitions_compacted=1,
        files_compacted=4,
        rows_rewritten=4,
        files_vacuumed=4,
        full_vacuum=False,
    )
    after = live_files(table)
    (compacted,) = [p for p, d in after.items() if d == DAY0]
    assert disk_files(tmp_path, DAY0) == {Path(compacted).name}
    assert {p for p, d in after.items() if d == day1} == untouched
    assert len(disk_files(tmp_path, day1)) == 2
    assert table_rows(table) == before_rows


def test_maintain_leaves_partitions_under_the_limit_and_young_removed_files(
    tmp_path: Path,
) -> None:
    table = _partition_of_files(tmp_path, {0: 3})
    upsert(table, rows(job("d0-0", "Failed", 0, fetched=5)))  # removes one file
    files, version = live_files(table), table.version()
    done = maintain(table, max_files=4, retention=timedelta(days=7), full_vacuum=False)
    assert (done.partitions_compacted, done.files_compacted, done.files_vacuumed) == (0, 0, 0)
    assert live_files(table) == files
    assert len(disk_files(tmp_path, DAY0)) == 4  # the removed file is kept for time travel
    location = resolve_location(tmp_path)
    old = open_table(location, JOBS_TABLE, as_of=version - 1)
    assert old is not None
    assert table_rows(old, latest=False)["d0-0"]["state"] == "Running"


def test_a_full_vacuum_deletes_a_file_no_commit_refers_to(tmp_path: Path) -> None:
    table = _partition_of_files(tmp_path, {0: 1})
    folder = tmp_path / JOBS_TABLE / f"{DATE_COLUMN}={DAY0.isoformat()}"
    orphan = folder / "part-00000-left-by-a-killed-writer.parquet"
    pq.write_table(rows(job("ghost", "Running")), orphan)
    kept = maintain(table, max_files=4, retention=timedelta(0), full_vacuum=False)
    assert (kept.files_vacuumed, orphan.exists()) == (0, True)
    done = maintain(table, max_files=4, retention=timedelta(0), full_vacuum=True)
    assert (done.files_vacuumed, done.full_vacuum) == (1, True)
    assert not orphan.exists()
    assert sorted(table_rows(table)) == ["d0-0"]


def test_maintain_compacts_an_unpartitioned_ledger_table(tmp_path: Path) -> None:
    location = resolve_location(tmp_path)
    for hour in range(4):
        append_run(location, {"started": T0 + timedelta(hours=hour), "status": "ok"})
    (runs,) = ledger_tables(location)
    assert len(list((tmp_path / RUNS_TABLE).glob("*.parquet"))) == 4
    done = maintain(runs, max_files=4, retention=timedelta(0), full_vacuum=False, partitioned=False)
    assert done == Maintenance(1, 4, 4, 4, False)
    assert len(list((tmp_path / RUNS_TABLE).glob("*.parquet"))) == 1
    assert [r["started"] for r in read_runs(location)] == [
        T0 + timedelta(hours=h) for h in range(4)
    ]


def test_maintain_keeps_removed_files_younger_than_a_sub_hour_retention(tmp_path: Path) -> None:
    table = _partition_of_files(tmp_path, {0: 1})
    upsert(table, rows(job("d0-0", "Failed", 0, fetched=5)))  # removes one file
    done = maintain(table, max_files=4, retention=timedelta(minutes=30), full_vacuum=False)
    assert done.files_vacuumed == 0
    assert len(disk_files(tmp_path, DAY0)) == 2


# --- tables not ours, old layout, as_of ---------------------------------------------------


def test_a_delta_table_not_written_by_us_is_refused(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "plain" / JOBS_TABLE), pa.table({"x": [1, 2]}))
    DeltaTable.create(
        str(tmp_path / "foreign" / JOBS_TABLE),
        schema=JOBS_TABLE_SCHEMA,
        description="nightly build stats, v3",
    )
    for name in ("plain", "foreign"):
        location = resolve_location(tmp_path / name)
        with pytest.raises(
            StoreError, match="not written by cijobs_analytics; export into another"
        ):
            open_table(location, JOBS_TABLE)
        with pytest.raises(StoreError, match="not written by cijobs_analytics"):
            read_status(tmp_path / name)


def test_a_table_of_a_newer_schema_version_says_to_upgrade(tmp_path: Path) -> None:
    DeltaTable.create(
        str(tmp_path / JOBS_TABLE),
        schema=JOBS_TABLE_SCHEMA,
        description=DESCRIPTION.format(name=JOBS_TABLE, version=99),
    )
    with pytest.raises(StoreError, match=r"newer cijobs_analytics \(schema version 99.*upgrade"):
        open_table(resolve_location(tmp_path), JOBS_TABLE)
    with pytest.raises(StoreError, match="upgrade cijobs_analytics"):
        read_status(tmp_path)


@pytest.mark.parametrize(
    "relative",
    [
        "_ledger/coverage.parquet",
        "_ledger/runs.parquet",
        f"{JOBS_TABLE}/date=2026-11-01/part-{'0' * 32}.parquet",
    ],
)
def test_the_old_parquet_layout_is_refused_with_what_to_do(tmp_path: Path, relative: str) -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), path)
    expected = r"plain-Parquet layout.*export into a new location \(cijobs export --dataset NEW_DIR"
    with pytest.raises(StoreError, match=expected):
        check_layout(resolve_location(tmp_path))
    with pytest.raises(StoreError, match="plain-Parquet layout"):
        read_status(tmp_path)


def test_check_layout_accepts_our_tables_and_refuses_a_file(tmp_path: Path) -> None:
    location, table = new_jobs_table(tmp_path / "ds")
    upsert(table, rows(job("a", "Running")))
    append_run(location, {"started": T0, "status": "ok"})
    check_layout(location)  # no error: this is the layout we write
    assert read_status(tmp_path / "ds").jobs == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a dataset directory"):
        check_layout(resolve_location(tmp_path / "file"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (3, 3),
        ("12", 12),
        (" 7 ", 7),
        (datetime(2026, 11, 1, 8, tzinfo=UTC), datetime(2026, 11, 1, 8, tzinfo=UTC)),
        (
            datetime(2026, 11, 1, 8, tzinfo=timezone(timedelta(hours=8))),
            datetime(2026, 11, 1, 0, tzinfo=UTC),
        ),
        ("2026-11-01T08:00:00+08:00", datetime(2026, 11, 1, 0, tzinfo=UTC)),
        ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ],
)
def test_resolve_as_of_accepts_versions_and_aware_times(
    value: int | str | datetime, expected: int | datetime
) -> None:
    got = resolve_as_of(value)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(got, datetime):
        assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "0 or more"),
        (True, "a table version or a time"),
        (False, "a table version or a time"),
        (datetime(2026, 11, 1, 8), "naive"),
        ("2026-11-01T08:00:00", "no time zone"),
        ("-3", "not an ISO 8601 time"),
        ("yesterday", "not an ISO 8601 time"),
        ("", "not an ISO 8601 time"),
    ],
)
def test_resolve_as_of_refuses_negatives_bools_naive_times_and_garbage(
    value: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_as_of(value)


def test_resolve_as_of_refuses_unicode_digits_with_a_config_error() -> None:
    with pytest.raises(ConfigError):
        resolve_as_of("²")


def test_open_table_as_of_a_version_or_time_reads_that_version(tmp_path: Path) -> None:
    location, table = new_jobs_table(tmp_path)
    upsert(table, rows(job("a", "Running")))
    upsert(table, rows(job("a", "Success", fetched=5), job("b", "Running")))
    for as_of in (1, "1"):
        old = open_table(location, JOBS_TABLE, as_of=as_of)
        assert old is not None
        assert {k: r["state"] for k, r in table_rows(old, latest=False).items()} == {"a": "Running"}
    now = open_table(location, JOBS_TABLE, as_of=datetime.now(UTC) + timedelta(minutes=1))
    assert now is not None
    assert now.version() == 2
    with pytest.raises(StoreError, match="has no version at"):
        open_table(location, JOBS_TABLE, as_of=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(StoreError, match="has no version at version 9"):
        open_table(location, JOBS_TABLE, as_of=9)


# --- ledgers ------------------------------------------------------------------------------

KEY = CoverageKey("b-1", "ap-guangzhou", "Transcode", None, None)


def win(
    start_h: float, end_h: float, jobs: int, fetched_h: float = 0, key: CoverageKey = KEY
) -> Window:
    return Window(
        key,
        T0 + timedelta(hours=start_h),
        T0 + timedelta(hours=end_h),
        jobs,
        max(1, -(-jobs // 100)),
        T0 + timedelta(hours=fetched_h),
    )


def spans(ledger: list[Window]) -> list[tuple[float, float, int]]:
    h = timedelta(hours=1)
    return [((w.start - T0) / h, (w.end - T0) / h, w.jobs) for w in ledger]


def test_coverage_merges_small_neighbours_and_keeps_busy_windows(tmp_path: Path) -> None:
    location = resolve_location(tmp_path)
    ledger = add_coverage(
        location, [], [win(0, 1, 30), win(1, 2, 40), win(2, 3, 500), win(4, 5, 1)]
    )
    assert spans(ledger) == [(0, 2, 70), (2, 3, 500), (4, 5, 1)]
    assert spans(read_coverage(location)) == spans(ledger)
    table = open_table(location, COVERAGE_TABLE)
    assert table is not None
    assert (tmp_path / COVERAGE_TABLE / "_delta_log").is_dir()
    assert query(table, "SELECT * FROM t").column_names == COVERAGE_SCHEMA.names


def test_the_sure_count_of_a_trimmed_window_is_what_the_newer_one_cannot_have_taken(
    tmp_path: Path,
) -> None:
    location = resolve_location(tmp_path)
    ledger = add_coverage(location, [], [win(0, 10, 500)])
    assert [w.min_jobs for w in ledger] == [500]
    # The overlap re-read of the last hour lists 40 jobs: at most 40 of the 500 were there.
    ledger = add_coverage(location, ledger, [win(9, 11, 40, fetched_h=12)])
    assert [(w.jobs, w.min_jobs) for w in ledger] == [(450, 460), (40, 40)]
    assert [w.min_jobs for w in read_coverage(location)] == [460, 40]
    # A cut in the middle leaves two pieces that cannot tell how the rest divides.
    ledger = add_coverage(location, ledger, [win(2, 3, 7, fetched_h=13)])
    assert [w.min_jobs for w in ledger] == [0, 7, 0, 40]


def test_newer_coverage_trims_what_it_overlaps_and_older_coverage_stays_readable(
    tmp_path: Path,
) -> None:
    location = resolve_location(tmp_path)
    first = add_coverage(location, [], [win(0, 4, 400)])
    ledger = add_coverage(location, first, [win(3, 5, 300, fetched_h=9)])
    assert spans(ledger) == [(0, 3, 300), (3, 5, 300)]
    assert spans(read_coverage(location)) == spans(ledger)
    # Each update is one commit overwriting the table: version 1 still holds the first ledger.
    assert spans(read_coverage(location, as_of=1)) == [(0, 4, 400)]
    assert read_coverage(location, as_of=datetime(2000, 1, 1, tzinfo=UTC)) == []


def test_covered_ranges_and_gaps() -> None:
    other_queue = KEY._replace(queue="q1")
    ledger = [win(0, 2, 200), win(2, 3, 200), win(5, 6, 200), win(6, 8, 200, key=other_queue)]
    h = timedelta(hours=1)
    got = covered_ranges(ledger, KEY)
    assert [((a - T0) / h, (b - T0) / h) for a, b in got] == [(0, 3), (5, 6)]
    # A window over every queue also covers one queue.
    got = covered_ranges(ledger, other_queue)
    assert [((a - T0) / h, (b - T0) / h) for a, b in got] == [(0, 3), (5, 8)]
    gaps = missing_ranges(covered_ranges(ledger, KEY), T0 - h, T0 + 7 * h)
    assert [((a - T0) / h, (b - T0) / h) for a, b in gaps] == [(-1, 0), (3, 5), (6, 7)]


def test_runs_ledger_appends_one_commit_per_run(tmp_path: Path) -> None:
    location = resolve_location(tmp_path)
    append_run(location, {"started": T0, "status": "ok", "requests": 3})
    append_run(
        location,
        {"started": T0 + timedelta(hours=1), "status": "failed", "errors": "ServerError: x"},
    )
    runs = read_runs(location)
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert runs[0]["requests"] == 3
    assert runs[1]["errors"] == "ServerError: x"
    assert runs[1]["rows"] is None
    assert list(runs[0]) == RUNS_SCHEMA.names
    table = open_table(location, RUNS_TABLE)
    assert table is not None
    assert table.version() == 2  # created, then one append per run


# --- lock ---------------------------------------------------------------------------------


def test_second_lock_is_refused_at_once_and_names_the_holder(tmp_path: Path) -> None:
    with DatasetLock(tmp_path):
        holder = read_lock_holder(tmp_path)
        assert holder is not None
        assert holder["pid"] == os.getpid()
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"already running.*pid {os.getpid()}"):
            DatasetLock(tmp_path).acquire()
        assert time.monotonic() - started < 0.5
    assert not (tmp_path / ".lock").exists()
    assert read_lock_holder(tmp_path) is None


def test_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path\n"
        "from cijobs_analytics._lock import DatasetLock\n"
        "lock = DatasetLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"held"
            with pytest.raises(StoreError, match=f"pid {proc.pid}"):
                DatasetLock(tmp_path).acquire()
        finally:
            proc.kill()
            proc.wait()
    # The holder died without releasing: its lock is stale and is taken over.
    with DatasetLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    stale = {"pid": 999_999_999, "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (tmp_path / ".lock").write_text(json.dumps(stale))
    with DatasetLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_lock_left_on_another_host_is_not_taken_over(tmp_path: Path) -> None:
    other = {"pid": 1, "host": "elsewhere.example", "started": "2026-01-01T00:00:00"}
    (tmp_path / ".lock").write_text(json.dumps(other))
    with pytest.raises(StoreError, match=r"another host.*delete the file"):
        DatasetLock(tmp_path).acquire()


def _poll_status(dataset: str, until: float) -> None:
    while time.time() < until:
        read_lock_holder(Path(dataset))


def test_a_status_reading_the_lock_never_makes_an_export_give_up(tmp_path: Path) -> None:
    """`cijobs status` holds a shared lock for an instant; a starting export waits it out."""
    import multiprocessing

    until = time.time() + 1.5
    reader = multiprocessing.get_context("spawn").Process(
        target=_poll_status, args=(str(tmp_path), until)
    )
    reader.start()
    taken, refused = 0, []
    while time.time() < until:
        try:
            with DatasetLock(tmp_path):
                taken += 1
        except StoreError as exc:
            refused.append(str(exc))
    reader.join()
    assert reader.exitcode == 0
    assert refused == []
    assert taken > 100


# --- status -------------------------------------------------------------------------------


def _dataset_with_history(root: Path) -> Location:
    location, table = new_jobs_table(root)
    upsert(
        table,
        rows(
            job("a", "Running"),
            job("b", "Success"),
            job("c", "Pause", not_found_at=T0),
            job("d", "Submitted", DAY),
        ),
    )
    add_coverage(location, [], [win(0, 2, 200), win(3, 4, 200)])
    append_run(
        location,
        {
            "started": T0,
            "finished": T0 + timedelta(minutes=2),
            "status": "ok",
            "requests": 7,
            "retries": 0,
            "rows": 4,
            "jobs_new": 4,
            "jobs_updated": 0,
        },
    )
    return location


def test_status_reports_coverage_gaps_open_jobs_and_last_run(tmp_path: Path) -> None:
    _dataset_with_history(tmp_path)
    status = read_status(tmp_path)
    assert (status.jobs, status.partitions, status.files) == (4, 2, 2)
    assert status.version == 1
    assert status.committed is not None
    assert status.committed.tzinfo is not None
    assert status.bytes > 0
    assert status.open_jobs == {"Running": 1, "Submitted": 1}
    assert status.not_found == 1
    assert (status.runs, status.gaps, status.running) == (1, 1, None)
    data = json.loads(status.to_json())
    assert data["coverage"][0]["gaps"] == [
        ["2026-11-01T10:00:00+00:00", "2026-11-01T11:00:00+00:00"]
    ]
    # Jobs counted in the data (a, b, c lie in the first window, d in no window), not the
    # 400 the windows were listed with; both windows now hold fewer than they were listed with.
    assert data["coverage"][0]["jobs"] == 3
    assert [(w["listed"], w["stored"]) for w in data["coverage"][0]["lost"]] == [(200, 3), (200, 0)]
    assert data["lost"] == status.lost == 2
    assert data["last_run"]["requests"] == 7
    text = str(status)
    assert "4 jobs in 2 partitions (2 files" in text
    assert "open jobs: 2 (1 Running, 1 Submitted)" in text
    assert "open jobs the service no longer knows: 1" in text
    assert "gap 2026-11-01T10:00:00+00:00 .. 2026-11-01T11:00:00+00:00" in text
    assert (
        "lost 2026-11-01T08:00:00+00:00 .. 2026-11-01T10:00:00+00:00: 200 listed, 3 stored; "
        "list again with cijobs export --refetch 2026-11-01T08:00:00+00:00 "
        "2026-11-01T10:00:00+00:00"
    ) in text
    assert "last run: ok" in text


def test_status_names_the_running_export(tmp_path: Path) -> None:
    _dataset_with_history(tmp_path)
    with DatasetLock(tmp_path):
        running = read_status(tmp_path).running
    assert running is not None
    assert running["pid"] == os.getpid()
    assert read_status(tmp_path).running is None


def test_status_as_of_an_earlier_version_shows_that_version(tmp_path: Path) -> None:
    location = _dataset_with_history(tmp_path)
    table = open_table(location, JOBS_TABLE)
    assert table is not None
    upsert(table, rows(job("a", "Success", fetched=5), job("e", "Running", 2 * DAY)))
    assert read_status(tmp_path).jobs == 5
    old = read_status(tmp_path, as_of=1)
    assert (old.version, old.jobs, old.partitions) == (1, 4, 2)
    assert old.open_jobs == {"Running": 1, "Submitted": 1}


def test_status_of_a_missing_directory_or_a_non_dataset_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a directory"):
        read_status(tmp_path / "nope")
    with pytest.raises(StoreError, match="not a cijobs dataset"):
        read_status(tmp_path)
