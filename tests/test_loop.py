"""The reference evolution loop end to end, on both backends, with real evaluation."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, create_store
from genesis.workload import EvalResult, Evaluator, ProgrammaticMutator
from genesis.workload.loop import LoopSettings, evolve


@pytest.mark.slow
async def test_loop_evolves_a_consistent_run(store_url) -> None:
    config = DatabaseConfig(num_islands=2, archive_size=12, migration_interval=8,
                            migration_rate=0.2, seed=5, pool_max_size=4, sqlite_readers=2)
    settings = LoopSettings(workers=4, max_programs=120, max_seconds=120, embedding_dim=64,
                            seed=5)
    async with AsyncProgramDatabase(config, store=create_store(store_url, config)) as db, \
            Evaluator(workers=2, timeout=5.0) as evaluator:
        report = await evolve(db, ProgrammaticMutator(), evaluator, settings)
        again = await evolve(db, ProgrammaticMutator(), evaluator,
                             LoopSettings(workers=2, max_programs=10, embedding_dim=64))
        programs = await db.get_all_programs()
        best = await db.get_best_program()
        events = await db.count()
        async with db.store.read() as reader:
            logged = await reader.generation_events()
    assert report.added >= 120 and again.first_generation > report.last_generation
    assert events == len(programs) == 2 + report.added + again.added
    by_id = {p.id: p for p in programs}
    children = Counter(p.parent_id for p in programs if p.parent_id)
    for program in programs:
        if program.parent_id:
            parent = by_id[program.parent_id]  # every child's parent exists
            assert program.generation > parent.generation
            parent_islands = {parent.island_idx} | {e["from"] for e in parent.migration_history}
            assert program.island_idx in parent_islands or program.migration_history
        assert program.children_count == children.get(program.id, 0)
        assert program.island_idx in (0, 1)
    initial = min(programs, key=lambda p: p.timestamp)
    assert best.correct and best.combined_score > initial.combined_score
    archived = [p for p in programs if p.in_archive]
    assert 0 < len(archived) <= 12 and all(p.correct for p in archived)
    assert len(logged) == report.added + again.added
    assert all(p.metadata.get("source_job_id") for p in programs if p.parent_id)
    assert {p.island_idx for p in programs} == {0, 1}


class StandInScorer:
    """Scores every program alike, at once; from the ``stall_after``-th call on, never."""

    def __init__(self, stall_after: int | None = None) -> None:
        self.calls = 0
        self.stall_after = stall_after

    async def evaluate(self, code: str) -> EvalResult:
        """Return a correct result, or wait forever once stalled."""
        self.calls += 1
        if self.stall_after is not None and self.calls > self.stall_after:
            await asyncio.Event().wait()
        await asyncio.sleep(0)
        return EvalResult(correct=True, combined_score=1.0, public_metrics={},
                          private_metrics={}, text_feedback="", stdout="", seconds=0.0,
                          status="ok")


async def test_the_program_budget_holds_with_more_workers_than_programs(store_url) -> None:
    config = DatabaseConfig(seed=3, pool_max_size=4, sqlite_readers=2)
    settings = LoopSettings(workers=40, max_programs=7, max_seconds=None, embedding_dim=8)
    async with AsyncProgramDatabase(config, store=create_store(store_url, config)) as db:
        report = await evolve(db, ProgrammaticMutator(), StandInScorer(), settings)
        assert report.added == 7
        assert await db.count() == 2 + 7  # the initial program, its island copy, 7 children


async def test_the_time_limit_and_stop_cancel_steps_still_evaluating(tmp_path) -> None:
    url = DatabaseURL.sqlite(tmp_path / "run.db")
    config = DatabaseConfig(seed=3, sqlite_readers=2)
    async with AsyncProgramDatabase(config, store=create_store(url, config)) as db:
        settings = LoopSettings(workers=8, max_programs=None, max_seconds=0.5, embedding_dim=8)
        timed = await asyncio.wait_for(  # the seed, then at most 3 children: then it stalls
            evolve(db, ProgrammaticMutator(), StandInScorer(stall_after=4), settings), 30)
        stop = asyncio.Event()

        async def stop_at(count: int) -> None:
            while await db.count() < count:
                await asyncio.sleep(0.01)
            stop.set()

        stopper = asyncio.create_task(stop_at(2 + timed.added + 3))
        settings = LoopSettings(workers=8, max_programs=None, max_seconds=None, embedding_dim=8)
        stopped = await asyncio.wait_for(
            evolve(db, ProgrammaticMutator(), StandInScorer(stall_after=3), settings,
                   stop=stop), 30)
        await stopper
        assert await db.count() == 2 + timed.added + stopped.added
    assert timed.added <= 3 and stopped.added == 3
