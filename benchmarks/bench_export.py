"""Benchmark the incremental export: memory that stays flat, rows written once, cheap re-runs.

Exports 100,000 and then 200,000 jobs (7 days, 3 queues) from the emulator into a local Delta
dataset, each with ``cijobs export`` in a child process, and polls the child's own peak RSS
(``VmHWM``, Linux). Re-runs the 100k export with nothing new and counts the requests it makes.
Then exports the same 100k jobs into a bucket of moto's S3 server on loopback (a child process,
as the tests start it) and reports its wall time beside the local one.

Targets: a first export writes at most 1.2x the jobs' rows (the rows of the data files its
commits add; the plain-Parquet store wrote 2.00x); the 200k run's peak RSS under 1.3x the 100k
run's and under 1 GiB; the no-change re-run under 10% of the first run's requests. Exits 1 when
one is missed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cijobs_analytics.emulator import Emulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from s3_server import S3Server  # the tests' loopback S3 server

RSS_RATIO_TARGET = 1.3
RSS_LIMIT_BYTES = 1 << 30
RERUN_SHARE_TARGET = 0.10
ROWS_WRITTEN_TARGET = 1.2
_ROWS_WRITTEN = re.compile(r"(\d+) rows written")


@dataclass(frozen=True)
class Run:
    jobs: int
    seconds: float
    peak_rss: int
    requests: int
    rows_written: int

    @property
    def rows_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def export(
    emu: Emulator, dataset: str, jobs: int, *extra: str, env: dict[str, str] | None = None
) -> Run:
    """Run ``cijobs export`` in a child process, polling its peak RSS."""
    env = {**emu.environ(), **(env or {})}
    command = [
        sys.executable,
        "-m",
        "cijobs_analytics",
        "export",
        "--dataset",
        dataset,
        "--bucket",
        emu.bucket,
        "--region",
        emu.region,
        "--endpoint",
        emu.url,
        "--no-progress",
        *extra,
    ]
    emu.reset_stats()
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _high_water_mark(proc.pid))
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.stderr.write(err.decode())
        raise SystemExit(f"export failed with exit {proc.returncode}")
    text = out.decode().strip()
    print("  " + text, flush=True)
    written = _ROWS_WRITTEN.search(text)
    return Run(jobs, seconds, peak, emu.stats().requests, int(written.group(1)) if written else -1)


def _high_water_mark(pid: int) -> int:
    """The child's peak RSS so far, in bytes (``VmHWM``; 0 once it has exited).

    ``wait4``'s ``ru_maxrss`` would not do: a child starts as a copy of this process, which
    holds the emulator's jobs, and the kernel carries that size over into the child's maximum.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    runs: dict[int, Run] = {}
    try:
        for size in (100_000, 200_000):
            with Emulator(jobs=size, days=7.0, seed=7, queues=3) as emu:
                dataset = work / f"ds_{size}"
                print(f"export {size:,} jobs ...", flush=True)
                runs[size] = export(emu, str(dataset), size, "--since", "8d")
                if size == 100_000:
                    print("re-run with no change ...", flush=True)
                    rerun = export(emu, str(dataset), 0)
                    with S3Server() as s3:
                        bucket = s3.create_bucket("bench-export")
                        print(f"export {size:,} jobs to s3://{bucket}/ds ...", flush=True)
                        remote = export(
                            emu, f"s3://{bucket}/ds", size, "--since", "8d", env=s3.environ({})
                        )
            shutil.rmtree(work / f"ds_{size}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    small, large = runs[100_000], runs[200_000]
    ratio = large.peak_rss / small.peak_rss
    share = rerun.requests / small.requests
    written = max(small.rows_written / small.jobs, large.rows_written / large.jobs)
    mib = 1 << 20
    print()
    print(
        f"{'run':<24}{'seconds':>9}{'rows/s':>10}{'peak RSS MiB':>14}{'requests':>10}"
        f"{'rows written':>14}"
    )
    for name, run in (
        ("100k first run", small),
        ("100k no-change re-run", rerun),
        ("200k first run", large),
        ("100k first run, S3", remote),
    ):
        print(
            f"{name:<24}{run.seconds:>9.1f}{run.rows_per_s:>10.0f}"
            f"{run.peak_rss / mib:>14.0f}{run.requests:>10}{run.rows_written:>14}"
        )
    print(f"rows written / jobs, first runs: {written:.2f}x (target <= {ROWS_WRITTEN_TARGET}x)")
    print(f"peak RSS 200k / 100k: {ratio:.2f} (target < {RSS_RATIO_TARGET})")
    print(f"peak RSS 200k: {large.peak_rss / mib:.0f} MiB (target < {RSS_LIMIT_BYTES // mib} MiB)")
    print(f"re-run requests / first run: {share:.1%} (target < {RERUN_SHARE_TARGET:.0%})")
    print(
        f"100k to S3 on loopback: {remote.seconds:.1f} s against {small.seconds:.1f} s locally "
        f"({remote.seconds / small.seconds:.2f}x)"
    )
    missed = []
    if written > ROWS_WRITTEN_TARGET or written < 0:
        missed.append("rows written")
    if ratio >= RSS_RATIO_TARGET:
        missed.append("RSS ratio")
    if large.peak_rss >= RSS_LIMIT_BYTES:
        missed.append("RSS limit")
    if share >= RERUN_SHARE_TARGET:
        missed.append("re-run requests")
    if missed:
        print(f"missed: {', '.join(missed)}")
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
