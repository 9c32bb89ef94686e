"""Backups of a run as a portable SQLite file, and their restore: ``genesis db backup/restore``.

A backup is one consistent state of the run, taken while writers keep going:

* from SQLite, with sqlite3's online backup API copying every page in one step, under one
  read transaction (WAL lets writers continue meanwhile);
* from PostgreSQL, with the copy machinery (:func:`genesis.ops.copy.copy_run`) reading the
  run inside one REPEATABLE READ snapshot into a new SQLite file.

The file is written beside the target under a temporary name and renamed into place when
complete, so an interrupted backup never leaves a partial file at FILE. A restore is a copy
from the file into a run, refusing a non-empty destination unless ``force``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genesis.database.backends.sqlite_files import prepare_folder, read_only_connection
from genesis.database.errors import ConfigurationError, translating
from genesis.database.url import DatabaseURL
from genesis.ops.copy import DEFAULT_BATCH_SIZE, CopyResult, copy_run
from genesis.ops.errors import RefusedError
from genesis.ops.stores import (
    as_url,
    open_source,
    remove_sqlite_files,
    run_identity,
    sqlite_version,
)

if TYPE_CHECKING:
    from genesis.cli.progress import Progress

__all__ = ["BackupResult", "backup_run", "restore_run"]


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: where it is, what it holds, and how it was taken."""

    source: str
    path: str
    programs: int
    size_bytes: int
    seconds: float
    method: str


def _online_backup(source: Path, target: Path) -> None:
    """Copy a SQLite database page by page in one step (one consistent read transaction)."""
    with read_only_connection(source) as reader:
        writer = sqlite3.connect(target)
        try:
            reader.backup(writer)
        finally:
            writer.close()


def _seal(path: Path) -> None:
    """Fold the write-ahead log into the file, so that the backup is one self-contained file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()


def _backup_file(value: str | os.PathLike[str]) -> DatabaseURL:
    url = as_url(value, "FILE")
    if not url.is_sqlite:
        raise ConfigurationError(f"FILE must be a SQLite file path, got {url}")
    return url


async def backup_run(
    source: DatabaseURL | str,
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> BackupResult:
    """Write a consistent snapshot of a run into a new SQLite file at ``path``."""
    url = as_url(source)
    target_url = _backup_file(path)
    target = Path(target_url.path)
    if run_identity(url) == run_identity(target_url):
        raise RefusedError(f"the backup file {target} is the database itself")
    if target.exists():
        if not force:
            raise RefusedError(f"{target} exists; use --force to overwrite it")
        sqlite_version(target_url)  # only a program database is overwritten
    started = time.monotonic()
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    prepare_folder(target_url)
    remove_sqlite_files(partial)
    try:
        if url.is_sqlite:
            async with open_source(url) as store:  # checks the file; changes nothing in it
                with translating(url):
                    await asyncio.to_thread(_online_backup, Path(store.url.path), partial)
            method = "sqlite3 online backup"
        else:
            await copy_run(url, DatabaseURL.sqlite(partial), batch_size=batch_size,
                           progress=progress)
            method = "snapshot copy (REPEATABLE READ)"
        with translating(DatabaseURL.sqlite(partial)):
            await asyncio.to_thread(_seal, partial)
        remove_sqlite_files(target)
        partial.replace(target)
    finally:
        remove_sqlite_files(partial)
    async with open_source(DatabaseURL.sqlite(target)) as backup, backup.read() as reader:
        programs = await reader.count()
    return BackupResult(str(url), str(target), programs, target.stat().st_size,
                        time.monotonic() - started, method)


async def restore_run(
    path: str | os.PathLike[str],
    destination: DatabaseURL | str,
    *,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy a backup file into a run (refusing a non-empty run unless ``force``)."""
    return await copy_run(_backup_file(path), as_url(destination, "DST"),
                          force=force, batch_size=batch_size, progress=progress)
