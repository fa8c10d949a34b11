"""``kill -9`` at random moments of an export never leaves a dataset that reads wrong.

An export subprocess runs against an emulator in this process and is killed with SIGKILL at
seeded random moments; between kills the emulator finishes jobs and creates new ones, so every
run has work. After each kill the dataset must read (the last committed version), hold each job
once, and hold every job the coverage ledger claims; the lock a killed run left is taken over
by the next one. A last run, left to finish, must equal the emulator's truth. It runs on a
local directory and in an S3 bucket.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from store_targets import KINDS, Target, make_target

from cijobs_analytics._ledger import read_coverage
from cijobs_analytics.emulator import Emulator

KILLS = 8


def _command(emu: Emulator, target: Target) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cijobs_analytics",
        "export",
        "--dataset",
        target.uri,
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


def _check_readable(target: Target, emu: Emulator, run_started: float) -> int:
    """The dataset reads, shows each job once, and holds every job its ledger claims."""
    try:
        target.jobs_table()
    except Exception:  # killed before its first commit: no table yet
        return 0
    stored = target.rows(("state", "creation_time"))  # asserts one row per job
    truth = {j.job_id: j for j in emu.truth()}
    assert set(stored) <= set(truth)
    for window in read_coverage(target.location):
        claimed = [
            j
            for j in emu.truth(start=window.start, end=window.end, tags=[window.key.tag])
            if j.creation_time.timestamp() < run_started - 1
        ]
        lost = [j.job_id for j in claimed if j.job_id not in stored]
        assert not lost, f"coverage claims {window} but {len(lost)} of its jobs are missing"
    target.status()  # the ledgers read too
    return len(stored)


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return make_target(request.param, tmp_path, request)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_a_full_run_equals_truth(
    make_emulator: Callable[..., Emulator], target: Target
) -> None:
    emu = make_emulator(jobs=12000, days=2.0, seed=21, end=None, latency_ms=150)
    rng = random.Random(20261101)
    env = target.child_env(emu)
    progress: list[int] = []
    alive: list[bool] = []
    for _ in range(KILLS):
        started = time.time()
        with subprocess.Popen(
            _command(emu, target), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as proc:
            time.sleep(rng.uniform(1.5, 5.0))
            alive.append(proc.poll() is None)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stderr is not None
            stderr = proc.stderr.read().decode()
        assert "Traceback" not in stderr, stderr
        progress.append(_check_readable(target, emu, started))
        emu.advance(finish=0.5, new_jobs=rng.randint(0, 30))

    assert progress[-1] > 0, progress
    # Most kills must land while the export runs, or the test proves little.
    assert sum(alive) >= KILLS // 2, alive
    done = subprocess.run(
        _command(emu, target), env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    stored = target.rows(("state", "end_time"))
    assert {j: (r["state"], r["end_time"]) for j, r in stored.items()} == {
        j.job_id: (j.state, j.end_time) for j in emu.truth()
    }
    assert target.status().running is None
