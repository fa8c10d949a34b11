"""The notebooks: committed without outputs, equal to their builder, and they run."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cijobs_analytics.demo import build_demo_dataset

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def _builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", NOTEBOOKS / "build_notebooks.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_notebooks_exist() -> None:
    assert NAMES == ["01-explore-jobs.ipynb", "02-failure-analysis.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_equals_its_builder_output(name: str) -> None:
    """Edit notebooks/build_notebooks.py, not the .ipynb, and rerun it."""
    builder = _builder()
    expected = builder.render(builder.NOTEBOOKS[name])
    assert (NOTEBOOKS / name).read_text(encoding="utf-8") == expected


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.fixture(scope="module")
def notebook_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dataset, _, _ = build_demo_dataset(tmp_path_factory.mktemp("nb") / "dataset", jobs=2_000)
    return dataset


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_against_a_dataset(
    name: str, notebook_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cell runs without error and the plotting cells show a PNG."""
    monkeypatch.setenv("CIJOBS_DATASET", str(notebook_dataset))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    plot_cells = [c for c in nb.cells if c.cell_type == "code" and "cj.plots." in c.source]
    assert len(images) >= len(plot_cells) >= 2
    assert str(notebook_dataset) in "".join(
        o.get("text", "") for o in nb.cells[1].outputs if o.output_type == "stream"
    )
    assert os.listdir(tmp_path) == []  # given a dataset, the notebook writes nothing beside it
