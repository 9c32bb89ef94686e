"""The embedded backend: SQLite through aiosqlite.

One writer connection serialises every write transaction (``BEGIN IMMEDIATE`` takes the
write lock up front, so a transaction never fails half-way for lack of it); a small pool of
reader connections serves reads concurrently thanks to WAL. Concurrent ``add()`` calls are
group-committed. ``synchronous=FULL`` (the default) makes each commit durable before any
caller resumes; the busy timeout makes other processes wait for the lock instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from genesis.database.backends.base import StoreBase
from genesis.database.backends.sql import Dialect, SQLSession
from genesis.database.backends.sqlite_schema import SCHEMA_VERSION, prepare_file
from genesis.database.codec import PROGRAM_COLUMNS
from genesis.database.config import DatabaseConfig
from genesis.database.errors import OperationalError, SchemaError, translating
from genesis.database.url import DatabaseURL

__all__ = ["SQLITE", "SQLiteSession", "SQLiteStore"]

T = TypeVar("T")

SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    seq="p.rowid",
    embedding_column="embedding_vec",
    embedding_select="COALESCE(p.embedding_vec, p.embedding)",
    json_cast="?",
    metric_value="json_extract(p.public_metrics, ?)",
    metric_is_number="json_type(p.public_metrics, ?) IN ('integer', 'real')",
    average_metrics="(SELECT AVG(j.value) FROM json_each(p.public_metrics) j "
                    "WHERE j.type IN ('integer', 'real'))",
    raise_metadata="INSERT INTO metadata_store (key, value) VALUES (?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                   "WHERE metadata_store.value IS NULL OR metadata_store.value = '' "
                   "OR CAST(metadata_store.value AS REAL) < CAST(excluded.value AS REAL)",
)
_INSERT = "INSERT INTO programs ({}) VALUES ({})".format(
    ", ".join("embedding_vec" if c == "embedding" else c for c in PROGRAM_COLUMNS),
    ", ".join("?" * len(PROGRAM_COLUMNS)),
)


class SQLiteSession(SQLSession):
    """Protocol reads and writes on one aiosqlite connection."""

    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection, url: DatabaseURL, max_code_bytes: int):
        self._conn = conn
        self._url = url
        self.max_code_bytes = max_code_bytes

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with translating(self._url):
            return list(await self._conn.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with translating(self._url):
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with translating(self._url):
                await self._conn.executemany(sql, rows)

    async def _insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        await self._run_many(_INSERT, rows)


async def _connect(url: DatabaseURL, config: DatabaseConfig, *, writer: bool,
                   read_only: bool) -> aiosqlite.Connection:
    path = Path(url.path)
    if read_only:
        target, options = f"file:{path.resolve().as_posix()}?mode=ro", {"uri": True}
    else:
        target, options = str(path), {}
    conn = aiosqlite.connect(target, isolation_level=None, check_same_thread=False,
                             timeout=config.busy_timeout, **options)
    # A never-closed store must not keep the interpreter alive at exit; SQLite's journal
    # keeps the file consistent even if the thread stops mid-transaction.
    thread = getattr(conn, "_thread", None)
    if thread is not None:
        thread.daemon = True
    with translating(url):
        await conn
        pragmas = [
            f"PRAGMA busy_timeout = {int(config.busy_timeout * 1000)}",
            "PRAGMA foreign_keys = ON",
            "PRAGMA cache_size = -16000",
            "PRAGMA temp_store = MEMORY",
        ]
        if writer:
            pragmas.append(f"PRAGMA synchronous = {config.sqlite_synchronous}")
        else:
            pragmas.append("PRAGMA query_only = ON")
        for pragma in pragmas:
            await conn.execute(pragma)
    return conn


class SQLiteStore(StoreBase):
    """A run stored in one SQLite file."""

    dialect = SQLITE

    def __init__(
        self, url: DatabaseURL, config: DatabaseConfig | None = None, *, read_only: bool = False
    ) -> None:
        if not url.is_sqlite:
            raise ValueError(f"SQLiteStore needs a sqlite:// URL, got {url}")
        super().__init__(url, config, read_only)
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] | None = None
        self._all_readers: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        """Create or upgrade the file, then connect the writer and the readers."""
        if self._state != "new":
            return
        path = Path(self.url.path)
        if self.read_only and not path.exists():
            raise OperationalError(f"database file not found: {path}")
        if not self.read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        with translating(self.url):
            before, version = await asyncio.to_thread(
                prepare_file, path, read_only=self.read_only,
                busy_timeout=self.config.busy_timeout,
            )
        if version < SCHEMA_VERSION:
            raise SchemaError(
                f"{self.url} has schema version {version} and needs upgrading to "
                f"{SCHEMA_VERSION}; open it once without read_only or run `genesis db upgrade`"
            )
        self.upgraded_from = before if before != version else None
        try:
            if not self.read_only:
                self._writer = await _connect(self.url, self.config, writer=True,
                                              read_only=False)
            self._readers = asyncio.Queue()
            for _ in range(self.config.sqlite_readers):
                reader = await _connect(self.url, self.config, writer=False,
                                        read_only=self.read_only)
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
        except BaseException:
            await self._disconnect()
            raise
        self._state = "open"

    async def _disconnect(self) -> None:
        connections = [c for c in (self._writer, *self._all_readers) if c is not None]
        self._writer, self._all_readers = None, []
        for conn in connections:
            with contextlib.suppress(Exception):  # best effort: the file stays consistent
                await conn.close()

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[SQLiteSession]:
        """Borrow a reader connection; with ``snapshot`` all reads see one state."""
        self._check_open()
        assert self._readers is not None
        conn = await self._readers.get()
        try:
            if snapshot:
                with translating(self.url):
                    await conn.execute("BEGIN")
            try:
                yield SQLiteSession(conn, self.url, self.config.max_code_bytes)
            finally:
                if snapshot:
                    with translating(self.url):
                        await conn.execute("COMMIT")
        finally:
            self._readers.put_nowait(conn)

    @asynccontextmanager
    async def write(self, *, lock: str | None = None) -> AsyncIterator[SQLiteSession]:
        """Run one write transaction on the writer connection (``lock`` is implicit here)."""
        self._check_writable()
        assert self._writer is not None
        async with self._write_lock:
            conn = self._writer
            with translating(self.url):
                await conn.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteSession(conn, self.url, self.config.max_code_bytes)
            except BaseException:
                with translating(self.url):
                    await conn.execute("ROLLBACK")
                raise
            try:
                with translating(self.url):
                    await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise

    async def _run_write(self, work: Callable[[SQLiteSession], Awaitable[T]]) -> T:
        async with self.write() as session:
            return await work(session)

    async def schema_version(self) -> int:
        """Return the schema version of the file."""
        async with self.read() as session:
            row = await session._one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def stats(self) -> dict[str, Any]:
        """Return file sizes and group-commit counters."""
        path = Path(self.url.path)
        wal = Path(f"{path}-wal")
        return {
            "backend": "sqlite",
            "path": str(path),
            "file_bytes": path.stat().st_size if path.exists() else 0,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "readers": len(self._all_readers),
            "group_commit_batches": self._committer.batches,
            "group_commit_items": self._committer.items,
            "pid": os.getpid(),
        }
