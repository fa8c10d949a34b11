"""Deterministic synthetic job histories for the emulator.

:func:`generate_jobs` turns ``(jobs, days, seed, end)`` into the same list of
:class:`EmulatedJob` every time. The distributions follow what a busy media bucket looks like:

* creation times follow a daily cycle (quiet at 04:00 China time, busy in the afternoon and
  evening); some jobs are submitted in bursts that share one second, and some by hourly
  schedules that land exactly on ``HH:00:00`` — the cases that break careless pagination;
* tags are weighted (``Transcode`` and ``Snapshot`` dominate) but every one of the 19 occurs;
* media lasts 5 s to 2 h (log-normal), queue waits are seconds to minutes, processing time is
  the media duration divided by a per-tag speed factor;
* a job whose processing has not ended by ``end`` is still open (``Running``, ``Submitted`` or
  ``Pause``), so open jobs are the newest ones, as in the real service;
* some finished jobs failed with a code and a message, a few were cancelled.

Only the fields that queries and state changes need live on :class:`EmulatedJob`; the rest of
the ``<JobsDetail>`` document (media info, per-tag blocks, outputs) is derived from
``EmulatedJob.variant`` by :mod:`.render`, so it is stable across renders and costs no memory
until a job is served.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ..errors import ConfigError
from ..schema import OPEN_STATES, TAGS

__all__ = [
    "FAILURES",
    "TAG_WEIGHTS",
    "EmulatedJob",
    "finish_job",
    "generate_jobs",
    "make_queue_ids",
    "new_job",
]

#: Relative frequency of each tag; every documented tag occurs.
TAG_WEIGHTS: dict[str, float] = {
    "Transcode": 40.0,
    "Snapshot": 20.0,
    "MediaInfo": 6.0,
    "Segment": 5.0,
    "Animation": 3.0,
    "SmartCover": 3.0,
    "Concat": 2.5,
    "VoiceSeparate": 2.0,
    "VideoMontage": 1.5,
    "SDRtoHDR": 1.0,
    "VideoProcess": 1.5,
    "SuperResolution": 1.5,
    "DigitalWatermark": 2.0,
    "ExtractDigitalWatermark": 1.0,
    "VideoTag": 2.0,
    "StreamExtract": 2.0,
    "QualityEstimate": 1.5,
    "Tts": 2.0,
    "NoiseReduction": 1.5,
}

#: Media seconds processed per wall-clock second, (low, high), per tag.
_SPEED: dict[str, tuple[float, float]] = {
    "Transcode": (0.8, 12.0),
    "Snapshot": (20.0, 200.0),
    "MediaInfo": (500.0, 5000.0),
    "Segment": (10.0, 60.0),
    "Animation": (2.0, 10.0),
    "SmartCover": (5.0, 30.0),
    "Concat": (1.0, 8.0),
    "VoiceSeparate": (0.5, 3.0),
    "VideoMontage": (0.5, 2.0),
    "SDRtoHDR": (0.2, 1.0),
    "VideoProcess": (0.3, 1.5),
    "SuperResolution": (0.1, 0.8),
    "DigitalWatermark": (1.0, 6.0),
    "ExtractDigitalWatermark": (5.0, 30.0),
    "VideoTag": (2.0, 10.0),
    "StreamExtract": (10.0, 80.0),
    "QualityEstimate": (2.0, 12.0),
    "Tts": (2.0, 8.0),
    "NoiseReduction": (1.0, 5.0),
}

#: Job-level failure codes and messages. The vocabulary is not documented; these reuse CI
#: error codes and carry ``&``/``<`` so that escaping is exercised.
FAILURES: tuple[tuple[str, str], ...] = (
    ("ResourceNotFound", "The specified input object does not exist."),
    ("InvalidArgument", "Transcode failed: width & height must be even, got <1281x721>"),
    ("InternalError", "Internal error, please retry later."),
    ("MediaBucketUnBinded", "The bucket is not bound to media processing."),
    ("ResourceDownloadFailed", "Download input failed: connection reset & retries exhausted"),
    ("InvalidContent", "Transcode failed: moov atom not found, the input is not a media file"),
    ("TemplateNotFound", "The template does not exist or was deleted."),
    ("WriteTargetBucketDenied", "Writing to the target bucket is denied by its <ACL>."),
    ("InternalError", "Transcode failed: encoder exited with code 1 & no output"),
)

_FAILED_SHARE = 0.06
#: Job types that fail more or less often than most, so failure analysis has something to find:
#: heavy GPU work and multi-input jobs fail more, metadata reads hardly ever.
_FAILED_SHARE_BY_TAG = {
    "SuperResolution": 0.15,
    "SDRtoHDR": 0.12,
    "Concat": 0.10,
    "VideoMontage": 0.09,
    "MediaInfo": 0.01,
    "Snapshot": 0.03,
}
_CANCEL_SHARE = 0.012
_SAME_SECOND_SHARE = 0.12
_ON_HOUR_SHARE = 0.03
_TZ8 = timedelta(hours=8)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EmulatedJob:
    """One job the emulator holds, with the fields queries and state changes need.

    Times are aware UTC datetimes on whole seconds; ``None`` is what the wire shows as ``-``.

    Attributes:
        job_id: ``j`` and 32 hex digits.
        tag: the job type, one of :data:`cijobs_analytics.schema.TAGS`.
        queue_id: ``p`` and 32 hex digits.
        state: ``Submitted``, ``Running``, ``Pause``, ``Success``, ``Failed`` or ``Cancel``.
        code: the job-level ``<Code>`` (``Success`` unless the job failed).
        message: the job-level ``<Message>``; empty unless the job failed or was cancelled.
        progress: 0..100.
        creation_time: when the job was submitted.
        start_time: when processing began, or ``None``.
        end_time: when the job reached a final state, or ``None``.
        bucket: the bucket the job belongs to (input and output live there).
        region: the bucket's region.
        input_object: the input object key (may hold non-ASCII characters and ``&``).
        media_duration_s: the duration of the media, in seconds.
        workflow_id: the workflow that triggered the job, or ``None``.
        variant: the seed :mod:`.render` derives every other detail from.
    """

    job_id: str
    tag: str
    queue_id: str
    state: str
    code: str
    message: str
    progress: int
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    bucket: str
    region: str
    input_object: str
    media_duration_s: float
    workflow_id: str | None
    variant: int = field(repr=False)

    @property
    def is_open(self) -> bool:
        """Whether the job can still change state (Submitted, Running, Pause)."""
        return self.state in OPEN_STATES

    @property
    def creation_ts(self) -> int:
        """``creation_time`` as Unix seconds."""
        return int((self.creation_time - _EPOCH).total_seconds())

    def to_xml(self) -> str:
        """The ``<JobsDetail>`` element the server sends for this job.

        Returns:
            one element, no XML declaration, no indentation.
        """
        return self.xml_bytes.decode("utf-8")

    @property
    def xml_bytes(self) -> bytes:
        """:meth:`to_xml` as UTF-8, rendered once per job object (a state change makes a new
        object, so the cache never goes stale)."""
        # Not functools.cached_property: on 3.11 it holds one lock for all instances, which
        # would serialise the server's threads. Two threads rendering at once is harmless.
        cached: bytes | None = self.__dict__.get("_xml")
        if cached is None:
            from .render import render_job  # render imports this module: import here

            cached = self.__dict__["_xml"] = render_job(self).encode("utf-8")
        return cached


def _hex_id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}{rng.getrandbits(128):032x}"


def make_queue_ids(seed: int, count: int) -> list[str]:
    """The queue ids of an emulator, deterministic from the seed.

    Args:
        seed: the emulator's seed.
        count: how many queues (>= 1).

    Returns:
        ``count`` distinct ids of the form ``p`` + 32 hex digits.

    Raises:
        ConfigError: ``count`` is not a positive integer.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"queues must be a positive integer, got {count!r}")
    rng = random.Random(f"queues:{seed}")
    return [_hex_id(rng, "p") for _ in range(count)]


def _to_utc(ts: float) -> datetime:
    return _EPOCH + timedelta(seconds=int(ts))


def _cycle_weight(ts: float) -> float:
    """Relative submission rate at ``ts``: lowest at 04:00 China time, highest at 16:00."""
    hour = ((ts + _TZ8.total_seconds()) / 3600.0) % 24.0
    return 0.3 + 0.7 * (0.5 - 0.5 * math.cos(2.0 * math.pi * (hour - 4.0) / 24.0))


def _creation_times(rng: random.Random, jobs: int, start: int, end: int) -> list[int]:
    """``jobs`` sorted whole-second times in ``[start, end)`` with a daily cycle, bursts on one
    second and jobs on exact hour boundaries."""
    span = end - start
    times: list[int] = []
    while len(times) < jobs:
        ts = start + rng.random() * span
        if rng.random() * 1.0 <= _cycle_weight(ts):
            times.append(min(end - 1, int(ts)))
    times.sort()
    for i in range(len(times)):
        draw = rng.random()
        if draw < _ON_HOUR_SHARE:
            on_hour = times[i] - times[i] % 3600
            if on_hour >= start:
                times[i] = on_hour
        elif i and draw < _ON_HOUR_SHARE + _SAME_SECOND_SHARE:
            times[i] = times[i - 1]
    times.sort()
    return times


def _media_duration(rng: random.Random, tag: str) -> float:
    if tag == "Tts":
        return round(rng.uniform(5.0, 240.0), 6)
    seconds = math.exp(rng.gauss(math.log(180.0), 1.3))
    return round(min(7200.0, max(5.0, seconds)), 6)


def _input_object(rng: random.Random, index: int) -> str:
    folder = rng.choice(("input", "uploads", "课程", "raw/2024", "live/回放", "ugc"))
    stem = rng.choice(
        (
            f"lecture-{index % 97:02d}",
            f"第{index % 50 + 1}讲",
            f"vlog café {index % 31}",
            f"Q&A session {index % 13}",
            f"product-launch-{index % 11}",
            f"产品发布会-{index % 7}",
            f"clip_{index:06d}",
        )
    )
    ext = rng.choice(("mp4", "mp4", "mov", "mkv", "flv", "m4a", "wav"))
    return f"{folder}/{stem}.{ext}"


def _build_job(
    rng: random.Random,
    index: int,
    created: int,
    now: int,
    target: tuple[str, str],
    queue_ids: list[str],
    queue_weights: list[float],
    tags: list[str],
    tag_weights: list[float],
) -> EmulatedJob:
    tag = rng.choices(tags, tag_weights)[0]
    queue_id = rng.choices(queue_ids, queue_weights)[0]
    duration = _media_duration(rng, tag)
    low, high = _SPEED[tag]
    processing = max(1.0, duration / rng.uniform(low, high))
    wait = min(900.0, math.exp(rng.gauss(math.log(3.0), 1.4)))
    started = created + int(wait)
    ended = started + max(1, int(processing))
    workflow = _hex_id(rng, "w") if rng.random() < 0.15 else None
    variant = rng.getrandbits(63)
    job_id = _hex_id(rng, "j")
    draw = rng.random()
    state, code, message, progress = "Success", "Success", "", 100
    start_time: datetime | None = _to_utc(started)
    end_time: datetime | None = _to_utc(ended)
    if started > now:
        state, progress, start_time, end_time = "Submitted", 0, None, None
        if draw < 0.05:
            state = "Pause"
    elif ended > now:
        state, end_time = "Running", None
        progress = max(1, min(99, int(100 * (now - started) / processing)))
        if draw < 0.03:
            state = "Pause"
    elif draw < (failed_share := _FAILED_SHARE_BY_TAG.get(tag, _FAILED_SHARE)):
        state = "Failed"
        code, message = FAILURES[int(rng.random() * len(FAILURES))]
        progress = int(rng.random() * 60)
        end_time = _to_utc(started + int((ended - started) * progress / 100) + 1)
    elif draw < failed_share + _CANCEL_SHARE:
        state, code, message = "Cancel", "Success", "The job was canceled."
        progress = 0
        start_time = None
        end_time = _to_utc(min(now, created + int(wait / 2) + 1))
    return EmulatedJob(
        job_id=job_id,
        tag=tag,
        queue_id=queue_id,
        state=state,
        code=code,
        message=message,
        progress=progress,
        creation_time=_to_utc(created),
        start_time=start_time,
        end_time=end_time,
        bucket=target[0],
        region=target[1],
        input_object=_input_object(rng, index),
        media_duration_s=duration,
        workflow_id=workflow,
        variant=variant,
    )


def generate_jobs(
    jobs: int,
    days: float,
    seed: int,
    end: datetime,
    queue_ids: list[str],
    bucket: str,
    region: str,
) -> list[EmulatedJob]:
    """Generate a job history, deterministic from its arguments.

    Args:
        jobs: how many jobs (>= 0).
        days: the history spans ``[end - days, end)``.
        seed: the random seed; the same arguments give identical jobs.
        end: an aware datetime on a whole second; "now" for the generated states.
        queue_ids: the queues jobs are spread over (the first ones busier).
        bucket: the bucket the jobs belong to.
        region: the bucket's region.

    Returns:
        the jobs sorted by ``(creation_time, job_id)``; the newest ones are still open.

    Raises:
        ConfigError: a count or span is out of range, or ``end`` is naive.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 0:
        raise ConfigError(f"jobs must be a non-negative integer, got {jobs!r}")
    if not isinstance(days, int | float) or not 0 < days <= 3660:
        raise ConfigError(f"days must be a number in (0, 3660], got {days!r}")
    if end.tzinfo is None:
        raise ConfigError("end must be an aware datetime")
    if not queue_ids:
        raise ConfigError("at least one queue is needed")
    rng = random.Random(f"jobs:{seed}")
    end_ts = int((end - _EPOCH).total_seconds())
    start_ts = end_ts - max(1, int(days * 86400))
    tags = list(TAGS)
    tag_weights = [TAG_WEIGHTS[tag] for tag in tags]
    queue_weights = [1.0 / (i + 1) for i in range(len(queue_ids))]
    times = _creation_times(rng, jobs, start_ts, end_ts)
    built = [
        _build_job(
            rng, i, created, end_ts, (bucket, region), queue_ids, queue_weights, tags, tag_weights
        )
        for i, created in enumerate(times)
    ]
    # Every tag occurs (a history of a few hundred jobs would otherwise miss rare tags).
    # The replaced jobs are Transcode ones, the most common tag, picked evenly over time.
    missing = [tag for tag in tags if tag not in {job.tag for job in built}]
    common = [i for i, job in enumerate(built) if job.tag == "Transcode"]
    if missing and len(common) > 2 * len(missing):
        step = len(common) // len(missing)
        for n, tag in enumerate(missing):
            slot = common[n * step]
            built[slot] = replace(built[slot], tag=tag)
    # The newest jobs are open, so a small history still has something to advance().
    for i in range(max(0, len(built) - max(1, len(built) // 200)), len(built)):
        job = built[i]
        if not job.is_open:
            running = job.variant % 2 == 0
            built[i] = replace(
                job,
                state="Running" if running else "Submitted",
                code="Success",
                message="",
                progress=1 + job.variant % 98 if running else 0,
                start_time=job.creation_time if running else None,
                end_time=None,
            )
    built.sort(key=lambda job: (job.creation_time, job.job_id))
    return built


def finish_job(job: EmulatedJob, rng: random.Random, now: datetime) -> EmulatedJob:
    """Move an open job to a final state, ended at ``now``.

    Args:
        job: an open job.
        rng: decides Success (most), Failed or Cancel.
        now: the end time (clamped to be no earlier than the job's start or creation).

    Returns:
        a new job object in a final state.
    """
    now = now.replace(microsecond=0)
    floor = job.start_time or job.creation_time
    end_time = max(now, floor)
    draw = rng.random()
    failed_share = _FAILED_SHARE_BY_TAG.get(job.tag, _FAILED_SHARE)
    if draw < failed_share:
        code, message = FAILURES[int(rng.random() * len(FAILURES))]
        return replace(
            job,
            state="Failed",
            code=code,
            message=message,
            start_time=floor,
            end_time=end_time,
            progress=min(job.progress, 90),
        )
    if draw < failed_share + _CANCEL_SHARE or (job.state == "Pause" and draw < 0.3):
        return replace(
            job,
            state="Cancel",
            code="Success",
            message="The job was canceled.",
            end_time=end_time,
        )
    return replace(
        job,
        state="Success",
        code="Success",
        message="",
        progress=100,
        start_time=floor,
        end_time=end_time,
    )


def new_job(
    rng: random.Random, index: int, now: datetime, queue_ids: list[str], target: tuple[str, str]
) -> EmulatedJob:
    """A job submitted at ``now``: ``Submitted``, not started.

    Args:
        rng: the emulator's random source for new jobs.
        index: a running number, varies the input object name.
        now: the creation time (floored to the second).
        queue_ids: the queues to choose from.
        target: the ``(bucket, region)`` the job belongs to.

    Returns:
        the new job.
    """
    created = int((now - _EPOCH).total_seconds())
    tags = list(TAGS)
    job = _build_job(
        rng,
        index,
        created,
        created,
        target,
        queue_ids,
        [1.0 / (i + 1) for i in range(len(queue_ids))],
        tags,
        [TAG_WEIGHTS[tag] for tag in tags],
    )
    return replace(
        job,
        state="Submitted",
        code="Success",
        message="",
        progress=0,
        start_time=None,
        end_time=None,
    )
