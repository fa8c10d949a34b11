"""Which row of a job wins, stated on Arrow tables; no I/O.

An export upserts fetched rows into the ``jobs`` Delta table by ``job_id``. The rules:

* a finished row (state not in ``OPEN_STATES``) is final: nothing replaces it;
* an open stored row gives way to a fetched row that is finished or fetched no earlier, but
  only when that row holds other values (``fetched_at`` aside), so a repeat changes nothing
  and no file is rewritten;
* an open stored row of a job the service no longer knows gets ``not_found_at`` and
  ``fetched_at`` set to when the service was asked, once, and is kept.

:func:`plan_upsert` applies them to the stored rows of the touched jobs and returns only the
rows that must be written; the Delta MERGE then writes exactly those (see :mod:`._tables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from .errors import StoreError
from .schema import JOBS_SCHEMA, OPEN_STATES

__all__ = [
    "DATE_COLUMN",
    "ROW_ORDER",
    "UpsertPlan",
    "conform",
    "dedupe",
    "differs",
    "is_final",
    "partition_dates",
    "plan_upsert",
    "with_date",
]

#: The partition column: the UTC date of ``creation_time``.
DATE_COLUMN = "date"
ROW_ORDER = [("creation_time", "ascending"), ("job_id", "ascending")]
#: Columns whose equality decides whether a fetched row is news; ``fetched_at`` is not one.
_CONTENT_COLUMNS = tuple(name for name in JOBS_SCHEMA.names if name != "fetched_at")
_OPEN = pa.array(OPEN_STATES, pa.string())


@dataclass(frozen=True)
class UpsertPlan:
    """The rows an upsert must write, and what they change.

    Attributes:
        rows: new and changed rows in ``JOBS_SCHEMA`` plus ``date``, sorted by creation time.
        jobs_new: rows of jobs not stored yet.
        jobs_updated: rows replacing a stored row (a new state, or a not-found mark).
    """

    rows: pa.Table
    jobs_new: int
    jobs_updated: int


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
    if pc.count_distinct(table["job_id"]).as_py() == table.num_rows:
        return table  # the common case: nothing to drop, and no copy of a large batch
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


def is_final(table: pa.Table) -> pa.ChunkedArray:
    """Whether each row is in a finished state (a null state counts as open)."""
    state = table["state"]
    return pc.fill_null(pc.and_(pc.is_valid(state), pc.invert(pc.is_in(state, _OPEN))), False)


def differs(old: pa.Table, new: pa.Table) -> pa.Array:
    """Row-wise: whether ``new`` holds other values than ``old`` (``fetched_at`` ignored)."""
    result = pa.array([False] * old.num_rows)
    for name in _CONTENT_COLUMNS:
        a, b = old[name], new[name]
        if pa.types.is_nested(a.type):
            flags = pa.array([x != y for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)])
        else:
            same = pc.or_kleene(pc.equal(a, b), pc.and_(pc.is_null(a), pc.is_null(b)))
            flags = pc.invert(pc.fill_null(same, False))
        result = pc.or_(result, flags)
    return result


def partition_dates(table: pa.Table) -> pa.Array:
    """The UTC creation date of every row, as ``date32``."""
    return pc.cast(table["creation_time"], pa.date32()).combine_chunks()


def with_date(table: pa.Table) -> pa.Table:
    """``table`` with the ``date`` partition column appended."""
    return table.append_column(pa.field(DATE_COLUMN, pa.date32()), partition_dates(table))


def plan_upsert(
    stored: pa.Table,
    incoming: pa.Table,
    *,
    not_found: frozenset[str] = frozenset(),
    marked_at: datetime | None = None,
) -> UpsertPlan:
    """Decide which rows an upsert writes.

    Args:
        stored: the stored rows of (at least) every job in ``incoming`` and ``not_found``, in
            ``JOBS_SCHEMA``, one per job.
        incoming: fetched rows in ``JOBS_SCHEMA`` (duplicates allowed; they are resolved).
        not_found: ids the service no longer knows.
        marked_at: when the service was asked about ``not_found``.

    Returns:
        An :class:`UpsertPlan`; its ``rows`` are empty when nothing changes.

    Raises:
        StoreError: a stored open row is to be marked not found but ``marked_at`` is None.
    """
    fresh = dedupe(incoming)
    in_stored = pc.is_in(fresh["job_id"], value_set=stored["job_id"])
    if stored.num_rows and pc.any(in_stored).as_py():
        new_rows, both = fresh.filter(pc.invert(in_stored)), fresh.filter(in_stored)
    else:  # a first export's batch: all new, and no copy of it
        new_rows, both = fresh, fresh.schema.empty_table()
    pieces = [new_rows]
    replaced = pa.array([], pa.string())
    if both.num_rows:
        old = stored.take(pc.index_in(both["job_id"], value_set=stored["job_id"]))
        newer = pc.fill_null(pc.greater_equal(both["fetched_at"], old["fetched_at"]), True)
        allowed = pc.and_(pc.invert(is_final(old)), pc.or_(is_final(both), newer))
        replacements = both.filter(pc.and_(allowed, differs(old, both)))
        replaced = replacements["job_id"].combine_chunks()
        pieces.append(replacements)
    marks = _marks(stored, not_found, replaced, marked_at)
    pieces.append(marks)
    rows = pa.concat_tables([piece for piece in pieces if piece.num_rows] or [new_rows])
    rows = rows.take(pc.sort_indices(rows, ROW_ORDER))
    return UpsertPlan(with_date(rows), new_rows.num_rows, len(replaced) + marks.num_rows)


def _marks(
    stored: pa.Table,
    not_found: frozenset[str],
    replaced: pa.Array,
    marked_at: datetime | None,
) -> pa.Table:
    """The stored open, unmarked rows of ``not_found`` (not replaced), stamped ``marked_at``."""
    if not not_found or stored.num_rows == 0:
        return JOBS_SCHEMA.empty_table()
    mask = pc.and_(
        pc.is_in(stored["job_id"], value_set=pa.array(sorted(not_found), pa.string())),
        pc.and_(pc.invert(is_final(stored)), pc.is_null(stored["not_found_at"])),
    )
    mask = pc.and_(mask, pc.invert(pc.is_in(stored["job_id"], value_set=replaced)))
    rows = stored.filter(mask)
    if rows.num_rows == 0:
        return rows
    if marked_at is None:
        raise StoreError("marking jobs not found needs the time the service was asked")
    stamp = pa.array([marked_at] * rows.num_rows, JOBS_SCHEMA.field("not_found_at").type)
    for name in ("not_found_at", "fetched_at"):
        rows = rows.set_column(rows.schema.get_field_index(name), JOBS_SCHEMA.field(name), stamp)
    return rows
