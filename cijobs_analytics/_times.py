"""Time values as users give them and as the service wants them.

Users give aware ``datetime`` objects, ISO strings with a zone (``2026-11-01T08:00:00+08:00``,
``...Z``), bare dates (``2026-11-01``, midnight UTC) and, for ``since``, spans (``7d``, ``12h``).
Naive datetimes are refused: a job history spans time zones and guessing one loses jobs. The
service wants ``%Y-%m-%dT%H:%M:%S+0800`` (China Standard Time, no colon in the offset).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from .errors import ConfigError

__all__ = [
    "CHINA_TZ",
    "TimeLike",
    "parse_span",
    "resolve_since",
    "to_utc",
    "to_wire",
    "utc_now",
]

CHINA_TZ = timezone(timedelta(hours=8), "CST")

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


def parse_span(text: str) -> timedelta:
    """Parse a span such as ``90s``, ``15min``, ``12h``, ``7d`` or ``2w``.

    Raises:
        ConfigError: the text is not a positive span.
    """
    match = _SPAN.match(text) if isinstance(text, str) else None
    if not match:
        raise ConfigError(f"not a time span: {text!r} (use a number and a unit: 30min, 12h, 7d)")
    span = float(match.group(1)) * _SPAN_UNITS[match.group(2).lower()]
    if span <= timedelta(0):
        raise ConfigError(f"a time span must be positive, got {text!r}")
    return span


def to_utc(value: TimeLike, *, name: str = "time") -> datetime:
    """Convert an aware datetime, a date or an ISO string to an aware UTC datetime.

    Args:
        value: the time; a ``date`` or a bare ``YYYY-MM-DD`` string means midnight UTC.
        name: what the value is, for the error message (``"start"``, ``"--until"``).

    Raises:
        ConfigError: the value is naive, not a time, or not ISO 8601.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigError(
                f"{name} is a naive datetime ({value.isoformat()}); give it a time zone, "
                "e.g. datetime(..., tzinfo=timezone.utc)"
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a datetime or an ISO string, got {type(value).__name__}")
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return to_utc(date.fromisoformat(text), name=name)
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ConfigError(
            f"{name} is not an ISO 8601 time: {value!r} (e.g. 2026-11-01T08:00:00+08:00)"
        ) from None
    if parsed.tzinfo is None:
        raise ConfigError(
            f"{name} has no time zone: {value!r}; append Z for UTC or an offset such as +08:00"
        )
    return parsed.astimezone(UTC)


def resolve_since(value: TimeLike, *, now: datetime | None = None, name: str = "since") -> datetime:
    """Resolve ``since``: a span (``7d``) counts back from ``now``; anything else is a time."""
    if isinstance(value, str) and _SPAN.match(value):
        return (now or utc_now()) - parse_span(value)
    return to_utc(value, name=name)


def to_wire(value: datetime) -> str:
    """Format an aware datetime as the service wants it: ``2023-11-14T00:00:00+0800``.

    Sub-second parts are dropped (the API has one-second resolution).
    """
    return to_utc(value).astimezone(CHINA_TZ).strftime("%Y-%m-%dT%H:%M:%S+0800")
