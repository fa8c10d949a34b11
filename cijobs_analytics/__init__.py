"""cijobs_analytics: Tencent Cloud Infinite media-job histories as analysis-ready data.

Pages through ``GET /jobs`` (DescribeMediaJobs), flattens each XML page into a typed Arrow
table, keeps an incremental Parquet dataset current, and answers throughput and failure
questions with DuckDB and matplotlib.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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
from .schema import JOBS_SCHEMA, OUTPUTS_SCHEMA, STREAMS_SCHEMA, TAGS

try:
    __version__ = version("cijobs_analytics")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "JOBS_SCHEMA",
    "OUTPUTS_SCHEMA",
    "STREAMS_SCHEMA",
    "TAGS",
    "APIError",
    "AuthError",
    "CIJobsError",
    "ConfigError",
    "Credentials",
    "InvalidArgumentError",
    "QueryError",
    "ResponseParseError",
    "ServerError",
    "StoreError",
    "ThrottledError",
    "TransportError",
    "__version__",
]
