"""Property: every leaf of a generated job lands in its typed column, streams, outputs or extra."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import JobCase, flatten_pages

from cijobs_analytics.flatten import parse_page, parse_pages
from cijobs_analytics.schema import JOBS_SCHEMA

_STREAM_KEYS = ("kind", "codec_name", "index", "bitrate_kbps", "fps")


def _check(row: dict[str, object], job: JobCase) -> None:
    for column, expected in job.columns.items():
        if isinstance(expected, float):
            assert row[column] == pytest.approx(expected), column
        else:
            assert row[column] == expected, column
    extra = row["extra"]
    assert isinstance(extra, list)
    assert len({key for key, _ in extra}) == len(extra), "extra keys collide"
    assert dict(extra) == job.extra
    streams = row["streams"]
    assert isinstance(streams, list)
    got = [{key: stream[key] for key in _STREAM_KEYS} for stream in streams]
    assert len(got) == len(job.streams)
    for stream, expected_stream in zip(got, job.streams, strict=True):
        assert stream == pytest.approx(expected_stream)
    assert row["output_files"] == job.output_files


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=flatten_pages())
def test_every_leaf_round_trips_into_the_table(page: tuple[bytes, list[JobCase], str | None]):
    body, jobs, token = page
    parsed = parse_page(body)
    assert parsed.table.schema == JOBS_SCHEMA
    assert parsed.next_token == token
    assert parsed.recovered is False
    rows = parsed.table.to_pylist()
    assert len(rows) == len(jobs)
    for row, job in zip(rows, jobs, strict=True):
        _check(row, job)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=flatten_pages(), second=flatten_pages())
def test_parse_pages_equals_page_by_page(
    first: tuple[bytes, list[JobCase], str | None],
    second: tuple[bytes, list[JobCase], str | None],
):
    """Converting once for many pages gives the rows each page gives alone."""
    rows = parse_pages([first[0], second[0]]).to_pylist()
    assert rows == parse_page(first[0]).table.to_pylist() + parse_page(second[0]).table.to_pylist()
