"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``).

Each benchmark times its baselines and the project's code in the same run and prints ratios,
so the figures compare like with like on whatever machine runs them. A benchmark that misses
its target exits non-zero; this runner reports every one and fails if any did.

``bench_query`` builds a 10-million-job Delta dataset on its first run (about two minutes,
630 MiB in ``benchmarks/_work/``) and reuses it afterwards; ``make clean`` removes it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    names = sys.argv[1:]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if any(n in s.stem for n in names)]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.stem}: exit {rc} in {time.perf_counter() - started:.1f} s", flush=True)
        if rc:
            failed.append(script.stem)
    if failed:
        print(f"\nmissed target or failed: {', '.join(failed)}")
        return 1
    print(f"\nall {len(scripts)} benchmarks met their targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
