"""The end-to-end demo: an embedded emulator, two incremental exports and an HTML report.

``cijobs demo`` (and ``make demo``) runs :func:`run_demo`; the notebooks call
:func:`build_demo_dataset` when they are not given a dataset of their own.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .client import CIClient
from .emulator import Emulator
from .errors import ConfigError
from .report import write_report
from .store import ExportResult, export

__all__ = ["DemoResult", "build_demo_dataset", "run_demo"]

log = logging.getLogger(__name__)

#: A week of jobs: enough for every tag, queue and failure kind to show, small enough for 2 cores.
DEMO_JOBS = 20_000
DEMO_DAYS = 7.0
DEMO_SEED = 20261128
#: The file that marks a dataset as the demo's own: only such a directory is ever replaced.
DEMO_MARKER = ".cijobs-demo"


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced.

    Attributes:
        dataset: the dataset directory (Delta Lake tables).
        report: the HTML report, or None when only the dataset was built.
        first: the first (full) export.
        second: the second (incremental) export, after jobs advanced.
    """

    dataset: Path
    report: Path | None
    first: ExportResult
    second: ExportResult


def _say(echo: Callable[[str], None] | None, text: str) -> None:
    if echo is not None:
        echo(text)
    log.info(text)


def build_demo_dataset(
    out: str | Path,
    *,
    jobs: int = DEMO_JOBS,
    days: float = DEMO_DAYS,
    seed: int = DEMO_SEED,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> tuple[Path, ExportResult, ExportResult]:
    """Export a week of emulated jobs twice into ``out``, letting jobs advance in between.

    The directory is replaced only if an earlier demo made it (it holds ``DEMO_MARKER``); any
    other non-empty directory is refused, so the demo never deletes a user's data.

    Args:
        out: the dataset directory to create.
        jobs: how many jobs the emulator holds.
        days: over how many days before now they were created.
        seed: the emulator's seed.
        progress: show progress bars during the exports.
        echo: called with one line per step (``click.echo`` in the CLI).

    Returns:
        The dataset path and the two export results.

    Raises:
        ConfigError: ``out`` is a non-empty directory the demo did not make.
    """
    dataset = Path(out)
    if dataset.exists() and any(dataset.iterdir()):
        if not (dataset / DEMO_MARKER).is_file():
            raise ConfigError(
                f"{dataset} is not empty and was not made by cijobs demo (it has no "
                f"{DEMO_MARKER}); the demo replaces only its own output: choose another --out"
            )
        shutil.rmtree(dataset)
    dataset.mkdir(parents=True)
    (dataset / DEMO_MARKER).write_text(
        "made by cijobs demo; a later demo into the same place replaces this directory\n",
        encoding="utf-8",
    )
    _say(echo, f"starting the emulator: {jobs:,} jobs over {days:g} days (seed {seed})")
    # A little latency and a few 500s, so the run shows its retries as a real one would.
    with Emulator(jobs=jobs, days=days, seed=seed, latency_ms=5, fail_rate=0.02) as emulator:
        client = CIClient(
            bucket=emulator.bucket,
            region=emulator.region,
            credentials=emulator.credentials,
            endpoint=emulator.url,
        )
        _say(echo, f"export 1: every job of the last {days:g} days into {dataset}")
        first = export(client, dataset, since=f"{days:g}d", progress=progress)
        _say(echo, f"  {first}")
        advanced = emulator.advance(finish=1.0, new_jobs=max(50, jobs // 50))
        _say(
            echo,
            f"time passes: {len(advanced.finished)} open jobs finished, "
            f"{len(advanced.created)} new jobs created",
        )
        _say(echo, "export 2: incremental — new jobs, and the open ones refreshed")
        second = export(client, dataset, progress=progress)
        _say(echo, f"  {second}")
    return dataset, first, second


def run_demo(
    out: str | Path = "demo_output",
    *,
    jobs: int = DEMO_JOBS,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the whole demo into ``out``: ``out/dataset/`` and ``out/report.html``.

    Args:
        out: the output directory (created if missing).
        jobs: how many jobs the emulator holds.
        progress: show progress bars during the exports.
        echo: called with one line per step.

    Returns:
        The paths and export results.
    """
    root = Path(out)
    if (root / "jobs" / "_delta_log").is_dir() or (root / "_ledger").is_dir():
        raise ConfigError(
            f"{root} holds a cijobs dataset; the demo writes dataset/ and report.html into "
            "--out: choose a directory of its own"
        )
    report_path = root / "report.html"
    if report_path.exists() and not (root / "dataset" / DEMO_MARKER).is_file():
        raise ConfigError(f"{report_path} exists and was not written by cijobs demo")
    root.mkdir(parents=True, exist_ok=True)
    dataset, first, second = build_demo_dataset(
        root / "dataset", jobs=jobs, progress=progress, echo=echo
    )
    report = write_report(dataset, report_path)
    _say(echo, f"report: {report}")
    return DemoResult(dataset=dataset, report=report, first=first, second=second)
