"""A lock file that hands SQLite's write lock from process to process without polling.

SQLite makes a writer that finds the file locked sleep and retry (1, 2, 5, 10, ... ms), so
several processes writing one file lose much of their time asleep. Genesis processes first
take an exclusive ``flock`` on ``<database>-writer.lock``: a blocked process is woken the
moment the lock is released, and SQLite's own lock is then free. Other programs writing the
file (ShinkaEvolve, sqlite3) are still kept out by SQLite's lock. The operating system
releases the lock when its process dies, even by SIGKILL. Where ``fcntl`` does not exist
(Windows), only SQLite's lock is used.

The lock file does not outlive its stores: a store removes it when it closes, unless another
store is writing at that moment (that one removes it when it closes), and a store still open
creates it again at its next write. A closing store removes it only while holding the lock,
and every store checks, each time it has taken the lock, that the path still names the file
it locked: if a closing store removed that file meanwhile (and perhaps another store created
a new one), the lock it holds guards nothing, so it opens the file now at the path and locks
that instead. Two stores can therefore never both believe they hold the lock, and a store
never removes a file another one holds. A killed process leaves the file behind; the next
store to close removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock"]


class WriterLock:
    """Exclusive cross-process lock for the writers of one database file."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + "-writer.lock")
        self._fd: int | None = None

    def open(self) -> None:
        """Create or open the lock file."""
        if fcntl is not None and self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def close(self) -> None:
        """Close the lock file, and remove it unless another store holds the lock."""
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self._names_locked_file():
                with contextlib.suppress(OSError):  # gone already, or not ours to remove
                    os.unlink(self.path)
        except BlockingIOError:
            pass  # another store is writing: the last one to close removes the file
        finally:
            os.close(self._fd)
            self._fd = None

    def _names_locked_file(self) -> bool:
        """True when the lock path still names the file this lock has open."""
        assert self._fd is not None
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    async def __aenter__(self) -> WriterLock:
        if self._fd is None:
            return self
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_EX)
            if self._names_locked_file():
                return self
            os.close(self._fd)  # a closing store removed the file we waited on
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
