"""The files around a SQLite database: its folder, and the ``-wal``/``-shm`` of read-only use.

**Folders.** Genesis creates the folder of its default file (``$GENESIS_DATA_DIR``, else
``./genesis_data``) and of a legacy ``db_path`` (as ShinkaEvolve does), never the folder of a
file that a URL or a command line names: a mistyped path is an error naming it, not a new
directory tree.

**Read-only use.** A connection opened with ``mode=ro`` to a WAL-mode file (every Genesis and
ShinkaEvolve file) creates the file's ``-wal`` and ``-shm`` when they are missing, because it
needs the shared-memory index to read, and cannot delete them when it closes: SQLite deletes
them only from the last connection, which it recognises by taking the database's exclusive
lock, and that lock needs a file opened for writing. :class:`WalFiles` notes whether the
files existed before a read-only user opened the database; if they did not, the user ends
with one ``mode=rw`` connection that reads the schema version and closes. When that is the
file's last connection, SQLite checkpoints nothing (the log is empty) and deletes both files
itself, with its own locking; when any other connection, in this process or another, still
uses the file, SQLite leaves them to it. The database file itself is not written either way.
A log that holds pages (another writer's) is left alone. What cannot be done: a file its user
may not write keeps the two files its read created (SQLite then opens even the ``mode=rw``
connection read-only, so no connection of that user can take the exclusive lock).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from genesis.database.errors import ConfigurationError
from genesis.database.url import DatabaseURL

__all__ = ["WalFiles", "connect_file", "file_uri", "prepare_folder", "read_only_connection"]

_LOG_SUFFIXES = ("-wal", "-shm")


def file_uri(path: str | Path, mode: str) -> str:
    """Return the ``file:`` URI that opens ``path`` in ``mode`` (``ro`` or ``rw``)."""
    return f"file:{quote(Path(path).resolve().as_posix())}?mode={mode}"


def connect_file(
    path: str | Path, *, read_only: bool = False, busy_timeout: float = 60.0
) -> sqlite3.Connection:
    """Open a plain sqlite3 connection in autocommit mode with the busy timeout set."""
    target, uri = (file_uri(path, "ro"), True) if read_only else (str(path), False)
    conn = sqlite3.connect(target, uri=uri, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return conn


def prepare_folder(url: DatabaseURL) -> None:
    """Make sure a SQLite file's folder exists: create it where the URL allows, else refuse."""
    path = Path(url.path)
    folder = path.parent
    if folder.is_dir():
        return
    if url.creates_folder and not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except OSError as exc:
            raise ConfigurationError(f"{url.setting}: cannot create the folder {folder} for "
                                     f"{path}: {exc.strerror or exc}") from None
    if folder.exists():
        raise ConfigurationError(f"{url.setting} {path}: {folder} is not a folder")
    raise ConfigurationError(f"{url.setting} {path}: the folder {folder} does not exist; "
                             "create it first (Genesis creates only its default data folder)")


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


class WalFiles:
    """The ``-wal`` and ``-shm`` of a file about to be read, removed after if reading made them."""

    def __init__(self, database: str | Path) -> None:
        self._database = Path(database)
        self._found = any(_size(path) is not None for path in self._paths())

    def _paths(self) -> list[Path]:
        return [Path(f"{self._database}{suffix}") for suffix in _LOG_SUFFIXES]

    def remove_if_created(self) -> None:
        """Once the reader's connections are closed, let SQLite delete the files they made."""
        wal, shm = (_size(path) for path in self._paths())
        if self._found or (wal is None and shm is None) or wal:
            return
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(file_uri(self._database, "rw"), uri=True,
                                   isolation_level=None)
            try:
                conn.execute("PRAGMA schema_version").fetchone()
            finally:
                conn.close()


@contextmanager
def read_only_connection(path: str | Path, busy_timeout: float = 60.0
                         ) -> Iterator[sqlite3.Connection]:
    """Open a file read-only; on exit close it, leaving no ``-wal``/``-shm`` it created."""
    files = WalFiles(path)
    conn = connect_file(path, read_only=True, busy_timeout=busy_timeout)
    try:
        yield conn
    finally:
        conn.close()
        files.remove_if_created()
