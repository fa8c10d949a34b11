"""The exception tree of cijobs_analytics.

Every error the package raises on purpose derives from :class:`CIJobsError`::

    CIJobsError
    ├── ConfigError (ValueError)        bad settings or arguments, missing credentials
    ├── APIError                        the service answered with an <Error> body
    │   ├── AuthError                   401/403: signature, key, expiry, permission
    │   ├── InvalidArgumentError        400: a parameter the service refused
    │   ├── ThrottledError              SlowDown / 429 / 503          (transient)
    │   └── ServerError                 5xx                           (transient)
    ├── TransportError (OSError)        timeouts, resets, incomplete reads (transient)
    ├── ResponseParseError              a body that is not a DescribeMediaJobs page (transient)
    ├── StoreError                      the Delta dataset: lock held, foreign or lost files
    └── QueryError                      DuckDB views and reports: bad arguments, failed SQL

Retry logic keys on the ``transient`` attribute, never on message text. Messages are built
from structured fields and never contain a secret key, a session token or an ``Authorization``
header.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthError",
    "CIJobsError",
    "ConfigError",
    "InvalidArgumentError",
    "QueryError",
    "ResponseParseError",
    "ServerError",
    "StoreError",
    "ThrottledError",
    "TransportError",
]


class CIJobsError(Exception):
    """Root of every error raised by cijobs_analytics."""

    #: Whether trying the same request again may succeed.
    transient: bool = False


class ConfigError(CIJobsError, ValueError):
    """A setting or argument is invalid, or a required credential is missing."""


class APIError(CIJobsError):
    """The service answered with an error body.

    Attributes:
        code: the ``<Code>`` of the error body (``"InvalidArgument"``, ``"SlowDown"``, ...).
        status: the HTTP status.
        request_id: the ``x-ci-request-id`` of the response, when the service sent one.
        error_message: the ``<Message>`` of the error body.
    """

    def __init__(
        self,
        code: str,
        status: int,
        error_message: str = "",
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.status = status
        self.error_message = error_message
        self.request_id = request_id
        text = f"{code} (HTTP {status})"
        if error_message:
            text += f": {error_message}"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.code, self.status, self.error_message, self.request_id))


class AuthError(APIError):
    """The service refused the credentials or the signature (HTTP 401/403)."""


class InvalidArgumentError(APIError):
    """The service refused a request parameter (HTTP 400)."""


class ThrottledError(APIError):
    """The service asked the client to slow down (``SlowDown``, HTTP 429 or 503)."""

    transient = True


class ServerError(APIError):
    """The service failed internally (HTTP 5xx)."""

    transient = True


class TransportError(CIJobsError, OSError):
    """The request or its response was lost on the way: timeout, reset, incomplete body."""

    transient = True


class ResponseParseError(CIJobsError):
    """A response body is not a well-formed DescribeMediaJobs page.

    Attributes:
        reason: what is wrong with the body.
        head: the first bytes of the body, for the message and the logs; None when the error
            is not about one body (a service whose paging never ends).
        request_id: the request id of the response, when known.
    """

    #: A truncated or garbled body is usually a transport fault in disguise.
    transient = True

    HEAD_BYTES = 120

    def __init__(
        self, reason: str, body: bytes | None = None, request_id: str | None = None
    ) -> None:
        self.reason = reason
        self.head = None if body is None else bytes(body[: self.HEAD_BYTES])
        self.request_id = request_id
        text = reason
        if request_id:
            text += f" [request id {request_id}]"
        if self.head is not None:  # None: the error is not about one body's bytes
            text += f"; body starts {self.head!r}" if self.head else "; body is empty"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, self.head, self.request_id))


class StoreError(CIJobsError):
    """The dataset (its Delta tables, ledgers or lock) cannot be read or written as asked."""


class QueryError(CIJobsError, ValueError):
    """A query or report was given invalid arguments, or its SQL failed."""
