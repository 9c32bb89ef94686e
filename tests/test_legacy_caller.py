"""An evolution runner written against ShinkaEvolve's API, run unchanged on both backends.

Only legacy names are used here: DatabaseConfig from a plain dict, ProgramDatabase,
Program, sample_with_fix_mode, add(defer_maintenance=True), run_post_add_maintenance,
get_best_program, get_top_programs, compute_similarity, has_program_with_source_job_id.
"""

from __future__ import annotations

import random
import uuid

import pytest

from genesis.database import DatabaseConfig, Program, ProgramDatabase

RUNNER_CONFIG = {
    "num_islands": 2,
    "archive_size": 8,
    "elite_selection_ratio": 0.3,
    "num_archive_inspirations": 2,
    "num_top_k_inspirations": 1,
    "migration_interval": 5,
    "migration_rate": 0.2,
    "parent_selection_strategy": "weighted",
    "island_selection_strategy": "uniform",
}


@pytest.fixture
def legacy_config(store_url, tmp_path, monkeypatch) -> dict:
    """The runner's config dict; PostgreSQL is selected the legacy-free way: DATABASE_URL."""
    if store_url.is_sqlite:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        return {**RUNNER_CONFIG, "db_path": str(tmp_path / "evolution_db.sqlite")}
    monkeypatch.setenv("DATABASE_URL", store_url.conninfo())
    monkeypatch.setenv("GENESIS_RUN", store_url.run)
    return {**RUNNER_CONFIG, "db_path": None}


def embed(code: str) -> list[float]:
    rng = random.Random(code)
    return [rng.uniform(-1, 1) for _ in range(16)]


def evaluate(code: str, rng: random.Random) -> tuple[float, bool]:
    return rng.random(), rng.random() < 0.75


def test_runner_loop(legacy_config: dict) -> None:
    rng = random.Random(42)
    db = ProgramDatabase(DatabaseConfig(**legacy_config))
    initial = Program(id=str(uuid.uuid4()), code="def run():\n    return 0\n", generation=0,
                      combined_score=0.1, correct=True, embedding=embed("seed"),
                      public_metrics={"score": 0.1}, text_feedback=["initial", "program"])
    db.add(initial)
    assert db.get(initial.id).text_feedback == "initial\nprogram"
    scores = [0.1]
    for generation in range(1, 31):
        parent, inspirations, top_k, needs_fix = db.sample_with_fix_mode()
        assert not needs_fix
        job = f"job-{generation}"
        if db.has_program_with_source_job_id(job):
            continue
        code = parent.code + f"# gen {generation}\n"
        score, correct = evaluate(code, rng)
        child = Program(
            id=str(uuid.uuid4()), code=code, parent_id=parent.id, generation=generation,
            archive_inspiration_ids=[p.id for p in inspirations],
            top_k_inspiration_ids=[p.id for p in top_k], combined_score=score,
            correct=correct, public_metrics={"score": score}, embedding=embed(code),
            code_diff=f"+# gen {generation}", metadata={"source_job_id": job},
        )
        similarities = db.compute_similarity(child.embedding, parent.island_idx)
        assert all(-1.0 <= s <= 1.0 for s in similarities)
        db.add(child, defer_maintenance=True)
        db.run_post_add_maintenance(child)
        if correct:
            scores.append(score)
        assert child.island_idx == parent.island_idx
        best = db.get_best_program()
        assert best.correct and best.combined_score == max(scores)
    duplicate = Program(id=str(uuid.uuid4()), code="again", parent_id=initial.id,
                        generation=3, metadata={"source_job_id": "job-3"})
    assert db.add(duplicate) == db.get_program_by_source_job_id("job-3").id
    top = db.get_top_programs(5, correct_only=True)
    assert [p.combined_score for p in top] == sorted(scores, reverse=True)[:5]
    assert db.last_iteration == 30
    assert db.best_program_id == db.get_best_program().id
    assert db.get_program_count_and_timestamp()["count"] == 32
    assert len(db.get_all_programs()) == 32
    assert db.get_ancestry(top[0].id)[-1].id == top[0].parent_id
    archived = [p for p in db.get_all_programs() if p.in_archive]
    assert 0 < len(archived) <= legacy_config["archive_size"]
    db.save()
    db.close()
    db.close()
    reopened = ProgramDatabase(DatabaseConfig(**legacy_config), read_only=True)
    assert reopened.last_iteration == 30
    with pytest.raises(PermissionError):
        reopened.add(Program(id="x", code="y"))
    reopened.close()
