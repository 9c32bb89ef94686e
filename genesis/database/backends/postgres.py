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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
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
        if version < SCHEMA_VERSION:
            state = "does not exist" if version == 0 else f"has schema version {version}"
            raise SchemaError(f"run {self.url.run!r} at {self.url.endpoint} {state}; open it "
                              "once without read_only to create or upgrade it")
        self.upgraded_from = before if before != version else None
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self.url.conninfo(),
            min_size=self.config.pool_min_size,
            max_size=self.config.pool_max_size,
            timeout=self.config.pool_timeout,
            kwargs=connection_kwargs(self.url, self.config.pool_timeout),
            check=_check_idle_connection,
            reconnect_failed=self._reconnect_failed,
            name=f"genesis/{self.url.run}",
            open=False,
        )
        try:
            with translating(self.url):
                await pool.open(wait=True, timeout=self.config.pool_timeout)
        except OperationalError as exc:
            await pool.close()
            raise unreachable(self.url, exc) from exc
        self._pool = pool
        self._state = "open"

    async def _reconnect_failed(self, pool: AsyncConnectionPool[Any]) -> None:
        logger.warning("PostgreSQL at %s stayed unreachable; pool %s gave up reconnecting",
                       self.url.endpoint, pool.name)

    async def _disconnect(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[PostgresSession]:
        """Borrow a checked connection from the pool."""
        assert self._pool is not None
        with translating(self.url):
            async with self._pool.connection() as conn:
                yield PostgresSession(conn, self.url, self.config.max_code_bytes, self.schema)

    # Reads and transactions --------------------------------------------------------------

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[PostgresSession]:
        """Borrow a reader; with ``snapshot`` one REPEATABLE READ READ ONLY transaction."""
        self._check_open()
        async with self._session() as session:
            if not snapshot:
                yield session
                return
            await session.control("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield session
            finally:
                await _roll_back(session)  # nothing to keep: the transaction only read

    @asynccontextmanager
    async def write(self, *, lock: str | None = None) -> AsyncIterator[PostgresSession]:
        """Run one transaction; ``lock`` serialises the writers naming the same key."""
        self._check_writable()
        started = False
        try:
            async with self._session() as session:
                xid = await session.begin(self.schema, lock)
                started = True
                try:
                    yield session
                except BaseException as exc:
                    await _roll_back(session)
                    if _retry_is_safe(session, exc):
                        raise _NotCommitted(f"the transaction was rolled back: {exc}") from exc
                    raise
                await self._commit(session, xid)
        except OperationalError as exc:
            if started:
                raise
            # No connection could be had, or it failed before the transaction began.
            raise _NotCommitted(f"the transaction could not begin: {exc}") from exc

    async def _commit(self, session: PostgresSession, xid: str) -> None:
        try:
            await session.control("COMMIT")
        except OperationalError as exc:
            if not session.conn.broken:
                raise
            if not await self._committed(xid, _Patience(self.config.write_retry_timeout)):
                raise _NotCommitted(f"the connection was lost during COMMIT and the "
                                    f"transaction was rolled back: {exc}") from exc

    async def _committed(self, xid: str, patience: _Patience) -> bool:
        """Find out on a fresh connection whether transaction ``xid`` committed."""
        while True:
            status = None
            with contextlib.suppress(OperationalError):
                async with self._session() as session:
                    status = await session.transaction_status(xid)
            if status in ("committed", "aborted"):
                return status == "committed"
            if patience.exhausted:
                raise ConnectionLostError(
                    f"the connection to PostgreSQL at {self.url.endpoint} was lost during "
                    f"COMMIT and the outcome of transaction {xid} could not be confirmed "
                    f"within write_retry_timeout ({self.config.write_retry_timeout:g} s)")
            await patience.pause()

    async def transaction(
        self, work: Callable[[PostgresSession], Awaitable[T]], *, lock: str | None = None
    ) -> T:
        """Run ``work`` in a write transaction, again while it certainly did not commit."""
        patience = _Patience(self.config.write_retry_timeout)
        while True:
            try:
                async with self.write(lock=lock) as session:
                    return await work(session)
            except _NotCommitted as exc:
                if patience.exhausted:
                    raise ConnectionLostError(
                        f"could not write to PostgreSQL at {self.url.endpoint} within "
                        f"write_retry_timeout ({self.config.write_retry_timeout:g} s); "
                        f"nothing was stored: {exc}") from exc
                logger.info("retrying a write transaction on %s: %s", self.url.endpoint, exc)
            self.write_retries += 1
            await patience.pause()

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
                    backend = session.conn.info.backend_pid
                    sent = True
                    try:
                        rows = await session._flight(writes, reads, transaction=True)
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
                if patience.exhausted:
                    raise ConnectionLostError(
                        f"could not write to PostgreSQL at {self.url.endpoint} within "
                        f"write_retry_timeout ({self.config.write_retry_timeout:g} s); "
                        f"nothing was stored: {exc}") from exc
                logger.info("retrying a flight on %s: %s", self.url.endpoint, exc)
            self.write_retries += 1
            await patience.pause()

    async def _decided(self, committed: CommitCheck, backend: int,
                       patience: _Patience) -> bool:
        """Ask ``committed`` on a fresh connection, once the flight's outcome is final.

        The server process that ran the flight may still be finishing it (committing, or
        rolling back after the connection was cut): its outcome is final only once that
        process is gone, so ``committed`` is asked only then (after a failover the old
        server's processes are gone by definition).
        """
        while True:
            with contextlib.suppress(OperationalError):
                async with self._session() as session:
                    if not await session.backend_alive(backend):
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
        }
