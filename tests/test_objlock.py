"""The export lock on object storage, against a real S3 server (moto in a child process)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import obstore
import pytest
from s3_server import S3Proxy, S3Server

from cijobs_analytics._location import Location, resolve_location
from cijobs_analytics._objlock import (
    DEFAULT_LEASE,
    LOCK_KEY,
    ObjectLock,
    read_object_lock_holder,
)
from cijobs_analytics.errors import ConfigError, StoreError

LOGGER = "cijobs_analytics._objlock"
HOST = socket.gethostname()


@pytest.fixture
def location(s3_server: S3Server, s3_bucket: str) -> Location:
    """A dataset in a fresh bucket of the moto server."""
    return resolve_location(f"s3://{s3_bucket}/ds", s3_server.storage_options, environ={})


@pytest.fixture
def locks() -> Iterator[Callable[..., ObjectLock]]:
    """A factory of ObjectLocks, each released after the test so no heartbeat outlives it."""
    made: list[ObjectLock] = []

    def make(location: Location, **kwargs: Any) -> ObjectLock:
        lock = ObjectLock(location, **kwargs)
        made.append(lock)
        return lock

    yield make
    for lock in made:
        lock.release()


def read_body(location: Location) -> dict[str, Any] | None:
    """The lock object's JSON, or None when there is none."""
    try:
        raw = bytes(obstore.get(location.object_store(), LOCK_KEY).bytes())
    except FileNotFoundError:
        return None
    value: dict[str, Any] = json.loads(raw)
    return value


def write_body(location: Location, **fields: Any) -> dict[str, Any]:
    """Leave a lock object as another export would have; ``fields`` override the defaults."""
    now = datetime.now(UTC)
    body = {
        "pid": 4242,
        "host": "other-host.example",
        "started": (now - timedelta(hours=1)).isoformat(timespec="seconds"),
        "renewed": now.isoformat(timespec="milliseconds"),
        "lease_s": 120.0,
        "token": "f" * 32,
        **fields,
    }
    obstore.put(location.object_store(), LOCK_KEY, json.dumps(body).encode())
    return body


def dead_pid() -> int:
    """The pid of a process that has finished."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_acquire_writes_the_holder_and_release_removes_the_object(
    location: Location, locks: Callable[..., ObjectLock]
) -> None:
    lock = locks(location)
    assert read_body(location) is None
    lock.acquire()
    body = read_body(location)
    assert body is not None
    assert (body["pid"], body["host"]) == (os.getpid(), HOST)
    assert body["lease_s"] == DEFAULT_LEASE.total_seconds() == 120.0
    assert len(body["token"]) == 32
    assert datetime.fromisoformat(body["renewed"]) >= datetime.fromisoformat(body["started"])
    assert lock.held
    assert lock.conditional_writes is True
    assert lock.key == f"{location.uri}/_lock"
    lock.check()
    lock.release()
    assert read_body(location) is None
    assert not lock.held
    lock.release()  # a second release is a no-op


def test_context_manager_holds_the_lock_inside_only(location: Location) -> None:
    with ObjectLock(location) as lock:
        assert read_body(location) is not None
        assert lock.held
    assert read_body(location) is None
    with pytest.raises(StoreError, match="is not held"):
        lock.check()


def test_a_second_lock_on_the_dataset_is_refused_at_once_naming_the_holder(
    location: Location, locks: Callable[..., ObjectLock]
) -> None:
    first = locks(location)
    first.acquire()
    token = read_body(location)["token"]  # type: ignore[index]
    second = locks(location)
    start = time.monotonic()
    with pytest.raises(StoreError) as err:
        second.acquire()
    assert time.monotonic() - start < 2.0
    message = str(err.value)
    assert message.startswith(f"an export is already running on {location.display} (")
    assert f"pid {os.getpid()} on {HOST} since " in message
    assert message.endswith("; wait for it to finish")
    assert not second.held
    # The refused lock left the holder's object alone, and releasing it changes nothing.
    second.release()
    assert read_body(location)["token"] == token  # type: ignore[index]
    first.check()


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_at_once(
    location: Location, locks: Callable[..., ObjectLock], caplog: pytest.LogCaptureFixture
) -> None:
    pid = dead_pid()
    left = write_body(location, pid=pid, host=HOST)  # renewed just now: only the pid is stale
    lock = locks(location)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        lock.acquire()
    assert time.monotonic() - start < 2.0
    body = read_body(location)
    assert body is not None
    assert (body["pid"], body["token"]) != (pid, left["token"])
    assert body["pid"] == os.getpid()
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert warnings == [
        f"taking over the stale lock of pid {pid} on {HOST} since {left['started']} "
        "(its process is gone)"
    ]


def test_a_fresh_lock_of_another_host_is_refused(
    location: Location, locks: Callable[..., ObjectLock]
) -> None:
    left = write_body(location)
    with pytest.raises(StoreError, match="already running") as err:
        locks(location).acquire()
    assert f"(pid 4242 on other-host.example since {left['started']})" in str(err.value)
    assert read_body(location) == left


def test_a_lock_of_another_host_whose_lease_lapsed_is_taken_over(
    location: Location, locks: Callable[..., ObjectLock], caplog: pytest.LogCaptureFixture
) -> None:
    renewed = datetime.now(UTC) - timedelta(seconds=200)
    write_body(location, renewed=renewed.isoformat(timespec="milliseconds"))
    lock = locks(location)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        lock.acquire()
    assert read_body(location)["pid"] == os.getpid()  # type: ignore[index]
    lapsed = (renewed + timedelta(seconds=120)).isoformat(timespec="seconds")
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 1
    assert messages[0].startswith("taking over the stale lock of pid 4242 on other-host.example")
    assert messages[0].endswith(f"(its lease lapsed at {lapsed})")


def test_of_two_takers_of_a_lapsed_lock_exactly_one_wins(
    location: Location, locks: Callable[..., ObjectLock]
) -> None:
    stale = (datetime.now(UTC) - timedelta(minutes=10)).isoformat(timespec="milliseconds")
    write_body(location, renewed=stale)
    takers = [locks(location) for _ in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(takers))

    def take(lock: ObjectLock) -> None:
        barrier.wait()
        try:
            lock.acquire()
        except StoreError as exc:
            outcomes.append(str(exc))
        else:
            outcomes.append("won")

    threads = [threading.Thread(target=take, args=(lock,)) for lock in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes)[-1] == "won"
    assert outcomes.count("won") == 1
    refused = [o for o in outcomes if o != "won"]
    assert all(o.startswith("an export is already running") for o in refused)
    winner = next(lock for lock in takers if lock.held)
    assert read_body(location)["token"] == winner._token  # type: ignore[index]


def test_a_body_that_is_not_a_lock_is_refused_naming_the_object(
    location: Location, locks: Callable[..., ObjectLock]
) -> None:
    obstore.put(location.object_store(), LOCK_KEY, b"hello")
    with pytest.raises(StoreError) as err:
        locks(location).acquire()
    assert str(err.value) == (
        f"{location.uri}/_lock exists but is not an export lock; if no export runs on "
        f"{location.display}, delete it and run again"
    )
    assert read_object_lock_holder(location) == {"pid": None, "host": None, "started": None}


def test_the_heartbeat_keeps_the_lock_past_its_lease(
    location: Location, locks: Callable[..., ObjectLock]
) -> None:
    lock = locks(location, lease=timedelta(seconds=2), heartbeat_s=0.3)
    lock.acquire()
    first = read_body(location)
    assert first is not None
    assert first["lease_s"] == 2.0
    time.sleep(2.6)
    lock.check()
    later = read_body(location)
    assert later is not None
    assert later["token"] == first["token"]
    assert later["started"] == first["started"]
    renewed = datetime.fromisoformat(later["renewed"])
    assert renewed > datetime.fromisoformat(first["renewed"]) + timedelta(seconds=1.5)
    assert datetime.now(UTC) - renewed < timedelta(seconds=1.5)
    with pytest.raises(StoreError, match="already running"):
        locks(location).acquire()


def test_a_takeover_by_someone_else_makes_check_raise(
    location: Location, locks: Callable[..., ObjectLock], caplog: pytest.LogCaptureFixture
) -> None:
    lock = locks(location, lease=timedelta(seconds=5), heartbeat_s=0.2)
    lock.acquire()
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        taker = write_body(location, host="taker.example", pid=777)
        assert wait_for(lambda: not lock.held, timeout=3.0)
    with pytest.raises(StoreError) as err:
        lock.check()
    assert str(err.value) == (
        f"lost the export lock {location.uri}/_lock: another export took it over "
        f"(pid 777 on taker.example since {taker['started']})"
    )
    assert any("lost the export lock" in r.getMessage() for r in caplog.records)
    # Release leaves the taker's lock in place.
    lock.release()
    assert read_body(location) == taker


def test_a_store_that_refuses_renewals_loses_the_lock_after_the_lease(
    s3_server: S3Server,
    s3_bucket: str,
    locks: Callable[..., ObjectLock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with S3Proxy(s3_server.endpoint) as proxy:
        options = {**s3_server.storage_options, "endpoint": proxy.endpoint}
        location = resolve_location(f"s3://{s3_bucket}/ds", options, environ={})
        lock = locks(location, lease=timedelta(seconds=1.5), heartbeat_s=0.25)
        lock.acquire()
        assert lock.conditional_writes is True  # the headers went through
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            proxy.fail_with = 403
            # check() gives up once less than one heartbeat of the lease is left, before the
            # heartbeat itself declares the lock lost at the full lease.
            assert wait_for(lambda: _check_fails(lock), timeout=3.0)
            assert wait_for(lambda: not lock.held, timeout=3.0)
        with pytest.raises(StoreError, match=r"could not be renewed for \d+ s: "):
            lock.check()
        retries = [r.getMessage() for r in caplog.records if "will try again" in r.getMessage()]
        assert retries
        assert all(s3_server.storage_options["secret_access_key"] not in m for m in retries)
        # Release cannot reach the store: it logs and does not raise.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            lock.release()
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 1
        assert messages[0].startswith(
            f"could not remove {location.uri}/_lock (left to its lease): "
            "The operation lacked the necessary privileges"
        )
        proxy.fail_with = None
        assert read_body(location) is not None  # left to its lease


def _check_fails(lock: ObjectLock) -> bool:
    try:
        lock.check()
    except StoreError:
        return True
    return False


def test_a_store_that_ignores_conditional_writes_is_detected_and_logged(
    s3_server: S3Server,
    s3_bucket: str,
    locks: Callable[..., ObjectLock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with S3Proxy(s3_server.endpoint, drop_conditional=True) as proxy:
        options = {**s3_server.storage_options, "endpoint": proxy.endpoint}
        location = resolve_location(f"s3://{s3_bucket}/ds", options, environ={})
        lock = locks(location, lease=timedelta(seconds=5), heartbeat_s=0.2)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            lock.acquire()
        assert lock.conditional_writes is False
        assert proxy.dropped[:2] == ["PUT if-none-match", "PUT if-none-match"]
        assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
            f"the store of {location.display} ignores conditional writes (If-None-Match): "
            "concurrent exports cannot be refused on it; make sure only one export runs "
            "at a time"
        ]
        # The heartbeat still renews, and still notices a takeover by reading first.
        assert wait_for(lambda: "PUT if-match" in proxy.dropped, timeout=2.0)
        lock.check()
        taker = write_body(location, host="taker.example")
        assert wait_for(lambda: not lock.held, timeout=2.0)
        with pytest.raises(StoreError, match=r"took it over \(pid 4242 on taker.example"):
            lock.check()
        lock.release()
        assert read_body(location) == taker


def test_read_object_lock_holder_reports_only_a_live_lock(
    location: Location, locks: Callable[..., ObjectLock]
) -> None:
    assert read_object_lock_holder(location) is None
    lock = locks(location)
    lock.acquire()
    holder = read_object_lock_holder(location)
    assert holder is not None
    assert (holder["pid"], holder["host"], holder["lease_s"]) == (os.getpid(), HOST, 120.0)
    assert holder["started"] == read_body(location)["started"]  # type: ignore[index]
    assert "token" not in holder
    lock.release()
    assert read_object_lock_holder(location) is None

    fresh = write_body(location)
    assert read_object_lock_holder(location) == {
        "pid": 4242,
        "host": "other-host.example",
        "started": fresh["started"],
        "renewed": fresh["renewed"],
        "lease_s": 120.0,
    }
    lapsed = (datetime.now(UTC) - timedelta(minutes=3)).isoformat(timespec="milliseconds")
    write_body(location, renewed=lapsed)
    assert read_object_lock_holder(location) is None
    write_body(location, host=HOST, pid=dead_pid())
    assert read_object_lock_holder(location) is None


def test_bad_settings_are_refused(location: Location, tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="local directory"):
        ObjectLock(resolve_location(tmp_path))
    with pytest.raises(ConfigError, match="lease must be positive"):
        ObjectLock(location, lease=timedelta(0))
    with pytest.raises(ConfigError, match="heartbeat must be between 0 and the lease"):
        ObjectLock(location, lease=timedelta(seconds=1), heartbeat_s=1.0)
    assert ObjectLock(location).heartbeat_s == 30.0


def test_a_store_that_turns_us_away_is_a_store_error_without_secrets(
    s3_server: S3Server, s3_bucket: str, locks: Callable[..., ObjectLock]
) -> None:
    secret = "very-secret-key-0123456789"
    with S3Proxy(s3_server.endpoint) as proxy:
        proxy.fail_with = 403
        options = {
            **s3_server.storage_options,
            "endpoint": proxy.endpoint,
            "secret_access_key": secret,
        }
        location = resolve_location(f"s3://{s3_bucket}/ds", options, environ={})
        lock = locks(location)
        with pytest.raises(StoreError) as err:
            lock.acquire()
        with pytest.raises(StoreError) as status_err:
            read_object_lock_holder(location)
    message = str(err.value)
    assert message.startswith(f"cannot create {location.uri}/_lock: ")
    assert "403" in message
    assert str(status_err.value).startswith(f"cannot read {location.uri}/_lock: ")
    assert secret not in message + str(status_err.value)
    assert "\n" not in message
    assert not lock.held
