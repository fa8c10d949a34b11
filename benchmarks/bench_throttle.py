"""bench_throttle: `cijobs fetch` not told the service's limit, against 2 and 20 requests/s.

The emulator answers 503 ``SlowDown`` beyond its ``qps``. ``python -m cijobs_analytics fetch``
runs with its defaults (8 workers, no ``--qps``) as a whole process, so the only thing that can
slow it down is the service's throttling. For each limit it reports:

* completion: every job of the range, or the error that ended the run;
* the throttled share: requests the emulator answered ``SlowDown``, over all it received;
* jobs/s in the fetch against the limit-bound figure, ``qps x`` the jobs per page the run got
  (the most a run of those pages could reach at that limit).

The 2 requests/s case fetches about 80 pages (some 40 s); the 20 requests/s case is the
``bench_fetch`` history (20,000 jobs, 50 ms latency). Exits 1 if a fetch fails or misses jobs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from cijobs_analytics.emulator import Emulator

#: A fixed history, so every run fetches the same jobs.
HISTORY_END = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
DAYS = 3


@dataclass(frozen=True)
class Case:
    """One service limit and the history served under it."""

    qps: float
    jobs: int
    latency_ms: float


CASES = (Case(qps=2, jobs=5_000, latency_ms=20), Case(qps=20, jobs=20_000, latency_ms=50))

_SUMMARY = re.compile(r"(\d+) jobs in ([\d.]+) s .*?(\d+) requests for (\d+) pages")


@dataclass(frozen=True)
class Outcome:
    """What one fetch did, as the emulator and the CLI's summary line saw it."""

    case: Case
    expected: int
    fetched: int
    error: str | None
    requests: int
    slowdown: int
    pages: int
    fetch_s: float
    wall_s: float

    @property
    def complete(self) -> bool:
        return self.error is None and self.fetched == self.expected

    @property
    def throttled_share(self) -> float:
        return self.slowdown / max(self.requests, 1)

    @property
    def jobs_per_s(self) -> float:
        return self.fetched / self.fetch_s if self.fetch_s else 0.0

    @property
    def bound(self) -> float:
        """Jobs/s a run of these pages reaches at exactly the limit."""
        return self.case.qps * self.fetched / max(self.pages, 1)


def _run(case: Case, out: Path) -> Outcome:
    with Emulator(
        jobs=case.jobs,
        days=DAYS,
        seed=42,
        end=HISTORY_END,
        latency_ms=case.latency_ms,
        qps=case.qps,
    ) as emulator:
        start = emulator.end - timedelta(days=DAYS)
        expected = len(emulator.truth(start, emulator.end))
        env = emulator.environ()
        env["CI"] = "1"  # no progress bar in the figures
        argv = [
            sys.executable,
            "-m",
            "cijobs_analytics",
            "fetch",
            "--bucket",
            emulator.bucket,
            "--region",
            emulator.region,
            "--endpoint",
            emulator.url,
            "--start",
            start.isoformat(),
            "--end",
            emulator.end.isoformat(),
            "--out",
            str(out),
        ]
        emulator.reset_stats()
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall_s = time.perf_counter() - started
        served = emulator.stats()
    match = _SUMMARY.search(done.stderr)
    error = None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        error = lines[-1]
    return Outcome(
        case=case,
        expected=expected,
        fetched=pq.read_metadata(out).num_rows if error is None else 0,
        error=error,
        requests=served.requests,
        slowdown=served.by_code.get("SlowDown", 0),
        pages=int(match.group(4)) if match else 0,
        fetch_s=float(match.group(2)) if match else wall_s,
        wall_s=wall_s,
    )


def main() -> int:
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("cijobs fetch with its defaults (8 workers, no --qps) against a throttling emulator")
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            outcomes.append(_run(case, Path(tmp) / f"qps{case.qps:g}.parquet"))
    header = (
        f"{'limit':>9} {'jobs':>13} {'complete':>8} {'requests':>8} {'SlowDown':>14} "
        f"{'pages':>5} {'fetch s':>7} {'jobs/s':>7} {'bound':>7} {'of bound':>8}"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        done = "yes" if o.complete else "NO"
        print(
            f"{o.case.qps:>5g} q/s {o.fetched:>6}/{o.expected:<6} {done:>8} "
            f"{o.requests:>8} {o.slowdown:>5} ({o.throttled_share:>5.1%}) {o.pages:>5} "
            f"{o.fetch_s:>7.1f} {o.jobs_per_s:>7.0f} {o.bound:>7.0f} "
            f"{o.jobs_per_s / o.bound if o.bound else 0.0:>8.0%}"
        )
    print(
        "bound = limit x jobs per page of the run; jobs/s and fetch s from the CLI's summary "
        "(process start excluded)"
    )
    missed = [o for o in outcomes if not o.complete]
    for o in missed:
        reason = o.error or f"{o.fetched} of {o.expected} jobs"
        print(f"MISSED: --qps {o.case.qps:g} service: {reason}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
