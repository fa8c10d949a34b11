"""The export lock of a dataset on object storage: the object ``<prefix>/_lock``.

There is no ``flock`` on a bucket, so the lock is an object created with a conditional write
(``If-None-Match: *``): of two exports starting at once, one creates it and the other is
refused. The object holds JSON ``{"pid", "host", "started", "renewed", "lease_s", "token"}``;
while the export runs a heartbeat thread rewrites it with a fresh ``renewed`` every
``heartbeat_s``, each write conditional on the ``ETag`` of the previous one (``If-Match``), so
a heartbeat can never overwrite a lock that someone else took over.

A lock found in place is taken over (with ``If-Match`` on the ``ETag`` that was read, so of two
takers only one wins) when its holder ran on this host and its process is gone, or when its
lease lapsed: ``renewed + lease_s`` is in the past, which on another host is the only sign of
a dead holder. Hosts are assumed to keep their clocks in step (NTP); a lease of minutes
tolerates seconds of skew. Any other lock is refused at once, naming its holder.

The export calls :meth:`ObjectLock.check` before each commit: it raises when the heartbeat
found the lock taken over, or when the lock has not been renewed for so long that another
export may take it over, so an export never commits without holding the lock.

Some S3-compatible stores accept conditional headers and ignore them. Right after taking the
lock, a second create of the same object is tried: on a store that honours ``If-None-Match``
it fails; when it succeeds the store cannot refuse a concurrent export, which is logged and
recorded in :attr:`ObjectLock.conditional_writes`.

obstore's errors are translated here, at the one boundary with it, into :class:`StoreError`
whose messages name the lock object but never the storage options.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotSupportedError,
    PreconditionError,
)

from ._location import Location
from .errors import ConfigError, StoreError

if TYPE_CHECKING:
    from obstore import PutMode, PutResult
    from obstore.store import S3Store

__all__ = [
    "DEFAULT_LEASE",
    "LOCK_KEY",
    "ObjectLock",
    "read_object_lock_holder",
]

#: The key of the lock object in the dataset's prefix.
LOCK_KEY = "_lock"
#: How long a lock stays valid without a renewal; another host takes it over after that.
DEFAULT_LEASE = timedelta(minutes=2)

logger = logging.getLogger(__name__)

#: What obstore raises: its own tree, ``FileNotFoundError`` for a missing object, and the
#: built-in ``ValueError``/``OSError`` some operations use.
_OBSTORE_ERRORS = (BaseError, OSError, ValueError)
#: How many times acquire looks again when the object changes under it (released or taken
#: over by someone else between two requests).
_ACQUIRE_ROUNDS = 5
#: How long release waits for a renewal in flight before leaving the object to its lease.
_RELEASE_WAIT_S = 10.0
#: Storage option names whose values must not reach a message, even inside obstore's text.
_SECRET_MARKERS = ("secret", "token", "password")


@dataclass(frozen=True)
class _Holder:
    """The parsed body of a lock object."""

    pid: int
    host: str
    started: str
    renewed: datetime
    lease_s: float
    token: str

    @property
    def lapses_at(self) -> datetime:
        return self.renewed + timedelta(seconds=self.lease_s)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started}"

    def as_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "host": self.host,
            "started": self.started,
            "renewed": self.renewed.isoformat(timespec="milliseconds"),
            "lease_s": self.lease_s,
        }


class ObjectLock:
    """An exclusive export lock on a dataset in a bucket, kept alive by a heartbeat.

    Args:
        location: the dataset (an object-store location).
        lease: how long the lock stays valid without a renewal.
        heartbeat_s: seconds between renewals; a quarter of the lease when None.

    Attributes:
        conditional_writes: False when the store was found to ignore ``If-None-Match``, so
            concurrent exports cannot be refused on it (set by :meth:`acquire`).

    Raises:
        ConfigError: a local location, a lease that is not positive, a heartbeat that is not
            shorter than the lease, or storage options obstore rejects.

    Example:
        >>> with ObjectLock(resolve_location("s3://jobs-archive/ci")) as lock:  # doctest: +SKIP
        ...     lock.check()  # before each commit
    """

    def __init__(
        self,
        location: Location,
        *,
        lease: timedelta = DEFAULT_LEASE,
        heartbeat_s: float | None = None,
    ) -> None:
        if location.is_local:
            raise ConfigError(f"{location.display} is a local directory; it has no lock object")
        lease_s = lease.total_seconds()
        if lease_s <= 0:
            raise ConfigError(f"the lock lease must be positive, got {lease}")
        heartbeat = lease_s / 4 if heartbeat_s is None else float(heartbeat_s)
        if not 0 < heartbeat < lease_s:
            raise ConfigError(
                f"the lock heartbeat must be between 0 and the lease ({lease_s:g} s), "
                f"got {heartbeat:g} s"
            )
        self.location = location
        self.lease = lease
        self.heartbeat_s = heartbeat
        self.key = location.child(LOCK_KEY)
        self.conditional_writes = True
        self._store: S3Store = location.object_store()
        self._token: str | None = None
        self._started = ""
        self._etag: str | None = None
        #: ``time.monotonic()`` when the last successful write was sent: the lease runs from
        #: there, as it runs from ``renewed`` for whoever reads the object.
        self._renewed_at = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        #: Held around every write, so that no renewal lands after release removed the object.
        self._io = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (acquired, not released, not lost)."""
        return self._token is not None and self._lost is None

    def acquire(self) -> None:
        """Take the lock or fail at once; then start the heartbeat.

        Raises:
            StoreError: an export is already running on the dataset, the lock object is not
                one of ours, or the store cannot be reached.
        """
        if self._token is not None:
            raise StoreError(f"the export lock {self.key} is already held by this process")
        token = uuid.uuid4().hex
        started = _now().isoformat(timespec="seconds")
        for _ in range(_ACQUIRE_ROUNDS):
            body = _body(token, started, self.lease)
            sent_at = time.monotonic()
            try:
                result = obstore.put(self._store, LOCK_KEY, body, mode="create")
            except AlreadyExistsError:
                pass
            except _OBSTORE_ERRORS as exc:
                raise self._error("create", exc) from exc
            else:
                self._hold(token, started, result, sent_at)
                self._probe_conditional_writes(body)
                self._start_heartbeat(token)
                return
            current = _read(self._store, self.location)
            if current is None:
                continue  # the holder released it between our create and our read
            raw, etag = current
            holder = _parse(raw)
            if holder is None:
                raise StoreError(
                    f"{self.key} exists but is not an export lock; if no export runs on "
                    f"{self.location.display}, delete it and run again"
                )
            reason = _stale_reason(holder)
            if reason is None:
                raise StoreError(
                    f"an export is already running on {self.location.display} "
                    f"({holder.describe()}); wait for it to finish"
                )
            sent_at = time.monotonic()
            try:
                result = obstore.put(self._store, LOCK_KEY, body, mode=_if_match(etag))
            except PreconditionError:
                continue  # another taker won, or the holder renewed: look at it again
            except _OBSTORE_ERRORS as exc:
                raise self._error("take over", exc) from exc
            logger.warning("taking over the stale lock of %s (%s)", holder.describe(), reason)
            self._hold(token, started, result, sent_at)
            self._probe_conditional_writes(body)
            self._start_heartbeat(token)
            return
        raise StoreError(f"could not take {self.key}: it keeps changing; try again")

    def check(self) -> None:
        """Make sure the lock is still held; the export calls this before each commit.

        Raises:
            StoreError: the lock is not held, was taken over by another export, or has not
                been renewed for so long that another export may take it over (less than one
                heartbeat of the lease is left).
        """
        if self._token is None:
            raise StoreError(f"the export lock {self.key} is not held")
        if self._lost is not None:
            raise StoreError(f"lost the export lock {self.key}: {self._lost}")
        silent = time.monotonic() - self._renewed_at
        if silent >= self.lease.total_seconds() - self.heartbeat_s:
            raise StoreError(
                f"the export lock {self.key} has not been renewed for {silent:.0f} s "
                f"(lease {self.lease.total_seconds():g} s); another export may take it over"
            )

    def release(self) -> None:
        """Stop the heartbeat and remove the lock object if it is still ours.

        Best effort: a failure is logged, never raised, and leaves the object to its lease.
        A no-op when the lock is not held.
        """
        token = self._token
        if token is None:
            return
        self._stop.set()
        if not self._io.acquire(timeout=_RELEASE_WAIT_S):
            # A renewal is stuck on the network; it may still land, so the object is left to
            # lapse rather than removed under it.
            logger.warning("could not remove %s: a renewal is still in flight", self.key)
            self._token = None
            self._thread = None
            return
        try:
            self._token = None
        finally:
            self._io.release()
        if self._thread is not None:
            self._thread.join(timeout=_RELEASE_WAIT_S)
            self._thread = None
        try:
            current = _read(self._store, self.location)
            holder = _parse(current[0]) if current is not None else None
            if holder is not None and holder.token == token:
                # S3 deletes are unconditional: between the read and the delete only a taker
                # of a lapsed lease could step in, and ours was renewed moments ago.
                obstore.delete(self._store, LOCK_KEY)
            elif current is not None:
                logger.warning("not removing %s: it is no longer ours", self.key)
        except Exception as exc:  # release must never raise; the lease cleans up after us
            logger.warning(
                "could not remove %s (left to its lease): %s",
                self.key,
                _summary(_cause(exc), self.location),
            )

    def __enter__(self) -> ObjectLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # -- internals ------------------------------------------------------------------------------

    def _hold(self, token: str, started: str, result: PutResult, sent_at: float) -> None:
        self._token = token
        self._started = started
        self._etag = result["e_tag"]
        self._renewed_at = sent_at
        self._lost = None

    def _probe_conditional_writes(self, body: bytes) -> None:
        """Create the lock object once more: a store that honours ``If-None-Match`` refuses.

        Raises:
            StoreError: the probe failed for another reason (the lock is given up first).
        """
        try:
            result = obstore.put(self._store, LOCK_KEY, body, mode="create")
        except AlreadyExistsError:
            self.conditional_writes = True
            return
        except _OBSTORE_ERRORS as exc:
            self._abandon()
            raise self._error("create", exc) from exc
        self.conditional_writes = False
        self._etag = result["e_tag"]
        logger.warning(
            "the store of %s ignores conditional writes (If-None-Match): concurrent exports "
            "cannot be refused on it; make sure only one export runs at a time",
            self.location.display,
        )

    def _abandon(self) -> None:
        """Give up a lock just taken, without a heartbeat running yet."""
        self._token = None
        try:
            obstore.delete(self._store, LOCK_KEY)
        except _OBSTORE_ERRORS as exc:
            logger.warning("could not remove %s: %s", self.key, _summary(exc, self.location))

    def _start_heartbeat(self, token: str) -> None:
        # Each holding gets its own event and token: a heartbeat that release gave up waiting
        # for must not go on renewing a later holding of the same object.
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat,
            args=(self._stop, token),
            name="cijobs-lock-heartbeat",
            daemon=True,
        )
        self._thread.start()

    def _beat(self, stop: threading.Event, token: str) -> None:
        while not stop.wait(self.heartbeat_s):
            with self._io:
                if stop.is_set():
                    return  # released while we waited for the mutex
                self._renew(token)
            if self._lost is not None:
                return

    def _renew(self, token: str) -> None:
        """Rewrite the lock object with a fresh ``renewed``; on failure, maybe declare it lost."""
        body = _body(token, self._started, self.lease)
        sent_at = time.monotonic()
        try:
            if not self.conditional_writes:
                # If-Match is ignored on this store: look before writing, racy as that is.
                taken = self._taken_over(token)
                if taken is not None:
                    self._lose(taken)
                    return
            result = obstore.put(self._store, LOCK_KEY, body, mode=_if_match(self._etag))
        except PreconditionError:
            # Our last write may have landed with its answer lost, leaving a stale ETag: the
            # token tells whether the object is still ours.
            try:
                taken = self._taken_over(token)
            except StoreError as exc:
                self._fail(exc)
                return
            if taken is not None:
                self._lose(taken)
        except (*_OBSTORE_ERRORS, StoreError) as exc:
            self._fail(exc)
        else:
            self._etag = result["e_tag"]
            self._renewed_at = sent_at

    def _taken_over(self, token: str) -> str | None:
        """How the lock object stopped being ours; None when it is (its ETag is then adopted).

        Raises:
            StoreError: the store cannot be read.
        """
        current = _read(self._store, self.location)
        if current is None:
            return "the lock object was removed by someone else"
        holder = _parse(current[0])
        if holder is None:
            return "the lock object was replaced by something that is not an export lock"
        if holder.token != token:
            return f"another export took it over ({holder.describe()})"
        self._etag = current[1]
        return None

    def _fail(self, exc: Exception) -> None:
        """A renewal failed for a reason other than a takeover: retry until the lease lapses."""
        summary = _summary(_cause(exc), self.location)
        silent = time.monotonic() - self._renewed_at
        if silent >= self.lease.total_seconds():
            self._lose(f"it could not be renewed for {silent:.0f} s: {summary}")
        else:
            logger.warning("could not renew %s (will try again): %s", self.key, summary)

    def _lose(self, reason: str) -> None:
        # Logged before it is set: whoever sees the lock lost also finds the line in the log.
        logger.error("lost the export lock %s: %s", self.key, reason)
        self._lost = reason

    def _error(self, action: str, exc: Exception) -> StoreError:
        if isinstance(exc, NotSupportedError):
            return StoreError(
                f"the store of {self.location.display} does not support the conditional "
                f"writes the export lock needs: {_summary(exc, self.location)}"
            )
        return StoreError(f"cannot {action} {self.key}: {_summary(exc, self.location)}")


def read_object_lock_holder(location: Location) -> dict[str, object] | None:
    """Who holds the export lock of a dataset in a bucket right now, or None.

    Args:
        location: the dataset (an object-store location).

    Returns:
        The holder's ``{"pid", "host", "started", "renewed", "lease_s"}``; None when there is
        no lock object or it is stale (its lease lapsed, or its process on this host is
        gone). A lock object that is not ours counts as held by an unknown holder
        (``pid``, ``host`` and ``started`` None).

    Raises:
        StoreError: the store cannot be read.
        ConfigError: a local location, or storage options obstore rejects.
    """
    if location.is_local:
        raise ConfigError(f"{location.display} is a local directory; it has no lock object")
    current = _read(location.object_store(), location)
    if current is None:
        return None
    holder = _parse(current[0])
    if holder is None:
        return {"pid": None, "host": None, "started": None}
    return None if _stale_reason(holder) is not None else holder.as_dict()


def _now() -> datetime:
    return datetime.now(UTC)


def _body(token: str, started: str, lease: timedelta) -> bytes:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": started,
        "renewed": _now().isoformat(timespec="milliseconds"),
        "lease_s": lease.total_seconds(),
        "token": token,
    }
    return json.dumps(holder).encode()


def _if_match(etag: str | None) -> PutMode:
    # obstore refuses ``"version": None`` in the mode dict (TypeError), so only the ETag goes.
    # Without an ETag no condition can be stated; S3 always returns one.
    return {"e_tag": etag} if etag is not None else "overwrite"


def _read(store: S3Store, location: Location) -> tuple[bytes, str | None] | None:
    """The lock object's body and ETag; None when there is none.

    Raises:
        StoreError: the store cannot be read.
    """
    try:
        result = obstore.get(store, LOCK_KEY)
        return bytes(result.bytes()), result.meta["e_tag"]
    except FileNotFoundError:
        return None
    except _OBSTORE_ERRORS as exc:
        raise StoreError(
            f"cannot read {location.child(LOCK_KEY)}: {_summary(exc, location)}"
        ) from exc


def _parse(raw: bytes) -> _Holder | None:
    """The holder in a lock object's body; None when the body is not one of ours."""
    try:
        value: Any = json.loads(raw)
        pid, host, started = value["pid"], value["host"], value["started"]
        renewed = datetime.fromisoformat(value["renewed"])
        lease_s, token = value["lease_s"], value["token"]
    except (ValueError, TypeError, KeyError):
        return None
    if (
        not isinstance(pid, int)
        or isinstance(pid, bool)
        or pid <= 0
        or not isinstance(host, str)
        or not isinstance(started, str)
        or renewed.tzinfo is None
        or not isinstance(lease_s, int | float)
        or not isinstance(token, str)
    ):
        return None
    return _Holder(pid, host, started, renewed, float(lease_s), token)


def _stale_reason(holder: _Holder) -> str | None:
    """Why a lock found in place may be taken over; None when its holder may be alive."""
    if holder.host == socket.gethostname() and not _pid_alive(holder.pid):
        return "its process is gone"
    if holder.lapses_at < _now():
        return f"its lease lapsed at {holder.lapses_at.isoformat(timespec='seconds')}"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _cause(exc: BaseException) -> BaseException:
    """The obstore error behind one of our StoreErrors, whose message would repeat the key."""
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _summary(exc: BaseException, location: Location) -> str:
    """The first line of an error, shortened, with every secret option value masked."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if len(text) > 240:
        text = text[:237] + "..."
    for key, value in location.storage_options.items():
        if value and any(marker in key.lower() for marker in _SECRET_MARKERS):
            text = text.replace(value, "***")
    return text
