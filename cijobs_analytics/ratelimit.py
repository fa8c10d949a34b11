"""A thread-safe token bucket that keeps a whole fetch under a request rate and backs off.

:class:`TokenBucket` implements the client's ``RateLimiter`` protocol: ``acquire()`` before
every HTTP request (retries included), ``throttled()`` whenever the service answers
``SlowDown``. One bucket is shared by every worker of a run, so ``qps`` bounds the run, not each
thread.

Back-off is AIMD, as in TCP congestion control: a throttle answer halves the rate at once
(multiplicative decrease, at most once per cool-down so that a burst of answers to requests
already in flight counts once), then the rate climbs back linearly to the configured ceiling
over ``recovery_s`` seconds (additive increase). With ``qps=None`` the bucket lets everything
through until the first throttle answer; from then on it limits at half the rate it measured
over the last second and recovers from there, without a ceiling.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import ConfigError

__all__ = ["TokenBucket"]

#: Throttle answers closer together than this count as one overload.
_COOL_DOWN_S = 1.0
#: The window over which an unlimited bucket measures the rate it was throttled at.
_MEASURE_S = 1.0


class TokenBucket:
    """Share one request rate between threads, slowing down when the service says so.

    Args:
        qps: the most requests per second, or None for no limit until the service throttles.
        burst: how many requests may go out back to back after a quiet spell (at least 1).
            The default of 1 spaces requests evenly, which suits a server counting per second.
        min_qps: the floor that repeated throttling cannot push the rate below.
        decrease: the factor a throttle answer multiplies the rate by (between 0 and 1).
        recovery_s: seconds to climb from a decreased rate back to the ceiling.
        clock: a monotonic clock in seconds (tests pass a fake one).
        sleep: how to wait; by default an interruptible wait that :meth:`close` cuts short.

    Raises:
        ConfigError: an argument is out of range.

    Example:
        >>> bucket = TokenBucket(20)
        >>> bucket.acquire()  # returns at once: the bucket starts full
        >>> round(bucket.rate, 1)
        20.0
    """

    def __init__(
        self,
        qps: float | None,
        *,
        burst: float = 1.0,
        min_qps: float = 0.5,
        decrease: float = 0.5,
        recovery_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if qps is not None and not qps > 0:
            raise ConfigError(f"qps must be a positive number or None, got {qps!r}")
        if not burst >= 1:
            raise ConfigError(f"burst must be at least 1, got {burst!r}")
        if not min_qps > 0:
            raise ConfigError(f"min_qps must be positive, got {min_qps!r}")
        if not 0 < decrease < 1:
            raise ConfigError(f"decrease must be between 0 and 1, got {decrease!r}")
        if not recovery_s > 0:
            raise ConfigError(f"recovery_s must be positive, got {recovery_s!r}")
        self._ceiling = None if qps is None else float(qps)
        self._rate = self._ceiling
        self._burst = float(burst)
        self._min = min(float(min_qps), self._ceiling or float(min_qps))
        self._decrease = float(decrease)
        self._recovery_s = float(recovery_s)
        self._step = 0.0 if self._ceiling is None else self._ceiling / self._recovery_s
        self._clock = clock
        self._closed = threading.Event()
        self._sleep = sleep if sleep is not None else self._closed.wait
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._last = clock()
        self._last_decrease: float | None = None
        self._recent: deque[float] = deque()
        self.acquired = 0
        self.throttle_count = 0
        self.waited_s = 0.0

    @property
    def rate(self) -> float | None:
        """The rate requests are let through at now, or None while unlimited."""
        with self._lock:
            self._refill(self._clock())
            return self._rate

    def acquire(self) -> None:
        """Block until one more request may be sent.

        Requests are spaced at the current rate; a thread that must wait reserves its turn
        first, so waiting threads are served in order without busy-looping.
        """
        with self._lock:
            now = self._clock()
            self._refill(now)
            self.acquired += 1
            if self._rate is None:
                self._recent.append(now)
                while self._recent and self._recent[0] < now - _MEASURE_S:
                    self._recent.popleft()
                return
            self._tokens -= 1.0
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
            self.waited_s += wait
        if wait > 0 and not self._closed.is_set():
            self._sleep(wait)

    def throttled(self) -> None:
        """Lower the rate because the service answered ``SlowDown`` (or 429/503)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self.throttle_count += 1
            if self._last_decrease is not None and now - self._last_decrease < _COOL_DOWN_S:
                return
            self._last_decrease = now
            if self._rate is None:
                measured = sum(1 for t in self._recent if t >= now - _MEASURE_S) / _MEASURE_S
                self._rate = max(self._min, measured)
                self._step = self._rate / self._recovery_s
                self._recent.clear()
            self._rate = max(self._min, self._rate * self._decrease)
            # Drop any saved-up burst: the service has just said the pace is too high.
            self._tokens = min(self._tokens, 0.0)

    def close(self) -> None:
        """Wake every waiting thread at once; later calls no longer wait (used on cancel)."""
        self._closed.set()

    def _refill(self, now: float) -> None:
        """Credit the tokens earned since the last call and let a lowered rate recover."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        if self._rate is None:
            return
        rate = self._rate + self._step * elapsed
        self._rate = rate if self._ceiling is None else min(self._ceiling, rate)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
