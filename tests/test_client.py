"""CIClient against the emulator: paging equals truth, faults survived, errors typed, no leaks."""

from __future__ import annotations

import io
import logging
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from client_support import CountingLimiter, MakeEmulator, client_for, page_all, truth_rows
from conftest import EMULATOR_END

from cijobs_analytics.auth import QSignAuth
from cijobs_analytics.client import ClientStats, Page
from cijobs_analytics.config import Credentials
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.errors import AuthError, InvalidArgumentError, ServerError, ThrottledError
from cijobs_analytics.schema import JOBS_SCHEMA, TAGS

# --- pagination against the emulator's truth --------------------------------------------------


def test_full_pagination_of_each_tag_equals_truth(emulator: Emulator) -> None:
    """Paging every tag to its end returns exactly the emulator's jobs, in creation order."""
    with client_for(emulator) as client:
        total = 0
        for tag in TAGS:
            rows, pages = page_all(client, tag, size=37)
            assert rows == truth_rows(emulator, tags=[tag]), tag
            assert all(page.attempts == 1 and not page.recovered for page in pages)
            assert all(page.request_id for page in pages)
            total += len(rows)
        assert total == len(emulator.truth())
        assert client.stats.retries == 0


def test_page_table_has_request_context(emulator: Emulator) -> None:
    """Rows carry bucket, region and fetched_at from the clock, in JOBS_SCHEMA."""
    now = int(time.time()) + 0.25  # a binary fraction, so the microseconds are exact
    with client_for(emulator, clock=lambda: now) as client:
        page = client.list_jobs("Transcode", size=5)
    assert page.table.schema.equals(JOBS_SCHEMA)
    assert page.table.num_rows == 5
    assert set(page.table.column("bucket").to_pylist()) == {emulator.bucket}
    assert set(page.table.column("region").to_pylist()) == {emulator.region}
    assert set(page.table.column("fetched_at").to_pylist()) == {datetime.fromtimestamp(now, UTC)}
    assert page.next_token


def test_filters_and_time_window(emulator: Emulator) -> None:
    """Queue, states, Desc order and a creation window (exclusive bounds) go on the wire right."""
    start = EMULATOR_END - timedelta(hours=30)
    end = EMULATOR_END - timedelta(hours=6)
    queue = emulator.queue_ids[0]
    with client_for(emulator) as client:
        rows, _ = page_all(
            client,
            "Transcode",
            queue_id=queue,
            states=["Success", "Failed"],
            start=start.astimezone(timezone(timedelta(hours=8))),
            end=end.isoformat().replace("+00:00", "Z"),
            order="Desc",
            size=10,
        )
    expected = [
        (job.job_id, job.state)
        for job in emulator.truth(
            start=start,
            end=end,
            tags=["Transcode"],
            queue_ids=[queue],
            states=["Success", "Failed"],
        )
        if job.creation_time != start  # the service's lower bound is exclusive
    ]
    assert len(expected) > 10
    assert sorted(rows) == sorted(expected)
    times = {job.job_id: job.creation_time for job in emulator.truth()}
    assert [times[job_id] for job_id, _ in rows] == sorted(
        (times[job_id] for job_id, _ in rows), reverse=True
    )


def test_input_object_with_special_characters(emulator: Emulator) -> None:
    """An exact input object key with '/', '&', spaces or non-ASCII text finds its job."""
    jobs = emulator.truth(tags=["Transcode"])
    job = max(jobs, key=lambda j: sum(not c.isalnum() for c in j.input_object))
    with client_for(emulator) as client:
        rows, _ = page_all(client, "Transcode", input_object=job.input_object)
    assert (job.job_id, job.state) in rows
    assert all(
        other.input_object == job.input_object
        for other in jobs
        if (other.job_id, other.state) in rows
    )


def test_temporary_credentials_send_token(make_emulator: MakeEmulator) -> None:
    """With a session token the request carries and signs x-ci-security-token; without, 401."""
    creds = Credentials("AKIDtemporary000000000000000000000", "temp-secret", "tok/en+=abc")
    emu = make_emulator(credentials=creds)
    with client_for(emu) as client:
        assert client.list_jobs("Transcode", size=3).table.num_rows == 3
    permanent = Credentials(creds.secret_id, creds.secret_key)
    with client_for(emu, permanent) as client, pytest.raises(AuthError) as info:
        client.list_jobs("Transcode", size=3)
    assert info.value.status == 401
    assert creds.token not in str(info.value)


# --- get_jobs -----------------------------------------------------------------------------------


def test_get_jobs_splits_into_requests_of_ten(make_emulator: MakeEmulator) -> None:
    """25 ids (3 unknown) take 3 requests; found jobs match the truth, unknown ids are listed."""
    emu = make_emulator()
    known = {job.job_id: job.state for job in emu.truth()[:22]}
    unknown = [f"j{n:032x}" for n in (1, 2, 3)]
    ids = list(known)[:11] + unknown[:1] + list(known)[11:] + unknown[1:]
    emu.reset_stats()
    with client_for(emu) as client:
        lookup = client.get_jobs(ids)
    assert lookup.attempts == 3
    assert emu.stats().requests == 3
    found = dict(
        zip(
            lookup.table.column("job_id").to_pylist(),
            lookup.table.column("state").to_pylist(),
            strict=True,
        )
    )
    assert found == known
    assert lookup.missing == unknown
    assert set(lookup.table.column("bucket").to_pylist()) == {emu.bucket}


def test_get_jobs_empty_sends_nothing(make_emulator: MakeEmulator) -> None:
    """No ids: an empty table in JOBS_SCHEMA and no request."""
    emu = make_emulator()
    with client_for(emu) as client:
        lookup = client.get_jobs([])
    assert lookup.table.num_rows == 0
    assert lookup.table.schema.equals(JOBS_SCHEMA)
    assert (lookup.missing, lookup.attempts) == ([], 0)
    assert emu.stats().requests == 0


# --- faults survived by the retries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "settings"),
    [
        ("latency", {"latency_ms": 20}),
        ("qps", {"qps": 10}),
        ("fail", {"fail_rate": 0.3}),
        ("drop", {"drop_rate": 0.3}),
        ("truncate", {"truncate_rate": 0.3}),
        ("malformed", {"malformed_rate": 0.5}),
    ],
)
def test_fault_is_survived(
    make_emulator: MakeEmulator, fault: str, settings: dict[str, Any]
) -> None:
    """Each fault kind still yields the exact truth; every retry shows in attempts and stats."""
    emu = make_emulator(seed=5, **settings)
    limiter = CountingLimiter()
    started = time.perf_counter()
    with client_for(emu, max_backoff=0.2) as client:
        pages: list[Page] = []
        for tag in ("Transcode", "Snapshot"):
            rows, tag_pages = page_all(client, tag, size=10, limiter=limiter)
            assert rows == truth_rows(emu, tags=[tag])
            pages += tag_pages
        stats = client.stats
    elapsed = time.perf_counter() - started
    served = emu.stats()
    attempts = sum(page.attempts for page in pages)
    assert attempts == stats.requests == served.requests == limiter.acquired
    assert stats.retries == attempts - len(pages)
    assert stats.throttled == limiter.throttle_calls
    if fault == "latency":
        assert stats.retries == 0
        assert elapsed >= 0.02 * len(pages)
    elif fault == "qps":
        assert stats.throttled == served.by_code["SlowDown"] > 0
        assert stats.errors_by_code == {"SlowDown": stats.throttled}
    elif fault == "fail":
        assert stats.errors_by_code == {"InternalError": served.by_code["InternalError"]}
        assert stats.retries > 0
    elif fault == "drop":
        assert stats.errors_by_code == {"TransportError": served.faults["drop"]}
        assert stats.retries > 0
    elif fault == "truncate":
        assert stats.errors_by_code == {"ResponseParseError": served.faults["truncate"]}
        assert stats.retries > 0
    else:
        recovered = sum(page.recovered for page in pages)
        assert recovered == stats.recovered_pages == served.faults["malformed"] > 0
        assert stats.retries == 0


def test_recovered_pages_are_counted_and_not_logged_by_the_client(
    make_emulator: MakeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Each repaired page is counted in the stats; the one warning comes from the parser."""
    emu = make_emulator(malformed_rate=1.0)
    caplog.set_level(logging.DEBUG, logger="cijobs_analytics.client")
    with client_for(emu) as client:
        _, pages = page_all(client, "Transcode", size=20)
        assert len(pages) > 2
        assert all(page.recovered for page in pages)
        assert client.stats.recovered_pages == len(pages)
    assert not [
        r for r in caplog.records if r.name == "cijobs_analytics.client" and "repair" in r.message
    ]


def test_shared_by_threads(make_emulator: MakeEmulator) -> None:
    """One client used by 8 threads pages every tag correctly and counts every request."""
    emu = make_emulator(fail_rate=0.1)
    results: dict[str, list[tuple[str, str]]] = {}
    pages: list[Page] = []
    lock = threading.Lock()
    with client_for(emu) as client:

        def work(tag: str) -> None:
            rows, tag_pages = page_all(client, tag, size=7)
            with lock:
                results[tag] = rows
                pages.extend(tag_pages)

        threads = [threading.Thread(target=work, args=(tag,)) for tag in TAGS[:8]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = client.stats
    assert results == {tag: truth_rows(emu, tags=[tag]) for tag in TAGS[:8]}
    assert stats.requests == sum(page.attempts for page in pages) == emu.stats().requests


# --- errors that are not retried, and errors that outlast the retries ---------------------------


def test_wrong_key_is_auth_error_without_secret_or_signature(
    make_emulator: MakeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong secret key: one request, AuthError 401, and neither key nor signature in its text."""
    emu = make_emulator()
    wrong = Credentials(emu.credentials.secret_id, "wrong-secret-key-123456")
    now = time.time()
    caplog.set_level(logging.DEBUG)
    with client_for(emu, wrong, clock=lambda: now) as client:
        with pytest.raises(AuthError) as info:
            client.list_jobs("Transcode", size=5)
        assert client.stats.requests == 1
        assert client.stats.errors_by_code == {info.value.code: 1}
    assert emu.stats().requests == 1
    sent = requests.Request(
        "GET",
        f"{emu.url}/jobs?tag=Transcode&orderByTime=Asc&size=5",
        auth=QSignAuth(
            wrong, clock=lambda: now, sign_host=f"{emu.bucket}.ci.{emu.region}.myqcloud.com"
        ),
    ).prepare()
    signature = sent.headers["Authorization"].rpartition("q-signature=")[2]
    error = info.value
    assert (error.status, error.request_id is not None) == (401, True)
    for text in (str(error), repr(error), error.error_message, error.code, caplog.text):
        assert wrong.secret_key not in text
        assert signature not in text
        assert "q-signature" not in text


def test_expired_signature_is_auth_error(make_emulator: MakeEmulator) -> None:
    """A clock two hours behind signs a window the server refuses: AuthError, no retry."""
    emu = make_emulator()
    late = client_for(emu, clock=lambda: time.time() - 7200)
    with late as client, pytest.raises(AuthError) as info:
        client.list_jobs("Transcode")
    assert info.value.code == "SignatureExpired"
    assert emu.stats().requests == 1


def test_bad_argument_at_server_not_retried(make_emulator: MakeEmulator) -> None:
    """A 400 (a next token the server does not know) is raised after exactly one request."""
    emu = make_emulator()
    with client_for(emu) as client, pytest.raises(InvalidArgumentError) as info:
        client.list_jobs("Transcode", next_token="not-a-token")
    assert (info.value.code, info.value.status) == ("InvalidArgument", 400)
    assert "nextToken" in info.value.error_message
    assert emu.stats().requests == 1


def test_persistent_500_raises_server_error_after_retries(make_emulator: MakeEmulator) -> None:
    """Every answer a 500: ServerError with code, status and request id after max_retries + 1."""
    emu = make_emulator(fail_rate=1.0)
    with client_for(emu, max_retries=3) as client:
        with pytest.raises(ServerError) as info:
            client.list_jobs("Transcode")
        assert client.stats == ClientStats(
            requests=4,
            retries=3,
            throttled=0,
            recovered_pages=0,
            errors_by_code={"InternalError": 4},
        )
    assert (info.value.code, info.value.status) == ("InternalError", 500)
    assert info.value.request_id
    assert emu.stats().requests == 4


def test_persistent_throttling_raises_throttled_error_after_throttle_timeout(
    make_emulator: MakeEmulator,
) -> None:
    """A QPS the client cannot meet: throttled answers are retried past ``max_retries`` until
    ``throttle_timeout`` passes with nothing getting through; then ThrottledError (SlowDown,
    503) saying to pass a lower --qps or fewer --workers. The limiter hears each answer."""
    emu = make_emulator(qps=0.01)
    limiter = CountingLimiter()
    with client_for(emu, max_retries=2, throttle_timeout=0.5) as client:
        client.list_jobs("Transcode", size=1, limiter=limiter)  # takes the only token
        started = time.perf_counter()
        with pytest.raises(ThrottledError) as info:
            client.list_jobs("Transcode", size=1, limiter=limiter)
        elapsed = time.perf_counter() - started
        stats = client.stats
    assert (info.value.code, info.value.status) == ("SlowDown", 503)
    assert info.value.transient
    assert "--qps" in str(info.value)
    assert "--workers" in str(info.value)
    assert 0.5 <= elapsed < 2.0
    assert limiter.throttle_calls > 2 + 1  # more than max_retries + 1 attempts
    assert limiter.acquired == limiter.throttle_calls + 1 == emu.stats().requests
    assert stats.throttled == stats.errors_by_code["SlowDown"] == limiter.throttle_calls


# --- logs never hold the Authorization header -----------------------------------------------------


def test_authorization_never_logged(
    make_emulator: MakeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, client, requests and urllib3 logs hold no signature, secret key or token."""
    creds = Credentials("AKIDlogging000000000000000000000000", "log-secret-key", "log-token-value")
    emu = make_emulator(credentials=creds, fail_rate=0.3, drop_rate=0.2, malformed_rate=0.3)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("urllib3", "requests", "cijobs_analytics")]
    levels = [lg.level for lg in loggers]
    caplog.set_level(logging.DEBUG)
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        with client_for(emu) as client:
            page_all(client, "Transcode", size=20)
            client.get_jobs([job.job_id for job in emu.truth()[:12]])
        wrong = client_for(emu, Credentials(creds.secret_id, "wrong-secret-9f3a", creds.token))
        with wrong as client, pytest.raises(AuthError):
            client.list_jobs("Transcode")
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    captured = stream.getvalue() + caplog.text
    assert '"GET /jobs?tag=Transcode' in captured  # urllib3's request lines were captured
    assert "retry" in captured
    for secret in (
        "q-sign",
        "q-signature",
        "Authorization",
        "log-secret-key",
        "log-token-value",
        "wrong-secret-9f3a",
    ):
        assert secret not in captured


def test_max_workers_concurrent_requests_reuse_the_pool(
    make_emulator: MakeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """MAX_WORKERS requests in flight at once (the CLI's --workers maximum) fit the connection
    pool: urllib3 never discards a connection as "pool is full", and a second round reuses
    the connections of the first instead of opening new ones."""
    from concurrent.futures import ThreadPoolExecutor

    from cijobs_analytics.client import MAX_WORKERS

    emu = make_emulator(jobs=200, latency_ms=150)
    start = threading.Barrier(MAX_WORKERS)

    def first_page(_: int) -> int:
        start.wait()  # all requests leave together, so they overlap in the emulator's latency
        rows: int = client.list_jobs("Transcode", size=5).table.num_rows
        return rows

    caplog.set_level(logging.WARNING, logger="urllib3")
    with client_for(emu) as client, ThreadPoolExecutor(MAX_WORKERS) as pool:
        for _ in range(2):
            assert list(pool.map(first_page, range(MAX_WORKERS))) == [5] * MAX_WORKERS
        assert client.stats.requests == 2 * MAX_WORKERS
        assert client.stats.retries == 0
        pools = client._session.get_adapter(emu.url).poolmanager.pools
        # urllib3's RecentlyUsedContainer refuses plain iteration; keys() is its way.
        opened = [pools[key].num_connections for key in pools.keys()]  # noqa: SIM118 - see above
    assert [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")] == []
    assert opened == [MAX_WORKERS]
    assert MAX_WORKERS == 64
