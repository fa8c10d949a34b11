"""The incremental export against the emulator: equal to its truth, run after run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_reference import write_partition

import cijobs_analytics as cj
from cijobs_analytics import _partitions as parts
from cijobs_analytics._ledger import CoverageKey, read_coverage, read_runs
from cijobs_analytics._lock import DatasetLock
from cijobs_analytics._plan import OpenJob, choose_windows
from cijobs_analytics.client import CIClient
from cijobs_analytics.config import Credentials
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.errors import AuthError, ConfigError, StoreError
from cijobs_analytics.schema import JOBS_SCHEMA
from cijobs_analytics.store import read_status

FIELDS = ("tag", "queue_id", "state", "code", "creation_time", "start_time", "end_time")


def client_of(emu: Emulator, **kwargs: Any) -> CIClient:
    return CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url, **kwargs)


def stored(root: Path) -> dict[str, dict[str, Any]]:
    """The dataset as a reader sees it: deduped by job_id, the winning row of each."""
    out: dict[str, dict[str, Any]] = {}
    for files in parts.list_partitions(root).values():
        table = parts.dedupe(parts.read_partition(files, ("job_id", "fetched_at", *FIELDS)))
        for row in table.to_pylist():
            out[row["job_id"]] = {k: row[k] for k in FIELDS}
    return out


def truth(emu: Emulator) -> dict[str, dict[str, Any]]:
    return {j.job_id: {k: getattr(j, k) for k in FIELDS} for j in emu.truth()}


def snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in (root / "jobs").rglob("*") if p.is_file()}


def assert_equal_truth(root: Path, emu: Emulator) -> None:
    got, want = stored(root), truth(emu)
    assert set(got) == set(want), (len(set(want) - set(got)), len(set(got) - set(want)))
    wrong = [job_id for job_id in want if got[job_id] != want[job_id]]
    assert not wrong, (wrong[:3], [(got[w], want[w]) for w in wrong[:1]])


@pytest.fixture
def live(make_emulator: Callable[..., Emulator]) -> Emulator:
    """A private emulator whose history ends now, so new jobs land after it."""
    return make_emulator(jobs=1500, days=2.0, seed=5, end=None)


def test_two_phase_export_equals_truth_and_a_third_run_rewrites_nothing(
    live: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    client = client_of(live)
    first = cj.export(client, root, since="3d", progress=False)
    assert first.jobs_new == 1500
    assert first.open_jobs > 0
    assert_equal_truth(root, live)
    assert all(len(files) == 1 for files in parts.list_partitions(root).values())

    advanced = live.advance(finish=1.0, new_jobs=40)
    assert advanced.finished
    second = cj.export(client, root, progress=False)
    assert_equal_truth(root, live)
    assert second.jobs_new == 40
    assert second.jobs_updated == len(advanced.finished)
    assert second.requests < first.requests

    before = snapshot(root)
    third = cj.export(client, root, progress=False)
    assert (third.rows_written, third.jobs_new, third.jobs_updated) == (0, 0, 0)
    assert third.partitions_rewritten == 0
    assert snapshot(root) == before
    assert_equal_truth(root, live)
    runs = read_runs(root)
    assert [r["status"] for r in runs] == ["ok", "ok", "ok"]
    assert runs[-1]["requests"] == third.requests
    assert json.loads(runs[0]["arguments"])["since"] == "3d"
    assert "last run: ok" in str(read_status(root))


def test_per_queue_export_and_a_later_all_queue_run_share_coverage(
    live: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    client = client_of(live)
    cj.export(
        client, root, since="3d", queue_ids=live.queue_ids, tags=["Transcode"], progress=False
    )
    want = {k: v for k, v in truth(live).items() if v["tag"] == "Transcode"}
    assert stored(root) == want
    keys = {(w.key.tag, w.key.queue) for w in read_coverage(root)}
    assert keys == {("Transcode", q) for q in live.queue_ids}
    status = read_status(root)
    assert status.gaps == 0
    assert len(status.coverage) == len(live.queue_ids)


def test_open_job_the_service_no_longer_knows_is_marked_and_kept(
    live: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    client = client_of(live)
    cj.export(client, root, since="3d", progress=False)
    ghost_time = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    ghost = {name: None for name in JOBS_SCHEMA.names}
    ghost.update(
        job_id="j" + "0" * 31,
        tag="Transcode",
        state="Running",
        creation_time=ghost_time,
        fetched_at=ghost_time,
    )
    day = ghost_time.date()
    files = parts.list_partitions(root)[day]
    table = pa.concat_tables(
        [parts.read_partition(files), pa.Table.from_pylist([ghost], JOBS_SCHEMA)]
    )
    write_partition(root, day, table, files)

    result = cj.export(client, root, progress=False)
    got = {
        r["job_id"]: r for r in parts.read_partition(parts.list_partitions(root)[day]).to_pylist()
    }
    assert got[ghost["job_id"]]["state"] == "Running"
    assert got[ghost["job_id"]]["not_found_at"] is not None
    assert result.jobs_updated >= 1
    # Marked once, never looked up again: the next run leaves it alone.
    assert read_status(root).not_found == 1
    again = cj.export(client, root, progress=False)
    assert again.jobs_updated == 0


def test_cheapest_refresh_plan() -> None:
    key = CoverageKey("b", "r", "Transcode", None, None)
    t = datetime(2026, 11, 1, tzinfo=UTC)
    crowded = (key, t, t + timedelta(hours=1))
    sparse = (key, t + timedelta(hours=1), t + timedelta(hours=2))
    jobs = {
        crowded: [OpenJob(f"a{i}", "Transcode", None, t) for i in range(35)],
        sparse: [OpenJob("b0", "Transcode", None, t + timedelta(hours=1))],
    }
    # 35 ids cost 4 lookups; the crowded window costs 1 page: re-read it, look b0 up by id.
    assert choose_windows(jobs, {crowded: 1, sparse: 1}, []) == {crowded}
    # A window that costs 5 pages is dearer than 4 lookups.
    assert choose_windows(jobs, {crowded: 5, sparse: 1}, []) == set()


def test_old_schema_partition_is_read_and_upgraded(live: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    client = client_of(live)
    cj.export(client, root, since="3d", progress=False)
    day, files = next(iter(parts.list_partitions(root).items()))
    old = parts.read_partition(files).drop(["not_found_at"])
    old = old.replace_schema_metadata({parts.VERSION_KEY: b"0"})
    pq.write_table(old, files[0])
    cj.export(client, root, progress=False)
    (new_file,) = parts.list_partitions(root)[day]
    assert pq.read_schema(new_file).metadata[parts.VERSION_KEY] == b"1"
    assert "not_found_at" in pq.read_schema(new_file).names
    assert_equal_truth(root, live)


def test_first_run_needs_since_and_bad_arguments_are_config_errors(
    live: Emulator, tmp_path: Path
) -> None:
    client = client_of(live)
    with pytest.raises(ConfigError, match="first export needs since"):
        cj.export(client, tmp_path / "ds", progress=False)
    with pytest.raises(ConfigError, match="not a time span"):
        cj.export(client, tmp_path / "ds", since="3d", overlap="soon", progress=False)
    with pytest.raises(ConfigError, match="states"):
        cj.export(client, tmp_path / "ds", since="3d", states=["Done"], progress=False)
    assert not (tmp_path / "ds").exists()


def test_failed_run_is_recorded_without_secrets(live: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    bad = CIClient(
        live.bucket,
        live.region,
        Credentials("AKIDnotthis", "topsecretvalue"),
        endpoint=live.url,
        max_retries=0,
    )
    with pytest.raises(AuthError):
        cj.export(bad, root, since="1d", progress=False)
    (run,) = read_runs(root)
    assert run["status"] == "failed"
    assert "AuthError" in run["errors"]
    assert "topsecretvalue" not in json.dumps(run, default=str)
    assert not (root / ".lock").exists()


def _cli(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", *args],
        env=emu.environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_export_status_and_a_refused_concurrent_export(live: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    target = ["--bucket", live.bucket, "--region", live.region, "--endpoint", live.url]
    done = _cli(live, "export", "--dataset", str(root), *target, "--since", "3d", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "1500 new" in done.stdout
    status = _cli(live, "status", "--dataset", str(root), "--format", "json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["jobs"] == 1500
    assert data["gaps"] == 0
    assert data["last_run"]["status"] == "ok"
    assert data["running"] is None

    with DatasetLock(root):
        started = time.monotonic()
        refused = _cli(live, "export", "--dataset", str(root), *target, "--no-progress")
        elapsed = time.monotonic() - started
    assert refused.returncode == 1
    assert "an export is already running" in refused.stderr
    assert f"pid {os.getpid()}" in refused.stderr
    assert elapsed < 10  # interpreter start-up included; the lock check itself is immediate

    usage = _cli(live, "export", "--dataset", str(tmp_path / "new"), *target, "--since", "soon")
    assert usage.returncode == 2
    assert "--since" in usage.stderr


def test_concurrent_export_in_process_is_refused_in_well_under_a_second(
    live: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    client = client_of(live)
    with DatasetLock(root):
        started = time.monotonic()
        with pytest.raises(StoreError, match="an export is already running"):
            cj.export(client, root, since="1d", progress=False)
        assert time.monotonic() - started < 0.5
    assert read_runs(root) == []


def test_readers_see_no_duplicates_with_duckdb(live: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    cj.export(client_of(live), root, since="3d", progress=False)
    con = duckdb.connect()
    total, distinct = con.execute(
        "SELECT count(*), count(DISTINCT job_id) FROM read_parquet(?, hive_partitioning=true)",
        [str(root / "jobs" / "**" / "*.parquet")],
    ).fetchone() or (0, 0)
    assert total == distinct == 1500


def test_state_filter_and_until_shape_the_coverage(live: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    client = client_of(live)
    until = live.end - timedelta(hours=12)
    result = cj.export(
        client, root, since="3d", until=until, states=["Failed"], tags=["Transcode"], progress=False
    )
    want = {j.job_id for j in live.truth(end=until, tags=["Transcode"], states=["Failed"])}
    assert set(stored(root)) == want
    assert result.open_jobs == 0
    windows = read_coverage(root)
    assert {w.key.states for w in windows} == {"Failed"}
    assert max(w.end for w in windows) == until
    # The same filter again lists nothing new: the coverage of that filter is complete.
    again = cj.export(
        client, root, until=until, states=["Failed"], tags=["Transcode"], progress=False
    )
    assert (again.jobs_new, again.rows_written) == (0, 0)


def test_status_of_a_directory_that_is_no_dataset_exits_1(live: Emulator, tmp_path: Path) -> None:
    done = _cli(live, "status", "--dataset", str(tmp_path))
    assert done.returncode == 1
    assert "not a cijobs dataset" in done.stderr


def test_open_jobs_of_a_state_filtered_export_are_refreshed_when_they_leave_it(
    live: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    client = client_of(live)
    open_states = ["Pause", "Running", "Submitted"]
    cj.export(client, root, since="3d", states=open_states, progress=False)
    first = stored(root)
    assert first
    assert {row["state"] for row in first.values()} <= set(open_states)
    live.advance(finish=1.0)
    cj.export(client, root, states=open_states, progress=False)
    now = truth(live)
    after = stored(root)
    assert {job_id: after[job_id] for job_id in first} == {job_id: now[job_id] for job_id in first}
    assert all(after[job_id]["state"] not in open_states for job_id in first)


def test_first_run_writes_each_job_once_plus_one_compaction(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    # Two whole UTC days, so both partitions hold hundreds of jobs whatever the clock says.
    emu = make_emulator(jobs=1200, days=2.0, seed=9, end=datetime(2026, 11, 3, tzinfo=UTC))
    client = client_of(emu)
    window = {"since": "2026-10-31T00:00:00Z", "until": "2026-11-03T00:00:00Z"}

    whole = cj.export(client, tmp_path / "one", progress=False, batch_rows=100_000, **window)
    # Everything fits one flush: each partition is written once, and nothing is compacted.
    assert (whole.jobs_new, whole.rows_written, whole.partitions_rewritten) == (1200, 1200, 2)

    small = cj.export(client, tmp_path / "many", progress=False, batch_rows=100, **window)
    # Flushes of 100 rows append a file each and rewrite nothing stored; the end of the run
    # compacts each partition once. Before, every flush rewrote its partitions whole.
    assert small.jobs_new == 1200
    assert (small.rows_written, small.partitions_rewritten) == (2 * 1200, 2)
    assert [len(f) for f in parts.list_partitions(tmp_path / "many").values()] == [1, 1]
    assert_equal_truth(tmp_path / "many", emu)
    assert stored(tmp_path / "many") == stored(tmp_path / "one")


def test_a_partition_reaching_the_file_limit_is_compacted_during_the_run(
    make_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cijobs_analytics import store

    emu = make_emulator(jobs=1200, days=2.0, seed=9, end=datetime(2026, 11, 3, tzinfo=UTC))
    monkeypatch.setattr(store, "MAX_PARTITION_FILES", 3)
    result = cj.export(
        client_of(emu),
        tmp_path,
        since="2026-10-31T00:00:00Z",
        until="2026-11-03T00:00:00Z",
        progress=False,
        batch_rows=100,
    )
    # About 6 appends of ~100 rows per partition: the third file triggers a compaction, so
    # rows are written more than twice, yet far fewer times than by a rewrite per flush.
    assert result.jobs_new == 1200
    assert 2 * 1200 < result.rows_written < 4 * 1200
    assert [len(f) for f in parts.list_partitions(tmp_path).values()] == [1, 1]
    assert_equal_truth(tmp_path, emu)


def test_a_partition_left_in_several_files_is_compacted_by_the_next_run(
    live: Emulator, tmp_path: Path
) -> None:
    from cijobs_analytics._rewrite import rewrite_partition

    root = tmp_path / "ds"
    client = client_of(live)
    cj.export(client, root, since="3d", progress=False)
    day, files = next(iter(parts.list_partitions(root).items()))
    (file,) = files
    # What a killed run leaves: its stored jobs moved into appended files, none twice.
    table = parts.read_job_file(file)
    half = table.num_rows // 2
    (file.parent / "part-keep.tmp").write_bytes(b"")  # and a temporary file it was writing
    file.unlink()
    for piece in (table.slice(0, half), table.slice(half)):
        current = parts.list_partitions(root).get(day, [])
        assert rewrite_partition(root, day, current, piece, append=True).appended
    assert len(parts.list_partitions(root)[day]) == 2

    again = cj.export(client, root, progress=False)
    (one,) = parts.list_partitions(root)[day]
    assert parts.read_job_file(one).num_rows == table.num_rows
    assert again.rows_written >= table.num_rows
    assert not list(root.rglob("*.tmp"))
    assert_equal_truth(root, live)
