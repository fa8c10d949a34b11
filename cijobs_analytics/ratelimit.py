"""A thread-safe, adaptive token bucket that keeps a whole fetch at the rate the service allows.

:class:`TokenBucket` implements the client's ``RateLimiter`` protocol: ``acquire()`` before
every HTTP request (retries included), ``throttled()`` whenever the service answers
``SlowDown``. One bucket is shared by every worker of a run, so the rate bounds the run, not
each thread, however many workers there are.

The rate follows the service (AIMD with a cubic climb, as in TCP CUBIC and the AWS SDKs'
adaptive retry mode):

* **cut**: a throttle answer multiplies the rate by ``decrease`` (0.7 by default, never below
  ``min_qps``), drops any saved-up burst, and sends the threads already waiting at the old
  pace to the back of the queue at the new one;
* **climb back**: the rate then grows along a cubic curve, fast at first and flattening out
  as it nears the rate it was cut from, which it reaches after ``recovery_requests`` requests'
  worth of time at that rate;
* **probe**: only after that quiet period does it rise above the old rate, slowly at first and
  faster the longer the service keeps answering, so a limit that was lifted is found again.

Throttled again before it got back (the limit dropped, or another client shares it), the
bucket also lowers the rate it aims for, so it settles below the new limit instead of hitting
it every cycle. The time scale is in requests, not seconds: a 2 requests/s service sees as
many requests between probes as a 200 requests/s one, so the share of refused requests stays
small at any limit. (Simulated over 300 s against limits of 2 to 100 requests/s: 3–4% of
requests refused with 8 workers, 4–14% with 64, the first flood included; 96–100% of the
limit used. A cut to a half rather than 0.7 left a 2 requests/s limit only 86% used.)

A throttle answer to a request that was let through before the last cut says nothing new
(that request went out at the old pace), so it is counted but does not cut again. The bucket
tells such answers apart by the ticket each thread drew in its last :meth:`acquire`, which
works because the client reports a throttle from the thread that sent the request.

A ``Retry-After`` the service sent pauses every caller, not just the one that got it: no
request is let through before it has passed, and the ones waiting queue up behind it at the
current rate rather than all at once.

With ``qps=None`` the bucket lets everything through until the first throttle answer; it then
starts from the rate it measured over the last second, cuts, and adapts from there for the
rest of its life. With a ``qps`` the rate never exceeds it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import ConfigError

__all__ = ["TokenBucket"]

#: The window over which an unlimited bucket measures the rate it was throttled at.
_MEASURE_S = 1.0


class TokenBucket:
    """Share one request rate between threads, adapting it to the service's throttling.

    Args:
        qps: the most requests per second, or None for no limit until the service throttles.
        burst: how many requests may go out back to back after a quiet spell (at least 1).
            The default of 1 spaces requests evenly, which suits a server counting per second.
        min_qps: the floor that repeated throttling cannot push the rate below.
        decrease: the factor a throttle answer multiplies the rate by (between 0 and 1).
        recovery_requests: after a cut, how many requests' worth of time (at the rate cut
            from) the rate takes to climb back to that rate; probing above it starts then.
            Larger is gentler: fewer refused requests, slower to find a raised limit.
        clock: a monotonic clock in seconds (tests pass a fake one).
        sleep: how to wait; by default an interruptible wait that :meth:`close` cuts short.

    Attributes:
        acquired: requests let through so far.
        throttle_count: throttle answers reported so far.
        cuts: throttle answers that lowered the rate (the others were already dealt with).
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
        min_qps: float = 0.1,
        decrease: float = 0.7,
        recovery_requests: float = 40.0,
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
        if not recovery_requests > 0:
            raise ConfigError(f"recovery_requests must be positive, got {recovery_requests!r}")
        self._ceiling = None if qps is None else float(qps)
        self._rate = self._ceiling
        self._burst = float(burst)
        self._min = min(float(min_qps), self._ceiling or float(min_qps))
        self._decrease = float(decrease)
        self._recovery = float(recovery_requests)
        # The curve after the latest cut: when it was, the rate it started from and the rate
        # it aims for (None before the first throttle answer).
        self._cut_at = 0.0
        self._start = 0.0
        self._target: float | None = None
        self._clock = clock
        self._closed = threading.Event()
        self._sleep = sleep if sleep is not None else self._closed.wait
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._last = clock()
        # Retry-After: no request goes before this time. A cut or a pause bumps the epoch,
        # which voids the turns threads reserved before it.
        self._pause_until = float("-inf")
        self._epoch = 0
        # Tickets: the serial number of each thread's latest reservation, and the last serial
        # handed out before the latest cut.
        self._ticket = threading.local()
        self._serial = 0
        self._decreased_at = 0
        self._recent: deque[float] = deque()
        self.acquired = 0
        self.throttle_count = 0
        self.cuts = 0
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
        first, so waiting threads are served in order without busy-looping. A thread whose
        wait a cut or a ``Retry-After`` pause overtook queues again at the new pace.
        """
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                self._serial += 1
                self._ticket.serial = self._serial
                if self._rate is None:
                    self._recent.append(now)
                    while self._recent and self._recent[0] < now - _MEASURE_S:
                        self._recent.popleft()
                    self.acquired += 1
                    return
                self._tokens -= 1.0
                # Tokens accrue only after a pause: the turns queue up from its end.
                wait = max(0.0, self._pause_until - now)
                wait += -self._tokens / self._rate if self._tokens < 0 else 0.0
                self.waited_s += wait
                epoch = self._epoch
            if wait > 0 and not self._closed.is_set():
                self._sleep(wait)
            with self._lock:
                if self._epoch == epoch or self._closed.is_set():
                    self.acquired += 1
                    return

    def throttled(self, retry_after: float | None = None) -> None:
        """Lower the rate because the service answered ``SlowDown`` (or 429/503).

        Args:
            retry_after: seconds the service asked to wait (its ``Retry-After``), if it did:
                no request of any caller is let through before they have passed.
        """
        serial = getattr(self._ticket, "serial", None)
        with self._lock:
            now = self._clock()
            self._refill(now)
            self.throttle_count += 1
            pause = 0.0
            if retry_after is not None and retry_after > 0:
                self._pause_until = max(self._pause_until, now + retry_after)
                pause = self._pause_until - now
            if serial is None or serial > self._decreased_at:
                self._cut(now)
            elif not pause:
                return  # sent before the last cut: that overload is dealt with
            # Turns reserved at the old pace are void: their threads queue again at the new
            # rate, from the end of the pause if there is one (the first one right then), and
            # no saved-up burst survives.
            self._epoch += 1
            self._tokens = 1.0 if pause else 0.0

    def close(self) -> None:
        """Wake every waiting thread at once; later calls no longer wait (used on cancel)."""
        self._closed.set()

    def _cut(self, now: float) -> None:
        """Multiply the rate by ``decrease`` and start a new climb from there."""
        self._decreased_at = self._serial
        self.cuts += 1
        sent_at = self._rate if self._rate is not None else self._measured(now)
        sent_at = max(self._min, sent_at)
        target = sent_at
        if self._target is not None and sent_at < self._target:
            # Throttled short of the old target: the limit is lower now; aim below it.
            target = sent_at * (1.0 + self._decrease) / 2.0
        self._target = target
        self._start = max(self._min, sent_at * self._decrease)
        self._cut_at = now
        self._rate = self._start

    def _refill(self, now: float) -> None:
        """Credit the tokens earned since the last call (none during a pause) and move the
        rate along its curve."""
        elapsed = max(0.0, now - max(self._last, self._pause_until))
        self._last = now
        if self._rate is None:
            return
        if self._target is not None:
            self._rate = self._curve(now - self._cut_at)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)

    def _curve(self, since_cut: float) -> float:
        """The rate ``since_cut`` seconds after the latest cut.

        Cubic in ``x``, the requests' worth of time at the target rate over
        ``recovery_requests``: up from the start rate to the target at ``x = 1``, flat there,
        then rising past it ever faster. The curve's height is always ``1 - decrease`` of the
        target, so a rate cut only as far as the floor still probes upwards.
        """
        assert self._target is not None
        height = self._target * (1.0 - self._decrease)
        below = (self._target - self._start) / height
        x0 = 1.0 - math.copysign(abs(below) ** (1.0 / 3.0), below)
        x = x0 + max(0.0, since_cut) * self._target / self._recovery
        rate = max(self._min, self._target + height * (x - 1.0) ** 3)
        return rate if self._ceiling is None else min(self._ceiling, rate)

    def _measured(self, now: float) -> float:
        """Requests per second over the last ``_MEASURE_S`` (an unlimited bucket keeps no tokens).

        The count is divided by the whole window, never by the span of the requests in it: a
        burst of 8 requests within a millisecond is 8 per second, not 7,000, so the first
        throttle answer really slows the run down.
        """
        recent = sum(1 for t in self._recent if t >= now - _MEASURE_S)
        return recent / _MEASURE_S
