"""The ``cijobs`` command: parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success, 1 failure (the service, the network, the dataset, an output that cannot
be written), 2 usage error (a bad option value, missing credentials), 130 interrupted by Ctrl-C
and 143 stopped by SIGTERM. Errors print one line on stderr, never a traceback; no secret is
ever taken from a command-line flag.

Every option value is checked before anything is locked, fetched or written: times (an ISO time
with a zone, a span back from now such as ``7d``, or ``now``) are resolved against one moment
per command, and tags and states against the documented names, naming the closest on a miss.
The value types live in :mod:`._cli_values`; exit codes, messages, signals and logging in
:mod:`._cli_run`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from . import __version__
from . import _cli_run as run
from . import _cli_values as values
from ._text import plural
from .client import DEFAULT_THROTTLE_TIMEOUT, MAX_WORKERS
from .errors import CIJobsError, ConfigError, StoreError
from .schema import STATES, TAGS

if TYPE_CHECKING:
    from .client import CIClient

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)


class _Cli(click.Group):
    """The ``cijobs`` group: an interrupted command ends with one line and 130 or 143."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            # Handled here, before click's own handler prints a blank line and aborts.
            raise click.exceptions.Exit(run.interrupted(exc)) from None


@click.group(
    cls=_Cli,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="cijobs")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="How much to log on stderr.",
)
def cli(log_level: str) -> None:
    """Tencent Cloud Infinite media-job histories as Parquet, DuckDB and reports.

    Credentials come from TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and, for temporary
    keys, TENCENTCLOUD_SESSION_TOKEN.

    Exit codes: 0 success, 1 failure (the service, the network, the dataset, an output that
    cannot be written), 2 usage error, 130 interrupted (Ctrl-C), 143 stopped (SIGTERM).
    """
    run.start_logging(log_level)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line; exits with 0, 1, 2, or 130/143 when interrupted."""
    restore = run.stop_on_sigterm()
    try:
        # standalone_mode=False hands errors to us; --help and --version return their code.
        code = run.exit_code(lambda: cli.main(args=argv, prog_name="cijobs", standalone_mode=False))
    finally:
        restore()
        run.stop_logging()
    sys.exit(code)


# Commands are defined below, one section per command, in the order of `cijobs --help`.


# -- options shared by the commands that talk to the service --------------------------------


def _service_options(command: F) -> F:
    """--bucket, --region and --endpoint: which bucket to read, and where to connect."""
    for option in reversed(
        (
            click.option(
                "--bucket", required=True, help="Bucket with its APPID: examplebucket-1250000000."
            ),
            click.option("--region", required=True, help="Region of the bucket: ap-guangzhou."),
            click.option(
                "--endpoint",
                default=None,
                help="Connect here instead of the service, e.g. the emulator's "
                "http://127.0.0.1:8089.",
            ),
        )
    ):
        command = option(command)
    return command


def _tag_option(default: str) -> Callable[[F], F]:
    """--tag: job types among the 19 documented ones, repeated or comma-separated."""
    return click.option(
        "--tag",
        "tags",
        multiple=True,
        type=values.NameList(TAGS, "tag"),
        callback=values.joined,
        metavar="TAG[,TAG...]",
        help=f"Job type (Transcode, Snapshot, ...: the {len(TAGS)} the service documents, "
        f"names as written there); repeat or separate with commas [default: {default}].",
    )


def _filter_options(states: tuple[str, ...]) -> Callable[[F], F]:
    """--tag, --queue-id and --state (choices ``states``): which jobs to list."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                _tag_option(f"all {len(TAGS)}"),
                click.option(
                    "--queue-id", "queue_ids", multiple=True, help="Queue; repeat for several."
                ),
                click.option(
                    "--state",
                    "states",
                    multiple=True,
                    type=values.NameList(states, "state"),
                    callback=values.joined,
                    metavar="STATE[,STATE...]",
                    help=f"Keep only jobs in this state ({', '.join(states)}); repeat or "
                    "separate with commas [default: all].",
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


def _rate_options(command: F) -> F:
    """--workers, --qps and --throttle-timeout: how hard to drive the service."""
    for option in reversed(
        (
            click.option(
                "--workers",
                type=click.IntRange(1, MAX_WORKERS),
                default=8,
                show_default=True,
                help="Requests in flight at once.",
            ),
            click.option(
                "--qps",
                type=values.FiniteFloatRange(0, min_open=True),
                default=None,
                help="Most requests per second for the whole run "
                "[default: no limit until throttled, then the rate the service allows].",
            ),
            click.option(
                "--throttle-timeout",
                type=values.FiniteFloatRange(0),
                default=DEFAULT_THROTTLE_TIMEOUT,
                show_default=True,
                help="Seconds of throttling with no request getting through before the run fails.",
            ),
        )
    ):
        command = option(command)
    return command


def _client(bucket: str, region: str, endpoint: str | None, throttle_timeout: float) -> CIClient:
    """A client with credentials from the environment (missing ones: exit 2, named)."""
    from .client import CIClient
    from .config import Credentials

    return CIClient(
        bucket,
        region,
        Credentials.from_env(),
        endpoint=endpoint,
        throttle_timeout=throttle_timeout,
    )


# -- cijobs fetch ---------------------------------------------------------------------------


@cli.command("fetch")
@_service_options
@_filter_options(("All", *STATES))
@click.option(
    "--start",
    required=True,
    type=values.TIME,
    help="First creation time, included: 2026-11-02T00:00:00+08:00, 2026-11-01T16:00:00Z, "
    "or a span back from now (7d, 12h).",
)
@click.option(
    "--end",
    required=True,
    type=values.TIME,
    help="Creation time where the range stops, excluded: a time as for --start, or now.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write (zstd); replaced atomically.",
)
@_rate_options
def fetch_command(
    bucket: str,
    region: str,
    endpoint: str | None,
    tags: tuple[str, ...],
    queue_ids: tuple[str, ...],
    states: tuple[str, ...],
    start: datetime,
    end: datetime,
    out: Path,
    workers: int,
    qps: float | None,
    throttle_timeout: float,
) -> None:
    """Fetch every job created in [--start, --end) into one Parquet file.

    Jobs are fetched for every tag (or the --tag ones) in parallel slices under one rate
    limit, filtered to the exact range and de-duplicated by job id. The file is written next
    to --out as a .tmp file and renamed into place only when complete.

    Example: cijobs fetch --bucket examplebucket-1250000000 --region ap-guangzhou
    --start 2026-11-01T00:00:00+08:00 --end 2026-11-08T00:00:00+08:00 --out week.parquet

    Exit codes: 0 written, 1 failed (service, network, the file cannot be written), 2 usage
    error, 130/143 interrupted (Ctrl-C/SIGTERM; nothing is written).
    """
    from .fetch import FetchStats, fetch_to_parquet

    values.check_order(start, end, ("--start", "--end"))
    if not out.parent.is_dir():
        raise click.BadParameter(
            f"directory {str(out.parent)!r} does not exist; create it first", param_hint="'--out'"
        )
    client = _client(bucket, region, endpoint, throttle_timeout)
    stats = FetchStats()
    fetch_to_parquet(
        client,
        out,
        start,
        end,
        tags=list(tags) or None,
        queue_ids=list(queue_ids) or None,
        states=list(states) or None,
        workers=workers,
        qps=qps,
        stats=stats,
    )
    click.echo(f"cijobs fetch: wrote {out}: {stats.summary()}", err=True)


# -- cijobs export / cijobs status ----------------------------------------------------------


def _dataset_options(help_text: str) -> Callable[[F], F]:
    """``--dataset`` (a directory or a bucket URI) and the repeatable ``--storage-option``."""

    def decorate(func: F) -> F:
        func = click.option(
            "--storage-option",
            "storage_options",
            multiple=True,
            metavar="KEY=VALUE",
            callback=values.storage_options,
            help="An object-store option for an s3:// or cos:// dataset (e.g. "
            "endpoint=http://127.0.0.1:9000, region=ap-guangzhou); repeat for several.",
        )(func)
        return click.option(
            "--dataset", required=True, callback=values.dataset_path, help=help_text
        )(func)

    return decorate


_as_of_option = click.option(
    "--as-of",
    default=None,
    metavar="VERSION|TIME",
    callback=values.as_of,
    help="Show the dataset as it was: a table version (3), an ISO time with a zone "
    "(2026-11-28T09:00:00Z) or a span back from now (1d), within the 7-day retention "
    "[default: now].",
)


@cli.command("export")
@_dataset_options(
    "The dataset: a directory, s3://bucket/prefix or cos://bucket-appid/prefix; created on "
    "the first run."
)
@_service_options
@_filter_options(STATES)
@click.option(
    "--since",
    type=values.TIME,
    default=None,
    help="Where coverage starts: an ISO time with a zone or a span back from now (7d, 12h). "
    "Needed on the first run; later runs continue from the dataset's coverage.",
)
@click.option(
    "--until",
    type=values.TIME,
    default=None,
    help="Stop at this creation time: an ISO time with a zone, a span back from now (1h) or "
    "now [default: now].",
)
@click.option(
    "--overlap",
    default="10min",
    metavar="SPAN",
    show_default=True,
    callback=values.span,
    help="How far behind the last covered time to re-read, for jobs listed late.",
)
@click.option(
    "--refetch",
    nargs=2,
    type=values.TIME,
    multiple=True,
    callback=values.refetch_ranges,
    metavar="START END",
    help="List the jobs created in [START, END) again whatever the coverage says (e.g. a "
    "range `cijobs status` reports lost); times as for --since; repeat for several.",
)
@_rate_options
@click.option(
    "--batch-rows",
    type=click.IntRange(1),
    default=20_000,
    show_default=True,
    help="Rows buffered before each commit: fewer use less memory.",
)
@click.option("--no-progress", is_flag=True, help="Show no progress bars (e.g. under cron).")
def export_command(
    dataset: str,
    storage_options: dict[str, str] | None,
    bucket: str,
    region: str,
    endpoint: str | None,
    tags: tuple[str, ...],
    queue_ids: tuple[str, ...],
    states: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    overlap: Any,
    refetch: list[tuple[datetime, datetime]],
    workers: int,
    qps: float | None,
    throttle_timeout: float,
    batch_rows: int,
    no_progress: bool,
) -> None:
    """Bring a Delta Lake dataset of jobs up to date; safe to run from cron.

    The first run lists --since to now. Later runs list from where the dataset's coverage ends
    (re-reading --overlap behind it), fill any gap a failed run left, and refresh the jobs
    still open. A second export on the same dataset exits 1 at once while one runs.

    Ctrl-C or SIGTERM (systemd stop, timeout) stops a run the same way: the jobs fetched so
    far are committed, the run is recorded as failed, and the next run goes on from there.

    Example: cijobs export --dataset jobs_dataset --bucket examplebucket-1250000000
    --region ap-guangzhou --since 30d --no-progress

    Exit codes: 0 done, 1 failed (service, network, dataset, lock held), 2 usage error,
    130 interrupted (Ctrl-C), 143 stopped (SIGTERM).
    """
    import os

    import pyarrow as pa

    from .store import export

    values.check_order(since, until, ("--since", "--until"))
    client = _client(bucket, region, endpoint, throttle_timeout)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        # A long run of many threads: the system allocator hands freed pages back, where
        # mimalloc keeps every thread's high-water mark (a third more peak memory here).
        pa.set_memory_pool(pa.system_memory_pool())
    result = export(
        client,
        dataset,
        since=since,
        until=until,
        tags=list(tags) or None,
        queue_ids=list(queue_ids) or None,
        states=list(states) or None,
        workers=workers,
        qps=qps,
        progress=not no_progress,
        overlap=overlap,
        batch_rows=batch_rows,
        storage_options=storage_options,
        refetch=refetch or None,
    )
    click.echo(f"cijobs export: {result}")


@cli.command("status")
@_dataset_options("The dataset: a directory, s3://bucket/prefix or cos://bucket-appid/prefix.")
@_as_of_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json is for monitoring.",
)
def status_command(
    dataset: str, storage_options: dict[str, str] | None, as_of: Any, fmt: str
) -> None:
    """Show a dataset's coverage and gaps per tag and queue, open jobs and the last run.

    Example: cijobs status --dataset jobs_dataset --format json

    Exit codes: 0 shown, 1 the location is not a readable dataset (yet: also while the first
    export creates it), 2 usage error.
    """
    from .store import read_status

    try:
        status = read_status(dataset, as_of, storage_options=storage_options)
    except StoreError as exc:
        holder = _export_holder(dataset, storage_options) if as_of is None else None
        if holder is None:
            raise
        raise StoreError(
            f"{dataset} has no committed data yet: an export is creating it (pid "
            f"{holder.get('pid')} on {holder.get('host')} since {holder.get('started')}); "
            "run cijobs status again once it has committed"
        ) from exc
    click.echo(status.to_json() if fmt == "json" else str(status))


def _export_holder(
    dataset: str, storage_options: dict[str, str] | None
) -> dict[str, object] | None:
    """Who holds the export lock of ``dataset``; None when nobody does or it cannot be told."""
    from ._location import resolve_location
    from ._lock import read_holder

    try:
        return read_holder(resolve_location(dataset, storage_options))
    except CIJobsError:
        return None


# -- cijobs emulate -------------------------------------------------------------------------


def _share_option(name: str, help_text: str) -> Callable[[F], F]:
    """A fault switch of ``cijobs emulate``: a share of requests, from 0 to 1."""
    return click.option(
        name, type=values.FiniteFloatRange(0, 1), default=0.0, show_default=True, help=help_text
    )


@cli.command("emulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8089,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--jobs",
    type=click.IntRange(0, 5_000_000),
    default=2000,
    show_default=True,
    help="How many jobs to generate.",
)
@click.option(
    "--days",
    type=values.FiniteFloatRange(0, 3660, min_open=True),
    default=7.0,
    show_default=True,
    help="The jobs are created over the last this many days.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated jobs.")
@click.option(
    "--bucket",
    default="examplebucket-1250000000",
    show_default=True,
    help="The bucket served: a request whose Host names another bucket or region is refused "
    "(400 InvalidHost).",
)
@click.option("--region", default="ap-guangzhou", show_default=True, help="Region of the jobs.")
@click.option(
    "--latency-ms",
    type=values.FiniteFloatRange(0, 600_000),
    default=0.0,
    show_default=True,
    help="Delay added to every request.",
)
@click.option(
    "--qps",
    type=values.FiniteFloatRange(0, min_open=True),
    default=None,
    help="Requests per second allowed; the excess is answered 503 SlowDown [default: no limit].",
)
@_share_option("--fail-rate", "Share of requests answered 500 InternalError.")
@_share_option("--drop-rate", "Share of responses whose connection is closed mid-body.")
@_share_option("--truncate-rate", "Share of responses with a body cut short.")
@_share_option(
    "--malformed-rate", "Share of responses with the documentation's stray </Message> tag."
)
@click.option(
    "--inclusive-bounds",
    is_flag=True,
    help="Make startCreationTime/endCreationTime inclusive (the service documents exclusive).",
)
@click.option(
    "--advance-every",
    type=values.FiniteFloatRange(0, min_open=True),
    default=None,
    help="Every this many seconds finish half the open jobs and create new ones.",
)
def emulate_command(
    host: str,
    port: int,
    jobs: int,
    days: float,
    seed: int,
    bucket: str,
    region: str,
    latency_ms: float,
    qps: float | None,
    fail_rate: float,
    drop_rate: float,
    truncate_rate: float,
    malformed_rate: float,
    inclusive_bounds: bool,
    advance_every: float | None,
) -> None:
    """Serve a local CI endpoint (GET /jobs) with generated jobs until Ctrl-C or SIGTERM.

    It verifies signatures with the key in TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY;
    when they are unset it makes a demo key and prints the export lines that select it.

    Example: cijobs emulate --port 8089 --jobs 20000 --days 7 --qps 50 --fail-rate 0.02
    """
    import os
    import time

    from .config import ENV_SECRET_ID, ENV_SECRET_KEY, ENV_SESSION_TOKEN, Credentials
    from .emulator import Emulator, demo_credentials

    if os.environ.get(ENV_SECRET_ID) or os.environ.get(ENV_SECRET_KEY):
        credentials = Credentials.from_env()
        exports = []
    else:
        credentials = demo_credentials()
        exports = [
            f"export {ENV_SECRET_ID}={credentials.secret_id}",
            f"export {ENV_SECRET_KEY}={credentials.secret_key}",
            f"unset {ENV_SESSION_TOKEN}",
        ]
    emu = Emulator(
        jobs=jobs,
        days=days,
        seed=seed,
        bucket=bucket,
        region=region,
        credentials=credentials,
        latency_ms=latency_ms,
        qps=qps,
        fail_rate=fail_rate,
        drop_rate=drop_rate,
        truncate_rate=truncate_rate,
        malformed_rate=malformed_rate,
        inclusive_bounds=inclusive_bounds,
        host=host,
        port=port,
    )
    emu.start()
    try:
        click.echo(
            f"cijobs emulate: {plural(len(emu.truth()), 'job')} of bucket {emu.bucket} at {emu.url}"
        )
        if exports:
            click.echo("Demo credentials (this server only); to use them in another shell:")
            for line in exports:
                click.echo(f"  {line}")
        start, end = emu.history_start.isoformat(), emu.end.isoformat()
        click.echo(
            f"Try: cijobs fetch --endpoint {emu.url} --bucket {emu.bucket} --region {region} "
            f"--start {start} --end {end} --out jobs.parquet"
        )
        click.echo("Press Ctrl-C to stop.")
        per_tick = 0
        if advance_every is not None:
            per_tick = max(1, round(jobs / (days * 86400.0) * advance_every))
        while True:
            time.sleep(advance_every or 3600.0)
            if advance_every is not None:
                result = emu.advance(finish=0.5, new_jobs=per_tick)
                logger.info(
                    "emulator: finished %s, created %s",
                    plural(len(result.finished), "job"),
                    plural(len(result.created), "job"),
                )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the way to stop the server
        click.echo("cijobs emulate: stopped", err=True)
    finally:
        emu.stop()


# -- cijobs sql / cijobs report -------------------------------------------------------------


@cli.command("sql")
@_dataset_options(
    "The dataset (a directory, s3://bucket/prefix or cos://bucket-appid/prefix) or a single "
    "Parquet file of jobs."
)
@_as_of_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table for reading; csv and json for other programs.",
)
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Run any statement (CREATE, COPY ... TO, ATTACH, INSTALL) with access to every file "
    "and extension [default: queries only, reading the dataset's files only].",
)
@click.argument("query", callback=values.query_text)
def sql_command(
    dataset: str,
    storage_options: dict[str, str] | None,
    as_of: Any,
    fmt: str,
    allow_writes: bool,
    query: str,
) -> None:
    """Run QUERY over the views jobs, streams and outputs (and coverage, runs).

    QUERY may only read, and only the dataset's files, unless --allow-writes is given.

    Example: cijobs sql --dataset jobs_dataset "SELECT tag, count(*) AS jobs FROM jobs GROUP BY
    tag ORDER BY jobs DESC"

    Exit codes: 0 done, 1 the dataset could not be read or the SQL failed or is not a query
    (without --allow-writes), 2 usage error.
    """
    from .query import check_read_only, connect, format_result, read_arrow

    if not allow_writes:
        check_read_only(query)
    with connect(
        dataset, as_of, storage_options=storage_options, read_only=not allow_writes
    ) as con:
        table = read_arrow(con, query)
    click.echo(format_result(table, fmt), nl=False)


@cli.command("report")
@_dataset_options(
    "The dataset (a directory, s3://bucket/prefix or cos://bucket-appid/prefix) or a single "
    "Parquet file of jobs."
)
@_as_of_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (replaced atomically).",
)
@click.option(
    "--since",
    type=values.TIME,
    default=None,
    help="Jobs created from this time: an ISO time with a zone or a span back from now "
    "(7d, 12h) [default: all].",
)
@click.option(
    "--until",
    type=values.TIME,
    default=None,
    help="Jobs created before this time: an ISO time, a span back from now, or now [default: all].",
)
@_tag_option("all")
@click.option("--queue-id", "queue_ids", multiple=True, help="Queue; repeat for several.")
def report_command(
    dataset: str,
    storage_options: dict[str, str] | None,
    as_of: Any,
    out: Path,
    since: datetime | None,
    until: datetime | None,
    tags: tuple[str, ...],
    queue_ids: tuple[str, ...],
) -> None:
    """Write one self-contained HTML report: headline figures, plots and tables.

    Example: cijobs report --dataset jobs_dataset --out report.html --since 7d

    Exit codes: 0 written, 1 the dataset could not be read or the report cannot be written,
    2 usage error (a bad --since, an unknown --tag).
    """
    from .query import connect
    from .report import write_report

    values.check_order(since, until, ("--since", "--until"))
    with connect(dataset, as_of, storage_options=storage_options) as con:
        try:
            path = write_report(
                con,
                out,
                since=since,
                until=until,
                tags=list(tags) or None,
                queue_ids=list(queue_ids) or None,
            )
        except ConfigError as exc:
            if isinstance(exc.__cause__, OSError):  # the file, not an argument: a failure
                raise click.ClickException(str(exc)) from exc
            raise
    click.echo(f"cijobs report: wrote {path}")


@cli.command("demo")
@click.option(
    "--out",
    default="demo_output",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for dataset/ and report.html (an earlier demo there is replaced).",
)
@click.option(
    "--jobs",
    type=click.IntRange(100, 500_000),
    default=20_000,
    show_default=True,
    help="How many jobs the embedded emulator holds.",
)
@click.option("--no-progress", is_flag=True, help="Show no progress bars.")
def demo_command(out: Path, jobs: int, no_progress: bool) -> None:
    """End to end on an embedded emulator: export a week of jobs, let time pass, export
    again, and write an HTML report.

    Needs no credentials and no network: the emulator runs in this process on 127.0.0.1.

    Example: cijobs demo --out demo_output
    """
    import time

    from .demo import run_demo

    started = time.perf_counter()
    result = run_demo(out, jobs=jobs, progress=not no_progress, echo=click.echo)
    dataset = result.dataset
    example = (
        "SELECT tag, count(*) AS jobs, count(*) FILTER (WHERE state = 'Failed') AS failed "
        "FROM jobs GROUP BY tag ORDER BY jobs DESC"
    )
    click.echo(
        f"\ndone in {time.perf_counter() - started:.0f} s\n"
        f"  dataset: {dataset}/  (a Delta Lake table in jobs/: DuckDB, pandas, Polars, Spark)\n"
        f"  report:  {result.report}\n"
        "try next:\n"
        f"  .venv/bin/cijobs status --dataset {dataset}\n"
        f'  .venv/bin/cijobs sql --dataset {dataset} "{example}"'
    )
