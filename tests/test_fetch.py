"""The fetch engine against the emulator: the fetched set is exactly the truth, fast and lean."""

from __future__ import annotations

import io
import itertools
import logging
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from cijobs_analytics import JOBS_SCHEMA, TAGS, fetch_jobs, iter_jobs
from cijobs_analytics._progress import ProgressBar
from cijobs_analytics.client import CIClient
from cijobs_analytics.config import Credentials
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.errors import AuthError, ConfigError
from cijobs_analytics.fetch import (
    _UTC_US,
    TARGET_PAGES,
    FetchStats,
    _ascending,
    iter_slices,
)

END = datetime(2026, 11, 6, 0, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def _client(history: Emulator, **kwargs: object) -> CIClient:
    options: dict[str, object] = {"backoff": 0.001, "max_backoff": 0.01}
    options.update(kwargs)
    return CIClient(
        history.bucket,
        history.region,
        history.credentials,
        endpoint=history.url,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def history() -> Iterator[Emulator]:
    """3,000 jobs over two days in two queues: busy enough that Transcode is split."""
    with Emulator(jobs=3000, days=2, seed=11, end=END, queues=2) as emu:
        yield emu


@pytest.fixture(scope="module")
def client(history: Emulator) -> CIClient:
    return _client(history)


def _ids(table: pa.Table) -> list[str]:
    return sorted(table.column("job_id").to_pylist())


def _truth_ids(history: Emulator, start: datetime, end: datetime, **filters: object) -> list[str]:
    return sorted(job.job_id for job in history.truth(start, end, **filters))  # type: ignore[arg-type]


def _lower_bound(history: Emulator, start: datetime, end: datetime, tags: list[str]) -> int:
    """Requests the official SDK's sequential loop needs: one per started page of 100, per tag."""
    per_tag = Counter(job.tag for job in history.truth(start, end))
    return sum(max(1, math.ceil(per_tag[tag] / 100)) for tag in tags)


def test_fetch_equals_truth_for_random_ranges(history: Emulator, client: CIClient) -> None:
    rng = random.Random(2024)
    first = END - timedelta(days=2)
    for _ in range(4):
        a, b = sorted(rng.uniform(0, 2 * 86400) for _ in range(2))
        start = first + timedelta(seconds=a)
        end = first + timedelta(seconds=max(b, a + 60))
        stats = FetchStats()
        table = fetch_jobs(client, start, end, workers=4, progress=False, stats=stats)
        assert _ids(table) == _truth_ids(history, start, end)
        assert table.schema.equals(JOBS_SCHEMA, check_metadata=False)
        assert stats.jobs == table.num_rows


def test_whole_history_needs_close_to_the_sequential_minimum_of_requests(
    history: Emulator, client: CIClient
) -> None:
    start, end = END - timedelta(days=2), END
    stats = FetchStats()
    table = fetch_jobs(client, start, end, workers=4, progress=False, stats=stats)
    assert _ids(table) == _truth_ids(history, start, end)
    assert len(table.column("job_id").unique()) == table.num_rows
    assert set(table.column("tag").to_pylist()) == set(TAGS)
    floor = _lower_bound(history, start, end, list(TAGS))
    assert floor <= stats.requests <= 1.5 * floor
    assert stats.requests == stats.pages  # no faults, no retries
    assert stats.retries == 0
    assert stats.elapsed_s > 0


def test_a_run_logs_one_summary_line_at_info(
    client: CIClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cijobs_analytics.fetch"):
        table = fetch_jobs(client, END - 2 * HOUR, END, tags=["Snapshot"], progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "cijobs_analytics.fetch"]
    assert len(lines) == 1
    assert lines[0].startswith(f"fetch finished: {table.num_rows} jobs in ")
    # Counts in the number they need: "1 request for 1 page over 1 slice, 0 retries".
    assert re.search(
        r": \d+ requests? for \d+ pages? over \d+ slices?, \d+ retr(y|ies), ", lines[0]
    )
    assert re.search(r"\d+ recovered pages?$", lines[0])


def test_rows_come_back_sorted_by_creation_time_then_job_id(client: CIClient) -> None:
    table = fetch_jobs(client, END - 6 * HOUR, END, tags=["Transcode"], progress=False)
    keys = list(
        zip(
            table.column("creation_time").to_pylist(),
            table.column("job_id").to_pylist(),
            strict=True,
        )
    )
    assert keys == sorted(keys)


def test_jobs_on_exact_hour_boundaries_land_in_exactly_one_of_two_neighbouring_ranges(
    history: Emulator, client: CIClient
) -> None:
    """Many jobs sit on HH:00:00: [start, end) keeps the start hour's and drops the end hour's."""
    on_hour = Counter(
        j.creation_time
        for j in history.truth()
        if j.creation_time.minute == 0 == j.creation_time.second
    )
    crowded = sorted(t for t, n in on_hour.items() if n >= 3)
    assert len(crowded) >= 6, "the emulator should crowd hour boundaries"
    fetched: list[str] = []
    for start, end in itertools.pairwise(crowded):
        table = fetch_jobs(client, start, end, workers=4, progress=False)
        got = set(table.column("job_id").to_pylist())
        assert {j.job_id for j in history.truth(start, start + SECOND)} <= got
        assert not {j.job_id for j in history.truth(end, end + SECOND)} & got
        assert _ids(table) == _truth_ids(history, start, end)
        fetched.extend(got)
    assert sorted(fetched) == _truth_ids(history, crowded[0], crowded[-1])


def test_ranges_cut_inside_a_crowded_second(history: Emulator, client: CIClient) -> None:
    """Bounds with sub-second parts: a job at second X is in [.., X+0.5) and out of [X+0.5, ..)."""
    crowded = Counter(j.creation_time for j in history.truth(END - 20 * HOUR, END - 2 * HOUR))
    second = next(t for t, n in crowded.most_common() if t.minute or t.second)
    assert crowded[second] >= 2
    half = second + timedelta(milliseconds=500)
    before = fetch_jobs(client, second - 3 * HOUR, half, workers=4, progress=False)
    after = fetch_jobs(client, half, half + 3 * HOUR, workers=4, progress=False)
    in_second = {j.job_id for j in history.truth(second, second + SECOND)}
    assert in_second <= set(before.column("job_id").to_pylist())
    assert not in_second & set(after.column("job_id").to_pylist())
    assert _ids(before) == _truth_ids(history, second - 3 * HOUR, half)
    assert _ids(after) == _truth_ids(history, half, half + 3 * HOUR)


def test_slices_partition_the_range_per_tag_and_queue(history: Emulator, client: CIClient) -> None:
    start = END - 40 * HOUR + timedelta(milliseconds=123)
    end = END - 1 * HOUR
    queues = history.queue_ids
    covered: dict[tuple[str, str | None], list[tuple[datetime, datetime]]] = defaultdict(list)
    seen: list[str] = []
    for result in iter_slices(
        client, start, end, tags=["Transcode", "Snapshot", "Tts"], queue_ids=queues, workers=4
    ):
        piece = result.slice
        covered[(piece.tag, piece.queue_id)].append((piece.start, piece.end))
        created = result.table.column("creation_time").to_pylist()
        assert all(piece.start <= t < piece.end for t in created)
        assert set(result.table.column("tag").to_pylist()) <= {piece.tag}
        assert set(result.table.column("queue_id").to_pylist()) <= {piece.queue_id}
        assert result.requests >= result.pages >= 1
        # Memory stays flat: a busy slice is split instead of growing.
        assert result.pages <= 2 * TARGET_PAGES
        seen.extend(result.table.column("job_id").to_pylist())
    assert set(covered) == {(t, q) for t in ("Transcode", "Snapshot", "Tts") for q in queues}
    for spans in covered.values():
        spans.sort()
        assert spans[0][0] == start
        assert spans[-1][1] == end
        for (_, b), (c, _) in itertools.pairwise(spans):
            assert b == c
    assert len(seen) == len(set(seen))
    expected = _truth_ids(history, start, end, tags=["Transcode", "Snapshot", "Tts"])
    assert sorted(seen) == expected
    # Transcode is busy enough to be split: more than one slice per queue.
    assert len(covered[("Transcode", queues[0])]) > 1


def test_states_and_queue_filters_match_the_truth(history: Emulator, client: CIClient) -> None:
    start, end = END - 2 * timedelta(days=1), END
    failed = fetch_jobs(client, start, end, states=["Failed"], workers=4, progress=False)
    assert failed.num_rows > 0
    assert set(failed.column("state").to_pylist()) == {"Failed"}
    assert _ids(failed) == _truth_ids(history, start, end, states=["Failed"])
    queue = history.queue_ids[1]
    one_queue = fetch_jobs(client, start, end, queue_ids=[queue], workers=4, progress=False)
    assert set(one_queue.column("queue_id").to_pylist()) == {queue}
    assert _ids(one_queue) == _truth_ids(history, start, end, queue_ids=[queue])


def test_a_tag_the_service_adds_later_is_sent_as_given(history: Emulator, client: CIClient) -> None:
    history.reset_stats()
    stats = FetchStats()
    table = fetch_jobs(client, END - HOUR, END, tags=["VideoEnhance"], progress=False, stats=stats)
    assert table.num_rows == 0
    assert table.schema.equals(JOBS_SCHEMA, check_metadata=False)
    assert stats.requests == 1
    assert stats.slices == 1
    assert history.stats().by_status == {200: 1}


def test_iter_jobs_streams_record_batches_without_duplicates(
    history: Emulator, client: CIClient
) -> None:
    start, end = END - 12 * HOUR, END
    batches = list(iter_jobs(client, start, end, tags=["Transcode", "MediaInfo"], progress=False))
    assert len(batches) > 1
    assert all(isinstance(b, pa.RecordBatch) and b.num_rows > 0 for b in batches)
    ids = [i for b in batches for i in b.column("job_id").to_pylist()]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == _truth_ids(history, start, end, tags=["Transcode", "MediaInfo"])


def test_inclusive_service_bounds_still_give_exactly_start_to_end() -> None:
    """The real service's inclusivity is unknown; the client-side filter makes it not matter."""
    with Emulator(jobs=1500, days=1, seed=5, end=END, inclusive_bounds=True) as emu:
        client = _client(emu)
        for start, end in [(END - 20 * HOUR, END - 4 * HOUR), (END - 9 * HOUR, END - 8 * HOUR)]:
            table = fetch_jobs(client, start, end, workers=4, progress=False)
            assert _ids(table) == _truth_ids(emu, start, end)


class LatencySpikes:
    """Switches the emulator's latency between calm and spiking while a fetch runs."""

    def __init__(self, emulator: Emulator, calm_ms: float, spike_ms: float) -> None:
        self.emulator = emulator
        self.calm_ms = calm_ms
        self.spike_ms = spike_ms
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        spiking = False
        while not self.stop.wait(0.15):
            spiking = not spiking
            self.emulator.set_faults(latency_ms=self.spike_ms if spiking else self.calm_ms)

    def __enter__(self) -> LatencySpikes:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.slow
def test_every_fault_at_once_still_gives_exactly_the_truth() -> None:
    """Latency spikes, 500s, dropped connections, malformed pages and a QPS limit together."""
    with Emulator(
        jobs=2500,
        days=2,
        seed=3,
        end=END,
        queues=3,
        latency_ms=5,
        qps=25,
        fail_rate=0.05,
        drop_rate=0.03,
        truncate_rate=0.02,
        malformed_rate=0.05,
    ) as emu:
        client = _client(emu, max_retries=10)
        stats = FetchStats()
        ranges = [
            (END - 47 * HOUR, END - 20 * HOUR + timedelta(milliseconds=250)),
            (END - 20 * HOUR + timedelta(milliseconds=250), END),
        ]
        fetched: list[str] = []
        with LatencySpikes(emu, calm_ms=5, spike_ms=120):
            for start, end in ranges:
                table = fetch_jobs(
                    client, start, end, queue_ids=emu.queue_ids, workers=8, progress=False,
                    stats=stats,
                )  # fmt: skip
                assert _ids(table) == _truth_ids(emu, start, end)
                assert len(table.column("job_id").unique()) == table.num_rows
                fetched.extend(table.column("job_id").to_pylist())
        assert sorted(fetched) == _truth_ids(emu, END - 47 * HOUR, END)
        seen = emu.stats()
        assert seen.by_code.get("InternalError", 0) > 0
        assert seen.by_code.get("SlowDown", 0) > 0
        assert stats.retries > 0
        assert stats.throttled > 0
        assert stats.recovered_pages > 0


def test_closing_the_stream_early_stops_the_workers_promptly() -> None:
    """A consumer that stops (or Ctrl-C) ends the run: no request starts after the close."""
    with Emulator(jobs=3000, days=1, seed=9, end=END, latency_ms=40) as emu:
        client = _client(emu)
        results = iter_slices(client, END - 20 * HOUR, END, workers=4)
        first = next(results)
        assert first.pages >= 1
        results.close()
        time.sleep(0.2)  # in-flight requests (at most one per worker) finish meanwhile
        settled = emu.stats().requests
        time.sleep(0.4)
        assert emu.stats().requests == settled
        assert settled < 40
        names = [t.name for t in threading.enumerate() if t.name.startswith("cijobs-fetch")]
        assert names == []


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_and_is_silent_in_ci_or_a_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    terminal = FakeTerminal()
    bar = ProgressBar(True, stream=terminal)
    assert bar.active
    bar.update(250, pages=3, retries=1, requests=4, elapsed_s=2.0)
    bar.close()
    drawn = terminal.getvalue()
    assert "250" in drawn
    assert "pages=3" in drawn
    assert "retries=1" in drawn
    assert "req_s=2.0" in drawn
    assert not ProgressBar(False, stream=FakeTerminal()).active
    assert not ProgressBar(True, stream=io.StringIO()).active
    monkeypatch.setenv("CI", "true")
    assert not ProgressBar(True, stream=FakeTerminal()).active


def test_order_check_catches_a_page_that_is_not_ascending() -> None:
    """Cutting slices trusts ascending pages; the engine checks each page before it does."""
    t = [END - 3 * SECOND, END - 2 * SECOND, END - SECOND]
    column = pa.chunked_array([pa.array([t[0], None, t[1], t[1], t[2]], type=_UTC_US)])
    assert _ascending(column, None)
    assert _ascending(column, t[0])
    assert not _ascending(column, t[1])  # the previous page ended later than this one starts
    backwards = pa.chunked_array([pa.array([t[2], t[1]], type=_UTC_US)])
    assert not _ascending(backwards, None)
    assert _ascending(pa.chunked_array([pa.array([], type=_UTC_US)]), t[2])


def test_auth_errors_stop_the_run_at_once(history: Emulator) -> None:
    wrong = Credentials(history.credentials.secret_id, "not-the-key")
    client = CIClient(history.bucket, history.region, wrong, endpoint=history.url)
    history.reset_stats()
    with pytest.raises(AuthError):
        fetch_jobs(client, END - HOUR, END, workers=2, progress=False)
    # No retries on 401, and the other seed slices were cancelled, not all 19 tried.
    assert history.stats().requests < len(TAGS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": datetime(2026, 11, 1), "end": END}, "naive"),
        ({"start": END, "end": END}, "must be before end"),
        ({"start": "yesterday", "end": END}, "ISO 8601"),
        ({"start": END - HOUR, "end": END, "states": ["Done"]}, "unknown state"),
        ({"start": END - HOUR, "end": END, "tags": []}, "tags is empty"),
        ({"start": END - HOUR, "end": END, "queue_ids": [""]}, "queue_ids"),
        ({"start": END - HOUR, "end": END, "workers": 0}, "workers"),
        ({"start": END - HOUR, "end": END, "qps": -1}, "qps"),
    ],
)
def test_bad_arguments_raise_config_error_before_any_request(
    history: Emulator, client: CIClient, kwargs: dict[str, object], message: str
) -> None:
    history.reset_stats()
    with pytest.raises(ConfigError, match=message):
        iter_jobs(client, **kwargs)  # type: ignore[arg-type]
    assert history.stats().requests == 0
