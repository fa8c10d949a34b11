"""Small job datasets on disk, in the dataset layout (``docs/architecture.md``), for the query
and report tests.

``sample_jobs`` makes deterministic, varied job rows (tags, queues, states, failure codes with
non-ASCII and ``$`` in messages, null times, portrait and audio-only media, several streams and
output objects); ``write_dataset`` commits them to the ``jobs`` Delta table the way an export
does, optionally after a first version holding stale rows of some jobs, so readers can be
checked to show the newest version (and ``as_of=0`` the stale one).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from cijobs_analytics._location import resolve_location
from cijobs_analytics._tables import JOBS_TABLE, JOBS_TABLE_SCHEMA, create_table, open_table, upsert
from cijobs_analytics.schema import JOBS_SCHEMA

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
FETCHED = datetime(2026, 11, 4, 0, 0, tzinfo=UTC)

FAILURES = (
    ("InputFileNotExist", "source object does not exist"),
    ("InternalError", "内部错误，请重试"),
    ("InvalidTemplate", "template costs $5 per $minute"),
)


def job(
    job_id: str,
    created: datetime,
    *,
    tag: str = "Transcode",
    state: str = "Success",
    queue_id: str | None = "q1",
    code: str | None = "Success",
    message: str | None = None,
    wait_s: float | None = 5.0,
    processing_s: float | None = 30.0,
    duration_s: float | None = 60.0,
    video: tuple[int | None, int | None, str | None] = (1920, 1080, "h264"),
    n_streams: int = 2,
    n_outputs: int = 1,
    fetched_at: datetime = FETCHED,
    template_id: str | None = "t1",
) -> dict[str, Any]:
    """One job row in JOBS_SCHEMA; times and derived columns agree with each other."""
    start = created + timedelta(seconds=wait_s) if wait_s is not None else None
    end = (
        start + timedelta(seconds=processing_s)
        if start is not None and processing_s is not None
        else None
    )
    width, height, codec = video
    streams: list[dict[str, Any]] = []
    for index in range(n_streams):
        kind = "video" if index == 0 and codec is not None else "audio"
        streams.append(
            {
                "kind": kind,
                "index": index,
                "codec_name": codec if kind == "video" else "aac",
                "width": width if kind == "video" else None,
                "height": height if kind == "video" else None,
                "duration_s": duration_s,
            }
        )
    outputs = [
        {"bucket": "out-1250000000", "region": "ap-guangzhou", "object_name": f"{job_id}/{i}.mp4"}
        for i in range(n_outputs)
    ]
    return {
        "bucket": "examplebucket-1250000000",
        "region": "ap-guangzhou",
        "fetched_at": fetched_at,
        "job_id": job_id,
        "tag": tag,
        "state": state,
        "code": code,
        "message": message,
        "queue_id": queue_id,
        "creation_time": created,
        "start_time": start,
        "end_time": end,
        "queue_wait_s": wait_s if start is not None else None,
        "processing_s": processing_s if end is not None else None,
        "speed_x": duration_s / processing_s
        if duration_s is not None and end is not None and processing_s
        else None,
        "template_id": template_id,
        "duration_s": duration_s,
        "video_codec": codec,
        "video_width": width,
        "video_height": height,
        "streams": streams,
        "output_files": outputs,
        "extra": {"Operation/UserData": job_id},
    }


def sample_jobs(n: int = 120, *, seed: int = 7, tags: int = 4) -> list[dict[str, Any]]:
    """``n`` varied jobs created over three days from T0, deterministic for a seed."""
    rng = random.Random(seed)
    tag_names = [
        "Transcode",
        "Snapshot",
        "Animation",
        "SuperResolution",
        *[f"Tag{i:02d}" for i in range(40)],
    ][:tags]
    videos: list[tuple[int | None, int | None, str | None]] = [
        (640, 360, "h264"),
        (1280, 720, "h264"),
        (1920, 1080, "h265"),
        (1080, 1920, "h264"),  # portrait: FHD, not 4K
        (2560, 1440, "av1"),
        (3840, 2160, "h265"),
        (None, None, None),  # audio only
    ]
    rows = []
    for i in range(n):
        created = T0 + timedelta(seconds=rng.randrange(0, 3 * 86400))
        if i % 10 == 0:  # many jobs on exact hour boundaries
            created = created.replace(minute=0, second=0)
        state = rng.choices(
            ["Success", "Failed", "Running", "Submitted", "Cancel"], [60, 20, 8, 7, 5]
        )[0]
        code, message = "Success", None
        wait_s: float | None = float(rng.randrange(0, 600))
        processing_s: float | None = float(rng.randrange(1, 3600))
        if state == "Failed":
            code, message = rng.choice(FAILURES)
            if i % 3 == 0:  # failed before it started: no times at all
                wait_s = processing_s = None
        elif state == "Running":
            processing_s = None
        elif state in ("Submitted", "Cancel"):
            wait_s = processing_s = None
        rows.append(
            job(
                f"j{i:04d}",
                created,
                tag=rng.choice(tag_names),
                state=state,
                queue_id=rng.choice(["q1", "q2", "q3"]),
                code=code,
                message=message,
                wait_s=wait_s,
                processing_s=processing_s,
                duration_s=rng.choice([None, 12.5, 60.0, 300.0, 3600.0]),
                video=rng.choice(videos),
                n_streams=rng.randrange(0, 4),
                n_outputs=rng.randrange(0, 4),
                template_id=rng.choice(["t1", "t2", None]),
            )
        )
    return rows


def write_dataset(
    root: Path,
    rows: list[dict[str, Any]],
    *,
    stale: list[dict[str, Any]] | None = None,
) -> Path:
    """Commit ``rows`` to the ``jobs`` table of a dataset under ``root``; return ``root``.

    Args:
        stale: older versions of some jobs (older ``fetched_at``), committed first with the
            rows of the other jobs; ``rows`` then replace them in a second commit, so the
            newest version holds ``rows`` and version 1 the stale ones.
    """
    location = resolve_location(root)
    table = open_table(location, JOBS_TABLE) or create_table(
        location, JOBS_TABLE, JOBS_TABLE_SCHEMA, partition_by=["date"]
    )
    if stale:
        replaced = {row["job_id"] for row in stale}
        first = [row for row in rows if row["job_id"] not in replaced] + list(stale)
        upsert(table, pa.Table.from_pylist(first, schema=JOBS_SCHEMA))
    upsert(table, pa.Table.from_pylist(rows, schema=JOBS_SCHEMA))
    return root


def stale_versions(rows: list[dict[str, Any]], every: int = 5) -> list[dict[str, Any]]:
    """Older versions of every ``every``-th job: fetched a day earlier, still Running."""
    return [
        {
            **row,
            "state": "Running",
            "code": "Success",
            "message": None,
            "end_time": None,
            "processing_s": None,
            "fetched_at": row["fetched_at"] - timedelta(days=1),
        }
        for row in rows[::every]
    ]
