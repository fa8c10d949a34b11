"""A thread-safe token bucket that keeps a whole fetch under a request rate and backs off.

:class:`TokenBucket` implements the client's ``RateLimiter`` protocol: ``acquire()`` before
every HTTP request (retries included), ``throttled()`` whenever the service answers
``SlowDown``. One bucket is shared by every worker of a run, so ``qps`` bounds the run, not each
thread.

Back-off is multiplicative both ways: a throttle answer halves the rate at once, and every
``recovery_s`` seconds without one the rate doubles again, up to the configured ceiling. A
fixed step back up would take minutes from a low rate; doubling wins back a wrong guess in a
few seconds, and the next throttle answer halves it again if the service still disagrees.

A throttle answer to a request that was let through before the last decrease says nothing new
(that request went out at the old pace), so it is counted but does not halve again. The bucket
tells such answers apart by the ticket each thread drew in its last :meth:`acquire`, which
works because the client reports a throttle from the thread that sent the request.

With ``qps=None`` the bucket lets everything through until the first throttle answer; from
then on it limits at half the rate it measured over the last second, and once it has doubled
back past twice that rate it stops limiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import ConfigError

__all__ = ["TokenBucket"]

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
        recovery_s: seconds without a throttle answer in which the rate doubles again.
        clock: a monotonic clock in seconds (tests pass a fake one).
        sleep: how to wait; by default an interruptible wait that :meth:`close` cuts short.

    Attributes:
        acquired: requests let through so far.
        throttle_count: throttle answers reported so far.
        waited_s: seconds callers were asked to wait in total.

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
        recovery_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if qps is not None and (
            isinstance(qps, bool) or not isinstance(qps, int | float) or not qps > 0
        ):
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
        # Where an unlimited bucket that had to slow down stops limiting again.
        self._release: float | None = None
        self._clock = clock
        self._closed = threading.Event()
        self._sleep = sleep if sleep is not None else self._closed.wait
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._last = clock()
        # Tickets: the serial number of each thread's latest acquire, and the last serial
        # handed out before the latest decrease.
        self._ticket = threading.local()
        self._decreased_at = 0
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
            self._ticket.serial = self.acquired
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
        serial = getattr(self._ticket, "serial", None)
        with self._lock:
            now = self._clock()
            self._refill(now)
            self.throttle_count += 1
            if serial is not None and serial <= self._decreased_at:
                return  # sent before the last decrease: that overload is dealt with
            self._decreased_at = self.acquired
            if self._rate is None:
                self._rate = max(self._min, self._measured(now))
                self._release = 2 * self._rate
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
        rate = self._rate * (1.0 / self._decrease) ** (elapsed / self._recovery_s)
        if self._ceiling is not None:
            rate = min(self._ceiling, rate)
        elif self._release is not None and rate >= self._release:
            # Recovered well past the rate that was throttled: the overload has passed.
            self._rate = self._release = None
            return
        self._rate = rate
        self._tokens = min(self._burst, self._tokens + elapsed * rate)

    def _measured(self, now: float) -> float:
        """Requests per second over the last ``_MEASURE_S`` (an unlimited bucket keeps no tokens).

        The count is divided by the whole window, never by the span of the requests in it: a
        burst of 8 requests within a millisecond is 8 per second, not 7,000, so the first
        throttle answer really slows the run down.
        """
        recent = sum(1 for t in self._recent if t >= now - _MEASURE_S)
        return recent / _MEASURE_S
