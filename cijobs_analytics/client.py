"""CIClient: signed DescribeMediaJobs requests with timeouts, retries and typed errors.

One :class:`CIClient` holds one pooled ``requests.Session`` and is meant to be shared by worker
threads. Each call checks its arguments before anything is sent, signs every attempt afresh
(:class:`~cijobs_analytics.auth.QSignAuth`), and retries what may succeed on a second try:

* retried up to ``max_retries`` times, with exponential back-off and full jitter: 5xx answers,
  timeouts, refused or reset connections, incomplete reads, and bodies that do not parse (a
  truncated 200 is a transport fault in disguise);
* retried apart from that budget: throttling (``SlowDown`` / 429 / 503). The shared rate
  limiter slows down, the request waits a jittered back-off (and at least any ``Retry-After``,
  in seconds or as an HTTP date) and goes again, until throttling has persisted for
  ``throttle_timeout`` seconds with no request of the client getting through; the error then
  says to pass a lower ``--qps`` or fewer ``--workers``;
* never retried: 400 (the arguments), 401/403 (the credentials), other 4xx and redirects.

Error bodies become :mod:`~cijobs_analytics.errors` exceptions carrying ``code``, ``status``,
``error_message`` and ``request_id``. Neither messages nor log lines ever hold the secret key,
the session token or the ``Authorization`` header: error text from the service is scrubbed of
them before it is kept.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import requests
from requests.adapters import HTTPAdapter

from ._http_errors import (
    api_error,
    request_secrets,
    retry_after,
    send_error,
    short_body_error,
    transport_error,
)
from ._request_args import (
    MAX_JOB_IDS,
    MAX_PAGE_SIZE,
    MAX_WORKERS,
    check_endpoint,
    check_job_ids,
    check_name,
    check_seconds,
    check_timeout,
    encode_query,
    job_ids_path,
    list_params,
)
from ._times import TimeLike
from .auth import QSignAuth
from .config import Credentials
from .errors import APIError, CIJobsError, ConfigError, ThrottledError
from .flatten import parse_job_lookup, parse_page
from .schema import JOBS_SCHEMA

__all__ = [
    "DEFAULT_THROTTLE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "MAX_JOB_IDS",
    "MAX_PAGE_SIZE",
    "MAX_WORKERS",
    "CIClient",
    "ClientStats",
    "JobLookup",
    "Page",
    "RateLimiter",
]

logger = logging.getLogger(__name__)

#: (connect, read) seconds; the connect value sits just above a multiple of the TCP retransmit.
DEFAULT_TIMEOUT = (3.05, 30.0)

#: Seconds of unbroken throttling (no request of the client getting through) before a
#: request gives up with :class:`~cijobs_analytics.errors.ThrottledError`.
DEFAULT_THROTTLE_TIMEOUT = 300.0

try:
    _VERSION = version("cijobs_analytics")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    _VERSION = "0+unknown"

DEFAULT_USER_AGENT = f"cijobs-analytics/{_VERSION}"

T = TypeVar("T")


class RateLimiter(Protocol):
    """What :class:`CIClient` needs from a rate limiter shared by several callers."""

    def acquire(self) -> None:
        """Block until one more HTTP request may be sent (called before every attempt)."""

    def throttled(self, retry_after: float | None = None) -> None:
        """Note that the service answered ``SlowDown``, 429 or 503.

        ``retry_after`` (seconds) is passed only when the answer carried a ``Retry-After``, so
        a limiter written as ``throttled(self)`` keeps working with services that send none.
        """


@dataclass(frozen=True)
class Page:
    """One page of DescribeMediaJobs.

    Attributes:
        table: the jobs of the page in ``JOBS_SCHEMA``, with ``bucket``, ``region`` and
            ``fetched_at`` filled.
        next_token: the token for the next page; ``None`` when the service gave none.
        request_id: the ``x-ci-request-id`` of the answer.
        recovered: the body needed the stray ``</Message>`` repair to parse.
        attempts: HTTP requests made for this page, retries included (at least 1).
    """

    table: pa.Table
    next_token: str | None
    request_id: str | None
    recovered: bool
    attempts: int


@dataclass(frozen=True)
class JobLookup:
    """The answer of DescribeMediaJob for a list of job ids.

    Attributes:
        table: the jobs found, in ``JOBS_SCHEMA``.
        missing: the ids the service listed under ``NonExistJobIds``.
        attempts: HTTP requests made, retries included (0 for an empty id list).
    """

    table: pa.Table
    missing: list[str]
    attempts: int


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's counters since it was made.

    Attributes:
        requests: HTTP requests sent, retries included.
        retries: requests that repeated an earlier failed one.
        throttled: answers that asked to slow down (``SlowDown``, 429, 503).
        recovered_pages: pages that needed the stray ``</Message>`` repair.
        errors_by_code: failed attempts by error code (``SlowDown``, ``TransportError``, ...).
    """

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    recovered_pages: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Answer:
    """A complete 2xx answer."""

    body: bytes
    request_id: str | None
    fetched_at: datetime


class _AttemptError(Exception):
    """One failed attempt: the error to raise, what caused it, and any Retry-After."""

    def __init__(
        self,
        error: CIJobsError,
        cause: BaseException | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause
        self.retry_after = retry_after


class CIClient:
    """A client for the job-listing APIs of one CI bucket.

    Args:
        bucket: the bucket, ``name-appid`` (``examplebucket-1250000000``).
        region: the region (``ap-guangzhou``).
        credentials: the API key that signs every request.
        endpoint: ``scheme://host[:port]`` to connect to instead of
            ``https://<bucket>.ci.<region>.myqcloud.com`` (the emulator, a private endpoint).
            Requests still carry and sign ``Host: <bucket>.ci.<region>.myqcloud.com``.
        timeout: seconds to wait, one number or ``(connect, read)``.
        max_retries: how many times a request that failed (5xx, network, unparsable body) is
            tried again. Throttling answers do not count against it.
        backoff: the first back-off ceiling in seconds; it doubles with every retry.
        max_backoff: the highest back-off ceiling in seconds.
        throttle_timeout: seconds a request keeps retrying throttling answers (``SlowDown``,
            429, 503) while no request of this client gets through; then it raises
            :class:`~cijobs_analytics.errors.ThrottledError`. 0 gives up at the first one.
        clock: returns epoch seconds; signs requests and stamps ``fetched_at``.
        user_agent: the ``User-Agent`` header.

    Raises:
        ConfigError: an argument is invalid; the message names the fix.

    Example:
        >>> client = CIClient("examplebucket-1250000000", "ap-guangzhou",
        ...                   Credentials.from_env())  # doctest: +SKIP
        >>> page = client.list_jobs("Transcode", size=100)  # doctest: +SKIP
        >>> page.table.num_rows, page.next_token  # doctest: +SKIP
        (100, '225508')
    """

    def __init__(
        self,
        bucket: str,
        region: str,
        credentials: Credentials,
        endpoint: str | None = None,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 20.0,
        throttle_timeout: float = DEFAULT_THROTTLE_TIMEOUT,
        clock: Callable[[], float] = time.time,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.bucket = check_name(bucket, "bucket", "examplebucket-1250000000")
        self.region = check_name(region, "region", "ap-guangzhou")
        if not isinstance(credentials, Credentials):
            raise ConfigError(
                "credentials must be a Credentials (e.g. Credentials.from_env()), "
                f"got {type(credentials).__name__}"
            )
        self.host = f"{self.bucket}.ci.{self.region}.myqcloud.com"
        self.base_url = f"https://{self.host}" if endpoint is None else check_endpoint(endpoint)
        self._netloc = urlsplit(self.base_url).netloc
        self.timeout = check_timeout(timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.backoff = check_seconds(backoff, "backoff")
        self.max_backoff = check_seconds(max_backoff, "max_backoff")
        self.throttle_timeout = check_seconds(throttle_timeout, "throttle_timeout")
        self._clock = clock
        self._credentials = credentials
        self._secrets = (credentials.secret_key, credentials.token)
        # With an endpoint the request goes elsewhere but must still name (and sign) the CI host.
        self._auth = QSignAuth(
            credentials, clock=clock, sign_host=None if endpoint is None else self.host
        )
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=MAX_WORKERS, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"User-Agent": user_agent, "Accept": "application/xml"})
        self._random = random.Random()
        self._lock = threading.Lock()
        self._requests = self._retries = self._throttled = self._recovered = 0
        self._errors: Counter[str] = Counter()
        # time.monotonic() of the latest answer that got through, for throttle_timeout.
        self._last_success: float | None = None

    def __repr__(self) -> str:
        return f"CIClient(bucket={self.bucket!r}, region={self.region!r}, url={self.base_url!r})"

    def __enter__(self) -> CIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    @property
    def credentials(self) -> Credentials:
        """The credentials the client signs with (a ``cos://`` dataset reuses them)."""
        return self._credentials

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the counters (requests, retries, throttling, errors by code)."""
        with self._lock:
            return ClientStats(
                requests=self._requests,
                retries=self._retries,
                throttled=self._throttled,
                recovered_pages=self._recovered,
                errors_by_code=dict(self._errors),
            )

    def list_jobs(
        self,
        tag: str,
        queue_id: str | None = None,
        states: str | Iterable[str] | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        order: str = "Asc",
        size: int = MAX_PAGE_SIZE,
        next_token: str | None = None,
        workflow_id: str | None = None,
        input_object: str | None = None,
        *,
        limiter: RateLimiter | None = None,
    ) -> Page:
        """Fetch one page of DescribeMediaJobs (``GET /jobs``).

        Args:
            tag: the job type (``Transcode``, ``Snapshot``, ...); required by the service.
            queue_id: only jobs of this queue.
            states: only jobs in these states: names from ``schema.STATES`` or ``"All"``, as
                a list or one comma-separated string.
            start: creation-time lower bound, an aware datetime or ISO string; sent as given
                (to the second, in ``+0800``).
            end: creation-time upper bound, likewise.
            order: ``"Asc"`` or ``"Desc"`` by creation time.
            size: jobs per page, 1 to 100.
            next_token: the ``next_token`` of the previous page; ``None`` for the first page.
            workflow_id: only jobs started by this workflow.
            input_object: only jobs whose input object key is exactly this.
            limiter: asked before every attempt, told about throttling.

        Returns:
            The page: its table, next token, request id, whether it was repaired, attempts.

        Raises:
            ConfigError: an argument is invalid, or a header could not be sent (nothing was).
            AuthError: the service refused the credentials or the signature.
            InvalidArgumentError: the service refused a parameter.
            ThrottledError: throttling persisted for ``throttle_timeout`` seconds.
            ServerError, TransportError, ResponseParseError: the fault persisted through
                every retry.
        """
        params = list_params(
            tag, queue_id, states, start, end, order, size, next_token, workflow_id, input_object
        )

        def parse(answer: _Answer) -> Page:
            parsed = parse_page(
                answer.body,
                bucket=self.bucket,
                region=self.region,
                fetched_at=answer.fetched_at,
                request_id=answer.request_id,
            )
            return Page(parsed.table, parsed.next_token, answer.request_id, parsed.recovered, 0)

        page, attempts = self._call("/jobs", params, parse, limiter)
        if page.recovered:
            self._note_recovered(page.request_id)
        return Page(page.table, page.next_token, page.request_id, page.recovered, attempts)

    def get_jobs(self, job_ids: Iterable[str], *, limiter: RateLimiter | None = None) -> JobLookup:
        """Look jobs up by id with DescribeMediaJob (``GET /jobs/<id>,<id>,...``).

        Ids are sent ten to a request; more ids make several requests. Repeated ids are
        asked for once.

        Args:
            job_ids: the job ids (``j`` + 32 hex digits, usually).
            limiter: asked before every attempt, told about throttling.

        Returns:
            The jobs found, the ids the service does not know, and the attempts made.

        Raises:
            ConfigError: ``job_ids`` is a string, or an id is empty or holds a comma, a slash
                or a blank, or a header could not be sent (nothing was sent).
            AuthError, InvalidArgumentError, ThrottledError, ServerError, TransportError,
            ResponseParseError: as for :meth:`list_jobs`.
        """
        ids = check_job_ids(job_ids)
        tables: list[pa.Table] = []
        missing: list[str] = []
        attempts = 0
        for first in range(0, len(ids), MAX_JOB_IDS):
            chunk = ids[first : first + MAX_JOB_IDS]
            path = job_ids_path(chunk)

            def parse(answer: _Answer) -> tuple[pa.Table, list[str]]:
                return parse_job_lookup(
                    answer.body,
                    bucket=self.bucket,
                    region=self.region,
                    fetched_at=answer.fetched_at,
                    request_id=answer.request_id,
                )

            (table, unknown), made = self._call(path, [], parse, limiter)
            tables.append(table)
            missing.extend(unknown)
            attempts += made
        table = pa.concat_tables(tables) if tables else JOBS_SCHEMA.empty_table()
        return JobLookup(table=table, missing=missing, attempts=attempts)

    # -- sending -------------------------------------------------------------------------------

    def _call(
        self,
        path: str,
        params: list[tuple[str, str]],
        parse: Callable[[_Answer], T],
        limiter: RateLimiter | None,
    ) -> tuple[T, int]:
        """Send until an attempt succeeds or fails for good; returns (result, attempts).

        Throttling answers are retried apart from ``max_retries``, until throttling has
        persisted for ``throttle_timeout``; other transient faults use the budget up.
        """
        url = self.base_url + path + (f"?{encode_query(params)}" if params else "")
        attempts = failures = throttles = 0
        throttled_since: float | None = None
        while True:
            if limiter is not None:
                limiter.acquire()
            with self._lock:
                self._requests += 1
                if attempts:
                    self._retries += 1
            attempts += 1
            try:
                answer = self._send(url)
                try:
                    result = parse(answer)
                except CIJobsError as exc:
                    raise _AttemptError(exc) from None
            except _AttemptError as failed:
                error = failed.error
                if isinstance(error, ThrottledError):
                    if throttled_since is None:
                        throttled_since = time.monotonic()
                    delay = self._on_throttled(failed, error, throttles, throttled_since, limiter)
                    throttles += 1
                    level = logging.DEBUG
                else:
                    self._note_error(error, limiter, None)
                    if not error.transient or failures >= self.max_retries:
                        raise error from failed.cause
                    delay = self._delay(failures, failed.retry_after)
                    failures += 1
                    level = logging.INFO
                logger.log(
                    level,
                    "GET %s failed (%s); retry in %.2fs (%d failed, %d throttled so far)",
                    path,
                    error,
                    delay,
                    failures,
                    throttles,
                )
                time.sleep(delay)
                continue
            with self._lock:
                self._last_success = time.monotonic()
            return result, attempts

    def _on_throttled(
        self,
        failed: _AttemptError,
        error: ThrottledError,
        earlier: int,
        since: float,
        limiter: RateLimiter | None,
    ) -> float:
        """Tell the limiter; return the seconds to wait before the retry.

        The throttling counts from ``since`` (this request's first throttling answer) or from
        the latest answer of the client that got through, whichever is later, so a run gives
        up only when nothing at all has got through for ``throttle_timeout`` seconds.

        Raises:
            ThrottledError: the throttling has persisted for ``throttle_timeout``; the message
                says what to change.
        """
        now = time.monotonic()
        with self._lock:
            progress = self._last_success
        began = since if progress is None else max(since, progress)
        left = self.throttle_timeout - (now - began)
        asked = failed.retry_after
        self._note_error(error, limiter, None if asked is None else min(asked, max(0.0, left)))
        if left <= 0:
            raise self._throttle_timeout_error(error, now - began) from failed.cause
        # Full jitter keeps workers throttled together from coming back together.
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(earlier, 32))
        delay = self._random.uniform(0.0, ceiling)
        if asked is not None:
            delay = max(delay, asked)
        return min(delay, left)

    def _throttle_timeout_error(self, error: ThrottledError, spell: float) -> ThrottledError:
        """The error to raise when throttling outlasted ``throttle_timeout``."""
        advice = (
            f"still throttled after {spell:.0f} s with no request getting through "
            f"(throttle_timeout {self.throttle_timeout:g} s): the service allows fewer "
            "requests than this run keeps sending; pass --qps below the service's limit or "
            "fewer --workers (qps= and workers= in Python), or a longer throttle timeout"
        )
        said = error.error_message.rstrip(" .")
        message = f"{said}; {advice}" if said else advice
        return ThrottledError(error.code, error.status, message, error.request_id)

    def _send(self, url: str) -> _Answer:
        """One attempt: a complete 2xx answer, or :class:`_AttemptError`."""
        started = time.perf_counter()
        try:
            response = self._session.get(
                url, auth=self._auth, timeout=self.timeout, allow_redirects=False
            )
        except requests.exceptions.InvalidHeader as exc:
            # requests' own header check quotes the value, like http.client's below.
            raise _AttemptError(send_error(exc, self._netloc, self._secrets)) from None
        except requests.exceptions.RequestException as exc:
            error = transport_error(exc, self._netloc, self.timeout)
            raise _AttemptError(error, exc) from None
        except (ValueError, http.client.HTTPException) as exc:
            # http.client raises these past requests and quotes the header it refused (the
            # token, the Authorization header): the cause is dropped, the text scrubbed.
            raise _AttemptError(send_error(exc, self._netloc, self._secrets)) from None
        body = response.content
        request_id = response.headers.get("x-ci-request-id")
        logger.debug(
            "GET %s -> %d, %d bytes in %.3fs [request id %s]",
            urlsplit(url).path,
            response.status_code,
            len(body),
            time.perf_counter() - started,
            request_id,
        )
        short = short_body_error(response.headers, body)
        if short is not None:
            raise _AttemptError(short)
        if not 200 <= response.status_code < 300:
            sent = str(response.request.headers.get("Authorization", ""))
            secrets = request_secrets(sent, self._credentials.secret_key, self._credentials.token)
            raise _AttemptError(
                api_error(response.status_code, body, request_id, secrets),
                retry_after=_retry_after(response.headers, self._clock()),
            )
        return _Answer(body, request_id, datetime.fromtimestamp(self._clock(), UTC))

    def _delay(self, attempt: int, asked: float | None) -> float:
        """Full jitter, uniform in [0, min(max_backoff, backoff * 2**attempt)], but no sooner
        than a Retry-After the server ``asked`` for (itself capped at ``max_backoff``)."""
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        delay = self._random.uniform(0.0, ceiling)
        if asked is not None:
            delay = max(delay, min(asked, self.max_backoff))
        return delay

    def _note_error(
        self, error: CIJobsError, limiter: RateLimiter | None, retry_after: float | None
    ) -> None:
        code = error.code if isinstance(error, APIError) else type(error).__name__
        throttled = isinstance(error, ThrottledError)
        with self._lock:
            self._errors[code] += 1
            self._throttled += int(throttled)
        if throttled and limiter is not None:
            if retry_after is None:
                limiter.throttled()
            else:
                limiter.throttled(retry_after)

    def _note_recovered(self, request_id: str | None) -> None:
        # The parser says so once, in words (flatten.py); here it is only counted.
        with self._lock:
            self._recovered += 1


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for: a number, or an HTTP date.

    A date is measured against the answer's own ``Date`` header when it has one (so a skewed
    local clock does not matter), else against ``now`` (epoch seconds). None when the header
    is absent or unreadable; a date in the past is 0.
    """
    value = headers.get("Retry-After")
    seconds = retry_after(value)
    if value is None or seconds is not None:
        return seconds
    until = _http_date(value)
    if until is None:
        return None
    sent = _http_date(headers.get("Date"))
    return max(0.0, until - (now if sent is None else sent))


def _http_date(value: str | None) -> float | None:
    """Epoch seconds of an HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``), or None."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322, returned naive
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
