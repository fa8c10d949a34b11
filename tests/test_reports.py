"""Every report against an independent pandas computation on the same rows.

The oracle functions below share no code with reports.py: they start from the job rows the
dataset was written from (the newest version of each job) and use plain pandas.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from job_datasets import T0, job, sample_jobs, stale_versions, write_dataset

import cijobs_analytics as cj
from cijobs_analytics import ConfigError, QueryError
from cijobs_analytics.query import connect, read_frame
from cijobs_analytics.schema import JOBS_SCHEMA

WIDTHS = {
    "1min": timedelta(minutes=1),
    "5min": timedelta(minutes=5),
    "15min": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}
# DuckDB's time_bucket origin for timestamps: Monday 2000-01-03, so weeks start on Monday.
ORIGIN = pd.Timestamp("2000-01-03", tz="UTC")
NONE = "\x00none"  # stands in for a null group while pandas groups and sorts


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return sample_jobs(150, tags=5)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]) -> Iterator[Any]:
    root = write_dataset(
        tmp_path_factory.mktemp("reports") / "ds", rows, stale=stale_versions(rows)
    )
    with connect(root) as connection:
        yield connection


@pytest.fixture(scope="module")
def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return to_frame(rows)


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pa.Table.from_pylist(rows, schema=JOBS_SCHEMA).to_pandas()
    for column in ("creation_time", "start_time", "end_time", "fetched_at", "not_found_at"):
        df[column] = pd.to_datetime(df[column], utc=True).astype("datetime64[us, UTC]")
    return df


FILTERS: list[dict[str, Any]] = [
    {},
    {"since": "2026-11-02", "until": "2026-11-03T12:00:00+08:00"},
    {"since": datetime(2026, 11, 1, 6, tzinfo=UTC)},
    {"until": "2026-11-02T00:00:00Z"},
    {"tags": ["Snapshot", "Animation"]},
    {"tags": "Transcode", "queue_ids": ["q2"]},
    {"since": "2030-01-01"},  # an empty range
]


def utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def apply_filters(df: pd.DataFrame, f: dict[str, Any]) -> pd.DataFrame:
    keep = pd.Series(True, index=df.index)
    if "since" in f:
        keep &= df["creation_time"] >= utc(f["since"])
    if "until" in f:
        keep &= df["creation_time"] < utc(f["until"])
    for column, key in (("tag", "tags"), ("queue_id", "queue_ids")):
        if key in f:
            values = [f[key]] if isinstance(f[key], str) else f[key]
            keep &= df[column].isin(values)
    return df[keep]


def bucket(times: pd.Series, freq: str) -> pd.Series:
    width = pd.Timedelta(WIDTHS[freq])
    return ORIGIN + ((times - ORIGIN) // width) * width


def group_key(df: pd.DataFrame, by: str | None) -> pd.Series:
    if by is None:
        return pd.Series(NONE, index=df.index)
    return df[by].astype(object).where(df[by].notna(), NONE)


def restore(out: pd.DataFrame, by: str | None) -> pd.DataFrame:
    if by is None:
        return out.drop(columns=["g"])
    out = out.rename(columns={"g": by})
    out[by] = out[by].replace(NONE, np.nan)
    return out


def sort_groups(values: pd.Series) -> pd.Series:
    """Nulls last, then code-point order (what DuckDB's ORDER BY ... NULLS LAST does)."""
    return values.map(lambda v: (v == NONE, "" if v == NONE else v))


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        actual.reset_index(drop=True),
        expected.reset_index(drop=True),
        check_dtype=False,
        check_index_type=False,
        check_column_type=False,
    )


# ------------------------------------------------------------------------------ oracles


def expected_throughput(df: pd.DataFrame, freq: str, by: str | None) -> pd.DataFrame:
    d = df[df["creation_time"].notna()].copy()
    columns = ["period", *([by] if by else []), "jobs", "succeeded", "failed", "media_minutes"]
    if d.empty:
        return pd.DataFrame(columns=columns)
    d["period"] = bucket(d["creation_time"], freq)
    d["g"] = group_key(d, by)
    d["ok"] = d["state"] == "Success"
    d["bad"] = d["state"] == "Failed"
    agg = d.groupby(["period", "g"]).agg(
        jobs=("job_id", "size"),
        succeeded=("ok", "sum"),
        failed=("bad", "sum"),
        media_minutes=("duration_s", lambda s: s.sum() / 60),
    )
    periods = pd.date_range(d["period"].min(), d["period"].max(), freq=WIDTHS[freq])
    groups = sorted(d["g"].unique(), key=lambda v: (v == NONE, "" if v == NONE else v))
    full = pd.MultiIndex.from_product([periods, groups], names=["period", "g"])
    out = agg.reindex(full, fill_value=0).reset_index()
    out["media_minutes"] = out["media_minutes"].astype(float)
    return restore(out, by)[columns]


def expected_failures(df: pd.DataFrame, by: str | None) -> pd.DataFrame:
    columns = [*([by] if by else []), "jobs", "finished", "failed", "failure_rate", "top_code"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    d = df.assign(g=group_key(df, by))
    rows = []
    for g, part in d.groupby("g"):
        failed = part[part["state"] == "Failed"]
        finished = int(part["state"].isin(["Success", "Failed"]).sum())
        codes = failed["code"].dropna().value_counts()
        top = None
        if len(codes):
            top = sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        rows.append(
            {
                "g": g,
                "jobs": len(part),
                "finished": finished,
                "failed": len(failed),
                "failure_rate": len(failed) / finished if finished else np.nan,
                "top_code": top,
            }
        )
    out = pd.DataFrame(rows)
    out = out.sort_values(
        ["failed", "jobs", "g"],
        ascending=[False, False, True],
        key=lambda s: sort_groups(s) if s.name == "g" else s,
    )
    return restore(out, by)[columns]


def expected_latency(df: pd.DataFrame, by: str | None) -> pd.DataFrame:
    measures = {
        "p50_queue_wait_s": ("queue_wait_s", 0.5),
        "p90_queue_wait_s": ("queue_wait_s", 0.9),
        "p50_processing_s": ("processing_s", 0.5),
        "p90_processing_s": ("processing_s", 0.9),
        "p99_processing_s": ("processing_s", 0.99),
        "median_speed_x": ("speed_x", 0.5),
    }
    columns = [*([by] if by else []), *measures]
    if df.empty:
        return pd.DataFrame(columns=columns)
    d = df.assign(g=group_key(df, by))
    rows = []
    for g, part in d.groupby("g"):
        row: dict[str, Any] = {"g": g}
        for name, (column, q) in measures.items():
            row[name] = part[column].dropna().quantile(q) if part[column].notna().any() else np.nan
        rows.append(row)
    out = pd.DataFrame(rows).sort_values("g", key=sort_groups)
    return restore(out, by)[columns]


def expected_errors(df: pd.DataFrame, limit: int) -> pd.DataFrame:
    columns = ["code", "message", "jobs", "example_job_id"]
    failed = df[df["state"] == "Failed"]
    if failed.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (code, message), part in failed.groupby(["code", "message"], dropna=False):
        newest = part.sort_values(["creation_time", "job_id"], ascending=False).iloc[0]
        rows.append(
            {"code": code, "message": message, "jobs": len(part), "example_job_id": newest.job_id}
        )
    out = pd.DataFrame(rows).sort_values(
        ["jobs", "code", "message"], ascending=[False, True, True], na_position="last"
    )
    return out.head(limit)[columns]


def finish_time(row: pd.Series) -> pd.Timestamp | None:
    c = row["creation_time"]
    if pd.notna(row["end_time"]):
        return max(row["end_time"], c)
    if pd.notna(row["not_found_at"]):
        return max(row["not_found_at"], c)
    if row["state"] in ("Success", "Failed", "Cancel"):
        return max(c, row["start_time"]) if pd.notna(row["start_time"]) else c
    return None


def expected_backlog(
    df: pd.DataFrame, freq: str, since: datetime | None, until: datetime | None
) -> pd.DataFrame:
    columns = ["period", "created", "finished", "open"]
    d = df[df["creation_time"].notna()]
    if d.empty:
        return pd.DataFrame(columns=columns)
    width = pd.Timedelta(WIDTHS[freq])
    created = list(d["creation_time"])
    finished = [f for f in (finish_time(r) for _, r in d.iterrows()) if f is not None]
    lo = pd.Timestamp(since) if since else min(created)
    hi = pd.Timestamp(until) - pd.Timedelta(microseconds=1) if until else max(created + finished)
    lo_b = bucket(pd.Series([lo]), freq).iat[0]
    hi_b = bucket(pd.Series([hi]), freq).iat[0]
    rows = []
    for period in pd.date_range(lo_b, hi_b, freq=width) if lo_b <= hi_b else []:
        end = period + width
        rows.append(
            {
                "period": period,
                "created": sum(period <= c < end for c in created),
                "finished": sum(period <= f < end for f in finished),
                "open": sum(c < end for c in created) - sum(f < end for f in finished),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def expected_media(df: pd.DataFrame) -> pd.DataFrame:
    columns = ["resolution", "video_codec", "jobs", "media_minutes"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    names = ["SD", "HD", "FHD", "QHD", "4K+", "audio/none"]

    def rank(row: pd.Series) -> int:
        sides = [v for v in (row["video_width"], row["video_height"]) if pd.notna(v)]
        short = min(sides) if sides else 0
        if not short:
            return 5
        for i, limit in enumerate((480, 720, 1080, 1440)):
            if short <= limit:
                return i
        return 4

    d = df.assign(rank=df.apply(rank, axis=1), codec=df["video_codec"].fillna(NONE))
    out = (
        d.groupby(["rank", "codec"])
        .agg(jobs=("job_id", "size"), media_minutes=("duration_s", lambda s: s.sum() / 60))
        .reset_index()
        .sort_values(
            ["rank", "jobs", "codec"],
            ascending=[True, False, True],
            key=lambda s: sort_groups(s) if s.name == "codec" else s,
        )
    )
    out["resolution"] = out["rank"].map(lambda r: names[r])
    out["video_codec"] = out["codec"].replace(NONE, np.nan)
    return out[columns]


# -------------------------------------------------------------------------------- tests


def test_reports_are_reachable_from_the_package_import() -> None:
    assert cj.reports.throughput is not None
    assert cj.connect is connect


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize(("freq", "by"), [("1h", "tag"), ("1d", None), ("1w", "queue_id")])
def test_throughput_matches_pandas(
    con: Any, frame: pd.DataFrame, filters: dict[str, Any], freq: str, by: str | None
) -> None:
    actual = cj.reports.throughput(con, freq=freq, by=by, **filters)
    assert_same(actual, expected_throughput(apply_filters(frame, filters), freq, by))
    if not actual.empty:
        assert str(actual["period"].dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize("freq", ["1min", "5min", "15min", "6h"])
def test_throughput_periods_are_utc_buckets_of_every_freq(
    con: Any, frame: pd.DataFrame, freq: str
) -> None:
    filters = {"since": "2026-11-01T10:00:00Z", "until": "2026-11-01T16:00:00Z"}
    actual = cj.reports.throughput(con, freq=freq, by="state", **filters)
    assert_same(actual, expected_throughput(apply_filters(frame, filters), freq, "state"))


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("by", ["tag", "queue_id", "template_id", "video_codec", None])
def test_failures_match_pandas(
    con: Any, frame: pd.DataFrame, filters: dict[str, Any], by: str | None
) -> None:
    actual = cj.reports.failures(con, by=by, **filters)
    assert_same(actual, expected_failures(apply_filters(frame, filters), by))


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("by", ["tag", "state", None])
def test_latency_matches_pandas(
    con: Any, frame: pd.DataFrame, filters: dict[str, Any], by: str | None
) -> None:
    actual = cj.reports.latency(con, by=by, **filters)
    assert_same(actual, expected_latency(apply_filters(frame, filters), by))


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("limit", [1, 3, 20])
def test_errors_match_pandas(
    con: Any, frame: pd.DataFrame, filters: dict[str, Any], limit: int
) -> None:
    actual = cj.reports.errors(con, limit=limit, **filters)
    assert_same(actual, expected_errors(apply_filters(frame, filters), limit))


@pytest.mark.parametrize(
    ("freq", "since", "until", "tags"),
    [
        ("1h", None, None, None),
        ("6h", datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, 3, tzinfo=UTC), None),
        ("1d", datetime(2026, 11, 2, 5, tzinfo=UTC), None, ["Snapshot"]),
        ("1h", datetime(2030, 1, 1, tzinfo=UTC), None, None),
        ("1h", None, None, ["NoSuchTag"]),
    ],
)
def test_backlog_matches_pandas(
    con: Any,
    frame: pd.DataFrame,
    freq: str,
    since: datetime | None,
    until: datetime | None,
    tags: list[str] | None,
) -> None:
    actual = cj.reports.backlog(con, freq=freq, since=since, until=until, tags=tags)
    jobs = apply_filters(frame, {"tags": tags} if tags else {})
    assert_same(actual, expected_backlog(jobs, freq, since, until))


@pytest.mark.parametrize("filters", FILTERS)
def test_media_matches_pandas(con: Any, frame: pd.DataFrame, filters: dict[str, Any]) -> None:
    actual = cj.reports.media(con, **filters)
    assert_same(actual, expected_media(apply_filters(frame, filters)))


@pytest.mark.parametrize("filters", FILTERS)
def test_summary_matches_pandas(con: Any, frame: pd.DataFrame, filters: dict[str, Any]) -> None:
    d = apply_filters(frame, filters)
    actual = cj.reports.summary(con, **filters)
    finished = int(d["state"].isin(["Success", "Failed"]).sum())
    failed = int((d["state"] == "Failed").sum())
    assert len(actual) == 1
    row = actual.iloc[0]
    assert row["jobs"] == len(d)
    assert row["finished"] == finished
    assert row["failed"] == failed
    if finished:
        assert row["failure_rate"] == pytest.approx(failed / finished)
    else:
        assert np.isnan(row["failure_rate"])
    assert row["media_hours"] == pytest.approx(d["duration_s"].sum() / 3600)
    if d["processing_s"].notna().any():
        assert row["p90_processing_s"] == pytest.approx(d["processing_s"].quantile(0.9))
    else:
        assert np.isnan(row["p90_processing_s"])


def test_a_single_job_gives_one_row_everywhere(tmp_path: Path) -> None:
    only = job("solo", T0 + timedelta(minutes=30), processing_s=120.0, duration_s=240.0)
    with connect(write_dataset(tmp_path / "ds", [only])) as con:
        tp = cj.reports.throughput(con, freq="1h", by="tag")
        assert tp.to_dict("records") == [
            {
                "period": pd.Timestamp(T0),
                "tag": "Transcode",
                "jobs": 1,
                "succeeded": 1,
                "failed": 0,
                "media_minutes": 4.0,
            }
        ]
        lat = cj.reports.latency(con, by=None)
        assert lat["p99_processing_s"].tolist() == [120.0]
        assert lat["median_speed_x"].tolist() == [2.0]
        assert cj.reports.errors(con).empty
        assert cj.reports.failures(con)["failure_rate"].tolist() == [0.0]
        assert cj.reports.backlog(con, freq="1h")[
            ["created", "finished", "open"]
        ].values.tolist() == [[1, 1, 0]]
        assert cj.reports.media(con)[["resolution", "jobs"]].values.tolist() == [["FHD", 1]]


def test_empty_dataset_gives_empty_frames_with_the_columns(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "empty", [])
    with connect(root) as con:
        assert list(cj.reports.throughput(con).columns) == [
            "period",
            "tag",
            "jobs",
            "succeeded",
            "failed",
            "media_minutes",
        ]
        for report in (
            cj.reports.throughput,
            cj.reports.failures,
            cj.reports.latency,
            cj.reports.errors,
            cj.reports.backlog,
            cj.reports.media,
        ):
            assert report(con).empty
        assert cj.reports.summary(con)["jobs"].tolist() == [0]


def test_open_jobs_created_before_since_count_in_the_backlog(tmp_path: Path) -> None:
    rows = [
        job("old-open", T0, state="Running", processing_s=None),
        job("old-done", T0, processing_s=60.0),
        job(
            "new",
            T0 + timedelta(days=1, minutes=5),
            processing_s=None,
            state="Submitted",
            wait_s=None,
        ),
    ]
    with connect(write_dataset(tmp_path / "ds", rows)) as con:
        out = cj.reports.backlog(con, freq="1d", since=T0 + timedelta(days=1))
    assert out.to_dict("records") == [
        {"period": pd.Timestamp(T0 + timedelta(days=1)), "created": 1, "finished": 0, "open": 2}
    ]


def test_a_job_the_service_forgot_leaves_the_backlog_when_it_was_found_gone(
    tmp_path: Path,
) -> None:
    gone = job("gone", T0, state="Running", processing_s=None)
    gone["not_found_at"] = T0 + timedelta(hours=2, minutes=10)
    with connect(write_dataset(tmp_path / "ds", [gone])) as con:
        out = cj.reports.backlog(con, freq="1h")
    assert out["open"].tolist() == [1, 1, 0]
    assert out["finished"].tolist() == [0, 0, 1]


# ------------------------------------------------------------------ arguments and injection

INJECTIONS = [
    "x' OR '1'='1",
    "Transcode'; DROP VIEW jobs; --",
    "') OR TRUE --",
    '" OR 1=1 --',
]


@pytest.mark.parametrize("attempt", INJECTIONS)
@pytest.mark.parametrize("key", ["tags", "queue_ids"])
def test_injection_through_a_list_filter_returns_no_rows(con: Any, attempt: str, key: str) -> None:
    for report in (
        cj.reports.throughput,
        cj.reports.failures,
        cj.reports.latency,
        cj.reports.errors,
        cj.reports.backlog,
        cj.reports.media,
    ):
        assert report(con, **{key: [attempt]}).empty
        assert report(con, **{key: attempt}).empty
    assert cj.reports.summary(con, **{key: [attempt]})["jobs"].tolist() == [0]
    assert read_frame(con, "SELECT count(*) AS n FROM jobs")["n"].iat[0] == 150


@pytest.mark.parametrize("attempt", INJECTIONS)
@pytest.mark.parametrize("key", ["since", "until"])
def test_injection_through_a_time_filter_is_refused(con: Any, attempt: str, key: str) -> None:
    with pytest.raises(ConfigError):
        cj.reports.failures(con, **{key: "2026-11-01" + attempt})
    assert read_frame(con, "SELECT count(*) AS n FROM jobs")["n"].iat[0] == 150


@pytest.mark.parametrize(
    "by", ["tag; DROP VIEW jobs", "tag) --", "'tag'", "TAG", "streams", "1", "", "job_id"]
)
def test_a_by_outside_the_allow_list_is_refused(con: Any, by: str) -> None:
    for report in (cj.reports.throughput, cj.reports.failures, cj.reports.latency):
        with pytest.raises(QueryError, match="by must be"):
            report(con, by=by)
    assert read_frame(con, "SELECT count(*) AS n FROM jobs")["n"].iat[0] == 150


@pytest.mark.parametrize("freq", ["1 hour", "1h'; DROP VIEW jobs; --", "2h", "1H", "", "1M"])
def test_a_freq_outside_the_allow_list_is_refused(con: Any, freq: str) -> None:
    for report in (cj.reports.throughput, cj.reports.backlog):
        with pytest.raises(QueryError, match="freq must be"):
            report(con, freq=freq)


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "20"])
def test_errors_refuses_a_limit_that_is_not_a_positive_integer(con: Any, limit: Any) -> None:
    with pytest.raises(QueryError, match="limit"):
        cj.reports.errors(con, limit=limit)


def test_since_after_until_is_refused(con: Any) -> None:
    with pytest.raises(ConfigError, match="before until"):
        cj.reports.failures(con, since="2026-11-03", until="2026-11-02")


def test_naive_datetimes_and_non_string_tags_are_refused(con: Any) -> None:
    with pytest.raises(ConfigError, match="naive"):
        cj.reports.failures(con, since=datetime(2026, 11, 1))
    with pytest.raises(ConfigError, match="tags must be strings"):
        cj.reports.failures(con, tags=[1])  # type: ignore[list-item]


def test_a_span_since_counts_back_from_now(con: Any) -> None:
    # The sample data lies in November 2026; "1d" before today holds none of it or all of it.
    now = datetime.now(UTC)
    expected = 150 if now - timedelta(days=1) <= T0 else 0
    assert cj.reports.summary(con, since="1d")["jobs"].tolist() == [expected]


def test_too_many_periods_are_refused(con: Any) -> None:
    with pytest.raises(QueryError, match="coarser freq"):
        cj.reports.backlog(con, freq="1min", since="2026-01-01", until="2026-12-31")


def test_reports_refuse_something_that_is_not_a_connection() -> None:
    with pytest.raises(QueryError, match="DuckDB connection"):
        cj.reports.failures("jobs_dataset/")  # type: ignore[arg-type]


def test_reports_leave_the_connection_usable(con: Any) -> None:
    cj.reports.throughput(con)
    assert isinstance(con, duckdb.DuckDBPyConnection)
    assert read_frame(con, "SELECT count(*) AS n FROM streams")["n"].iat[0] > 0
