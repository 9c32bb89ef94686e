"""The PostgreSQL schema: docker/init-db.sql matches the engine, runs are created once,
island counters stay exact under any change."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.backends import postgres_schema
from genesis.database.backends.postgres import drop_run
from genesis.database.backends.postgres_schema import SCHEMA_VERSION, render_ddl
from genesis.database.backends.postgres_session import PostgresSession, qualify
from genesis.database.protocol import ProgramStore
from tests.conftest import new_pg_run_url, require_postgres
from tests.factories import make_program

INIT_DB = Path(__file__).parent.parent / "docker" / "init-db.sql"
# What makes up a schema, each query returning rows in a stable order; %s is the schema.
CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default, "
               "is_identity, identity_generation FROM information_schema.columns "
               "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                   "FROM pg_constraint WHERE connamespace = %s::regnamespace ORDER BY 1, 2",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
               "WHERE schemaname = %s ORDER BY 1, 2",
    "triggers": "SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid) "
                "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relnamespace = %s::regnamespace ORDER BY 1, 2",
    "functions": "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
                 "WHERE pronamespace = %s::regnamespace ORDER BY 1",
}


def test_init_db_sql_is_the_engine_ddl() -> None:
    assert INIT_DB.read_text() == render_ddl("default"), (
        "docker/init-db.sql is stale: regenerate it with "
        "`python -m genesis.database.backends.postgres_schema > docker/init-db.sql`")


async def _catalog(conn: psycopg.AsyncConnection[Any], schema: str) -> dict[str, list[Any]]:
    catalog: dict[str, list[Any]] = {}
    for part, query in CATALOG.items():
        rows = await (await conn.execute(query, (schema,))).fetchall()
        catalog[part] = [tuple(str(v).replace(schema, "<schema>") if isinstance(v, str) else v
                               for v in row) for row in rows]
    versions = await conn.execute(f"SELECT version FROM {schema}.genesis_schema ORDER BY 1")
    catalog["versions"] = await versions.fetchall()
    return catalog


@pytest.fixture
async def fresh_database() -> AsyncIterator[DatabaseURL]:
    """An empty database on the test server, dropped afterwards."""
    server = require_postgres()
    name = f"genesis_t_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(server.conninfo(), autocommit=True) as admin:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield dataclasses.replace(server, database=name)
        finally:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.postgres
async def test_init_db_sql_creates_what_the_engine_creates(fresh_database: DatabaseURL) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_database.conninfo(),
                                                     autocommit=True) as conn:
        await conn.execute(INIT_DB.read_text())  # as the postgres image's entrypoint does
        async with create_store(fresh_database.with_run("engine")) as store:
            assert store.upgraded_from == 0
        from_file = await _catalog(conn, "genesis_default")
        from_engine = await _catalog(conn, "genesis_engine")
    assert from_file == from_engine
    # three island-counter triggers, the NOTIFY of new programs and the code-search words
    assert len(from_file["indexes"]) >= 15 and len(from_file["triggers"]) == 5
    async with create_store(fresh_database) as store:  # the default run, made by the file
        assert store.upgraded_from is None
        assert await store.schema_version() == SCHEMA_VERSION


@pytest.mark.postgres
async def test_many_stores_starting_at_once_create_the_run_once() -> None:
    url = new_pg_run_url()
    stores = [create_store(url, DatabaseConfig(pool_max_size=1)) for _ in range(8)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        creators = [store for store in stores if store.upgraded_from == 0]
        assert len(creators) == 1
        async with stores[0].read() as reader:
            rows = await _rows(reader, "SELECT version FROM genesis_schema ORDER BY version")
        assert [row[0] for row in rows] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        await asyncio.gather(*(store.close() for store in stores))
        await drop_run(url)


async def _rows(session: PostgresSession, query: str) -> list[tuple[Any, ...]]:
    return await session._all(query)


async def _islands_match_programs(store: ProgramStore) -> dict[int, int]:
    """Check the counters against the programs; return each island's departures."""
    async with store.read() as reader:
        counters = await _rows(
            reader, "SELECT island_idx, programs, correct, best_score, embedded FROM islands "
                    "WHERE programs > 0 ORDER BY 1")
        truth = await _rows(
            reader,
            "SELECT COALESCE(island_idx, -1), COUNT(*), COUNT(*) FILTER (WHERE correct), "
            "MAX(combined_score) FILTER (WHERE correct), "
            "COUNT(*) FILTER (WHERE embedding IS NOT NULL) FROM programs GROUP BY 1 ORDER BY 1")
        departures = await _rows(reader, "SELECT island_idx, departures FROM islands")
    assert counters == truth
    return dict(departures)


def _members(rows: list[tuple[Any, ...]]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for island, pid in rows:
        found.setdefault(island, set()).add(pid)
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_island_counters_stay_exact_under_bulk_changes(store: ProgramStore) -> None:
    programs = [make_program(island=i % 3 if i % 7 else None, correct=i % 4 != 0,
                             embedding_dim=2 if i % 5 else 0) for i in range(60)]
    await store.add_many(programs)
    departures = await _islands_match_programs(store)
    assert set(departures.values()) == {0}
    members_sql = "SELECT COALESCE(island_idx, -1), id FROM programs WHERE embedding IS NOT NULL"
    statements = [
        "UPDATE programs SET island_idx = (island_idx + 1) % 3 WHERE generation = 0 "
        "AND island_idx IS NOT NULL AND combined_score > 0.5",
        "UPDATE programs SET correct = NOT correct WHERE combined_score < 0.3",
        "UPDATE programs SET combined_score = combined_score / 2 WHERE island_idx = 1",
        "UPDATE programs SET island_idx = NULL WHERE combined_score > 0.8",
        "UPDATE programs SET children_count = children_count + 1",
        "UPDATE programs SET embedding = NULL WHERE combined_score BETWEEN 0.6 AND 0.7",
        "DELETE FROM programs WHERE combined_score BETWEEN 0.2 AND 0.45",
        "DELETE FROM programs WHERE island_idx IS NULL AND correct",
    ]
    for statement in statements:
        async with store.read() as reader:
            before = _members(await _rows(reader, members_sql))
        async with store.write() as writer:
            await writer.conn.execute(qualify(statement, writer.schema))
        counted = await _islands_match_programs(store)
        async with store.read() as reader:
            after = _members(await _rows(reader, members_sql))
        for island, members in before.items():  # each member that left is one departure
            left = len(members - after.get(island, set()))
            assert counted.get(island, 0) - departures.get(island, 0) == left, statement
        departures = counted


@pytest.mark.postgres
async def test_a_version_4_run_gets_exact_membership_counters() -> None:
    url = dataclasses.replace(require_postgres(), run=f"t_v4_{uuid.uuid4().hex[:8]}")
    schema = postgres_schema.schema_name(url.run)
    insert = (f"INSERT INTO {schema}.programs (id, code, island_idx, timestamp, embedding) "
              "VALUES (%s, 'x = 1', %s, 0, %s)")
    try:
        with psycopg.connect(url.conninfo(), autocommit=True) as conn:
            for statement in postgres_schema._statements(schema, 0, 4):
                conn.execute(statement)
            for index in range(9):
                conn.execute(insert, (f"p{index}", index % 2, b"\0" * 8 if index % 3 else None))
        async with create_store(url, DatabaseConfig(pool_max_size=2)) as store:
            assert store.upgraded_from == 4
            assert await store.schema_version() == SCHEMA_VERSION == 6
            assert await _islands_match_programs(store) == {0: 0, 1: 0}
            async with store.write() as writer:
                await writer.move_program("p1", 0, {"generation": 1})
            assert await _islands_match_programs(store) == {0: 0, 1: 1}
    finally:
        await drop_run(url)
