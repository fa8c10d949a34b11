"""Shared pytest fixtures.

Emulator fixtures: ``emulator`` is one small emulator for the whole session — read it, page
through it, but do not ``advance()`` it or change its faults (other tests share it); take a
private one from ``make_emulator`` for that.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from s3_server import S3Server

from cijobs_analytics.emulator import Emulator

#: The end of the session emulator's history: fixed, so its jobs are the same in every run.
EMULATOR_END = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """A running emulator with 600 jobs over 2 days up to ``EMULATOR_END`` (seed 11). Shared:
    do not advance it or change its faults."""
    with Emulator(jobs=600, days=2.0, seed=11, end=EMULATOR_END) as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """A factory of private, running emulators (stopped after the test). Keyword arguments go
    to :class:`Emulator`; the defaults are 300 jobs over 1 day up to ``EMULATOR_END``."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("jobs", 300)
        kwargs.setdefault("days", 1.0)
        kwargs.setdefault("end", EMULATOR_END)
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server in a child process for the whole session (stopped at its end)."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on ``s3_server``, unique to the test."""
    return s3_server.create_bucket(f"t-{uuid.uuid4().hex[:12]}")


_NOTEBOOK_TEST = "test_notebook_runs_against_a_dataset"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name each executed notebook and its outcome at the end of every run."""
    lines = []
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if report.when == "call" and _NOTEBOOK_TEST in report.nodeid:
                notebook = report.nodeid.split("[", 1)[1].rstrip("]")
                lines.append(f"notebooks/{notebook}: executed, {outcome}")
    if lines:
        terminalreporter.section("notebooks")
        for line in sorted(lines):
            terminalreporter.line(line)
