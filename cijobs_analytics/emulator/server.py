"""The emulator's HTTP side: ``GET /jobs`` and ``GET /jobs/<id>,...`` with signatures and faults.

A :class:`http.server.ThreadingHTTPServer` (daemon threads, HTTP/1.1 keep-alive, Nagle off)
answers like the reference says the service does: ``Server: tencent-ci`` and
``x-ci-request-id`` on every response, ``x-ci-trace-id`` on errors, ``application/xml`` bodies,
``<Error>`` bodies without ``<Resource>`` (§5.1/§9.4).

Each request goes through, in order: the latency sleep (a sleep in the request's own thread,
so other connections are not held up), the QPS token bucket (503 ``SlowDown``), the signature
(401), the Host (400 ``InvalidHost`` unless it names the emulator's bucket and region), the
parameters (400 ``InvalidArgument``), and then, for an answer that would succeed, the injected
faults: 500 ``InternalError``, a dropped connection (headers and part of the body, then the
socket is closed), a truncated body (200 with a ``Content-Length`` that matches the cut body),
or the seed document's stray ``</Message>`` in place of ``<Message/>``.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from urllib.parse import parse_qsl, unquote, urlsplit

from ..config import Credentials
from ..errors import ConfigError
from ._signature import SignatureError, verify_request
from .render import escape
from .store import InvalidQueryError, JobStore, parse_list_query

__all__ = ["MAX_LOOKUP_IDS", "EmulatorServer", "EmulatorStats", "Faults"]

logger = logging.getLogger(__name__)

#: DescribeMediaJob takes at most this many comma-separated ids.
MAX_LOOKUP_IDS = 10

# The seed document's typo: `<Code>Success</Code></Message>` where `<Message/>` belongs.
_STRAY_MESSAGE = re.compile(rb"(<JobsDetail><Code>[^<]*</Code>)<Message(?:/>|>[^<]*</Message>)")
# The CI host, or the COS one the official SDK sends in IP mode without `Endpoint` (§7.2 A).
_HOST = re.compile(r"([^.]+)\.(?:ci|cos)\.([^.]+)\.myqcloud\.com(?::\d+)?")


@dataclass(frozen=True)
class Faults:
    """Fault injection settings; rates are probabilities per successful answer.

    Attributes:
        latency_ms: added to every request, in milliseconds.
        qps: requests per second allowed (a token bucket over all clients); ``None`` = no limit.
        fail_rate: share answered 500 ``InternalError``.
        drop_rate: share whose connection is closed part-way through the body.
        truncate_rate: share answered 200 with a body cut short (and a matching length).
        malformed_rate: share whose body carries the seed document's stray ``</Message>``.
    """

    latency_ms: float = 0.0
    qps: float | None = None
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    malformed_rate: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.latency_ms, int | float) or not 0 <= self.latency_ms <= 600_000:
            raise ConfigError(f"latency_ms must be in [0, 600000], got {self.latency_ms!r}")
        if self.qps is not None and (not isinstance(self.qps, int | float) or self.qps <= 0):
            raise ConfigError(f"qps must be a positive number or None, got {self.qps!r}")
        for name in ("fail_rate", "drop_rate", "truncate_rate", "malformed_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class EmulatorStats:
    """What the emulator has answered since it started (or since ``reset_stats()``).

    Attributes:
        requests: requests received.
        by_status: responses by HTTP status (a dropped connection counts as its 200).
        by_code: error responses by ``<Code>``.
        faults: injected body faults by kind (``drop``, ``truncate``, ``malformed``).
    """

    requests: int
    by_status: dict[int, int]
    by_code: dict[str, int]
    faults: dict[str, int] = field(default_factory=dict)


class _TokenBucket:
    """Allows ``rate`` requests per second with bursts of up to ``max(1, rate)``."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class _ReplyError(Exception):
    """An error answer: raised inside the handler, turned into an ``<Error>`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class EmulatorServer(ThreadingHTTPServer):
    """The threaded HTTP server holding a :class:`~.store.JobStore`.

    Args:
        address: ``(host, port)``; port 0 picks a free one.
        store: the jobs to serve.
        credentials: the keys accepted, by secret id.
        served: the ``(bucket, region)`` the Host must name, or ``None`` to accept any Host.
        inclusive: whether creation-time bounds include their own second.
        faults: the initial fault settings.
        seed: seeds the fault draws.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        store: JobStore,
        credentials: dict[str, Credentials],
        *,
        served: tuple[str, str] | None,
        inclusive: bool,
        faults: Faults,
        seed: int,
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.credentials = credentials
        self.served = served
        self.inclusive = inclusive
        self._faults = faults
        self._bucket = _TokenBucket(faults.qps) if faults.qps else None
        self._rng = random.Random(f"faults:{seed}")
        self._lock = threading.Lock()
        self._ids = count(1)
        self._connections: set[socket.socket] = set()
        self.reset_stats()

    def handle_error(self, request: object, client_address: object) -> None:
        """Log a failed connection; a client that hung up is routine, not a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.debug("emulator: client %s went away: %s", client_address, exc)
            return
        logger.error("emulator: error serving %s", client_address, exc_info=exc)

    # -- settings and bookkeeping (all thread-safe) ------------------------------------------

    @property
    def faults(self) -> Faults:
        """The current fault settings."""
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault settings; requests already past the checks are not affected."""
        with self._lock:
            if faults.qps != self._faults.qps:
                self._bucket = _TokenBucket(faults.qps) if faults.qps else None
            self._faults = faults

    def reset_stats(self) -> None:
        """Forget the counts of :meth:`stats`."""
        with self._lock:
            self._requests = 0
            self._by_status: Counter[int] = Counter()
            self._by_code: Counter[str] = Counter()
            self._fault_counts: Counter[str] = Counter()

    def stats(self) -> EmulatorStats:
        """A snapshot of the counts."""
        with self._lock:
            return EmulatorStats(
                requests=self._requests,
                by_status=dict(self._by_status),
                by_code=dict(self._by_code),
                faults=dict(self._fault_counts),
            )

    def begin_request(self) -> tuple[str, Faults, list[float]]:
        """Count a request; return its id, the fault settings and its fault draws."""
        with self._lock:
            self._requests += 1
            draws = [self._rng.random() for _ in range(4)]
            serial = next(self._ids)
            faults = self._faults
        raw = f"{int(time.time()):08x}_{id(self) & 0xFFFFFFFF:08x}_{serial:x}".encode()
        return base64.b64encode(raw).decode(), faults, draws

    def allow(self) -> bool:
        """Take a token from the QPS bucket (always allowed without a limit)."""
        bucket = self._bucket
        return bucket is None or bucket.take()

    def record(self, status: int, code: str | None = None, fault: str | None = None) -> None:
        """Count an answer."""
        with self._lock:
            self._by_status[status] += 1
            if code:
                self._by_code[code] += 1
            if fault:
                self._fault_counts[fault] += 1

    def track(self, conn: socket.socket, alive: bool) -> None:
        """Remember open connections so :meth:`close_connections` can end keep-alives."""
        with self._lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down every open client connection (after ``shutdown()``)."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # a response is two writes; Nagle would stall the second
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def version_string(self) -> str:
        return "tencent-ci"

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # -- methods -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        request_id, faults, draws = self.server.begin_request()
        try:
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000.0)
            if not self.server.allow():
                raise _ReplyError(503, "SlowDown", "Please reduce your request rate.")
            body = self._answer()
        except _ReplyError as reply:
            self._send_error(reply, request_id)
            return
        except Exception:
            logger.exception("emulator: unexpected error answering %s", self.path)
            self._send_error(_ReplyError(500, "InternalError", "Internal error."), request_id)
            return
        self._send_body(body, request_id, faults, draws)

    def _refuse_method(self) -> None:
        request_id = self.server.begin_request()[0]
        self.close_connection = True  # any request body is left unread
        self._send_error(_ReplyError(405, "MethodNotAllowed", "Only GET is supported."), request_id)

    # HEAD is left to the stdlib (501 without a body: a HEAD answer must not carry one).
    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method  # noqa: N815

    # -- the answer ----------------------------------------------------------------------------

    def _answer(self) -> bytes:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qsl(split.query, keep_blank_values=True)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        try:
            verify_request("GET", path, query, headers, self.server.credentials, time.time())
        except SignatureError as exc:
            raise _ReplyError(401, exc.code, exc.message) from None
        self._check_host(headers.get("host", ""))
        params: dict[str, str] = {}
        for name, value in query:
            params.setdefault(name, value)
        if path == "/jobs":
            return self._list(params)
        if path.startswith("/jobs/"):
            return self._lookup(path[len("/jobs/") :])
        raise _ReplyError(404, "InvalidUrl", f"no such resource: {path}")

    def _check_host(self, host: str) -> None:
        """Refuse a Host naming another bucket or region: a typo must not reach the data."""
        served = self.server.served
        if served is None:
            return
        bucket, region = served
        match = _HOST.fullmatch(host.lower())  # host names are case-insensitive
        if match is not None and match.groups() == (bucket.lower(), region.lower()):
            return
        named = (
            f"Host {host!r} is not <bucket>.ci.<region>.myqcloud.com"
            if match is None
            else f"Host {host} names bucket {match[1]} in region {match[2]}"
        )
        raise _ReplyError(
            400,
            "InvalidHost",
            f"{named}; this emulator serves bucket {bucket} in region {region} only",
        )

    def _list(self, params: dict[str, str]) -> bytes:
        try:
            query = parse_list_query(params)
            jobs, token = self.server.store.list_jobs(query, inclusive=self.server.inclusive)
        except InvalidQueryError as exc:
            raise _ReplyError(400, "InvalidArgument", str(exc)) from None
        parts = [b"<Response>", *(job.xml_bytes for job in jobs)]
        parts.append(f"<NextToken>{escape(token)}</NextToken></Response>".encode())
        return b"".join(parts)

    def _lookup(self, id_text: str) -> bytes:
        ids = [i.strip() for i in id_text.split(",")]
        if not id_text or any(not i for i in ids):
            raise _ReplyError(400, "InvalidArgument", "give 1 to 10 comma-separated job ids")
        if len(ids) > MAX_LOOKUP_IDS:
            raise _ReplyError(
                400, "InvalidArgument", f"at most {MAX_LOOKUP_IDS} job ids, got {len(ids)}"
            )
        found, missing = self.server.store.lookup(list(dict.fromkeys(ids)))
        parts = [b"<Response>", *(job.xml_bytes for job in found)]
        parts += [f"<NonExistJobIds>{escape(i)}</NonExistJobIds>".encode() for i in missing]
        parts.append(b"</Response>")
        return b"".join(parts)

    # -- writing -----------------------------------------------------------------------------

    def _headers(self, status: int, length: int, request_id: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        self.send_header("x-ci-request-id", request_id)

    def _send_error(self, reply: _ReplyError, request_id: str) -> None:
        trace_id = base64.b64encode(f"{random.getrandbits(256):064x}".encode()).decode()
        body = (
            "<?xml version='1.0' encoding='utf-8' ?>\n<Error>\n"
            f"    <Code>{reply.code}</Code>\n"
            f"    <Message>{escape(reply.message)}</Message>\n"
            f"    <RequestId>{request_id}</RequestId>\n"
            f"    <TraceId>{trace_id}</TraceId>\n</Error>\n"
        ).encode()
        self.server.record(reply.status, reply.code)
        self._headers(reply.status, len(body), request_id)
        self.send_header("x-ci-trace-id", trace_id)
        self.end_headers()
        self.wfile.write(body)

    def _send_body(self, body: bytes, request_id: str, faults: Faults, draws: list[float]) -> None:
        fail, drop, truncate, malformed = draws
        if fail < faults.fail_rate:
            self._send_error(_ReplyError(500, "InternalError", "Internal error."), request_id)
            return
        fault = None
        if drop < faults.drop_rate:
            fault = "drop"
        elif truncate < faults.truncate_rate:
            fault, body = "truncate", body[: max(1, len(body) // 2)]
        elif malformed < faults.malformed_rate:
            malformed_body = _STRAY_MESSAGE.sub(rb"\1</Message>", body)
            if malformed_body != body:  # a page without jobs has nothing to garble
                fault, body = "malformed", malformed_body
        self.server.record(200, fault=fault)
        self._headers(200, len(body), request_id)
        self.end_headers()
        if fault != "drop":
            self.wfile.write(body)
            return
        # Promise the whole body, send part of it, then close: the client sees a short read.
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client went away first
            self.connection.shutdown(socket.SHUT_RDWR)
