"""DuckDB over a job dataset: ``connect(dataset)`` and the one place DuckDB errors are translated.

``connect`` opens an in-memory DuckDB database with these views over one version of the
dataset's ``jobs`` Delta table (the newest, or the one ``as_of`` names):

``jobs``
    One row per ``job_id`` with the columns of ``JOBS_SCHEMA`` (every version of the Delta table
    holds one row per job, so nothing is de-duplicated). The ``date`` partition column is hidden.
``streams``
    One row per media stream (``STREAMS_SCHEMA``): ``job_id`` and the fields of ``jobs.streams``.
``outputs``
    One row per output object (``OUTPUTS_SCHEMA``): ``job_id`` and the fields of
    ``jobs.output_files``.
``coverage``, ``runs``
    The export ledger (``_ledger/coverage`` and ``_ledger/runs``), as of the same moment.

The version's live Parquet files come from the Delta log; DuckDB's own Parquet reader scans a
local dataset (filters and projections pushed into it), and a bucket is read through Arrow's S3
filesystem registered in DuckDB (filters pushed down too). A connection shows the version it
was opened at; connect again to see a later export. Extension auto-install and auto-load are
switched off, so a query never reaches the network for an extension. The session time zone is
UTC, so timestamps arrive in pandas as ``datetime64[us, UTC]``.

Example::

    con = connect("jobs_dataset/")
    read_frame(con, "SELECT tag, count(*) AS jobs FROM jobs GROUP BY tag")
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from ._ledger import coverage_table, runs_table
from ._location import Location, resolve_location
from ._status import check_layout
from ._tables import JOBS_TABLE, file_uris, open_table, superseded_at
from .errors import QueryError
from .schema import JOBS_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "JOB_VIEWS",
    "check_read_only",
    "connect",
    "format_result",
    "read_arrow",
    "read_frame",
    "read_rows",
]

_T = TypeVar("_T")

#: The views every connection has, in the order ``connect`` creates them.
JOB_VIEWS: tuple[str, ...] = ("jobs", "streams", "outputs")

# Columns the views and reports cannot do without; a Parquet file lacking them is not ours.
_REQUIRED_COLUMNS = ("job_id", "fetched_at", "creation_time", "state", "tag")

# Characters DuckDB's glob expands; a dataset path holding one would match other files.
_GLOB_CHARS = frozenset("*?[]{}")

_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
}


def connect(
    dataset: str | os.PathLike[str],
    as_of: int | datetime | str | None = None,
    *,
    storage_options: dict[str, str] | None = None,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB connection with the ``jobs``, ``streams`` and ``outputs`` views.

    Args:
        dataset: a dataset (a local directory, ``s3://bucket/prefix`` or
            ``cos://bucket-appid/prefix``) or a single Parquet file in ``JOBS_SCHEMA`` (what
            ``cijobs fetch --out`` writes).
        as_of: show the dataset as it was: a ``jobs`` table version (``3``) or an aware time or
            ISO string (``"2026-11-28T09:00:00Z"``), within the vacuum retention (7 days).
        storage_options: object-store options for a bucket dataset (see ``docs/architecture.md``).
        read_only: confine the connection to reading the dataset: no other file, no ATTACH,
            no COPY TO, no extension, and no setting can lift that (``cijobs sql`` does this
            unless given ``--allow-writes``).

    Returns:
        The connection; close it when done (it is also a context manager).

    Raises:
        QueryError: the path does not exist, is not a dataset, or cannot be read; the message
            names the fix (e.g. the dataset directory when given its ``jobs/`` table).
        ConfigError: a malformed URI, storage option or ``as_of``.
        StoreError: the dataset is in the old layout, or the storage cannot be reached.

    Example::

        with connect("jobs_dataset/") as con:
            con.sql("SELECT state, count(*) FROM jobs GROUP BY state").show()
    """
    location = resolve_location(dataset, storage_options)
    if location.is_local and _GLOB_CHARS.intersection(location.uri):
        raise QueryError(
            f"dataset path {location.uri!r} holds a glob character (one of * ? [ ] {{ }}); "
            "DuckDB would expand it, so move or rename the dataset"
        )
    single = location.is_local and location.path.is_file()
    if single and as_of is not None:
        raise QueryError(f"{location} is a single Parquet file; as_of needs a dataset")
    if not single:
        _check_dataset(location)
    try:
        con = duckdb.connect(":memory:", config=_CONFIG)
    except duckdb.Error as exc:
        raise QueryError(f"cannot open DuckDB: {exc}") from exc
    try:
        read_rows(con, "SET TimeZone = 'UTC'")
        files = (
            _create_file_views(con, location.path)
            if single
            else _create_dataset_views(con, location, as_of)
        )
        if read_only:
            _confine(con, files)
    except BaseException:
        con.close()
        raise
    return con


def read_frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> pd.DataFrame:
    """Run one query with bound parameters and return its result as a pandas DataFrame.

    Args:
        con: a connection from :func:`connect`.
        sql: the query; values go in ``params`` as ``?`` placeholders, never into the text.
        params: the values bound to the placeholders, in order.

    Returns:
        The result; timestamps are ``datetime64[us, UTC]``.

    Raises:
        QueryError: the SQL failed (syntax, a missing column, an unreadable file).
    """
    args = _args(con, params)
    return _guard(lambda: con.execute(sql, args).df())


def read_arrow(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> pa.Table:
    """Run one query with bound parameters and return its result as an Arrow table.

    Nested columns (``streams``, ``output_files``, ``extra``) keep their structure, which a
    pandas frame would turn into Python objects.

    Args:
        con: a connection from :func:`connect`.
        sql: one query; values go in ``params`` as ``?`` placeholders.
        params: the values bound to the placeholders, in order.

    Returns:
        The result as a ``pyarrow.Table``.

    Raises:
        QueryError: the SQL failed.
    """
    args = _args(con, params)

    def run() -> pa.Table:
        relation = con.sql(sql, params=args)
        # A statement that returns nothing (";", a comment, a SET) gives no relation.
        return relation.to_arrow_table() if relation is not None else pa.table({})

    table: pa.Table = _guard(run)
    return table


def read_rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> list[tuple[Any, ...]]:
    """Run one statement with bound parameters and return its rows as Python tuples.

    Args:
        con: a connection from :func:`connect`.
        sql: the statement; values go in ``params`` as ``?`` placeholders.
        params: the values bound to the placeholders, in order.

    Returns:
        The rows; timestamps are aware ``datetime`` objects in UTC.

    Raises:
        QueryError: the SQL failed.
    """
    args = _args(con, params)
    rows: list[tuple[Any, ...]] = _guard(lambda: con.execute(sql, args).fetchall())
    return rows


def _args(con: object, params: Sequence[Any] | None) -> list[Any] | None:
    """Check the connection and copy the parameters into the list DuckDB binds."""
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise QueryError(
            "expected a DuckDB connection from cijobs_analytics.connect(), "
            f"got {type(con).__name__}"
        )
    return list(params) if params is not None else None


def _guard(action: Callable[[], _T]) -> _T:
    """Run ``action``; the boundary where every DuckDB error becomes a QueryError."""
    try:
        return action()
    except duckdb.Error as exc:
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise QueryError(f"query failed: {first_line}") from exc


def _sql_string(value: str) -> str:
    """Quote ``value`` as a SQL string literal (for DDL, where parameters cannot be bound)."""
    return "'" + value.replace("'", "''") + "'"


def _check_dataset(location: Location) -> None:
    """Refuse a location that holds no dataset, naming the right path where it can."""
    check_layout(location)
    if not location.is_local:
        return
    path = location.path
    if not path.exists():
        raise QueryError(f"no dataset at {str(path)!r}: the path does not exist")
    if (path / "_delta_log").is_dir() and (path.parent / JOBS_TABLE / "_delta_log").is_dir():
        raise QueryError(
            f"{str(path)!r} is the dataset's {path.name} table; pass the dataset itself: "
            f"{str(path.parent)!r}"
        )
    if not (path / JOBS_TABLE / "_delta_log").is_dir():
        raise QueryError(
            f"{str(path)!r} is not a cijobs dataset (no {JOBS_TABLE}/ Delta table); "
            "pass the directory an export wrote (cijobs export --dataset DIR)"
        )


def _create_file_views(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """The views over one Parquet file of jobs (``cijobs fetch --out``, or one made by hand).

    A fetch writes one row per job; a file from elsewhere may repeat a job, so the newest
    ``fetched_at`` is kept (a Delta dataset never needs this).
    """
    source = (
        f"(SELECT * FROM read_parquet({_sql_string(str(path))}, union_by_name = true) "  # noqa: S608
        "QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY fetched_at DESC NULLS LAST) = 1)"
    )
    _create_job_views(con, source, path)
    return [str(path)]


def _create_dataset_views(
    con: duckdb.DuckDBPyConnection, location: Location, as_of: int | datetime | str | None
) -> list[str]:
    """The job views over one version of the ``jobs`` table, and the ledger views.

    Returns:
        The local files the views read (none for a bucket: Arrow reads those).
    """
    table = open_table(location, JOBS_TABLE, as_of)
    if table is None:
        raise QueryError(f"{location} is not a cijobs dataset (no {JOBS_TABLE}/ Delta table)")
    uris = file_uris(table)
    if not uris:
        _create_empty_jobs_table(con)
        source = "_jobs_empty"
    elif location.is_local:
        files = ", ".join(_sql_string(uri.removeprefix("file://")) for uri in uris)
        source = f"read_parquet([{files}], hive_partitioning = false)"
    else:
        filesystem, _root = location.arrow_filesystem()
        paths = [uri.split("://", 1)[1] for uri in uris]
        con.register("_jobs_files", ds.dataset(paths, filesystem=filesystem, format="parquet"))
        source = "_jobs_files"
    _create_job_views(con, source, location)
    moment = superseded_at(location, JOBS_TABLE, table.version()) if as_of is not None else None
    _register_table(con, "coverage", coverage_table(location, moment))
    _register_table(con, "runs", runs_table(location, moment))
    return [uri.removeprefix("file://") for uri in uris] if location.is_local else []


def _confine(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> None:
    """Let ``con`` open only ``files`` from now on, and lock its configuration."""
    read_rows(con, "SET allowed_paths = ?", [list(files)])
    read_rows(con, "SET enable_external_access = false")
    read_rows(con, "SET lock_configuration = true")


#: Statements ``cijobs sql`` runs without ``--allow-writes``: queries and their plans.
_READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


def check_read_only(sql: str) -> None:
    """Refuse anything but one query (``SELECT``, ``WITH``, ``FROM``, ``DESCRIBE``, ``EXPLAIN``...).

    Raises:
        QueryError: the text is empty, holds several statements, or one that writes, attaches,
            loads or configures; the message names it and the way to run it anyway.
    """
    if not isinstance(sql, str) or not sql.strip().rstrip(";").strip():
        raise QueryError('no SQL given: pass a query, e.g. "SELECT count(*) FROM jobs"')
    try:
        with duckdb.connect(":memory:", config=_CONFIG) as scratch:
            statements = scratch.extract_statements(sql)
    except duckdb.Error as exc:
        text = str(exc).strip()
        raise QueryError(f"query failed: {text.splitlines()[0] if text else exc}") from exc
    if len(statements) != 1:
        raise QueryError(f"one query at a time, got {len(statements)} statements")
    kind = statements[0].type.name
    if kind not in _READ_STATEMENTS:
        raise QueryError(
            f"{kind} statements are refused: cijobs sql reads the dataset only; pass "
            "--allow-writes to run statements that write files or change the session"
        )


def _create_job_views(con: duckdb.DuckDBPyConnection, source: str, where: object) -> None:
    """``jobs`` (the JOBS_SCHEMA columns of ``source``), ``streams`` and ``outputs``."""
    read_rows(con, f"CREATE OR REPLACE VIEW jobs AS SELECT * FROM {source}")  # noqa: S608
    columns = {row[0] for row in read_rows(con, "DESCRIBE jobs")}
    missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise QueryError(
            f"{str(where)!r} is not a job table: it lacks the column(s) {', '.join(missing)}"
        )
    read_rows(
        con,
        "CREATE OR REPLACE VIEW streams AS SELECT job_id, unnest(s) "
        "FROM (SELECT job_id, unnest(streams) AS s FROM jobs)",
    )
    read_rows(
        con,
        "CREATE OR REPLACE VIEW outputs AS SELECT job_id, unnest(o) "
        "FROM (SELECT job_id, unnest(output_files) AS o FROM jobs)",
    )


def _register_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """A view ``name`` over a small Arrow table (the ledgers), materialised in DuckDB."""
    con.register(f"_{name}_arrow", table)
    try:
        read_rows(con, f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _{name}_arrow")  # noqa: S608
    finally:
        con.unregister(f"_{name}_arrow")


def _create_empty_jobs_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``_jobs_empty``: no rows, the columns and types of JOBS_SCHEMA."""
    empty = JOBS_SCHEMA.empty_table()
    con.register("_jobs_empty_arrow", empty)
    try:
        read_rows(
            con, "CREATE OR REPLACE TEMP TABLE _jobs_empty AS SELECT * FROM _jobs_empty_arrow"
        )
    finally:
        con.unregister("_jobs_empty_arrow")


def format_result(table: pa.Table, fmt: str) -> str:
    """Format a query result for a terminal or a pipe.

    Args:
        table: the result, e.g. from :func:`read_arrow`.
        fmt: ``table`` (aligned text, long cells cut), ``csv`` (a header row, RFC 4180
            quoting, nested values as JSON) or ``json`` (an array of objects).

    Returns:
        The text, ending in a newline.

    Raises:
        QueryError: an unknown format.
    """
    if fmt not in _FORMATS:
        raise QueryError(f"format must be one of {', '.join(_FORMATS)}; got {fmt!r}")
    rows = [_plain(row) for row in table.to_pylist(maps_as_pydicts="strict")]
    names = table.schema.names
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_csv_cell(row[name]) for name in names] for row in rows)
        return buffer.getvalue()
    cells = [[_text_cell(row[name]) for name in names] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    lines = [
        "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells),
        f"({len(rows)} row{'' if len(rows) == 1 else 's'})",
    ]
    return "\n".join(lines) + "\n"


_FORMATS = ("table", "csv", "json")
_MAX_CELL = 48


def _plain(value: Any) -> Any:
    """A result value as JSON-ready Python: ISO times, seconds for intervals, null for NaN."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _text_cell(value: Any) -> str:
    text = "NULL" if value is None else str(_csv_cell(value))
    text = text.replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
