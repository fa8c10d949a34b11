"""Stopping a command: SIGTERM (systemd stop, `timeout`) stops it the way Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cijobs_analytics.emulator import Emulator


def _cijobs(*args: str) -> list[str]:
    return [sys.executable, "-m", "cijobs_analytics", *args]


def _env(emu: Emulator) -> dict[str, str]:
    env = emu.environ()
    env["CI"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [
        (signal.SIGTERM, 143, "cijobs: stopped by SIGTERM"),
        (signal.SIGINT, 130, "cijobs: interrupted"),
    ],
)
def test_a_stopped_export_keeps_its_rows_and_records_a_failed_run(
    make_emulator: Callable[..., Emulator],
    tmp_path: Path,
    signum: signal.Signals,
    code: int,
    message: str,
) -> None:
    """Signalled mid-listing (rows still buffered: no commit yet), an export commits them,
    records the run as failed, says so on one line and exits 128 + the signal number."""
    emu = make_emulator(jobs=3000, days=2.0, seed=8, end=None, latency_ms=200)
    dataset = tmp_path / "dataset"
    service = ["--bucket", emu.bucket, "--region", emu.region, "--endpoint", emu.url]
    # One worker: about 40 pages at 200 ms each, so the run is mid-listing when signalled.
    argv = ["--since", "3d", "--workers", "1", "--no-progress"]
    export = subprocess.Popen(
        _cijobs("export", "--dataset", str(dataset), *service, *argv),
        env=_env(emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while emu.stats().requests < 8:
        assert export.poll() is None, export.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    export.send_signal(signum)
    _, err = export.communicate(timeout=60)
    assert export.returncode == code, err
    assert err.splitlines() == [message]

    status = subprocess.run(
        _cijobs("status", "--dataset", str(dataset), "--format", "json"),
        env=_env(emu),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["runs"] == 1
    assert data["last_run"]["status"] == "failed"
    expected = "SIGTERM" if signum == signal.SIGTERM else "KeyboardInterrupt"
    assert expected in data["last_run"]["errors"]
    assert 0 < data["jobs"] < 3000
    assert data["running"] is None
    assert not (dataset / ".lock").exists()


def test_sigterm_stops_the_emulator_cleanly(tmp_path: Path) -> None:
    """`cijobs emulate` under systemd: SIGTERM stops it with its message and exit 0."""
    env = dict(os.environ)
    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
        env.pop(name, None)
    server = subprocess.Popen(
        _cijobs("emulate", "--port", "0", "--jobs", "1", "--days", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    lines = [server.stdout.readline()]
    while lines[-1] and lines[-1] != "Press Ctrl-C to stop.\n":
        lines.append(server.stdout.readline())
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=30)
    assert lines[0].startswith("cijobs emulate: 1 job of bucket "), lines
    assert lines[-1] == "Press Ctrl-C to stop.\n"
    assert out == ""
    assert server.returncode == 0
    assert err.splitlines() == ["cijobs emulate: stopped"]
