"""The embedded backend: SQLite (aiosqlite readers, one writer thread).

A small pool of aiosqlite reader connections serves reads concurrently thanks to WAL. One
writer connection, owned by a dedicated thread, serialises every write transaction;
``BEGIN IMMEDIATE`` takes SQLite's write lock up front, so a transaction never fails
half-way for lack of it. Transactions the store runs itself (group commits, ``add_many``)
and those given to :meth:`SQLiteStore.transaction` run whole on that thread, in one hop:
the write lock is held for the time the SQL takes, not for as long as a busy event loop
needs to come back to the transaction between statements. Concurrent ``add()`` calls are
group-committed; ``synchronous=FULL`` (the default) makes each commit durable before any
caller resumes; other processes queue on a lock file, then on the busy timeout.

A read-only store opens the file with ``mode=ro`` and changes nothing in it: an older schema
is read as it is, through TEMP views (:mod:`~genesis.database.backends.sqlite_legacy`), and
the ``-wal``/``-shm`` its connections had to create are removed when it closes
(:mod:`~genesis.database.backends.sqlite_files`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from genesis.database.backends.base import CommitCheck, FlightBuilder, StoreBase
from genesis.database.backends.file_lock import WriterLock
from genesis.database.backends.sql import Dialect, SQLSession, Statement
from genesis.database.backends.sqlite_files import WalFiles, file_uri, prepare_folder
from genesis.database.backends.sqlite_legacy import present_current_schema
from genesis.database.backends.sqlite_schema import SCHEMA_VERSION, prepare_file, roll_back
from genesis.database.codec import PROGRAM_COLUMNS, dumps, unpack_embedding
from genesis.database.config import DatabaseConfig
from genesis.database.errors import OperationalError, translating
from genesis.database.json_indexes import JsonIndex
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
    raise_metadata="INSERT INTO metadata_store (key, value) {values} "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                   "WHERE metadata_store.value IS NULL OR metadata_store.value = '' "
                   "OR CAST(metadata_store.value AS REAL) < CAST(excluded.value AS REAL)",
    archived="p.id IN (SELECT program_id FROM archive)",
    append_json="json_insert(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END, "
                "'$[#]', json(?))",
    json_number="(CASE WHEN json_valid({column}) THEN (CASE WHEN json_type({column}, ?) "
                "IN ('integer', 'real') THEN json_extract({column}, ?) END) END)",
    json_true="COALESCE(CASE WHEN json_valid({column}) THEN json_type({column}, ?) = 'true' "
              "END, FALSE)",
    value_compare="value IS NOT NULL AND value <> '' AND CAST(value AS REAL) {op} "
                  "CAST(? AS REAL)",
)
# The embedding goes to ``embedding_vec`` (float64 blob, what Genesis reads) and, where the
# file is kept readable by ShinkaEvolve, as JSON text to its ``embedding`` column too.
_INSERT = "INSERT INTO programs ({}, embedding) VALUES ({})".format(
    ", ".join("embedding_vec" if c == "embedding" else c for c in PROGRAM_COLUMNS),
    ", ".join("?" * (len(PROGRAM_COLUMNS) + 1)),
)
_EMBEDDING = PROGRAM_COLUMNS.index("embedding")


def _legacy_embedding(blob: bytes | None) -> str:
    """ShinkaEvolve's text form of an embedding: a JSON list, ``'[]'`` when absent."""
    return dumps(unpack_embedding(blob)) if blob else "[]"


class _SQLiteSQL(SQLSession):
    """The SQLite dialect and the statements built on the three primitives."""

    dialect = SQLITE

    def __init__(self, url: DatabaseURL, config: DatabaseConfig,
                 legacy_embedding: bool = False) -> None:
        self._url = url
        self.max_code_bytes = config.max_code_bytes
        self.legacy_embedding = legacy_embedding

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    def program_statement(self, rows: Sequence[tuple[Any, ...]]) -> Statement:
        if self.legacy_embedding:
            rows = [(*row, _legacy_embedding(row[_EMBEDDING])) for row in rows]
        else:
            rows = [(*row, None) for row in rows]
        return Statement(_INSERT, rows)

    async def _insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        statement = self.program_statement(rows)
        await self._run_many(statement.sql, statement.rows)


class SQLiteSession(_SQLiteSQL):
    """Protocol reads on one aiosqlite reader connection."""

    def __init__(self, conn: aiosqlite.Connection, url: DatabaseURL, config: DatabaseConfig):
        super().__init__(url, config)
        self._conn = conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with translating(self._url):
            return list(await self._conn.execute_fetchall(sql, params))

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with translating(self._url):
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with translating(self._url):
                await self._conn.executemany(sql, rows)


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
    return conn.execute(sql, params).fetchall()


def _change(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    return conn.execute(sql, params).rowcount


def _change_many(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        conn.executemany(sql, rows)


class _DirectSession(_SQLiteSQL):
    """Statements run at once on the writer connection, from the writer thread.

    Its awaits never suspend, so a coroutine using only this session runs to completion
    in one go (see :func:`_run_to_completion`).
    """

    def __init__(self, conn: sqlite3.Connection, url: DatabaseURL, config: DatabaseConfig,
                 legacy_embedding: bool):
        super().__init__(url, config, legacy_embedding)
        self._conn = conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with translating(self._url):
            return _fetch(self._conn, sql, params)

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with translating(self._url):
            return _change(self._conn, sql, params)

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with translating(self._url):
            _change_many(self._conn, sql, rows)


class _WriterSession(_SQLiteSQL):
    """Statements sent one by one to the writer thread (an interactive ``write()``)."""

    def __init__(self, store: SQLiteStore):
        super().__init__(store.url, store.config, store.legacy_embedding)
        self._store = store

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with translating(self._url):
            return await self._store._hop(_fetch, sql, params)

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with translating(self._url):
            return await self._store._hop(_change, sql, params)

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with translating(self._url):
            await self._store._hop(_change_many, sql, rows)


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine none of whose awaits suspends, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    raise RuntimeError("a SQLite transaction function awaited something other than the "
                       "writer it was given; it must only use that writer's methods")


def _pragmas(config: DatabaseConfig, writer: bool) -> list[str]:
    pragmas = [
        f"PRAGMA busy_timeout = {int(config.busy_timeout * 1000)}",
        "PRAGMA foreign_keys = ON",
        "PRAGMA cache_size = -16000",
        "PRAGMA temp_store = MEMORY",
    ]
    if writer:
        pragmas.append(f"PRAGMA synchronous = {config.sqlite_synchronous}")
    return pragmas


def _open_writer(url: DatabaseURL, config: DatabaseConfig) -> sqlite3.Connection:
    """Open the writer connection (on the writer thread, which alone will use it)."""
    with translating(url):
        conn = sqlite3.connect(url.path, isolation_level=None, timeout=config.busy_timeout)
        for pragma in _pragmas(config, writer=True):
            conn.execute(pragma)
    return conn


async def _open_reader(url: DatabaseURL, config: DatabaseConfig, read_only: bool,
                       legacy: bool) -> aiosqlite.Connection:
    """Open a reader (``legacy``: an older file read through TEMP views of the current schema)."""
    target, uri = (file_uri(url.path, "ro"), True) if read_only else (url.path, False)
    conn = aiosqlite.connect(target, isolation_level=None, check_same_thread=False,
                             timeout=config.busy_timeout, uri=uri)
    # A never-closed store must not keep the interpreter alive at exit; readers only read.
    thread = getattr(conn, "_thread", None)
    if thread is not None:
        thread.daemon = True
    with translating(url):
        await conn
        for pragma in _pragmas(config, writer=False):
            await conn.execute(pragma)
        if legacy:  # after temp_store (setting it drops TEMP objects), before query_only
            await present_current_schema(conn)
        await conn.execute("PRAGMA query_only = ON")
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
        self._writer: sqlite3.Connection | None = None
        self._writer_thread: ThreadPoolExecutor | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] | None = None
        self._all_readers: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()
        self._writer_lock = WriterLock(Path(url.path))
        self._wal_files: WalFiles | None = None  # read-only: the -wal/-shm found at open
        self.legacy_embedding = False  # decided at open: see _embedding_text_policy
        self.legacy_schema = False  # read-only on an older file: read through TEMP views

    async def open(self) -> None:
        """Create or upgrade the file (read-only: read it as it is), then connect."""
        if self._state != "new":
            return
        path = Path(self.url.path)
        if self.read_only:
            if not path.exists():
                raise OperationalError(f"database file not found: {path}")
            self._wal_files = WalFiles(path)
        else:
            prepare_folder(self.url)
        with translating(self.url):
            before, version = await asyncio.to_thread(
                prepare_file, path, read_only=self.read_only,
                busy_timeout=self.config.busy_timeout, progress=self.upgrade_progress,
            )
        self.legacy_schema = version < SCHEMA_VERSION
        self.upgraded_from = before if before != version else None
        try:
            if not self.read_only:
                self._writer_lock.open()
                self._writer_thread = ThreadPoolExecutor(1, "genesis-sqlite-writer")
                self._writer = await asyncio.get_running_loop().run_in_executor(
                    self._writer_thread, _open_writer, self.url, self.config)
            self._readers = asyncio.Queue()
            for _ in range(self.config.sqlite_readers):
                reader = await _open_reader(self.url, self.config, self.read_only,
                                            self.legacy_schema)
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
        except BaseException:
            await self._disconnect()
            raise
        self._state = "open"
        if not self.read_only:
            self.legacy_embedding = await self._embedding_text_policy()

    async def _embedding_text_policy(self) -> bool:
        """Whether new rows also get ShinkaEvolve's JSON ``embedding`` column.

        ``sqlite_legacy_embedding`` True or False decides; ``None`` (the default) follows the
        file: when its newest embedded program has the JSON text (a ShinkaEvolve file, or
        one written for ShinkaEvolve), new rows get it too, so ShinkaEvolve keeps reading
        every row's embedding. One lookup from the end of the table decides.
        """
        wanted = self.config.sqlite_legacy_embedding
        if wanted is not None:
            return wanted
        async with self.read() as session:
            row = await session._one(
                "SELECT embedding FROM programs WHERE embedding_vec IS NOT NULL "
                "ORDER BY rowid DESC LIMIT 1")
        return row is not None and row[0] not in (None, "", "[]")

    async def _disconnect(self) -> None:
        writer, thread, readers = self._writer, self._writer_thread, self._all_readers
        self._writer, self._writer_thread, self._all_readers = None, None, []
        if writer is not None and thread is not None:
            with contextlib.suppress(Exception):  # best effort: the file stays consistent
                await asyncio.get_running_loop().run_in_executor(thread, writer.close)
        if thread is not None:
            thread.shutdown(wait=False)
        self._writer_lock.close()
        for conn in readers:
            with contextlib.suppress(Exception):
                await conn.close()
        if self._wal_files is not None:
            await asyncio.to_thread(self._wal_files.remove_if_created)

    async def _hop(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(writer_connection, *args)`` on the writer thread."""
        assert self._writer is not None and self._writer_thread is not None
        return await asyncio.get_running_loop().run_in_executor(
            self._writer_thread, partial(function, self._writer, *args))

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False, primary: bool = False
                   ) -> AsyncIterator[SQLiteSession]:
        """Borrow a reader connection; with ``snapshot`` all reads see one state.

        ``primary`` changes nothing: a SQLite run has no standby.
        """
        self._check_open()
        assert self._readers is not None
        conn = await self._readers.get()
        try:
            if snapshot:
                with translating(self.url):
                    await conn.execute("BEGIN")
            try:
                yield SQLiteSession(conn, self.url, self.config)
            finally:
                if snapshot:
                    with translating(self.url):
                        await conn.execute("COMMIT")
        finally:
            self._readers.put_nowait(conn)

    @asynccontextmanager
    async def write(self, *, lock: str | None = None) -> AsyncIterator[SQLSession]:
        """Run one interactive write transaction (``lock`` is implied: one writer at a time)."""
        self._check_writable()
        async with self._write_lock, self._writer_lock:
            with translating(self.url):
                await self._hop(_change, "BEGIN IMMEDIATE", ())
            try:
                yield _WriterSession(self)
                with translating(self.url):
                    await self._hop(_change, "COMMIT", ())
            except BaseException:
                await self._hop(roll_back)
                raise

    async def transaction(
        self, work: Callable[[SQLSession], Awaitable[T]], *, lock: str | None = None,
        committed: CommitCheck | None = None,
    ) -> T:
        """Run ``work`` as one transaction, whole, on the writer thread; return its result."""
        self._check_writable()
        async with self._write_lock, self._writer_lock:
            return await self._hop(self._transaction_now, work)

    async def flight(self, build: FlightBuilder, committed: CommitCheck) -> list[Any]:
        """Run ``build(session)``'s writes and reads as one transaction on the writer thread."""
        async def work(session: SQLSession) -> list[Any]:
            writes, reads = build(session)
            rows = await session._flight(writes, reads)
            return [q.decode(r) for q, r in zip(reads, rows, strict=True)]

        return await self.transaction(work)

    def _transaction_now(self, conn: sqlite3.Connection,
                         work: Callable[[SQLSession], Awaitable[T]]) -> T:
        with translating(self.url):
            conn.execute("BEGIN IMMEDIATE")
        try:
            session = _DirectSession(conn, self.url, self.config, self.legacy_embedding)
            result = _run_to_completion(work(session))  # type: ignore[arg-type]
            with translating(self.url):
                conn.execute("COMMIT")
            return result
        except BaseException:
            roll_back(conn)
            raise

    def describe(self) -> str:
        """Say where the run lives: the file's absolute path, and how it is read."""
        how = ", an older schema read as it is" if self.legacy_schema else ""
        mode = "read-only" if self.read_only else "read-write"
        return f"SQLite file {Path(self.url.path).resolve()} ({mode}{how})"

    async def create_json_index(self, index: JsonIndex) -> bool:
        """Build the index on a JSON path and record it; False if it was already there."""
        async def work(session: SQLSession) -> bool:
            if await session._one("SELECT 1 FROM json_indexes WHERE field = ?",
                                  (index.field.name,)):
                return False
            await session._run(f"CREATE INDEX IF NOT EXISTS {index.name} ON programs "
                               f"({index.sqlite_expression()})")
            await session._run("INSERT INTO json_indexes (field, created_at) VALUES (?, ?)",
                               (index.field.name, time.time()))
            return True

        return await self.transaction(work)

    async def drop_json_index(self, index: JsonIndex) -> bool:
        """Drop the index on a JSON path; False if there was none."""
        async def work(session: SQLSession) -> bool:
            await session._run(f"DROP INDEX IF EXISTS {index.name}")
            return await session._run("DELETE FROM json_indexes WHERE field = ?",
                                      (index.field.name,)) > 0

        return await self.transaction(work)

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
