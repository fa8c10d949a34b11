"""The export lock of a dataset, one export at a time: ``<dataset>/.lock`` on a local disk.

:func:`open_lock` picks the lock for a location: this module's :class:`DatasetLock` for a
directory, :class:`._objlock.ObjectLock` (a conditional-write object with a heartbeat) for a
bucket, which has no flock.

The file holds JSON ``{"pid", "host", "started"}`` so a refused export can say who holds it.
Liveness is decided by an ``fcntl.flock`` held on the open file for the whole run: the kernel
drops it when the holder dies, ``kill -9`` included, so a lock left behind by a dead process
on this host is taken over (and logged) while a live one is refused at once. A lock written
on another host cannot be checked from here and is refused with a message naming the file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import StoreError

if TYPE_CHECKING:
    from ._location import Location
    from ._objlock import ObjectLock

__all__ = ["LOCK_NAME", "DatasetLock", "open_lock", "read_holder", "read_lock_holder"]

LOCK_NAME = ".lock"

logger = logging.getLogger(__name__)


class DatasetLock:
    """An exclusive, non-blocking lock on a dataset directory.

    Args:
        dataset: the dataset directory; created if missing.

    Raises:
        StoreError: (on enter) another export holds the lock, or the lock file cannot be made.

    Example:
        >>> with DatasetLock(path):  # doctest: +SKIP
        ...     ...  # the export runs here
    """

    def __init__(self, dataset: Path) -> None:
        self.dataset = Path(dataset)
        self.path = self.dataset / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or fail at once.

        Raises:
            StoreError: an export is already running on this dataset, or the directory is not
                writable.
        """
        try:
            self.dataset.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the dataset directory {self.dataset}: {exc}") from exc
        # A few rounds cover the race where the holder unlinks the file between our open and
        # our flock; we then hold a lock on a dead inode and must start over.
        for _ in range(20):
            fd = self._open()
            if not _flock_briefly(fd):
                holder = _describe(_read_holder(fd))
                os.close(fd)
                raise StoreError(
                    f"an export is already running on {self.dataset} ({holder}); "
                    "wait for it to finish"
                ) from None
            if not _same_file(fd, self.path):
                os.close(fd)
                continue
            previous = _read_holder(fd)
            if previous and previous.get("host") not in (None, socket.gethostname()):
                os.close(fd)
                raise StoreError(
                    f"{self.path} was left by an export on another host ({_describe(previous)}); "
                    "if no export runs there any more, delete the file and run again"
                )
            if previous:
                logger.warning("taking over the stale lock of %s", _describe(previous))
            self._write_holder(fd)
            self._fd = fd
            return
        raise StoreError(f"could not take {self.path}: it keeps changing; try again")

    def release(self) -> None:
        """Remove the lock file and drop the lock; a no-op when not held."""
        if self._fd is None:
            return
        try:
            # Unlink before unlocking so that a waiter never locks a file that is about to go.
            if _same_file(self._fd, self.path):
                self.path.unlink()
        except OSError as exc:  # pragma: no cover - a vanished directory is not ours to fix
            logger.warning("could not remove %s: %s", self.path, exc)
        finally:
            os.close(self._fd)
            self._fd = None

    def check(self) -> None:
        """Nothing to check: the kernel holds a flock until the process ends."""

    def __enter__(self) -> DatasetLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {self.path}: {exc}") from exc

    def _write_holder(self, fd: int) -> None:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        data = json.dumps(holder).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open descriptor is still the file at ``path`` (not unlinked meanwhile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _read_holder(fd: int) -> dict[str, object]:
    """The JSON the holder wrote; empty when the file is empty or not ours."""
    try:
        raw = os.pread(fd, 4096, 0)
        value = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


#: How long a refused lock is tried again: ``cijobs status`` holds a shared lock for the
#: instant it reads the holder, which must not make a starting export give up.
_CONTENTION_S = 0.25


def _flock_briefly(fd: int) -> bool:
    """Take the exclusive lock, trying again for a moment while a reader holds it."""
    deadline = time.monotonic() + _CONTENTION_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        else:
            return True


def _describe(holder: dict[str, object]) -> str:
    if not holder:
        return "holder unknown"
    pid, host, started = holder.get("pid"), holder.get("host"), holder.get("started")
    return f"pid {pid} on {host} since {started}"


def read_lock_holder(dataset: Path) -> dict[str, object] | None:
    """Who holds the export lock of ``dataset`` right now, or None when no export runs.

    Args:
        dataset: the dataset directory.

    Returns:
        The holder's ``{"pid", "host", "started"}``, or None when the lock is free or stale.
    """
    path = Path(dataset) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or {"pid": None, "host": None, "started": None}
        return None
    finally:
        os.close(fd)


def open_lock(location: Location) -> DatasetLock | ObjectLock:
    """The export lock of a dataset: a flock for a directory, a lock object in a bucket."""
    if location.is_local:
        return DatasetLock(location.path)
    from ._objlock import ObjectLock

    return ObjectLock(location)


def read_holder(location: Location) -> dict[str, object] | None:
    """Who holds the export lock of the dataset right now, or None when no export runs."""
    if location.is_local:
        return read_lock_holder(location.path)
    from ._objlock import read_object_lock_holder

    return read_object_lock_holder(location)
