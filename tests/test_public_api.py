"""The package's public names: exactly `__all__`, each documented, reachable after one import."""

from __future__ import annotations

import subprocess
import sys
import types

import cijobs_analytics as cj


def _public_names() -> set[str]:
    names = {
        name
        for name, value in vars(cj).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    return names | {"plots", "reports", "connect", "__version__"}


def test_all_lists_exactly_the_public_names() -> None:
    assert sorted(cj.__all__, key=str.lower) == sorted(_public_names(), key=str.lower)
    assert len(set(cj.__all__)) == len(cj.__all__)


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in cj.__all__:
        value = getattr(cj, name)
        if name in {"JOBS_SCHEMA", "OUTPUTS_SCHEMA", "STREAMS_SCHEMA", "TAGS", "__version__"}:
            continue
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_reports_and_plots_are_reachable_as_attributes() -> None:
    assert callable(cj.reports.throughput)
    assert callable(cj.plots.throughput)
    assert callable(cj.connect)


def test_the_design_examples_names_exist() -> None:
    """The names design §2 promises users."""
    for name in (
        "Credentials",
        "CIClient",
        "parse_response",
        "JOBS_SCHEMA",
        "fetch_jobs",
        "iter_jobs",
        "export",
        "connect",
        "reports",
        "plots",
    ):
        assert name in cj.__all__, name


def test_version_is_the_installed_distribution_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cijobs_analytics", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"cijobs, version {cj.__version__}"
    assert cj.__version__[0].isdigit()
