"""The emulator's job store and the query semantics of ``GET /jobs``.

:func:`parse_list_query` validates the query parameters the way the service documents them
(reference §2) and :meth:`JobStore.list_jobs` answers one page. Jobs are indexed by
``(tag, queue)`` — and by ``(tag, any queue)`` — as lists sorted by ``(creation second,
job_id)``, so time bounds are two bisections and a page is a slice walk.

``nextToken`` is a cursor, not an offset: it holds the ``(creation second, job_id)`` of the
last job returned and a digest of the filters, base64url-encoded. A new job can only appear at
the head of a ``Desc`` listing or the tail of an ``Asc`` one, never between a cursor and the
jobs after it, so pages stay correct while jobs are created. A token replayed with different
filters is refused. ``NextToken`` is empty exactly when no further job matched at the time of
the request (the page looks one job ahead), so a page that ends on the last job has an empty
token.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..schema import OPEN_STATES, STATES
from .generate import EmulatedJob, finish_job, new_job

__all__ = [
    "QUEUE_TYPES",
    "AdvanceResult",
    "InvalidQueryError",
    "JobStore",
    "ListQuery",
    "parse_list_query",
]

#: Queue types the newest docs name; every emulated queue is a ``Transcoding`` queue.
QUEUE_TYPES = (
    "Transcoding",
    "SpeedTranscoding",
    "Speeching",
    "PicProcess",
    "AIProcess",
    "DocProcess",
    "FileProcess",
)
_EMULATED_QUEUE_TYPE = "Transcoding"
MAX_SIZE = 100
DEFAULT_SIZE = 10


class InvalidQueryError(Exception):
    """A query parameter the service would refuse (HTTP 400 ``InvalidArgument``)."""


@dataclass(frozen=True)
class AdvanceResult:
    """What :meth:`JobStore.advance` changed.

    Attributes:
        finished: ids of the open jobs moved to a final state.
        created: ids of the jobs created, stamped with the current time.
    """

    finished: list[str]
    created: list[str]


@dataclass(frozen=True)
class ListQuery:
    """The filters and paging of one ``GET /jobs`` request, validated.

    Times are Unix seconds; ``states`` is ``None`` for all states.
    """

    tag: str
    queue_id: str | None = None
    queue_type: str | None = None
    states: frozenset[str] | None = None
    start: int | None = None
    end: int | None = None
    order: str = "Desc"
    size: int = DEFAULT_SIZE
    workflow_id: str | None = None
    input_object: str | None = None
    inventory_trigger_job_id: str | None = None
    next_token: str | None = None

    def digest(self) -> str:
        """A short digest of the filters (everything but ``size`` and the token)."""
        states = ",".join(sorted(self.states)) if self.states is not None else "All"
        text = "\x1f".join(
            str(part)
            for part in (
                self.tag,
                self.queue_id,
                self.queue_type,
                states,
                self.start,
                self.end,
                self.order,
                self.workflow_id,
                self.input_object,
                self.inventory_trigger_job_id,
            )
        )
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def _parse_time(name: str, text: str) -> int:
    try:
        parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        hint = " ('+' must be sent as %2B)" if " " in text else ""
        raise InvalidQueryError(
            f"{name} is not a time: {text!r}{hint}; use %Y-%m-%dT%H:%M:%S%z, "
            "e.g. 2001-01-01T00:00:00+0800"
        ) from None
    return int(parsed.timestamp())


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """Validate the query parameters of ``GET /jobs``.

    Args:
        params: decoded parameters (the first value of each name); unknown names are ignored.

    Returns:
        the validated query.

    Raises:
        InvalidQueryError: ``tag`` missing, or a bad ``states``, ``orderByTime``, ``size``,
            ``queueType`` or creation time.
    """
    tag = params.get("tag", "")
    if not tag:
        raise InvalidQueryError("tag is required")
    order = params.get("orderByTime") or "Desc"
    if order not in ("Asc", "Desc"):
        raise InvalidQueryError(f"orderByTime must be Asc or Desc, got {order!r}")
    size_text = params.get("size")
    size = DEFAULT_SIZE
    if size_text is not None:
        if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_SIZE:
            raise InvalidQueryError(
                f"size is invalid, it must be between 1 and {MAX_SIZE}, got {size_text!r}"
            )
        size = int(size_text)
    states: frozenset[str] | None = None
    raw_states = [s.strip() for s in params.get("states", "").split(",") if s.strip()]
    unknown = [s for s in raw_states if s != "All" and s not in STATES]
    if unknown:
        raise InvalidQueryError(
            f"states has unknown values {unknown}; use All or any of {', '.join(STATES)}"
        )
    if raw_states and "All" not in raw_states:
        states = frozenset(raw_states)
    queue_type = params.get("queueType") or None
    if queue_type is not None and queue_type not in QUEUE_TYPES:
        raise InvalidQueryError(f"queueType must be one of {', '.join(QUEUE_TYPES)}")
    start = end = None
    if params.get("startCreationTime"):
        start = _parse_time("startCreationTime", params["startCreationTime"])
    if params.get("endCreationTime"):
        end = _parse_time("endCreationTime", params["endCreationTime"])
    return ListQuery(
        tag=tag,
        queue_id=params.get("queueId") or None,
        queue_type=queue_type,
        states=states,
        start=start,
        end=end,
        order=order,
        size=size,
        workflow_id=params.get("workflowId") or None,
        input_object=params.get("inputObject") or None,
        inventory_trigger_job_id=params.get("inventoryTriggerJobId") or None,
        next_token=params.get("nextToken") or None,
    )


def _encode_token(key: tuple[int, str], digest: str) -> str:
    raw = f"{key[0]}.{key[1]}.{digest}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, digest: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        ts_text, job_id, token_digest = raw.split(".")
        key = (int(ts_text), job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidQueryError("nextToken is invalid") from None
    if token_digest != digest:
        raise InvalidQueryError("nextToken does not belong to this query; keep the filters")
    return key


class _Index:
    """The (creation second, job_id) keys of one (tag, queue), sorted."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: list[tuple[int, str]] = []

    def add(self, key: tuple[int, str]) -> None:
        bisect.insort(self.keys, key)


class JobStore:
    """Thread-safe jobs with their indexes, answering list, lookup, truth and advance.

    Args:
        jobs: the initial jobs (any order).
        queue_ids: the emulated queues (new jobs go to them).
        target: ``(bucket, region)`` of new jobs.
        seed: seeds the random source of :meth:`advance`.
    """

    def __init__(
        self,
        jobs: Iterable[EmulatedJob],
        queue_ids: list[str],
        target: tuple[str, str],
        seed: int,
    ) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[str, EmulatedJob] = {}
        self._indexes: dict[tuple[str, str | None], _Index] = {}
        self._queue_ids = list(queue_ids)
        self._target = target
        self._rng = random.Random(f"advance:{seed}")
        self._created = 0
        ordered = sorted(jobs, key=lambda job: (job.creation_ts, job.job_id))
        for job in ordered:
            self._jobs[job.job_id] = job
            key = (job.creation_ts, job.job_id)
            for index_key in ((job.tag, job.queue_id), (job.tag, None)):
                index = self._indexes.get(index_key)
                if index is None:
                    index = self._indexes[index_key] = _Index()
                # Appending in sorted order keeps the list sorted without bisecting.
                index.keys.append(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def _add(self, job: EmulatedJob) -> None:
        self._jobs[job.job_id] = job
        key = (job.creation_ts, job.job_id)
        for index_key in ((job.tag, job.queue_id), (job.tag, None)):
            self._indexes.setdefault(index_key, _Index()).add(key)

    def _matches(self, job: EmulatedJob, query: ListQuery) -> bool:
        return (
            (query.states is None or job.state in query.states)
            and (query.workflow_id is None or job.workflow_id == query.workflow_id)
            and (query.input_object is None or job.input_object == query.input_object)
        )

    def list_jobs(
        self, query: ListQuery, *, inclusive: bool = False
    ) -> tuple[list[EmulatedJob], str]:
        """Answer one page of ``GET /jobs``.

        Args:
            query: the validated query, with its ``next_token``.
            inclusive: whether the creation-time bounds include their own second (the service
                documents them as exclusive).

        Returns:
            the page's jobs in the requested order and the ``NextToken`` (empty on the last
            page).

        Raises:
            InvalidQueryError: the token is garbled or belongs to other filters.
        """
        digest = query.digest()
        cursor = _decode_token(query.next_token, digest) if query.next_token else None
        if query.inventory_trigger_job_id is not None:
            return [], ""  # no emulated job was triggered by a batch job
        if query.queue_id is None and query.queue_type not in (None, _EMULATED_QUEUE_TYPE):
            return [], ""
        with self._lock:
            index = self._indexes.get((query.tag, query.queue_id))
            if index is None:
                return [], ""  # unknown tag or queue: the service adds tags over time
            keys = index.keys
            lo, hi = 0, len(keys)
            if query.start is not None:
                lo = bisect.bisect_left(keys, (query.start if inclusive else query.start + 1, ""))
            if query.end is not None:
                hi = bisect.bisect_left(keys, (query.end + 1 if inclusive else query.end, ""))
            if query.order == "Asc":
                if cursor is not None:
                    lo = max(lo, bisect.bisect_right(keys, cursor))
                positions: Iterable[int] = range(lo, hi)
            else:
                if cursor is not None:
                    hi = min(hi, bisect.bisect_left(keys, cursor))
                positions = range(hi - 1, lo - 1, -1)
            page: list[EmulatedJob] = []
            more = False
            for pos in positions:
                job = self._jobs[keys[pos][1]]
                if not self._matches(job, query):
                    continue
                if len(page) == query.size:
                    more = True
                    break
                page.append(job)
        token = _encode_token((page[-1].creation_ts, page[-1].job_id), digest) if more else ""
        return page, token

    def lookup(self, job_ids: list[str]) -> tuple[list[EmulatedJob], list[str]]:
        """The jobs with these ids, and the ids no job has (``NonExistJobIds``)."""
        with self._lock:
            found = [self._jobs[i] for i in job_ids if i in self._jobs]
        return found, [i for i in job_ids if i not in {job.job_id for job in found}]

    def truth(
        self,
        start: float | None = None,
        end: float | None = None,
        tags: Iterable[str] | None = None,
        queue_ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
    ) -> list[EmulatedJob]:
        """Every job created in ``[start, end)`` matching the filters, by (creation, job_id)."""
        tag_set = None if tags is None else set(tags)
        queue_set = None if queue_ids is None else set(queue_ids)
        state_set = None if states is None else set(states)
        with self._lock:
            jobs = list(self._jobs.values())
        selected = [
            job
            for job in jobs
            if (start is None or job.creation_ts >= start)
            and (end is None or job.creation_ts < end)
            and (tag_set is None or job.tag in tag_set)
            and (queue_set is None or job.queue_id in queue_set)
            and (state_set is None or job.state in state_set)
        ]
        selected.sort(key=lambda job: (job.creation_ts, job.job_id))
        return selected

    def advance(self, finish: float, new_jobs: int, now: datetime) -> AdvanceResult:
        """Finish the oldest ``finish`` share of open jobs at ``now``; create ``new_jobs`` jobs.

        Args:
            finish: the share (0..1) of open jobs to move to a final state, oldest first.
            new_jobs: how many ``Submitted`` jobs to create, stamped with ``now``.
            now: the current time, aware.

        Returns:
            the ids finished and created.
        """
        now = now.replace(microsecond=0)
        with self._lock:
            open_jobs = sorted(
                (job for job in self._jobs.values() if job.state in OPEN_STATES),
                key=lambda job: (job.creation_ts, job.job_id),
            )
            count = round(finish * len(open_jobs))
            finished = []
            for job in open_jobs[:count]:
                self._jobs[job.job_id] = finish_job(job, self._rng, now)
                finished.append(job.job_id)
            created = []
            for _ in range(new_jobs):
                self._created += 1
                job = new_job(self._rng, self._created, now, self._queue_ids, self._target)
                self._add(job)
                created.append(job.job_id)
        return AdvanceResult(finished=finished, created=created)
