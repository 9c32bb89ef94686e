"""Several processes evolving one run at once: every invariant holds, checked in SQL."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL
from genesis.database.adapter import get_database_adapter
from tests.factories import make_program

PROCESSES = 3
TASKS = 6
STEPS = 10
OPTIONS = dict(num_islands=3, archive_size=10, migration_interval=4, migration_rate=0.3,
               pool_max_size=4, sqlite_readers=2)


def _config(location: tuple[str, str], seed: int) -> DatabaseConfig:
    kind, target = location
    if kind == "sqlite":
        return DatabaseConfig(db_path=target, seed=seed, **OPTIONS)
    conninfo, run = target.rsplit("|", 1)
    return DatabaseConfig(database_url=conninfo, run_name=run, seed=seed, **OPTIONS)


def _evolve(location: tuple[str, str], worker: int) -> list[str]:
    """Sample parents and add children from several tasks; return the acknowledged ids."""

    async def main() -> list[str]:
        acked: list[str] = []
        async with AsyncProgramDatabase(_config(location, worker)) as db:

            async def task(index: int) -> None:
                rng = random.Random(worker * 100 + index)
                for _ in range(STEPS):
                    parent, _, _ = await db.sample()
                    child = make_program(parent=parent, score=rng.random(),
                                         correct=rng.random() < 0.8, rng=rng)
                    acked.append(await db.add(child))

            await asyncio.gather(*(task(i) for i in range(TASKS)))
        return acked

    return asyncio.run(main())


def _location(url: DatabaseURL) -> tuple[str, str]:
    return ("sqlite", url.path) if url.is_sqlite else ("postgres", f"{url.conninfo()}|{url.run}")


@pytest.mark.slow
def test_processes_keep_every_invariant(store_url: DatabaseURL) -> None:
    location = _location(store_url)

    async def seed() -> None:
        async with AsyncProgramDatabase(_config(location, 0)) as db:
            await db.add(make_program(score=0.05, island=None))

    asyncio.run(seed())
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        acked = [pid for ids in pool.starmap(_evolve, [(location, w + 1)
                                                        for w in range(PROCESSES)])
                 for pid in ids]
    assert len(acked) == len(set(acked)) == PROCESSES * TASKS * STEPS

    kind, target = location
    adapter = get_database_adapter(db_path=target) if kind == "sqlite" else \
        get_database_adapter(target.rsplit("|", 1)[0] + "?run=" + target.rsplit("|", 1)[1])
    with adapter as db:
        def rows(sql: str, params: tuple = ()) -> list:
            return db.execute(sql, params).fetchall()

        assert rows("SELECT COUNT(*) FROM programs")[0][0] == 3 + len(acked)
        assert rows("SELECT p.id FROM programs p WHERE p.children_count != "
                    "(SELECT COUNT(*) FROM programs c WHERE c.parent_id = p.id)") == []
        archived = rows("SELECT p.combined_score, p.correct FROM archive a "
                        "JOIN programs p ON p.id = a.program_id")
        assert len(archived) == OPTIONS["archive_size"] and all(c for _, c in archived)
        top = rows("SELECT combined_score FROM programs WHERE correct = ? "
                   "ORDER BY combined_score DESC LIMIT ?", (True, OPTIONS["archive_size"]))
        assert sorted(s for s, _ in archived) == sorted(s for (s,) in top)
        metadata = dict(rows("SELECT key, value FROM metadata_store"))
        best_id, best_score = rows("SELECT id, combined_score FROM programs WHERE correct = ? "
                                   "ORDER BY combined_score DESC LIMIT 1", (True,))[0]
        assert metadata["best_program_id"] == best_id
        assert float(metadata["best_score_ever"]) == best_score
        max_generation = rows("SELECT MAX(generation) FROM programs")[0][0]
        assert int(metadata["last_iteration"]) == max_generation
        histories = [json.loads(h) if isinstance(h, str) else h
                     for (h,) in rows("SELECT migration_history FROM programs")]
        generations = [e["generation"] for history in histories for e in history or []]
        assert generations, "at least one migration should have happened"
        assert all(g % OPTIONS["migration_interval"] == 0 for g in generations)
        for history in histories:
            mine = [e["generation"] for e in history or []]
            assert len(mine) == len(set(mine))
        assert int(metadata["last_migration_generation"]) >= max(generations)
        counted = rows("SELECT COALESCE(island_idx, -1), COUNT(*) FROM programs GROUP BY 1 "
                       "ORDER BY 1")
        assert rows("SELECT island_idx, programs FROM islands WHERE programs > 0 "
                    "ORDER BY island_idx") == counted
