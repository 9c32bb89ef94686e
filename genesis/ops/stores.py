"""Opening the runs an operation works on: sources are never created, destinations may be.

A source is opened read-only and must exist: a missing SQLite file or PostgreSQL run is an
error, never silently created. Nothing in a source changes, not one byte of a SQLite file: a
ShinkaEvolve file (or an older Genesis file) is read as it is, and only ``genesis db upgrade``
upgrades it. A destination is opened read-write and created if missing (the folder of a
SQLite destination must exist).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from genesis.database.backends import create_store
from genesis.database.backends.file_lock import WriterLock
from genesis.database.backends.sqlite_files import read_only_connection
from genesis.database.backends.sqlite_schema import prepare_file, read_version
from genesis.database.config import DatabaseConfig
from genesis.database.errors import ConfigurationError, OperationalError, translating
from genesis.database.protocol import ProgramStore, UpgradeProgress
from genesis.database.url import DatabaseURL, looks_like_keywords

__all__ = [
    "as_url",
    "existing_file",
    "open_destination",
    "open_existing",
    "open_source",
    "ops_config",
    "postgres_version",
    "remove_sqlite_files",
    "replace_destination",
    "run_identity",
    "sqlite_version",
    "upgrade_file",
]

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def ops_config() -> DatabaseConfig:
    """Return the store settings of an operation: few connections, the default timeouts."""
    return DatabaseConfig(pool_min_size=1, pool_max_size=4, sqlite_readers=2)


def as_url(value: DatabaseURL | str | os.PathLike[str], setting: str = "URL") -> DatabaseURL:
    """Return a URL for ``value``: a database URL, libpq keywords, or a SQLite file's path."""
    if isinstance(value, DatabaseURL):
        return value
    text = os.fspath(value)
    if "://" in text or looks_like_keywords(text):
        return DatabaseURL.parse(text, setting)
    if not text.strip():
        raise ConfigurationError(f"{setting} is empty; expected a database URL or a file path")
    return DatabaseURL.sqlite(text, setting)


def run_identity(url: DatabaseURL) -> str:
    """Return a password-free name that is equal for two URLs naming the same run."""
    if url.is_sqlite:
        return f"sqlite:///{Path(url.path).resolve().as_posix()}"
    database = url.database or os.environ.get("PGDATABASE", "")
    return f"postgresql://{url.endpoint}/{database}?run={url.run}"


def existing_file(url: DatabaseURL) -> Path:
    """Return the path of a SQLite URL, or raise OperationalError if there is no such file."""
    path = Path(url.path)
    if not path.is_file():
        what = "is a directory, not a database file" if path.is_dir() else "not found"
        raise OperationalError(f"database file {what}: {path}")
    return path


def sqlite_version(url: DatabaseURL) -> int:
    """Return the schema version of an existing SQLite file, read without writing to it."""
    path = existing_file(url)
    with translating(url), read_only_connection(path) as conn:
        return read_version(conn)


async def upgrade_file(url: DatabaseURL, progress: UpgradeProgress | None = None
                       ) -> tuple[int, int]:
    """Bring an existing SQLite file to the current schema; return (version before, after)."""
    path = existing_file(url)
    with translating(url):
        return await asyncio.to_thread(prepare_file, path, progress=progress)


async def postgres_version(url: DatabaseURL) -> int:
    """Return the schema version of an existing PostgreSQL run, or raise if it is missing."""
    from genesis.database.backends.postgres_connect import connect, describe_server, server_of
    from genesis.database.backends.postgres_schema import read_version as read_run_version
    from genesis.database.backends.postgres_schema import schema_name

    async with await connect(url) as conn:
        with translating(url):
            version = await read_run_version(conn, schema_name(url.run))
        server = describe_server(server_of(conn))
    if version == 0:
        raise OperationalError(f"run {url.run!r} does not exist at {server}; "
                               "`genesis db runs` lists the runs")
    return version


@asynccontextmanager
async def open_source(url: DatabaseURL) -> AsyncIterator[ProgramStore]:
    """Open an existing run read-only, changing nothing (an older schema is read as it is)."""
    await _must_exist(url)
    async with create_store(url, ops_config(), read_only=True) as store:
        yield store


async def _must_exist(url: DatabaseURL) -> None:
    """Raise OperationalError, naming what is missing, unless the run exists."""
    if url.is_postgres:
        await postgres_version(url)
    else:
        existing_file(url)


@asynccontextmanager
async def open_existing(url: DatabaseURL) -> AsyncIterator[ProgramStore]:
    """Open an existing run read-write (upgrading its schema), never creating one."""
    await _must_exist(url)
    async with create_store(url, ops_config()) as store:
        yield store


@asynccontextmanager
async def open_destination(url: DatabaseURL) -> AsyncIterator[ProgramStore]:
    """Open a run read-write, creating the SQLite file or PostgreSQL run if missing."""
    async with create_store(url, ops_config()) as store:
        yield store


async def replace_destination(url: DatabaseURL) -> None:
    """Remove a destination run: drop the PostgreSQL schema, or delete the SQLite file.

    A SQLite file is deleted only if it is a program database; any other file is refused.
    """
    if url.is_postgres:
        from genesis.database.backends.postgres_runs import drop_run

        await drop_run(url)
        return
    path = Path(url.path)
    if path.exists():
        sqlite_version(url)  # refuses a file that is not a program database
        remove_sqlite_files(path)


def remove_sqlite_files(path: Path) -> None:
    """Delete a SQLite file, its journal files and its writers' lock file, if present."""
    for name in ("", *_SQLITE_COMPANIONS):
        Path(f"{path}{name}").unlink(missing_ok=True)
    WriterLock(path).path.unlink(missing_ok=True)
