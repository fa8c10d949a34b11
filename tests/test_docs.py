"""The documentation that describes code is generated from it or checked against it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import click

from cijobs_analytics.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands() -> list[str]:
    assert isinstance(cli, click.Group)
    return sorted(cli.commands)


def test_cli_reference_equals_the_help_text() -> None:
    """Run `make docs` after changing a command."""
    builder = _load(ROOT / "docs" / "build_cli_doc.py")
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == builder.render()


def test_cli_reference_covers_every_command_with_an_example() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = re.split(r"^## cijobs ", text, flags=re.MULTILINE)[1:]
    assert sorted(section.split("\n", 1)[0] for section in sections) == _commands()
    for section in sections:
        assert "Example: cijobs " in section, section.split("\n", 1)[0]


def test_readme_opens_with_the_two_commands_and_names_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block
    for command in _commands():
        assert f"cijobs {command}" in readme, command


def test_docs_link_to_files_that_exist() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_performance_doc_has_a_section_per_benchmark() -> None:
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    for bench in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        assert f"## {bench.stem}" in text, bench.stem
