"""The views and reports over a dataset written by a real export from the emulator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import cijobs_analytics as cj
from cijobs_analytics.client import CIClient
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.query import read_frame
from cijobs_analytics.report import write_report


@pytest.fixture(scope="module")
def exported(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "ds"
    client = CIClient(emulator.bucket, emulator.region, emulator.credentials, endpoint=emulator.url)
    cj.export(client, root, since=emulator.history_start, until=emulator.end, progress=False)
    return root


def test_views_hold_every_job_of_the_service_once(exported: Path, emulator: Emulator) -> None:
    truth = emulator.truth()
    with cj.connect(exported) as con:
        frame = read_frame(con, "SELECT job_id, state, tag FROM jobs ORDER BY job_id")
        ledger = read_frame(con, "SELECT count(*) AS n FROM runs")
    assert frame["job_id"].tolist() == sorted(j.job_id for j in truth)
    assert dict(zip(frame["job_id"], frame["state"], strict=True)) == {
        j.job_id: j.state for j in truth
    }
    assert ledger["n"].iat[0] >= 1


def test_failures_by_tag_agree_with_the_service(exported: Path, emulator: Emulator) -> None:
    truth = emulator.truth()
    with cj.connect(exported) as con:
        df = cj.reports.failures(con, by="tag")
    jobs = Counter(j.tag for j in truth)
    failed = Counter(j.tag for j in truth if j.state == "Failed")
    finished = Counter(j.tag for j in truth if j.state in ("Success", "Failed"))
    assert dict(zip(df["tag"], df["jobs"], strict=True)) == dict(jobs)
    assert dict(zip(df["tag"], df["failed"], strict=True)) == {t: failed[t] for t in jobs}
    assert dict(zip(df["tag"], df["finished"], strict=True)) == {t: finished[t] for t in jobs}


def test_a_report_of_an_exported_dataset_holds_every_section(
    exported: Path, tmp_path: Path
) -> None:
    text = write_report(exported, tmp_path / "r.html").read_text(encoding="utf-8")
    assert text.count('src="data:image/png;base64,') == 6
    assert "no jobs in range" not in text
