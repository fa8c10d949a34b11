"""`make demo` installs the package with its runtime dependencies only; the other targets add
the dev tools, in either order. Checked with `make -n` on a copy: nothing is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = "-m pip install --quiet -e .\n"
DEV = "-m pip install --quiet -e '.[dev]'"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A directory holding the Makefile and pyproject.toml, as a fresh clone would."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _plan(clone: Path, target: str) -> str:
    """The commands `make <target>` would run (``make -n`` runs none of them)."""
    # Under `make test` the suite runs inside make, whose MAKEFLAGS/MAKELEVEL would make this
    # inner make print "Entering directory" lines: run it as a top-level make instead.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, "PYTHON=python3"],  # noqa: S607
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout


def _install(clone: Path, *stamps: str) -> None:
    """Pretend a venv exists and the given installs happened after pyproject.toml changed."""
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "bin" / "python").touch()
    later = (clone / "pyproject.toml").stat().st_mtime + 10
    for stamp in stamps:
        (clone / ".venv" / stamp).touch()
        os.utime(clone / ".venv" / stamp, (later, later))


def test_demo_on_a_fresh_clone_installs_no_dev_tools(clone: Path) -> None:
    plan = _plan(clone, "demo")
    assert "python3 -m venv .venv\n" in plan
    assert ".venv/bin/python " + RUNTIME in plan
    assert "[dev]" not in plan
    assert plan.rstrip().endswith(".venv/bin/cijobs demo --out demo_output")


@pytest.mark.parametrize("target", ["test", "test-fast", "lint", "typecheck", "bench", "docs"])
def test_the_tool_targets_install_the_dev_tools_after_a_demo(clone: Path, target: str) -> None:
    _install(clone, ".installed-runtime")
    plan = _plan(clone, target)
    assert ".venv/bin/python " + DEV in plan
    assert "touch .venv/.installed .venv/.installed-runtime\n" in plan  # covers the demo's too
    assert "-m venv" not in plan


def test_demo_after_the_dev_install_installs_nothing(clone: Path) -> None:
    _install(clone, ".installed", ".installed-runtime")
    assert _plan(clone, "demo") == ".venv/bin/cijobs demo --out demo_output\n"


def test_a_changed_pyproject_reinstalls_only_what_the_target_needs(clone: Path) -> None:
    _install(clone, ".installed", ".installed-runtime")
    edited = (clone / "pyproject.toml").stat().st_mtime + 20  # after both installs
    os.utime(clone / "pyproject.toml", (edited, edited))
    demo = _plan(clone, "demo")
    assert ".venv/bin/python " + RUNTIME in demo
    assert "[dev]" not in demo
    assert ".venv/bin/python " + DEV in _plan(clone, "lint")
