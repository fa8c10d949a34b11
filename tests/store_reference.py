"""The partition upsert rules stated on whole tables, as an oracle for the streaming rewrite.

The export upserts with :func:`cijobs_analytics._rewrite.rewrite_partition`, which never holds
a partition in memory. ``merge_rows`` states the same rules on whole in-memory tables, and
``write_partition`` writes a partition file the plain way (temporary file, fsync, rename,
delete the old files), so the tests can build datasets by hand (two files left by a crash, a
ghost job) and check the streaming rewrite against this simpler statement.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from cijobs_analytics import _partitions as parts
from cijobs_analytics.errors import StoreError
from cijobs_analytics.schema import JOBS_SCHEMA

__all__ = ["MergeOutcome", "merge_rows", "write_partition"]


@dataclass(frozen=True)
class MergeOutcome:
    """The rows of a partition after a merge, and what the merge changed.

    Attributes:
        table: the partition's rows, one per job, sorted by creation time and job id.
        jobs_new: jobs the partition did not hold before.
        jobs_updated: stored jobs whose row was replaced or marked not found.
        changed: whether the partition must be written (news, or files to compact/upgrade).
    """

    table: pa.Table
    jobs_new: int
    jobs_updated: int
    changed: bool


def merge_rows(
    existing: pa.Table,
    incoming: pa.Table,
    *,
    not_found: frozenset[str] = frozenset(),
    marked_at: datetime | None = None,
    compact: bool = False,
    existing_unique: bool = False,
) -> MergeOutcome:
    """Upsert ``incoming`` rows into a partition's ``existing`` rows by ``job_id``, in memory.

    The stored rows keep their order and are not copied unless some are replaced; the new and
    replaced rows follow them, sorted. A compaction sorts the whole partition.

    Args:
        existing: the partition's stored rows (duplicates allowed; they are resolved).
        incoming: freshly fetched rows of this partition, in ``JOBS_SCHEMA``.
        not_found: ids the service no longer knows; a stored open row of one of them gets
            ``not_found_at`` (and ``fetched_at``) set to ``marked_at`` and is kept.
        marked_at: when the service was asked about ``not_found``.
        compact: force ``changed`` (the files need compaction or an upgrade).
        existing_unique: ``existing`` is one file the package wrote (already one row per job,
            sorted), so it needs no de-duplication; saves a copy of the partition.

    Returns:
        The merged rows and the counts of new and updated jobs.

    Raises:
        StoreError: a stored open row is to be marked not found but ``marked_at`` is None.
    """
    stored = existing if existing_unique and not compact else parts.dedupe(existing)
    fresh = parts.dedupe(incoming)
    in_stored = pc.is_in(fresh["job_id"], value_set=stored["job_id"])
    new_rows = fresh.filter(pc.invert(in_stored))
    both = fresh.filter(in_stored)
    replace = pa.array([], pa.string())
    if both.num_rows:
        old = stored.take(pc.index_in(both["job_id"], value_set=stored["job_id"]))
        old_final = parts.is_final(old)
        newer = pc.fill_null(pc.greater_equal(both["fetched_at"], old["fetched_at"]), True)
        allowed = pc.and_(pc.invert(old_final), pc.or_(parts.is_final(both), newer))
        take = pc.and_(allowed, parts.differs(old, both))
        replacements = both.filter(take)
        replace = replacements["job_id"].combine_chunks()
        if len(replace):
            stored = stored.filter(pc.invert(pc.is_in(stored["job_id"], value_set=replace)))
            new_rows = pa.concat_tables([replacements, new_rows])
    merged = stored
    if new_rows.num_rows:
        order = pc.sort_indices(new_rows, parts.ROW_ORDER)
        merged = pa.concat_tables([stored, new_rows.take(order)])
    marked = 0
    if not_found and merged.num_rows:
        merged, marked = _mark_not_found(merged, not_found, marked_at)
    updated = len(replace) + marked
    jobs_new = new_rows.num_rows - len(replace)
    if compact:
        merged = merged.take(pc.sort_indices(merged, parts.ROW_ORDER))
    return MergeOutcome(merged, jobs_new, updated, compact or jobs_new > 0 or updated > 0)


def write_partition(root: Path, day: date, table: pa.Table, old_files: Sequence[Path]) -> Path:
    """Replace a partition's files by one file holding ``table``, crash-safely.

    Args:
        root: the dataset directory.
        day: the partition's UTC date.
        table: its complete rows, in ``JOBS_SCHEMA``.
        old_files: the files the rows were read from; deleted once the new file is durable.

    Returns:
        The new file.

    Raises:
        StoreError: the file cannot be written.
    """
    folder = parts.partition_path(root, day)
    final = folder / f"part-{uuid.uuid4().hex}.parquet"
    tmp = final.with_name(final.name + ".tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        parts.write_parquet_durably(table, tmp)
        os.replace(tmp, final)
        parts.fsync_dir(folder)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write the partition {folder}: {exc}") from exc
    for path in old_files:
        if path != final:
            path.unlink(missing_ok=True)
    return final


def _mark_not_found(
    table: pa.Table, not_found: frozenset[str], marked_at: datetime | None
) -> tuple[pa.Table, int]:
    """Stamp the open, unmarked rows of ``not_found``; return the table and how many."""
    if marked_at is None:
        raise StoreError("marking jobs not found needs the time the service was asked")
    mask = pc.and_(
        pc.is_in(table["job_id"], value_set=pa.array(sorted(not_found), pa.string())),
        pc.and_(pc.invert(parts.is_final(table)), pc.is_null(table["not_found_at"])),
    )
    count = pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
    if not count:
        return table, 0
    stamp = pa.scalar(marked_at, JOBS_SCHEMA.field("not_found_at").type)
    for name in ("not_found_at", "fetched_at"):
        index = table.schema.get_field_index(name)
        table = table.set_column(
            index, JOBS_SCHEMA.field(name), pc.if_else(mask, stamp, table[name])
        )
    return table, int(count)
