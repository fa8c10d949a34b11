"""`cijobs sql` reads the dataset and nothing else unless given --allow-writes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import cijobs_analytics as cj
from cijobs_analytics.emulator import Emulator


@pytest.fixture
def dataset(make_emulator: Callable[..., Emulator], tmp_path: Path) -> Path:
    emu = make_emulator(jobs=60, days=1.0, seed=12, end=None)
    path = tmp_path / "dataset"
    client = cj.CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url)
    cj.export(client, path, since="2d", progress=False)
    return path


def _sql(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", "sql", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_query_reads_the_dataset(dataset: Path, tmp_path: Path) -> None:
    done = _sql(tmp_path, "--dataset", str(dataset), "--format", "csv", "SELECT count(*) FROM jobs")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "count_star()\n60\n"


def test_copy_to_a_file_needs_allow_writes(dataset: Path, tmp_path: Path) -> None:
    copy = "COPY (SELECT job_id FROM jobs) TO 'copied.csv'"
    refused = _sql(tmp_path, "--dataset", str(dataset), copy)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "cijobs: error: COPY statements are refused: cijobs sql reads the dataset only; pass "
        "--allow-writes to run statements that write files or change the session"
    ]
    assert not (tmp_path / "copied.csv").exists()

    allowed = _sql(tmp_path, "--dataset", str(dataset), "--allow-writes", copy)
    assert allowed.returncode == 0, allowed.stderr
    assert len((tmp_path / "copied.csv").read_text().splitlines()) == 1 + 60


def test_reading_another_file_needs_allow_writes(dataset: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("word\nhidden\n")
    query = f"SELECT word FROM read_csv('{secret}')"  # noqa: S608 - the test's own file
    refused = _sql(tmp_path, "--dataset", str(dataset), query)
    assert refused.returncode == 1
    (line,) = refused.stderr.splitlines()
    assert line.startswith("cijobs: error: query failed: Permission Error: ")
    assert "hidden" not in refused.stdout

    allowed = _sql(tmp_path, "--dataset", str(dataset), "--format", "csv", "--allow-writes", query)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == "word\nhidden\n"
