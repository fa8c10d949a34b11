"""A service whose paging makes no progress stops the fetch with an error, never a loop.

The emulator pages correctly, so these tests answer from a tiny loopback server of their own
that returns the same page (and token) to every request; it ignores the signature, which the
client never checks on answers either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cijobs_analytics import fetch_jobs
from cijobs_analytics.client import CIClient
from cijobs_analytics.config import Credentials
from cijobs_analytics.errors import ResponseParseError

START = datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC)
END = START + timedelta(days=1)
CREDS = Credentials("AKIDexample", "very-secret-key")


def _page(job_ids: list[str], token: str) -> bytes:
    jobs = "".join(
        f"<JobsDetail><JobId>{job_id}</JobId><Tag>Transcode</Tag><State>Success</State>"
        f"<CreationTime>2026-11-01T10:00:{i % 60:02d}+0800</CreationTime></JobsDetail>"
        for i, job_id in enumerate(job_ids)
    )
    return f"<Response>{jobs}<NextToken>{token}</NextToken></Response>".encode()


class _Stuck(ThreadingHTTPServer):
    """Answers every GET with ``answer(n)``, n counting the requests from 1."""

    daemon_threads = True

    def __init__(self, answer: Callable[[int], bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Stuck

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            n = self.server.requests
        body = self.server.answer(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ci-request-id", f"req-{n}")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


def _serve(answer: Callable[[int], bytes]) -> Iterator[_Stuck]:
    server = _Stuck(answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _fetch(server: _Stuck) -> ResponseParseError:
    """Fetch a day of Transcode from ``server``; the error it ended with, within seconds."""
    client = CIClient("b-1250000000", "ap-guangzhou", CREDS, endpoint=server.url, max_retries=0)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fetch_jobs(client, START, END, tags=["Transcode"], workers=2, progress=False)
        except BaseException as error:  # handed to the test thread to assert on
            raised.append(error)

    # A daemon thread, so that a fetch that never ends fails the test instead of hanging it.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5.0)
    assert not worker.is_alive(), f"still paging after 5 s and {server.requests} requests"
    assert len(raised) == 1
    assert isinstance(raised[0], ResponseParseError)
    return raised[0]


@pytest.fixture
def same_token() -> Iterator[_Stuck]:
    """One job and the same NextToken, whatever the request."""
    yield from _serve(lambda n: _page(["j1"], "225508"))


@pytest.fixture
def same_full_page() -> Iterator[_Stuck]:
    """The same 100 jobs every time, under a new NextToken each time."""
    ids = [f"j{i:03d}" for i in range(100)]
    yield from _serve(lambda n: _page(ids, f"t{n}"))


@pytest.fixture
def token_cycle() -> Iterator[_Stuck]:
    """A short page under tokens that come round again: A, B, A, B, ..."""
    yield from _serve(lambda n: _page([f"j{n}"], "AB"[n % 2]))


def test_a_repeated_token_stops_the_slice_with_an_error_naming_it(same_token: _Stuck) -> None:
    error = _fetch(same_token)
    assert "repeated NextToken '225508'" in error.reason
    assert "Transcode" in error.reason
    assert error.request_id == "req-2"
    assert same_token.requests == 2


def test_a_full_page_of_known_jobs_stops_the_slice(same_full_page: _Stuck) -> None:
    error = _fetch(same_full_page)
    assert "a full page of Transcode" in error.reason
    assert "NextToken 't2'" in error.reason
    assert "held only known jobs" in error.reason
    assert same_full_page.requests == 2


def test_a_token_that_comes_round_again_stops_the_slice(token_cycle: _Stuck) -> None:
    error = _fetch(token_cycle)
    assert "repeated NextToken 'B'" in error.reason
    assert token_cycle.requests == 3
