"""The ``cijobs`` command: parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success, 1 failure (the service, the network, the dataset), 2 usage error (a bad
option value, missing credentials). Errors print one line on stderr, never a traceback; no
secret is ever taken from a command-line flag.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from . import __version__
from .errors import CIJobsError, ConfigError

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line; exits with 0, 1 or 2."""
    try:
        # standalone_mode=False hands errors to us; --help and --version return their code.
        rv = cli.main(args=argv, prog_name="cijobs", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("cijobs: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except ConfigError as exc:
        click.echo(f"cijobs: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except CIJobsError as exc:
        click.echo(f"cijobs: error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        click.echo("cijobs: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)


# Commands are defined below, one section per command, in the order of `cijobs --help`.


# -- cijobs emulate -------------------------------------------------------------------------


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
    type=click.FloatRange(0, 3660, min_open=True),
    default=7.0,
    show_default=True,
    help="The jobs are created over the last this many days.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated jobs.")
@click.option(
    "--bucket",
    default=None,
    help="Serve only this bucket (the Host must name it) [default: any bucket is served].",
)
@click.option("--region", default="ap-guangzhou", show_default=True, help="Region of the jobs.")
@click.option(
    "--latency-ms",
    type=click.FloatRange(0, 600_000),
    default=0.0,
    show_default=True,
    help="Delay added to every request.",
)
@click.option(
    "--qps",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Requests per second allowed; the excess is answered 503 SlowDown [default: no limit].",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered 500 InternalError.",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of responses whose connection is closed mid-body.",
)
@click.option(
    "--truncate-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of responses with a body cut short.",
)
@click.option(
    "--malformed-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of responses with the documentation's stray </Message> tag.",
)
@click.option(
    "--inclusive-bounds",
    is_flag=True,
    help="Make startCreationTime/endCreationTime inclusive (the service documents exclusive).",
)
@click.option(
    "--advance-every",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Every this many seconds finish half the open jobs and create new ones.",
)
def emulate_command(
    host: str,
    port: int,
    jobs: int,
    days: float,
    seed: int,
    bucket: str | None,
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
    """Serve a local CI endpoint (GET /jobs) with generated jobs until Ctrl-C.

    It verifies signatures with the key in TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY;
    when they are unset it makes a demo key and prints the export lines that select it.
    """
    import os
    import time

    from .config import ENV_SECRET_ID, ENV_SECRET_KEY, ENV_SESSION_TOKEN, Credentials
    from .emulator import Emulator, demo_credentials
    from .emulator.handle import DEFAULT_BUCKET

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
        bucket=bucket or DEFAULT_BUCKET,
        region=region,
        credentials=credentials,
        latency_ms=latency_ms,
        qps=qps,
        fail_rate=fail_rate,
        drop_rate=drop_rate,
        truncate_rate=truncate_rate,
        malformed_rate=malformed_rate,
        inclusive_bounds=inclusive_bounds,
        pin_bucket=bucket is not None,
        host=host,
        port=port,
    )
    emu.start()
    try:
        click.echo(f"cijobs emulate: {len(emu.truth())} jobs of bucket {emu.bucket} at {emu.url}")
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
                logging.getLogger(__name__).info(
                    "emulator: finished %d jobs, created %d",
                    len(result.finished),
                    len(result.created),
                )
    except KeyboardInterrupt:
        click.echo("cijobs emulate: stopped", err=True)
    finally:
        emu.stop()
