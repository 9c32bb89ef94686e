"""No stray files: the writers' lock file and SQLite's -wal/-shm go away with their users.

The lock file is removed by a store that closes (never while another holds the lock), and a
store that waited on a removed file locks the file now at the path instead. Read-only use
leaves no ``-wal``/``-shm`` it created, and leaves alone those a writer is using or left.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from genesis.database import DatabaseURL, create_store
from genesis.database.backends.file_lock import WriterLock
from genesis.database.backends.sqlite_schema import LEGACY_TABLES
from tests.conftest import SHINKA_FILES
from tests.factories import make_program

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the lock file needs fcntl")


def names(folder: Path) -> list[str]:
    """The names of the files in ``folder``, sorted."""
    return sorted(path.name for path in folder.iterdir())


def inode(path: Path) -> int:
    """The inode a path names now."""
    return path.stat().st_ino


async def test_a_closed_store_leaves_only_its_file(tmp_path: Path, shinka_copy) -> None:
    url = DatabaseURL.sqlite(tmp_path / "run.db")
    async with create_store(url) as store:
        await store.add(make_program())
        assert (tmp_path / "run.db-writer.lock").exists()
    async with create_store(url, read_only=True) as reader, reader.read() as session:
        assert await session.count() == 1
    assert names(tmp_path) == ["run.db"]
    legacy = shinka_copy(SHINKA_FILES[0])
    async with create_store(DatabaseURL.sqlite(legacy)) as store:
        await store.add(make_program())
    assert names(tmp_path) == sorted(["run.db", legacy.name])


async def test_a_store_closing_while_another_writes_keeps_the_lock_file(tmp_path: Path) -> None:
    url = DatabaseURL.sqlite(tmp_path / "run.db")
    lock = tmp_path / "run.db-writer.lock"
    first, second = create_store(url), create_store(url)
    await first.open()
    await second.open()
    async with second.write() as writer:
        await writer.set_metadata("k", "1")
        await first.close()  # second holds the lock: the file stays
        assert lock.exists()
    await second.add(make_program())
    await second.close()
    assert names(tmp_path) == ["run.db"]


async def test_a_removed_lock_file_is_replaced_not_trusted(tmp_path: Path) -> None:
    database = tmp_path / "run.db"
    waiting, closing, fresh = WriterLock(database), WriterLock(database), WriterLock(database)
    waiting.open()
    closing.open()
    removed = inode(closing.path)
    closing.close()  # nobody holds the lock: the file goes
    assert not waiting.path.exists()
    fresh.open()  # a new store creates a new file, and takes the lock on it
    async with fresh:
        acquiring = asyncio.ensure_future(waiting.__aenter__())
        await asyncio.sleep(0.3)
        # Locking the removed file succeeded at once, but guards nothing: it waits on the new.
        assert not acquiring.done()
    await asyncio.wait_for(acquiring, 5)
    assert inode(waiting.path) != removed
    assert os.fstat(waiting._fd).st_ino == inode(waiting.path)
    await waiting.__aexit__(None, None, None)
    waiting.close()
    fresh.close()
    assert not waiting.path.exists()


async def test_read_only_use_leaves_the_writers_files_alone(tmp_path: Path) -> None:
    url = DatabaseURL.sqlite(tmp_path / "run.db")
    async with create_store(url) as writer:
        await writer.add(make_program())
        async with create_store(url, read_only=True) as reader, reader.read() as session:
            assert await session.count() == 1
        assert {"run.db-wal", "run.db-shm"} <= set(names(tmp_path))  # the writer's, in use
        await writer.add(make_program())
    assert names(tmp_path) == ["run.db"]


async def test_a_log_left_by_a_crashed_writer_stays(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    conn = sqlite3.connect(live / "run.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(LEGACY_TABLES["programs"])  # a ShinkaEvolve writer, killed after a commit
    conn.execute("INSERT INTO programs (id, code, language, generation, timestamp) "
                 "VALUES ('a', 'x', 'python', 0, 1.0)")
    crashed = tmp_path / "crashed"
    shutil.copytree(live, crashed)  # the files as the killed writer leaves them
    conn.close()
    data = ("run.db", "run.db-wal")
    before = {name: (crashed / name).read_bytes() for name in data}
    assert len(before["run.db-wal"]) > 0
    url = DatabaseURL.sqlite(crashed / "run.db")
    async with create_store(url, read_only=True) as store, store.read() as session:
        assert await session.count() == 1  # the committed row, read from the log
    assert {name: (crashed / name).read_bytes() for name in data} == before
    assert names(crashed) == ["run.db", "run.db-shm", "run.db-wal"]
