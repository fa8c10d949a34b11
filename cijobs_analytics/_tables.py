"""The Delta tables of a dataset, and the one place deltalake errors are translated.

A dataset holds three Delta tables (see ``docs/architecture.md``)::

    <dataset>/jobs             JOBS_SCHEMA + `date`, partitioned by `date`; one row per job_id
    <dataset>/_ledger/coverage the covered creation-time windows (see :mod:`._ledger`)
    <dataset>/_ledger/runs     one row per export run

Every change is one Delta commit, so it is atomic on a local disk and in a bucket alike, and a
reader sees one row per job in every version. Reads go through delta-rs' own query engine
(``QueryBuilder``), which prunes by partition and reads the same snapshot the writer merges
into; Arrow's dataset scanner over delta-rs' filesystem is avoided, because a process that
used it can abort at interpreter exit.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, QueryBuilder, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from ._location import Location
from ._merge import DATE_COLUMN, dedupe, plan_upsert
from .errors import StoreError
from .schema import JOBS_SCHEMA, SCHEMA_VERSION

__all__ = [
    "DESCRIPTION",
    "JOBS_TABLE",
    "JOBS_TABLE_SCHEMA",
    "MAX_COMMIT_ATTEMPTS",
    "WRITER",
    "AsOf",
    "Maintenance",
    "UpsertResult",
    "commit_time",
    "commit_times",
    "create_table",
    "file_uris",
    "maintain",
    "open_table",
    "query",
    "quote",
    "repair",
    "resolve_as_of",
    "stored_rows",
    "superseded_at",
    "upsert",
    "version_at",
]

logger = logging.getLogger(__name__)

JOBS_TABLE = "jobs"
#: The table description, which records who wrote the table and the schema version of its rows
#: (delta-rs refuses table properties it does not know).
DESCRIPTION = "cijobs_analytics {name} table, schema version {version}"
_PARTITION_DIR = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})/")
_DESCRIPTION = re.compile(r"^cijobs_analytics \S+ table, schema version (\d+)$")
#: The columns of the ``jobs`` Delta table: ``JOBS_SCHEMA`` plus the partition column.
JOBS_TABLE_SCHEMA = pa.schema(
    [*JOBS_SCHEMA, pa.field(DATE_COLUMN, pa.date32())], metadata=JOBS_SCHEMA.metadata
)
WRITER = WriterProperties(compression="ZSTD")
#: How often an upsert is planned again after losing a commit race to another writer.
MAX_COMMIT_ATTEMPTS = 5
#: Ids per ``IN (...)`` list when reading stored rows by id.
_IDS_PER_QUERY = 2000

#: A table version, or an aware time (or ISO string) to read the dataset as of.
AsOf = int | datetime | str


@dataclass(frozen=True)
class UpsertResult:
    """What one upsert committed (all zero when nothing changed).

    Attributes:
        version: the table version after the upsert.
        rows_written: rows in the files the commit added (inserted, updated and copied).
        jobs_new: rows inserted.
        jobs_updated: rows updated.
        files_added: data files the commit added.
        files_removed: data files the commit removed (rewritten).
        days: the partitions written to.
    """

    version: int
    rows_written: int = 0
    jobs_new: int = 0
    jobs_updated: int = 0
    files_added: int = 0
    files_removed: int = 0
    days: frozenset[date] = frozenset()


@dataclass(frozen=True)
class Maintenance:
    """What a maintenance pass did to one table.

    Attributes:
        partitions_compacted: partitions whose small files were merged.
        files_compacted: files those partitions held before.
        rows_rewritten: rows the compaction wrote again.
        files_vacuumed: files deleted from storage.
        full_vacuum: whether the vacuum also looked for files no commit refers to.
    """

    partitions_compacted: int = 0
    files_compacted: int = 0
    rows_rewritten: int = 0
    files_vacuumed: int = 0
    full_vacuum: bool = False


def open_table(location: Location, name: str, as_of: AsOf | None = None) -> DeltaTable | None:
    """The Delta table ``name`` of the dataset (at ``as_of``), or None when it does not exist.

    Raises:
        StoreError: the storage cannot be reached, the table is damaged, it was written by a
            newer cijobs_analytics, or it did not exist yet at ``as_of``.
    """
    uri = location.child(name)
    try:
        table = DeltaTable(uri, storage_options=location.delta_options())
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe(f"cannot open {location.display}/{name}", exc)) from exc
    _check_version(table, f"{location.display}/{name}")
    if as_of is not None:
        _load_as_of(table, as_of, f"{location.display}/{name}")
    return table


def create_table(
    location: Location, name: str, schema: pa.Schema, partition_by: Sequence[str] = ()
) -> DeltaTable:
    """Create the empty Delta table ``name`` (a no-op commit race: the winner's table is used).

    Raises:
        StoreError: the storage refused the write.
    """
    uri = location.child(name)
    try:
        return DeltaTable.create(
            uri,
            schema=schema,
            mode="ignore",
            partition_by=list(partition_by) or None,
            name=name.rsplit("/", 1)[-1],
            description=DESCRIPTION.format(name=name, version=SCHEMA_VERSION),
            storage_options=location.delta_options(),
        )
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe(f"cannot create {location.display}/{name}", exc)) from exc


def query(table: DeltaTable, sql: str, schema: pa.Schema | None = None) -> pa.Table:
    """Run ``sql`` over ``table`` (registered as ``t``) with delta-rs' engine.

    Args:
        table: the table, at the version to read.
        sql: a query over ``t``; literals must be quoted with :func:`quote`.
        schema: cast the result to these columns' types (delta-rs returns string views).

    Raises:
        StoreError: the query failed (a damaged or unreachable file).
    """
    try:
        reader = QueryBuilder().register("t", table).execute(sql)
        result = pa.table(reader.read_all())
    except (DeltaError, OSError, Exception) as exc:  # the engine raises plain Exceptions too
        hint = ""
        if "not found" in str(exc).lower():
            hint = (
                "; a data file is missing from storage: the next export drops it from the "
                "table and lists its days again"
            )
        raise StoreError(_describe("cannot read the dataset", exc) + hint) from exc
    if schema is None:
        return result
    fields = [schema.field(name) for name in result.column_names]
    try:
        return result.cast(pa.schema(fields))
    except (pa.ArrowException, ValueError) as exc:
        raise StoreError(f"the dataset holds columns of unexpected types: {exc}") from exc


def quote(value: str | date) -> str:
    """A SQL literal for a string or a date."""
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + value.replace("'", "''") + "'"


def stored_rows(table: DeltaTable, ids: Iterable[str], days: Iterable[date]) -> pa.Table:
    """The stored rows (``JOBS_SCHEMA``) of ``ids`` among the partitions of ``days``.

    Only the ``job_id`` column of those partitions is read to find them; full rows are read for
    the ids found, which an export's flush keeps few (repeats and state changes).
    """
    day_list = sorted(set(days))
    wanted = pa.array(sorted(set(ids)), pa.string())
    if not day_list or not len(wanted):
        return JOBS_SCHEMA.empty_table()
    where = f"{DATE_COLUMN} IN ({', '.join(quote(d) for d in day_list)})"
    index = query(table, f"SELECT job_id FROM t WHERE {where}")  # noqa: S608 - quoted literals
    found = wanted.filter(pc.is_in(wanted, value_set=index["job_id"].cast(pa.string())))
    columns = ", ".join(f'"{name}"' for name in JOBS_SCHEMA.names)
    pieces = [JOBS_SCHEMA.empty_table()]
    for start in range(0, len(found), _IDS_PER_QUERY):
        chunk = found.slice(start, _IDS_PER_QUERY).to_pylist()
        sql = (
            f"SELECT {columns} FROM t WHERE {where} "  # noqa: S608 - quoted literals
            f"AND job_id IN ({', '.join(quote(i) for i in chunk)})"
        )
        pieces.append(query(table, sql, JOBS_SCHEMA).select(JOBS_SCHEMA.names))
    return pa.concat_tables(pieces)


def upsert(
    table: DeltaTable,
    incoming: pa.Table,
    *,
    not_found: dict[date, set[str]] | None = None,
    marked_at: datetime | None = None,
    before_commit: Callable[[], None] = lambda: None,
    operation: str = "export",
) -> UpsertResult:
    """Merge fetched rows into the ``jobs`` table by ``job_id``, newest news winning.

    The rows to write are planned against the table's current version (:mod:`._merge`) and
    written in one commit. When some replace stored rows, one MERGE (``t.date = s.date AND
    t.job_id = s.job_id``, partitions pruned by date) writes them all, rewriting only the files
    that hold the replaced rows; when all are new jobs (a first export), they are appended,
    which reads nothing (a MERGE of 20,000 new rows took five times as long and four times the
    memory). Unchanged rows are never written.

    Another writer cannot make a job lost or doubled: a MERGE that loses a commit race is
    refused by Delta and planned again from the new version; an append is not refused, so
    when a commit landed between the planned version and ours, the partitions appended to are
    checked for jobs stored twice, and those are resolved by the merge rules.

    Args:
        table: the ``jobs`` table; it is brought to the newest version first.
        incoming: fetched rows in ``JOBS_SCHEMA``.
        not_found: per creation date, ids of open jobs the service no longer knows.
        marked_at: when the service was asked about them.
        before_commit: called right before each commit (the export checks its lock there).
        operation: recorded in the commits' metadata.

    Raises:
        StoreError: the table cannot be read or written, or commits kept conflicting.
    """
    missing = not_found or {}
    if incoming.num_rows and incoming["creation_time"].null_count:
        raise StoreError(
            f"{incoming['creation_time'].null_count} rows to store have no creation time, "
            "which decides their partition"
        )
    days = set(missing)
    if incoming.num_rows:
        days.update(d for d in pc.unique(_dates(incoming)).drop_null().to_pylist())
    ids = set(incoming["job_id"].to_pylist()) | {i for group in missing.values() for i in group}
    gone = frozenset(i for group in missing.values() for i in group)
    for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
        _refresh(table)
        planned = table.version()
        stored = stored_rows(table, ids, days)
        plan = plan_upsert(stored, incoming, not_found=gone, marked_at=marked_at)
        if plan.rows.num_rows == 0:
            return UpsertResult(planned)
        before_commit()
        metrics: dict[str, Any] = {}
        appended = 0
        if pc.any(pc.is_in(plan.rows["job_id"], value_set=stored["job_id"])).as_py():
            try:
                metrics = _merge(table, plan.rows, operation)
            except CommitFailedError as exc:
                logger.warning(
                    "commit %d of %d lost to another writer (%s); planning again",
                    attempt,
                    MAX_COMMIT_ATTEMPTS,
                    exc,
                )
                continue
        else:
            appended = _append(table, plan.rows, operation)
            if table.version() != planned + 1:
                # Someone committed in between: the jobs appended may be stored twice now.
                days_written = pc.unique(plan.rows[DATE_COLUMN]).to_pylist()
                _resolve_doubles(table, days_written, before_commit)
        inserted = int(metrics["num_target_rows_inserted"]) if metrics else plan.rows.num_rows
        return UpsertResult(
            version=table.version(),
            rows_written=inserted
            + int(metrics.get("num_target_rows_updated", 0))
            + int(metrics.get("num_target_rows_copied", 0)),
            jobs_new=inserted,
            jobs_updated=int(metrics.get("num_target_rows_updated", 0)),
            files_added=appended + int(metrics.get("num_target_files_added", 0)),
            files_removed=int(metrics.get("num_target_files_removed", 0)),
            days=frozenset(pc.unique(plan.rows[DATE_COLUMN]).to_pylist()),
        )
    raise StoreError(
        f"the jobs table kept changing under this export ({MAX_COMMIT_ATTEMPTS} commits lost "
        "to another writer); is a second export running without the lock?"
    )


def _merge(table: DeltaTable, rows: pa.Table, operation: str) -> dict[str, Any]:
    """MERGE rows of stored jobs into the table (one commit); its metrics."""
    try:
        metrics: dict[str, Any] = (
            table.merge(
                rows,
                predicate=f"t.{DATE_COLUMN} = s.{DATE_COLUMN} AND t.job_id = s.job_id",
                source_alias="s",
                target_alias="t",
                # The streamed plan skips partition pruning: every flush would read the
                # whole table and conflict with any concurrent commit.
                streamed_exec=False,
                writer_properties=WRITER,
                commit_properties=_commit(operation),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    except CommitFailedError:
        raise
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot write the jobs table", exc)) from exc
    return metrics


def _append(table: DeltaTable, rows: pa.Table, operation: str) -> int:
    """Append rows of new jobs (one commit, retried by delta-rs on a race); files it added."""
    try:
        write_deltalake(
            table,
            rows,
            mode="append",
            writer_properties=WRITER,
            commit_properties=_commit(operation),
        )
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot write the jobs table", exc)) from exc
    _refresh(table)
    try:
        last = table.history(1)
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot read the table history", exc)) from exc
    return int((last[0].get("operationMetrics") or {}).get("num_added_files", 0)) if last else 0


def _resolve_doubles(
    table: DeltaTable, days: Sequence[date], before_commit: Callable[[], None]
) -> None:
    """Keep one row per job in the partitions of ``days``, the winner by the merge rules.

    Each partition that holds a job twice is overwritten with its resolved rows in one commit
    (a race with yet another writer is tried again), so readers never see a job missing.
    """
    where = f"{DATE_COLUMN} IN ({', '.join(quote(d) for d in sorted(days))})"
    for _ in range(MAX_COMMIT_ATTEMPTS):
        _refresh(table)
        doubled = query(
            table,
            f"SELECT DISTINCT {DATE_COLUMN} FROM t WHERE {where} "  # noqa: S608 - quoted
            f"GROUP BY {DATE_COLUMN}, job_id HAVING count(*) > 1",
        )
        bad = sorted(set(doubled[DATE_COLUMN].to_pylist()))
        if not bad:
            return
        logger.warning("another writer committed meanwhile: resolving jobs stored twice in %s", bad)
        try:
            for day in bad:
                rows = query(
                    table,
                    f"SELECT * FROM t WHERE {DATE_COLUMN} = {quote(day)}",  # noqa: S608
                    JOBS_TABLE_SCHEMA,
                ).select(JOBS_TABLE_SCHEMA.names)
                before_commit()
                write_deltalake(
                    table,
                    dedupe(rows),
                    mode="overwrite",
                    predicate=f"{DATE_COLUMN} = '{day.isoformat()}'",
                    writer_properties=WRITER,
                    commit_properties=_commit("resolve doubles"),
                )
        except CommitFailedError:
            continue
        except (DeltaError, OSError) as exc:
            raise StoreError(_describe("cannot write the jobs table", exc)) from exc
    raise StoreError("jobs stored twice could not be resolved: the table keeps changing")


def maintain(
    table: DeltaTable,
    *,
    max_files: int,
    retention: timedelta,
    full_vacuum: bool,
    partitioned: bool = True,
) -> Maintenance:
    """Compact partitions holding ``max_files`` files or more, then vacuum.

    Args:
        table: the table to maintain.
        max_files: the file count at which a partition (or an unpartitioned table) is compacted.
        retention: removed files younger than this are kept, so time travel works within it.
        full_vacuum: also delete files no commit refers to (left by a killed writer); this
            lists the whole table, so it is done only now and then.
        partitioned: whether the table is partitioned by ``date``.

    Raises:
        StoreError: the storage failed. A compaction that loses a commit race is skipped.
    """
    _refresh(table)
    files = pa.table(table.get_add_actions(flatten=True))
    due: list[date] = []
    if partitioned and files.num_rows:
        counts = pc.value_counts(files[f"partition.{DATE_COLUMN}"]).to_pylist()
        due = sorted(c["values"] for c in counts if c["counts"] >= max_files and c["values"])
    whole = not partitioned and files.num_rows >= max_files
    compacted = Maintenance()
    if due or whole:
        filters = [(DATE_COLUMN, "in", [d.isoformat() for d in due])] if due else None
        try:
            metrics = table.optimize.compact(
                partition_filters=filters,
                writer_properties=WRITER,
                commit_properties=_commit("compact"),
            )
        except CommitFailedError as exc:
            logger.warning("compaction skipped: another writer committed first (%s)", exc)
        except (DeltaError, OSError) as exc:
            raise StoreError(_describe("cannot compact the dataset", exc)) from exc
        else:
            compacted = Maintenance(
                partitions_compacted=int(metrics.get("partitionsOptimized", len(due))),
                files_compacted=int(metrics.get("numFilesRemoved", 0)),
                rows_rewritten=_rows_in(files, due if partitioned else None),
            )
    try:
        removed = table.vacuum(
            # Whole hours only: round up, so no file time travel may still need goes early.
            retention_hours=max(0, math.ceil(retention.total_seconds() / 3600)),
            dry_run=False,
            enforce_retention_duration=False,
            full=full_vacuum,
            commit_properties=_commit("vacuum"),
        )
    except CommitFailedError as exc:
        logger.warning("vacuum skipped: another writer committed first (%s)", exc)
        removed = []
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot vacuum the dataset", exc)) from exc
    return Maintenance(
        compacted.partitions_compacted,
        compacted.files_compacted,
        compacted.rows_rewritten,
        len(removed),
        full_vacuum,
    )


def repair(table: DeltaTable) -> list[date]:
    """Drop the table's references to data files that are gone from storage (FSCK).

    A file deleted or moved by hand makes every read of the table fail; after this the table
    reads again, without that file's rows.

    Returns:
        The partition dates that lost a file (so their jobs can be listed again).

    Raises:
        StoreError: the storage failed.
    """
    try:
        outcome = table.repair(dry_run=False, commit_properties=_commit("repair"))
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot check the dataset's files", exc)) from exc
    days = set()
    for path in outcome.get("files_removed", []):
        match = _PARTITION_DIR.search(str(path))
        if match:
            days.add(date.fromisoformat(match.group(1)))
    return sorted(days)


def file_uris(table: DeltaTable) -> list[str]:
    """The live Parquet files of the table's loaded version."""
    try:
        return list(table.file_uris())
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot list the dataset's files", exc)) from exc


def commit_times(table: DeltaTable) -> list[tuple[int, datetime]]:
    """Every version of the table with the time it was committed (UTC), oldest first.

    Only for a table loaded at its newest version (see :func:`commit_time`).

    The times are those the writers recorded in each commit, so versions of the dataset's
    tables written by one export compare on one clock (a bucket's object times have second
    resolution and the store's clock).
    """
    return _times(table, None)


def _times(table: DeltaTable, limit: int | None) -> list[tuple[int, datetime]]:
    try:
        history = table.history(limit)
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot read the table history", exc)) from exc
    times = [
        (int(entry["version"]), datetime.fromtimestamp(entry["timestamp"] / 1000, tz=UTC))
        for entry in history
        if "version" in entry and entry.get("timestamp") is not None
    ]
    return sorted(times)


def version_at(table: DeltaTable, moment: datetime) -> int | None:
    """The newest version committed at or before ``moment``; None if the table is younger."""
    before = [version for version, when in commit_times(table) if when <= moment]
    return max(before) if before else None


def commit_time(location: Location, name: str, version: int) -> datetime | None:
    """When ``version`` of table ``name`` was committed (UTC).

    Read from the newest version's history: a table loaded at an older version numbers its
    history from there (delta-rs), which would name the wrong commit.
    """
    latest = open_table(location, name)
    if latest is None:
        return None
    # The newest version's time is in the last commit alone; an older one needs the history.
    found = dict(_times(latest, 1 if latest.version() == version else None))
    return found.get(version)


def superseded_at(location: Location, name: str, version: int) -> datetime | None:
    """When the version after ``version`` of table ``name`` was committed (None: the newest).

    The dataset *as of* a version is the dataset until the next commit: the ledgers are read
    as they were just before this moment.
    """
    latest = open_table(location, name)
    if latest is None:
        return None
    later = [when for v, when in commit_times(latest) if v > version]
    return min(later) - timedelta(microseconds=1) if later else None


def resolve_as_of(value: AsOf) -> int | datetime:
    """Check an ``as_of`` value: a version number, or an aware time or ISO string.

    Raises:
        ConfigError: a negative version, a naive time, or text that is neither.
    """
    from ._times import to_utc
    from .errors import ConfigError

    if isinstance(value, bool):
        raise ConfigError(f"as_of must be a table version or a time, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"as_of version must be 0 or more, got {value}")
        return value
    if isinstance(value, str) and value.strip().isdecimal() and value.strip().isascii():
        return int(value.strip())
    return to_utc(value, name="as_of")


def _load_as_of(table: DeltaTable, as_of: AsOf, what: str) -> None:
    point = resolve_as_of(as_of)
    shown = point.isoformat() if isinstance(point, datetime) else f"version {point}"
    version = version_at(table, point) if isinstance(point, datetime) else point
    if version is None:
        raise StoreError(f"{what} has no version at {shown}: the table is younger")
    try:
        table.load_as_version(version)
    except (DeltaError, OSError, ValueError) as exc:
        raise StoreError(
            _describe(f"{what} has no version at {shown} (not yet, or removed by vacuum)", exc)
        ) from exc


def _check_version(table: DeltaTable, what: str) -> None:
    match = _DESCRIPTION.match(table.metadata().description or "")
    version = int(match.group(1)) if match else None
    if version is None:
        raise StoreError(
            f"{what} is a Delta table not written by cijobs_analytics; export into another location"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{what} was written by a newer cijobs_analytics (schema version {version}, this "
            f"one reads up to {SCHEMA_VERSION}); upgrade cijobs_analytics"
        )


def _refresh(table: DeltaTable) -> None:
    try:
        table.update_incremental()
    except (DeltaError, OSError) as exc:
        raise StoreError(_describe("cannot read the table's log", exc)) from exc


def _dates(table: pa.Table) -> pa.Array:
    return pc.cast(table["creation_time"], pa.date32())


def _rows_in(files: pa.Table, days: Sequence[date] | None) -> int:
    """Rows in the files of ``days`` (all files when None), from the log's statistics."""
    counts = files["num_records"]
    if days is not None:
        counts = counts.filter(pc.is_in(files[f"partition.{DATE_COLUMN}"], pa.array(days)))
    return int(pc.sum(counts).as_py() or 0)


def _commit(operation: str) -> CommitProperties:
    return CommitProperties(custom_metadata={"cijobs_analytics.operation": operation})


def _describe(what: str, exc: BaseException) -> str:
    """``what`` and the first line of a deltalake error (its later lines are a debug dump)."""
    text = str(exc).strip().splitlines()
    return f"{what}: {text[0] if text else type(exc).__name__}"
