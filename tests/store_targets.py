"""Where the export tests write: a local directory, or a prefix in a bucket of the S3 server.

Every export test runs against both (the ``target`` fixture of the test modules): the same
calls with a path or with ``s3://bucket/ds`` and the storage options of moto's server, whose
``cijobs`` child processes get the server through the ``AWS_*`` environment instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

import cijobs_analytics as cj
from cijobs_analytics._location import Location, resolve_location
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.query import read_arrow

__all__ = ["KINDS", "Target", "make_target"]

#: The kinds of dataset location every export test runs against.
KINDS = ("local", "s3")


@dataclass(frozen=True)
class Target:
    """A dataset location and how to reach it from this process and from a child."""

    kind: str
    uri: str
    storage_options: dict[str, str] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def location(self) -> Location:
        return resolve_location(self.uri, self.storage_options)

    def jobs_table(self) -> DeltaTable:
        """The ``jobs`` Delta table, read with deltalake itself."""
        return DeltaTable(f"{self.uri}/jobs", storage_options=self.storage_options)

    def version(self) -> int:
        return self.jobs_table().version()

    def rows(self, columns: tuple[str, ...], **connect_args: Any) -> dict[str, dict[str, Any]]:
        """The jobs as ``cj.connect`` shows them: ``{job_id: {column: value}}``."""
        names = ", ".join(("job_id", *columns))
        with cj.connect(self.uri, storage_options=self.storage_options, **connect_args) as con:
            table = read_arrow(con, f"SELECT {names} FROM jobs")  # noqa: S608
        out: dict[str, dict[str, Any]] = {}
        for row in table.to_pylist():
            assert row["job_id"] not in out, f"{row['job_id']} is in the jobs view twice"
            out[row["job_id"]] = {name: row[name] for name in columns}
        return out

    def export(self, client: cj.CIClient, **kwargs: Any) -> cj.ExportResult:
        kwargs.setdefault("progress", False)
        return cj.export(client, self.uri, storage_options=self.storage_options, **kwargs)

    def status(self, **kwargs: Any) -> cj.DatasetStatus:
        return cj.read_status(self.uri, storage_options=self.storage_options, **kwargs)

    def child_env(self, emulator: Emulator) -> dict[str, str]:
        """The environment of a ``cijobs`` child: the emulator's key, and the S3 server's."""
        return {**emulator.environ(), **self.env}


def make_target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    """A fresh, empty dataset location of ``kind`` (``local`` or ``s3``)."""
    if kind == "local":
        return Target("local", str(tmp_path / "ds"))
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return Target("s3", f"s3://{bucket}/ds", dict(server.storage_options), server.environ(base={}))
