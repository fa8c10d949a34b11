"""bench_fetch: `cijobs fetch` against the official SDK's sequential loop, both as processes.

One emulator (20,000 jobs over 3 days, 50 ms latency per request) runs in this process. Timed
in the same run, each as a whole process (interpreter start and imports included):

(a) the official Python SDK (``qcloud_cos``): for every tag, ``ci_list_media_jobs`` with
    ``NextToken`` until the token runs out, as its documentation shows;
(b) ``python -m cijobs_analytics fetch`` for the same range, writing a Parquet file.

Targets: (b) at least 4x faster than (a), with at most 1.5x the requests of (a). Then, with the
emulator limited to 20 requests/s and ``--qps 20``: the share of requests answered
``SlowDown`` and the jobs/s reached against the 2,000 jobs/s that limit allows (20 pages of
100 per second). Exits 1 if a target is missed or a fetch is incomplete.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from cijobs_analytics._times import to_wire
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.schema import TAGS

JOBS = 20_000
DAYS = 3
LATENCY_MS = 50
LIMITED_QPS = 20
TARGET_SPEEDUP = 4.0
MAX_REQUEST_RATIO = 1.5
ROUNDS = 2
#: A fixed history, so every run fetches the same jobs.
HISTORY_END = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

# The loop the SDK's documentation shows, over every tag; prints the job count as JSON.
SDK_LOOP = r"""
import json, os, sys
from qcloud_cos import CosConfig, CosS3Client

port, bucket, region, start, end = sys.argv[1:6]
tags = sys.argv[6].split(",")
config = CosConfig(
    Region=region,
    SecretId=os.environ["TENCENTCLOUD_SECRET_ID"],
    SecretKey=os.environ["TENCENTCLOUD_SECRET_KEY"],
    Scheme="http",
    IP="127.0.0.1",
    Port=int(port),
    Endpoint=f"ci.{region}.myqcloud.com",
)
client = CosS3Client(config)
jobs = 0
for tag in tags:
    token = ""
    while True:
        response = client.ci_list_media_jobs(
            Bucket=bucket, Tag=tag, StartCreationTime=start, EndCreationTime=end,
            OrderByTime="Asc", Size=100, NextToken=token,
        )
        page = response.get("JobsDetail") or []
        jobs += len(page)
        token = response.get("NextToken")
        if not token or not page:
            break
print(json.dumps({"jobs": jobs}))
"""

_SUMMARY = re.compile(r"(\d+) jobs in ([\d.]+) s")


def _env(emulator: Emulator) -> dict[str, str]:
    env = emulator.environ()
    env["CI"] = "1"  # no progress bar in the figures
    return env


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{argv[:3]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done


def _seconds(times: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in times) + " s"


def _fetch_argv(emulator: Emulator, out: Path, start: str, end: str, *extra: str) -> list[str]:
    return [
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
        start,
        "--end",
        end,
        "--out",
        str(out),
        *extra,
    ]


def main() -> int:
    print(f"emulator: {JOBS} jobs over {DAYS} days, {LATENCY_MS} ms latency per request")
    # Both sides share the cores with the emulator; a busy machine slows (b) more than (a).
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with Emulator(
        jobs=JOBS, days=DAYS, seed=42, end=HISTORY_END, latency_ms=LATENCY_MS
    ) as emulator:
        end = emulator.end
        start = end - timedelta(days=DAYS)
        expected = len(emulator.truth(start, end))
        env = _env(emulator)
        port = emulator.url.rsplit(":", 1)[1]
        # The SDK sends bounds verbatim; one second back makes its exclusive lower bound
        # return the jobs created exactly at `start`, so both sides fetch the same set.
        sdk_argv = [
            sys.executable,
            "-c",
            SDK_LOOP,
            port,
            emulator.bucket,
            emulator.region,
            to_wire(start - timedelta(seconds=1)),
            to_wire(end),
            ",".join(TAGS),
        ]

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "jobs.parquet"
            ours_argv = _fetch_argv(emulator, out, start.isoformat(), end.isoformat())
            # Best of ROUNDS, the two sides interleaved, so a burst of load from elsewhere on
            # the machine does not decide the ratio.
            sdk_times, ours_times = [], []
            for _ in range(ROUNDS):
                emulator.reset_stats()
                elapsed, sdk_done = _timed(sdk_argv, env)
                sdk_times.append(elapsed)
                sdk_jobs = json.loads(sdk_done.stdout)["jobs"]
                sdk_requests = emulator.stats().requests

                emulator.reset_stats()
                elapsed, ours_done = _timed(ours_argv, env)
                ours_times.append(elapsed)
                ours_requests = emulator.stats().requests
                ours_jobs = pq.read_metadata(out).num_rows
            sdk_s, ours_s = min(sdk_times), min(ours_times)

            emulator.set_faults(qps=LIMITED_QPS)
            emulator.reset_stats()
            limited_s, limited_done = _timed(
                _fetch_argv(
                    emulator, out, start.isoformat(), end.isoformat(), "--qps", str(LIMITED_QPS)
                ),
                env,
            )
            limited = emulator.stats()
            limited_jobs = pq.read_metadata(out).num_rows

            # The same limit, but the client is not told: only SlowDown answers slow it down.
            emulator.reset_stats()
            _, blind_done = _timed(
                _fetch_argv(emulator, out, start.isoformat(), end.isoformat()), env
            )
            blind = emulator.stats()
            blind_jobs = pq.read_metadata(out).num_rows

    match = _SUMMARY.search(limited_done.stderr)
    fetch_s = float(match.group(2)) if match else limited_s
    slowdown = limited.by_code.get("SlowDown", 0)
    speedup = sdk_s / ours_s
    ratio = ours_requests / sdk_requests
    allowed = LIMITED_QPS * 100
    print(f"jobs in range:                 {expected}")
    print(f"best of {ROUNDS} rounds; all: (a) {_seconds(sdk_times)}, (b) {_seconds(ours_times)}")
    print(f"(a) official SDK, sequential:  {sdk_s:6.2f} s  {sdk_requests:4d} requests  {sdk_jobs}")
    print(
        f"(b) cijobs fetch:              {ours_s:6.2f} s  {ours_requests:4d} requests  {ours_jobs}"
    )
    print(f"    {ours_done.stderr.strip()}")
    print(f"speed-up (a)/(b):              {speedup:6.2f}x  (target >= {TARGET_SPEEDUP}x)")
    print(f"requests (b)/(a):              {ratio:6.2f}x  (target <= {MAX_REQUEST_RATIO}x)")
    print(
        f"--qps {LIMITED_QPS} vs a {LIMITED_QPS} req/s service limit: {limited.requests} requests "
        f"({limited.requests / fetch_s:.1f} req/s), "
        f"{slowdown} SlowDown ({slowdown / max(limited.requests, 1):.1%}), "
        f"{limited_jobs / fetch_s:.0f} jobs/s in the fetch ({limited_jobs / limited_s:.0f} "
        f"with process start) of {allowed} jobs/s allowed "
        f"({limited_jobs / fetch_s / allowed:.0%})"
    )
    blind_match = _SUMMARY.search(blind_done.stderr)
    blind_s = float(blind_match.group(2)) if blind_match else float("nan")
    blind_slowdown = blind.by_code.get("SlowDown", 0)
    print(
        f"no --qps vs the same limit:     {blind.requests} requests "
        f"({blind.requests / blind_s:.1f} req/s), {blind_slowdown} SlowDown "
        f"({blind_slowdown / max(blind.requests, 1):.1%}), {blind_jobs / blind_s:.0f} jobs/s"
    )
    missed = []
    counts = (sdk_jobs, ours_jobs, limited_jobs, blind_jobs)
    if any(count != expected for count in counts):
        missed.append(f"job counts differ from the {expected} in range: {counts}")
    if speedup < TARGET_SPEEDUP:
        missed.append(f"speed-up {speedup:.2f}x < {TARGET_SPEEDUP}x")
    if ratio > MAX_REQUEST_RATIO:
        missed.append(f"request ratio {ratio:.2f}x > {MAX_REQUEST_RATIO}x")
    for reason in missed:
        print(f"MISSED: {reason}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
