"""cijobs_analytics: Tencent Cloud Infinite media-job histories as analysis-ready data.

Pages through ``GET /jobs`` (DescribeMediaJobs), flattens each XML page into a typed Arrow
table, keeps an incremental Delta Lake dataset current, and answers throughput and failure
questions with DuckDB and matplotlib.
"""

import importlib as _importlib
import importlib.metadata as _metadata
import os as _os
import typing as _typing

# deltalake's Rust side allocates with its own jemalloc, which by default keeps freed pages for
# seconds: each 20,000-row commit of an export left ~50 MiB behind, and a 200,000-job export
# peaked at 1 GiB. Returning them at once halves that; this only takes effect when cijobs
# imports deltalake first, and a value the user set is kept.
_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

from .client import CIClient, ClientStats, JobLookup, Page
from .config import Credentials
from .errors import (
    APIError,
    AuthError,
    CIJobsError,
    ConfigError,
    InvalidArgumentError,
    QueryError,
    ResponseParseError,
    ServerError,
    StoreError,
    ThrottledError,
    TransportError,
)
from .fetch import FetchStats, fetch_jobs, iter_jobs
from .flatten import parse_pages, parse_response
from .schema import JOBS_SCHEMA, OUTPUTS_SCHEMA, STREAMS_SCHEMA, TAGS
from .store import DatasetStatus, ExportResult, export, read_status

if _typing.TYPE_CHECKING:
    from . import plots, reports
    from .query import connect

# DuckDB and matplotlib load on first use, so `import cijobs_analytics` (and every
# `cijobs` command that needs none of them) stays fast.
_LAZY = {"connect": ("query", "connect"), "plots": ("plots", None), "reports": ("reports", None)}


def __getattr__(name: str) -> _typing.Any:
    """Import ``connect``, ``plots`` and ``reports`` when first used."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = _importlib.import_module(f"{__name__}.{module_name}")
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value
    return value


try:
    __version__ = _metadata.version("cijobs_analytics")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "JOBS_SCHEMA",
    "OUTPUTS_SCHEMA",
    "STREAMS_SCHEMA",
    "TAGS",
    "APIError",
    "AuthError",
    "CIClient",
    "CIJobsError",
    "ClientStats",
    "ConfigError",
    "Credentials",
    "DatasetStatus",
    "ExportResult",
    "FetchStats",
    "InvalidArgumentError",
    "JobLookup",
    "Page",
    "QueryError",
    "ResponseParseError",
    "ServerError",
    "StoreError",
    "ThrottledError",
    "TransportError",
    "__version__",
    "connect",
    "export",
    "fetch_jobs",
    "iter_jobs",
    "parse_pages",
    "parse_response",
    "plots",
    "read_status",
    "reports",
]
