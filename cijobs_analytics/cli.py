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
