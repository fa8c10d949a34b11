"""write_report and the `cijobs sql` / `cijobs report` commands."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from job_datasets import T0, job, sample_jobs, stale_versions, write_dataset

import cijobs_analytics as cj
from cijobs_analytics import ConfigError
from cijobs_analytics.cli import main
from cijobs_analytics.query import connect, read_frame
from cijobs_analytics.report import choose_freq, write_report

IMG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = sample_jobs(120)
    rows.append(
        job(
            "evil",
            T0,
            tag="<script>alert(1)</script>",
            state="Failed",
            code="Bad&Code",
            message='quote " and <b>bold</b>',
        )
    )
    return write_dataset(tmp_path_factory.mktemp("report") / "ds", rows, stale=stale_versions(rows))


@pytest.fixture(scope="module")
def page(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report of the whole dataset, written once for the tests that only read it."""
    out = write_report(dataset, tmp_path_factory.mktemp("page") / "r.html")
    return out.read_text(encoding="utf-8")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


# ------------------------------------------------------------------------------ the report


def test_the_report_is_one_file_with_its_images_embedded(page: str) -> None:
    text = page
    images = IMG.findall(text)
    assert [alt for alt, _ in images] == [
        "Jobs created per 6h by tag",
        "Backlog: jobs open at the end of each period",
        "Failure rate by tag",
        "Latency by tag",
        "Most frequent errors of failed jobs",
        "Media processed by resolution class and video codec",
    ]
    for _, data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    # Nothing is fetched from elsewhere.
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    assert "<script" not in text.lower()
    assert "<link" not in text.lower()


def test_the_headline_holds_the_summary_figures(dataset: Path, page: str) -> None:
    text = page
    with connect(dataset) as con:
        head = cj.reports.summary(con).iloc[0]
    figures = dict(
        (label, value)
        for value, label in re.findall(
            r'<div class="value">([^<]*)</div><div class="label">([^<]*)</div>', text
        )
    )
    assert figures["jobs"] == f"{int(head['jobs']):,}"
    assert figures["failure rate (failed / finished)"] == f"{head['failure_rate'] * 100:.1f}%"
    assert figures["media hours"] == f"{head['media_hours']:,.1f}"
    p90 = head["p90_processing_s"]
    assert figures["p90 processing time"] in (f"{p90 / 60:.1f} min", f"{p90 / 3600:.1f} h")


def test_every_value_from_the_data_is_escaped(page: str) -> None:
    text = page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Bad&amp;Code" in text
    assert "quote &quot; and &lt;b&gt;bold&lt;/b&gt;" in text
    assert "<b>bold" not in text


def test_filters_reach_every_section(dataset: Path, tmp_path: Path) -> None:
    text = write_report(
        dataset, tmp_path / "r.html", since="2026-11-02", until="2026-11-03", tags=["Snapshot"]
    ).read_text(encoding="utf-8")
    with connect(dataset) as con:
        jobs = cj.reports.summary(con, since="2026-11-02", until="2026-11-03", tags="Snapshot")
    assert f'<div class="value">{int(jobs["jobs"].iat[0]):,}</div>' in text
    assert "created from 2026-11-02 00:00 UTC to 2026-11-03 00:00 UTC" in text
    assert "tags: Snapshot" in text
    assert "&lt;script&gt;" not in text  # that job is neither a Snapshot nor in range


def test_an_empty_range_gives_a_report_that_says_so(dataset: Path, tmp_path: Path) -> None:
    text = write_report(dataset, tmp_path / "r.html", since="2031-01-01").read_text(
        encoding="utf-8"
    )
    assert '<div class="value">0</div>' in text
    assert text.count("no jobs in range") == 5  # the five tables
    assert len(IMG.findall(text)) == 6


def test_a_connection_can_be_passed_and_stays_open(dataset: Path, tmp_path: Path) -> None:
    with connect(dataset) as con:
        write_report(con, tmp_path / "r.html", tags="Transcode")
        assert read_frame(con, "SELECT count(*) AS n FROM jobs")["n"].iat[0] == 121


def test_the_report_replaces_an_old_one_atomically(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "r.html"
    out.parent.mkdir()
    out.write_text("old")
    write_report(dataset, out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_the_report_gets_the_mode_of_an_ordinary_new_file(
    dataset: Path, tmp_path: Path, umask: int, mode: int
) -> None:
    """Readable by a web server's user under the usual umask, as `touch` would make it."""
    previous = os.umask(umask)
    try:
        out = write_report(dataset, tmp_path / "r.html", tags="Transcode")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_an_unwritable_destination_is_a_config_error(dataset: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write the report"):
        write_report(dataset, blocker / "r.html")


@pytest.mark.parametrize(
    ("days", "freq"), [(None, "1h"), (1, "1h"), (7, "6h"), (60, "1d"), (400, "1w")]
)
def test_the_report_period_follows_the_length_of_the_range(days: int | None, freq: str) -> None:
    if days is None:
        assert choose_freq(None, None) == freq
    else:
        assert choose_freq(T0, T0 + timedelta(days=days)) == freq


# ------------------------------------------------------------------------------- the CLI


def test_cijobs_sql_csv_parses_and_matches_the_view(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT tag, count(*) AS jobs FROM jobs GROUP BY tag ORDER BY jobs DESC, tag"
    code, out, _ = run_cli(["sql", "--dataset", str(dataset), "--format", "csv", query], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    with connect(dataset) as con:
        expected = read_frame(con, query)
    assert [r["tag"] for r in rows] == expected["tag"].tolist()
    assert [int(r["jobs"]) for r in rows] == expected["jobs"].tolist()


def test_cijobs_sql_json_keeps_nested_columns_and_iso_times(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT job_id, creation_time, streams, extra, processing_s FROM jobs ORDER BY job_id"
    code, out, _ = run_cli(["sql", "--dataset", str(dataset), "--format", "json", query], capsys)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 121
    first = rows[0]
    assert datetime.fromisoformat(first["creation_time"]).utcoffset() is not None
    assert first["extra"] == {"Operation/UserData": first["job_id"]}
    assert isinstance(first["streams"], list)
    assert any(r["processing_s"] is None for r in rows)


def test_cijobs_sql_csv_writes_nested_values_as_json(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT job_id, output_files FROM jobs WHERE len(output_files) = 3 LIMIT 1"
    code, out, _ = run_cli(["sql", "--dataset", str(dataset), "--format", "csv", query], capsys)
    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(out)))
    outputs = json.loads(row["output_files"])
    assert [o["object_name"] for o in outputs] == [f"{row['job_id']}/{i}.mp4" for i in range(3)]


def test_cijobs_sql_table_is_aligned_and_counts_rows(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state"
    code, out, _ = run_cli(["sql", "--dataset", str(dataset), query], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["state", "n"]
    assert set(lines[1]) == {"-", " "}
    assert lines[-1] == "(5 rows)"
    assert [line.split()[0] for line in lines[2:-1]] == sorted(
        ["Cancel", "Failed", "Running", "Submitted", "Success"]
    )


def test_cijobs_sql_with_bad_sql_exits_1_with_one_line(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["sql", "--dataset", str(dataset), "SELECT nope FROM jobs"], capsys)
    assert code == 1
    assert out == ""
    assert err.startswith("cijobs: error: query failed:")
    assert len(err.strip().splitlines()) == 1


def test_cijobs_sql_on_a_missing_dataset_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    code, _, err = run_cli(["sql", "--dataset", str(missing), "SELECT 1"], capsys)
    assert code == 1
    assert "nowhere" in err


def test_cijobs_sql_refuses_an_unknown_format(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        ["sql", "--dataset", str(dataset), "--format", "xml", "SELECT 1"], capsys
    )
    assert code == 2
    assert "xml" in err


def test_cijobs_report_writes_the_file(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    argv = ["report", "--dataset", str(dataset), "--out", str(out), "--tag", "Transcode"]
    argv += [
        "--tag",
        "Snapshot",
        "--queue-id",
        "q1",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-05",
    ]
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0
    assert stdout.strip() == f"cijobs report: wrote {out}"
    text = out.read_text(encoding="utf-8")
    assert "tags: Transcode, Snapshot" in text
    assert "queues: q1" in text
    assert len(IMG.findall(text)) == 6


def test_cijobs_report_with_a_bad_since_is_a_usage_error(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", "--dataset", str(dataset), "--out", str(tmp_path / "r.html")]
    code, _, err = run_cli([*argv, "--since", "last tuesday"], capsys)
    assert code == 2
    assert "since" in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", ["sql", "report"])
def test_help_shows_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    assert f"Example: cijobs {command} --dataset jobs_dataset" in out
