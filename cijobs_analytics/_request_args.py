"""Checking and encoding CIClient's arguments, so that nothing invalid is ever sent.

Every check raises :class:`~cijobs_analytics.errors.ConfigError` with a message that names the
fix. Query values are percent-encoded here, once: only ``A-Za-z0-9-_.~`` stay literal, so a
space is ``%20`` (never ``+``), ``+`` is ``%2B`` and ``:`` is ``%3A`` — unambiguous for strict
and form-style decoders alike, and exactly what the signer reads back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from ._times import TimeLike, to_utc, to_wire
from .errors import ConfigError
from .schema import STATES

__all__ = [
    "MAX_JOB_IDS",
    "MAX_PAGE_SIZE",
    "MAX_WORKERS",
    "check_endpoint",
    "check_job_ids",
    "check_name",
    "check_seconds",
    "check_states",
    "check_timeout",
    "check_workers",
    "encode_query",
    "job_ids_path",
    "list_params",
]

#: The most jobs one DescribeMediaJobs page can hold.
MAX_PAGE_SIZE = 100
#: The most job ids one DescribeMediaJob request can name.
MAX_JOB_IDS = 10
#: The most worker threads that may share one client: the CLI's ``--workers`` maximum. The
#: client's connection pool holds this many, so no worker's connection is discarded and reopened.
MAX_WORKERS = 64

_ORDERS = ("Asc", "Desc")
_ALL_STATES = "All"
_QUERY_SAFE = "-_.~"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_.~-]+$")


def encode_query(params: list[tuple[str, str]]) -> str:
    """``name=value&...`` with names and values percent-encoded, in the order given."""
    return "&".join(
        f"{quote(name, safe=_QUERY_SAFE)}={quote(value, safe=_QUERY_SAFE)}"
        for name, value in params
    )


def job_ids_path(job_ids: list[str]) -> str:
    """The DescribeMediaJob path for checked ids: ``/jobs/<id>,<id>,...``."""
    return "/jobs/" + ",".join(quote(job_id, safe=_QUERY_SAFE) for job_id in job_ids)


def check_name(value: object, name: str, example: str) -> str:
    """A bucket or region name that is safe inside a host name.

    Raises:
        ConfigError: not lowercase letters, digits and inner hyphens (1 to 63 of them).
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(
            f"{name} must be lowercase letters, digits and hyphens (e.g. {example!r}), "
            f"got {value!r}"
        )
    return value


def check_endpoint(endpoint: object) -> str:
    """The base URL ``scheme://host[:port]`` of an endpoint given by the user.

    Raises:
        ConfigError: not http(s), no host, a bad port, or a path, query, fragment or user.
    """
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            f"endpoint must be scheme://host[:port] (e.g. 'http://127.0.0.1:8089'), "
            f"got {endpoint!r}"
        )
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError:
        raise ConfigError(f"endpoint has an invalid port: {endpoint!r}") from None
    return f"{parts.scheme}://{parts.netloc}"


def check_seconds(value: object, name: str) -> float:
    """A number of seconds >= 0, as a float.

    Raises:
        ConfigError: not a number (booleans included), negative or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def check_timeout(timeout: object) -> tuple[float, float]:
    """``(connect, read)`` seconds from one number or a pair.

    Raises:
        ConfigError: not one or two positive numbers.
    """
    pair = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(pair) != 2:
        raise ConfigError(f"timeout must be seconds or (connect, read) seconds, got {timeout!r}")
    connect, read = (check_seconds(part, "timeout") for part in pair)
    if connect <= 0 or read <= 0:
        raise ConfigError(f"timeout must be positive, got {timeout!r}")
    return connect, read


def _optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string or None, got {value!r}")
    return value


def check_states(states: str | Iterable[str] | None) -> list[str] | None:
    """The job states to filter on, for both ``list_jobs`` and the fetch engine.

    Args:
        states: state names from ``schema.STATES`` or ``"All"``, as a list or one
            comma-separated string (blanks around a name are ignored); None for every state.

    Returns:
        The names in their first order, each once; None when every state is wanted (None
        given, or ``"All"`` among the names).

    Raises:
        ConfigError: no names, a name that is not a string or is blank, or an unknown state.
    """
    if states is None:
        return None
    items = states.split(",") if isinstance(states, str) else list(states)
    choices = ", ".join((_ALL_STATES, *STATES))
    if not items:
        raise ConfigError(f"states must be among {choices} (pass None for every state), got []")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                f"states must be non-empty names among {choices}, got {item!r} in {states!r}"
            )
        if item.strip() not in names:
            names.append(item.strip())
    unknown = [name for name in names if name not in STATES and name != _ALL_STATES]
    if unknown:
        raise ConfigError(
            f"unknown state(s) {', '.join(map(repr, unknown))}; states must be among {choices}"
        )
    return None if _ALL_STATES in names else names


def list_params(
    tag: object,
    queue_id: object,
    states: str | Iterable[str] | None,
    start: TimeLike | None,
    end: TimeLike | None,
    order: object,
    size: object,
    next_token: object,
    workflow_id: object,
    input_object: object,
) -> list[tuple[str, str]]:
    """Check the arguments of ``list_jobs`` and return the query parameters, in sending order.

    Raises:
        ConfigError: an argument is invalid; the message says which and how to fix it.
    """
    if not isinstance(tag, str) or not tag.strip():
        raise ConfigError(f"tag must be a job type such as 'Transcode', got {tag!r}")
    params = [("tag", tag)]
    queue = _optional_text(queue_id, "queue_id")
    if queue is not None:
        params.append(("queueId", queue))
    if states is not None:
        params.append(("states", ",".join(check_states(states) or [_ALL_STATES])))
    lower = None if start is None else to_wire(to_utc(start, name="start"))
    upper = None if end is None else to_wire(to_utc(end, name="end"))
    # Compare on the wire's whole seconds: 10:00:00.2 .. 10:00:00.9 is an empty range there.
    if lower is not None and upper is not None and not lower < upper:
        raise ConfigError(f"start must be before end (to the second): start={lower}, end={upper}")
    if lower is not None:
        params.append(("startCreationTime", lower))
    if upper is not None:
        params.append(("endCreationTime", upper))
    if order not in _ORDERS:
        raise ConfigError(f"order must be 'Asc' or 'Desc', got {order!r}")
    params.append(("orderByTime", str(order)))
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ConfigError(f"size must be an integer from 1 to {MAX_PAGE_SIZE}, got {size!r}")
    params.append(("size", str(size)))
    if next_token is not None and not isinstance(next_token, str):
        raise ConfigError(f"next_token must be the string a page returned, got {next_token!r}")
    if next_token:
        params.append(("nextToken", next_token))
    workflow = _optional_text(workflow_id, "workflow_id")
    if workflow is not None:
        params.append(("workflowId", workflow))
    obj = _optional_text(input_object, "input_object")
    if obj is not None:
        params.append(("inputObject", obj))
    return params


def check_job_ids(job_ids: Iterable[str]) -> list[str]:
    """The ids to look up, each once, in the order given.

    Raises:
        ConfigError: one string instead of a list, or an id that is empty or holds a comma, a
            slash, a blank or another character job ids never have.
    """
    if isinstance(job_ids, str | bytes):
        raise ConfigError("job_ids must be a list of ids, not one string")
    ids = list(job_ids)
    for job_id in ids:
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            raise ConfigError(
                f"job ids are letters, digits, '-', '_', '.' or '~' with no comma, got {job_id!r}"
            )
    return list(dict.fromkeys(ids))


def check_workers(workers: object) -> int:
    """Check a worker count: an integer from 1 to :data:`MAX_WORKERS`.

    Raises:
        ConfigError: anything else, naming the range.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers must be an integer from 1 to {MAX_WORKERS}, got {workers!r}")
    return workers
