"""ShinkaEvolve's database surface on Genesis (``genesis.compat.shinka``), on both backends.

What ShinkaEvolve 0.0.7's runner, novelty judge, summarizer and tools call beyond the legacy
API: the async wrapper, ``island_manager``/``island_sampler``, ``cursor``/``conn``, program
summaries and telemetry. Signatures are compared with ShinkaEvolve's own in its venv.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from pathlib import Path

import pytest

from genesis.compat.shinka import AsyncProgramDatabase, DatabaseConfig, Program, ProgramDatabase
from genesis.compat.shinka.cursor import LegacyRow, postgres_sql
from genesis.compat.shinka.inspirations import InspirationContextBuilder
from genesis.compat.shinka.islands import IslandManager, IslandSampler
from genesis.database import DatabaseURL
from tests.conftest import drop_pg_run, new_pg_run_url
from tests.shinka_venv import run_in_shinka

SIGNATURES = """
import inspect, json
from shinka.database.async_dbase import AsyncProgramDatabase
from shinka.database.dbase import ProgramDatabase
from shinka.database.islands import CombinedIslandManager
from shinka.database.island_sampler import IslandSampler
from shinka.database.inspirations import InspirationContextBuilder
out = {}
for cls in (AsyncProgramDatabase, ProgramDatabase, CombinedIslandManager, IslandSampler,
            InspirationContextBuilder):
    methods = {}
    for name, member in inspect.getmembers(cls):
        if callable(member) and (not name.startswith("_") or name == "__init__"):
            params = list(inspect.signature(member).parameters.values())[1:]
            methods[name] = [[p.name, repr(p.default)] for p in params
                             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    out[cls.__name__] = methods
print(json.dumps(out))
"""
OURS = {
    "AsyncProgramDatabase": AsyncProgramDatabase,
    "ProgramDatabase": ProgramDatabase,
    "CombinedIslandManager": IslandManager,
    "IslandSampler": IslandSampler,
    "InspirationContextBuilder": InspirationContextBuilder,
}
# ShinkaEvolve's island classes take its sqlite cursor and connection; Genesis' take the db.
CONSTRUCTED_DIFFERENTLY = {("CombinedIslandManager", "__init__"), ("IslandSampler", "__init__")}


@pytest.mark.slow
def test_every_shinkaevolve_method_exists_with_its_parameters() -> None:
    theirs = run_in_shinka(SIGNATURES)
    problems = []
    for class_name, methods in theirs.items():
        ours = OURS[class_name]
        for name, params in methods.items():
            if not hasattr(ours, name):
                problems.append(f"{class_name}.{name} is missing")
                continue
            if (class_name, name) in CONSTRUCTED_DIFFERENTLY:
                continue
            mine = list(inspect.signature(getattr(ours, name)).parameters.values())[1:]
            mine_params = [[p.name, repr(p.default)] for p in mine
                           if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            if mine_params != params:
                problems.append(f"{class_name}.{name}: ours {mine_params}, theirs {params}")
    assert not problems, "\n".join(problems)


def test_async_methods_are_coroutines_with_shinkaevolves_names() -> None:
    names = ["add_program_async", "add_programs_batch_async", "batch_sample_async",
             "close_async", "compute_percentile_async", "force_recompute_embeddings_async",
             "get_async", "get_best_program_async", "get_persisted_generation_ids_async",
             "get_program_by_source_job_id_async", "get_programs_by_generation_async",
             "get_top_programs_async", "get_total_program_count_async",
             "has_program_with_source_job_id_async", "record_attempt_event_async",
             "record_generation_event_async", "run_program_maintenance_async",
             "sample_async", "sample_with_fix_mode_async", "update_beam_search_parent_async",
             "update_program_metadata_async"]
    for name in names:
        assert inspect.iscoroutinefunction(getattr(AsyncProgramDatabase, name)), name


@pytest.fixture
def legacy_config(backend: str, store_url: DatabaseURL, tmp_path: Path) -> DatabaseConfig:
    """A ShinkaEvolve-style config: db_path in a results folder, or the test server's run."""
    if backend == "sqlite":
        return DatabaseConfig(db_path=str(tmp_path / "results" / "programs.sqlite"),
                              num_islands=2, archive_size=10, seed=3)
    return DatabaseConfig(database_url=str(store_url), num_islands=2, archive_size=10, seed=3)


@pytest.fixture
def db(legacy_config: DatabaseConfig):
    database = ProgramDatabase(legacy_config, embedding_model="fake-embedder")
    yield database
    database.close()


def _program(pid: str, parent: str | None = None, score: float = 0.5, correct: bool = True,
             generation: int = 0, **fields) -> Program:
    return Program(id=pid, code=f"def f():\n    return {score}\n", parent_id=parent,
                   combined_score=score, correct=correct, generation=generation, **fields)


def test_add_program_async_reports_inserted_and_duplicate_jobs(db: ProgramDatabase) -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        adb = AsyncProgramDatabase(db, max_workers=4, enable_deadlock_debugging=False)
        root = await adb.add_program_async(_program("root"))
        child = _program("c1", generation=1, metadata={"source_job_id": "job-1"})
        first = await adb.add_program_async(child, parent_id="root", code_diff="+x",
                                            archive_insp_ids=["root"], top_k_insp_ids=["root"],
                                            meta_patch_data={"patch_type": "diff"},
                                            code_embedding=[0.1, 0.2], embed_cost=0.01,
                                            defer_maintenance=True)
        again = _program("c2", generation=1, metadata={"source_job_id": "job-1"})
        duplicate = await adb.add_program_async(again, parent_id="root")
        await adb.run_program_maintenance_async(child)
        await adb.close_async()
        return root and first, duplicate, await adb.has_program_with_source_job_id_async("job-1")

    inserted, duplicate, known = asyncio.run(scenario())
    assert inserted and not duplicate and known
    stored = db.get("c1")
    assert stored.parent_id == "root" and stored.code_diff == "+x"
    assert stored.archive_inspiration_ids == ["root"] and db.get("c2") is None
    assert db.get("root").children_count == 1


def test_async_reads_return_shinkaevolves_shapes(db: ProgramDatabase) -> None:
    db.add(_program("root", score=0.2))
    for index, score in enumerate([0.4, 0.6, 0.6, 0.9]):
        db.add(_program(f"c{index}", parent="root", score=score, generation=index % 2 + 1))

    async def scenario() -> dict:
        adb = AsyncProgramDatabase(db)
        parent, archive, top_k, needs_fix = await adb.sample_with_fix_mode_async()
        sample = await adb.sample_async()
        return {
            "fix": (isinstance(parent, Program), archive, top_k, needs_fix),
            "sample": len(sample),
            "generations": await adb.get_persisted_generation_ids_async(),
            "count": await adb.get_total_program_count_async(),
            "percentile": await adb.compute_percentile_async(0.6),
            "empty_percentile": await adb.compute_percentile_async(0.6, correct_only=False),
            "top": [p.combined_score for p in await adb.get_top_programs_async(3)],
            "gen1": sorted(p.id for p in await adb.get_programs_by_generation_async(1)),
            "best": (await adb.get_best_program_async()).id,
            "got": (await adb.get_async("c0")).id,
            "batch": len(await adb.batch_sample_async(3)),
            "by_job": await adb.get_program_by_source_job_id_async("nope"),
            "last": await adb.get_last_iteration_async(),  # any sync method, as *_async
        }

    found = asyncio.run(scenario())
    assert found["fix"][0] and found["fix"][3] is False
    assert found["sample"] == 3
    assert found["generations"] == [0, 1, 2]
    assert found["count"] == 6  # the root has one copy on the other island
    # 0.6 beats the two 0.2s (root and its copy) and 0.4, ties the two 0.6s, of six scores
    assert found["percentile"] == pytest.approx((3 + 0.5 * 2) / 6)
    assert found["top"] == [0.9, 0.6, 0.6]
    assert found["gen1"] == ["c0", "c2"]
    assert found["best"] == "c3" and found["got"] == "c0"
    assert found["batch"] == 3 and found["by_job"] is None and found["last"] == 2


def test_events_and_metadata_updates_go_through_the_engine(db: ProgramDatabase) -> None:
    db.add(_program("root"))

    async def scenario() -> None:
        adb = AsyncProgramDatabase(db)
        await adb.record_attempt_event_async(1, "proposal", "failed", {"node_kind": "x"})
        await adb.record_generation_event_async(1, "completed", "job-9", {"ok": True})
        await adb.update_program_metadata_async("root", {"api_costs": 0.25, "bad": math.nan})
        await adb.update_beam_search_parent_async("root")

    asyncio.run(scenario())
    assert db.get("root").metadata == {"api_costs": 0.25, "bad": None}
    assert db.beam_search_parent_id == "root"
    db.cursor.execute("SELECT stage, status FROM attempt_log")
    assert [tuple(row) for row in db.cursor.fetchall()] == [("proposal", "failed")]


def test_island_manager_answers_from_the_run(db: ProgramDatabase) -> None:
    manager = db.island_manager
    assert not manager.are_all_islands_initialized() and manager.get_initialized_islands() == []
    db.add(_program("root", correct=False, score=0.0))
    assert not manager.are_all_islands_initialized()
    assert manager.get_island_populations() == {0: 1, 1: 1}
    db.add(_program("ok", parent="root", generation=1))
    assert manager.get_initialized_islands() == [0]
    db.add(_program("ok1", parent=db.get_programs_by_generation(0)[1].id, generation=1))
    assert manager.are_all_islands_initialized()
    assert manager.get_island_idx("ok") == 0 and manager.get_island_idx("nope") is None
    assert manager.get_initial_program()["id"] == "root"
    assert manager.get_best_program()["id"] in ("ok", "ok1")
    assert manager.get_random_archive_program()["id"] in ("ok", "ok1")
    assert manager.get_next_island_index() == 2
    assert manager.should_schedule_migration(_program("m", generation=10))
    assert not manager.should_schedule_migration(_program("m", generation=9))
    assert manager.get_migration_info() == "10G, 0%(E)"
    assert "I0: 2" in manager.format_island_display()
    orphan = _program("x", parent="ok1")
    manager.assign_island(orphan)
    assert orphan.island_idx == 1
    assert manager.perform_migration(10) in (True, False)
    assert db.island_sampler.sample_island([0, 1]) in (0, 1)
    assert db.island_sampler.sample_island([1]) == 1


def test_spawning_an_island_through_the_manager(legacy_config: DatabaseConfig) -> None:
    legacy_config.enable_dynamic_islands = True
    database = ProgramDatabase(legacy_config)
    try:
        database.add(_program("root"))
        assert database.island_manager.spawn_new_island()
        assert 2 in database.island_manager.get_island_populations()
    finally:
        database.close()


def test_cursor_runs_shinkaevolves_own_sql(db: ProgramDatabase) -> None:
    db.add(_program("root", score=0.3))
    db.record_attempt_event(3, "proposal", "failed", {"node_kind": "failed_proposal"})
    db.record_attempt_event(4, "proposal", "failed", {"node_kind": "other"})
    # The runner's query for generations whose proposals all failed (async_runner.py).
    db.cursor.execute(
        """
        SELECT DISTINCT attempt_log.generation
        FROM attempt_log
        WHERE attempt_log.status = 'failed'
          AND json_valid(attempt_log.details)
          AND json_extract(attempt_log.details, '$.node_kind') = 'failed_proposal'
          AND attempt_log.generation < ?
          AND attempt_log.generation NOT IN (SELECT DISTINCT generation FROM programs)
        ORDER BY attempt_log.generation
        """, (12,))
    assert [int(row[0]) for row in db.cursor.fetchall()] == [3]
    # ShinkaEvolve's async_dbase and webui read scores with correct = 1 and row["..."].
    db.cursor.execute("SELECT combined_score FROM programs WHERE correct = 1 "
                      "AND combined_score IS NOT NULL")
    rows = db.cursor.fetchall()
    assert [row["combined_score"] for row in rows] == [0.3, 0.3]
    assert dict(rows[0]) == {"combined_score": 0.3}
    db.cursor.execute("SELECT COUNT(*) FROM programs")
    assert db.cursor.fetchone()[0] == 2 and db.cursor.fetchone() is None


def test_metadata_update_through_the_cursor_keeps_the_job_index(db: ProgramDatabase) -> None:
    db.add(_program("root", metadata={"source_job_id": "job-a"}))
    payload = json.dumps({"source_job_id": "job-a", "meta_cost": 0.5, "score": math.inf})
    db.cursor.execute("UPDATE programs SET metadata = ? WHERE id = ?", (payload, "root"))
    db.conn.commit()
    assert db.cursor.rowcount == 1
    assert db.get("root").metadata == {"source_job_id": "job-a", "meta_cost": 0.5,
                                       "score": None}
    assert db.get_program_by_source_job_id("job-a").id == "root"


def test_a_read_through_the_cursor_leaves_no_transaction_open(db: ProgramDatabase,
                                                              backend: str) -> None:
    db.add(_program("root"))
    db.cursor.execute("SELECT id FROM programs")
    db.cursor.fetchall()
    if backend == "postgres":
        db.cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE state = "
                          "'idle in transaction' AND pid <> pg_backend_pid() "
                          "AND application_name = ?", (f"genesis/{db.url.run}",))
        assert db.cursor.fetchone()[0] == 0
    db.add(_program("later", parent="root"))  # the engine's writer is not blocked
    db.cursor.execute("SELECT COUNT(*) FROM programs")
    assert db.cursor.fetchone()[0] == 3


def test_postgres_rewrites_only_sqlite_only_pieces() -> None:
    sql = ("SELECT a.x FROM attempt_log a WHERE json_valid(a.details) AND "
           "json_extract(a.details, '$.node_kind') = 'f' AND p.correct = 1 AND correct != 0 "
           "AND note = 'correct = 1'")
    rewritten = postgres_sql(sql)
    assert "(a.details IS NOT NULL)" in rewritten
    assert "(jsonb_path_query_first(a.details, '$.node_kind') #>> '{}') = 'f'" in rewritten
    assert "p.correct = TRUE" in rewritten and "correct != FALSE" in rewritten


def test_legacy_rows_behave_like_sqlite_rows() -> None:
    row = LegacyRow(["id", "score"], ("p1", 0.5))
    assert row[0] == "p1" and row["score"] == 0.5 and dict(row) == {"id": "p1", "score": 0.5}
    assert list(row) == ["p1", 0.5] and row.keys() == ["id", "score"] and len(row) == 2
    with pytest.raises(IndexError):
        row["nope"]


def test_summaries_and_telemetry(db: ProgramDatabase) -> None:
    db.add(_program("root", metadata={"api_costs": 1.5, "embed_cost": 0.25}))
    db.add(_program("child", parent="root", generation=1, score=0.8,
                    metadata={"api_costs": 2.0, "novelty_cost": 0.5,
                              "evaluation_seconds": 3.0, "headless_pricing_unknown": False}))
    summaries = db.get_programs_summary()
    assert {s["id"] for s in summaries} >= {"root", "child"} and len(summaries) == 3
    first = next(s for s in summaries if s["id"] == "root")
    assert "code" not in first and "embedding" not in first and first["in_archive"]
    rows = {row["island_idx"]: row for row in db.get_population_telemetry()}
    assert rows[0]["count"] == 2 and rows[0]["evaluated_count"] == 2
    assert rows[1]["count"] == 1 and rows[1]["evaluated_count"] == 0  # the island copy
    assert rows[0]["api_cost"] == pytest.approx(3.5)
    assert rows[0]["novelty_cost"] == pytest.approx(0.5)
    assert rows[0]["evaluation_seconds"] == pytest.approx(3.0)
    assert rows[0]["best_score"] == pytest.approx(0.8) and rows[0]["score_count"] == 2


def test_embedding_projections_are_recomputed(db: ProgramDatabase) -> None:
    db.add(_program("root", embedding=[1.0, 0.0, 0.0, 0.0]))
    for index in range(8):
        vector = [math.cos(index), math.sin(index), index / 8, 1.0 if index % 2 else -1.0]
        db.add(_program(f"c{index}", parent="root", generation=1, embedding=vector))

    async def scenario() -> None:
        adb = AsyncProgramDatabase(db)
        await adb.force_recompute_embeddings_async()

    asyncio.run(scenario())
    programs = db.get_all_programs()
    assert all(len(p.embedding_pca_2d) == 2 and len(p.embedding_pca_3d) == 3 for p in programs)
    clusters = {p.embedding_cluster_id for p in programs}
    assert clusters <= {0, 1, 2, 3} and len(clusters) > 1


def test_inspiration_context_builder_orders_like_shinkaevolve() -> None:
    a = _program("a", score=0.9, generation=3)
    b = _program("b", score=0.1, generation=5)
    c = Program(id="c", code="", combined_score=None, public_metrics={"x": 0.5, "y": 0.7},
                generation=1)
    ascending = InspirationContextBuilder().build_context([a, b], [c, a])
    assert [p.id for p in ascending] == ["b", "c", "a"]
    chronological = InspirationContextBuilder("chronological").build_context([a, b], [c])
    assert [p.id for p in chronological] == ["c", "a", "b"]
    assert [p.id for p in InspirationContextBuilder("none").build_context([b, a], [b])] == \
        ["b", "a"]
    assert InspirationContextBuilder().build_context([], []) == []


@pytest.mark.postgres
def test_a_postgres_run_restarted_by_shinkaevolve_is_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = new_pg_run_url()
    config = DatabaseConfig(database_url=str(url),
                            db_path=str(tmp_path / "results" / "programs.sqlite"))
    try:
        with ProgramDatabase(config) as first:
            first.add(_program("root"))
            first.add(_program("c", parent="root", generation=3))
        with caplog.at_level("WARNING", logger="genesis.compat.shinka"):
            ProgramDatabase(config).close()
        assert "already holds generations up to 3" in caplog.text
    finally:
        drop_pg_run(url)
