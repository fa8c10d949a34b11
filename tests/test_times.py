"""User times in, wire times out: zones are required, spans count back from now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from cijobs_analytics._times import (
    MAX_SPAN,
    parse_span,
    resolve_since,
    resolve_time,
    to_utc,
    to_wire,
)
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


@pytest.mark.parametrize("text", ["36526d", "1000000d", "99999999999d", "9" * 400 + "d", "1e9d"])
def test_spans_longer_than_a_century_are_refused_not_overflowed(text: str) -> None:
    with pytest.raises(
        ConfigError, match=r"(must be at most 36525d \(100 years\)|not a time span)"
    ):
        parse_span(text)


def test_a_century_is_the_longest_span() -> None:
    assert parse_span("36525d") == MAX_SPAN == timedelta(days=36525)


def test_a_span_error_names_what_the_span_is() -> None:
    with pytest.raises(ConfigError, match=r"^--overlap must be positive, got '0s'$"):
        parse_span("0s", name="--overlap")


def test_since_takes_now() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert resolve_since("now", now=now) == now
    assert resolve_since(" NOW ", now=now) == now


def test_a_time_beyond_datetime_once_in_utc_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"until is out of range"):
        to_utc("0001-01-01T00:00:00+01:00", name="until")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", datetime(2026, 11, 28, 12, tzinfo=UTC)),
        ("12h", datetime(2026, 11, 28, 0, tzinfo=UTC)),
        ("90min", datetime(2026, 11, 28, 10, 30, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00:00+08:00", datetime(2026, 11, 1, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_command_line_times_are_iso_spans_or_now(text: str, expected: datetime) -> None:
    assert resolve_time(text, now=datetime(2026, 11, 28, 12, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "yesterday",
            r"--until is not a time: 'yesterday'; give an ISO time with a zone "
            r"\(2026-11-01T08:00:00\+08:00\), a span back from now \(7d, 12h\) or now$",
        ),
        ("", r"--until is not a time: ''; give an ISO time"),
        ("2026-13-01", r"--until is not a time: '2026-13-01'; give"),
        ("2026-11-01T08:00:00", r"--until has no time zone: .*append Z for UTC"),
        ("0d", r"--until as a span must be positive"),
        ("1000000d", r"--until as a span must be at most 36525d \(100 years\)"),
        ("1969-12-31T23:59:59Z", r"--until must be from 1970-01-01 to before 9999-01-01"),
        ("9999-01-01T00:00:00Z", r"--until must be from 1970-01-01 to before 9999-01-01"),
        ("0001-01-01T00:00:00+01:00", r"--until is out of range"),
        ("30000d", r"--until must be from 1970-01-01"),
    ],
)
def test_command_line_times_out_of_form_or_range_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_time(text, now=datetime(2026, 11, 28, 12, tzinfo=UTC), name="--until")


def test_wire_format_is_china_time_without_colon() -> None:
    assert to_wire(datetime(2023, 11, 13, 16, 0, 0, 999999, tzinfo=UTC)) == (
        "2023-11-14T00:00:00+0800"
    )
    assert to_wire(datetime(2023, 11, 14, 0, 0, tzinfo=CST)) == "2023-11-14T00:00:00+0800"
