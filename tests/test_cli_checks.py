"""What `cijobs` checks before it locks, fetches or writes anything, and how it says so.

A bad value is exit 2 and one line on stderr that names the option and the fix; a valid action
that fails is exit 1 and one line; nothing ends in a traceback. Tags are the 19 documented ones,
given repeated or comma-separated; every time option takes an ISO time, a span back from now
or ``now``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

import cijobs_analytics as cj
from cijobs_analytics._location import resolve_location
from cijobs_analytics._lock import open_lock
from cijobs_analytics.cli import main
from cijobs_analytics.config import ENV_SECRET_ID, ENV_SECRET_KEY, ENV_SESSION_TOKEN
from cijobs_analytics.emulator import Emulator

EVERY_FORM = "a span back from now (7d, 12h) or now"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command (no traceback, nothing on stdout)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""
    return lines[0]


def _service(emu: Emulator) -> list[str]:
    return ["--bucket", emu.bucket, "--region", emu.region, "--endpoint", emu.url]


def _env(emu: Emulator) -> dict[str, str]:
    env = emu.environ()
    env["CI"] = "1"
    return env


def _status(emu: Emulator, dataset: Path) -> dict[str, object]:
    done = _cli(_env(emu), "status", "--dataset", str(dataset), "--format", "json")
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


@pytest.fixture
def live(make_emulator: Callable[..., Emulator]) -> Emulator:
    """A private emulator whose day of history ends now."""
    return make_emulator(jobs=400, days=1.0, seed=31, end=None)


@pytest.fixture
def exported(live: Emulator, tmp_path: Path) -> Path:
    """A dataset holding every job of ``live``, exported in this process."""
    dataset = tmp_path / "exported"
    client = cj.CIClient(live.bucket, live.region, live.credentials, endpoint=live.url)
    cj.export(client, dataset, since="2d", progress=False)
    return dataset


@pytest.fixture
def credentials(live: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key of ``live`` in this process's environment (for in-process runs)."""
    monkeypatch.setenv(ENV_SECRET_ID, live.credentials.secret_id)
    monkeypatch.setenv(ENV_SECRET_KEY, live.credentials.secret_key)
    monkeypatch.delenv(ENV_SESSION_TOKEN, raising=False)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `cijobs` in this process: the exit code and the one stderr line."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    code = exited.value.code
    return (code if isinstance(code, int) else 1), lines[0]


# -- values that ended in a traceback ----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--since", "1000000d"),
        ("--since", "99999999999d"),
        ("--since", "9" * 400 + "d"),
        ("--since", "0001-01-01T00:00:00+01:00"),
        ("--until", "9999-12-31T23:00:00Z"),
    ],
)
def test_times_out_of_range_are_usage_errors_before_anything_is_touched(
    live: Emulator, tmp_path: Path, option: str, value: str
) -> None:
    dataset = tmp_path / "dataset"
    argv = ["export", "--dataset", str(dataset), *_service(live), "--since", "1d"]
    done = _cli(_env(live), *argv, option, value, "--no-progress")
    assert done.returncode == 2
    line = _one_line(done)
    assert line.startswith(f"cijobs: error: Invalid value for '{option}': ")
    assert "100 years" in line or "1970-01-01" in line or "out of range" in line
    assert not dataset.exists()
    assert live.stats().requests == 0


def test_an_overlap_beyond_a_century_is_refused_before_the_lock(
    live: Emulator, exported: Path
) -> None:
    """It used to overflow after the lock was taken, recording nothing."""
    done = _cli(
        _env(live),
        "export",
        "--dataset",
        str(exported),
        *_service(live),
        "--overlap",
        "1000000d",
        "--no-progress",
    )
    assert done.returncode == 2
    assert _one_line(done) == (
        "cijobs: error: Invalid value for '--overlap': --overlap must be at most 36525d "
        "(100 years), got '1000000d' (see 'cijobs export -h')"
    )
    status = _status(live, exported)
    assert status["runs"] == 1
    assert status["running"] is None


@pytest.mark.parametrize("query", ["", "   ", "\n\t "])
def test_an_empty_query_is_a_usage_error(exported: Path, query: str) -> None:
    done = _cli(dict(os.environ), "sql", "--dataset", str(exported), query)
    assert done.returncode == 2
    assert "Invalid value for 'QUERY': the query is empty" in _one_line(done)


# -- tags: the documented names, comma lists split -----------------------------------------


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("command", ["fetch", "export", "report"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Foo", "'Foo' is not one of 'Transcode', 'Animation', 'Snapshot', "),
        ("transcode", "'transcode' is not a tag; did you mean 'Transcode'?"),
        ("Transcode,Snapshott", "'Snapshott' is not a tag; did you mean 'Snapshot'?"),
        ("Trnscode", "'Trnscode' is not a tag; did you mean 'Transcode'?"),
        ("Transcode,,Snapshot", "'Transcode,,Snapshot' holds an empty name"),
    ],
)
def test_unknown_tags_are_refused_naming_the_closest(
    live: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    value: str,
    message: str,
) -> None:
    out = tmp_path / "out"
    argv = {
        "fetch": ["fetch", *_service(live), "--start", "1d", "--end", "now", "--out", str(out)],
        "export": ["export", "--dataset", str(out), *_service(live), "--since", "1d"],
        "report": ["report", "--dataset", str(tmp_path), "--out", str(out)],
    }[command]
    code, line = _run([*argv, "--tag", "Concat", "--tag", value], capsys)
    assert code == 2
    assert f"Invalid value for '--tag': {message}" in line
    assert not out.exists()
    assert live.stats().requests == 0


def test_comma_separated_tags_export_exactly_those_tags(live: Emulator, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    tags = ["Snapshot", "Transcode", "VideoTag"]
    done = _cli(
        _env(live),
        "export",
        "--dataset",
        str(dataset),
        *_service(live),
        "--since",
        "2d",
        "--tag",
        "Transcode,Snapshot",
        "--tag",
        " VideoTag ",
        "--tag",
        "Snapshot",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    status = _status(live, dataset)
    coverage = status["coverage"]
    assert isinstance(coverage, list)
    assert sorted(c["tag"] for c in coverage) == tags
    expected = live.truth(tags=tags)
    assert expected
    assert status["jobs"] == len(expected)


# -- times: every option takes ISO, spans and now ------------------------------------------


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("fetch", "--start"),
        ("fetch", "--end"),
        ("export", "--since"),
        ("export", "--until"),
        ("export", "--refetch"),
        ("report", "--since"),
        ("report", "--until"),
        ("report", "--as-of"),
        ("status", "--as-of"),
        ("sql", "--as-of"),
    ],
)
def test_a_bad_time_names_every_form_the_option_takes(
    live: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    option: str,
) -> None:
    out = str(tmp_path / "out")
    argv = {
        "fetch": ["fetch", *_service(live), "--start", "1d", "--end", "now", "--out", out],
        "export": ["export", "--dataset", out, *_service(live), "--since", "1d"],
        "report": ["report", "--dataset", out, "--out", out],
        "status": ["status", "--dataset", out],
        "sql": ["sql", "--dataset", out, "SELECT 1"],
    }[command]
    extra = [option, "yesterday", "now"] if option == "--refetch" else [option, "yesterday"]
    code, line = _run([*argv, *extra], capsys)
    assert code == 2
    assert f"Invalid value for '{option}" in line
    assert "is not a time: 'yesterday'; give an ISO time with a zone" in line
    assert EVERY_FORM in line
    assert live.stats().requests == 0


def test_fetch_takes_spans_and_now(live: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "jobs.parquet"
    done = _cli(
        _env(live), "fetch", *_service(live), "--start", "36h", "--end", "now", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    got = pq.read_table(out, columns=["job_id"]).column("job_id").to_pylist()
    assert sorted(got) == sorted(job.job_id for job in live.truth())


def test_export_until_takes_a_span_counted_from_the_same_now_as_since(
    live: Emulator, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset"
    started = datetime.now(UTC)
    done = _cli(
        _env(live),
        "export",
        "--dataset",
        str(dataset),
        *_service(live),
        "--since",
        "30h",
        "--until",
        "12h",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    status = _status(live, dataset)
    coverage = status["coverage"]
    assert isinstance(coverage, list)
    starts = {datetime.fromisoformat(c["ranges"][0][0]) for c in coverage}
    ends = {datetime.fromisoformat(c["ranges"][-1][1]) for c in coverage}
    assert len(starts) == len(ends) == 1
    (start,), (end,) = starts, ends
    # Both spans count back from one moment (the ledger rounds to whole seconds outwards).
    assert timedelta(hours=18) <= end - start <= timedelta(hours=18, seconds=1)
    assert abs(end - (started - timedelta(hours=12))) < timedelta(seconds=60)
    assert status["jobs"] == len(live.truth(start, end))


def test_report_and_status_take_spans_and_now(
    live: Emulator, exported: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    dataset = ["--dataset", str(exported)]
    env = _env(live)
    report = _cli(env, "report", *dataset, "--out", str(out), "--since", "1d", "--until", "now")
    assert report.returncode == 0, report.stderr
    assert report.stdout == f"cijobs report: wrote {out}\n"
    assert "created from " in out.read_text(encoding="utf-8")
    status = _cli(env, "status", *dataset, "--as-of", "now", "--format", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["jobs"] == len(live.truth())


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("export", ["--since", "1d", "--until", "2d"]),
        ("export", ["--since", "1d", "--refetch", "now", "1d"]),
        ("report", ["--since", "now", "--until", "1h"]),
    ],
)
def test_a_range_that_ends_before_it_starts_is_a_usage_error(
    live: Emulator, tmp_path: Path, command: str, args: list[str]
) -> None:
    dataset = ["--dataset", str(tmp_path / "dataset")]
    prefix = {
        "export": ["export", *dataset, *_service(live)],
        "report": ["report", *dataset, "--out", str(tmp_path / "r.html")],
    }[command]
    done = _cli(_env(live), *prefix, *args)
    assert done.returncode == 2
    assert " must be before " in _one_line(done)
    assert list(tmp_path.iterdir()) == []


# -- exit 1 for an output that cannot be written, and for a dataset not there yet ------------


def test_a_report_that_cannot_be_written_is_a_failure(exported: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = blocker / "report.html"
    done = _cli(dict(os.environ), "report", "--dataset", str(exported), "--out", str(out))
    assert done.returncode == 1
    assert _one_line(done).startswith(f"cijobs: error: cannot write the report to '{out}'")


def test_status_while_the_first_export_creates_the_dataset_says_so(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    with open_lock(resolve_location(str(dataset))):
        done = _cli(dict(os.environ), "status", "--dataset", str(dataset))
    assert done.returncode == 1
    line = _one_line(done)
    assert "an export is creating it (pid " in line
    assert f"pid {os.getpid()} on " in line
    assert "not a cijobs dataset" not in line


# -- messages: the summary once, counts in the right number ----------------------------------


def test_info_logging_does_not_repeat_the_export_summary(live: Emulator, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    done = _cli(
        _env(live),
        "--log-level",
        "info",
        "export",
        "--dataset",
        str(dataset),
        *_service(live),
        "--since",
        "2d",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    summary = f"export to {dataset}: "
    assert done.stdout.count(summary) == 1
    assert done.stdout.startswith(f"cijobs export: {summary}400 new")
    assert summary not in done.stderr
    assert " INFO cijobs_analytics.store: listing " in done.stderr  # the other lines stay


_PLURAL_WITH_1 = re.compile(
    r"\b1 (jobs|rows|partitions|windows|requests|retries|files|pages|slices|runs|filters|gaps)"
    r"\b(?!/)"  # not a rate: "1 jobs/s"
)


def test_one_of_a_thing_is_said_in_the_singular(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(jobs=1, days=1.0, seed=3, end=None)
    env = _env(emu)
    dataset = ["--dataset", str(tmp_path / "dataset")]
    out = str(tmp_path / "jobs.parquet")
    runs = [
        _cli(env, "export", *dataset, *_service(emu), "--since", "2d", "--no-progress"),
        _cli(env, "status", *dataset),
        _cli(env, "fetch", *_service(emu), "--start", "2d", "--end", "now", "--out", out),
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr
        text = done.stdout + done.stderr
        assert not _PLURAL_WITH_1.search(text), text


# -- --refetch -----------------------------------------------------------------------------


def test_refetch_lists_a_covered_range_again(live: Emulator, exported: Path) -> None:
    """Rows lost from a covered range come back with --refetch, not with a plain run."""
    old = [j.job_id for j in live.truth(end=live.end - timedelta(hours=2))][:5]
    assert len(old) == 5
    DeltaTable(str(exported / "jobs")).delete(
        "job_id IN (" + ", ".join(f"'{job_id}'" for job_id in old) + ")"
    )
    env = _env(live)
    argv = ["export", "--dataset", str(exported), *_service(live), "--no-progress"]
    plain = _cli(env, *argv)
    assert plain.returncode == 0, plain.stderr
    assert _status(live, exported)["jobs"] == 400 - 5
    again = _cli(env, *argv, "--refetch", "2d", "1h", "--refetch", "90min", "now")
    assert again.returncode == 0, again.stderr
    assert "5 new" in again.stdout
    status = _status(live, exported)
    assert status["jobs"] == 400
    last_run = status["last_run"]
    assert isinstance(last_run, dict)
    assert len(json.loads(last_run["arguments"])["refetch"]) == 2


def test_emulate_serves_the_emulators_default_bucket_by_default() -> None:
    """Every request must name it (the emulator refuses other buckets)."""
    from cijobs_analytics.cli import emulate_command
    from cijobs_analytics.emulator.handle import DEFAULT_BUCKET

    (bucket,) = (p for p in emulate_command.params if p.name == "bucket")
    assert bucket.default == DEFAULT_BUCKET
