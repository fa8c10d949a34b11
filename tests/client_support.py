"""Helpers shared by the client tests: a fast-retrying client for an emulator, paging, truth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cijobs_analytics.client import CIClient, Page
from cijobs_analytics.config import Credentials
from cijobs_analytics.emulator import Emulator

MakeEmulator = Callable[..., Emulator]

#: Retry sleeps kept tiny so fault tests stay fast.
FAST: dict[str, Any] = {"backoff": 0.01, "max_backoff": 0.05}

#: Credentials for servers that are not the emulator.
CREDS = Credentials("AKIDexample", "very-secret-key", "very-secret-token")


def client_for(emu: Emulator, credentials: Credentials | None = None, **kwargs: Any) -> CIClient:
    """A client of ``emu`` with fast retries (10 of them) and short timeouts."""
    options = {**FAST, "max_retries": 10, "timeout": (2.0, 5.0), **kwargs}
    return CIClient(emu.bucket, emu.region, credentials or emu.credentials, emu.url, **options)


def page_all(client: CIClient, tag: str, **kwargs: Any) -> tuple[list[tuple[str, str]], list[Page]]:
    """Page through one query to its end; returns (job_id, state) rows and the pages."""
    rows: list[tuple[str, str]] = []
    pages: list[Page] = []
    token: str | None = None
    while True:
        page = client.list_jobs(tag, next_token=token, **kwargs)
        pages.append(page)
        rows += zip(
            page.table.column("job_id").to_pylist(),
            page.table.column("state").to_pylist(),
            strict=True,
        )
        token = page.next_token
        if not token or page.table.num_rows == 0:
            return rows, pages


def truth_rows(emu: Emulator, **kwargs: Any) -> list[tuple[str, str]]:
    """(job_id, state) of the emulator's jobs matching ``Emulator.truth(**kwargs)``."""
    return [(job.job_id, job.state) for job in emu.truth(**kwargs)]


class CountingLimiter:
    """A RateLimiter that lets everything through and counts the calls."""

    def __init__(self) -> None:
        self.acquired = 0
        self.throttle_calls = 0

    def acquire(self) -> None:
        """Count a request."""
        self.acquired += 1

    def throttled(self) -> None:
        """Count a throttling answer."""
        self.throttle_calls += 1


class FakeClock:
    """A clock the bucket reads and sleeps on; sleeping moves it forward instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
