"""Several OS processes, many tasks each, adding children of shared parents to one run."""

from __future__ import annotations

import asyncio
import multiprocessing
import random

import psycopg
import pytest

from genesis.database import DatabaseConfig, DatabaseURL, GenesisError, create_store
from genesis.database.backends.postgres_schema import schema_name
from tests.factories import make_program, store_parents

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.parametrize("backend", ["postgres"])]
PROCESSES = 4
TASKS = 8
PER_TASK = 20
PARENTS = 6


def _writer(url: DatabaseURL, parent_ids: list[str], worker: int) -> tuple[list[str], list[str]]:
    """Add children of the shared parents from many tasks; return (ids, error messages)."""

    async def main() -> tuple[list[str], list[str]]:
        acked: list[str] = []
        errors: list[str] = []
        async with create_store(url, DatabaseConfig(pool_max_size=3)) as store:
            async with store.read() as reader:
                parents = await reader.get_many(parent_ids)

            async def task(index: int) -> None:
                rng = random.Random(worker * 1000 + index)
                for k in range(PER_TASK):
                    child = make_program(parent=rng.choice(parents), rng=rng,
                                         generation=1 + k, job=f"w{worker}-t{index}-{k}")
                    try:
                        acked.append(await store.add(child))
                    except GenesisError as exc:
                        errors.append(repr(exc))

            await asyncio.gather(*(task(i) for i in range(TASKS)))
        return acked, errors

    return asyncio.run(main())


def test_processes_adding_children_keep_exact_counts(store_url: DatabaseURL) -> None:
    parents = store_parents(store_url, PARENTS)
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        results = pool.starmap(
            _writer, [(store_url, [p.id for p in parents], w) for w in range(PROCESSES)])
    acked = [pid for ids, _ in results for pid in ids]
    assert [e for _, errors in results for e in errors] == []
    assert len(acked) == len(set(acked)) == PROCESSES * TASKS * PER_TASK
    schema = schema_name(store_url.run)
    with psycopg.connect(store_url.conninfo()) as conn:
        assert conn.execute(f"SELECT COUNT(*) FROM {schema}.programs").fetchone()[0] == (
            PARENTS + len(acked))
        mismatched = conn.execute(
            f"SELECT p.id, p.children_count, COUNT(c.id) FROM {schema}.programs p "
            f"LEFT JOIN {schema}.programs c ON c.parent_id = p.id "
            "WHERE p.parent_id IS NULL GROUP BY p.id, p.children_count "
            "HAVING p.children_count <> COUNT(c.id)").fetchall()
        assert mismatched == []
        total = conn.execute(f"SELECT SUM(children_count) FROM {schema}.programs").fetchone()
        assert total[0] == len(acked)
        islands = conn.execute(
            f"SELECT island_idx, programs FROM {schema}.islands WHERE programs > 0 ORDER BY 1"
        ).fetchall()
        truth = conn.execute(f"SELECT island_idx, COUNT(*) FROM {schema}.programs "
                             "GROUP BY 1 ORDER BY 1").fetchall()
        assert islands == truth
        last = conn.execute(f"SELECT value FROM {schema}.metadata_store "
                            "WHERE key = 'last_iteration'").fetchone()
        assert last == (str(PER_TASK),)
