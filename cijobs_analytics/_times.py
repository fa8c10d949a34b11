"""Time values as users give them and as the service wants them.

Users give aware ``datetime`` objects, ISO strings with a zone (``2026-11-01T08:00:00+08:00``,
``...Z``), bare dates (``2026-11-01``, midnight UTC) and, for ``since`` and on the command line,
``now`` and spans back from now (``7d``, ``12h``). Naive datetimes are refused: a job history
spans time zones and guessing one loses jobs. The service wants ``%Y-%m-%dT%H:%M:%S+0800``
(China Standard Time, no colon in the offset).

A span is at most ``MAX_SPAN`` and a command-line time lies in ``[EARLIEST, LATEST)``, so no
arithmetic on them (a span back from now, the overlap behind a watermark, the shift to China
time) leaves the range ``datetime`` can hold.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from .errors import ConfigError

__all__ = [
    "CHINA_TZ",
    "EARLIEST",
    "LATEST",
    "MAX_SPAN",
    "TIME_FORMS",
    "TimeLike",
    "parse_span",
    "resolve_since",
    "resolve_time",
    "to_utc",
    "to_wire",
    "utc_now",
]

CHINA_TZ = timezone(timedelta(hours=8), "CST")

#: The longest span: a century back from now is still far inside what ``datetime`` holds.
MAX_SPAN = timedelta(days=36_525)
#: The first time :func:`resolve_time` accepts (no job history starts earlier).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
#: Where :func:`resolve_time` stops accepting times: a year short of ``datetime.max``.
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
#: The forms :func:`resolve_time` accepts, for error messages and help texts.
TIME_FORMS = (
    "an ISO time with a zone (2026-11-01T08:00:00+08:00), a span back from now (7d, 12h) or now"
)

TimeLike = datetime | date | str

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d|w)\s*$", re.IGNORECASE)
_SPAN_UNITS = {
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def utc_now() -> datetime:
    """The current time, aware, in UTC, truncated to microseconds."""
    return datetime.now(UTC)


def parse_span(text: str, *, name: str = "a time span") -> timedelta:
    """Parse a span such as ``90s``, ``15min``, ``12h``, ``7d`` or ``2w``.

    Args:
        text: the span.
        name: what the span is, for the error message (``"--overlap"``).

    Raises:
        ConfigError: the text is not a positive span of at most ``MAX_SPAN`` (100 years).
    """
    match = _SPAN.match(text) if isinstance(text, str) else None
    if not match:
        raise ConfigError(f"not a time span: {text!r} (use a number and a unit: 30min, 12h, 7d)")
    unit = _SPAN_UNITS[match.group(2).lower()]
    # Compare as floats first: a huge number would overflow timedelta itself.
    seconds = float(match.group(1)) * unit.total_seconds()
    if not seconds <= MAX_SPAN.total_seconds():
        raise ConfigError(
            f"{name} must be at most {MAX_SPAN.days}d (100 years), got {text.strip()!r}"
        )
    span = timedelta(seconds=seconds)
    if span <= timedelta(0):
        raise ConfigError(f"{name} must be positive, got {text!r}")
    return span


def to_utc(value: TimeLike, *, name: str = "time") -> datetime:
    """Convert an aware datetime, a date or an ISO string to an aware UTC datetime.

    Args:
        value: the time; a ``date`` or a bare ``YYYY-MM-DD`` string means midnight UTC.
        name: what the value is, for the error message (``"start"``, ``"--until"``).

    Raises:
        ConfigError: the value is naive, not a time, not ISO 8601, or out of ``datetime``'s range
            once in UTC.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigError(
                f"{name} is a naive datetime ({value.isoformat()}); give it a time zone, "
                "e.g. datetime(..., tzinfo=timezone.utc)"
            )
        return _in_utc(value, value, name)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a datetime or an ISO string, got {type(value).__name__}")
    parsed = _parse_iso(value)
    if parsed is None:
        raise ConfigError(
            f"{name} is not an ISO 8601 time: {value!r} (e.g. 2026-11-01T08:00:00+08:00)"
        )
    if parsed.tzinfo is None:
        raise ConfigError(
            f"{name} has no time zone: {value!r}; append Z for UTC or an offset such as +08:00"
        )
    return _in_utc(parsed, value, name)


def resolve_since(value: TimeLike, *, now: datetime | None = None, name: str = "since") -> datetime:
    """Resolve ``since``: ``now``, a span (``7d``) back from ``now``, or a time.

    Raises:
        ConfigError: the value is none of those, or a span reaches out of ``datetime``'s range.
    """
    if isinstance(value, str) and value.strip().lower() == "now":
        return now or utc_now()
    if isinstance(value, str) and _SPAN.match(value):
        try:
            return (now or utc_now()) - parse_span(value, name=f"{name} as a span")
        except OverflowError:
            raise ConfigError(f"{name} reaches too far back: {value!r}") from None
    return to_utc(value, name=name)


def resolve_time(value: str, *, now: datetime | None = None, name: str = "time") -> datetime:
    """Resolve a time as the command line gives it: an ISO time, a span back from now, or now.

    Args:
        value: ``2026-11-01T08:00:00+08:00`` (a zone is required; a bare date is midnight
            UTC), ``7d``/``12h``/``30min`` (that long before ``now``) or ``now``.
        now: the moment spans count back from; the current time when None. A command passes
            one ``now`` to all its options, so ``--since 1d --until 1h`` is exactly 23 hours.
        name: the option, for the error message (``"--until"``).

    Returns:
        An aware UTC datetime in ``[EARLIEST, LATEST)``.

    Raises:
        ConfigError: the text is none of the three forms (the message names them all), has no
            zone, or lies outside that range.

    Example:
        >>> resolve_time("7d", now=datetime(2026, 11, 8, tzinfo=UTC)).isoformat()
        '2026-11-01T00:00:00+00:00'
    """
    text = value.strip() if isinstance(value, str) else ""
    if text.lower() == "now" or _SPAN.match(text):
        moment = resolve_since(text, now=now, name=name)
    elif _parse_iso(text) is None:
        raise ConfigError(f"{name} is not a time: {value!r}; give {TIME_FORMS}")
    else:
        moment = to_utc(text, name=name)
    if not EARLIEST <= moment < LATEST:
        raise ConfigError(
            f"{name} must be from {EARLIEST.date().isoformat()} to before "
            f"{LATEST.date().isoformat()}, got {moment.isoformat()}"
        )
    return moment


def _parse_iso(text: str) -> datetime | None:
    """An ISO 8601 date or time (naive or aware), or None when the text is neither."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None


def _in_utc(value: datetime, given: object, name: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 lies in year 0 once in UTC
        raise ConfigError(f"{name} is out of range: {given!r}") from None


def to_wire(value: datetime) -> str:
    """Format an aware datetime as the service wants it: ``2023-11-14T00:00:00+0800``.

    Sub-second parts are dropped (the API has one-second resolution).
    """
    return to_utc(value).astimezone(CHINA_TZ).strftime("%Y-%m-%dT%H:%M:%S+0800")
