"""Planning an export run: what to list, and how to refresh open jobs at the least cost.

Pure functions over the coverage ledger and the open jobs; :mod:`.store` runs the plans.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ._ledger import CoverageKey, Window

__all__ = [
    "IDS_PER_REQUEST",
    "OpenJob",
    "Span",
    "choose_windows",
    "cross_products",
    "in_plan",
    "union",
    "window_of",
]

#: Ids a ``get_jobs`` request takes.
IDS_PER_REQUEST = 10

#: A covered window of one key, as the refresh plans it: (key, start, end).
Span = tuple[CoverageKey, datetime, datetime]


@dataclass
class OpenJob:
    """A stored job that is still open, as the refresh needs it."""

    job_id: str
    tag: str
    queue_id: str | None
    creation_time: datetime


def choose_windows(
    by_window: dict[Span, list[OpenJob]],
    costs: dict[Span, int],
    loose: Sequence[OpenJob],
) -> set[Span]:
    """The windows to re-read: the cheapest of all-by-id, all-by-window and a greedy mix."""

    def price(reread: set[Span]) -> int:
        per_tag: dict[str, int] = defaultdict(int)
        for job in loose:
            per_tag[job.tag] += 1
        for span, jobs in by_window.items():
            if span not in reread:
                for job in jobs:
                    per_tag[job.tag] += 1
        lookups = sum(math.ceil(n / IDS_PER_REQUEST) for n in per_tag.values())
        return lookups + sum(costs[span] for span in reread)

    plans = [
        set(),
        {span for span, jobs in by_window.items() if len(jobs) >= IDS_PER_REQUEST * costs[span]},
        set(by_window),
    ]
    # On a tie the plan with fewer re-reads wins: a lookup by id costs exactly what was priced.
    return min(plans, key=lambda plan: (price(plan), len(plan)))


def window_of(ledger: Sequence[Window], key: CoverageKey, job: OpenJob) -> Window | None:
    """The cheapest covered window of ``key`` that holds the job's creation time."""
    best = None
    for window in ledger:
        holds = key.covered_by(window.key) and window.start <= job.creation_time < window.end
        if holds and (best is None or window.cost < best.cost):
            best = window
    return best


def in_plan(job: OpenJob, plan: dict[CoverageKey, list[tuple[datetime, datetime]]]) -> bool:
    """Whether this run's discovery lists the job anyway (so it needs no refresh)."""
    for key, ranges in plan.items():
        ours = key.tag == job.tag and key.queue in (None, job.queue_id)
        if ours and any(lo <= job.creation_time < hi for lo, hi in ranges):
            return True
    return False


def cross_products(
    keys: Sequence[CoverageKey],
) -> list[tuple[list[str], list[str | None]]]:
    """Split keys into (tags, queues) groups whose cross product is exactly those keys."""
    tags = sorted({k.tag for k in keys})
    queues = sorted({k.queue for k in keys}, key=lambda q: q or "")
    if len(keys) == len(tags) * len(queues):
        return [(tags, queues)]
    by_queue: dict[str | None, list[str]] = defaultdict(list)
    for key in keys:
        by_queue[key.queue].append(key.tag)
    return [(sorted(t), [q]) for q, t in sorted(by_queue.items(), key=lambda i: i[0] or "")]


def union(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
