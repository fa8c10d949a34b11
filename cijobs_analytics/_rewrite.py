"""Upsert rows into a partition without holding the partition in memory.

The rules, per ``job_id``: a finished row (state not in ``OPEN_STATES``) is final; an open
stored row gives way to a fetched row that is finished or fetched no earlier, but only when
that row holds other values (``fetched_at`` aside), so a repeat changes nothing and no file is
rewritten; an open stored row of a job the service no longer knows gets ``not_found_at`` and
``fetched_at`` set to when the service was asked, once, and is kept. The tests check this
module against a whole-table statement of the same rules (``tests/store_reference.py``).

Memory stays bounded by the incoming rows and one batch, whatever the partition's size:

1. an index of the stored rows (``job_id``, ``state``, ``fetched_at``, ``not_found_at`` and
   their position) decides which stored row of each job wins (a partition left with two files
   by a crash holds some jobs twice) and which jobs the incoming rows touch;
2. only the stored rows of touched jobs are read in full, to tell news from repeats;
3. when anything changed, the stored files are streamed batch by batch into the new file,
   dropping losers and replaced rows and marking jobs not found, and the new and replacing rows
   follow, sorted by ``(creation_time, job_id)``; the new file is written as
   ``part-<uuid>.parquet.tmp`` and fsynced, renamed into place (the directory fsynced), and
   only then are the old files deleted.

An export asks for an **append** instead (``append=True``): when none of the incoming jobs is
stored yet (only the ``job_id`` column of the stored files is read to tell) and no job is to be
marked not found, the incoming rows go to one more file beside the stored ones, written the
same way (temporary file, fsync, rename), and no stored row is written again. Readers see each
job once, since the ids are new to the partition. A partition left with several files this way
is compacted by the export at the end of its run (``compact=True``), or by the next run when
this one was killed; a partition of several files without a job twice is therefore a normal
state between an append and that compaction, not damage, and it is rewritten only when it
changes or is compacted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import _partitions as parts
from .errors import StoreError
from .schema import JOBS_SCHEMA

__all__ = ["BATCH_SIZE", "RewriteOutcome", "rewrite_partition"]

#: Stored rows read (and written) at a time.
BATCH_SIZE = 8192
_INDEX_COLUMNS = ("job_id", "state", "fetched_at", "not_found_at")


@dataclass(frozen=True)
class RewriteOutcome:
    """What a partition rewrite did.

    Attributes:
        written: whether a new file was written (False: nothing changed).
        rows: rows in the new file (0 when none was written).
        jobs_new: jobs the partition did not hold before.
        jobs_updated: stored jobs whose row was replaced or marked not found.
        appended: whether the new file was added beside the stored ones (they were kept).
    """

    written: bool
    rows: int
    jobs_new: int
    jobs_updated: int
    appended: bool = False


def rewrite_partition(
    root: Path,
    day: date,
    files: Sequence[Path],
    incoming: pa.Table,
    *,
    not_found: frozenset[str] = frozenset(),
    marked_at: datetime | None = None,
    compact: bool = False,
    append: bool = False,
) -> RewriteOutcome:
    """Upsert ``incoming`` into the partition of ``day`` made of ``files``, crash-safely.

    Args:
        root: the dataset directory.
        day: the partition's UTC date.
        files: its current files (checked, and upgraded from older schema versions).
        incoming: fetched rows of this partition, in ``JOBS_SCHEMA``.
        not_found: ids the service no longer knows (their open rows get ``not_found_at``).
        marked_at: when the service was asked about them.
        compact: write one file even when nothing changed (several files, an old version).
        append: when no incoming job is stored yet and ``not_found`` is empty, write the
            incoming rows as one more file and keep ``files`` (see the module docstring).

    Returns:
        A :class:`RewriteOutcome`.

    Raises:
        StoreError: a file is not ours, cannot be read, or the new one cannot be written.
    """
    schemas = [parts.check_job_file(path) for path in files]
    if append and not compact and not not_found and incoming.num_rows:
        fresh = parts.dedupe(incoming)
        if not _any_stored(files, schemas, fresh["job_id"]):
            additions = fresh.take(pc.sort_indices(fresh, parts.ROW_ORDER))
            nothing = pa.array([], pa.string())
            rows = _write(root, day, [], [], nothing, nothing, None, additions)
            return RewriteOutcome(True, rows, rows, 0, appended=True)
    index = _index(files, schemas)
    keep = _winners(index, unique=len(files) == 1)
    stored_ids = index["job_id"].filter(keep)
    fresh = parts.dedupe(incoming)
    touched = pc.is_in(fresh["job_id"], value_set=stored_ids)
    new_rows = fresh.filter(pc.invert(touched))
    both = fresh.filter(touched)
    replace = pa.array([], pa.string())
    if both.num_rows:
        old = _read_rows(files, schemas, index, keep, both["job_id"])
        old = old.take(pc.index_in(both["job_id"], value_set=old["job_id"]))
        newer = pc.fill_null(pc.greater_equal(both["fetched_at"], old["fetched_at"]), True)
        allowed = pc.and_(pc.invert(parts.is_final(old)), pc.or_(parts.is_final(both), newer))
        replacements = both.filter(pc.and_(allowed, parts.differs(old, both)))
        replace = replacements["job_id"].combine_chunks()
        new_rows = pa.concat_tables([replacements, new_rows])
    marks = pa.array(sorted(not_found), pa.string())
    winners = index.filter(keep)
    marked = pc.and_(
        pc.is_in(winners["job_id"], value_set=marks),
        pc.and_(pc.invert(parts.is_final(winners)), pc.is_null(winners["not_found_at"])),
    )
    marked = pc.and_(marked, pc.invert(pc.is_in(winners["job_id"], value_set=replace)))
    n_marked = int(pc.sum(pc.cast(marked, pa.int64())).as_py() or 0)
    jobs_new = new_rows.num_rows - len(replace)
    # Several files alone are no reason to rewrite (an append leaves them); a job stored twice
    # (a rewrite killed before its deletes) is.
    twice = not pc.all(keep).as_py() if index.num_rows else False
    changed = compact or twice or jobs_new > 0 or len(replace) > 0 or n_marked > 0
    if not changed:
        return RewriteOutcome(False, 0, 0, 0)
    if n_marked and marked_at is None:
        raise StoreError("marking jobs not found needs the time the service was asked")
    drop = pc.or_(pc.invert(keep), pc.is_in(index["job_id"], value_set=replace))
    additions = new_rows.take(pc.sort_indices(new_rows, parts.ROW_ORDER))
    rows = _write(root, day, files, schemas, drop, marks, marked_at, additions)
    return RewriteOutcome(True, rows, jobs_new, len(replace) + n_marked)


def _index(files: Sequence[Path], schemas: Sequence[pa.Schema]) -> pa.Table:
    """The stored rows' index columns, in file order (the row's position is its index)."""
    tables = []
    for path, schema in zip(files, schemas, strict=True):
        try:
            table = pq.read_table(path, columns=[c for c in _INDEX_COLUMNS if c in schema.names])
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{path} cannot be read ({exc}); delete it and export again") from exc
        tables.append(parts.upgrade(table, _INDEX_COLUMNS))
    if not tables:
        return pa.schema([JOBS_SCHEMA.field(c) for c in _INDEX_COLUMNS]).empty_table()
    return pa.concat_tables(tables).combine_chunks()


def _any_stored(files: Sequence[Path], schemas: Sequence[pa.Schema], ids: pa.ChunkedArray) -> bool:
    """Whether any of ``ids`` is stored in ``files``; reads their ``job_id`` column only."""
    for path, schema in zip(files, schemas, strict=True):
        if "job_id" not in schema.names:
            return True  # cannot tell; the full rewrite path copes with any file it can read
        try:
            stored = pq.read_table(path, columns=["job_id"])["job_id"]
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{path} cannot be read ({exc}); delete it and export again") from exc
        if pc.any(pc.is_in(ids, value_set=stored.combine_chunks())).as_py():
            return True
    return False


def _winners(index: pa.Table, *, unique: bool) -> pa.Array:
    """Per stored row: whether it is its job's winning row (see ``dedupe``)."""
    if unique or index.num_rows == 0:
        return pa.array([True] * index.num_rows, pa.bool_())
    positions = pa.array(range(index.num_rows), pa.int64())
    best = parts.dedupe(index.append_column("__pos", positions))["__pos"]
    return pc.is_in(positions, value_set=best)


def _batches(files: Sequence[Path], schemas: Sequence[pa.Schema]) -> Iterator[tuple[int, pa.Table]]:
    """Every stored row as ``JOBS_SCHEMA`` tables of up to ``BATCH_SIZE`` rows, with offsets."""
    offset = 0
    for path, schema in zip(files, schemas, strict=True):
        try:
            reader = pq.ParquetFile(path)
            for batch in reader.iter_batches(batch_size=BATCH_SIZE, columns=schema.names):
                table = parts.upgrade(pa.Table.from_batches([batch]))
                yield offset, table
                offset += table.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{path} cannot be read ({exc}); delete it and export again") from exc


def _read_rows(
    files: Sequence[Path],
    schemas: Sequence[pa.Schema],
    index: pa.Table,
    keep: pa.Array,
    job_ids: pa.ChunkedArray,
) -> pa.Table:
    """The winning stored rows of ``job_ids``, in full."""
    wanted = pc.and_(keep, pc.is_in(index["job_id"], value_set=job_ids))
    pieces = []
    for offset, table in _batches(files, schemas):
        mask = wanted.slice(offset, table.num_rows)
        if pc.any(mask).as_py():
            pieces.append(table.filter(mask))
    return pa.concat_tables(pieces) if pieces else JOBS_SCHEMA.empty_table()


def _write(
    root: Path,
    day: date,
    files: Sequence[Path],
    schemas: Sequence[pa.Schema],
    drop: pa.Array,
    marks: pa.Array,
    marked_at: datetime | None,
    additions: pa.Table,
) -> int:
    folder = parts.partition_path(root, day)
    final = folder / f"part-{uuid.uuid4().hex}.parquet"
    tmp = final.with_name(final.name + ".tmp")
    rows = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            with pq.ParquetWriter(handle, JOBS_SCHEMA, compression="zstd") as writer:
                for offset, table in _batches(files, schemas):
                    kept = table.filter(pc.invert(drop.slice(offset, table.num_rows)))
                    kept = _mark(kept, marks, marked_at)
                    if kept.num_rows:
                        writer.write_table(kept)
                        rows += kept.num_rows
                if additions.num_rows:
                    writer.write_table(parts.conform(additions))
                    rows += additions.num_rows
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        parts.fsync_dir(folder)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write the partition {folder}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for path in files:
        path.unlink(missing_ok=True)
    return rows


def _mark(table: pa.Table, marks: pa.Array, marked_at: datetime | None) -> pa.Table:
    """Set ``not_found_at`` and ``fetched_at`` of the open, unmarked rows of ``marks``."""
    if not len(marks) or marked_at is None or table.num_rows == 0:
        return table
    mask = pc.and_(
        pc.is_in(table["job_id"], value_set=marks),
        pc.and_(pc.invert(parts.is_final(table)), pc.is_null(table["not_found_at"])),
    )
    if not pc.any(mask).as_py():
        return table
    stamp = pa.scalar(marked_at, JOBS_SCHEMA.field("not_found_at").type)
    for name in ("not_found_at", "fetched_at"):
        position = table.schema.get_field_index(name)
        table = table.set_column(
            position, JOBS_SCHEMA.field(name), pc.if_else(mask, stamp, table[name])
        )
    return table
