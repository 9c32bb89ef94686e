"""The reference evolution loop end to end, on both backends, with real evaluation."""

from __future__ import annotations

from collections import Counter

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, create_store
from genesis.workload import Evaluator, ProgrammaticMutator
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
