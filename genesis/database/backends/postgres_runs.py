"""Runs on a PostgreSQL server: one schema ``genesis_<run>`` per run, listed and dropped here.

Runs share a database without seeing each other: a store's connections search only its own
schema. A schema counts as a run when it holds Genesis' ``genesis_schema`` version table.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from psycopg import errors, sql

from genesis.database.backends.postgres_connect import connect
from genesis.database.backends.postgres_schema import SCHEMA_PREFIX, ddl_lock, schema_name
from genesis.database.errors import translating
from genesis.database.url import DatabaseURL

__all__ = ["RunInfo", "drop_run", "drop_run_sync", "list_runs"]

_RUN_SCHEMAS = (
    "SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
    "WHERE c.relname = 'genesis_schema' AND c.relkind = 'r' AND starts_with(n.nspname, %s) "
    "ORDER BY n.nspname"
)
_RUN_SUMMARY = sql.SQL(
    "SELECT (SELECT COALESCE(SUM(programs), 0) FROM {schema}.islands), "
    "(SELECT MAX(timestamp) FROM {schema}.programs), "
    "(SELECT MAX(version) FROM {schema}.genesis_schema)"
)


@dataclass(frozen=True)
class RunInfo:
    """A run stored on the server: its size, last activity and schema version."""

    name: str
    schema: str
    programs: int
    last_activity: float | None
    schema_version: int


async def list_runs(url: DatabaseURL) -> list[RunInfo]:
    """Return every run stored in the database named by ``url``, by name."""
    runs = []
    async with await connect(url) as conn:
        with translating(url):
            cursor = await conn.execute(_RUN_SCHEMAS, (SCHEMA_PREFIX,))
            for (schema,) in await cursor.fetchall():
                query = _RUN_SUMMARY.format(schema=sql.Identifier(schema))
                try:
                    row = await (await conn.execute(query)).fetchone()
                except (errors.UndefinedTable, errors.InvalidSchemaName):
                    continue  # dropped since it was listed
                assert row is not None
                runs.append(RunInfo(schema[len(SCHEMA_PREFIX):], schema, int(row[0]), row[1],
                                    int(row[2] or 0)))
    return runs


async def drop_run(url: DatabaseURL) -> None:
    """Drop the run named by ``url`` and everything in it (nothing if it does not exist)."""
    schema = schema_name(url.run)
    async with await connect(url) as conn:
        with translating(url):
            async with ddl_lock(conn, schema):
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def drop_run_sync(url: DatabaseURL) -> None:
    """Drop a run from synchronous code, even while an event loop runs in this thread."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, drop_run(url)).result()
