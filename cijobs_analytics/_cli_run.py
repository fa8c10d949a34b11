"""How a ``cijobs`` run ends: exit codes, one-line errors, interrupts and logging.

Exit codes: 0 success, 1 failure (the service, the network, the dataset, an output that cannot
be written), 2 usage error (a bad option value, missing credentials), 130 interrupted by Ctrl-C
and 143 stopped by SIGTERM. :func:`exit_code` prints every error as one line on stderr, never a
traceback; :func:`stop_on_sigterm` makes SIGTERM stop a command the way Ctrl-C does.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from .errors import CIJobsError, ConfigError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Terminated",
    "exit_code",
    "interrupted",
    "start_logging",
    "stop_logging",
    "stop_on_sigterm",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: 128 + the signal number, as a shell reports a process a signal ended.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM

logger = logging.getLogger(__name__)

# click >= 8.2 raises this for a bare `cijobs`: its message is the help, shown as it is.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd stop, ``timeout``, ``kill``), raised in the main thread so that the
    command stops the way Ctrl-C stops it: an export keeps and records what it fetched."""


def exit_code(command: Callable[[], Any]) -> int:
    """Run ``command`` (click's ``main`` in non-standalone mode) and return the exit code,
    turning every error into its one-line message on stderr."""
    try:
        rv = command()
    except click.exceptions.Abort as exc:  # interrupted while click parsed the arguments
        return interrupted(exc.__cause__)
    except KeyboardInterrupt as exc:
        return interrupted(exc)
    except _NO_ARGS_IS_HELP as exc:
        exc.show()
        return EXIT_USAGE
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "cijobs"
        _error(f"{exc.format_message().rstrip('.')} (see '{where} -h')")
        return EXIT_USAGE
    except click.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except CIJobsError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_FAILURE
    except Exception as exc:  # the last line of the one-line contract: a bug, not a traceback
        logger.debug("internal error", exc_info=True)
        _error(
            f"{type(exc).__name__}: {exc} (a bug; please report it with the output of "
            "--log-level debug)",
            prefix="cijobs: internal error: ",
        )
        return EXIT_FAILURE
    return rv if isinstance(rv, int) else EXIT_OK


def _error(message: str, prefix: str = "cijobs: error: ") -> None:
    # A value quoted in a message may hold a line break; the message stays one line.
    click.echo(prefix + " ".join(message.splitlines()), err=True)


def interrupted(exc: BaseException | None) -> int:
    """Say how the command was stopped; returns the exit code a shell gives that signal."""
    if isinstance(exc, Terminated):
        click.echo("cijobs: stopped by SIGTERM", err=True)
        return EXIT_TERMINATED
    # At a terminal the message starts on a new line, after the ^C the terminal echoed.
    lead = "\n" if sys.stderr.isatty() else ""
    click.echo(f"{lead}cijobs: interrupted", err=True)
    return EXIT_INTERRUPTED


def stop_on_sigterm() -> Callable[[], None]:
    """Turn the first SIGTERM into :class:`Terminated`; returns the undo.

    A signal handler can only be set in the main thread; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # A second SIGTERM ends the process at once, as it would without this handler.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    return restore


# -- logging ---------------------------------------------------------------------------------

_log_handlers: list[tuple[logging.Handler, int]] = []


def start_logging(level: str) -> None:
    """Log on stderr at ``level``, leaving out what the command prints on stdout itself."""
    stop_logging()
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_not_printed)
    _log_handlers.append((handler, root.level))
    root.addHandler(handler)
    root.setLevel(level.upper())


def stop_logging() -> None:
    """Remove the handler :func:`start_logging` added and put the root level back."""
    root = logging.getLogger()
    while _log_handlers:
        handler, level = _log_handlers.pop()
        root.removeHandler(handler)
        root.setLevel(level)


def _not_printed(record: logging.LogRecord) -> bool:
    """False for the export's summary, which the library logs and ``cijobs export`` prints."""
    if record.name != f"{__package__}.store" or not isinstance(record.args, tuple):
        return True
    from .store import ExportResult

    return not any(isinstance(arg, ExportResult) for arg in record.args)
