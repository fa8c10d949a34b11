"""bench_query: the HTML report and a GROUP BY over a Delta dataset of 10 million jobs.

The dataset (``<dataset>/jobs``, a Delta table partitioned by ``date``) is built once and cached
in ``benchmarks/_work/query_10m/`` (``query_<size>/`` for another ``--jobs``); a later run
reuses it while its row count matches, ``--rebuild`` builds it again. Building takes minutes:
20,000 jobs over 7 days are fetched once from the emulator on loopback, then replicated under
new ids (``<job_id>-r<k>``) with every time shifted ``k mod 52`` weeks back, so 10 million
jobs make a busy year (about 27,000 a day in 364 daily partitions); ``write_deltalake`` appends
the replicas of one week per commit, so each partition gets one file (as the export's
compaction leaves it) and memory stays bounded whatever the size.

Timed on that dataset:

(a) ``cijobs report --dataset D --out report.html`` over all of it, as a child process: wall
    time and peak RSS (``ru_maxrss`` of the children of a small wrapper process: a child forked
    from this process would inherit its size);
(b) ``SELECT tag, count(*) FROM jobs GROUP BY tag`` through ``cj.connect(D)``, against DuckDB
    reading the table's live Parquet files directly (``DeltaTable.file_uris()`` into
    ``read_parquet``). Both are timed from opening to the result (the Delta log read
    included), in this process, interleaved, best of 3 each.

Targets: (a) exits 0 in under 10 s; (b) the same counts, in at most 3x the direct scan's time.
Exits 1 when one is missed. ``--jobs 200000`` tries it small.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, WriterProperties, write_deltalake

import cijobs_analytics as cj
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.schema import JOBS_SCHEMA, SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"

DEFAULT_JOBS = 10_000_000
BASE_JOBS = 20_000
BASE_DAYS = 7
BASE_SEED = 11
#: A fixed history, so every build holds the same jobs (``fetched_at`` aside).
HISTORY_END = datetime(2026, 11, 2, tzinfo=UTC)
#: The weeks the replicas are spread over: a year of daily partitions.
SPAN_WEEKS = 52
ROUNDS = 3

REPORT_SECONDS_TARGET = 10.0
CONNECT_RATIO_TARGET = 3.0

QUERY = "SELECT tag, count(*) AS jobs FROM jobs GROUP BY tag"
DIRECT_QUERY = "SELECT tag, count(*) AS jobs FROM read_parquet(?) GROUP BY tag"

#: The columns of the Delta table: JOBS_SCHEMA, then the ``date`` partition column.
DELTA_SCHEMA = JOBS_SCHEMA.append(pa.field("date", pa.date32()))
#: What ``cijobs export`` records as the table's description (``_tables.create_table``):
#: ``connect`` refuses a ``jobs`` table without it as not written by cijobs_analytics.
TABLE_DESCRIPTION = f"cijobs_analytics jobs table, schema version {SCHEMA_VERSION}"
_TIME_COLUMNS = ("fetched_at", "not_found_at", "creation_time", "start_time", "end_time")

# Runs the command in argv[2:] and writes its exit code, wall time and peak RSS to argv[1].
# RUSAGE_CHILDREN here sees only the command, forked from this small process.
_WRAPPER = r"""
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[2:], capture_output=True, text=True, check=False)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
with open(sys.argv[1], "w") as out:
    json.dump({"rc": done.returncode, "seconds": seconds, "peak_rss": peak,
               "stdout": done.stdout, "stderr": done.stderr}, out)
"""

_MIB = 1 << 20
_GIB = 1 << 30


@dataclass(frozen=True)
class Dataset:
    path: Path
    jobs: int
    files: int
    partitions: int
    bytes: int
    build_s: float | None  # None: reused from an earlier run


@dataclass(frozen=True)
class ReportRun:
    returncode: int
    seconds: float
    peak_rss: int
    stderr: str


@dataclass(frozen=True)
class QueryTiming:
    """Best-of-rounds timings of the GROUP BY, or the error that stopped it."""

    total_s: float
    open_s: float
    counts: dict[str | None, int]
    error: str | None = None


# -- the dataset --------------------------------------------------------------------------------


def _label(jobs: int) -> str:
    """``10m``, ``200k`` or the plain number: the cache directory's suffix."""
    if jobs % 1_000_000 == 0:
        return f"{jobs // 1_000_000}m"
    if jobs % 1_000 == 0:
        return f"{jobs // 1_000}k"
    return str(jobs)


def _row_count(dataset: Path) -> int | None:
    """Rows in ``dataset/jobs`` from the Delta log's file statistics; None if not one of ours."""
    table = dataset / "jobs"
    if not DeltaTable.is_deltatable(str(table)):
        return None
    if DeltaTable(str(table)).metadata().description != TABLE_DESCRIPTION:
        return None
    actions = _add_actions(table)
    return int(pc.sum(actions.column("num_records")).as_py() or 0)


def _add_actions(table: Path) -> pa.Table:
    """The live files of a Delta table with their statistics, one row per file."""
    # deltalake hands back an arro3 table; pyarrow's compute functions want their own.
    return pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))


def _describe(dataset: Path, build_s: float | None) -> Dataset:
    actions = _add_actions(dataset / "jobs")
    return Dataset(
        path=dataset,
        jobs=int(pc.sum(actions.column("num_records")).as_py() or 0),
        files=actions.num_rows,
        partitions=len(pc.unique(actions.column("partition.date"))),
        bytes=int(pc.sum(actions.column("size_bytes")).as_py() or 0),
        build_s=build_s,
    )


def fetch_base(jobs: int) -> pa.Table:
    """``jobs`` emulated jobs over ``BASE_DAYS`` days, fetched on loopback, in JOBS_SCHEMA."""
    with Emulator(jobs=jobs, days=BASE_DAYS, seed=BASE_SEED, end=HISTORY_END) as emu:
        client = cj.CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url)
        with client:
            table = cj.fetch_jobs(client, emu.history_start, emu.end, progress=False)
    if table.num_rows != jobs:
        raise SystemExit(f"fetched {table.num_rows} of the emulator's {jobs} jobs")
    return table


def replicate(base: pa.Table, k: int) -> pa.Table:
    """Replica ``k`` of the base jobs: ids suffixed ``-r<k>``, times ``k mod 52`` weeks earlier.

    ``k`` = 0 is the base itself (with its ``date``).
    """
    columns: dict[str, pa.ChunkedArray] = {name: base.column(name) for name in base.column_names}
    if k:
        columns["job_id"] = pc.binary_join_element_wise(columns["job_id"], f"-r{k}", "")
        shift = pa.scalar(timedelta(days=BASE_DAYS * (k % SPAN_WEEKS)), pa.duration("us"))
        for name in _TIME_COLUMNS:
            columns[name] = pc.subtract(columns[name], shift)
    # creation_time is UTC, so the cast gives its UTC date.
    columns["date"] = pc.cast(columns["creation_time"], pa.date32())
    return pa.Table.from_arrays([columns[f.name] for f in DELTA_SCHEMA], schema=DELTA_SCHEMA)


def iter_chunks(base: pa.Table, jobs: int) -> Iterator[pa.Table]:
    """The replicas that make ``jobs`` rows, those of one week (k mod 52) at a time."""
    replicas = math.ceil(jobs / base.num_rows)
    left = jobs
    for week in range(min(SPAN_WEEKS, replicas)):
        ks = range(week, replicas, SPAN_WEEKS)
        chunk = pa.concat_tables([replicate(base, k) for k in ks])
        chunk = chunk.slice(0, min(left, chunk.num_rows))
        left -= chunk.num_rows
        yield chunk


def build_dataset(dataset: Path, jobs: int) -> float:
    """Write a ``jobs``-row Delta dataset to ``dataset``; returns the seconds it took.

    It is built beside ``dataset`` and renamed into place, so an interrupted build is never
    taken for a finished one.
    """
    started = time.perf_counter()
    partial = dataset.with_name(dataset.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    base = fetch_base(min(jobs, BASE_JOBS))
    fetched = time.perf_counter()
    print(f"  base: {base.num_rows:,} jobs fetched from the emulator in {fetched - started:.1f} s")
    uri = str(partial / "jobs")
    written = 0
    properties = WriterProperties(compression="ZSTD")
    for chunk in iter_chunks(base, jobs):
        write_deltalake(
            uri,
            chunk,
            partition_by=["date"],
            mode="append",
            name="jobs",  # name and description are recorded by the first commit only
            description=TABLE_DESCRIPTION,
            writer_properties=properties,
        )
        written += chunk.num_rows
        del chunk
        elapsed = time.perf_counter() - fetched
        print(
            f"  wrote {written:,} / {jobs:,} jobs ({written / elapsed:,.0f} rows/s, "
            f"peak RSS {_self_peak_rss() / _GIB:.1f} GiB)",
            flush=True,
        )
    shutil.rmtree(dataset, ignore_errors=True)
    os.replace(partial, dataset)
    return time.perf_counter() - started


def ensure_dataset(jobs: int, rebuild: bool) -> Dataset:
    """The cached dataset of ``jobs`` rows, built first when missing, different or asked for."""
    dataset = WORK / f"query_{_label(jobs)}"
    count = None if rebuild else _row_count(dataset)
    if count == jobs:
        print(f"reusing {dataset.relative_to(ROOT)} ({jobs:,} jobs; --rebuild to build again)")
        return _describe(dataset, None)
    why = "--rebuild" if rebuild else ("missing" if count is None else f"holds {count:,} rows")
    if count is None and not rebuild and (dataset / "jobs").is_dir():
        why = "not a table this benchmark wrote"
    print(f"building {dataset.relative_to(ROOT)} with {jobs:,} jobs ({why}) ...", flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    return _describe(dataset, build_dataset(dataset, jobs))


def _self_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- (a) the report -----------------------------------------------------------------------------


def run_report(dataset: Path, out: Path) -> ReportRun:
    """``cijobs report`` over the whole dataset in a child process, through the wrapper."""
    result = WORK / f"{dataset.name}.report.json"
    command = [
        sys.executable,
        "-c",
        _WRAPPER,
        str(result),
        sys.executable,
        "-m",
        "cijobs_analytics",
        "report",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True)
    answer: dict[str, Any] = json.loads(result.read_text())
    result.unlink()
    return ReportRun(answer["rc"], answer["seconds"], answer["peak_rss"], answer["stderr"])


def _exit_text(returncode: int) -> str:
    """The exit code as a shell shows it (a signal as 128 + n, e.g. 134 for SIGABRT)."""
    if returncode < 0:
        number = -returncode
        return f"{128 + number} ({signal.Signals(number).name})"
    return str(returncode)


# -- (b) the GROUP BY ---------------------------------------------------------------------------


def _time_connect(dataset: Path) -> tuple[float, float, dict[str | None, int]]:
    started = time.perf_counter()
    with cj.connect(dataset) as con:
        opened = time.perf_counter()
        rows = con.execute(QUERY).fetchall()
    return time.perf_counter() - started, opened - started, dict(rows)


def _time_direct(dataset: Path) -> tuple[float, float, dict[str | None, int]]:
    started = time.perf_counter()
    files = DeltaTable(str(dataset / "jobs")).file_uris()
    con = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"},
    )
    try:
        opened = time.perf_counter()
        rows = con.execute(DIRECT_QUERY, [files]).fetchall()
    finally:
        con.close()
    return time.perf_counter() - started, opened - started, dict(rows)


def time_group_by(dataset: Path) -> tuple[QueryTiming, QueryTiming]:
    """Best of ROUNDS for connect and for the direct scan, the two interleaved."""
    results: dict[str, list[tuple[float, float, dict[str | None, int]]]] = {
        "direct": [],
        "connect": [],
    }
    error = None
    for _ in range(ROUNDS):
        results["direct"].append(_time_direct(dataset))
        if error is None:
            # Any failure of connect (a QueryError, or a bug while it is being rewritten) is a
            # result to print beside the baseline, not a reason to stop.
            try:
                results["connect"].append(_time_connect(dataset))
            except Exception as exc:
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    def best(runs: list[tuple[float, float, dict[str | None, int]]]) -> QueryTiming:
        if not runs:
            return QueryTiming(math.nan, math.nan, {}, error)
        total, opened, counts = min(runs, key=lambda run: run[0])
        return QueryTiming(total, opened, counts, error)

    return best(results["connect"]), best(results["direct"])


# -- main ---------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text.replace("_", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of jobs, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=DEFAULT_JOBS,
        help=f"jobs in the dataset (default {DEFAULT_JOBS:,})",
    )
    parser.add_argument("--rebuild", action="store_true", help="build the dataset again")
    args = parser.parse_args(argv)

    data = ensure_dataset(args.jobs, args.rebuild)
    built = (
        f"built in {data.build_s:.1f} s, peak RSS {_self_peak_rss() / _GIB:.1f} GiB"
        if data.build_s is not None
        else "cached"
    )
    print(
        f"dataset: {data.jobs:,} jobs, {data.partitions:,} date partitions, {data.files:,} "
        f"files, {data.bytes / _MIB:,.0f} MiB ({built})",
        flush=True,
    )

    print("cijobs report over all of it ...", flush=True)
    report = run_report(data.path, WORK / f"{data.path.name}.report.html")
    print(f"GROUP BY tag, best of {ROUNDS} ...", flush=True)
    ours, direct = time_group_by(data.path)

    ratio = ours.total_s / direct.total_s
    same = not ours.error and ours.counts == direct.counts
    report_ok = report.returncode == 0
    rows = [
        (
            "report wall time",
            f"{report.seconds:.2f} s",
            f"< {REPORT_SECONDS_TARGET:.0f} s",
            report_ok and report.seconds < REPORT_SECONDS_TARGET,
        ),
        ("report exit code", _exit_text(report.returncode), "0", report_ok),
        ("report peak RSS", f"{report.peak_rss / _MIB:,.0f} MiB", "-", None),
        (
            "GROUP BY: direct read_parquet",
            f"{direct.total_s:.3f} s (open {direct.open_s:.3f})",
            "-",
            None,
        ),
        (
            "GROUP BY: cj.connect",
            f"{ours.total_s:.3f} s (open {ours.open_s:.3f})" if not ours.error else "failed",
            "-",
            None,
        ),
        (
            "connect / direct",
            f"{ratio:.2f}x" if not ours.error else "-",
            f"<= {CONNECT_RATIO_TARGET:.1f}x",
            not ours.error and ratio <= CONNECT_RATIO_TARGET,
        ),
        ("same counts", "yes" if same else "no", "yes", same),
    ]
    print()
    print(f"{'measure':<31}{'measured':>26}{'target':>10}  result")
    for name, measured, target, passed in rows:
        verdict = "-" if passed is None else ("pass" if passed else "FAIL")
        print(f"{name:<31}{measured:>26}{target:>10}  {verdict}")
    if not report_ok:
        print(f"report stderr (last lines):\n{_tail(report.stderr)}")
    if ours.error:
        print(f"cj.connect failed: {ours.error}")
    missed = [name for name, _, _, passed in rows if passed is False]
    if missed:
        print(f"missed: {', '.join(missed)}")
        return 1
    print("all targets met")
    return 0


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join("  " + line for line in text.strip().splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
