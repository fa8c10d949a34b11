"""`cijobs fetch`: one atomic zstd Parquet file of the exact range; usage errors name the fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import click
import pyarrow.parquet as pq
import pytest
from conftest import EMULATOR_END

from cijobs_analytics.cli import main
from cijobs_analytics.config import ENV_SECRET_ID, ENV_SECRET_KEY, ENV_SESSION_TOKEN
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.schema import JOBS_SCHEMA

START = EMULATOR_END - timedelta(hours=30)


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    code = exited.value.code
    return code if isinstance(code, int) else 1


def _args(emulator: Emulator, out: Path, *extra: str) -> list[str]:
    return [
        "fetch",
        "--bucket",
        emulator.bucket,
        "--region",
        emulator.region,
        "--endpoint",
        emulator.url,
        "--start",
        START.isoformat(),
        "--end",
        EMULATOR_END.isoformat().replace("+00:00", "Z"),
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture
def credentials(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SECRET_ID, emulator.credentials.secret_id)
    monkeypatch.setenv(ENV_SECRET_KEY, emulator.credentials.secret_key)
    monkeypatch.delenv(ENV_SESSION_TOKEN, raising=False)


@pytest.mark.usefixtures("credentials")
def test_fetch_writes_one_zstd_parquet_file_equal_to_the_truth(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "jobs.parquet"
    assert _run(_args(emulator, out, "--workers", "3")) == 0
    table = pq.read_table(out)
    truth = emulator.truth(START, EMULATOR_END)
    assert sorted(table.column("job_id").to_pylist()) == sorted(j.job_id for j in truth)
    assert table.schema.names == JOBS_SCHEMA.names
    assert table.schema.equals(JOBS_SCHEMA, check_metadata=False)
    meta = pq.ParquetFile(out).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    request = json.loads(table.schema.metadata[b"cijobs_analytics.fetch"])
    assert request["bucket"] == emulator.bucket
    assert request["start"] == START.isoformat()
    assert request["tags"] is None
    assert table.schema.metadata[b"cijobs_analytics.schema_version"] == b"1"
    assert list(tmp_path.iterdir()) == [out]
    err = capsys.readouterr().err
    assert f"{len(truth)} jobs" in err
    assert "requests" in err


@pytest.mark.usefixtures("credentials")
def test_fetch_filters_by_tag_and_state(emulator: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "subset.parquet"
    extra = ["--tag", "Transcode", "--tag", "Snapshot", "--state", "Success", "--state", "Failed"]
    assert _run(_args(emulator, out, *extra)) == 0
    table = pq.read_table(out)
    truth = emulator.truth(
        START, EMULATOR_END, tags=["Transcode", "Snapshot"], states=["Success", "Failed"]
    )
    assert table.num_rows > 0
    assert sorted(table.column("job_id").to_pylist()) == sorted(j.job_id for j in truth)
    assert set(table.column("state").to_pylist()) <= {"Success", "Failed"}


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("change", "fix"),
    [
        ({"--start": "2026-10-31T06:00:00"}, "append Z for UTC or an offset"),
        (
            {"--end": "tomorrow"},
            "(2026-11-01T08:00:00+08:00), a span back from now (7d, 12h) or now",
        ),
        ({"--start": EMULATOR_END.isoformat()}, "must be before --end"),
    ],
)
def test_bad_times_are_usage_errors_that_name_the_fix(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    fix: str,
) -> None:
    out = tmp_path / "never.parquet"
    argv = _args(emulator, out)
    for option, value in change.items():
        argv[argv.index(option) + 1] = value
    emulator.reset_stats()
    assert _run(argv) == 2
    assert fix in capsys.readouterr().err
    assert not out.exists()
    assert emulator.stats().requests == 0


@pytest.mark.usefixtures("credentials")
def test_unknown_state_is_a_usage_error_listing_the_states(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(_args(emulator, tmp_path / "x.parquet", "--state", "Done")) == 2
    err = capsys.readouterr().err
    assert "'Done' is not one of" in err
    assert "'Success'" in err


def test_state_choices_are_the_schema_states_and_all() -> None:
    from cijobs_analytics.cli import fetch_command
    from cijobs_analytics.schema import STATES

    option = next(p for p in fetch_command.params if p.name == "states")
    assert list(option.type.choices) == ["All", *STATES]  # type: ignore[attr-defined]


@pytest.mark.usefixtures("credentials")
def test_missing_output_directory_is_a_usage_error(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(_args(emulator, tmp_path / "nowhere" / "x.parquet")) == 2
    assert "create it first" in capsys.readouterr().err


def test_missing_credentials_exit_2_naming_the_variables(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(ENV_SECRET_ID, raising=False)
    monkeypatch.delenv(ENV_SECRET_KEY, raising=False)
    assert _run(_args(emulator, tmp_path / "x.parquet")) == 2
    err = capsys.readouterr().err
    assert ENV_SECRET_ID in err
    assert ENV_SECRET_KEY in err


def test_a_failed_fetch_exits_1_and_leaves_the_old_file_alone(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(ENV_SECRET_ID, emulator.credentials.secret_id)
    monkeypatch.setenv(ENV_SECRET_KEY, "wrong-secret-key")
    out = tmp_path / "jobs.parquet"
    out.write_bytes(b"previous contents")
    assert _run(_args(emulator, out)) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err
    assert "wrong-secret-key" not in err
    assert out.read_bytes() == b"previous contents"
    assert list(tmp_path.iterdir()) == [out]


def test_python_dash_m_runs_the_fetch_command(emulator: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "jobs.parquet"
    env = dict(os.environ)
    env.update(
        {
            ENV_SECRET_ID: emulator.credentials.secret_id,
            ENV_SECRET_KEY: emulator.credentials.secret_key,
            "CI": "1",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", *_args(emulator, out, "--tag", "Transcode")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = emulator.truth(START, EMULATOR_END, tags=["Transcode"])
    assert pq.read_table(out).num_rows == len(expected)
    assert done.stderr.startswith("cijobs fetch: wrote")


def test_ctrl_c_stops_at_once_and_leaves_no_partial_file(tmp_path: Path) -> None:
    """SIGINT mid-fetch: exit 130 within a second or two, no .tmp left, no output file."""
    with Emulator(jobs=2000, days=1, seed=4, end=EMULATOR_END, latency_ms=400) as slow:
        out = tmp_path / "jobs.parquet"
        env = dict(os.environ)
        env.update(
            {
                ENV_SECRET_ID: slow.credentials.secret_id,
                ENV_SECRET_KEY: slow.credentials.secret_key,
                "CI": "1",
            }
        )
        argv = _args(slow, out)
        argv[argv.index("--start") + 1] = (EMULATOR_END - timedelta(hours=23)).isoformat()
        process = subprocess.Popen(
            [sys.executable, "-m", "cijobs_analytics", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        tmp = tmp_path / "jobs.parquet.tmp"
        deadline = time.monotonic() + 60
        while not tmp.exists() or slow.stats().requests < 4:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, err = process.communicate(timeout=30)
        assert time.monotonic() - interrupted < 3.0
        assert process.returncode == 130, err
        assert "interrupted" in err
        assert list(tmp_path.iterdir()) == []


def test_session_token_with_trailing_newline_exits_2_on_one_line_without_the_token(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A token from a file with its newline (the Kubernetes secret case): exit 2, one line that
    names the variable, no traceback, and the token nowhere in the output (cron logs)."""
    env = dict(os.environ)
    env.update(
        {
            ENV_SECRET_ID: emulator.credentials.secret_id,
            ENV_SECRET_KEY: emulator.credentials.secret_key,
            ENV_SESSION_TOKEN: "SESSIONTOKEN-SECRET\n",
            "CI": "1",
        }
    )
    out = tmp_path / "jobs.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", *_args(emulator, out, "--tag", "Transcode")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"cijobs: error: Credentials.token (from {ENV_SESSION_TOKEN})")
    assert "Traceback" not in done.stderr
    assert "SESSIONTOKEN-SECRET" not in done.stdout + done.stderr
    assert emulator.credentials.secret_key not in done.stderr
    assert not out.exists()


def test_workers_range_is_the_client_pool_size() -> None:
    """--workers stops where the client's connection pool does (MAX_WORKERS)."""
    from cijobs_analytics.cli import fetch_command
    from cijobs_analytics.client import MAX_WORKERS

    (workers,) = (p for p in fetch_command.params if p.name == "workers")
    assert isinstance(workers.type, click.IntRange)
    assert (workers.type.min, workers.type.max) == (1, MAX_WORKERS)
