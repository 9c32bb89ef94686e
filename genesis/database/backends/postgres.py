"""The server backend: PostgreSQL through a psycopg 3 connection pool.

A run lives in its own schema (``genesis_<run>``), which every statement names; pooled
connections are in autocommit mode, carry no session state (transaction-pooling PgBouncer
works), and are checked before they are handed out, so a connection the server dropped is
replaced instead of failing a caller. ``write()`` is one explicit
transaction; concurrent ``add()`` calls are group-committed.

Writes the store runs itself (group commits and ``add_many``) survive lost connections
without losing or duplicating a program. A transaction interrupted before COMMIT was
rolled back by the server and is simply retried; one interrupted *during* COMMIT is looked
up on a fresh connection by its transaction id (``pg_xact_status``): committed means done,
aborted means retry. Deadlocks and serialization failures are retried too. After
``config.write_retry_timeout`` seconds the callers get :class:`ConnectionLostError`.

Failover: with a multi-host URL (``target_session_attrs=read-write``) the pool's new
connections go to whichever server is the primary, so retries land on the promoted standby.
An outcome is then decided there: a flight by its idempotency key; a transaction by its id
when the new server never assigned that id or aborted it, else (a 'committed' id there may
be another transaction's) by its idempotency key if it has one (``add_many``), else it is
reported as ConnectionLostError, never re-run. Reads may go to standbys: ``postgres_reads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from genesis.database.backends.base import CommitCheck, FlightBuilder, StoreBase
from genesis.database.backends.postgres_connect import (
    connect,
    connection_kwargs,
    describe_server,
    server_of,
    unreachable,
)
from genesis.database.backends.postgres_reads import StandbyReads
from genesis.database.backends.postgres_runs import RunInfo, drop_run, drop_run_sync, list_runs
from genesis.database.backends.postgres_schema import (
    SCHEMA_VERSION,
    prepare,
    read_version,
    schema_name,
)
from genesis.database.backends.postgres_session import POSTGRES, PostgresSession
from genesis.database.config import DatabaseConfig
from genesis.database.errors import (
    ConnectionLostError,
    OperationalError,
    SchemaError,
    translating,
)
from genesis.database.json_indexes import JsonIndex
from genesis.database.url import DatabaseURL

__all__ = ["POSTGRES", "PostgresStore", "RunInfo", "drop_run", "drop_run_sync", "list_runs"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
# SQLSTATEs of a transaction the server rolled back on purpose: running it again is safe.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


class _NotCommitted(OperationalError):
    """The transaction certainly did not commit, so running it again is safe."""


class _Patience:
    """Pauses growing from 20 ms to 1 s, until a deadline: how long a write is retried."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self._delay = 0.02

    @property
    def exhausted(self) -> bool:
        """True once the deadline has passed."""
        return time.monotonic() >= self._deadline

    async def pause(self) -> None:
        """Sleep before the next attempt."""
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, 1.0)


def _retry_is_safe(session: PostgresSession, exc: BaseException) -> bool:
    """True when the server surely rolled the transaction back: lost connection, deadlock."""
    return isinstance(exc, OperationalError) and (
        session.conn.broken or getattr(exc.__cause__, "sqlstate", None) in _RETRY_SQLSTATES)


async def _roll_back(session: PostgresSession) -> None:
    """End the transaction; on a broken connection the server has already rolled it back."""
    if not session.conn.closed:
        with contextlib.suppress(OperationalError):
            await session.control("ROLLBACK")


async def _check_idle_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """Refuse a dead connection before the pool hands it out, without a round trip.

    An idle connection has nothing to read; when the server ends it (a restart,
    ``pg_terminate_backend``) its socket turns readable with the termination notice. Only
    then is the connection probed with a query, and dropped if that fails.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


async def _wal_position(conn: psycopg.AsyncConnection[Any]) -> str | None:
    """The primary's WAL position now: every commit so far is before it."""
    with translating():
        cursor = await conn.execute("SELECT pg_current_wal_insert_lsn()::text")
        row = await cursor.fetchone()
    return row[0] if row else None


def _backend_of(session: PostgresSession) -> tuple[str, int, int]:
    """The server (host, port) and the server process of a session's connection."""
    info = session.conn.info
    return info.host, info.port, info.backend_pid


class PostgresStore(StoreBase):
    """A run stored in one schema of a PostgreSQL database."""

    dialect = POSTGRES

    def __init__(
        self, url: DatabaseURL, config: DatabaseConfig | None = None, *, read_only: bool = False
    ) -> None:
        if not url.is_postgres:
            raise ValueError(f"PostgresStore needs a postgresql:// URL, got {url}")
        # Group commits run side by side on up to half the pool (rows lock, not the table).
        self.flush_concurrency = max(1, (config or DatabaseConfig()).pool_max_size // 2)
        super().__init__(url, config, read_only)
        self.schema = schema_name(url.run)
        self.write_retries = 0
        self.server: dict[str, Any] = {}  # where the connection went: see server_of
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._reads: StandbyReads | None = None

    # Lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Create or upgrade the run's schema, then open the pool and wait until it is ready."""
        if self._state != "new":
            return
        async with await connect(self.url, self.config.pool_timeout) as conn:
            self.server = server_of(conn)
            if self.read_only:
                with translating(self.url):
                    before = version = await read_version(conn, self.schema)
            else:
                before, version = await prepare(conn, self.schema, self.url,
                                                self.upgrade_progress)
            opened_at = await _wal_position(conn) if self.url.read_hosts else None
        if version < SCHEMA_VERSION:
            state = "does not exist" if version == 0 else f"has schema version {version}"
            raise SchemaError(f"run {self.url.run!r} at {self.url.endpoint} {state}; open it "
                              "once without read_only to create or upgrade it")
        self.upgraded_from = before if before != version else None
        pool = self._new_pool(self.url)
        try:
            with translating(self.url):
                await pool.open(wait=True, timeout=self.config.pool_timeout)
        except OperationalError as exc:
            await pool.close()
            raise unreachable(self.url, exc) from exc
        self._pool = pool
        reader = self.url.reader()
        if reader is not None:  # standbys may be down now: their pool fills when they are up
            self._reads = StandbyReads(reader, self._new_pool(reader))
            self._reads.wrote(opened_at)  # reads see all that was committed before
            await self._reads.pool.open(wait=False)
        self._state = "open"

    def _new_pool(self, url: DatabaseURL) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        return AsyncConnectionPool(
            url.conninfo(),
            min_size=self.config.pool_min_size,
            max_size=self.config.pool_max_size,
            timeout=self.config.pool_timeout,
            kwargs=connection_kwargs(url, self.config.pool_timeout),
            check=_check_idle_connection,
            reconnect_failed=self._reconnect_failed,
            name=f"genesis/{url.run}",
            open=False,
        )

    async def _reconnect_failed(self, pool: AsyncConnectionPool[Any]) -> None:
        logger.warning("PostgreSQL at %s stayed unreachable; pool %s gave up reconnecting",
                       self.url.endpoint, pool.name)

    async def _disconnect(self) -> None:
        if self._reads is not None:
            await self._reads.pool.close()
            self._reads = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[PostgresSession]:
        """Borrow a checked connection to the primary from the pool."""
        assert self._pool is not None
        with translating(self.url):
            async with self._pool.connection() as conn:
                yield PostgresSession(conn, self.url, self.config.max_code_bytes, self.schema,
                                      track_lsn=self._reads is not None)

    def _wrote(self, session: PostgresSession) -> None:
        """Note a commit's WAL position: reads wait for standbys to replay it."""
        if self._reads is not None:
            self._reads.wrote(session.committed_lsn)

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[PostgresSession]:
        """Borrow a connection for reads: a fit standby's, else the primary's."""
        if self._reads is None:
            async with self._session() as session:
                yield session
            return
        async with self._reads.connection() as conn:
            if conn is None:
                async with self._session() as session:
                    yield session
                return
            with translating(self._reads.url):
                yield PostgresSession(conn, self._reads.url, self.config.max_code_bytes,
                                      self.schema)

    # Reads and transactions --------------------------------------------------------------

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False, primary: bool = False
                   ) -> AsyncIterator[PostgresSession]:
        """Borrow a reader; with ``snapshot`` one REPEATABLE READ READ ONLY transaction.

        It reads from a standby when the URL names ``read_hosts``, unless ``primary``.
        """
        self._check_open()
        async with (self._session() if primary else self._reader()) as session:
            if not snapshot:
                yield session
                return
            await session.control("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield session
            finally:
                await _roll_back(session)  # nothing to keep: the transaction only read

    def write(self, *, lock: str | None = None
              ) -> AbstractAsyncContextManager[PostgresSession]:
        """Run one transaction; ``lock`` serialises the writers naming the same key."""
        return self._write(lock, None)

    @asynccontextmanager
    async def _write(self, lock: str | None, committed: CommitCheck | None
                     ) -> AsyncIterator[PostgresSession]:
        """One transaction; ``committed`` decides an outcome that only it can (see _committed)."""
        self._check_writable()
        started = False
        try:
            async with self._session() as session:
                xid, server = await session.begin(self.schema, lock)
                started = True
                try:
                    yield session
                except BaseException as exc:
                    await _roll_back(session)
                    if _retry_is_safe(session, exc):
                        raise _NotCommitted(f"the transaction was rolled back: {exc}") from exc
                    raise
                await self._commit(session, (xid, server), committed)
                self._wrote(session)
        except OperationalError as exc:
            if started:
                raise
            # No connection could be had, or it failed before the transaction began.
            raise _NotCommitted(f"the transaction could not begin: {exc}") from exc

    async def _commit(self, session: PostgresSession, ran: tuple[str, str],
                      committed: CommitCheck | None) -> None:
        try:
            await session.commit()
        except OperationalError as exc:
            if not session.conn.broken:
                raise
            if not await self._committed(ran, committed,
                                         _Patience(self.config.write_retry_timeout)):
                raise _NotCommitted(f"the connection was lost during COMMIT and the "
                                    f"transaction was rolled back: {exc}") from exc

    async def _committed(self, ran: tuple[str, str], committed: CommitCheck | None,
                         patience: _Patience) -> bool:
        """Find out on a fresh connection whether the transaction ``ran`` committed.

        ``ran`` is its id and the start time of the server that ran it. On another server
        (after a failover or a restart) only an id it never assigned, or one it aborted, is
        conclusive; a 'committed' id there may be another transaction's, so ``committed``
        (the idempotency key) decides, and without one the outcome is reported unknown.
        """
        xid, server = ran
        while True:
            status = here = None
            with contextlib.suppress(OperationalError):
                async with self._session() as session:
                    status, here = await session.transaction_status(xid)
                    if status == "committed" and here != server and committed is not None:
                        return await committed(session)
            if status == "aborted" or (status == "committed" and here == server):
                return status == "committed"
            if status == "committed":
                raise ConnectionLostError(
                    f"the connection to PostgreSQL at {self.url.endpoint} was lost during "
                    f"COMMIT and the server now answering is another one (a failover or a "
                    f"restart): whether transaction {xid} committed cannot be confirmed, "
                    "so it is not run again")
            if patience.exhausted:
                raise ConnectionLostError(
                    f"the connection to PostgreSQL at {self.url.endpoint} was lost during "
                    f"COMMIT and the outcome of transaction {xid} could not be confirmed "
                    f"within write_retry_timeout ({self.config.write_retry_timeout:g} s)")
            await patience.pause()

    async def transaction(
        self, work: Callable[[PostgresSession], Awaitable[T]], *, lock: str | None = None,
        committed: CommitCheck | None = None,
    ) -> T:
        """Run ``work`` in a write transaction, again while it certainly did not commit."""
        patience = _Patience(self.config.write_retry_timeout)
        while True:
            try:
                async with self._write(lock, committed) as session:
                    return await work(session)
            except _NotCommitted as exc:
                await self._before_retry(patience, exc, "a write transaction")

    async def flight(self, build: FlightBuilder, committed: CommitCheck) -> list[Any]:
        """Run a flight's writes and reads as one transaction, in one round trip.

        ``build(session)`` gives the statements and the reads. When the connection is lost
        before the outcome is known, ``committed(session)`` (an idempotency key: is a row the
        flight wrote there?) decides, on a fresh connection, between returning the reads
        (read again) and running the flight again; deadlocks and lost connections before the
        flight are retried, until ``write_retry_timeout``.
        """
        self._check_writable()
        patience = _Patience(self.config.write_retry_timeout)
        while True:
            sent = False
            try:
                async with self._session() as session:
                    writes, reads = build(session)
                    backend = _backend_of(session)
                    sent = True
                    try:
                        rows = await session._flight(writes, reads, transaction=True)
                        self._wrote(session)
                    except OperationalError as exc:
                        if getattr(exc.__cause__, "sqlstate", None) in _RETRY_SQLSTATES:
                            await _roll_back(session)
                            raise _NotCommitted(f"the flight was rolled back: {exc}") from exc
                        # The connection failed with the flight: its outcome is unknown.
                        if await self._decided(committed, backend, patience):
                            return await self._read_again(reads)
                        raise _NotCommitted(f"the flight did not commit: {exc}") from exc
                    except BaseException:
                        await _roll_back(session)  # the server refused it: nothing committed
                        raise
                    return [q.decode(r) for q, r in zip(reads, rows, strict=True)]
            except OperationalError as exc:  # certainly not committed, or nothing was sent
                if sent and not isinstance(exc, _NotCommitted):
                    raise
                await self._before_retry(patience, exc, "a flight")

    async def _before_retry(self, patience: _Patience, exc: OperationalError, what: str
                            ) -> None:
        """Give up on a write that surely did not commit once ``write_retry_timeout`` is
        spent (nothing was stored), else count the retry and wait before it."""
        if patience.exhausted:
            raise ConnectionLostError(
                f"could not write to PostgreSQL at {self.url.endpoint} within "
                f"write_retry_timeout ({self.config.write_retry_timeout:g} s); "
                f"nothing was stored: {exc}") from exc
        logger.info("retrying %s on %s: %s", what, self.url.endpoint, exc)
        self.write_retries += 1
        await patience.pause()

    async def _decided(self, committed: CommitCheck, backend: tuple[str, int, int],
                       patience: _Patience) -> bool:
        """Ask ``committed`` on a fresh connection, once the flight's outcome is final.

        The server process that ran the flight may still be finishing it (committing, or
        rolling back after the connection was cut): its outcome is final only once that
        process is gone, so ``committed`` is asked only then. A fresh connection to another
        server (after a failover) decides at once: the old primary's processes are not
        there, and what of the flight reached this server is all there is.
        """
        while True:
            with contextlib.suppress(OperationalError):
                async with self._session() as session:
                    host, port, _ = _backend_of(session)
                    if (host, port) != backend[:2] or \
                            not await session.backend_alive(backend[2]):
                        return await committed(session)
            if patience.exhausted:
                raise ConnectionLostError(
                    f"the connection to PostgreSQL at {self.url.endpoint} was lost during a "
                    "write and its outcome could not be confirmed within write_retry_timeout "
                    f"({self.config.write_retry_timeout:g} s)")
            await patience.pause()

    async def _read_again(self, reads: list[Any]) -> list[Any]:
        async with self._session() as session:
            rows = await session._flight((), reads)
        return [q.decode(r) for q, r in zip(reads, rows, strict=True)]

    # Introspection -----------------------------------------------------------------------

    def describe(self) -> str:
        """Say where the run lives: server, database and user as libpq resolved them."""
        server = describe_server(self.server) if self.server else self.url.endpoint
        return f"PostgreSQL at {server}, run {self.url.run!r} (schema {self.schema})"

    async def create_json_index(self, index: JsonIndex) -> bool:
        """Build the index on a JSON path without blocking writers, then record it.

        ``CREATE INDEX CONCURRENTLY``: workers keep inserting while it builds. A build that
        was interrupted leaves an invalid index, which is dropped and built again. The table
        is analysed after, so the planner knows the indexed values (autovacuum gathers no
        statistics of an expression until enough rows change). Returns False if the path
        was already indexed.
        """
        self._check_writable()
        name, table = f"{self.schema}.{index.name}", f"{self.schema}.programs"
        async with self._session() as session:
            conn = session.conn
            if await (await conn.execute(f"SELECT 1 FROM {self.schema}.json_indexes "
                                         "WHERE field = %s", (index.field.name,))).fetchone():
                return False
            invalid = await conn.execute(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN "
                "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND "
                "c.relname = %s AND NOT i.indisvalid", (self.schema, index.name))
            if await invalid.fetchone():
                await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            await conn.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index.name} "
                               f"ON {table} ({index.postgres_expression()})")
            await conn.execute(f"ANALYZE {table}")  # the statistics of the indexed values
            cursor = await conn.execute(f"INSERT INTO {self.schema}.json_indexes (field) "
                                        "VALUES (%s) ON CONFLICT DO NOTHING",
                                        (index.field.name,))
            return cursor.rowcount > 0

    async def drop_json_index(self, index: JsonIndex) -> bool:
        """Forget the index on a JSON path, then drop it without blocking writers."""
        self._check_writable()
        async with self._session() as session:
            cursor = await session.conn.execute(
                f"DELETE FROM {self.schema}.json_indexes WHERE field = %s", (index.field.name,))
            await session.conn.execute(
                f"DROP INDEX CONCURRENTLY IF EXISTS {self.schema}.{index.name}")
            return cursor.rowcount > 0

    async def schema_version(self) -> int:
        """Return the schema version of the run."""
        self._check_open()
        async with self._session() as session:
            with translating(self.url):
                return await read_version(session.conn, self.schema)

    async def stats(self) -> dict[str, Any]:
        """Return pool counters, table and index sizes, and group-commit counters."""
        self._check_open()
        assert self._pool is not None
        async with self._session() as session:
            rows = await session.relation_sizes(self.schema)
        return {
            "backend": "postgresql",
            "endpoint": self.url.endpoint,
            "server": self.server,
            "run": self.url.run,
            "schema": self.schema,
            "pool": self._pool.get_stats(),
            "tables": {name: {"total_bytes": total, "heap_bytes": heap}
                       for name, kind, total, heap in rows if kind == "r"},
            "indexes": {name: total for name, kind, total, _ in rows if kind == "i"},
            "group_commit_batches": self._committer.batches,
            "group_commit_items": self._committer.items,
            "write_retries": self.write_retries,
            "pid": os.getpid(),
            "topology": await self.topology(),
        }

    async def topology(self) -> dict[str, Any]:
        """The primary now answering, its standbys and their lag, and where reads went."""
        async with self._session() as session:
            primary = describe_server(server_of(session.conn))
            standbys = await session.standbys()
        return {"primary": primary, "hosts": self.url.endpoint, "standbys": standbys,
                **(self._reads.topology() if self._reads is not None else {})}
