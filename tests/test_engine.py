"""Evolution semantics of AsyncProgramDatabase, run on every backend."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest

from genesis.database import (
    AsyncProgramDatabase,
    DatabaseConfig,
    IntegrityError,
    Program,
    create_store,
)
from genesis.database.selection import (
    island_probabilities,
    power_law_probabilities,
    weighted_parent_probabilities,
)
from tests.factories import make_program
from tests.stats import assert_matches

OpenDB = Callable[..., Awaitable[AsyncProgramDatabase]]


@pytest.fixture
async def open_db(store_url) -> AsyncIterator[OpenDB]:
    """Open databases on the test's run with config overrides; closed after the test."""
    opened: list[AsyncProgramDatabase] = []

    async def factory(read_only: bool = False, **options: object) -> AsyncProgramDatabase:
        config = DatabaseConfig(pool_max_size=4, sqlite_readers=2, seed=7, **options)
        store = create_store(store_url, config, read_only=read_only)
        db = AsyncProgramDatabase(config, read_only=read_only, store=store)
        await db.open()
        opened.append(db)
        return db

    yield factory
    for db in reversed(opened):
        await db.close()


async def seed_run(db: AsyncProgramDatabase, score: float = 0.5, **fields: object) -> Program:
    """Add a correct initial program and return it."""
    root = make_program(score=score, island=None, complexity=0.3, **fields)
    await db.add(root)
    return root


async def test_first_program_is_copied_to_every_island(open_db: OpenDB) -> None:
    db = await open_db(num_islands=3)
    root = await seed_run(db)
    assert root.island_idx == 0
    stats = await db.island_stats()
    assert [(s.island_idx, s.programs, s.correct) for s in stats] == [(0, 1, 1), (1, 1, 1),
                                                                      (2, 1, 1)]
    copies = [p for p in await db.get_all_programs() if p.id != root.id]
    assert {p.island_idx for p in copies} == {1, 2}
    for twin in copies:
        assert twin.metadata["_is_island_copy"] is True
        assert twin.metadata["_original_program_id"] == root.id
        assert twin.code == root.code and twin.generation == 0 and twin.in_archive
    assert (await db.get(root.id)).in_archive


async def test_child_joins_its_parents_island(open_db: OpenDB) -> None:
    db = await open_db(num_islands=3)
    root = await seed_run(db)
    copy_on_2 = next(p for p in await db.get_all_programs() if p.island_idx == 2)
    child = make_program(parent=copy_on_2, generation=4, island=None)
    grandchild = make_program(parent=child, generation=2)
    await db.add(child)
    await db.add(grandchild)
    assert child.island_idx == 2 and grandchild.island_idx == 2
    assert (await db.get(copy_on_2.id)).children_count == 1
    assert (await db.get(child.id)).children_count == 1
    assert (await db.get(root.id)).children_count == 0
    assert await db.get_last_iteration() == 4


async def test_complexity_is_computed_only_when_zero(open_db: OpenDB) -> None:
    db = await open_db()
    await seed_run(db)
    parent = (await db.sample())[0]
    fresh = make_program(parent=parent, complexity=0.0)
    fresh.code = "def f(x):\n    if x:\n        return 1\n    return 2\n"
    given = make_program(parent=parent, complexity=0.77)
    await db.add(fresh)
    await db.add(given)
    stored = await db.get(fresh.id)
    assert 0 < stored.complexity <= 1
    assert stored.metadata["code_analysis_metrics"]["cyclomatic_complexity"] == 2
    assert (await db.get(given.id)).complexity == 0.77


async def test_duplicate_id_is_an_integrity_error(open_db: OpenDB) -> None:
    db = await open_db()
    root = await seed_run(db)
    clash = make_program(parent=root, id=root.id)
    with pytest.raises(IntegrityError) as info:
        await db.add(clash)
    assert isinstance(info.value, sqlite3.IntegrityError)  # legacy callers catch this
    assert await db.count() == 2


async def test_read_only_database_refuses_writes(open_db: OpenDB) -> None:
    writer = await open_db()
    await seed_run(writer)
    reader = await open_db(read_only=True)
    with pytest.raises(PermissionError):
        await reader.add(make_program())
    parent, _, _ = await reader.sample()
    assert parent.correct


async def test_source_job_id_makes_adds_idempotent(open_db: OpenDB) -> None:
    db = await open_db()
    root = await seed_run(db)
    first = make_program(parent=root, job="job-7")
    assert await db.add(first) == first.id
    again = make_program(parent=root, job="job-7")
    assert await db.add(again) == first.id
    assert await db.has_program_with_source_job_id("job-7")
    assert not await db.has_program_with_source_job_id("job-8")
    assert (await db.get_program_by_source_job_id("job-7")).id == first.id
    assert (await db.get(root.id)).children_count == 1


async def test_sampling_before_every_island_has_a_correct_program(open_db: OpenDB) -> None:
    db = await open_db(num_islands=2)
    root = make_program(correct=False, island=None)
    await db.add(root)
    parent, archive, top = await db.sample()
    assert (parent.id, archive, top) == (root.id, [], [])
    child = make_program(parent=root, correct=False)
    grandchild = make_program(parent=child, correct=False)
    await db.add(child)
    await db.add(grandchild)
    seen = Counter()
    for _ in range(30):
        parent, ancestors, top, needs_fix = await db.sample_with_fix_mode()
        assert needs_fix and not parent.correct and top == []
        assert [a.id for a in ancestors] == [a.id for a in await db.get_ancestry(parent.id, 2)]
        seen[parent.id] += 1
    assert len(seen) > 2  # random incorrect programs, not only the first


async def test_fix_mode_ends_once_a_correct_program_exists(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1)
    root = make_program(correct=False, island=None)
    await db.add(root)
    await db.add(make_program(parent=root, correct=True, score=0.4))
    parent, _, _, needs_fix = await db.sample_with_fix_mode()
    assert not needs_fix and parent.correct


async def test_archive_holds_the_best_correct_programs_only(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1, archive_size=5)
    root = await seed_run(db, score=0.0)
    rng = np.random.default_rng(1)
    programs = [make_program(parent=root, score=float(rng.random()), correct=bool(i % 3))
                for i in range(30)]
    for program in programs:
        await db.add(program)
    archived = {p.id for p in await db.get_all_programs() if p.in_archive}
    correct = sorted((p for p in programs if p.correct), key=lambda p: -p.combined_score)
    assert archived == {p.id for p in correct[:5]}


async def test_crowding_replaces_the_most_similar_member(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1, archive_size=3, archive_selection_strategy="crowding")
    root = await seed_run(db, score=0.9, embedding=[0.0, 0.0, 1.0])
    a = make_program(parent=root, score=0.5, embedding=[1.0, 0.0, 0.0])
    b = make_program(parent=root, score=0.1, embedding=[0.0, 1.0, 0.0])
    await db.add(a)
    await db.add(b)
    near_a = make_program(parent=root, score=0.6, embedding=[0.9, 0.1, 0.0])
    await db.add(near_a)
    archived = {p.id for p in await db.get_all_programs() if p.in_archive}
    assert archived == {root.id, b.id, near_a.id}  # a replaced, though b is the worst


async def test_multi_criteria_archive(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1, archive_size=2,
                       archive_criteria={"combined_score": 1.0, "loc": -1.0})
    root = await seed_run(db, score=0.5)
    long_code = make_program(parent=root, score=0.5)
    long_code.code = "x = 1\n" * 400
    await db.add(long_code)
    short = make_program(parent=root, score=0.6)
    short.code = "x = 1\n"
    await db.add(short)
    archived = {p.id for p in await db.get_all_programs() if p.in_archive}
    assert short.id in archived and long_code.id not in archived


async def test_best_program_only_moves_forward(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1)
    root = await seed_run(db, score=0.5, public_metrics={"acc": 0.1})
    good = make_program(parent=root, score=0.8, public_metrics={"acc": 0.2})
    worse = make_program(parent=root, score=0.7, public_metrics={"acc": 0.9})
    wrong = make_program(parent=root, score=9.9, correct=False)
    for program in (good, worse, wrong):
        await db.add(program)
    assert (await db.get_best_program()).id == good.id
    assert await db.get_best_program_id() == good.id
    assert await db.get_best_score_ever() == 0.8
    assert (await db.get_best_program(metric="acc")).id == worse.id
    top = await db.get_top_programs(2, correct_only=True)
    assert [p.id for p in top] == [good.id, worse.id]


async def test_deferred_maintenance_runs_later(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1)
    root = await seed_run(db, score=0.5)
    child = make_program(parent=root, score=0.9)
    await db.add(child, defer_maintenance=True)
    assert await db.get_best_program_id() == root.id
    assert not (await db.get(child.id)).in_archive
    await db.run_post_add_maintenance(child)
    assert await db.get_best_program_id() == child.id
    assert (await db.get(child.id)).in_archive


async def test_migration_moves_non_elites_once_per_generation(open_db: OpenDB) -> None:
    db = await open_db(num_islands=2, migration_interval=3, migration_rate=0.5,
                       archive_size=100)
    root = await seed_run(db)
    kids = [make_program(parent=root, generation=1, score=0.1 * i) for i in range(1, 7)]
    for kid in kids:
        await db.add(kid)
    assert await db.get_last_migration_generation() is None
    trigger = make_program(parent=root, generation=3, score=0.01)
    await db.add(trigger)
    moved = [p for p in await db.get_all_programs() if p.migration_history]
    island0 = 9  # root, six kids, trigger... counted before the move: 8 programs
    assert 1 <= len(moved) <= max(1, int(island0 * 0.5))
    elite = max(kids, key=lambda p: p.combined_score)
    assert elite.id not in {p.id for p in moved}
    for program in moved:
        (event,) = program.migration_history
        assert event["generation"] == 3 and event["from"] == 0 and event["to"] == 1
        assert program.island_idx == 1 and program.generation > 0
    await db.add(make_program(parent=root, generation=3))  # same generation again
    await db.check_scheduled_operations()
    again = [p for p in await db.get_all_programs() if p.migration_history]
    assert {p.id for p in again} == {p.id for p in moved}
    assert await db.get_last_migration_generation() == 3


async def test_dynamic_islands_spawn_on_stagnation(open_db: OpenDB) -> None:
    db = await open_db(num_islands=2, enable_dynamic_islands=True, stagnation_threshold=3,
                       island_spawn_strategy="best")
    root = await seed_run(db, score=0.9)
    for generation in (1, 2):
        await db.add(make_program(parent=root, generation=generation, score=0.1))
    assert len(await db.island_stats()) == 2
    await db.add(make_program(parent=root, generation=3, score=0.1))
    stats = await db.island_stats()
    assert [s.island_idx for s in stats] == [0, 1, 2]
    spawned = [p for p in await db.get_all_programs() if p.island_idx == 2]
    assert len(spawned) == 1 and spawned[0].metadata["_spawned_island"] is True
    assert spawned[0].metadata["_spawned_from_program_id"] == root.id
    assert await db.get_best_score_generation() == 3
    assert not await db.is_stagnant(4)


async def build_islands(db: AsyncProgramDatabase, per_island: int = 4) -> list[Program]:
    """A run with two islands, each holding a few correct children."""
    root = await seed_run(db, score=0.2)
    copies = [p for p in await db.get_all_programs() if p.id != root.id]
    programs = [root, *copies]
    for parent in [root, *copies]:
        for k in range(per_island):
            child = make_program(parent=parent, score=0.3 + 0.1 * k)
            await db.add(child)
            programs.append(child)
    return programs


async def test_inspirations_respect_island_separation(open_db: OpenDB) -> None:
    db = await open_db(num_islands=2, num_archive_inspirations=3, num_top_k_inspirations=2)
    await build_islands(db)
    for _ in range(20):
        parent, archive, top = await db.sample()
        ids = [p.id for p in archive + top]
        assert parent.id not in ids and len(set(ids)) == len(ids)
        assert all(p.island_idx == parent.island_idx for p in archive + top)
        assert all(p.correct and p.in_archive for p in archive + top)
        assert [p.combined_score for p in top] == sorted([p.combined_score for p in top],
                                                         reverse=True)


async def test_inspirations_cross_islands_without_separation(open_db: OpenDB) -> None:
    db = await open_db(num_islands=2, num_archive_inspirations=6, num_top_k_inspirations=1,
                       enforce_island_separation=False)
    await build_islands(db, per_island=3)
    crossed = False
    for _ in range(10):
        parent, archive, top = await db.sample()
        assert len(archive) == 6
        crossed |= any(p.island_idx != parent.island_idx for p in archive + top)
    assert crossed


async def parents_drawn(db: AsyncProgramDatabase, draws: int) -> Counter[str]:
    """Sample ``draws`` times and count the parents."""
    counts: Counter[str] = Counter()
    for _ in range(draws):
        counts[(await db.sample())[0].id] += 1
    return counts


async def test_weighted_parent_distribution(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1, parent_selection_lambda=2.0)
    root = await seed_run(db, score=0.2)
    for k, score in enumerate([0.3, 0.5, 0.6]):
        parent = make_program(parent=root, score=score)
        await db.add(parent)
        for _ in range(k):
            await db.add(make_program(parent=parent, score=0.0, correct=False))
    members = sorted([p for p in await db.get_all_programs() if p.in_archive],
                     key=lambda p: p.id)
    expected = weighted_parent_probabilities([p.combined_score for p in members],
                                             [p.children_count for p in members], 2.0)
    counts = await parents_drawn(db, 1500)
    assert_matches([counts[p.id] for p in members], expected)


async def test_power_law_parent_distribution(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1, parent_selection_strategy="power_law",
                       exploitation_alpha=1.0)
    root = await seed_run(db, score=0.1)
    for score in (0.4, 0.7, 0.9):
        await db.add(make_program(parent=root, score=score))
    members = sorted([p for p in await db.get_all_programs() if p.in_archive],
                     key=lambda p: -p.combined_score)
    counts = await parents_drawn(db, 1500)
    assert_matches([counts[p.id] for p in members], power_law_probabilities(4, 1.0))


@pytest.mark.parametrize("strategy", ["uniform", "equal", "proportional", "weighted"])
async def test_island_selection_distribution(open_db: OpenDB, strategy: str) -> None:
    db = await open_db(num_islands=3, island_selection_strategy=strategy)
    root = await seed_run(db, score=0.5)
    copies = {p.island_idx: p for p in await db.get_all_programs()}
    for island, extra in ((1, [1.5, 0.7]), (2, [0.9])):
        for score in extra:
            await db.add(make_program(parent=copies[island], score=score))
    assert root.island_idx == 0
    stats = await db.island_stats()
    counts: Counter[int] = Counter()
    for _ in range(1200):
        counts[(await db.sample())[0].island_idx] += 1
    assert_matches([counts[s.island_idx] for s in stats], island_probabilities(strategy, stats))


async def test_beam_search_keeps_a_parent_for_num_beams_children(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1, parent_selection_strategy="beam_search", num_beams=2)
    root = await seed_run(db, score=0.5)
    parent = (await db.sample())[0]
    assert parent.id == root.id and await db.get_beam_search_parent_id() == root.id
    await db.add(make_program(parent=root, score=0.3))
    assert (await db.sample())[0].id == root.id
    better = make_program(parent=root, score=0.8)
    await db.add(better)
    assert (await db.sample())[0].id == better.id
    assert await db.get_beam_search_parent_id() == better.id


async def test_best_of_n_and_sequential(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1, parent_selection_strategy="best_of_n")
    root = await seed_run(db, score=0.5)
    child = make_program(parent=root, generation=1, score=0.9)
    latest = make_program(parent=child, generation=2, score=0.1)
    await db.add(child)
    await db.add(latest)
    assert {(await db.sample())[0].id for _ in range(5)} == {root.id}
    db.config.parent_selection_strategy = "sequential"
    assert (await db.sample())[0].id == latest.id


async def test_similarity_matches_a_plain_computation(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1)
    rng = np.random.default_rng(5)
    root = await seed_run(db, embedding=rng.normal(size=64).tolist())
    programs = [make_program(parent=root, embedding=rng.normal(size=64).tolist())
                for _ in range(40)]
    odd = make_program(parent=root, embedding=[1.0, 2.0])
    for program in [*programs, odd]:
        await db.add(program)
    query = rng.normal(size=64)
    got = await db.compute_similarity(query.tolist(), 0)
    everyone = sorted([root, *programs, odd], key=lambda p: p.id)

    def cosine(p: Program) -> float:
        v = np.array(p.embedding)
        return 0.0 if len(v) != 64 else float(v @ query / np.linalg.norm(v) /
                                              np.linalg.norm(query))

    assert np.allclose(got, [cosine(p) for p in everyone], atol=1e-6)
    newcomer = make_program(parent=root, embedding=query.tolist())
    await db.add(newcomer)
    assert len(await db.compute_similarity(query.tolist(), 0)) == len(everyone) + 1
    assert (await db.get_most_similar_program(query.tolist(), 0)).id == newcomer.id
    assert await db.compute_similarity([], 0) == []
    assert await db.compute_similarity(query.tolist(), 9) == []


async def test_reads_and_events(open_db: OpenDB) -> None:
    db = await open_db(num_islands=1)
    root = await seed_run(db)
    child = make_program(parent=root, generation=1)
    await db.add(child)
    assert [p.id for p in await db.get_programs_by_generation(1)] == [child.id]
    assert [p.id for p in await db.get_ancestry(child.id)] == [root.id]
    info = await db.get_program_count_and_timestamp()
    assert info == {"count": 2, "max_timestamp": max(root.timestamp, child.timestamp)}
    await db.record_generation_event(1, "completed", "job-1", {"s": 1})
    await db.record_attempt_event(1, "patch", "failed")
    async with db.store.read() as reader:
        assert (await reader.generation_events())[0].source_job_id == "job-1"
        assert (await reader.attempt_events())[0].stage == "patch"


async def test_print_summary(open_db: OpenDB, capsys: pytest.CaptureFixture[str]) -> None:
    db = await open_db(num_islands=2)
    await seed_run(db, score=0.625)
    await db.print_summary()
    out = capsys.readouterr().out
    assert "programs 2" in out and "0.6250" in out and "island" in out


async def test_concurrent_children_keep_counts_and_archive_exact(open_db: OpenDB) -> None:
    db = await open_db(num_islands=2, archive_size=7)
    root = await seed_run(db)
    parents = [p for p in await db.get_all_programs()]

    async def worker(index: int) -> None:
        for k in range(8):
            parent = parents[(index + k) % len(parents)]
            await db.add(make_program(parent=parent, score=(index * 8 + k) / 100,
                                      generation=k + 1))

    await asyncio.gather(*(worker(i) for i in range(12)))
    everything = await db.get_all_programs()
    children = Counter(p.parent_id for p in everything if p.parent_id)
    for program in everything:
        assert program.children_count == children.get(program.id, 0)
    archived = [p for p in everything if p.in_archive]
    assert len(archived) == 7 and all(p.correct for p in archived)
    assert await db.get_last_iteration() == 8
    best = max((p for p in everything if p.correct), key=lambda p: p.combined_score)
    assert await db.get_best_program_id() == best.id
    assert root.id in {p.id for p in everything}


async def test_load_switches_to_another_run(tmp_path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    db = AsyncProgramDatabase(DatabaseConfig(db_path=str(first), num_islands=1))
    await db.open()
    root = await seed_run(db)
    await db.load(str(second))
    assert await db.count() == 0 and await db.get(root.id) is None
    await seed_run(db)
    await db.close()
    reopened = AsyncProgramDatabase(DatabaseConfig(db_path=str(first), num_islands=1))
    async with reopened:
        assert (await reopened.get(root.id)).id == root.id
