"""Time-window planning for the fetch engine: slices, whole-second splits, wire bounds. No I/O.

DescribeMediaJobs filters on creation time only, with bounds that the Chinese documentation
calls exclusive ("greater than", "less than") and that carry one-second resolution. Within one
query ``nextToken`` pages sequentially, so the fetch engine gets its parallelism by cutting the
requested range into :class:`Slice` objects, one ``(tag, queue, [start, end))`` each, and
paging the slices side by side.

The rules this module keeps:

* Every slice is half-open, ``[start, end)``, on exact times. Cuts between neighbouring slices
  fall on whole seconds, so a second's jobs belong to exactly one slice.
* :func:`wire_bounds` widens a slice to the bounds sent to the service: one second before the
  start (the lower bound is exclusive) and the end rounded up to a whole second (the upper bound
  is exclusive and the service has no fractions). Whether the real service is exclusive is not
  certain, so callers always filter rows back to ``[start, end)`` themselves.
* :func:`plan_split` decides, from the pages one slice has read so far, whether the rest of it
  is busy enough to hand to other workers, and cuts that rest into sub-slices expected to need
  a few pages each. A full page ordered by creation time tells where to cut: every job created
  before the second of its last row has been seen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._times import TimeLike, to_utc
from .errors import ConfigError
from .schema import TAGS

__all__ = [
    "ONE_SECOND",
    "Slice",
    "SplitPlan",
    "ceil_second",
    "check_names",
    "check_range",
    "floor_second",
    "plan_split",
    "seed_slices",
    "split_range",
    "wire_bounds",
]

ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Slice:
    """One unit of fetch work: the jobs of one tag and queue created in ``[start, end)``.

    Attributes:
        tag: the job type sent as ``tag`` (any string; the service may know more than 19).
        queue_id: the queue sent as ``queueId``, or None for no queue filter.
        start: the inclusive lower bound, an aware UTC datetime.
        end: the exclusive upper bound, an aware UTC datetime after ``start``.

    Raises:
        ConfigError: a bound is naive, or ``start`` is not before ``end``.
    """

    tag: str
    queue_id: str | None
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = to_utc(self.start, name="Slice.start")
        end = to_utc(self.end, name="Slice.end")
        if start >= end:
            raise ConfigError(f"a slice needs start < end, got [{start}, {end})")
        # Normalised to UTC so equal instants compare and hash equal.
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def span(self) -> timedelta:
        """The length of the slice."""
        return self.end - self.start

    def with_bounds(self, start: datetime, end: datetime) -> Slice:
        """The same tag and queue over ``[start, end)``."""
        return Slice(self.tag, self.queue_id, start, end)


@dataclass(frozen=True)
class SplitPlan:
    """What to do with a busy slice: keep ``[slice.start, cut)``, hand the rest on.

    Attributes:
        cut: the whole second where the slice now ends; every job created before it has been
            read already.
        parts: sub-slices that partition ``[cut, slice.end)``, each to be fetched on its own.
    """

    cut: datetime
    parts: tuple[Slice, ...]


def floor_second(value: datetime) -> datetime:
    """``value`` with its sub-second part dropped."""
    return value.replace(microsecond=0)


def ceil_second(value: datetime) -> datetime:
    """The first whole second at or after ``value``."""
    floored = floor_second(value)
    return floored if floored == value else floored + ONE_SECOND


def wire_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The creation-time bounds to send so that every job in ``[start, end)`` comes back.

    The service compares ``creationTime > startCreationTime`` and ``creationTime <
    endCreationTime`` on whole seconds, so the lower bound moves one second back and the upper
    bound rounds up. If the service turns out to be inclusive, the extra edge seconds come back
    too; the caller filters rows to ``[start, end)`` either way.

    Args:
        start: the inclusive lower bound of the wanted range (aware).
        end: the exclusive upper bound of the wanted range (aware).

    Returns:
        ``(startCreationTime, endCreationTime)`` as whole-second aware datetimes.
    """
    return floor_second(start) - ONE_SECOND, ceil_second(end)


def split_range(start: datetime, end: datetime, parts: int) -> list[tuple[datetime, datetime]]:
    """Cut ``[start, end)`` into up to ``parts`` neighbouring ranges of about equal length.

    Inner cut points fall on whole seconds, so one second's jobs never straddle two ranges; a
    range shorter than ``parts`` seconds gets fewer pieces. The outer bounds stay exact.

    Args:
        start: the inclusive lower bound.
        end: the exclusive upper bound, after ``start``.
        parts: how many pieces are wanted (at least 1).

    Returns:
        ``[(start, c1), (c1, c2), ..., (ck, end)]``, contiguous, each non-empty.

    Raises:
        ConfigError: ``parts`` is below 1 or ``start`` is not before ``end``.
    """
    if parts < 1:
        raise ConfigError(f"cannot split a range into {parts} parts")
    if start >= end:
        raise ConfigError(f"cannot split an empty range [{start}, {end})")
    step = (end - start) / parts
    cuts = [start]
    for i in range(1, parts):
        cut = floor_second(start + step * i)
        if cuts[-1] < cut < end:
            cuts.append(cut)
    cuts.append(end)
    return list(itertools.pairwise(cuts))


def plan_split(
    piece: Slice,
    *,
    rows_seen: int,
    last_creation: datetime,
    page_size: int,
    target_pages: int,
    max_parts: int,
) -> SplitPlan | None:
    """Decide whether a slice that still has pages to read should hand its rest to others.

    The pages read so far are ordered by creation time, so the jobs they hold cover
    ``[piece.start, last_creation]`` and every job created before the whole second of
    ``last_creation`` has been seen. That second is the cut. The density of the pages read
    predicts how many pages ``[cut, piece.end)`` still holds; when that is more than
    ``target_pages``, the rest is cut into sub-slices expected to need about ``target_pages``
    pages each (at most ``max_parts`` of them: a wrong guess then costs at most that many
    requests on empty sub-slices, and a busy sub-slice is split again in its turn).

    Args:
        piece: the slice being paged.
        rows_seen: rows read so far that fall inside the slice and before ``last_creation``'s
            second is reached (rows on the edge count; the estimate is rough by design).
        last_creation: the latest creation time on the pages read so far.
        page_size: rows per full page (the ``size`` sent).
        target_pages: how many pages one slice should need.
        max_parts: the most sub-slices one split may create (at least 2).

    Returns:
        The plan, or None to keep paging this slice with its next token: the rest is small,
        or every row so far shares the slice's first second so there is nowhere to cut yet.

    Raises:
        ConfigError: a count is out of range.
    """
    if page_size < 1 or target_pages < 1 or max_parts < 2:
        raise ConfigError(
            f"plan_split needs page_size >= 1, target_pages >= 1 and max_parts >= 2, got "
            f"{page_size}, {target_pages} and {max_parts}"
        )
    cut = floor_second(to_utc(last_creation, name="last_creation"))
    if cut <= piece.start or cut >= piece.end:
        return None
    seen_span = (cut - piece.start).total_seconds()
    rest_span = (piece.end - cut).total_seconds()
    # Rows at the cut second itself are re-read by the next sub-slice; counting them in the
    # density errs on the busy side, which only makes the sub-slices a little smaller.
    expected_pages = max(rows_seen, 1) / seen_span * rest_span / page_size
    if expected_pages <= target_pages:
        return None
    wanted = min(max_parts, math.ceil(expected_pages / target_pages))
    rest = piece.with_bounds(cut, piece.end)
    parts = tuple(rest.with_bounds(a, b) for a, b in split_range(cut, piece.end, max(wanted, 2)))
    if len(parts) < 2:
        # A rest shorter than two seconds cannot be shared; paging on is cheaper than a re-read.
        return None
    return SplitPlan(cut=cut, parts=parts)


def check_range(start: TimeLike, end: TimeLike) -> tuple[datetime, datetime]:
    """Resolve a user's ``[start, end)`` to aware UTC datetimes.

    Args:
        start: the inclusive lower bound (aware datetime, date or ISO string with a zone).
        end: the exclusive upper bound.

    Returns:
        ``(start, end)`` in UTC.

    Raises:
        ConfigError: a bound is naive or not a time, or ``start`` is not before ``end``.
    """
    lower = to_utc(start, name="start")
    upper = to_utc(end, name="end")
    if lower >= upper:
        raise ConfigError(
            f"start ({lower.isoformat()}) must be before end ({upper.isoformat()}); "
            "the range is [start, end)"
        )
    return lower, upper


def check_names(values: Iterable[str], what: str) -> list[str]:
    """Tags, queue ids or states as a de-duplicated list; a lone string counts as one name.

    Args:
        values: the names as given.
        what: the argument's name, for the error message.

    Returns:
        The names in their first order, each once.

    Raises:
        ConfigError: a name is not a non-empty string, or there are none.
    """
    items = [values] if isinstance(values, str) else list(values)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{what} must be non-empty strings, got {item!r}")
        if item not in names:
            names.append(item)
    if not names:
        raise ConfigError(f"{what} is empty; pass None to mean all")
    return names


def seed_slices(
    start: TimeLike,
    end: TimeLike,
    tags: Iterable[str] | None = None,
    queue_ids: Iterable[str] | None = None,
) -> list[Slice]:
    """The coarse slices a fetch starts from: the whole range once per (tag, queue).

    Starting coarse costs one request for a tag or queue that turns out empty; busy slices
    are cut later, where their pages show the jobs are (:func:`plan_split`).

    Args:
        start: the inclusive lower bound.
        end: the exclusive upper bound.
        tags: job types; None means the 19 documented ones (other strings pass through).
        queue_ids: queues; None means one slice per tag without a queue filter.

    Returns:
        One slice per (tag, queue), tags in the order given.

    Raises:
        ConfigError: the range or a name is invalid.
    """
    lower, upper = check_range(start, end)
    tag_list = check_names(TAGS if tags is None else tags, "tags")
    queues: list[str | None] = (
        [None] if queue_ids is None else list(check_names(queue_ids, "queue_ids"))
    )
    return [Slice(tag, queue, lower, upper) for tag in tag_list for queue in queues]
