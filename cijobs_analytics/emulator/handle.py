"""The Python handle of the emulator: generate jobs, serve them, change them, read the truth."""

from __future__ import annotations

import enum
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from .._times import TimeLike, to_utc, utc_now
from ..config import ENV_SECRET_ID, ENV_SECRET_KEY, ENV_SESSION_TOKEN, Credentials
from ..errors import ConfigError
from .generate import EmulatedJob, generate_jobs, make_queue_ids
from .server import EmulatorServer, EmulatorStats, Faults
from .store import AdvanceResult, JobStore

__all__ = ["DEFAULT_BUCKET", "DEFAULT_REGION", "Emulator", "demo_credentials"]

DEFAULT_BUCKET = "examplebucket-1250000000"
DEFAULT_REGION = "ap-guangzhou"


class _Keep(enum.Enum):
    """Marks a ``set_faults`` argument left out where ``None`` is a value (``qps``)."""

    KEEP = enum.auto()


def demo_credentials() -> Credentials:
    """Fresh random credentials for a local emulator (never valid anywhere else)."""
    return Credentials(f"AKIDemu{secrets.token_hex(14)}", secrets.token_urlsafe(24))


def _epoch(value: TimeLike | None, name: str) -> float | None:
    return None if value is None else to_utc(value, name=name).timestamp()


class Emulator:
    """A local, faithful CI ``GET /jobs`` endpoint with generated jobs.

    The jobs are generated when the object is made (deterministic from ``seed``, ``jobs``,
    ``days`` and ``end``); the HTTP server runs between :meth:`start` and :meth:`stop`, or
    inside a ``with`` block.

    Args:
        jobs: how many jobs to generate.
        days: they are created in ``[end - days, end)``.
        seed: the random seed of the jobs (and of the fault draws).
        end: the end of the history, aware; defaults to now, floored to the second.
        bucket: the bucket the jobs belong to; the only one served.
        region: its region; the only one served.
        queues: how many queues the jobs are spread over.
        credentials: the key the server accepts; random demo credentials when ``None``.
        latency_ms: fault: added to every request.
        qps: fault: requests per second allowed; excess is answered 503 ``SlowDown``.
        fail_rate: fault: share of answers replaced by 500 ``InternalError``.
        drop_rate: fault: share of connections closed part-way through the body.
        truncate_rate: fault: share of bodies cut short (with a matching Content-Length).
        malformed_rate: fault: share of bodies with the seed document's stray ``</Message>``.
        inclusive_bounds: make ``startCreationTime``/``endCreationTime`` inclusive (the service
            documents them as exclusive).
        pin_bucket: refuse requests whose Host names another bucket or region (400
            ``InvalidHost``), so a typo in a client's bucket or region fails instead of being
            served; ``False`` serves any Host.
        host: the address to bind.
        port: the port to bind; 0 picks a free one.

    Attributes:
        bucket: the bucket of the jobs (``host_header`` names it).
        region: its region.
        credentials: the key the server accepts.
        queue_ids: the emulated queues.
        end: the end of the generated history (aware UTC, whole second).
        days: the span of the generated history.
        seed: the seed.

    Raises:
        ConfigError: an argument is out of range.

    Example:
        >>> with Emulator(jobs=200, days=1, seed=1) as emu:  # doctest: +SKIP
        ...     client = CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url)
        ...     page = client.list_jobs("Transcode")
    """

    def __init__(
        self,
        jobs: int = 2000,
        days: float = 7.0,
        seed: int = 0,
        end: datetime | None = None,
        bucket: str = DEFAULT_BUCKET,
        region: str = DEFAULT_REGION,
        queues: int = 3,
        credentials: Credentials | None = None,
        latency_ms: float = 0,
        qps: float | None = None,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        truncate_rate: float = 0.0,
        malformed_rate: float = 0.0,
        inclusive_bounds: bool = False,
        pin_bucket: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        for name, value in (("bucket", bucket), ("region", region), ("host", host)):
            if not isinstance(value, str) or not value or any(c in value for c in "/ \t\r\n"):
                raise ConfigError(f"{name} must be a non-empty name, got {value!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be in [0, 65535], got {port!r}")
        if not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self._faults = Faults(latency_ms, qps, fail_rate, drop_rate, truncate_rate, malformed_rate)
        self.end = to_utc(end, name="end") if end is not None else utc_now()
        self.end = self.end.replace(microsecond=0)
        self.bucket = bucket
        self.region = region
        self.seed = seed
        self.days = days
        self.inclusive_bounds = bool(inclusive_bounds)
        self.pin_bucket = bool(pin_bucket)
        self.credentials = credentials if credentials is not None else demo_credentials()
        self.queue_ids = make_queue_ids(seed, queues)
        generated = generate_jobs(jobs, days, seed, self.end, self.queue_ids, bucket, region)
        self._store = JobStore(generated, self.queue_ids, (bucket, region), seed)
        self._host = host
        self._port = port
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a background thread (idempotent).

        Returns:
            the emulator itself.

        Raises:
            ConfigError: the address cannot be bound.
        """
        if self._server is not None:
            return self
        try:
            server = EmulatorServer(
                (self._host, self._port),
                self._store,
                {self.credentials.secret_id: self.credentials},
                served=(self.bucket, self.region) if self.pin_bucket else None,
                inclusive=self.inclusive_bounds,
                faults=self._faults,
                seed=self.seed,
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"cijobs-emulator-{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close every client connection (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"Emulator(jobs={len(self._store)}, bucket={self.bucket!r}, {where})"

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    def _running_server(self) -> EmulatorServer:
        if self._server is None:
            raise ConfigError("the emulator is not running: call start() or use `with`")
        return self._server

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            ConfigError: the emulator is not running.
        """
        return int(self._running_server().server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``.

        Raises:
            ConfigError: the emulator is not running.
        """
        return f"http://{self._host}:{self.port}"

    @property
    def host_header(self) -> str:
        """The Host a client sends (and signs): ``<bucket>.ci.<region>.myqcloud.com``."""
        return f"{self.bucket}.ci.{self.region}.myqcloud.com"

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables that make a ``cijobs`` child process use this key.

        Args:
            base: the variables to start from; ``os.environ`` when None.

        Returns:
            A copy of ``base`` with ``TENCENTCLOUD_SECRET_ID``/``_SECRET_KEY`` set to the
            emulator's credentials and the session token set or removed to match them.
        """
        env = dict(os.environ if base is None else base)
        env[ENV_SECRET_ID] = self.credentials.secret_id
        env[ENV_SECRET_KEY] = self.credentials.secret_key
        if self.credentials.token:
            env[ENV_SESSION_TOKEN] = self.credentials.token
        else:
            env.pop(ENV_SESSION_TOKEN, None)
        return env

    @property
    def history_start(self) -> datetime:
        """The start of the generated history: jobs were created in ``[history_start, end)``."""
        return self.end - timedelta(seconds=max(1, int(self.days * 86400)))

    # -- data ------------------------------------------------------------------------------------

    def truth(
        self,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        tags: Iterable[str] | None = None,
        queue_ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
    ) -> list[EmulatedJob]:
        """The jobs the emulator holds right now.

        Args:
            start: only jobs created at or after this time.
            end: only jobs created before this time.
            tags: only these tags.
            queue_ids: only these queues.
            states: only these states.

        Returns:
            the jobs sorted by ``(creation_time, job_id)``.

        Raises:
            ConfigError: a time is naive or not a time.
        """
        return self._store.truth(
            _epoch(start, "start"), _epoch(end, "end"), tags, queue_ids, states
        )

    def advance(self, finish: float = 1.0, new_jobs: int = 0) -> AdvanceResult:
        """Let time pass: finish open jobs and create new ones, as the real service would.

        Args:
            finish: the share (0..1) of open jobs, oldest first, moved to a final state
                (mostly ``Success``, some ``Failed``/``Cancel``) with end time now.
            new_jobs: how many ``Submitted`` jobs to create, stamped with the current time.

        Returns:
            the ids finished and created.

        Raises:
            ConfigError: ``finish`` is outside [0, 1] or ``new_jobs`` is negative.
        """
        if not isinstance(finish, int | float) or not 0.0 <= finish <= 1.0:
            raise ConfigError(f"finish must be in [0, 1], got {finish!r}")
        if not isinstance(new_jobs, int) or isinstance(new_jobs, bool) or new_jobs < 0:
            raise ConfigError(f"new_jobs must be a non-negative integer, got {new_jobs!r}")
        return self._store.advance(finish, new_jobs, datetime.now(UTC))

    # -- faults and counts -------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The current fault settings."""
        return self._faults

    def set_faults(
        self,
        *,
        latency_ms: float | None = None,
        qps: float | _Keep | None = _Keep.KEEP,
        fail_rate: float | None = None,
        drop_rate: float | None = None,
        truncate_rate: float | None = None,
        malformed_rate: float | None = None,
    ) -> Faults:
        """Change fault settings, live; arguments left out keep their value.

        Args:
            latency_ms: added to every request.
            qps: requests per second allowed; ``None`` removes the limit.
            fail_rate: share answered 500 ``InternalError``.
            drop_rate: share of connections dropped mid-body.
            truncate_rate: share of bodies cut short.
            malformed_rate: share of bodies with the stray ``</Message>``.

        Returns:
            the new settings.

        Raises:
            ConfigError: a value is out of range.
        """
        old = self._faults
        self._faults = Faults(
            old.latency_ms if latency_ms is None else latency_ms,
            old.qps if isinstance(qps, _Keep) else qps,
            old.fail_rate if fail_rate is None else fail_rate,
            old.drop_rate if drop_rate is None else drop_rate,
            old.truncate_rate if truncate_rate is None else truncate_rate,
            old.malformed_rate if malformed_rate is None else malformed_rate,
        )
        if self._server is not None:
            self._server.set_faults(self._faults)
        return self._faults

    def stats(self) -> EmulatorStats:
        """Counts of requests, statuses, error codes and injected faults since start or reset."""
        if self._server is None:
            return EmulatorStats(requests=0, by_status={}, by_code={}, faults={})
        return self._server.stats()

    def reset_stats(self) -> None:
        """Zero the counts of :meth:`stats`."""
        if self._server is not None:
            self._server.reset_stats()
