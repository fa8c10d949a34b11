"""Write the notebooks of this folder from the cells below (outputs stripped).

The notebooks are committed; edit the cells here and run ``python notebooks/build_notebooks.py``
so that the committed files stay reviewable as code. ``tests/test_notebooks.py`` checks that the
committed files equal what this script writes, then executes them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
%matplotlib inline
import os

import cijobs_analytics as cj
from cijobs_analytics.demo import build_demo_dataset

# Point CIJOBS_DATASET at a dataset written by `cijobs export`; without it, this notebook
# starts its own emulator and exports a small week of jobs into a scratch directory.
DATASET = os.environ.get("CIJOBS_DATASET")
if not DATASET:
    DATASET, _, _ = build_demo_dataset("notebook_dataset", jobs=3_000)
con = cj.connect(DATASET)
print(DATASET)"""

EXPLORE = [
    new_markdown_cell(
        "# Explore a job history\n\n"
        "Connect to a dataset, ask it questions in SQL, pull DataFrames, and plot throughput "
        "and latency. Every time is UTC."
    ),
    new_code_cell(SETUP),
    new_markdown_cell("## What is in the dataset\n\nThe `jobs` view holds one row per job."),
    new_code_cell(
        'con.sql("""\n'
        "    SELECT count(*) AS jobs,\n"
        "           min(creation_time) AS first_created,\n"
        "           max(creation_time) AS last_created,\n"
        "           round(sum(duration_s) / 3600, 1) AS media_hours\n"
        "    FROM jobs\n"
        '""").df()'
    ),
    new_code_cell(
        'con.sql("""\n'
        "    SELECT tag, count(*) AS jobs, count(*) FILTER (WHERE state = 'Failed') AS failed\n"
        "    FROM jobs GROUP BY tag ORDER BY jobs DESC\n"
        '""").df()'
    ),
    new_markdown_cell("## Throughput\n\nJobs and media minutes per six hours, by job type."),
    new_code_cell(
        'throughput = cj.reports.throughput(con, freq="6h", by="tag")\nthroughput.head(10)'
    ),
    new_code_cell("cj.plots.throughput(throughput)"),
    new_markdown_cell(
        "## Latency\n\nHow long jobs wait in their queue, how long they take, and how fast "
        "they run relative to the media's own duration (`speed_x`)."
    ),
    new_code_cell('latency = cj.reports.latency(con, by="tag")\nlatency'),
    new_code_cell("cj.plots.latency(latency)"),
    new_markdown_cell(
        "## Streams\n\nThe `streams` view has one row per media stream of each job's output."
    ),
    new_code_cell(
        'con.sql("""\n'
        "    SELECT kind, codec_name, count(*) AS streams, count(DISTINCT job_id) AS jobs\n"
        "    FROM streams GROUP BY kind, codec_name ORDER BY streams DESC\n"
        '""").df()'
    ),
    new_code_cell("cj.reports.media(con)"),
]

FAILURES = [
    new_markdown_cell(
        "# Failure analysis\n\n"
        "Which job types, queues and inputs fail, with which codes, and what the slow jobs have "
        "in common. Every time is UTC."
    ),
    new_code_cell(SETUP),
    new_markdown_cell("## Failure rate by job type and by queue"),
    new_code_cell('by_tag = cj.reports.failures(con, by="tag")\nby_tag'),
    new_code_cell("cj.plots.failures(by_tag)"),
    new_code_cell('cj.reports.failures(con, by="queue_id")'),
    new_markdown_cell("## Error codes and messages"),
    new_code_cell("errors = cj.reports.errors(con, limit=10)\nerrors"),
    new_code_cell("cj.plots.errors(errors)"),
    new_code_cell(
        'con.sql("""\n'
        "    SELECT input_object, count(*) AS failures, any_value(code) AS code\n"
        "    FROM jobs WHERE state = 'Failed'\n"
        "    GROUP BY input_object ORDER BY failures DESC LIMIT 10\n"
        '""").df()'
    ),
    new_markdown_cell("## The slowest jobs"),
    new_code_cell(
        'con.sql("""\n'
        "    SELECT job_id, tag, round(processing_s) AS processing_s,\n"
        "           round(duration_s) AS media_s,\n"
        "           round(speed_x, 2) AS speed_x, video_codec, video_height\n"
        "    FROM jobs WHERE processing_s IS NOT NULL\n"
        "    ORDER BY processing_s DESC LIMIT 10\n"
        '""").df()'
    ),
    new_markdown_cell(
        "## Stream-level questions\n\n"
        "Do outputs with several audio tracks take longer per media minute? The `streams` view "
        "joins back to `jobs` on `job_id`."
    ),
    new_code_cell(
        'con.sql("""\n'
        "    WITH audio AS (\n"
        "        SELECT job_id, count(*) AS audio_streams FROM streams\n"
        "        WHERE kind = 'audio' GROUP BY job_id\n"
        "    )\n"
        "    SELECT audio.audio_streams, count(*) AS jobs,\n"
        "           round(median(jobs.processing_s / nullif(jobs.duration_s, 0)), 3)\n"
        "               AS median_processing_s_per_media_s\n"
        "    FROM jobs JOIN audio USING (job_id)\n"
        "    GROUP BY audio.audio_streams ORDER BY audio.audio_streams\n"
        '""").df()'
    ),
    new_markdown_cell("## Backlog over time"),
    new_code_cell('backlog = cj.reports.backlog(con, freq="6h")\ncj.plots.backlog(backlog)'),
]

NOTEBOOKS = {
    "01-explore-jobs.ipynb": EXPLORE,
    "02-failure-analysis.ipynb": FAILURES,
}


def render(cells: list[nbformat.NotebookNode]) -> str:
    """The notebook file text for these cells, with stable cell ids and no outputs."""
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for number, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{number:02d}"
    return nbformat.writes(nb) + "\n"


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        (HERE / name).write_text(render(cells), encoding="utf-8")


if __name__ == "__main__":
    main()
