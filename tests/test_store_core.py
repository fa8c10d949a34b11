"""The storage core of the export: partitions, upsert, ledgers, lock and status, on real files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_reference import merge_rows, write_partition

from cijobs_analytics import _partitions as parts
from cijobs_analytics._ledger import (
    COVERAGE_SCHEMA,
    CoverageKey,
    Window,
    add_coverage,
    append_run,
    covered_ranges,
    missing_ranges,
    read_coverage,
    read_runs,
)
from cijobs_analytics._lock import DatasetLock, read_lock_holder
from cijobs_analytics._rewrite import RewriteOutcome, rewrite_partition
from cijobs_analytics._status import read_status
from cijobs_analytics.errors import StoreError
from cijobs_analytics.schema import JOBS_SCHEMA

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


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
    return {
        "job_id": job_id,
        "state": state,
        "creation_time": T0 + timedelta(minutes=minutes),
        "fetched_at": T0 + timedelta(hours=1, minutes=fetched),
        **extra,
    }


def by_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {r["job_id"]: r for r in table.to_pylist()}


# --- upsert -------------------------------------------------------------------------------


def _merge(root: Path, stored: pa.Table, incoming: pa.Table, **options: Any) -> Any:
    """The reference merge, after checking that the export's streaming rewrite agrees.

    ``stored`` is written as a partition first: one file per copy of a job, since only a
    rewrite interrupted between its rename and its deletes leaves a job in two files.
    """
    expected = merge_rows(stored, incoming, **options)
    root = root / f"case-{len(list(root.glob('case-*')))}"
    day = date(2026, 11, 1)
    layers: list[list[dict[str, Any]]] = []
    copies: dict[str, int] = {}
    for row in stored.to_pylist():
        copy = copies[row["job_id"]] = copies.get(row["job_id"], -1) + 1
        if copy == len(layers):
            layers.append([])
        layers[copy].append(row)
    files = [
        write_partition(root, day, pa.Table.from_pylist(layer, schema=JOBS_SCHEMA), [])
        for layer in layers
    ]
    out = rewrite_partition(root, day, files, incoming, **options)
    assert (out.jobs_new, out.jobs_updated) == (expected.jobs_new, expected.jobs_updated)
    if files or out.written:
        assert _stored_rows(root, day) == by_id(parts.dedupe(expected.table))
    return expected


def test_merge_appends_new_jobs_sorted_and_compaction_sorts_all(tmp_path: Path) -> None:
    stored = rows(job("b", "Success", 5))
    out = _merge(tmp_path, stored, rows(job("d", "Running", 9), job("a", "Running", 1)))
    assert out.table["job_id"].to_pylist() == ["b", "a", "d"]
    assert (out.jobs_new, out.jobs_updated, out.changed) == (2, 0, True)
    out = _merge(tmp_path, out.table, parts.JOBS_SCHEMA.empty_table(), compact=True)
    assert out.table["job_id"].to_pylist() == ["a", "b", "d"]


def test_merge_newest_fetched_at_wins_for_open_jobs(tmp_path: Path) -> None:
    stored = rows(job("a", "Running", fetched=0, progress=10))
    newer = rows(job("a", "Running", fetched=5, progress=50))
    older = rows(job("a", "Submitted", fetched=-5))
    assert by_id(_merge(tmp_path, stored, newer).table)["a"]["progress"] == 50
    out = _merge(tmp_path, stored, older)
    assert by_id(out.table)["a"]["state"] == "Running"
    assert not out.changed


def test_merge_finished_row_is_final(tmp_path: Path) -> None:
    stored = rows(job("a", "Failed", fetched=0, code="E1"))
    out = _merge(tmp_path, stored, rows(job("a", "Running", fetched=30)))
    assert by_id(out.table)["a"]["state"] == "Failed"
    assert not out.changed
    # An open stored row is replaced by a finished one even if that one was fetched earlier.
    out = _merge(
        tmp_path, rows(job("a", "Running", fetched=9)), rows(job("a", "Success", fetched=1))
    )
    assert by_id(out.table)["a"]["state"] == "Success"
    assert out.jobs_updated == 1


def test_merge_same_content_later_fetch_changes_nothing(tmp_path: Path) -> None:
    stored = rows(job("a", "Running", watermark_template_ids=["t1"], extra=[("k", "v")]))
    again = rows(job("a", "Running", fetched=60, watermark_template_ids=["t1"], extra=[("k", "v")]))
    out = _merge(tmp_path, stored, again)
    assert (out.changed, out.jobs_new, out.jobs_updated) == (False, 0, 0)
    assert by_id(out.table)["a"]["fetched_at"] == T0 + timedelta(hours=1)
    changed = rows(job("a", "Running", fetched=60, watermark_template_ids=["t2"]))
    assert _merge(tmp_path, stored, changed).jobs_updated == 1


def test_merge_resolves_duplicates_left_by_an_interrupted_rewrite(tmp_path: Path) -> None:
    stored = rows(
        job("a", "Running", fetched=0), job("a", "Success", fetched=10), job("b", "Running")
    )
    out = _merge(tmp_path, stored, parts.JOBS_SCHEMA.empty_table(), compact=True)
    assert out.table.num_rows == 2
    assert by_id(out.table)["a"]["state"] == "Success"
    assert out.changed


def test_merge_marks_open_jobs_not_found_and_keeps_them(tmp_path: Path) -> None:
    stored = rows(job("a", "Running"), job("b", "Success"))
    seen = T0 + timedelta(days=1)
    out = _merge(
        tmp_path,
        stored,
        parts.JOBS_SCHEMA.empty_table(),
        not_found=frozenset({"a", "b"}),
        marked_at=seen,
    )
    got = by_id(out.table)
    assert got["a"]["not_found_at"] == seen
    assert got["a"]["fetched_at"] == seen
    assert got["a"]["state"] == "Running"
    assert got["b"]["not_found_at"] is None  # a finished row is final
    assert out.jobs_updated == 1


# --- partition files ----------------------------------------------------------------------


def test_write_partition_replaces_old_files_with_one_zstd_file(tmp_path: Path) -> None:
    day = date(2026, 11, 1)
    first = write_partition(tmp_path, day, rows(job("a", "Running")), [])
    second = write_partition(tmp_path, day, rows(job("a", "Success")), [first])
    assert parts.list_partitions(tmp_path) == {day: [second]}
    assert not first.exists()
    meta = pq.ParquetFile(second).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(second).metadata[parts.VERSION_KEY] == b"1"
    assert pq.read_schema(second).names == JOBS_SCHEMA.names
    assert second.parent.name == "date=2026-11-01"


def test_temporary_files_are_invisible_and_removed(tmp_path: Path) -> None:
    day = date(2026, 11, 1)
    kept = write_partition(tmp_path, day, rows(job("a", "Running")), [])
    (kept.parent / "part-0123.parquet.tmp").write_bytes(b"half a file")
    assert parts.list_partitions(tmp_path) == {day: [kept]}
    assert parts.remove_temporaries(tmp_path) == 1
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]


def test_readers_dedupe_two_files_of_an_interrupted_rewrite(tmp_path: Path) -> None:
    """Between the rename and the delete both files exist; a deduping reader sees one row."""
    day = date(2026, 11, 1)
    write_partition(tmp_path, day, rows(job("a", "Running", fetched=0)), [])
    write_partition(tmp_path, day, rows(job("a", "Success", fetched=5)), [])
    files = parts.list_partitions(tmp_path)[day]
    assert len(files) == 2
    table = parts.dedupe(parts.read_partition(files))
    assert table["state"].to_pylist() == ["Success"]
    con = duckdb.connect()
    glob = str(tmp_path / "jobs" / "**" / "*.parquet")
    n = con.execute(
        "SELECT count(*) FROM (SELECT job_id FROM read_parquet(?, hive_partitioning=true) "
        "QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY fetched_at DESC) = 1)",
        [glob],
    ).fetchone()
    assert n == (1,)


@pytest.mark.parametrize(
    ("relative", "content"),
    [
        ("jobs/notes.txt", b"hello"),
        ("jobs/date=2026-11-01/notes.txt", b"hello"),
        ("jobs/date=2026-11-01/part-" + "0" * 32 + ".parquet", b"not parquet at all"),
    ],
)
def test_foreign_files_are_named_in_the_error(
    tmp_path: Path, relative: str, content: bytes
) -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    def read_all() -> None:
        for files in parts.list_partitions(tmp_path).values():
            parts.read_partition(files)

    with pytest.raises(StoreError, match=path.name):
        read_all()


def test_parquet_not_written_by_us_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "jobs" / "date=2026-11-01"
    folder.mkdir(parents=True)
    path = folder / ("part-" + "1" * 32 + ".parquet")
    pq.write_table(pa.table({"x": [1, 2]}), path)
    with pytest.raises(StoreError, match="not written by cijobs_analytics"):
        parts.read_partition([path])
    meta = {parts.VERSION_KEY: b"1"}
    pq.write_table(
        pa.table({"job_id": ["a"], "colour": ["red"]}).replace_schema_metadata(meta), path
    )
    with pytest.raises(StoreError, match="'colour'"):
        parts.read_partition([path])


def _old_version_file(tmp_path: Path, table: pa.Table, version: int) -> Path:
    folder = tmp_path / "jobs" / "date=2026-11-01"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("part-" + "2" * 32 + ".parquet")
    pq.write_table(table.replace_schema_metadata({parts.VERSION_KEY: str(version).encode()}), path)
    return path


def test_older_schema_without_not_found_at_is_upgraded_on_read(tmp_path: Path) -> None:
    path = _old_version_file(tmp_path, rows(job("a", "Running")).drop(["not_found_at"]), 0)
    table = parts.read_partition([path])
    assert table.schema.names == JOBS_SCHEMA.names
    assert table["not_found_at"].to_pylist() == [None]


def test_older_schema_with_a_retyped_column_says_to_re_export(tmp_path: Path) -> None:
    old = rows(job("a", "Running")).drop(["progress"]).append_column("progress", pa.array(["10"]))
    path = _old_version_file(tmp_path, old, 0)
    with pytest.raises(StoreError, match="re-export into a new directory"):
        parts.read_partition([path])


def test_newer_schema_version_says_to_upgrade(tmp_path: Path) -> None:
    path = _old_version_file(tmp_path, rows(job("a", "Running")), 99)
    with pytest.raises(StoreError, match="upgrade cijobs_analytics"):
        parts.read_partition([path])


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
    ledger = add_coverage(
        tmp_path, [], [win(0, 1, 30), win(1, 2, 40), win(2, 3, 500), win(4, 5, 1)]
    )
    assert spans(ledger) == [(0, 2, 70), (2, 3, 500), (4, 5, 1)]
    assert spans(read_coverage(tmp_path)) == spans(ledger)
    assert pq.read_schema(tmp_path / "_ledger" / "coverage.parquet").names == COVERAGE_SCHEMA.names


def test_newer_coverage_trims_what_it_overlaps(tmp_path: Path) -> None:
    ledger = add_coverage(tmp_path, [], [win(0, 4, 400)])
    ledger = add_coverage(tmp_path, ledger, [win(3, 5, 300, fetched_h=9)])
    assert spans(ledger) == [(0, 3, 300), (3, 5, 300)]


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


def test_runs_ledger_appends(tmp_path: Path) -> None:
    append_run(tmp_path, {"started": T0, "status": "ok", "requests": 3})
    append_run(tmp_path, {"started": T0, "status": "failed", "errors": "ServerError: x"})
    runs = read_runs(tmp_path)
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert runs[0]["requests"] == 3
    assert runs[1]["errors"] == "ServerError: x"


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


# --- status -------------------------------------------------------------------------------


def test_status_reports_coverage_gaps_open_jobs_and_last_run(tmp_path: Path) -> None:
    write_partition(
        tmp_path,
        date(2026, 11, 1),
        rows(job("a", "Running"), job("b", "Success"), job("c", "Pause", not_found_at=T0)),
        [],
    )
    add_coverage(tmp_path, [], [win(0, 2, 200), win(3, 4, 200)])
    append_run(
        tmp_path,
        {
            "started": T0,
            "finished": T0,
            "status": "ok",
            "requests": 7,
            "retries": 0,
            "rows": 3,
            "jobs_new": 3,
            "jobs_updated": 0,
        },
    )
    status = read_status(tmp_path)
    assert (status.jobs, status.partitions, status.files) == (3, 1, 1)
    assert status.open_jobs == {"Running": 1}
    assert status.not_found == 1
    assert status.gaps == 1
    data = json.loads(status.to_json())
    assert data["coverage"][0]["gaps"] == [
        ["2026-11-01T10:00:00+00:00", "2026-11-01T11:00:00+00:00"]
    ]
    assert data["last_run"]["requests"] == 7
    text = str(status)
    assert "gap 2026-11-01T10:00:00+00:00 .. 2026-11-01T11:00:00+00:00" in text
    assert "last run: ok" in text


def test_status_of_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a directory"):
        read_status(tmp_path / "nope")
    with pytest.raises(StoreError, match="not a cijobs dataset"):
        read_status(tmp_path)


# --- streaming rewrite --------------------------------------------------------------------


def _stored_rows(root: Path, day: date) -> dict[str, dict[str, Any]]:
    return by_id(parts.dedupe(parts.read_partition(parts.list_partitions(root)[day])))


def test_streaming_rewrite_follows_the_merge_rules(tmp_path: Path) -> None:
    day = date(2026, 11, 1)
    seen = T0 + timedelta(days=1)
    first = rows(job("a", "Running", 1), job("b", "Running", 2), job("c", "Success", 3))
    second = rows(job("a", "Success", 1, fetched=5))  # a crash left two files
    write_partition(tmp_path, day, first, [])
    write_partition(tmp_path, day, second, [])
    files = parts.list_partitions(tmp_path)[day]
    incoming = rows(job("b", "Failed", 2, fetched=9), job("d", "Submitted", 4, fetched=9))
    expected = merge_rows(
        parts.read_partition(files), incoming, not_found=frozenset({"c"}), marked_at=seen
    )
    out = rewrite_partition(
        tmp_path, day, files, incoming, not_found=frozenset({"c"}), marked_at=seen
    )
    assert out == RewriteOutcome(True, 4, 1, 1)
    (new_file,) = parts.list_partitions(tmp_path)[day]
    assert _stored_rows(tmp_path, day) == by_id(expected.table)
    order = parts.read_partition([new_file])["job_id"].to_pylist()
    # Stored winners first (in file order), then the replaced and new rows, sorted.
    assert sorted(order[:2]) == ["a", "c"]
    assert order[2:] == ["b", "d"]
    assert pq.read_schema(new_file).metadata[parts.VERSION_KEY] == b"1"


def test_streaming_rewrite_marks_not_found_and_leaves_unchanged_partitions_alone(
    tmp_path: Path,
) -> None:
    day = date(2026, 11, 1)
    file = write_partition(tmp_path, day, rows(job("a", "Running"), job("b", "Pause")), [])
    again = rows(job("a", "Running", fetched=30))
    assert rewrite_partition(tmp_path, day, [file], again) == RewriteOutcome(False, 0, 0, 0)
    assert parts.list_partitions(tmp_path)[day] == [file]
    seen = T0 + timedelta(days=2)
    out = rewrite_partition(
        tmp_path, day, [file], again, not_found=frozenset({"b"}), marked_at=seen
    )
    assert out == RewriteOutcome(True, 2, 0, 1)
    got = _stored_rows(tmp_path, day)
    assert got["b"]["not_found_at"] == seen
    assert got["a"]["not_found_at"] is None
    assert not file.exists()


def test_streaming_rewrite_upgrades_an_old_file_in_batches(tmp_path: Path) -> None:
    from cijobs_analytics import _rewrite

    day = date(2026, 11, 1)
    many = rows(*(job(f"j{i:05d}", "Success", i / 100) for i in range(3 * _rewrite.BATCH_SIZE)))
    path = _old_version_file(tmp_path, many.drop(["not_found_at"]), 0)
    out = rewrite_partition(tmp_path, day, [path], rows(job("new", "Running", 1)), compact=True)
    assert out == RewriteOutcome(True, many.num_rows + 1, 1, 0)
    (new_file,) = parts.list_partitions(tmp_path)[day]
    assert pq.read_schema(new_file).names == JOBS_SCHEMA.names
    assert pq.ParquetFile(new_file).metadata.num_rows == many.num_rows + 1


# --- appends and compaction ---------------------------------------------------------------


def test_append_adds_a_file_of_new_jobs_and_leaves_the_stored_file_alone(tmp_path: Path) -> None:
    day = date(2026, 11, 1)
    file = write_partition(tmp_path, day, rows(job("a", "Running", 1), job("b", "Success", 2)), [])
    before = file.stat().st_mtime_ns
    incoming = rows(job("d", "Running", 4), job("c", "Submitted", 3), job("c", "Running", 3, 5))
    out = rewrite_partition(tmp_path, day, [file], incoming, append=True)
    assert out == RewriteOutcome(True, 2, 2, 0, appended=True)
    files = parts.list_partitions(tmp_path)[day]
    assert len(files) == 2
    assert file in files
    assert file.stat().st_mtime_ns == before
    (added,) = [f for f in files if f != file]
    table = parts.read_job_file(added)
    # Deduplicated (the newest of c) and sorted, as a rewrite would append them.
    assert table["job_id"].to_pylist() == ["c", "d"]
    assert table["state"].to_pylist() == ["Running", "Running"]
    assert pq.read_schema(added).metadata[parts.VERSION_KEY] == b"1"
    raw = parts.read_partition(files, ("job_id",))["job_id"].to_pylist()
    assert sorted(raw) == ["a", "b", "c", "d"]  # no job twice: readers need not even dedupe


def test_append_rewrites_instead_when_a_job_is_stored_or_marked(tmp_path: Path) -> None:
    day = date(2026, 11, 1)
    file = write_partition(tmp_path, day, rows(job("a", "Running", 1), job("b", "Running", 2)), [])
    incoming = rows(job("a", "Success", 1, fetched=9), job("c", "Running", 3))
    out = rewrite_partition(tmp_path, day, [file], incoming, append=True)
    assert out == RewriteOutcome(True, 3, 1, 1)
    (merged,) = parts.list_partitions(tmp_path)[day]
    assert {k: r["state"] for k, r in _stored_rows(tmp_path, day).items()} == {
        "a": "Success",
        "b": "Running",
        "c": "Running",
    }
    seen = T0 + timedelta(days=1)
    out = rewrite_partition(
        tmp_path,
        day,
        [merged],
        rows(job("d", "Running", 4)),
        not_found=frozenset({"b"}),
        marked_at=seen,
        append=True,
    )
    assert out == RewriteOutcome(True, 4, 1, 1)
    assert len(parts.list_partitions(tmp_path)[day]) == 1
    assert _stored_rows(tmp_path, day)["b"]["not_found_at"] == seen


def test_appended_files_change_only_when_rewritten_or_compacted(tmp_path: Path) -> None:
    day = date(2026, 11, 1)
    write_partition(tmp_path, day, rows(job("a", "Running", 1)), [])
    first = parts.list_partitions(tmp_path)[day]
    rewrite_partition(tmp_path, day, first, rows(job("b", "Success", 2)), append=True)
    files = parts.list_partitions(tmp_path)[day]
    assert len(files) == 2
    # Two files sharing no job are no damage: a repeat of a stored job rewrites nothing.
    repeat = rows(job("a", "Running", 1, fetched=30))
    assert rewrite_partition(tmp_path, day, files, repeat, append=True) == RewriteOutcome(
        False, 0, 0, 0
    )
    assert parts.list_partitions(tmp_path)[day] == files
    empty = JOBS_SCHEMA.empty_table()
    assert rewrite_partition(tmp_path, day, files, empty, compact=True) == RewriteOutcome(
        True, 2, 0, 0
    )
    (one,) = parts.list_partitions(tmp_path)[day]
    assert sorted(parts.read_job_file(one)["job_id"].to_pylist()) == ["a", "b"]
    assert not any(f.exists() for f in files)


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
