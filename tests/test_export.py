"""The incremental export against the emulator, on a local disk and in an S3 bucket.

Every test that writes a dataset runs twice (the ``target`` fixture): into a local directory
and into a prefix of a bucket on moto's S3 server, a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import QueryBuilder
from store_targets import KINDS, Target, make_target

import cijobs_analytics as cj
from cijobs_analytics import store
from cijobs_analytics._ledger import CoverageKey, read_coverage, read_runs
from cijobs_analytics._lock import open_lock
from cijobs_analytics._plan import OpenJob, choose_windows
from cijobs_analytics._tables import open_table, upsert
from cijobs_analytics.client import CIClient
from cijobs_analytics.config import Credentials
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.errors import AuthError, ConfigError, StoreError
from cijobs_analytics.schema import JOBS_SCHEMA

FIELDS = ("tag", "queue_id", "state", "code", "creation_time", "start_time", "end_time")


def client_of(emu: Emulator, **kwargs: Any) -> CIClient:
    return CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url, **kwargs)


def truth(emu: Emulator, **filters: Any) -> dict[str, dict[str, Any]]:
    return {j.job_id: {k: getattr(j, k) for k in FIELDS} for j in emu.truth(**filters)}


def assert_equal_truth(target: Target, emu: Emulator) -> None:
    got, want = target.rows(FIELDS), truth(emu)
    assert set(got) == set(want), (len(set(want) - set(got)), len(set(got) - set(want)))
    wrong = [job_id for job_id in want if got[job_id] != want[job_id]]
    assert not wrong, (wrong[:3], [(got[w], want[w]) for w in wrong[:1]])


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """An empty dataset location: a local directory, then an S3 prefix."""
    return make_target(request.param, tmp_path, request)


@pytest.fixture
def live(make_emulator: Callable[..., Emulator]) -> Emulator:
    """A private emulator whose history ends now, so new jobs land after it."""
    return make_emulator(jobs=1500, days=2.0, seed=5, end=None)


def test_two_phase_export_equals_truth_and_a_third_run_commits_nothing(
    live: Emulator, target: Target
) -> None:
    client = client_of(live)
    first = target.export(client, since="3d")
    assert first.jobs_new == 1500
    assert first.rows_written == 1500  # each job written once: no compaction, no copy
    assert first.open_jobs > 0
    assert_equal_truth(target, live)
    after_first = target.version()

    advanced = live.advance(finish=1.0, new_jobs=40)
    assert advanced.finished
    second = target.export(client)
    assert_equal_truth(target, live)
    assert second.jobs_new == 40
    assert second.jobs_updated == len(advanced.finished)
    assert second.requests < first.requests
    assert second.version > after_first

    version = target.version()
    third = target.export(client)
    assert (third.rows_written, third.jobs_new, third.jobs_updated) == (0, 0, 0)
    assert third.partitions_rewritten == 0
    assert target.version() == version  # nothing committed to the jobs table
    assert_equal_truth(target, live)
    runs = read_runs(target.location)
    assert [r["status"] for r in runs] == ["ok", "ok", "ok"]
    assert runs[-1]["requests"] == third.requests
    assert runs[-1]["version"] == version
    assert json.loads(runs[0]["arguments"])["since"] == "3d"
    assert "last run: ok" in str(target.status())


def test_time_travel_shows_the_first_runs_state(live: Emulator, target: Target) -> None:
    client = client_of(live)
    first = target.export(client, since="3d")
    before = target.rows(("state",))
    open_before = {j for j, r in before.items() if r["state"] in ("Submitted", "Running")}
    assert open_before
    moment = datetime.now(UTC)
    time.sleep(0.05)
    live.advance(finish=1.0, new_jobs=25)
    target.export(client)
    assert target.rows(("state",)) != before
    assert target.rows(("state",), as_of=first.version) == before
    assert target.rows(("state",), as_of=moment.isoformat()) == before
    past = target.status(as_of=first.version)
    assert (past.jobs, past.version, past.runs) == (1500, first.version, 1)
    assert past.committed is not None
    assert past.committed < (target.status().committed or past.committed)
    assert sum(past.open_jobs.values()) == len(open_before)


def test_deltalake_polars_and_connect_read_the_same_rows(live: Emulator, target: Target) -> None:
    target.export(client_of(live), since="3d")
    ours = target.rows(("state", "fetched_at"))
    # deltalake's own engine; its to_pyarrow_dataset() path can abort the process at exit
    builder = QueryBuilder().register("jobs", target.jobs_table())
    lake = pa.table(builder.execute("SELECT job_id, state, fetched_at FROM jobs").read_all())
    assert lake.num_rows == len(ours) == 1500
    assert {
        r["job_id"]: {"state": r["state"], "fetched_at": r["fetched_at"]} for r in lake.to_pylist()
    } == ours
    frame = (
        pl.scan_delta(f"{target.uri}/jobs", storage_options=target.storage_options)
        .select("job_id", "state")
        .collect()
    )
    assert frame.height == 1500
    assert dict(zip(frame["job_id"], frame["state"], strict=True)) == {
        j: r["state"] for j, r in ours.items()
    }


def test_per_queue_export_and_a_later_all_queue_run_share_coverage(
    live: Emulator, target: Target
) -> None:
    client = client_of(live)
    target.export(client, since="3d", queue_ids=live.queue_ids, tags=["Transcode"])
    want = {k: v for k, v in truth(live).items() if v["tag"] == "Transcode"}
    assert target.rows(FIELDS) == want
    keys = {(w.key.tag, w.key.queue) for w in read_coverage(target.location)}
    assert keys == {("Transcode", q) for q in live.queue_ids}
    status = target.status()
    assert status.gaps == 0
    assert len(status.coverage) == len(live.queue_ids)


def test_open_job_the_service_no_longer_knows_is_marked_and_kept(
    live: Emulator, target: Target
) -> None:
    client = client_of(live)
    target.export(client, since="3d")
    ghost_time = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    ghost = {name: None for name in JOBS_SCHEMA.names}
    ghost.update(
        job_id="j" + "0" * 31,
        tag="Transcode",
        state="Running",
        creation_time=ghost_time,
        fetched_at=ghost_time,
    )
    table = open_table(target.location, "jobs")
    assert table is not None
    upsert(table, pa.Table.from_pylist([ghost], JOBS_SCHEMA))

    result = target.export(client)
    got = target.rows(("state", "not_found_at"))[ghost["job_id"]]
    assert got["state"] == "Running"
    assert got["not_found_at"] is not None
    assert result.jobs_updated >= 1
    # Marked once, never looked up again: the next run leaves it alone.
    assert target.status().not_found == 1
    again = target.export(client)
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
    with pytest.raises(ConfigError, match="apply to s3:// and cos:// datasets only"):
        cj.export(client, tmp_path / "ds", since="3d", storage_options={"region": "x"})
    with pytest.raises(ConfigError, match="unsupported scheme gs://"):
        cj.export(client, "gs://bucket/ds", since="3d", progress=False)
    assert not (tmp_path / "ds").exists()


def test_failed_run_is_recorded_without_secrets(live: Emulator, target: Target) -> None:
    bad = CIClient(
        live.bucket,
        live.region,
        Credentials("AKIDnotthis", "topsecretvalue"),
        endpoint=live.url,
        max_retries=0,
    )
    with pytest.raises(AuthError):
        target.export(bad, since="1d")
    (run,) = read_runs(target.location)
    assert run["status"] == "failed"
    assert "AuthError" in run["errors"]
    assert "topsecretvalue" not in json.dumps(run, default=str)
    assert target.status().running is None


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_export_status_and_a_refused_concurrent_export(live: Emulator, target: Target) -> None:
    env = target.child_env(live)
    service = ["--bucket", live.bucket, "--region", live.region, "--endpoint", live.url]
    dataset = ["--dataset", target.uri]
    done = _cli(env, "export", *dataset, *service, "--since", "3d", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "1500 new" in done.stdout
    status = _cli(env, "status", *dataset, "--format", "json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["jobs"] == 1500
    assert data["gaps"] == 0
    assert data["last_run"]["status"] == "ok"
    assert data["running"] is None

    with open_lock(target.location):
        started = time.monotonic()
        refused = _cli(env, "export", *dataset, *service, "--no-progress")
        elapsed = time.monotonic() - started
        running = json.loads(_cli(env, "status", *dataset, "--format", "json").stdout)
    assert refused.returncode == 1
    assert "an export is already running" in refused.stderr
    assert running["running"]["host"]
    assert elapsed < 10  # interpreter start-up included; the lock check itself is immediate

    usage = _cli(env, "export", "--dataset", target.uri + "-new", *service, "--since", "soon")
    assert usage.returncode == 2
    assert "--since" in usage.stderr
    sql = _cli(
        env, "sql", *dataset, "--as-of", "1", "--format", "csv", "SELECT count(*) AS n FROM jobs"
    )
    assert sql.returncode == 0, sql.stderr
    assert sql.stdout == "n\n1500\n"


def test_concurrent_export_in_process_is_refused_in_well_under_a_second(
    live: Emulator, target: Target
) -> None:
    client = client_of(live)
    with open_lock(target.location):
        started = time.monotonic()
        with pytest.raises(StoreError, match="an export is already running"):
            target.export(client, since="1d")
        assert time.monotonic() - started < 2
    assert read_runs(target.location) == []


def test_state_filter_and_until_shape_the_coverage(live: Emulator, target: Target) -> None:
    client = client_of(live)
    until = live.end - timedelta(hours=12)
    result = target.export(client, since="3d", until=until, states=["Failed"], tags=["Transcode"])
    want = set(truth(live, end=until, tags=["Transcode"], states=["Failed"]))
    assert set(target.rows(())) == want
    assert result.open_jobs == 0
    windows = read_coverage(target.location)
    assert {w.key.states for w in windows} == {"Failed"}
    assert max(w.end for w in windows) == until
    # The same filter again lists nothing new: the coverage of that filter is complete.
    again = target.export(client, until=until, states=["Failed"], tags=["Transcode"])
    assert (again.jobs_new, again.rows_written) == (0, 0)


def test_status_of_a_directory_that_is_no_dataset_exits_1(live: Emulator, tmp_path: Path) -> None:
    done = _cli(live.environ(), "status", "--dataset", str(tmp_path))
    assert done.returncode == 1
    assert "not a cijobs dataset" in done.stderr


def test_open_jobs_of_a_state_filtered_export_are_refreshed_when_they_leave_it(
    live: Emulator, target: Target
) -> None:
    client = client_of(live)
    open_states = ["Pause", "Running", "Submitted"]
    target.export(client, since="3d", states=open_states)
    first = target.rows(FIELDS)
    assert first
    assert {row["state"] for row in first.values()} <= set(open_states)
    live.advance(finish=1.0)
    target.export(client, states=open_states)
    now = truth(live)
    after = target.rows(FIELDS)
    assert {job_id: after[job_id] for job_id in first} == {job_id: now[job_id] for job_id in first}
    assert all(after[job_id]["state"] not in open_states for job_id in first)


def test_first_run_writes_each_job_once_whatever_the_batch(
    make_emulator: Callable[..., Emulator], target: Target
) -> None:
    # Two whole UTC days, so both partitions hold hundreds of jobs whatever the clock says.
    emu = make_emulator(jobs=1200, days=2.0, seed=9, end=datetime(2026, 11, 3, tzinfo=UTC))
    client = client_of(emu)
    small = target.export(
        client, since="2026-10-31T00:00:00Z", until="2026-11-03T00:00:00Z", batch_rows=100
    )
    # Flushes of 100 rows insert new jobs only: no stored row is written again, so the rows
    # written are the jobs (the plain-Parquet store wrote them twice).
    assert (small.jobs_new, small.rows_written, small.partitions_rewritten) == (1200, 1200, 2)
    assert small.files_compacted == 0
    assert_equal_truth(target, emu)


def test_partitions_reaching_the_file_limit_are_compacted_and_old_files_vacuumed(
    make_emulator: Callable[..., Emulator], target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator(jobs=1200, days=2.0, seed=9, end=datetime(2026, 11, 3, tzinfo=UTC))
    monkeypatch.setattr(store, "MAX_PARTITION_FILES", 3)
    monkeypatch.setattr(store, "RETENTION", timedelta(0))
    result = target.export(
        client_of(emu),
        since="2026-10-31T00:00:00Z",
        until="2026-11-03T00:00:00Z",
        batch_rows=100,
    )
    # About 6 flushes of ~100 rows per partition leave 6 files each: compacted to one, and
    # the compacted files removed from storage at once (retention 0).
    assert result.jobs_new == 1200
    assert result.files_compacted >= 2 * 3
    assert result.rows_compacted == 1200
    assert result.files_vacuumed >= result.files_compacted
    status = target.status()
    assert (status.partitions, status.files, status.jobs) == (2, 2, 1200)
    assert_equal_truth(target, emu)


def test_file_count_and_storage_stay_bounded_over_many_runs(
    live: Emulator, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "MAX_PARTITION_FILES", 4)
    monkeypatch.setattr(store, "RETENTION", timedelta(0))
    client = client_of(live)
    target.export(client, since="3d")
    sizes = []
    for _ in range(12):
        live.advance(finish=0.5, new_jobs=5)
        target.export(client)
        status = target.status()
        sizes.append(status.bytes)
        assert status.files <= status.partitions * 4
    assert_equal_truth(target, live)
    # The bytes of the live files grow with the jobs only (12 x 5 new ones), not with the runs.
    assert max(sizes) < 1.5 * sizes[0]


def test_two_writers_that_collide_neither_lose_nor_double_a_job(
    make_emulator: Callable[..., Emulator], target: Target
) -> None:
    """Delta's conflict detection, not only our lock: two upserts from the same version."""
    emu = make_emulator(jobs=400, days=1.0, seed=3, end=datetime(2026, 11, 3, tzinfo=UTC))
    rows = cj.fetch_jobs(client_of(emu), "2026-11-01", "2026-11-04", progress=False)
    target.export(client_of(emu), since="2026-11-01", until="2026-11-01T00:00:01Z")
    halves = [rows.slice(0, 250), rows.slice(150)]  # 100 jobs in both
    tables = [open_table(target.location, "jobs") for _ in halves]
    errors: list[BaseException] = []

    def write(table: Any, part: pa.Table) -> None:
        try:
            upsert(table, part)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=pair) for pair in zip(tables, halves, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stored = target.rows(("state",))
    assert set(stored) == set(rows["job_id"].to_pylist())


def test_readers_without_this_package_see_one_row_per_job(live: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    cj.export(client_of(live), root, since="3d", progress=False)
    live.advance(finish=1.0, new_jobs=10)
    cj.export(client_of(live), root, progress=False)
    files = Target("local", str(root)).jobs_table().file_uris()
    total, distinct = duckdb.connect().execute(
        "SELECT count(*), count(DISTINCT job_id) FROM read_parquet(?)", [files]
    ).fetchone() or (0, 0)
    assert total == distinct == 1510


def _drop_one_data_file(target: Target) -> str:
    """Delete one live data file of the jobs table from storage, as a careless hand would."""
    (uri,) = target.jobs_table().file_uris()[:1]
    relative = uri.split(f"{target.uri.rstrip('/')}/", 1)[1]
    if target.kind == "local":
        (Path(target.uri) / relative).unlink()
    else:
        import obstore

        obstore.delete(target.location.object_store(), relative)
    return relative


def test_a_lost_data_file_is_dropped_and_its_days_listed_again(
    live: Emulator, target: Target
) -> None:
    client = client_of(live)
    target.export(client, since="3d")
    lost = _drop_one_data_file(target)
    day = lost.split("date=", 1)[1][:10]
    with pytest.raises(StoreError, match="a data file is missing"):
        target.status()
    healed = target.export(client)
    # The day's only file held every job of that day: all of them come back, nothing else.
    assert healed.jobs_new == sum(
        1 for j in live.truth() if j.creation_time.date().isoformat() == day
    )
    assert_equal_truth(target, live)
    assert target.status().lost == 0


def test_status_counts_jobs_from_the_data_and_names_ranges_to_refetch(
    live: Emulator, target: Target
) -> None:
    client = client_of(live)
    target.export(client, since="3d", tags=["Transcode", "Snapshot"])
    status = target.status()
    counts = {c.key.tag: c.jobs for c in status.coverage}
    stored = target.rows(("tag",))
    assert counts == {
        tag: sum(1 for r in stored.values() if r["tag"] == tag) for tag in ("Transcode", "Snapshot")
    }
    assert status.lost == 0
    # Jobs vanish from the data behind the ledger's back (a delete by hand, say).
    table = target.jobs_table()
    table.delete("tag = 'Snapshot'")
    after = target.status()
    snapshot = next(c for c in after.coverage if c.key.tag == "Snapshot")
    assert snapshot.jobs == 0
    assert snapshot.lost
    assert all(held == 0 for _, _, _, held in snapshot.lost)
    assert "cijobs export --refetch" in str(after)
    assert json.loads(after.to_json())["lost"] == len(snapshot.lost)
    # An ordinary run does not bring them back (the ledger says they are covered) ...
    target.export(client, tags=["Snapshot"])
    assert target.status().lost == len(snapshot.lost)
    # ... a refetch of the ranges status names does.
    ranges = [(start, end) for start, end, _, _ in snapshot.lost]
    again = target.export(client, tags=["Snapshot"], refetch=ranges)
    assert again.jobs_new == counts["Snapshot"]
    assert target.status().lost == 0
    assert {j for j, r in target.rows(("tag",)).items() if r["tag"] == "Snapshot"} == {
        j for j, r in stored.items() if r["tag"] == "Snapshot"
    }


def test_refetch_ranges_are_checked(live: Emulator, tmp_path: Path) -> None:
    client = client_of(live)
    with pytest.raises(ConfigError, match=r"refetch range .* is empty"):
        cj.export(client, tmp_path / "ds", since="1d", refetch=[("2026-11-02", "2026-11-01")])
    with pytest.raises(ConfigError, match="naive"):
        cj.export(
            client,
            tmp_path / "ds",
            since="1d",
            refetch=[(datetime(2026, 11, 1), datetime(2026, 11, 2))],
        )
    assert not (tmp_path / "ds").exists()
