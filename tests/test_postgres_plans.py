"""The evolution queries of sql.py use indexes on PostgreSQL (EXPLAIN on a 20k-program run)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.backends.postgres import PostgresStore
from genesis.database.backends.postgres_session import PostgresSession, qualify
from tests.factories import make_program

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]
PROGRAMS = 20_000
ISLANDS = 8


class RecordingSession(PostgresSession):
    """A session that remembers every query it runs, with its parameters."""

    queries: list[tuple[str, Sequence[Any]]]

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        self.queries.append((qualify(sql, self.schema), params))
        return await super()._all(sql, params)

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        self.queries.append((qualify(sql, self.schema), params))
        return await super()._one(sql, params)

    async def _flight(self, writes: Sequence[Any], reads: Sequence[Any]) -> list[Any]:
        self.queries += [(qualify(query.sql, self.schema), query.params) for query in reads]
        return await super()._flight(writes, reads)


@pytest.fixture
async def big_store(store_url: DatabaseURL) -> AsyncIterator[PostgresStore]:
    """A run of 20k small programs in a lineage over several islands, analysed."""
    rng = random.Random(5)
    async with create_store(store_url, DatabaseConfig()) as store:
        assert isinstance(store, PostgresStore)
        programs = []
        for index in range(PROGRAMS):
            parent = programs[rng.randrange(index)] if index > ISLANDS else None
            programs.append(make_program(parent=parent, island=index % ISLANDS, rng=rng,
                                         correct=rng.random() < 0.7, job=f"job-{index}",
                                         embedding_dim=4 if index % 50 == 0 else 0))
        for start in range(0, PROGRAMS, 4000):
            await store.add_many(programs[start:start + 4000])
        async with store.write() as writer:
            await writer.archive_add([p.id for p in programs[::500]])
            await writer.conn.execute("ANALYZE")
        yield store


def _scans(plan: dict[str, Any]) -> list[str]:
    found = [f"{plan['Node Type']} {plan.get('Index Name', plan.get('Relation Name', ''))}"]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def _plans(store: PostgresStore, calls: dict[str, Any]) -> dict[str, list[str]]:
    """Run each reader call and return the scans of the queries it sent to programs."""
    plans = {}
    async with store.read() as reader:
        session = RecordingSession(reader.conn, store.url, store.config.max_code_bytes,
                                   store.schema)
        for name, call in calls.items():
            session.queries = []
            await call(session)
            scans = []
            for sql, params in session.queries:
                cursor = await reader.conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plan = (await cursor.fetchone())[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                scans += [s for s in _scans(plan[0]["Plan"]) if "Scan" in s]
            plans[name] = scans
    return plans


async def test_evolution_queries_use_indexes(big_store: PostgresStore) -> None:
    async with big_store.read() as reader:
        last = await reader.nth_program(island=3, correct=None, order="id", descending=True)
    calls = {
        "get": lambda s: s.get(last.id),
        "best_program": lambda s: s.best_program(),
        "top_programs": lambda s: s.top_programs(10),
        "top_correct": lambda s: s.top_programs(10, correct_only=True),
        "newest": lambda s: s.top_programs(5, metric="timestamp"),
        "earliest_program": lambda s: s.earliest_program(),
        "island_by_score": lambda s: s.nth_program(island=2, correct=True, order="score",
                                                   descending=True, offset=5),
        "island_by_score_asc": lambda s: s.nth_program(island=2, correct=True, order="score",
                                                       descending=False, offset=5),
        "island_latest": lambda s: s.nth_program(island=5, correct=True, order="generation",
                                                 descending=True),
        "by_generation": lambda s: s.programs_by_generation(3),
        "iter_programs": lambda s: anext(s.iter_programs(batch_size=100)),
        "ancestry": lambda s: s.ancestry(last.id, max_ancestors=5),
        "by_source_job_id": lambda s: s.by_source_job_id("job-77"),
        "count_and_last_timestamp": lambda s: s.count_and_last_timestamp(),
        "embedding_ids": lambda s: s.embedding_ids(0),
        "archive_island": lambda s: s.archive_summaries(island=1),
    }
    plans = await _plans(big_store, calls)
    for name, scans in plans.items():
        on_programs = [s for s in scans if s.endswith(("programs", "programs_pkey"))
                       or "idx_programs" in s]
        assert on_programs, f"{name}: no scan of programs in {scans}"
        assert not any(s.startswith("Seq Scan programs") for s in scans), f"{name}: {scans}"


async def test_plans_follow_a_run_that_grew_from_empty(store_url: DatabaseURL) -> None:
    """Statements are never prepared, so one planned on an empty run cannot stay a seq scan.

    (A generic plan cached while the run was empty would keep scanning it once it is large;
    unprepared statements are planned for their parameters every time. They also keep the
    connection free of session state, for a transaction-pooling PgBouncer.)
    """
    async with create_store(store_url, DatabaseConfig()) as store:
        for _ in range(8):  # past psycopg's and PostgreSQL's thresholds for preparing/generic
            async with store.read() as reader:
                await reader.by_source_job_id("job-1")
        await store.add_many([make_program(job=f"job-{i}") for i in range(5000)])
        async with store.read() as reader:
            cursor = await reader.conn.execute("SELECT COUNT(*) FROM pg_prepared_statements")
            assert (await cursor.fetchone())[0] == 0
            await reader.conn.execute("ANALYZE " + store.schema + ".programs")
            lookup = qualify("SELECT id FROM programs WHERE source_job_id = ANY(%s)",
                             store.schema)
            cursor = await reader.conn.execute(f"EXPLAIN (FORMAT JSON) {lookup}", (["job-1"],))
            plan = (await cursor.fetchone())[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        assert not any(s.startswith("Seq Scan") for s in _scans(plan[0]["Plan"]))
