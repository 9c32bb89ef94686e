"""The documented query shapes use their indexes: EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN
on SQLite, read by the test (a plan that stops using the index fails it)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.database.backends.postgres_session import qualify
from genesis.database.backends.query_sql import PostgresCompiler, SQLiteCompiler
from genesis.database.code_search import search_terms
from genesis.database.query_language import Field, parse_where

PROGRAMS = 5_000


def _programs() -> list[Program]:
    return [Program(id=f"p{i:05d}", island_idx=i % 4, correct=i % 3 == 0,
                    code=f"def solve_{i}(x):\n    return helper_{i % 50}(x) + {i}\n",
                    public_metrics={"sum_radii": i / 1000, "rank": i % 100},
                    metadata={"patch_type": "rare" if i % 100 == 0 else "diff"})
            for i in range(PROGRAMS)]


def _scans(plan: dict[str, Any]) -> list[str]:
    found = [f"{plan['Node Type']} {plan.get('Index Name', plan.get('Relation Name', ''))}"]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def _postgres_plan(reader: Any, schema: str, sql: str, params: list[Any]) -> str:
    """The scans of the plan of ``sql``, outermost first, joined by `` | ``."""
    cursor = await reader.conn.execute(f"EXPLAIN (FORMAT JSON) {qualify(sql, schema)}", params)
    plan = (await cursor.fetchone())[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return " | ".join(_scans(plan[0]["Plan"]))


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_search_and_json_filters_use_gin_indexes(store_url: DatabaseURL
                                                                ) -> None:
    async with AsyncProgramDatabase(DatabaseConfig(database_url=str(store_url))) as db:
        await db.store.add_many(_programs())
        store: Any = db.store
        compiler = PostgresCompiler()
        shapes = {
            "search": compiler.search(search_terms("helper_7"), None, None, 20),
            "search, correct only": compiler.search(search_terms("solve 42"), None, True, 20),
        }
        for name, where in {
            "metadata ==": 'metadata.patch_type == "rare"',
            "public_metrics ==": "public_metrics.rank == 7",
            "correct and metadata ==": 'correct and metadata.patch_type == "rare"',
        }.items():
            condition, params = compiler.where(parse_where(where))
            shapes[name] = (f"SELECT p.id FROM programs p WHERE {condition}", params)
        async with store.read() as reader:
            # as autovacuum does: moves GIN pending entries into the index, gathers statistics
            await reader.conn.execute(f"VACUUM ANALYZE {store.schema}.programs")
            plans = {name: await _postgres_plan(reader, store.schema, sql, params)
                     for name, (sql, params) in shapes.items()}
    for name in ("search", "search, correct only"):
        assert "Bitmap Index Scan idx_programs_code_tsv" in plans[name], plans[name]
    for name in ("metadata ==", "correct and metadata =="):
        assert "Bitmap Index Scan idx_programs_metadata" in plans[name], plans[name]
    assert "Bitmap Index Scan idx_programs_public_metrics" in plans["public_metrics =="], \
        plans["public_metrics =="]
    assert not any("Seq Scan" in plan for plan in plans.values()), plans


async def test_sqlite_search_uses_fts5(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    async with AsyncProgramDatabase(DatabaseConfig(db_path=str(path))) as db:
        await db.store.add_many(_programs()[:200])
    sql, params = SQLiteCompiler().search(search_terms("helper_7"), 1, True, 20)
    with sqlite3.connect(path) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    fts = [step for step in plan if step.startswith("SCAN programs_fts VIRTUAL TABLE")]
    assert len(fts) == 2, plan  # the words, and the phrase that ranks first
    assert not any(step.startswith("SCAN programs ") or step == "SCAN programs"
                   for step in plan), plan
    assert any("USING INTEGER PRIMARY KEY" in step for step in plan), plan


INDEXED_SHAPES = {
    "range": "public_metrics.sum_radii > 4.95",
    "correct and range": "correct and public_metrics.sum_radii <= 0.05",
    "range or range": "public_metrics.sum_radii < 0.01 or public_metrics.sum_radii >= 4.99",
}


async def _indexed_plans(db: AsyncProgramDatabase, shapes: dict[str, str], limit: int = 1000
                         ) -> dict[str, str]:
    """The plan of each filter's query(), as compiled knowing the run's JSON path indexes."""
    store: Any = db.store
    plans = {}
    async with store.read() as reader:
        for name, where in shapes.items():
            sql, params = await reader.query_statement(parse_where(where), [Field("id")], [],
                                                       limit)
            if store.url.is_postgres:
                plans[name] = await _postgres_plan(reader, store.schema, sql, params)
            else:
                steps = await reader._all(f"EXPLAIN QUERY PLAN {sql}", params)
                plans[name] = " | ".join(str(row[3]) for row in steps)
    return plans


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_ranges_on_an_indexed_path_use_its_btree(store_url: DatabaseURL
                                                                ) -> None:
    async with AsyncProgramDatabase(DatabaseConfig(database_url=str(store_url))) as db:
        await db.store.add_many(_programs())
        assert await db.create_index("public_metrics.sum_radii")
        store: Any = db.store
        async with store.read() as reader:
            await reader.conn.execute(f"VACUUM ANALYZE {store.schema}.programs")
        plans = await _indexed_plans(db, INDEXED_SHAPES)
        assert await db.drop_index("public_metrics.sum_radii")
        unindexed = await _indexed_plans(db, INDEXED_SHAPES)
    for name, plan in plans.items():
        assert "Index Scan programs_json_public_metrics_sum_radii_" in plan, (name, plan)
        assert "Seq Scan" not in plan, (name, plan)
    assert not any("programs_json_" in plan for plan in unindexed.values()), unindexed


async def test_sqlite_comparisons_on_an_indexed_path_use_its_index(tmp_path: Path) -> None:
    shapes = {**INDEXED_SHAPES, "equality": 'metadata.patch_type == "rare"',
              "correct and equality": 'correct and metadata.patch_type == "rare"'}
    async with AsyncProgramDatabase(DatabaseConfig(db_path=str(tmp_path / "run.db"))) as db:
        await db.store.add_many(_programs())
        for field in ("public_metrics.sum_radii", "metadata.patch_type"):
            assert await db.create_index(field)
        plans = await _indexed_plans(db, shapes)
        negated = await _indexed_plans(db, {"not": "not public_metrics.sum_radii > 4.95"})
        # 90% of the programs, 10 wanted: reading in id order finds them soonest
        broad = await _indexed_plans(db, {"broad": "public_metrics.sum_radii > 0.5"}, 10)
    for name, plan in plans.items():
        assert "USING INDEX programs_json_" in plan, (name, plan)
        assert not plan.startswith("SCAN p"), (name, plan)
    assert negated["not"].startswith("SCAN p USING INDEX sqlite_autoindex"), negated
    assert broad["broad"].startswith("SCAN p USING INDEX sqlite_autoindex"), broad
