"""DuckDB over a job dataset: ``connect(dataset)`` and the one place DuckDB errors are translated.

``connect`` opens an in-memory DuckDB database with these views over the Parquet files:

``jobs``
    One row per ``job_id`` with the columns of ``JOBS_SCHEMA``; when a job was fetched more than
    once (an upsert caught mid-rewrite, or two files of a single-file export) the row with the
    newest ``fetched_at`` wins. The ``date`` partition column of the directory layout is hidden.
``streams``
    One row per media stream (``STREAMS_SCHEMA``): ``job_id`` and the fields of ``jobs.streams``.
``outputs``
    One row per output object (``OUTPUTS_SCHEMA``): ``job_id`` and the fields of
    ``jobs.output_files``.
``coverage``, ``runs``
    The export ledger (``_ledger/coverage.parquet``, ``_ledger/runs.parquet``), when present.

The views re-read the files on every query, so a connection sees what a concurrent export has
renamed into place. Only DuckDB's built-in Parquet reader is used; extension auto-install and
auto-load are switched off, so a query never reaches the network. The session time zone is UTC,
so timestamps arrive in pandas as ``datetime64[us, UTC]``.

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
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import duckdb
import pyarrow as pa

from .errors import QueryError
from .schema import JOBS_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["JOB_VIEWS", "connect", "format_result", "read_arrow", "read_frame", "read_rows"]

_T = TypeVar("_T")

#: The views every connection has, in the order ``connect`` creates them.
JOB_VIEWS: tuple[str, ...] = ("jobs", "streams", "outputs")

# Characters DuckDB's glob expands; a dataset path holding one would match other directories.
_GLOB_CHARS = frozenset("*?[]{}")

# Columns the views and reports cannot do without; a Parquet file lacking them is not ours.
_REQUIRED_COLUMNS = ("job_id", "fetched_at", "creation_time", "state", "tag")

# A store rewrite renames a new file in and deletes the old one (design §5); a query that
# globbed just before the delete fails to open the old file. Once more after this pause finds
# the new file.
_RACE_RETRY_PAUSE_S = 0.05

_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
}


def connect(dataset: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB connection with the ``jobs``, ``streams`` and ``outputs`` views.

    Args:
        dataset: a dataset directory (``<dataset>/jobs/date=YYYY-MM-DD/*.parquet``) or a single
            Parquet file in ``JOBS_SCHEMA`` (what ``cijobs fetch --out`` writes). A directory
            without Parquet files yields empty views, typed as ``JOBS_SCHEMA``; connect again
            after the first export to see its jobs.

    Returns:
        The connection; close it when done (it is also a context manager).

    Raises:
        QueryError: the path does not exist, is neither a directory nor a file, holds glob
            characters, or its files are not readable job tables.

    Example::

        with connect("jobs_dataset/") as con:
            con.sql("SELECT state, count(*) FROM jobs GROUP BY state").show()
    """
    path = Path(dataset)
    if not path.exists():
        raise QueryError(f"no dataset at {str(path)!r}: the path does not exist")
    if _GLOB_CHARS.intersection(str(path)):
        raise QueryError(
            f"dataset path {str(path)!r} holds a glob character (one of * ? [ ] {{ }}); "
            "DuckDB would expand it, so move or rename the dataset"
        )
    if not (path.is_dir() or path.is_file()):
        raise QueryError(f"dataset {str(path)!r} is neither a directory nor a Parquet file")
    try:
        con = duckdb.connect(":memory:", config=_CONFIG)
    except duckdb.Error as exc:
        raise QueryError(f"cannot open DuckDB: {exc}") from exc
    try:
        read_rows(con, "SET TimeZone = 'UTC'")
        _create_views(con, path)
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
    table: pa.Table = _guard(lambda: con.sql(sql, params=args).to_arrow_table())
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
        try:
            return action()
        except duckdb.IOException:
            time.sleep(_RACE_RETRY_PAUSE_S)
            return action()
    except duckdb.Error as exc:
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise QueryError(f"query failed: {first_line}") from exc


def _sql_string(value: str) -> str:
    """Quote ``value`` as a SQL string literal (for DDL, where parameters cannot be bound)."""
    return "'" + value.replace("'", "''") + "'"


def _create_views(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Create the job views (and the ledger views when present) over ``path``."""
    if path.is_file():
        source = f"read_parquet({_sql_string(str(path))}, union_by_name = true)"
        select = "SELECT *"
    elif any((path / "jobs").rglob("*.parquet")):
        pattern = _sql_string(str(path / "jobs" / "**" / "*.parquet"))
        source = f"read_parquet({pattern}, hive_partitioning = true, union_by_name = true)"
        # `date` is the partition directory, derived from creation_time; hiding it keeps the
        # view's columns those of JOBS_SCHEMA whichever layout the rows came from.
        select = "SELECT * EXCLUDE (date)"
    else:
        _create_empty_jobs_table(con)
        source = "_jobs_empty"
        select = "SELECT *"
    read_rows(
        con,
        f"CREATE OR REPLACE VIEW jobs AS {select} FROM {source} "
        "QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY fetched_at DESC NULLS LAST) = 1",
    )
    columns = {row[0] for row in read_rows(con, "DESCRIBE jobs")}
    missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise QueryError(
            f"{str(path)!r} is not a job table: it lacks the column(s) {', '.join(missing)}"
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
    if path.is_dir():
        for name in ("coverage", "runs"):
            ledger = path / "_ledger" / f"{name}.parquet"
            if ledger.is_file():
                read_rows(
                    con,
                    f"CREATE OR REPLACE VIEW {name} AS "  # noqa: S608 - DDL binds nothing; path is quoted
                    f"SELECT * FROM read_parquet({_sql_string(str(ledger))})",
                )


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
