"""A lock file that hands SQLite's write lock from process to process without polling.

SQLite makes a writer that finds the file locked sleep and retry (1, 2, 5, 10, ... ms), so
several processes writing one file lose much of their time asleep. Genesis processes first
take an exclusive ``flock`` on ``<database>-writer.lock``: a blocked process is woken the
moment the lock is released, and SQLite's own lock is then free. Other programs writing the
file (ShinkaEvolve, sqlite3) are still kept out by SQLite's lock. The operating system
releases the lock when its process dies, even by SIGKILL. Where ``fcntl`` does not exist
(Windows), only SQLite's lock is used.
"""

from __future__ import annotations

import asyncio
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
        """Close the lock file (releasing the lock if held)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def __aenter__(self) -> WriterLock:
        if self._fd is None:
            return self
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_EX)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
