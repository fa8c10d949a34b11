"""``kill -9`` at random moments of an export never leaves a dataset that reads wrong.

An export subprocess runs against an emulator in this process and is killed with SIGKILL at
ten seeded random moments; between kills the emulator finishes jobs and creates new ones, so
every run has work. After each kill the dataset must read (no half file), show no duplicate
once deduplicated as readers do, and hold every job the coverage ledger claims. A last run,
left to finish, must equal the emulator's truth with one file per partition.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from cijobs_analytics import _partitions as parts
from cijobs_analytics._ledger import read_coverage
from cijobs_analytics._status import read_status
from cijobs_analytics.emulator import Emulator

KILLS = 10


def _command(emu: Emulator, root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cijobs_analytics",
        "export",
        "--dataset",
        str(root),
        "--bucket",
        emu.bucket,
        "--region",
        emu.region,
        "--endpoint",
        emu.url,
        "--since",
        "3d",
        # A wide overlap gives every run, not only the first, hours to list and merge again.
        "--overlap",
        "12h",
        "--workers",
        "4",
        "--batch-rows",
        "50",
        "--no-progress",
    ]


def _check_readable(root: Path, emu: Emulator, run_started: float) -> int:
    """The dataset reads, shows each job once, and holds every job its ledger claims."""
    glob = str(root / "jobs" / "**" / "*.parquet")
    con = duckdb.connect()
    if not list(root.glob("jobs/*/*.parquet")):
        return 0
    raw, distinct = con.execute(
        "SELECT count(*), count(DISTINCT job_id) FROM read_parquet(?, hive_partitioning=true)",
        [glob],
    ).fetchone() or (0, 0)
    deduped = con.execute(
        "SELECT count(*) FROM (SELECT job_id FROM read_parquet(?, hive_partitioning=true) "
        "QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY fetched_at DESC) = 1)",
        [glob],
    ).fetchone()
    assert deduped == (distinct,)
    if raw != distinct:
        # Only a rewrite interrupted between its rename and its deletes leaves a job twice,
        # and then only inside a partition of two files.
        assert any(len(files) > 1 for files in parts.list_partitions(root).values())
    stored = {}
    for files in parts.list_partitions(root).values():
        table = parts.dedupe(
            parts.read_partition(files, ("job_id", "state", "fetched_at", "creation_time"))
        )
        stored.update({r["job_id"]: r for r in table.to_pylist()})
    truth = {j.job_id: j for j in emu.truth()}
    assert set(stored) <= set(truth)
    for window in read_coverage(root):
        claimed = [
            j
            for j in emu.truth(start=window.start, end=window.end, tags=[window.key.tag])
            if j.creation_time.timestamp() < run_started - 1
        ]
        lost = [j.job_id for j in claimed if j.job_id not in stored]
        assert not lost, f"coverage claims {window} but {len(lost)} of its jobs are missing"
    read_status(root)  # the ledgers read too
    return len(stored)


@pytest.mark.slow
def test_sigkill_at_ten_random_moments_then_a_full_run_equals_truth(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(jobs=12000, days=2.0, seed=21, end=None, latency_ms=150)
    root = tmp_path / "ds"
    rng = random.Random(20261101)
    env = emu.environ()
    progress: list[int] = []
    alive: list[bool] = []
    for _ in range(KILLS):
        started = time.time()
        with subprocess.Popen(
            _command(emu, root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as proc:
            time.sleep(rng.uniform(0.8, 4.0))
            alive.append(proc.poll() is None)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stderr is not None
            stderr = proc.stderr.read().decode()
        assert "Traceback" not in stderr, stderr
        progress.append(_check_readable(root, emu, started))
        emu.advance(finish=0.5, new_jobs=rng.randint(0, 30))

    assert progress[-1] > 0, progress
    # Most kills must land while the export runs, or the test proves little.
    assert sum(alive) >= KILLS // 2, alive
    done = subprocess.run(
        _command(emu, root), env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    stored = {}
    for files in parts.list_partitions(root).values():
        assert len(files) == 1
        table = parts.read_partition(files, ("job_id", "state", "end_time"))
        stored.update({r["job_id"]: (r["state"], r["end_time"]) for r in table.to_pylist()})
    truth = {j.job_id: (j.state, j.end_time) for j in emu.truth()}
    assert stored == truth
    assert not list(root.rglob("*.tmp"))
    assert not (root / ".lock").exists()
