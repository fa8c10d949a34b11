"""A faithful local emulator of the CI ``GET /jobs`` endpoint (DescribeMediaJobs).

It generates a deterministic job history (every documented tag, realistic media info, failed
and open jobs, jobs on the same second and on exact hours), serves it over HTTP with q-sign
signature verification and cursor pagination for its one bucket and region (a Host naming any
other is answered 400 ``InvalidHost``), and injects faults on demand: latency, a QPS limit,
500s, dropped connections, truncated bodies and the seed document's stray ``</Message>``.
It shares no code with the client: a signing bug cannot hide on both sides.

Example:
    >>> from cijobs_analytics.emulator import Emulator
    >>> with Emulator(jobs=500, days=2, seed=7) as emu:  # doctest: +SKIP
    ...     print(emu.url, len(emu.truth()))
"""

from __future__ import annotations

from .generate import EmulatedJob
from .handle import Emulator, demo_credentials
from .server import EmulatorStats, Faults
from .store import AdvanceResult

__all__ = [
    "AdvanceResult",
    "EmulatedJob",
    "Emulator",
    "EmulatorStats",
    "Faults",
    "demo_credentials",
]
