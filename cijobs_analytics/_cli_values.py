"""What the ``cijobs`` options accept: the value types and checks the commands share.

Each raises ``click.BadParameter`` (exit 2, one line naming the option) for a value it refuses,
before the command locks, fetches or writes anything. Times are resolved against one moment
per command (``now_of``), so ``--since 1d --until 1h`` is exactly 23 hours.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from ._times import parse_span, resolve_time, utc_now
from .errors import ConfigError

__all__ = [
    "TIME",
    "FiniteFloatRange",
    "NameList",
    "TimeType",
    "as_of",
    "check_order",
    "dataset_path",
    "joined",
    "now_of",
    "option_name",
    "query_text",
    "refetch_ranges",
    "span",
    "storage_options",
]


def now_of(ctx: click.Context | None) -> datetime:
    """The moment every span of one command counts back from."""
    if ctx is None:
        return utc_now()
    now: datetime = ctx.find_root().meta.setdefault(f"{__package__}.now", utc_now())
    return now


def option_name(param: click.Parameter | None) -> str:
    """How a message names the parameter: its first flag (``--until``), else its name."""
    if isinstance(param, click.Option) and param.opts:
        return param.opts[0]
    return param.human_readable_name if param is not None else "time"


class TimeType(click.ParamType[datetime]):
    """A time: ISO with a zone, a span back from now (``7d``, ``12h``) or ``now``."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return resolve_time(str(value), now=now_of(ctx), name=option_name(param))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


TIME = TimeType()


class NameList(click.ParamType[tuple[str, ...]]):
    """Names from a fixed list, one per option or comma-separated; a near miss names the fix.

    Converts each occurrence to a tuple of names; :func:`joined` flattens them.
    """

    name = "names"

    def __init__(self, choices: Sequence[str], what: str) -> None:
        self.choices = tuple(choices)
        self.what = what

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        names = []
        for item in str(value).split(","):
            name = item.strip()
            if not name:
                self.fail(
                    f"{value!r} holds an empty name; separate names with one comma", param, ctx
                )
            if name not in self.choices:
                self.fail(_unknown(name, self.choices, self.what), param, ctx)
            names.append(name)
        return tuple(names)


def _unknown(name: str, choices: Sequence[str], what: str) -> str:
    """Say ``name`` is none of ``choices`` (each a ``what``): the right case or the closest
    one when there is one, else every choice."""
    folded = {choice.casefold(): choice for choice in choices}
    guess = folded.get(name.casefold())
    if guess is None:
        close = difflib.get_close_matches(name.casefold(), list(folded), n=1)
        guess = folded[close[0]] if close else None
    if guess is not None:
        return f"{name!r} is not a {what}; did you mean {guess!r}?"
    return f"{name!r} is not one of {', '.join(repr(choice) for choice in choices)}"


def joined(ctx: click.Context, param: click.Parameter, value: Any) -> tuple[str, ...]:
    """The names of every occurrence of a repeatable name option, each once, in order."""
    names: list[str] = []
    for group in value or ():
        names.extend(name for name in group if name not in names)
    return tuple(names)


class FiniteFloatRange(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` and ``inf`` (``float()`` reads both)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def check_order(start: datetime | None, end: datetime | None, names: tuple[str, str]) -> None:
    """Refuse a range whose start (option ``names[0]``) is not before its end."""
    if start is not None and end is not None and start >= end:
        raise click.BadParameter(
            f"{names[0]} ({start.isoformat()}) must be before {names[1]} ({end.isoformat()})",
            param_hint=" / ".join(f"'{name}'" for name in names),
        )


def span(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """A span such as ``10min`` (``--overlap``), at most a century."""
    try:
        return parse_span(value, name=option_name(param))
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def refetch_ranges(
    ctx: click.Context, param: click.Parameter, value: tuple[tuple[datetime, datetime], ...]
) -> list[tuple[datetime, datetime]]:
    """``--refetch START END`` pairs (already times), each START before its END."""
    for start, end in value:
        if start >= end:
            raise click.BadParameter(
                f"START ({start.isoformat()}) must be before END ({end.isoformat()})",
                ctx=ctx,
                param=param,
            )
    return list(value)


def storage_options(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, str] | None:
    """``--storage-option KEY=VALUE`` pairs as a dict; None when there are none."""
    from ._location import parse_storage_option

    try:
        return dict(parse_storage_option(item) for item in value) or None
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def dataset_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Expand a leading ``~``, which the shell leaves alone in ``--dataset=~/jobs``."""
    if not value.startswith("~"):
        return value
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):  # an unknown user, or no home directory
        user = value.split("/", 1)[0]
        raise click.BadParameter(f"cannot expand {user!r}: no such home directory", ctx, param)
    return expanded


def as_of(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--as-of``: a table version, or a time as :class:`TimeType` takes it; None for now."""
    from ._tables import resolve_as_of

    if value is None or value.strip().lower() == "now":
        return None
    text = value.strip()
    if text.isdecimal() and text.isascii():
        if int(text) >= 2**63:  # Delta versions are signed 64-bit integers
            raise click.BadParameter(f"version {text} is beyond any table's", ctx=ctx, param=param)
        return resolve_as_of(text)
    try:
        return resolve_as_of(resolve_time(text, now=now_of(ctx), name="--as-of"))
    except ConfigError as exc:
        raise click.BadParameter(f"{exc}; or a table version (3)", ctx=ctx, param=param) from None


def query_text(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """QUERY of ``cijobs sql``: anything but blanks (DuckDB would return no result)."""
    if not value.strip():
        raise click.BadParameter(
            "the query is empty; give one, e.g. 'SELECT count(*) FROM jobs'", ctx=ctx, param=param
        )
    return value
