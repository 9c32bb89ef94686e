"""Lost connections during writes: nothing acknowledged is lost, nothing is stored twice.

The server end of the pool's connections is killed with ``pg_terminate_backend`` from a
separate admin connection, chosen by ``application_name`` (``genesis/<run>``) so that only
this test's connections die.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest

from genesis.database import (
    ConnectionLostError,
    DatabaseConfig,
    DatabaseURL,
    GenesisError,
    OperationalError,
    Program,
    create_store,
)
from genesis.database.backends.postgres import PostgresStore
from genesis.database.backends.postgres_session import PostgresSession
from tests.conftest import postgres_test_cannot_run, require_postgres
from tests.factories import make_program

pytestmark = [pytest.mark.postgres, pytest.mark.direct,
              pytest.mark.parametrize("backend", ["postgres"])]
TASKS = 8
PER_TASK = 40
KILL = ("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name = %s")


@pytest.fixture
async def admin() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection of the test itself, outside every pool."""
    url = require_postgres()
    async with await psycopg.AsyncConnection.connect(url.conninfo(), autocommit=True) as conn:
        yield conn


async def _value(conn: psycopg.AsyncConnection[Any], query: str, *params: Any) -> Any:
    row = await (await conn.execute(query, params)).fetchone()
    return row[0] if row else None


async def _kill(admin: psycopg.AsyncConnection[Any], store: PostgresStore) -> int:
    return await _value(admin, KILL, f"genesis/{store.url.run}")


Probe = Callable[[], Awaitable[bool]]


def _blocked(admin: psycopg.AsyncConnection[Any], store: PostgresStore) -> Probe:
    """Return a probe telling whether one of the store's connections waits for a lock."""

    async def probe() -> bool:
        return await _value(admin, "SELECT COUNT(*) FROM pg_stat_activity WHERE "
                            "application_name = %s AND wait_event_type = 'Lock'",
                            f"genesis/{store.url.run}") > 0

    return probe


async def _wait_for(probe: Probe) -> None:
    """Poll until ``probe`` holds (a guard against hanging, not a timing assertion)."""
    for _ in range(6000):
        if await probe():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the awaited state never came")


def _kill_around_commit(
    monkeypatch: pytest.MonkeyPatch, admin: psycopg.AsyncConnection[Any], *, after: bool
) -> list[int]:
    """Make the next COMMIT lose its connection, just before or just after it is applied."""
    original = PostgresSession.commit
    kills: list[int] = []

    async def kill(session: PostgresSession) -> None:
        kills.append(await _value(admin, "SELECT pg_terminate_backend(%s)::int",
                                  session.conn.info.backend_pid))

    async def commit(self: PostgresSession) -> None:
        if kills:
            await original(self)
        elif after:  # the server commits, but its reply never arrives
            await original(self)
            await kill(self)
            await self.control("SELECT 1")
        else:  # the connection is gone before COMMIT reaches the server
            await kill(self)
            await original(self)

    monkeypatch.setattr(PostgresSession, "commit", commit)
    return kills


async def _stored(admin: psycopg.AsyncConnection[Any], store: PostgresStore) -> dict[str, int]:
    cursor = await admin.execute(f"SELECT id, COUNT(*) FROM {store.schema}.programs GROUP BY id")
    return dict(await cursor.fetchall())


@pytest.mark.parametrize("after", [True, False], ids=["commit-applied", "commit-lost"])
async def test_connection_lost_at_commit_is_resolved_without_duplicates(
    store: PostgresStore, admin: psycopg.AsyncConnection[Any],
    monkeypatch: pytest.MonkeyPatch, after: bool,
) -> None:
    kills = _kill_around_commit(monkeypatch, admin, after=after)
    batch = [make_program() for _ in range(5)]
    assert await store.add_many(batch) == [p.id for p in batch]
    single = make_program()
    assert await store.add(single) == single.id
    assert kills == [1]
    assert store.write_retries == (0 if after else 1)
    assert await _stored(admin, store) == {p.id: 1 for p in [*batch, single]}


async def test_deadlock_victim_transaction_is_retried(
    store: PostgresStore, admin: psycopg.AsyncConnection[Any],
) -> None:
    parent = make_program(island=0)
    await store.add(parent)
    try:  # the store's connections detect the deadlock first, so they are the victim
        await admin.execute("SET deadlock_timeout = '30s'")
    except psycopg.errors.InsufficientPrivilege:
        postgres_test_cannot_run("setting deadlock_timeout needs a superuser on the test server")
    async with admin.transaction():
        await admin.execute(f"UPDATE {store.schema}.programs SET complexity = complexity "
                            "WHERE id = %s", (parent.id,))
        child = make_program(parent=parent)
        adding = asyncio.create_task(store.add_many([child]))
        await _wait_for(_blocked(admin, store))  # holds island 0, waits for the parent row
        await admin.execute(f"UPDATE {store.schema}.islands SET programs = programs "
                            "WHERE island_idx = 0")
    assert await adding == [child.id]
    assert store.write_retries == 1
    async with store.read() as reader:
        assert (await reader.get(parent.id)).children_count == 1
        assert [s.programs for s in await reader.island_stats()] == [2]


async def test_writes_give_up_with_connection_lost_after_the_retry_timeout(
    store_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch,
) -> None:
    @asynccontextmanager
    async def unreachable(self: PostgresStore) -> AsyncIterator[PostgresSession]:
        raise OperationalError("server closed the connection unexpectedly") \
            from psycopg.OperationalError("no connection")
        yield  # an async context manager that never gets a connection

    config = DatabaseConfig(write_retry_timeout=0.2)
    async with create_store(store_url, config) as store:
        monkeypatch.setattr(PostgresStore, "_session", unreachable)
        results = await asyncio.gather(store.add(make_program()), store.add(make_program()),
                                       return_exceptions=True)
        with pytest.raises(ConnectionLostError, match="nothing was stored"):
            await store.add_many([make_program()])
        monkeypatch.undo()
        assert all(isinstance(r, ConnectionLostError) for r in results)
        async with store.read() as reader:
            assert await reader.count() == 0


async def test_killing_every_pool_connection_under_load_loses_nothing(
    store_url: DatabaseURL, admin: psycopg.AsyncConnection[Any],
) -> None:
    config = DatabaseConfig(pool_min_size=2, pool_max_size=4, batch_max_size=16)
    outcomes: dict[str, Program | BaseException] = {}

    async def worker() -> None:
        for _ in range(PER_TASK):
            program = make_program(island=0)
            try:
                await store.add(program)
                outcomes[program.id] = program
            except GenesisError as exc:
                outcomes[program.id] = exc

    async with create_store(store_url, config) as store:
        assert isinstance(store, PostgresStore)
        root = make_program(island=0)
        await store.add(root)  # the island row the writers will wait for
        workers = asyncio.gather(*(worker() for _ in range(TASKS)))
        # First kill: while a group commit is surely mid-transaction, blocked on island 0.
        async with admin.transaction():
            await admin.execute(f"SELECT * FROM {store.schema}.islands FOR UPDATE")
            await _wait_for(_blocked(admin, store))
            first_kill = await _kill(admin, store)

        # Second kill: wherever the writers happen to be once half the work is stored.
        async def half_done() -> bool:
            return len(outcomes) >= TASKS * PER_TASK // 2

        await _wait_for(half_done)
        second_kill = await _kill(admin, store)
        await workers
        stored = await _stored(admin, store)
        islands = await _value(admin, f"SELECT SUM(programs) FROM {store.schema}.islands")
        returned = [p for p in outcomes.values() if isinstance(p, Program)]
        async with store.read() as reader:
            assert await reader.get_many([p.id for p in returned]) == returned
    acked = {p.id for p in returned}
    failed = {pid: exc for pid, exc in outcomes.items() if isinstance(exc, BaseException)}
    assert first_kill >= 1 and second_kill >= 1
    assert store.write_retries >= 1
    assert set(stored.values()) == {1}  # no program twice
    assert acked <= set(stored)  # every acknowledged program stored
    assert set(stored) <= acked | set(failed) | {root.id}
    assert all(isinstance(exc, OperationalError) for exc in failed.values()), \
        {type(e).__name__: str(e)[:300] for e in failed.values()}
    assert islands == len(stored)
