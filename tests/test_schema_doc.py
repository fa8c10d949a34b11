"""docs/schema.md documents JOBS_SCHEMA exactly: every column and struct field, type and order."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from cijobs_analytics.schema import JOBS_SCHEMA, OUTPUT_FILE_TYPE, STREAM_TYPE

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
_ROW = re.compile(r"^\|\s*`([a-z_0-9]+)`\s*\|\s*`([^`]+)`\s*\|(.*)\|\s*$")


def _doc_type(arrow_type: pa.DataType) -> str:
    """How the doc spells a type: Arrow's name, lists of structs shortened to list<struct>."""
    if pa.types.is_list(arrow_type):
        item = arrow_type.value_type
        return "list<struct>" if pa.types.is_struct(item) else f"list<{item}>"
    if pa.types.is_map(arrow_type):
        return f"map<{arrow_type.key_type}, {arrow_type.item_type}>"
    return str(arrow_type)


def _tables(text: str) -> dict[str, list[tuple[str, str, list[str]]]]:
    """The rows of each markdown table, under the heading it follows."""
    tables: dict[str, list[tuple[str, str, list[str]]]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            continue
        match = _ROW.match(line)
        if match:
            cells = [cell.strip() for cell in match.group(3).split("|")]
            tables.setdefault(heading, []).append((match.group(1), match.group(2), cells))
    return tables


@pytest.fixture(scope="module")
def tables() -> dict[str, list[tuple[str, str, list[str]]]]:
    return _tables(DOC.read_text(encoding="utf-8"))


def test_columns_match_jobs_schema_in_order(tables: dict[str, list[tuple[str, str, list[str]]]]):
    documented = [(name, doc_type) for name, doc_type, _ in tables["Columns"]]
    expected = [(field.name, _doc_type(field.type)) for field in JOBS_SCHEMA]
    assert documented == expected


def test_stream_fields_match_stream_type(tables: dict[str, list[tuple[str, str, list[str]]]]):
    documented = [(name, doc_type) for name, doc_type, _ in tables["`streams` fields"]]
    assert documented == [(field.name, _doc_type(field.type)) for field in STREAM_TYPE]
    assert JOBS_SCHEMA.field("streams").type.value_type == STREAM_TYPE


def test_output_file_fields_match_output_file_type(
    tables: dict[str, list[tuple[str, str, list[str]]]],
):
    documented = [(name, doc_type) for name, doc_type, _ in tables["`output_files` fields"]]
    assert documented == [(field.name, _doc_type(field.type)) for field in OUTPUT_FILE_TYPE]
    assert JOBS_SCHEMA.field("output_files").type.value_type == OUTPUT_FILE_TYPE


def test_every_documented_column_says_where_it_comes_from_and_what_null_means(
    tables: dict[str, list[tuple[str, str, list[str]]]],
):
    for heading in ("Columns", "`streams` fields", "`output_files` fields"):
        for name, _, (source, _unit, null_means) in tables[heading]:
            assert source, f"{heading}: {name} has no source path"
            assert null_means, f"{heading}: {name} does not say what null means"


def test_the_doc_check_notices_a_disagreement():
    """A doc whose row has the wrong type no longer matches: the check has teeth."""
    text = DOC.read_text(encoding="utf-8").replace(
        "| `progress` | `int32` |", "| `progress` | `int64` |"
    )
    documented = [(name, doc_type) for name, doc_type, _ in _tables(text)["Columns"]]
    expected = [(field.name, _doc_type(field.type)) for field in JOBS_SCHEMA]
    assert documented != expected
