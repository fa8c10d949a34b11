"""Window planning and the token bucket: whole-second cuts, exclusive wire bounds, AIMD rates."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
from client_support import FakeClock

from cijobs_analytics.errors import ConfigError
from cijobs_analytics.ratelimit import TokenBucket
from cijobs_analytics.schema import TAGS
from cijobs_analytics.windows import (
    Slice,
    ceil_second,
    floor_second,
    plan_split,
    seed_slices,
    split_range,
    wire_bounds,
)

T0 = datetime(2026, 11, 2, 8, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


# -- seconds and wire bounds ------------------------------------------------------------------


def test_floor_and_ceil_second_keep_whole_seconds_and_round_fractions() -> None:
    half = T0 + timedelta(microseconds=500_000)
    assert floor_second(half) == T0
    assert ceil_second(half) == T0 + S
    assert floor_second(T0) == T0
    assert ceil_second(T0) == T0


def test_wire_bounds_reach_one_second_back_and_round_the_end_up() -> None:
    """Exclusive service bounds must still return jobs created exactly at start."""
    assert wire_bounds(T0, T0 + timedelta(hours=1)) == (T0 - S, T0 + timedelta(hours=1))
    start = T0 + timedelta(milliseconds=250)
    end = T0 + timedelta(seconds=10, milliseconds=1)
    assert wire_bounds(start, end) == (T0 - S, T0 + 11 * S)


# -- Slice ------------------------------------------------------------------------------------


def test_slice_normalises_to_utc_and_refuses_empty_or_naive_ranges() -> None:
    from datetime import timezone

    cst = timezone(timedelta(hours=8))
    piece = Slice("Transcode", None, T0.astimezone(cst), T0 + S)
    assert piece.start == T0
    assert piece.start.tzinfo == UTC
    assert piece.span == S
    with pytest.raises(ConfigError, match="start < end"):
        Slice("Transcode", None, T0, T0)
    with pytest.raises(ConfigError, match="naive"):
        Slice("Transcode", None, datetime(2026, 11, 2), T0)


# -- split_range ------------------------------------------------------------------------------


def test_split_range_partitions_exactly_with_inner_cuts_on_whole_seconds() -> None:
    start = T0 + timedelta(milliseconds=300)
    end = T0 + timedelta(hours=3, milliseconds=700)
    pieces = split_range(start, end, 7)
    assert len(pieces) == 7
    assert pieces[0][0] == start
    assert pieces[-1][1] == end
    for (_, b), (c, _) in itertools.pairwise(pieces):
        assert b == c
        assert b.microsecond == 0
    assert all(a < b for a, b in pieces)


def test_split_range_gives_fewer_pieces_than_asked_for_a_range_of_few_seconds() -> None:
    pieces = split_range(T0, T0 + 3 * S, 10)
    assert pieces == [(T0, T0 + S), (T0 + S, T0 + 2 * S), (T0 + 2 * S, T0 + 3 * S)]
    assert split_range(T0, T0 + timedelta(milliseconds=10), 4) == [
        (T0, T0 + timedelta(milliseconds=10))
    ]


def test_split_range_refuses_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="0 parts"):
        split_range(T0, T0 + S, 0)
    with pytest.raises(ConfigError, match="empty range"):
        split_range(T0, T0, 2)


# -- plan_split -------------------------------------------------------------------------------


def test_plan_split_cuts_a_busy_rest_at_the_last_rows_second() -> None:
    """100 rows in the first 10 minutes of a day: ~143 pages remain, so the rest is shared."""
    piece = Slice("Transcode", "q1", T0, T0 + timedelta(days=1))
    last = T0 + timedelta(minutes=10, milliseconds=400)
    plan = plan_split(
        piece, rows_seen=100, last_creation=last, page_size=100, target_pages=4, max_parts=8
    )
    assert plan is not None
    assert plan.cut == T0 + timedelta(minutes=10)
    assert len(plan.parts) == 8
    assert plan.parts[0].start == plan.cut
    assert plan.parts[-1].end == piece.end
    assert all(p.tag == "Transcode" and p.queue_id == "q1" for p in plan.parts)
    for a, b in itertools.pairwise(plan.parts):
        assert a.end == b.start


def test_plan_split_sizes_parts_for_about_target_pages_each() -> None:
    """100 rows in the first hour of ten: ~9 pages remain -> 3 parts of about 3 pages."""
    piece = Slice("Snapshot", None, T0, T0 + timedelta(hours=10))
    plan = plan_split(
        piece,
        rows_seen=100,
        last_creation=T0 + timedelta(hours=1),
        page_size=100,
        target_pages=4,
        max_parts=8,
    )
    assert plan is not None
    assert len(plan.parts) == 3


def test_plan_split_keeps_paging_when_the_rest_is_small_or_there_is_nowhere_to_cut() -> None:
    piece = Slice("Snapshot", None, T0, T0 + timedelta(hours=2))
    small = plan_split(
        piece,
        rows_seen=100,
        last_creation=T0 + timedelta(hours=1),
        page_size=100,
        target_pages=4,
        max_parts=8,
    )
    assert small is None
    # Every row so far shares the slice's first second: a cut there would lose nothing but
    # would not shorten the slice either.
    same_second = plan_split(
        piece,
        rows_seen=100,
        last_creation=T0 + timedelta(milliseconds=999),
        page_size=100,
        target_pages=4,
        max_parts=8,
    )
    assert same_second is None
    # A rest shorter than two seconds cannot be shared.
    short = Slice("Snapshot", None, T0, T0 + 2 * S)
    assert (
        plan_split(
            short, rows_seen=100, last_creation=T0 + S, page_size=100, target_pages=1, max_parts=8
        )
        is None
    )


def test_plan_split_refuses_nonsense_counts() -> None:
    piece = Slice("Snapshot", None, T0, T0 + timedelta(hours=2))
    with pytest.raises(ConfigError, match="max_parts"):
        plan_split(piece, rows_seen=1, last_creation=T0, page_size=100, target_pages=4,
                   max_parts=1)  # fmt: skip


# -- TokenBucket ------------------------------------------------------------------------------


def test_token_bucket_spaces_requests_at_the_configured_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    began = clock.now
    for _ in range(51):
        bucket.acquire()
    # The first request goes at once (the bucket starts full), the next 50 at 10 per second.
    assert clock.now - began == pytest.approx(5.0)
    assert bucket.acquired == 51


def test_token_bucket_burst_lets_a_quiet_spell_send_back_to_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    assert clock.slept == []
    bucket.acquire()
    assert clock.slept == [pytest.approx(0.2)]


def test_token_bucket_halves_once_per_overload_and_climbs_back() -> None:
    """A cut halves the rate once per overload; the rate then climbs back to the rate it was
    cut from, along a cubic curve, in ``recovery_requests`` requests' worth of time."""
    clock = FakeClock()
    bucket = TokenBucket(20, decrease=0.5, recovery_requests=20, clock=clock, sleep=clock.sleep)
    sent, answered = threading.Event(), threading.Event()

    def earlier_request() -> None:
        bucket.acquire()
        sent.set()
        answered.wait(5)
        bucket.throttled()  # sent before the decrease below: counted, not halved again

    other = threading.Thread(target=earlier_request)
    other.start()
    sent.wait(5)
    bucket.acquire()
    bucket.throttled()
    assert bucket.rate == pytest.approx(10.0)
    answered.set()
    other.join()
    assert bucket.rate == pytest.approx(10.0)
    assert (bucket.throttle_count, bucket.cuts) == (2, 1)
    clock.now += 0.5  # half of 20 requests' worth at 20/s: 20 - 10 * 0.5**3
    assert bucket.rate == pytest.approx(18.75)
    clock.now += 0.5  # back at the rate it was cut from (here also the ceiling)
    assert bucket.rate == pytest.approx(20.0)
    bucket.acquire()  # sent after the decrease, still throttled: halve again
    bucket.throttled()
    assert bucket.rate == pytest.approx(10.0)
    clock.now += 100
    assert bucket.rate == pytest.approx(20.0)


def test_token_bucket_never_drops_below_its_floor() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4, min_qps=1, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
        bucket.throttled()
    assert bucket.rate == pytest.approx(1.0)


def test_unlimited_bucket_limits_at_half_the_throttled_rate_and_keeps_limiting() -> None:
    """Unlimited until throttled at 40/s: then 20/s climbing back to 40/s, and limited for
    good (letting go would flood the service again), probing above 40/s only slowly."""
    clock = FakeClock()
    bucket = TokenBucket(None, decrease=0.5, recovery_requests=40, clock=clock, sleep=clock.sleep)
    for _ in range(40):
        bucket.acquire()
        clock.now += 0.025  # 40 requests per second, none waited for
    assert clock.slept == []
    assert bucket.rate is None
    bucket.throttled()
    assert bucket.rate == pytest.approx(20.0)  # 40 requests in the last second, halved
    began = clock.now
    for _ in range(10):
        bucket.acquire()
    # 10 requests at 20/s climbing towards 40/s: slower than 40/s, faster than 20/s.
    assert 10 / 40 < clock.now - began < 10 / 20
    clock.now = began + 1.0  # 40 requests' worth at 40/s: back at 40/s
    assert bucket.rate == pytest.approx(40.0)
    clock.now = began + 1.5  # probing: half a period later only 1/16 of the cut above it
    assert bucket.rate == pytest.approx(40.0 + 20.0 / 8)
    slept = len(clock.slept)
    for _ in range(3):
        bucket.acquire()
    assert len(clock.slept) > slept  # still spaced


def test_unlimited_bucket_measures_a_burst_over_the_whole_second() -> None:
    """8 requests within a millisecond are 8 per second: the limit becomes 4/s, not 3,500/s."""
    clock = FakeClock()
    bucket = TokenBucket(None, min_qps=0.5, decrease=0.5, clock=clock, sleep=clock.sleep)
    for _ in range(8):
        bucket.acquire()
        clock.now += 0.000125
    bucket.throttled()
    assert bucket.rate == pytest.approx(4.0)
    began = clock.now
    for _ in range(4):
        bucket.acquire()
    # The next 4 requests go at 4 per second climbing back towards 8, not at thousands.
    assert 4 / 8 < clock.now - began < 4 / 4


def test_unlimited_bucket_counts_only_the_last_second() -> None:
    """Requests older than the one-second window do not count; the newer ones over 1 s do."""
    clock = FakeClock()
    bucket = TokenBucket(None, decrease=0.5, clock=clock, sleep=clock.sleep)
    for _ in range(64):
        bucket.acquire()
        clock.now += 0.03125  # 32 per second for 2 s
    bucket.throttled()
    assert bucket.rate == pytest.approx(16.0)


def test_token_bucket_close_releases_waiting_threads_at_once() -> None:
    bucket = TokenBucket(0.01)
    bucket.acquire()
    waiter = threading.Thread(target=bucket.acquire)
    waiter.start()
    bucket.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive()


def test_token_bucket_is_thread_safe_under_contention() -> None:
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.slept.append(seconds)

    bucket = TokenBucket(100, clock=clock, sleep=sleep)

    def work() -> None:
        for _ in range(50):
            bucket.acquire()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bucket.acquired == 400
    # With a frozen clock every reservation queues behind the last: waits run 0.01 .. 3.99 s.
    assert sorted(clock.slept) == pytest.approx([i / 100 for i in range(1, 400)])


def test_token_bucket_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError, match="qps"):
        TokenBucket(0)
    with pytest.raises(ConfigError, match="burst"):
        TokenBucket(5, burst=0.5)
    with pytest.raises(ConfigError, match="decrease"):
        TokenBucket(5, decrease=1.0)


# -- seeds ------------------------------------------------------------------------------------


def test_seed_slices_cover_the_range_once_per_tag_and_queue() -> None:
    seeds = seed_slices("2026-11-02T16:00:00+08:00", T0 + timedelta(hours=2), ["Tts", "Tts"])
    assert seeds == [Slice("Tts", None, T0, T0 + timedelta(hours=2))]
    every = seed_slices(T0, T0 + S, queue_ids=["q1", "q2"])
    assert len(every) == 2 * len(TAGS)
    assert [s.tag for s in every[:2]] == [TAGS[0], TAGS[0]]
    assert {s.queue_id for s in every} == {"q1", "q2"}
    assert seed_slices(T0, T0 + S, "VideoEnhance")[0].tag == "VideoEnhance"


def test_seed_slices_refuse_a_backwards_range_and_empty_names() -> None:
    with pytest.raises(ConfigError, match=r"must be before end.*\[start, end\)"):
        seed_slices(T0, T0)
    with pytest.raises(ConfigError, match="tags is empty; pass None to mean all"):
        seed_slices(T0, T0 + S, [])
    with pytest.raises(ConfigError, match="queue_ids must be non-empty strings"):
        seed_slices(T0, T0 + S, queue_ids=[" "])
