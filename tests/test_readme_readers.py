"""The README's ways of reading a dataset without this package run as written and read its jobs.

The pandas, Polars and DuckDB blocks of the README's "Reading the dataset elsewhere" section are
taken from README.md itself, so the README cannot drift from what works. Each is pointed at a
dataset exported from a private emulator in two runs (the second replaces files, so the table's
directory holds more Parquet files than its newest version) and run in a fresh interpreter:
it must exit 0 (an abort at interpreter exit, 134, fails) and read exactly the jobs, each once,
that ``cj.connect`` shows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable

import cijobs_analytics as cj
from cijobs_analytics.client import CIClient
from cijobs_analytics.emulator import Emulator

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Reading the dataset elsewhere"
#: How the README's examples name the dataset; replaced by the test dataset's path.
PLACEHOLDER = '"jobs_dataset/'
#: Appended to each reader's block: the job ids it read, from the names the block defines.
EPILOGUE = {
    "pandas": 'ids = df["job_id"].tolist()',
    "polars": 'ids = df["job_id"].to_list()',
    "duckdb": 'ids = [row[0] for row in con.sql("SELECT job_id FROM jobs").fetchall()]',
}
#: What writes the ids where the test reads them (``python -c CODE OUT``: OUT is sys.argv[1]).
WRITE_IDS = "import json, sys\nopen(sys.argv[1], 'w').write(json.dumps(ids))\n"


def reader_blocks() -> dict[str, str]:
    """The section's ```python blocks of local readers, by the library each one imports.

    Blocks for a bucket (``s3://``) and blocks that import none of the readers (Spark) are
    left out: they need a store or a JVM.
    """
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found: dict[str, list[str]] = {name: [] for name in EPILOGUE}
    for block in re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL):
        if "s3://" in block:
            continue
        for name in EPILOGUE:
            if re.search(rf"^import {name}\b", block, flags=re.MULTILINE):
                found[name].append(block)
    assert {name: len(blocks) for name, blocks in found.items()} == dict.fromkeys(EPILOGUE, 1)
    return {name: blocks[0] for name, blocks in found.items()}


@pytest.fixture
def dataset(make_emulator: Callable[..., Emulator], tmp_path: Path) -> Path:
    """A dataset of two exports; the second finishes open jobs, replacing the files holding them."""
    emu = make_emulator(jobs=300, days=1.0, seed=17, end=None)
    client = CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url)
    path = tmp_path / "jobs_dataset"
    cj.export(client, path, since="2d", progress=False)
    assert emu.advance(finish=1.0, new_jobs=20).finished
    second = cj.export(client, path, progress=False)
    assert second.jobs_updated > 0
    on_disk = list((path / "jobs").rglob("*.parquet"))
    assert len(on_disk) > len(DeltaTable(str(path / "jobs")).file_uris())
    return path


def test_the_readme_shows_one_local_block_per_reader() -> None:
    blocks = reader_blocks()
    for name, block in blocks.items():
        assert PLACEHOLDER in block, f'the {name} block does not read {PLACEHOLDER}..."'


@pytest.mark.parametrize("reader", sorted(EPILOGUE))
def test_a_readme_reader_exits_0_and_reads_the_jobs_connect_shows(
    reader: str, dataset: Path, tmp_path: Path
) -> None:
    block = reader_blocks()[reader]
    pointed = block.replace(PLACEHOLDER, '"' + str(dataset) + "/")
    code = f"{pointed}\n{EPILOGUE[reader]}\n{WRITE_IDS}"
    out = tmp_path / f"{reader}.json"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    got = json.loads(out.read_text(encoding="utf-8"))
    with cj.connect(dataset) as con:
        want = [row[0] for row in con.execute("SELECT job_id FROM jobs").fetchall()]
    assert len(want) == len(set(want)) == 320
    assert len(got) == len(want)
    assert sorted(got) == sorted(want)
