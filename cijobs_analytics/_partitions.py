"""The job partitions of a dataset: ``jobs/date=YYYY-MM-DD/part-<uuid>.parquet``.

A partition holds the jobs created on one UTC date, one row per ``job_id`` (each write keeps
the stored rows in their order and appends the new ones sorted by ``(creation_time, job_id)``),
zstd-compressed, with exactly the ``JOBS_SCHEMA`` columns and the schema version in the file
metadata. It is changed only by :func:`._rewrite.rewrite_partition`, in one of two ways that
cannot be seen half done, both writing ``part-<uuid>.parquet.tmp`` (fsynced) and renaming it
into place (the directory fsynced):

- an **append** adds a file of jobs the partition does not hold yet and touches no stored file,
  so a partition may hold several files while an export runs, none sharing a job;
- a **rewrite** merges the stored files and the fetched rows into one new file, and only after
  its rename are the old files deleted. A crash between the rename and the deletes leaves
  files that both hold a job; readers keep the winning row (see :func:`dedupe`).

An export compacts every partition it appended to back to one file at the end of its run, and
the next export compacts whatever a killed run left with several files.

Which row of a job wins: a finished row (state not in ``OPEN_STATES``) is final and beats any
open row; among rows of the same kind the newest ``fetched_at`` wins. A row that only repeats
what is stored (same values, a later ``fetched_at``) changes nothing, so an export that finds
no news rewrites no file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import StoreError
from .schema import JOBS_SCHEMA, OPEN_STATES, SCHEMA_VERSION

__all__ = [
    "JOBS_DIR",
    "ROW_ORDER",
    "VERSION_KEY",
    "check_job_file",
    "conform",
    "dedupe",
    "differs",
    "file_schema_version",
    "fsync_dir",
    "is_final",
    "list_partitions",
    "partition_dates",
    "partition_path",
    "read_job_file",
    "read_partition",
    "remove_temporaries",
    "split_by_date",
    "upgrade",
    "write_parquet_durably",
]

JOBS_DIR = "jobs"
VERSION_KEY = b"cijobs_analytics.schema_version"

_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_PART_FILE = re.compile(r"^part-[0-9a-f]{32}\.parquet$")
_TMP_SUFFIX = ".tmp"
#: Columns whose equality decides whether a fetched row is news; ``fetched_at`` is not one.
_CONTENT_COLUMNS = tuple(name for name in JOBS_SCHEMA.names if name != "fetched_at")
_OPEN = pa.array(OPEN_STATES, pa.string())
ROW_ORDER = [("creation_time", "ascending"), ("job_id", "ascending")]


def partition_path(root: Path, day: date) -> Path:
    """The directory of the partition of ``day`` in the dataset ``root``."""
    return root / JOBS_DIR / f"date={day.isoformat()}"


def list_partitions(root: Path) -> dict[date, list[Path]]:
    """The partitions of a dataset and their Parquet files, oldest date first.

    Temporary files are skipped (see :func:`remove_temporaries`).

    Args:
        root: the dataset directory.

    Returns:
        ``{date: [file, ...]}``; empty when the dataset has no ``jobs/`` yet.

    Raises:
        StoreError: ``jobs/`` holds a file or directory that is not ours; the message names it.
    """
    jobs = root / JOBS_DIR
    if not jobs.exists():
        return {}
    if not jobs.is_dir():
        raise StoreError(f"{jobs} is not a directory; this is not a cijobs dataset")
    found: dict[date, list[Path]] = {}
    for entry in sorted(jobs.iterdir()):
        match = _PARTITION.match(entry.name)
        if not match or not entry.is_dir():
            raise StoreError(
                f"{entry} is not a cijobs partition (expected jobs/date=YYYY-MM-DD/); "
                "move it out of the dataset"
            )
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            raise StoreError(f"{entry} names no valid date; move it out of the dataset") from None
        files = []
        for item in sorted(entry.iterdir()):
            if item.name.endswith(_TMP_SUFFIX):
                continue
            if not _PART_FILE.match(item.name) or not item.is_file():
                raise StoreError(
                    f"{item} is not a cijobs file (expected part-<uuid>.parquet); "
                    "move it out of the dataset"
                )
            files.append(item)
        if files:
            found[day] = files
    return found


def remove_temporaries(root: Path) -> int:
    """Delete the ``*.tmp`` files a killed export left behind; call only under the lock.

    Returns:
        How many files were removed.
    """
    removed = 0
    for pattern in (f"{JOBS_DIR}/date=*/*{_TMP_SUFFIX}", f"_ledger/*{_TMP_SUFFIX}"):
        for path in root.glob(pattern):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def file_schema_version(path: Path) -> tuple[pa.Schema, int]:
    """The Arrow schema and the schema version of a job or ledger file.

    Raises:
        StoreError: the file is unreadable, not Parquet, or not written by cijobs_analytics.
    """
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(
            f"{path} is not a readable Parquet file ({exc}); move it out of the dataset"
        ) from exc
    raw = (schema.metadata or {}).get(VERSION_KEY)
    try:
        version = int(raw) if raw is not None else -1
    except ValueError:
        version = -1
    if version < 0:
        raise StoreError(
            f"{path} was not written by cijobs_analytics (no schema version in its metadata); "
            "move it out of the dataset"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer cijobs_analytics (schema version {version}, this "
            f"one reads up to {SCHEMA_VERSION}); upgrade cijobs_analytics"
        )
    return schema, version


def read_job_file(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one job file as ``JOBS_SCHEMA`` rows, upgrading an older schema version.

    A file of an older version that lacks columns added since gets them as nulls; a column of
    another type, or a column ``JOBS_SCHEMA`` does not know, cannot be upgraded.

    Args:
        path: a ``part-*.parquet`` file.
        columns: read only these columns (in this order); all when None.

    Raises:
        StoreError: the file is not ours, is newer, or cannot be upgraded; the message says
            what to do.
    """
    schema = check_job_file(path)
    wanted = list(columns) if columns is not None else list(JOBS_SCHEMA.names)
    try:
        table = pq.read_table(path, columns=[c for c in wanted if c in schema.names])
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path} cannot be read ({exc}); delete it and export again") from exc
    return upgrade(table, wanted)


def check_job_file(path: Path) -> pa.Schema:
    """Check that a job file can be read as ``JOBS_SCHEMA`` rows; return its own schema.

    Raises:
        StoreError: the file is not ours, is newer, or cannot be upgraded; the message says
            what to do.
    """
    schema, version = file_schema_version(path)
    for field in schema:
        if field.name not in JOBS_SCHEMA.names:
            raise StoreError(
                f"{path} has a column {field.name!r} that job files do not have; "
                "move the file out of the dataset"
            )
        expected = JOBS_SCHEMA.field(field.name).type
        if field.type != expected:
            raise StoreError(
                f"{path} stores {field.name!r} as {field.type}, schema version "
                f"{SCHEMA_VERSION} wants {expected}; re-export into a new directory "
                "(cijobs export --dataset NEW_DIR --since ...)"
            )
    missing = [name for name in JOBS_SCHEMA.names if name not in schema.names]
    if missing and version == SCHEMA_VERSION:
        raise StoreError(
            f"{path} lacks the columns {', '.join(missing)}; the file is damaged, delete it and "
            "run the export again to fetch its jobs"
        )
    return schema


def upgrade(table: pa.Table, columns: Sequence[str] | None = None) -> pa.Table:
    """``table``'s columns as ``columns`` of ``JOBS_SCHEMA`` (all by default), missing ones null."""
    wanted = list(columns) if columns is not None else list(JOBS_SCHEMA.names)
    arrays = [
        table[name] if name in table.column_names else pa.nulls(table.num_rows, _type(name))
        for name in wanted
    ]
    fields = [JOBS_SCHEMA.field(name) for name in wanted]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=JOBS_SCHEMA.metadata))


def read_partition(files: Iterable[Path], columns: Sequence[str] | None = None) -> pa.Table:
    """Read and concatenate the files of one partition (duplicates not yet removed)."""
    tables = [read_job_file(path, columns) for path in files]
    if not tables:
        return _empty(columns)
    return pa.concat_tables(tables)


def conform(table: pa.Table) -> pa.Table:
    """Return ``table`` with exactly the ``JOBS_SCHEMA`` columns, in order and type.

    Raises:
        StoreError: a column is missing or cannot be cast.
    """
    missing = [name for name in JOBS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise StoreError(f"rows to store lack the columns {', '.join(missing)}")
    try:
        return table.select(JOBS_SCHEMA.names).cast(JOBS_SCHEMA)
    except (pa.ArrowException, ValueError) as exc:
        raise StoreError(f"rows to store do not fit JOBS_SCHEMA: {exc}") from exc


def dedupe(table: pa.Table) -> pa.Table:
    """Keep one row per ``job_id``: a finished row first, then the newest ``fetched_at``.

    The table needs at least the ``job_id``, ``state`` and ``fetched_at`` columns.
    """
    if table.num_rows == 0:
        return table
    keyed = table.append_column("__final", is_final(table))
    order = pc.sort_indices(
        keyed,
        sort_keys=[
            ("job_id", "ascending"),
            ("__final", "descending"),
            ("fetched_at", "descending"),
        ],
    )
    ids = pc.take(table["job_id"], order)
    if len(ids) > 1:
        changes = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
        first = pa.concat_arrays([pa.array([True]), changes.combine_chunks()])
        order = pc.filter(order, first)
    return table.take(order)


def write_parquet_durably(table: pa.Table, path: Path) -> None:
    """Write ``table`` (zstd) to ``path`` and fsync it before returning."""
    with open(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename or an unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partition_dates(table: pa.Table) -> pa.Array:
    """The UTC creation date of every row, as ``date32``."""
    return pc.cast(table["creation_time"], pa.date32()).combine_chunks()


def split_by_date(table: pa.Table) -> dict[date, pa.Table]:
    """Group rows by the UTC date of their creation time (rows without one are dropped)."""
    if table.num_rows == 0:
        return {}
    days = partition_dates(table)
    out: dict[date, pa.Table] = {}
    for day in pc.unique(days).drop_null().to_pylist():
        out[day] = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
    return out


def is_final(table: pa.Table) -> pa.ChunkedArray:
    """Whether each row is in a finished state (a null state counts as open)."""
    state = table["state"]
    return pc.fill_null(pc.and_(pc.is_valid(state), pc.invert(pc.is_in(state, _OPEN))), False)


def differs(old: pa.Table, new: pa.Table) -> pa.Array:
    """Row-wise: whether ``new`` holds other values than ``old`` (``fetched_at`` ignored)."""
    differs = pa.array([False] * old.num_rows)
    for name in _CONTENT_COLUMNS:
        a, b = old[name], new[name]
        if pa.types.is_nested(a.type):
            flags = pa.array([x != y for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)])
        else:
            same = pc.or_kleene(pc.equal(a, b), pc.and_(pc.is_null(a), pc.is_null(b)))
            flags = pc.invert(pc.fill_null(same, False))
        differs = pc.or_(differs, flags)
    return differs


def _type(name: str) -> pa.DataType:
    return JOBS_SCHEMA.field(name).type


def _empty(columns: Sequence[str] | None) -> pa.Table:
    if columns is None:
        return JOBS_SCHEMA.empty_table()
    return pa.schema([JOBS_SCHEMA.field(c) for c in columns]).empty_table()
