"""User times in, wire times out: zones are required, spans count back from now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from cijobs_analytics._times import parse_span, resolve_since, to_utc, to_wire
from cijobs_analytics.errors import ConfigError

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00:00+08:00", datetime(2026, 11, 1, 0, 0, tzinfo=UTC)),
        ("2026-11-01T08:00:00+0800", datetime(2026, 11, 1, 0, 0, tzinfo=UTC)),
        ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),
        ("2026-11-01T08:00:00z", datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),
        (" 2026-11-01T08:00:00.250-05:00 ", datetime(2026, 11, 1, 13, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_iso_strings_become_utc(text: str, expected: datetime) -> None:
    result = to_utc(text)
    assert result == expected
    assert result.tzinfo is UTC


def test_aware_datetime_and_date_become_utc() -> None:
    assert to_utc(datetime(2026, 11, 1, 8, tzinfo=CST)) == datetime(2026, 11, 1, tzinfo=UTC)
    assert to_utc(date(2026, 11, 1)) == datetime(2026, 11, 1, tzinfo=UTC)


def test_naive_datetime_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"start is a naive datetime.*tzinfo"):
        to_utc(datetime(2026, 11, 1, 8), name="start")


@pytest.mark.parametrize("text", ["2026-11-01T08:00:00", "2026-11-01 08:00"])
def test_naive_iso_string_is_refused_with_the_fix(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--until has no time zone.*append Z"):
        to_utc(text, name="--until")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "", 1700000000])
def test_non_times_are_refused(value: object) -> None:
    with pytest.raises(ConfigError):
        to_utc(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15min", timedelta(minutes=15)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("1.5d", timedelta(hours=36)),
        ("2W", timedelta(weeks=2)),
    ],
)
def test_spans(text: str, expected: timedelta) -> None:
    assert parse_span(text) == expected


@pytest.mark.parametrize("text", ["0d", "7", "d", "-1d", "7 days", "1y"])
def test_bad_spans_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_span(text)


def test_since_span_counts_back_from_now() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert resolve_since("7d", now=now) == datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert resolve_since("2026-11-01", now=now) == datetime(2026, 11, 1, tzinfo=UTC)


def test_wire_format_is_china_time_without_colon() -> None:
    assert to_wire(datetime(2023, 11, 13, 16, 0, 0, 999999, tzinfo=UTC)) == (
        "2023-11-14T00:00:00+0800"
    )
    assert to_wire(datetime(2023, 11, 14, 0, 0, tzinfo=CST)) == "2023-11-14T00:00:00+0800"
