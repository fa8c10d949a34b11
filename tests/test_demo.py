"""`cijobs demo`: the newcomer's first command works end to end and never eats user data."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable
from job_datasets import sample_jobs, write_dataset

import cijobs_analytics as cj
from cijobs_analytics.demo import build_demo_dataset
from cijobs_analytics.errors import ConfigError


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", "demo", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_writes_a_dataset_and_a_report_and_says_what_to_try_next(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = _demo("--out", str(out), "--jobs", "1500")
    assert run.returncode == 0, run.stderr
    dataset, report = out / "dataset", out / "report.html"
    assert f"report:  {report}" in run.stdout
    assert f"cijobs sql --dataset {dataset}" in run.stdout
    assert "export 2: incremental" in run.stdout
    # every job of the emulator plus the ones created while "time passed", each exactly once
    # read as any Delta reader would: the live files of the newest version
    files = DeltaTable(str(dataset / "jobs")).file_uris()
    con = duckdb.connect()
    jobs, distinct = con.execute(
        "SELECT count(*), count(DISTINCT job_id) FROM read_parquet(?)", [files]
    ).fetchone() or (0, 0)
    assert jobs == distinct == 1500 + 50
    html = report.read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 5
    assert "1,550" in html


def test_demo_runs_again_over_its_own_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert _demo("--out", str(out), "--jobs", "300").returncode == 0
    again = _demo("--out", str(out), "--jobs", "300")
    assert again.returncode == 0, again.stderr


def test_demo_refuses_a_directory_that_is_not_a_dataset(tmp_path: Path) -> None:
    precious = tmp_path / "out" / "dataset"
    precious.mkdir(parents=True)
    (precious / "thesis.tex").write_text("do not delete", encoding="utf-8")
    run = _demo("--out", str(tmp_path / "out"), "--jobs", "300")
    assert run.returncode == 2
    assert "was not made by cijobs demo" in run.stderr
    assert (precious / "thesis.tex").read_text(encoding="utf-8") == "do not delete"


def test_demo_never_replaces_a_dataset_an_export_made(tmp_path: Path) -> None:
    """A real dataset (not marked as the demo's) where the demo would write is left alone."""
    real = tmp_path / "out" / "dataset"
    write_dataset(real, sample_jobs(30))
    before = DeltaTable(str(real / "jobs")).version()
    run = _demo("--out", str(tmp_path / "out"), "--jobs", "300")
    assert run.returncode == 2
    assert "was not made by cijobs demo" in run.stderr
    assert DeltaTable(str(real / "jobs")).version() == before
    with cj.connect(real) as con:
        assert con.execute("SELECT count(*) FROM jobs").fetchone() == (30,)
    # Pointed at the dataset itself, it refuses too instead of writing into it.
    inside = _demo("--out", str(real), "--jobs", "300")
    assert inside.returncode == 2
    assert "holds a cijobs dataset" in inside.stderr
    assert not (real / "dataset").exists()
    assert not (real / "report.html").exists()


def test_demo_refuses_bad_values_as_usage_errors(tmp_path: Path) -> None:
    run = _demo("--out", str(tmp_path), "--jobs", "ten")
    assert run.returncode == 2
    assert "--jobs" in run.stderr


def test_build_demo_dataset_counts(tmp_path: Path) -> None:
    _, first, second = build_demo_dataset(tmp_path / "ds", jobs=400, days=2)
    assert first.jobs_new == 400
    assert second.jobs_new == 50
    assert second.jobs_updated == first.open_jobs
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="was not made by cijobs demo"):
        build_demo_dataset(tmp_path / "other", jobs=100)
