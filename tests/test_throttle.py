"""Throttling slows a run down instead of killing it: fetch and export under a service QPS limit.

The emulator's ``qps`` fault answers 503 ``SlowDown`` beyond its limit. A run that is not told
the limit must settle at the rate the service allows, finish with every job, and fail only when
throttling persists for the client's ``throttle_timeout``, naming ``--qps`` and ``--workers``.
A scripted loopback server gives what the emulator does not: ``Retry-After`` headers, and a
service that throttles some requests while answering others.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest
from client_support import CREDS, FAST, CountingLimiter, FakeClock

import cijobs_analytics as cj
from cijobs_analytics.client import CIClient, _retry_after
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.errors import ThrottledError
from cijobs_analytics.ratelimit import TokenBucket

MakeEmulator = Callable[..., Emulator]

END = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

PAGE = (
    b"<Response><JobsDetail><JobId>j1</JobId><State>Success</State></JobsDetail>"
    b"<NextToken/></Response>"
)
SLOW_DOWN = (
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>r-1</RequestId></Error>"
)


def _client(emu: Emulator, **kwargs: Any) -> CIClient:
    """A client of ``emu``; the library's default retry policy unless ``kwargs`` say otherwise."""
    return CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url, **kwargs)


def _ids(table: pa.Table) -> list[str]:
    return sorted(table.column("job_id").to_pylist())


def _dataset_states(uri: str) -> dict[str, str]:
    with cj.connect(uri) as con:
        rows = con.execute("SELECT job_id, state FROM jobs").fetchall()
    return dict(rows)


# -- the reported failure: a run not told the limit ----------------------------------------------


def test_fetch_not_told_the_limit_completes_under_a_5_qps_service(
    make_emulator: MakeEmulator,
) -> None:
    """Default workers, no qps, a 5 qps service: every job. Throttled answers are retried
    outside the retry budget of 5xx and network faults, so even ``max_retries=0`` completes."""
    emu = make_emulator(jobs=300, days=1.0, seed=4, end=END, qps=5)
    with _client(emu, max_retries=0) as client:
        stats = cj.FetchStats()
        table = cj.fetch_jobs(client, END - timedelta(days=1), END, progress=False, stats=stats)
    assert _ids(table) == sorted(job.job_id for job in emu.truth())
    served = emu.stats()
    assert served.by_code.get("SlowDown", 0) > 0  # the limit was really hit
    assert stats.throttled == served.by_code["SlowDown"]
    assert stats.throttled < 0.5 * served.requests


def test_export_not_told_the_limit_completes_under_a_5_qps_service(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """Two exports (listing, then refreshing open jobs by id) under a 5 qps limit: the truth,
    with no retry budget for anything but throttling."""
    emu = make_emulator(jobs=300, days=1.0, seed=6, end=None, qps=5)
    uri = str(tmp_path / "ds")
    with _client(emu, max_retries=0) as client:
        first = cj.export(client, uri, since="3d", progress=False)
        assert first.jobs_new == 300
        assert first.open_jobs > 0
        emu.advance(finish=1.0, new_jobs=20)
        second = cj.export(client, uri, progress=False)
    assert second.jobs_new == 20
    assert _dataset_states(uri) == {job.job_id: job.state for job in emu.truth()}
    assert emu.stats().by_code.get("SlowDown", 0) > 0


def test_a_flood_of_64_workers_shares_one_limit_and_completes(
    make_emulator: MakeEmulator,
) -> None:
    """64 workers against a 5 qps service all share one bucket: none starves, every job comes,
    and after the first burst the refused requests stay a minority."""
    emu = make_emulator(jobs=300, days=1.0, seed=8, end=END, qps=5)
    with _client(emu, max_retries=0) as client:
        stats = cj.FetchStats()
        table = cj.fetch_jobs(
            client, END - timedelta(days=1), END, workers=64, progress=False, stats=stats
        )
    assert _ids(table) == sorted(job.job_id for job in emu.truth())
    served = emu.stats()
    assert stats.throttled == served.by_code["SlowDown"] < 0.5 * served.requests


@pytest.mark.slow
def test_fetch_not_told_the_limit_completes_under_the_reported_2_qps_service(
    make_emulator: MakeEmulator,
) -> None:
    """The report: ``cijobs emulate --qps 2`` (2,000 jobs over 7 days), a default client and
    fetch. It used to die with SlowDown after about 15 s; now it finishes near 2 pages/s."""
    emu = make_emulator(jobs=2000, days=7.0, seed=1, end=END, qps=2)
    with _client(emu) as client:
        stats = cj.FetchStats()
        table = cj.fetch_jobs(client, emu.history_start, END, progress=False, stats=stats)
    assert table.num_rows == 2000
    assert _ids(table) == sorted(job.job_id for job in emu.truth())
    assert stats.pages / stats.elapsed_s > 2 * 0.7  # near the limit, not crawling
    assert stats.throttled < 0.3 * stats.requests


# -- giving up: only when throttling persists ---------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _ScriptedServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        tag = parse_qs(urlsplit(self.path).query).get("tag", [""])[0]
        with self.server.lock:
            self.server.arrivals.append((time.monotonic(), tag))
        status, headers, body = self.server.answer(tag)
        self.send_response(status)  # adds Date, which a Retry-After date is measured against
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


Answer = tuple[int, tuple[tuple[str, str], ...], bytes]


class _ScriptedServer(ThreadingHTTPServer):
    """Answers each request with ``answer(tag)``; keeps (arrival time, tag) of every one."""

    daemon_threads = True

    def __init__(self, answer: Callable[[str], Answer]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.arrivals: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[str], Answer]], _ScriptedServer]]:
    servers: list[_ScriptedServer] = []

    def start(answer: Callable[[str], Answer]) -> _ScriptedServer:
        server = _ScriptedServer(answer)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _scripted_client(server: _ScriptedServer, **kwargs: Any) -> CIClient:
    return CIClient(
        "examplebucket-1250000000", "ap-guangzhou", CREDS, server.url, **{**FAST, **kwargs}
    )


def test_throttling_gives_up_only_once_nothing_has_got_through_for_the_timeout(
    serve: Callable[[Callable[[str], Answer]], _ScriptedServer],
) -> None:
    """A request throttled for good keeps trying while other requests of the client get
    through, and gives up ``throttle_timeout`` after the last of them did."""
    server = serve(lambda tag: (503, (), SLOW_DOWN) if tag == "Stuck" else (200, (), PAGE))
    other_done = threading.Event()
    last_success = [0.0]
    with _scripted_client(server, throttle_timeout=0.6) as client:

        def others() -> None:
            stop_at = time.monotonic() + 1.2
            while time.monotonic() < stop_at:
                client.list_jobs("Fine")
                last_success[0] = time.monotonic()
                time.sleep(0.05)
            other_done.set()

        thread = threading.Thread(target=others)
        started = time.monotonic()
        thread.start()
        with pytest.raises(ThrottledError) as info:
            client.list_jobs("Stuck")
        gave_up = time.monotonic()
        thread.join()
    assert other_done.is_set()
    assert gave_up - started > 1.2  # not while "Fine" requests were getting through
    assert 0.6 <= gave_up - last_success[0] < 0.6 + 1.0
    assert "still throttled after" in str(info.value)
    assert "--qps" in str(info.value)
    assert "--workers" in str(info.value)
    assert info.value.code == "SlowDown"


def test_throttling_that_ends_within_the_timeout_is_ridden_out(
    serve: Callable[[Callable[[str], Answer]], _ScriptedServer],
) -> None:
    """Throttled for 0.5 s, far more attempts than ``max_retries``: the page still comes."""
    until = time.monotonic() + 0.5
    server = serve(
        lambda tag: (503, (), SLOW_DOWN) if time.monotonic() < until else (200, (), PAGE)
    )
    with _scripted_client(server, max_retries=1, throttle_timeout=5) as client:
        page = client.list_jobs("Transcode")
        stats = client.stats
    assert page.table.column("job_id").to_pylist() == ["j1"]
    assert page.attempts == stats.requests == stats.throttled + 1
    assert stats.throttled > 1 + 1  # beyond the retry budget
    assert stats.retries == stats.throttled


# -- Retry-After ----------------------------------------------------------------------------------


class _RecordingLimiter(CountingLimiter):
    """Counts like CountingLimiter and keeps each ``retry_after`` it was told."""

    def __init__(self) -> None:
        super().__init__()
        self.retry_afters: list[float | None] = []

    def throttled(self, retry_after: float | None = None) -> None:
        super().throttled()
        self.retry_afters.append(retry_after)


def test_retry_after_seconds_are_waited_and_passed_to_the_limiter(
    serve: Callable[[Callable[[str], Answer]], _ScriptedServer],
) -> None:
    """503 SlowDown with ``Retry-After: 0.4``: the retry waits 0.4 s, the limiter hears it."""
    answers = iter([(503, (("Retry-After", "0.4"),), SLOW_DOWN)])
    server = serve(lambda tag: next(answers, (200, (), PAGE)))
    limiter = _RecordingLimiter()
    with _scripted_client(server) as client:
        page = client.list_jobs("Transcode", limiter=limiter)
    (first, _), (second, _) = server.arrivals
    assert second - first >= 0.4
    assert page.attempts == 2
    assert limiter.retry_afters == [pytest.approx(0.4)]


def test_retry_after_as_an_http_date_is_measured_against_the_answers_date(
    serve: Callable[[Callable[[str], Answer]], _ScriptedServer],
) -> None:
    """``Retry-After: <HTTP date>`` one second after the answer's own ``Date``: a 1 s wait."""

    def answer(tag: str) -> Answer:
        if len(server.arrivals) > 1:
            return 200, (), PAGE
        # The handler's Date header is this second too (both are whole seconds).
        when = email.utils.formatdate(int(time.time()) + 1, usegmt=True)
        return 503, (("Retry-After", when),), SLOW_DOWN

    server = serve(answer)
    limiter = _RecordingLimiter()
    with _scripted_client(server) as client:
        client.list_jobs("Transcode", limiter=limiter)
    (first, _), (second, _) = server.arrivals
    assert second - first >= 0.9
    assert limiter.retry_afters in ([pytest.approx(1.0)], [pytest.approx(0.0)])


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "2.5"}, 2.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-3"}, None),
        (
            {
                "Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT",
                "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            30.0,
        ),
        # No Date header: measured against the client's clock (here 07:28:10).
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"}, 20.0),
        # A date already past is no wait at all.
        (
            {
                "Retry-After": "Wed, 21 Oct 2026 07:27:00 GMT",
                "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            0.0,
        ),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    headers: dict[str, str], expected: float | None
) -> None:
    """Seconds as given; a date relative to the answer's Date (else the local clock)."""
    now = datetime(2026, 10, 21, 7, 28, 10, tzinfo=UTC).timestamp()
    assert _retry_after(headers, now) == expected


# -- the shared bucket ----------------------------------------------------------------------------


def test_retry_after_pauses_every_caller_of_the_bucket() -> None:
    """After ``throttled(retry_after=3)`` no caller goes before 3 s have passed; the ones
    after it are spaced at the (cut) rate, not let out all at once."""
    clock = FakeClock()
    bucket = TokenBucket(10, decrease=0.5, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.throttled(retry_after=3.0)
    assert bucket.rate == pytest.approx(5.0)
    began = clock.now
    bucket.acquire()
    assert clock.now - began == pytest.approx(3.0)
    bucket.acquire()
    assert 3.0 + 1 / 10 < clock.now - began <= 3.0 + 1 / 5


def test_a_stale_throttle_with_retry_after_pauses_but_does_not_cut_again() -> None:
    """An answer to a request sent before the last cut is counted and its Retry-After
    honoured, but the rate is not cut twice for one overload."""
    clock = FakeClock()
    bucket = TokenBucket(10, decrease=0.5, clock=clock, sleep=clock.sleep)
    sent, answered = threading.Event(), threading.Event()

    def earlier_request() -> None:
        bucket.acquire()
        sent.set()
        answered.wait(5)
        bucket.throttled(retry_after=2.0)

    other = threading.Thread(target=earlier_request)
    other.start()
    sent.wait(5)
    bucket.acquire()
    bucket.throttled()
    answered.set()
    other.join()
    assert (bucket.throttle_count, bucket.cuts) == (2, 1)
    assert bucket.rate == pytest.approx(5.0)
    began = clock.now
    bucket.acquire()
    assert clock.now - began == pytest.approx(2.0)


def test_turns_reserved_before_a_cut_queue_again_at_the_new_rate() -> None:
    """Threads already waiting at the old pace when a throttle answer cuts the rate do not go
    out at that pace: each queues again, and they leave spaced at the cut rate."""
    gate = threading.Lock()
    clock = FakeClock()
    woke: list[float] = []
    sleeping = threading.Semaphore(0)
    release = threading.Event()

    def sleep(seconds: float) -> None:
        # Waiters block here until the test has cut the rate, then wake at their old times.
        sleeping.release()
        release.wait(5)
        with gate:
            woke.append(seconds)

    bucket = TokenBucket(10, decrease=0.5, clock=clock, sleep=sleep)
    bucket.acquire()  # the full bucket's one token
    waiters = [threading.Thread(target=bucket.acquire) for _ in range(3)]
    for thread in waiters:
        thread.start()
    for _ in waiters:
        assert sleeping.acquire(timeout=5)
    bucket.throttled()  # this thread's request, sent first: a fresh answer, so a cut
    assert bucket.rate == pytest.approx(5.0)
    # Once released they find their turns void and reserve new ones at 5/s (which sleep
    # blocks on again until released; it is released for good now).
    release.set()
    for thread in waiters:
        thread.join(5)
    assert not any(thread.is_alive() for thread in waiters)
    assert bucket.acquired == 4
    # Three reservations at 10/s, then three more at 5/s, the last 3 x 0.2 s out.
    second_round = sorted(woke)[-3:]
    assert max(second_round) == pytest.approx(3 / 5, rel=0.05)


def test_throttled_short_of_its_target_the_bucket_aims_lower() -> None:
    """Cut at 20/s, then throttled again at 15/s while climbing back: the limit has dropped,
    so the bucket climbs back to below 15/s instead of to 20/s."""
    clock = FakeClock()
    bucket = TokenBucket(None, decrease=0.5, recovery_requests=20, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        bucket.acquire()
        clock.now += 0.05  # 20 per second
    bucket.throttled()
    assert bucket.rate == pytest.approx(10.0)
    while bucket.rate is not None and bucket.rate < 15.0:
        clock.now += 0.01
    bucket.acquire()
    bucket.throttled()
    assert bucket.rate == pytest.approx(7.5, abs=0.1)
    # It now aims at about 15 * (1 + 0.5) / 2 = 11.25/s, reached in 1.55 s, flat around it.
    began = clock.now
    seen = []
    while clock.now < began + 2.0:
        clock.now += 0.05
        seen.append(bucket.rate or 0.0)
    assert 11.0 < seen[-1] <= max(seen) < 11.7  # not back up to 15, let alone 20
    assert bucket.cuts == 2


def test_a_bucket_cut_to_its_floor_still_probes_upwards() -> None:
    """At the floor the curve still rises past it after a quiet period: a lifted limit is
    found again instead of the run crawling at the floor for good."""
    clock = FakeClock()
    bucket = TokenBucket(None, min_qps=1.0, recovery_requests=10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
        bucket.throttled()
    assert bucket.rate == pytest.approx(1.0)
    clock.now += 10.0
    assert 1.0 < (bucket.rate or 0.0) < 1.5
    clock.now += 30.0
    assert (bucket.rate or 0.0) > 2.0


def test_a_configured_qps_stays_the_ceiling_while_probing() -> None:
    """With ``qps`` the rate climbs back and probes, but never above the configured rate."""
    clock = FakeClock()
    bucket = TokenBucket(8, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.throttled()
    assert (bucket.rate or 8.0) < 8.0
    clock.now += 3600.0
    assert bucket.rate == pytest.approx(8.0)
